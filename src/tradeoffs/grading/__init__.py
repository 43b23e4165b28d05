"""Release, autograde, merge and validate: the kit's nbgrader pipeline, one module per stage.

The course directory is the repository: ``solutions/`` is nbgrader's source directory and ``labs/``
its release directory (see ``nbgrader_config.py`` and ``docs/instructor.md``).

* :func:`release` regenerates ``labs/`` from ``solutions/`` with nbgrader's ``GenerateAssignment``;
  :func:`stale_labs` says which released labs no longer match their solutions.
* :func:`grade` autogrades a folder of submissions (one sub-folder per student) in parallel worker
  processes. Each submission is graded in a throwaway nbgrader course of its own, its kernel runs in
  :mod:`tradeoffs.grading.sandbox`, and the scores are merged into the course gradebook and a grades CSV as
  each student finishes, so a submission that crashes, hangs or floods output costs only its own
  grade (recorded, with the reason).
* :class:`GuardedExecute` is nbgrader's ``Execute`` preprocessor made robust: sandboxed kernel, a cell
  timeout that also stops kernels which ignore interrupts, partial grades when the kernel dies, one
  output budget per notebook, and test cells that run in :mod:`tradeoffs.grading.checker` -- a fresh
  interpreter the submission never touches -- with the student's objects reached only as plain
  values (:mod:`tradeoffs.grading.wire`).
* :func:`validate_notebook` wraps nbgrader's ``Validator`` (the ``nbgrader validate`` command exits 0
  even when tests fail, so CI must use the API).

The stages, in pipeline order: ``config`` (the course, its nbgrader configuration, the grading
limits), ``release``, ``validate``, ``restore`` (deleted test cells), ``guarded`` (the sandboxed
``Execute``) with ``checker`` (the test runner), ``answers`` (its counterpart inside the kernel),
``wire`` and ``sandbox``, ``submissions``, ``worker`` (one submission in a throwaway course),
``feedback``, ``results`` (CSV and gradebook) and ``orchestrator`` (:func:`grade`).

Examples
--------
>>> from tradeoffs import grading
>>> grading.COURSE_ID
'production-ai-tradeoffs'
"""

from __future__ import annotations

from .config import (CELL_TIMEOUT, CONFIG_FILE, COURSE_ID, CSV_FIELDS, GRADEBOOK, GRADES_CSV, STARTUP_TIMEOUT,
                     STATUSES, GradeSettings, GradingError, course_labs, course_root, load_config)
from .guarded import autograde_preprocessors
from .orchestrator import grade
from .release import ReleaseResult, release, stale_labs
from .restore import restore_missing_cells
from .results import GradeResult, PartScore, csv_safe, merge_result, read_grades_csv, write_grades_csv
from .submissions import Submission, find_submissions
from .validate import ValidationReport, validate_notebook
from .worker import Job, fast_imports, run_job

__all__ = [
    "CELL_TIMEOUT", "CONFIG_FILE", "COURSE_ID", "CSV_FIELDS", "GRADEBOOK", "GRADES_CSV", "STARTUP_TIMEOUT", "STATUSES",
    "GradeResult", "GradeSettings", "GradingError", "GuardedExecute", "Job", "PartScore", "ReleaseResult",
    "Submission", "ValidationReport", "autograde_preprocessors", "course_labs", "course_root", "csv_safe",
    "fast_imports",
    "find_submissions", "grade", "load_config", "merge_result", "read_grades_csv", "release",
    "restore_missing_cells", "run_job", "stale_labs", "validate_notebook", "write_grades_csv",
]


def __getattr__(name: str):
    if name == "GuardedExecute":  # built lazily: importing nbgrader costs about a second
        from . import guarded

        return guarded.GuardedExecute
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
