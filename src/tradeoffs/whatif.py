"""What-if calculators: sliders over the learner's own measured numbers.

A calculator is a plain function ``fn(**values)`` (unit-tested in the lab's library module, or a
partial over the learner's graded function) plus one slider per argument. :func:`calculator` shows
the result at the defaults (the learner's measured numbers) as ordinary output -- so a static render,
nbval or a front end without widgets still shows it -- and below it the sliders, whose every move
recomputes ``fn`` into a second output. This module holds only that mechanism; what is computed
lives with each lab.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, Callable, Mapping

SliderSpec = tuple[float, float, float, float]  # (min, max, step, default)


def check_sliders(sliders: Mapping[str, SliderSpec]) -> dict[str, SliderSpec]:
    """Validate slider specifications ``name -> (min, max, step, default)``.

    Raises
    ------
    ValueError
        Naming the slider and what is wrong with it.

    Examples
    --------
    >>> check_sliders({"volume": (1_000, 100_000, 1_000, 20_000)})
    {'volume': (1000, 100000, 1000, 20000)}
    >>> check_sliders({"volume": (1, 10, 1, 50)})
    Traceback (most recent call last):
    ...
    ValueError: slider 'volume': default 50 is outside [1, 10]; pass the measured value clipped to the range, or widen it
    """
    if not isinstance(sliders, Mapping) or not sliders:
        raise ValueError("sliders must be a non-empty dict of name -> (min, max, step, default)")
    checked = {}
    for name, spec in sliders.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"slider name {name!r} must be a Python identifier (it is passed as a keyword argument)")
        if not isinstance(spec, (tuple, list)) or len(spec) != 4:
            raise ValueError(f"slider {name!r}: expected (min, max, step, default), got {spec!r}")
        if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in spec):
            raise ValueError(f"slider {name!r}: min, max, step and default must be numbers, got {spec!r}")
        lo, hi, step, default = spec
        if not lo < hi:
            raise ValueError(f"slider {name!r}: min {lo:g} must be below max {hi:g}")
        if not step > 0:
            raise ValueError(f"slider {name!r}: step must be positive, got {step:g}")
        if not lo <= default <= hi:
            raise ValueError(f"slider {name!r}: default {default:g} is outside [{lo:g}, {hi:g}]; pass the "
                             "measured value clipped to the range, or widen it")
        checked[name] = tuple(spec)
    return checked


@dataclass
class Calculator:
    """The parts of a calculator: the function, its sliders (name -> widget), and the what-if output."""

    fn: Callable[..., Any]
    baseline: Any
    sliders: dict[str, Any]
    output: Any
    box: Any

    def values(self) -> dict[str, float]:
        """The sliders' current values."""
        return {name: slider.value for name, slider in self.sliders.items()}

    def recompute(self, _change: Any = None) -> Any:
        """Call ``fn`` at the sliders' values and show the result in the what-if output."""
        from IPython.display import display

        result = self.fn(**self.values())
        self.output.clear_output(wait=True)
        with self.output:
            display(result)
        return result


def build_calculator(fn: Callable[..., Any], sliders: Mapping[str, SliderSpec], title: str = "") -> Calculator:
    """Build (without displaying) a calculator over ``fn``; see :func:`calculator`.

    Examples
    --------
    >>> calc = build_calculator(lambda volume: volume * 0.002, {"volume": (0, 1000, 10, 500)})
    >>> calc.baseline
    1.0
    >>> calc.values()
    {'volume': 500}
    >>> sorted(calc.sliders)
    ['volume']
    """
    import ipywidgets as widgets

    if not callable(fn):
        raise TypeError(f"fn must be a function of the sliders' names, got {type(fn).__name__}")
    specs = check_sliders(sliders)
    defaults = {name: spec[3] for name, spec in specs.items()}
    baseline = fn(**defaults)
    controls = {}
    for name, (lo, hi, step, default) in specs.items():
        integral = all(isinstance(v, numbers.Integral) for v in (lo, hi, step, default))
        cls = widgets.IntSlider if integral else widgets.FloatSlider
        controls[name] = cls(value=default, min=lo, max=hi, step=step, description=name,
                             continuous_update=False, style={"description_width": "initial"},
                             layout=widgets.Layout(width="480px"))
    output = widgets.Output()
    header = [widgets.HTML(f"<b>{title}</b> &mdash; what if?")] if title else []
    box = widgets.VBox([*header, *controls.values(), output])
    calc = Calculator(fn=fn, baseline=baseline, sliders=controls, output=output, box=box)
    for control in controls.values():
        control.observe(calc.recompute, names="value")
    return calc


def calculator(fn: Callable[..., Any], sliders: Mapping[str, SliderSpec], title: str = "") -> None:
    """Show ``fn`` at the defaults, then sliders that recompute it.

    Parameters
    ----------
    fn : callable
        ``fn(**values)`` with one keyword argument per slider; returns a DataFrame, a str, a dict or
        a matplotlib Figure (anything IPython displays).
    sliders : dict
        ``name -> (min, max, step, default)``; the defaults are the learner's measured numbers.
        All-integer specs make integer sliders.
    title : str
        What the calculator answers.

    Examples
    --------
    >>> calculator(lambda volume: f"{volume * 0.002:.2f} US$/day",
    ...            {"volume": (0, 1000, 10, 500)}, title="API bill")  # doctest: +SKIP
    """
    from IPython.display import display

    calc = build_calculator(fn, sliders, title)
    label = f"{title} " if title else ""
    defaults = ", ".join(f"{k}={v[3]:g}" for k, v in check_sliders(sliders).items())
    print(f"{label}at your measured numbers ({defaults}):")
    display(calc.baseline)
    calc.recompute()
    display(calc.box)
