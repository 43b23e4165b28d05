"""The lab registry: the one place that lists the course's labs, in order, with their times.

The kit's labs are listed in ``labs.toml`` beside this module. ``tradeoffs run``, ``tradeoffs release``,
``tradeoffs grade``, the notebook and grading test suites, the README's course map and
``notebooks/00_start_here.ipynb`` all read them (:data:`LABS`). A course directory may add labs of its
own in a ``course.toml`` beside its ``nbgrader_config.py``, with the same fields::

    [[lab]]
    id = "lab7_privacy_vs_utility"
    number = 7
    title = "Privacy vs utility"
    ...

(every field of :class:`Lab`); :func:`labs` then returns the kit's labs followed by those.

It also knows where a course's notebooks are: :func:`repo_root`, :func:`course_dir`,
:func:`existing_labs`, :func:`solution_notebook`, :func:`concept_notebooks`.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

COURSE_FILE = "course.toml"


@dataclass(frozen=True)
class Lab:
    """One lab of the course.

    Attributes
    ----------
    id : str
        Folder and notebook name: ``solutions/<id>/<id>.ipynb``.
    number : int
        Position in the suggested order.
    title : str
        The trade-off, as the lab's title names it.
    experiment : str
        What the learner measures, in one line.
    concept : str
        The concept notebook that goes with it (``notebooks/<concept>``), or "" if none.
    learner_minutes : int
        Time a learner spends on it, reading and writing included (the lab's intro says the same).
    compute_minutes : int
        Most minutes of compute its full run takes on the 2-core reference CPU.
    why_here : str
        Why it comes at this point of the course.
    """

    id: str
    number: int
    title: str
    experiment: str
    concept: str
    learner_minutes: int
    compute_minutes: int
    why_here: str


PREREQUISITES = (
    "Python: functions, loops, list and dict comprehensions; reading a traceback.",
    "pandas: selecting, grouping and merging DataFrames; NumPy arrays.",
    "Not assumed: deep learning, PyTorch, a GPU, cloud accounts or an API key (optional in lab 1).",
)


def read_labs(path: str | os.PathLike) -> list[Lab]:
    """The labs a TOML file lists as ``[[lab]]`` tables with every field of :class:`Lab`.

    Raises
    ------
    ValueError
        Naming the file and the entry that is wrong.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path} is not valid TOML ({exc}); fix it or remove it") from None
    names = {f.name for f in fields(Lab)}
    found = []
    for i, entry in enumerate(data.get("lab", []), start=1):
        missing, unknown = names - set(entry), set(entry) - names
        if missing or unknown:
            raise ValueError(f"{path}: lab entry {i} needs exactly the fields {sorted(names)}; "
                             f"missing {sorted(missing)}, unknown {sorted(unknown)}")
        found.append(Lab(**entry))
    return found


#: The kit's labs, in the suggested order (``labs.toml`` beside this module).
LABS: tuple[Lab, ...] = tuple(read_labs(Path(__file__).with_name("labs.toml")))


def labs(root: str | os.PathLike | None = None) -> tuple[Lab, ...]:
    """The course's labs in order: the kit's, then any a course's ``course.toml`` adds.

    Examples
    --------
    >>> [lab.number for lab in labs()]
    [1, 2, 3, 4, 5, 6]
    >>> labs()[3].id
    'lab4_throughput_vs_latency'
    """
    extra = Path(root) / COURSE_FILE if root is not None else None
    found = list(LABS) + (read_labs(extra) if extra is not None and extra.is_file() else [])
    ids = [lab.id for lab in found]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise ValueError(f"lab ids listed twice in the registry: {duplicated}; each lab id appears once")
    return tuple(found)


def lab_ids(root: str | os.PathLike | None = None) -> tuple[str, ...]:
    """The lab ids in course order.

    Examples
    --------
    >>> lab_ids()[0]
    'lab1_build_vs_buy'
    """
    return tuple(lab.id for lab in labs(root))


def get(lab_id: str, root: str | os.PathLike | None = None) -> Lab:
    """The registry entry of ``lab_id``.

    Examples
    --------
    >>> get("lab2_complexity_vs_maintainability").learner_minutes
    75
    >>> get("lab9")
    Traceback (most recent call last):
    ...
    ValueError: unknown lab 'lab9'; the labs are lab1_build_vs_buy, lab2_complexity_vs_maintainability, lab3_quantity_vs_quality, lab4_throughput_vs_latency, lab5_prompting_vs_finetuning, lab6_automation_vs_oversight
    """
    for lab in labs(root):
        if lab.id == lab_id:
            return lab
    raise ValueError(f"unknown lab {lab_id!r}; the labs are {', '.join(lab_ids(root))}")


def course_map_markdown(root: str | os.PathLike | None = None) -> str:
    """The course map as a markdown table (the README and ``00_start_here`` show exactly this).

    Examples
    --------
    >>> print(course_map_markdown().splitlines()[0])
    | # | Lab | The experiment you run | Concept notebook | Your time | Compute (full run, 2-core CPU) | Why here |
    """
    def duration(minutes: int) -> str:
        return f"{minutes / 60:g} h" if minutes >= 120 else f"{minutes} min"

    rows = ["| # | Lab | The experiment you run | Concept notebook | Your time | Compute (full run, 2-core CPU) | Why here |",
            "|---|---|---|---|---|---|---|"]
    for lab in labs(root):
        concept = f"`notebooks/{lab.concept}`" if lab.concept else "none"
        rows.append(f"| {lab.number} | **{lab.title}** (`{lab.id}`) | {lab.experiment} | {concept} | "
                    f"about {duration(lab.learner_minutes)} | at most {lab.compute_minutes} min | {lab.why_here} |")
    return "\n".join(rows)


# ============================================================================================
# Where a course's notebooks are
# ============================================================================================
def repo_root() -> Path:
    """The course repository: ``$TRADEOFFS_REPO`` or the checkout this package is installed from."""
    env = os.environ.get("TRADEOFFS_REPO")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "solutions").is_dir() and (parent / "pyproject.toml").exists():
            return parent
    return Path.cwd()


def course_dir(root: str | os.PathLike | None = None) -> Path:
    """The course directory: ``root``, else the current directory when it is a course (it has
    ``nbgrader_config.py``, as nbgrader itself expects), else the kit's repository."""
    if root is not None:
        return Path(root).resolve()
    cwd = Path.cwd()
    return cwd if (cwd / "nbgrader_config.py").is_file() else repo_root()


def existing_labs(root: Path | None = None) -> list[str]:
    """Registered lab ids (:mod:`tradeoffs.course`) whose solution notebook exists, in course order."""
    root = root or repo_root()
    return [lab for lab in lab_ids(root) if (root / "solutions" / lab / f"{lab}.ipynb").exists()]


def solution_notebook(lab: str, root: Path | None = None) -> Path:
    root = root or repo_root()
    get(lab, root)  # a clear error for an unknown lab
    path = root / "solutions" / lab / f"{lab}.ipynb"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist yet; `tradeoffs run --list` shows the labs that do")
    return path


def concept_notebooks(root: Path | None = None) -> list[Path]:
    root = root or repo_root()
    return sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))
