"""The what-if calculator mechanism: slider checks, defaults shown, every slider move recomputes."""

import pytest

from tradeoffs import whatif


def test_defaults_are_the_baseline_and_a_move_recomputes():
    calls = []

    def bill(volume, price):
        calls.append((volume, price))
        return volume * price

    calc = whatif.build_calculator(bill, {"volume": (0, 1000, 10, 500), "price": (0.0, 1.0, 0.01, 0.5)})
    assert calc.baseline == 250.0 and calls == [(500, 0.5)]
    calc.sliders["volume"].value = 1000
    assert calls[-1] == (1000, 0.5)
    assert calc.recompute() == 500.0


def test_integer_specs_make_integer_sliders_and_floats_float_sliders():
    import ipywidgets as widgets

    calc = whatif.build_calculator(lambda n, x: n * x, {"n": (1, 10, 1, 2), "x": (0.0, 1.0, 0.1, 0.5)})
    assert isinstance(calc.sliders["n"], widgets.IntSlider)
    assert isinstance(calc.sliders["x"], widgets.FloatSlider)


@pytest.mark.parametrize("sliders, message", [
    ({}, "non-empty"),
    ({"a b": (0, 1, 1, 0)}, "identifier"),
    ({"v": (0, 1, 1)}, "expected"),
    ({"v": (1, 0, 1, 0)}, "below max"),
    ({"v": (0, 1, 0, 0)}, "step must be positive"),
    ({"v": (0, 1, 1, 5)}, "outside"),
    ({"v": (0, "1", 1, 0)}, "must be numbers"),
])
def test_bad_sliders_say_what_is_wrong(sliders, message):
    with pytest.raises(ValueError, match=message):
        whatif.check_sliders(sliders)


def test_calculator_prints_the_default_state(capsys):
    whatif.calculator(lambda volume: f"{volume * 2} US$", {"volume": (0, 100, 1, 5)}, title="bill")
    out = capsys.readouterr().out
    assert "at your measured numbers (volume=5)" in out and "10 US$" in out


def test_fn_must_be_callable():
    with pytest.raises(TypeError, match="function"):
        whatif.build_calculator(42, {"v": (0, 1, 1, 0)})
