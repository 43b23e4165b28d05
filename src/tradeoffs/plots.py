"""One consistent matplotlib style for every figure in the kit.

Conventions: axes labelled with units, a title that states the finding (not "Plot of x"), and
the hardware noted on any figure whose numbers depend on the machine.
"""

from __future__ import annotations

from pathlib import Path

from .files import atomic_file

PALETTE = ["#1b6ca8", "#e07b39", "#3a9b5c", "#c23b4e", "#7d5ba6", "#8c6d46", "#d46fb0", "#6b6b6b"]

STYLE = {
    "figure.figsize": (7.5, 4.2),
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.labelsize": 10,
    "legend.frameon": False,
    "legend.fontsize": 9,
    "font.size": 10,
}


def use_style() -> None:
    """Apply the kit's style to matplotlib globally."""
    import matplotlib as mpl
    from cycler import cycler

    mpl.rcParams.update(STYLE)
    mpl.rcParams["axes.prop_cycle"] = cycler(color=PALETTE)


def finish(ax, *, title: str, xlabel: str, ylabel: str, hardware: str | None = None, legend: bool | None = None):
    """Label an axis the kit's way and return it.

    Parameters
    ----------
    title : str
        The finding, e.g. "Batching buys 9x throughput for 3x p99 latency".
    xlabel, ylabel : str
        Include units, e.g. "batch size (requests)", "latency p99 (ms)".
    hardware : str, optional
        Printed in the corner when the numbers depend on this machine.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> fig, ax = plt.subplots(); _ = ax.plot([1, 2], [3, 4], label="a")
    >>> finish(ax, title="Up and to the right", xlabel="x (s)", ylabel="y (ms)").get_title()
    'Up and to the right'
    """
    for name, value in (("title", title), ("xlabel", xlabel), ("ylabel", ylabel)):
        if not value or not str(value).strip():
            raise ValueError(f"{name} is required: every figure in the kit is labelled")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if hardware:
        ax.annotate(f"measured on {hardware}", xy=(1.0, -0.18), xycoords="axes fraction",
                    ha="right", va="top", fontsize=7, color="#555555")
    handles, _ = ax.get_legend_handles_labels()
    if legend or (legend is None and handles):
        ax.legend()
    return ax


def save(fig, path: str | Path) -> Path:
    """Save a figure atomically (temp file + rename) and return the path."""
    with atomic_file(path) as tmp:
        fig.savefig(tmp)
    return Path(path)
