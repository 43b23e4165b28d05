"""What every notebook does first: resolve its papermill parameters into one run configuration.

Each lab and concept notebook has a ``parameters`` cell with ``MODE`` ("full" | "smoke"), ``SEED``
and ``DEVICE``, then calls :func:`setup`. Under nbgrader's autograder (``NBGRADER_EXECUTION`` set)
the mode is forced to "smoke": grading checks functions on small inputs, never the machine's speed.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from typing import Any, TypeVar

from . import models

MODES = ("full", "smoke")
T = TypeVar("T")


@dataclass(frozen=True)
class Run:
    """The resolved configuration of one notebook run."""

    mode: str
    seed: int
    device: Any
    autograding: bool

    @property
    def smoke(self) -> bool:
        return self.mode == "smoke"

    def size(self, full: T, smoke: T) -> T:
        """Pick the full-mode or the smoke-mode value of a size.

        Examples
        --------
        >>> Run("smoke", 0, "cpu", False).size(full=5000, smoke=200)
        200
        """
        return smoke if self.smoke else full

    @property
    def hardware(self) -> str:
        """A short label for figures and tables whose numbers depend on this machine."""
        import torch

        if getattr(self.device, "type", str(self.device)) == "cuda":
            return f"GPU {torch.cuda.get_device_name(self.device)}"
        cores = os.cpu_count() or 0
        cpu = platform.processor() or platform.machine()
        return f"CPU {cpu}, {cores} cores, torch {torch.__version__.split('+')[0]}"


def autograding() -> bool:
    """True when nbgrader is executing the notebook (it sets ``NBGRADER_EXECUTION``)."""
    return bool(os.environ.get("NBGRADER_EXECUTION"))


def setup(mode: str = "full", seed: int = 0, device: str = "auto", quiet: bool = False) -> Run:
    """Validate the parameters cell, seed everything, choose the device, apply the plot style.

    In an IPython kernel it also shows a ``NameError`` that follows a stopped part (see :func:`needs`)
    as one line naming that part, instead of a traceback.

    Parameters
    ----------
    mode : {"full", "smoke"}
    seed : int
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"mps"``.

    Examples
    --------
    >>> run = setup("smoke", seed=1, device="cpu", quiet=True)
    >>> run.mode, run.seed, str(run.device)
    ('smoke', 1, 'cpu')
    """
    if mode not in MODES:
        raise ValueError(f"MODE must be one of {MODES}, got {mode!r}; edit the parameters cell")
    grading = autograding()
    if grading:
        mode = "smoke"
    models.seed_everything(seed)
    dev = models.pick_device(device)
    from . import plots

    plots.use_style()
    _explain_name_errors()
    run = Run(mode=mode, seed=int(seed), device=dev, autograding=grading)
    if not quiet:
        note = " (forced by the autograder)" if grading else ""
        print(f"MODE={run.mode}{note}  SEED={run.seed}  DEVICE={dev}  [{run.hardware}]")
    return run


# ============================================================================================
# The learner's code drives the experiment: a clear stop when a part is not done yet, and the
# learner's prediction set beside what they measured.
# ============================================================================================
class PartNotDone(RuntimeError):
    """A later cell needs a graded part that the learner has not implemented yet.

    Jupyter shows only the one-line message (``_render_traceback_``), not a traceback into the
    learner's stub.
    """

    def _render_traceback_(self) -> list[str]:
        return [f"PartNotDone: {self}"]


#: Parts whose experiment cell stopped, in the order they stopped, until that cell runs through.
_STOPPED: dict[str, None] = {}


class _Needs:
    def __init__(self, part: str):
        self.part = part

    def __enter__(self) -> "_Needs":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None and issubclass(exc_type, NotImplementedError):
            _STOPPED[self.part] = None
            raise PartNotDone(f"{self.part} is not implemented yet: do it first, then rerun this cell.") from None
        if exc_type is None:
            _STOPPED.pop(self.part, None)
        return False


def _name_error_after_a_stop(shell: Any, etype: type, value: BaseException, tb: Any,
                             tb_offset: int | None = None) -> list[str] | None:
    """IPython's display of a ``NameError``: one line naming the part when a part's cell stopped before.

    A cell that only reads what a stopped experiment cell would have made (a table, a threshold)
    fails with a ``NameError``; the learner should see which part to do, not a traceback. With no
    part stopped, the usual traceback.
    """
    if not _STOPPED:
        shell.showtraceback((etype, value, tb), tb_offset=tb_offset)
        return None
    parts = " and ".join(_STOPPED)
    stb = [f"PartNotDone: {value}: it comes from a cell that stopped because {parts} is not implemented "
           "yet. Do it first, then rerun the cells from that one on."]
    # IPython calls this handler instead of showing the error; _showtraceback is what ipykernel
    # overrides to send it to the notebook (as an error output, so the cell still counts as failed)
    shell._showtraceback(etype, value, stb)
    return stb


def _explain_name_errors() -> None:
    """In an IPython kernel, show a ``NameError`` that follows a part's stop as that part's one line."""
    try:
        from IPython import get_ipython
    except ImportError:  # plain Python: nothing to install
        return
    shell = get_ipython()
    if shell is not None:
        shell.set_custom_exc((NameError,), _name_error_after_a_stop)


def needs(part: str) -> _Needs:
    """Context manager for experiment cells that run a learner's graded function.

    A ``NotImplementedError`` raised inside (the released stub of a graded part) becomes one line
    that names the part to do first; any other error passes through unchanged, so a bug in the
    learner's code still shows its traceback.

    Parameters
    ----------
    part : str
        How the lab names the part, e.g. ``"Part 2 (top_spenders)"``.

    Examples
    --------
    >>> def top_spenders(calls, k):
    ...     raise NotImplementedError()
    >>> try:
    ...     with needs("Part 2 (top_spenders)"):
    ...         top_spenders(None, 3)
    ... except PartNotDone as exc:
    ...     print(exc)
    Part 2 (top_spenders) is not implemented yet: do it first, then rerun this cell.
    """
    if not isinstance(part, str) or not part.strip():
        raise ValueError(f"needs() takes the part's name as a non-empty string, got {part!r}")
    return _Needs(part)


def compare_prediction(name: str, predicted: Any, measured: Any, unit: str = "") -> str:
    """Set the learner's prediction beside the measurement, without a verdict.

    Numbers show both values and the ratio measured / predicted; other values (a tenant, a batch
    size) show both and whether they match. A prediction left as ``None`` is reported as missing.

    Parameters
    ----------
    name : str
        What was predicted, e.g. ``"batch-64 speed-up"``.
    predicted, measured : number, str or None
    unit : str, optional
        Printed after numbers, e.g. ``"x"`` or ``"req/s"``.

    Returns
    -------
    str
        The line, also printed.

    Examples
    --------
    >>> _ = compare_prediction("batch-64 speed-up", 10, 25.0, unit="x")
    batch-64 speed-up: you predicted 10 x, you measured 25 x (2.5 times your prediction)
    >>> _ = compare_prediction("costliest tenant", "kitcube", "parcelpoint")
    costliest tenant: you predicted kitcube, you measured parcelpoint (different)
    >>> _ = compare_prediction("accuracy at 30% noise", None, 0.81)
    accuracy at 30% noise: no prediction written (set it in the prediction cell above), you measured 0.81
    """
    def fmt(value: Any) -> str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            text = f"{value:.3g}"
            return f"{text} {unit}".rstrip() if unit else text
        return str(value)

    if predicted is None:
        line = f"{name}: no prediction written (set it in the prediction cell above), you measured {fmt(measured)}"
    else:
        line = f"{name}: you predicted {fmt(predicted)}, you measured {fmt(measured)}"
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (predicted, measured))
        if numeric and predicted != 0:
            line += f" ({measured / predicted:.2g} times your prediction)"
        elif not numeric:
            same = str(predicted).strip().lower() == str(measured).strip().lower()
            line += " (same)" if same else " (different)"
    print(line)
    return line
