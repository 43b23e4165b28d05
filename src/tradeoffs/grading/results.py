"""Results: the score of each part, the grades CSV, and the merge into the course gradebook.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import tempfile
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

from ..files import atomic_write
from .config import COURSE_ID, CSV_FIELDS, _ensure_nbgrader_tools
from .release import _generate_assignment


@dataclass
class PartScore:
    """The score of one graded cell."""

    grade_id: str
    score: float | None
    max_score: float
    autograded: bool


@dataclass
class GradeResult:
    """The outcome of grading one student's lab."""

    student: str
    lab: str
    status: str
    score: float = 0.0
    max_auto_score: float = 0.0
    manual_points_pending: float = 0.0
    max_score: float = 0.0
    late_penalty: float = 0.0
    reason: str = ""
    flags: list[str] = field(default_factory=list)
    restored_cells: list[str] = field(default_factory=list)
    parts: list[PartScore] = field(default_factory=list)
    seconds: float = 0.0
    feedback: str = ""
    autograded: str = ""
    timestamp: str | None = None
    graded_at: str = ""
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def full_marks(self) -> bool:
        """Every autograded part scored its maximum."""
        return self.status == "graded" and self.max_auto_score > 0 and self.score >= self.max_auto_score - 1e-9

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> "GradeResult":
        data = json.loads(text)
        data["parts"] = [PartScore(**p) for p in data.get("parts", [])]
        return cls(**data)

    def csv_row(self) -> dict[str, str]:
        return {
            "student_id": self.student, "lab": self.lab, "status": self.status,
            "score": f"{self.score:g}", "max_auto_score": f"{self.max_auto_score:g}",
            "manual_points_pending": f"{self.manual_points_pending:g}", "max_score": f"{self.max_score:g}",
            "late_penalty": f"{self.late_penalty:g}", "reason": self.reason, "flags": "; ".join(self.flags),
            "restored_cells": " ".join(self.restored_cells), "seconds": f"{self.seconds:.1f}",
            "feedback": self.feedback, "graded_at": self.graded_at,
        }


def _atomic_write_text(path: Path, text: str) -> None:
    """Grading's files (grades, job files, reports) are written all at once and readable by the grader only."""
    atomic_write(path, text, mode=0o600)


def read_grades_csv(path: str | os.PathLike) -> list[dict[str, str]]:
    """Rows of a grades CSV written by :func:`grade` (empty when it does not exist)."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def csv_safe(text: str) -> str:
    """A CSV cell a spreadsheet will not run: text that starts like a formula gets a leading ``'``.

    OWASP's rule for CSV injection (``=``, ``+``, ``-``, ``@``, tab, carriage return); numbers stay.

    Examples
    --------
    >>> csv_safe("=2+3"), csv_safe("-1.5"), csv_safe("alice")
    ("'=2+3", '-1.5', 'alice')
    """
    text = str(text)
    if text.startswith(_FORMULA_START) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def write_grades_csv(path: str | os.PathLike, results: Iterable[GradeResult]) -> None:
    """Merge ``results`` into the CSV at ``path`` (one row per student and lab) atomically.

    Every cell goes through :func:`csv_safe`: a student id or a reason shaped like a formula is
    written as text.
    """
    path = Path(path)
    rows = {(r["student_id"], r["lab"]): r for r in read_grades_csv(path)}
    for result in results:
        row = {k: csv_safe(v) for k, v in result.csv_row().items()}
        rows[(row["student_id"], row["lab"])] = row
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for key in sorted(rows):
        writer.writerow(rows[key])
    _atomic_write_text(path, out.getvalue())


# ============================================================================================
# The gradebook
# ============================================================================================
def _ensure_assignment(root: Path, lab: str, db: Path) -> None:
    """Make sure the course gradebook knows ``lab`` (its notebook and cells), as generated now."""
    with tempfile.TemporaryDirectory(prefix="tradeoffs-gb-") as tmp:
        _generate_assignment(root, lab, Path(tmp), db)


def merge_result(db: str | os.PathLike, result: GradeResult) -> None:
    """Write one student's autograded scores into the course gradebook.

    Manual scores already entered (formgrader) are kept; ``needs_manual_grade`` follows nbgrader's
    own rule. A submission that could not be graded gets zero on its autograded cells and is flagged.
    """
    from nbgrader.api import Gradebook, MissingEntry

    _ensure_nbgrader_tools()
    with warnings.catch_warnings(), Gradebook(f"sqlite:///{db}", COURSE_ID) as gb:
        warnings.simplefilter("ignore")  # SQLAlchemy chatter from inside nbgrader's gradebook
        gb.update_or_create_student(result.student)
        kwargs = {}
        if result.timestamp:
            from nbgrader.utils import parse_utc

            with contextlib.suppress(Exception):
                kwargs["timestamp"] = parse_utc(result.timestamp)
        submission = gb.update_or_create_submission(result.lab, result.student, **kwargs)
        scores = {p.grade_id: p for p in result.parts}
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                part = scores.get(grade.name)
                if part is not None:
                    grade.auto_score = part.score
                elif grade.cell.cell_type == "code":
                    grade.auto_score = 0.0  # not graded (crash before this cell, or unreadable)
                grade.needs_manual_grade = grade.manual_score is not None or grade.auto_score is None
            notebook.flagged = bool(result.flags) or result.status in ("error", "partial")
            with contextlib.suppress(MissingEntry, AttributeError):
                notebook.late_submission_penalty = result.late_penalty or None
        gb.db.commit()
