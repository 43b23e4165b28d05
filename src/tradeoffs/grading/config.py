"""The course: its paths, its nbgrader configuration, the grading limits, and nbgrader's
converters run quietly.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from .. import course as registry
from ..course import course_dir


COURSE_ID = "production-ai-tradeoffs"
CONFIG_FILE = "nbgrader_config.py"
GRADES_CSV = "grades.csv"
GRADEBOOK = "gradebook.db"
CSV_FIELDS = ("student_id", "lab", "status", "score", "max_auto_score", "manual_points_pending",
              "max_score", "late_penalty", "reason", "flags", "restored_cells", "seconds", "feedback",
              "graded_at")
STATUSES = ("graded", "partial", "error", "missing")
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]*$")

log = logging.getLogger("tradeoffs.grading")


class GradingError(RuntimeError):
    """A grading step failed for a reason the instructor can fix; the message says how."""


def _default_root() -> Path:
    """The current directory when it is a course, else the kit's repository (``$TRADEOFFS_REPO`` overrides)."""
    return course_dir()


def course_root(root: str | os.PathLike | None = None) -> Path:
    """The course directory: ``root``, else the current directory if it is a course, else the kit's
    repository."""
    path = Path(root).resolve() if root is not None else _default_root()
    if not (path / CONFIG_FILE).exists():
        raise GradingError(f"{path} has no {CONFIG_FILE}; run this from the kit's repository "
                           f"or pass the course directory (e.g. --root /path/to/kit)")
    return path


def course_labs(root: str | os.PathLike | None = None) -> list[str]:
    """Registered labs (:mod:`tradeoffs.course`) with a solution notebook, in course order.

    A ``solutions/<lab>/<lab>.ipynb`` that the registry does not list is an error, not a lab that
    is released and graded but skipped by ``tradeoffs run`` and the tests.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> (tmp / "solutions" / "lab2_complexity_vs_maintainability").mkdir(parents=True)
    >>> _ = (tmp / "solutions" / "lab2_complexity_vs_maintainability" / "lab2_complexity_vs_maintainability.ipynb").write_text("{}")
    >>> course_labs(tmp)
    ['lab2_complexity_vs_maintainability']
    """
    base = Path(root).resolve() if root is not None else _default_root()
    found = {p.name for p in (base / "solutions").glob("*") if (p / f"{p.name}.ipynb").is_file()}
    try:
        registered = registry.lab_ids(base)
    except ValueError as exc:
        raise GradingError(str(exc)) from None
    unknown = sorted(found - set(registered))
    if unknown:
        raise GradingError(f"solutions/ holds labs the registry does not list: {', '.join(unknown)}; add each to "
                           f"{base / registry.COURSE_FILE} (fields: see tradeoffs.course.Lab)")
    return [lab for lab in registered if lab in found]


def load_config(root: str | os.PathLike | None = None):
    """Read the course's ``nbgrader_config.py`` into a traitlets ``Config``."""
    from traitlets.config.loader import PyFileConfigLoader

    root = course_root(root)
    return PyFileConfigLoader(CONFIG_FILE, path=str(root)).load_config()


def _course_config(root: Path, course: Path, db: Path, extra: dict[str, dict[str, Any]] | None = None):
    """The course's config pointed at a throwaway course directory ``course`` with gradebook ``db``."""
    from traitlets.config import Config

    cfg = load_config(root)
    over = Config()
    over.CourseDirectory.root = str(course)
    over.CourseDirectory.db_url = f"sqlite:///{db}"
    over.CourseDirectory.course_id = COURSE_ID
    over.CourseDirectory.source_directory = "source"
    over.CourseDirectory.release_directory = "release"
    for section, values in (extra or {}).items():
        for key, value in values.items():
            setattr(over[section], key, value)
    cfg.merge(over)
    return cfg


def _coursedir(cfg, assignment: str = "", student: str = "*"):
    from nbgrader.coursedir import CourseDirectory

    cd = CourseDirectory(config=cfg)
    cd.assignment_id = assignment
    cd.student_id = student
    return cd


@contextlib.contextmanager
def _captured_nbgrader_log() -> Iterable[io.StringIO]:
    """Collect what nbgrader logs (it logs through traitlets' logger) into a buffer."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("[%(levelname)s] %(message)s"))
    loggers = [logging.getLogger("traitlets"), logging.getLogger("NbGraderAPI")]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
    try:
        yield buffer
    finally:
        for lg in loggers:
            lg.removeHandler(handler)


def _ensure_nbgrader_tools() -> None:
    """Make nbgrader's gradebook creation work and fast.

    Every time nbgrader creates a gradebook it runs the ``alembic`` command by name (a fresh Python
    process: seconds) just to read the schema's head revision. That fails when the environment was
    not activated (``make grade`` does not activate it) and dominates the cost of a throwaway course.
    Put the environment's ``bin`` on ``PATH``, and answer the question once per process through
    alembic's own API (same answer: ``tests/grading/test_pipeline_internals.py`` checks it).
    """
    bindir = os.path.dirname(sys.executable)
    path = os.environ.get("PATH", "")
    if bindir not in path.split(os.pathsep):
        os.environ["PATH"] = bindir + (os.pathsep + path if path else "")
    import nbgrader.api as nbapi

    if getattr(nbapi.get_alembic_version, "_tradeoffs_cached", False):
        return
    original = nbapi.get_alembic_version
    head: list[str] = []

    def get_alembic_version() -> str:
        if not head:
            try:
                from alembic.config import Config as AlembicConfig
                from alembic.script import ScriptDirectory
                from nbgrader.dbutil import _temp_alembic_ini

                with _temp_alembic_ini("sqlite:////tmp/gradebook.db") as ini:
                    head.append(ScriptDirectory.from_config(AlembicConfig(ini)).get_current_head())
            except Exception:  # fall back to nbgrader's own way
                head.append(original())
        return head[0]

    get_alembic_version._tradeoffs_cached = True  # type: ignore[attr-defined]
    get_alembic_version._original = original  # type: ignore[attr-defined]
    nbapi.get_alembic_version = get_alembic_version


def _run_converter(converter) -> str:
    """Start an nbgrader converter; raise :class:`GradingError` with its log when it fails."""
    from nbgrader.converters.base import NbGraderException

    _ensure_nbgrader_tools()
    with _captured_nbgrader_log() as buffer:
        try:
            converter.start()
        except NbGraderException as exc:
            raise GradingError(f"nbgrader {type(converter).__name__} failed: {exc}\n{buffer.getvalue()}") from exc
    return buffer.getvalue()


# ============================================================================================
# The grading limits: written once here, read by `tradeoffs grade`, nbgrader_config.py and
# GuardedExecute's defaults.
# ============================================================================================
ALLOW_LIMITS_ONLY_ENV = "TRADEOFFS_ALLOW_LIMITS_ONLY"  # "1": the explicit opt-in, as --allow-limits-only
CELL_TIMEOUT = 300  # seconds per cell: labs do real work (model loads), nbgrader's 30 s is too short
STARTUP_TIMEOUT = 120  # seconds for a sandboxed kernel to start on a busy machine


@dataclass
class GradeSettings:
    """Knobs and limits of :func:`~tradeoffs.grading.grade`; the defaults suit the kit's labs on a
    2-core laptop.

    Attributes
    ----------
    workers : int
        Parallel grading processes (one kernel each).
    cell_timeout : int or None
        Seconds per cell; None: the course's ``Execute.timeout`` (``nbgrader_config.py``, which sets
        :data:`CELL_TIMEOUT`).
    job_timeout : int
        Seconds a whole submission may take before it is stopped.
    interrupt_grace : int
        Seconds a timed-out cell gets to stop after an interrupt.
    cpu_seconds, memory_mb : int
        CPU-time and memory limits of the kernel.
    isolation : str
        ``"auto"``, ``"root"``, ``"userns"`` or ``"limits"`` (see :mod:`tradeoffs.grading.sandbox`).
    allow_limits_only : bool
        Grade even when the strongest isolation available is ``"limits"`` (resource limits only:
        student code can then read and change whatever the grading account can). Off by default:
        :func:`~tradeoffs.grading.grade` refuses instead.
    max_output_chars : int
        Output kept per graded notebook, every kind counted; the rest is dropped and flagged.

    Examples
    --------
    >>> GradeSettings().cpu_seconds, GradeSettings(workers=4).workers
    (900, 4)
    """

    workers: int = 2
    cell_timeout: int | None = None
    job_timeout: int = 1200
    interrupt_grace: int = 10
    cpu_seconds: int = 900
    memory_mb: int = 6144
    isolation: str = "auto"
    allow_limits_only: bool = False
    max_output_chars: int = 2_000_000
