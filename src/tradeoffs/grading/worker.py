"""The worker: grade one submission in one throwaway course (a long-lived process per worker).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .config import GradeSettings, COURSE_ID, GRADEBOOK, GradingError, _course_config, _coursedir, _run_converter
from .feedback import feedback_config
from .guarded import autograde_preprocessors
from .restore import restore_missing_cells
from .results import GradeResult, PartScore, _atomic_write_text


@dataclass
class Job:
    """Everything a worker process needs to grade one submission."""

    index: int
    student: str
    lab: str
    notebook: str
    timestamp: str | None
    root: str
    template: str
    job_dir: str
    settings: GradeSettings  # cell_timeout and isolation already resolved by grade()
    threads: int
    hide: list[str]
    protect: list[str]

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "Job":
        data = json.loads(text)
        data["settings"] = GradeSettings(**data["settings"])
        return cls(**data)

    @property
    def uid(self) -> int:
        """The throwaway uid this job's kernel runs as (when grading as root)."""
        from .sandbox import job_uid

        return job_uid(self.index)

    @property
    def internal_id(self) -> str:
        """The student id inside the throwaway course (safe for paths and nbgrader's regexes)."""
        return f"s{self.index:04d}"


def run_job(job: Job) -> GradeResult:
    """Grade one submission (runs in a worker process; see :func:`grade`)."""
    import nbformat
    from nbgrader.api import Gradebook
    from nbgrader.converters import Autograde, GenerateFeedback

    start = time.perf_counter()
    root, template, job_dir = Path(job.root), Path(job.template), Path(job.job_dir)
    course = job_dir / "course"
    sid = job.internal_id
    result = GradeResult(student=job.student, lab=job.lab, status="error", timestamp=job.timestamp)
    shutil.copytree(template / "source", course / "source")
    shutil.copy2(template / GRADEBOOK, course / GRADEBOOK)
    submitted = course / "submitted" / sid / job.lab
    submitted.mkdir(parents=True)
    src = Path(job.notebook)
    refused = _refusal(job, src)
    if refused:
        result.reason = refused
        return _finish_failed(result, template, job.lab, start)
    skipped = _copy_submission(src, job.lab, submitted)
    if skipped:
        result.flags.append(f"files not copied: {', '.join(skipped)}")
    if job.timestamp:
        from nbgrader.utils import parse_utc

        try:
            parse_utc(job.timestamp)
            (submitted / "timestamp.txt").write_text(job.timestamp)
        except Exception:  # nbgrader would fail the whole submission on it
            (submitted / "timestamp.txt").unlink(missing_ok=True)
            result.timestamp = None
            result.flags.append(f"timestamp.txt unreadable, ignored: {job.timestamp[:60]!r}")
    target = submitted / f"{job.lab}.ipynb"
    try:
        nb = nbformat.read(target, as_version=4)
    except Exception as exc:  # not JSON, not a notebook
        result.reason = f"the notebook could not be read ({type(exc).__name__}: {str(exc)[:200]})"
        return _finish_failed(result, template, job.lab, start)
    released = nbformat.read(template / "release" / job.lab / f"{job.lab}.ipynb", as_version=4)
    result.restored_cells = restore_missing_cells(nb, released)
    nbformat.write(nb, target)

    report_path = job_dir / "execute.json"
    cfg = _course_config(root, course, course / GRADEBOOK, extra={
        "GuardedExecute": {
            "timeout": job.settings.cell_timeout, "interrupt_grace": job.settings.interrupt_grace,
            "cpu_seconds": job.settings.cpu_seconds, "memory_mb": job.settings.memory_mb, "threads": job.threads,
            "isolation": job.settings.isolation, "workdir": str(job_dir / "run"), "report_path": str(report_path),
            "hide": job.hide, "protect": job.protect, "uid": job.uid, "max_output_chars": job.settings.max_output_chars,
            "expose": [str(root)],
        },
        "Autograde": {"autograde_preprocessors": autograde_preprocessors(), "create_student": True},
        "OverwriteCells": {"add_missing_cells": True},
        **feedback_config(),
    })
    coursedir = _coursedir(cfg, job.lab, sid)
    result.phases["prepare"] = time.perf_counter() - start
    try:
        autograde = Autograde(coursedir=coursedir, config=cfg)
        autograde.force = True
        autograde.create_student = True
        _run_converter(autograde)
    except GradingError as exc:
        result.reason = _short_reason(str(exc))
        return _finish_failed(result, template, job.lab, start)
    result.phases["autograde"] = time.perf_counter() - start - result.phases["prepare"]
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    result.phases.update({f"kernel_{k}": v for k, v in report.get("seconds", {}).items()})
    try:
        mark = time.perf_counter()
        feedback = GenerateFeedback(coursedir=_coursedir(cfg, job.lab, sid), config=cfg)
        feedback.force = True
        _run_converter(feedback)
        result.feedback = str(course / "feedback" / sid / job.lab / f"{job.lab}.html")
        result.phases["feedback"] = time.perf_counter() - mark
    except GradingError as exc:
        result.flags.append(f"feedback not generated: {_short_reason(str(exc))}")
    result.autograded = str(course / "autograded" / sid / job.lab / f"{job.lab}.ipynb")
    with Gradebook(f"sqlite:///{course / GRADEBOOK}", COURSE_ID) as gb:
        submission = gb.find_submission(job.lab, sid)
        for notebook in submission.notebooks:
            result.late_penalty += float(notebook.late_submission_penalty or 0)
            for grade in notebook.grades:
                autograded = grade.cell.cell_type == "code"
                result.parts.append(PartScore(grade.name, grade.auto_score, float(grade.max_score), autograded))
    _summarise(result)
    result.status = "partial" if report.get("kernel") == "stopped" else "graded"
    result.reason = report.get("reason", "")
    if report.get("timeouts"):
        result.flags.append(f"timed out: {', '.join(report['timeouts'])}")
    if report.get("truncated"):
        result.flags.append(f"output budget reached, output dropped in: {', '.join(report['truncated'])}")
    if result.restored_cells:
        result.flags.append(f"restored deleted cells: {', '.join(result.restored_cells)}")
    result.seconds = time.perf_counter() - start
    return result


MAX_SUBMITTED_FILE = 50 << 20
STUDENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}")


def _refusal(job: Job, notebook: Path) -> str:
    """Why a submission is not graded at all (an unsafe id or a symbolic link), or ``""``."""
    if not STUDENT_ID.fullmatch(job.student):
        return (f"student id {job.student[:60]!r} refused: use letters, digits and . _ @ + - only, starting "
                f"with a letter or digit (rename the submission folder)")
    folder = notebook.parent if notebook.parent.name == job.lab else None  # nbgrader's layout
    chain = [notebook, notebook.parent] + ([notebook.parent.parent] if folder else [])
    for path in chain:  # the notebook, its lab folder, the student's folder
        if path.is_symlink():
            return f"{path.name} is a symbolic link: submissions must be plain files and folders"
    if folder is not None:
        for path in folder.rglob("*"):
            if path.is_symlink():
                return (f"{path.relative_to(folder)} is a symbolic link: submissions must be plain files "
                        f"and folders")
    return ""


def _copy_submission(notebook: Path, lab: str, dest: Path) -> list[str]:
    """Copy a submission into the throwaway course; return what was skipped and why.

    In nbgrader's layout (``<student>/<lab>/``) files beside the notebook come along (a student may
    submit a helper module); in a flat student folder only the notebook does. Symbolic links and
    files over 50 MiB never do.
    """
    skipped = []
    items = list(notebook.parent.iterdir()) if notebook.parent.name == lab else [notebook]
    for item in items:
        if item.name in (".ipynb_checkpoints", "__pycache__"):
            continue
        if item.is_symlink():
            skipped.append(f"{item.name} (symbolic link)")
        elif item.is_dir():
            shutil.copytree(item, dest / item.name, symlinks=True,
                            ignore=lambda d, names: [n for n in names if os.path.islink(os.path.join(d, n))])
        elif item.stat().st_size > MAX_SUBMITTED_FILE:
            skipped.append(f"{item.name} (larger than 50 MiB)")
        elif item.suffix != ".ipynb" or item == notebook:
            shutil.copy2(item, dest / item.name)
    return skipped


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b.*")


def _short_reason(text: str) -> str:
    """The most telling line of a log: the last exception raised, else the last error message."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    exceptions = [ln for ln in lines if _EXCEPTION_LINE.match(ln)]
    if exceptions:
        return exceptions[-1][:500]
    errors = [ln for ln in lines if ln.startswith("[ERROR]") and "Please see" not in ln]
    return (errors[-1] if errors else lines[-1] if lines else text)[:500]


def _template_parts(template: Path, lab: str) -> list[PartScore]:
    """Every graded cell of ``lab`` with no score (for submissions that could not be graded)."""
    from nbgrader.api import Gradebook

    parts = []
    with Gradebook(f"sqlite:///{template / GRADEBOOK}", COURSE_ID) as gb:
        for notebook in gb.find_assignment(lab).notebooks:
            for cell in notebook.grade_cells:
                autograded = cell.cell_type == "code"
                parts.append(PartScore(cell.name, 0.0 if autograded else None, float(cell.max_score), autograded))
    return parts


def _summarise(result: GradeResult) -> None:
    result.max_score = sum(p.max_score for p in result.parts)
    result.max_auto_score = sum(p.max_score for p in result.parts if p.autograded)
    result.score = sum(p.score or 0.0 for p in result.parts if p.autograded)
    result.manual_points_pending = sum(p.max_score for p in result.parts if not p.autograded and p.score is None)


def _finish_failed(result: GradeResult, template: Path, lab: str, start: float) -> GradeResult:
    result.status = "error"
    with contextlib.suppress(Exception):
        result.parts = _template_parts(template, lab)
    _summarise(result)
    result.seconds = time.perf_counter() - start
    return result


def _cpu_seconds(children: bool = False) -> float:
    """CPU time of this process (and, with ``children``, of every child it has reaped)."""
    import resource

    use = resource.getrusage(resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


def _grade_job_file(job_file: str) -> None:
    """Grade the job described in ``job_file``; write ``result.json`` beside it atomically."""
    job = Job.from_json(Path(job_file).read_text())
    own, reaped = _cpu_seconds(), _cpu_seconds(children=True)
    try:
        result = run_job(job)
        # CPU seconds of grading, worker and kernel (as the kernel measured itself and its children;
        # else what the worker reaped): on a shared machine, the better estimate of the wall time an
        # idle one would need.
        kernel = result.phases.get("kernel_cpu", _cpu_seconds(children=True) - reaped)
        result.phases["cpu"] = _cpu_seconds() - own + kernel
    except BaseException as exc:  # record it; the parent turns a missing result into a zero anyway
        import traceback

        traceback.print_exc()
        result = _finish_failed(GradeResult(job.student, job.lab, "error", timestamp=job.timestamp,
                                            reason=f"grader error: {type(exc).__name__}: {exc}"[:500]),
                                Path(job.template), job.lab, time.perf_counter())
    _atomic_write_text(Path(job.job_dir) / "result.json", result.to_json())


def _worker_main() -> int:
    """A long-lived worker: read job files from stdin, one per line; answer ``done`` on stdout.

    Imports (nbgrader, nbconvert) cost seconds, so a worker grades many submissions; each one still
    runs in its own throwaway course with its own sandboxed kernel. The protocol channel is a private
    copy of stdout: anything else that prints goes to stderr (the worker's log).
    """
    import warnings

    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s [%(levelname)s] %(message)s", stream=sys.stderr)
    warnings.filterwarnings("ignore", module="nbgrader")  # SQLAlchemy chatter inside nbgrader's gradebook
    warnings.filterwarnings("ignore", message=".*not in session.*")
    while line := sys.stdin.readline():
        job_file = line.strip()
        if not job_file:
            continue
        sys.stderr.write(f"=== job {job_file}\n")
        _grade_job_file(job_file)
        protocol.write(f"done {job_file}\n")
    return 0


def fast_imports() -> None:
    """jsonschema (imported by nbformat) compiles an RFC 3987 grammar at import when the optional
    ``rfc3987_syntax`` package is installed: seconds per process, for a URI format nbformat's schema
    never uses. Workers skip it."""
    sys.modules.setdefault("rfc3987_syntax", None)


if __name__ == "__main__":  # pragma: no cover - worker processes (`tradeoffs grade` starts them)
    fast_imports()
    sys.exit(_worker_main())
