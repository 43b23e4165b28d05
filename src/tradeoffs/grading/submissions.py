"""Finding the submissions in a folder: one sub-folder per student.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .config import GradingError


@dataclass
class Submission:
    """One student's notebook for one lab, as found in the submissions folder."""

    student: str
    lab: str
    notebook: Path
    timestamp: str | None = None

    @property
    def directory(self) -> Path:
        return self.notebook.parent


def find_submissions(submissions_dir: str | os.PathLike, labs: Sequence[str]) -> tuple[list[Submission], list[str]]:
    """Find every ``(student, lab)`` notebook under ``submissions_dir``.

    Two layouts are recognised, per student folder:

    * ``<student>/<lab>/<lab>.ipynb`` -- nbgrader's ``submitted/`` layout (``nbgrader collect``,
      ``nbgrader zip_collect``), with an optional ``timestamp.txt`` beside the notebook;
    * ``<student>/<lab>.ipynb`` -- a flat folder per student, as many LMS exports give.

    Returns
    -------
    submissions : list of Submission
    problems : list of str
        Files and folders that were skipped, and why.
    """
    base = Path(submissions_dir)
    if not base.is_dir():
        raise GradingError(f"submissions folder {base} does not exist; it should contain one folder per "
                           f"student (see docs/instructor.md, 'Collect')")
    found, problems = [], []
    for student_dir in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
        student = student_dir.name
        for lab in labs:
            nested, flat = student_dir / lab / f"{lab}.ipynb", student_dir / f"{lab}.ipynb"
            notebook = nested if nested.is_file() else flat if flat.is_file() else None
            if notebook is None:
                continue
            stamp = notebook.parent / "timestamp.txt"
            found.append(Submission(student, lab, notebook,
                                    stamp.read_text().strip() if stamp.is_file() else None))
        for item in sorted(student_dir.rglob("*.ipynb")):
            if ".ipynb_checkpoints" in item.parts:
                continue
            if not any(s.notebook == item for s in found if s.student == student):
                problems.append(f"{item}: not a lab notebook name ({', '.join(f'{l}.ipynb' for l in labs)}); skipped")
    if not found and not problems:
        problems.append(f"{base} contains no student folders with lab notebooks")
    return found, problems
