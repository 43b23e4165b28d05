"""The orchestrator: :func:`grade` runs a class through worker processes and publishes each result.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import shutil
import signal
import subprocess
import sys
import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Iterable, Sequence

from . import sandbox
from .config import ALLOW_LIMITS_ONLY_ENV, CELL_TIMEOUT, GRADEBOOK, GradeSettings, GRADES_CSV, GradingError, course_labs, course_root, load_config, log
from .release import _generate_assignment
from .results import GradeResult, _atomic_write_text, _ensure_assignment, merge_result, write_grades_csv
from .submissions import Submission, find_submissions
from .worker import Job, _finish_failed, _short_reason


def _preexec_worker() -> None:  # pragma: no cover - runs in the child
    """Die with the grader: a worker orphaned by Ctrl-C must not keep grading."""
    import ctypes

    with contextlib.suppress(Exception):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        proc.wait(timeout=10)


def grade(submissions_dir: str | os.PathLike, root: str | os.PathLike | None = None,
          labs: Sequence[str] | None = None, settings: GradeSettings | None = None,
          csv_path: str | os.PathLike | None = None, progress: bool = True,
          work_dir: str | os.PathLike | None = None) -> list[GradeResult]:
    """Autograde every submission under ``submissions_dir`` in parallel; return one result each.

    Each submission is graded by its own worker process in a throwaway nbgrader course (so nbgrader,
    which has no parallel autograde, never shares a gradebook between processes) with its kernel in
    :mod:`tradeoffs.grading.sandbox`. As each one finishes, its scores are merged into the course gradebook
    (``gradebook.db``), its feedback is copied to ``feedback/<student>/<lab>/<lab>.html``, its graded
    notebook to ``autograded/<student>/<lab>/`` (nbgrader's layout: formgrader and
    ``nbgrader release_feedback`` work on them) and its row is written to the grades CSV -- all
    atomically, so results already written survive anything a later submission does.

    Parameters
    ----------
    submissions_dir : path
        One folder per student (see :func:`find_submissions`).
    root : path, optional
        The course directory (default: the kit's repository).
    labs : list of str, optional
        Only these labs (default: every lab with a solution).
    settings : GradeSettings, optional
    csv_path : path, optional
        Grades CSV (default: ``<root>/grades.csv``).
    progress : bool
        Show a progress bar.
    work_dir : path, optional
        Where throwaway courses go (default: a temporary directory, removed afterwards).

    Returns
    -------
    list of GradeResult
        Including ``status="missing"`` rows for labs a student did not submit that others did.
    """
    from tqdm.auto import tqdm

    settings = settings or GradeSettings()
    root = course_root(root)
    chosen = list(labs) if labs else course_labs(root)
    if not chosen:
        raise GradingError(f"no labs to grade: {root / 'solutions'} has no <lab>/<lab>.ipynb yet")
    submissions, problems = find_submissions(submissions_dir, chosen)
    for problem in problems:
        log.warning(problem)
    if not submissions:
        raise GradingError(f"no lab notebooks found under {submissions_dir}: " + "; ".join(problems))
    cfg = load_config(root)
    cell_timeout = settings.cell_timeout or int(cfg.Execute.get("timeout", CELL_TIMEOUT))
    db = root / GRADEBOOK
    csv_path = Path(csv_path) if csv_path else root / GRADES_CSV
    isolation = sandbox.detect_isolation() if settings.isolation == "auto" else settings.isolation
    log.info("isolation: %s", sandbox.describe_isolation(isolation))
    allowed = settings.allow_limits_only or os.environ.get(ALLOW_LIMITS_ONLY_ENV) == "1"
    if isolation == "limits" and not allowed:
        raise GradingError(
            "this machine gives the grader no namespaces, so student code would run with resource limits "
            "only: it could read and change whatever this account can (other submissions, the gradebook, "
            "your files). Grade in a container or VM where namespaces work (as root, or with unprivileged "
            "user namespaces), or accept the risk explicitly with --allow-limits-only "
            f"(GradeSettings(allow_limits_only=True), or {ALLOW_LIMITS_ONLY_ENV}=1); see docs/instructor.md, "
            "'Untrusted code'")
    own_tmp = work_dir is None
    work = Path(tempfile.mkdtemp(prefix="tg-")) if own_tmp else Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    results: list[GradeResult] = []
    try:
        templates = {}
        for lab in sorted({s.lab for s in submissions}):
            templates[lab] = work / f"template-{lab}"
            _generate_assignment(root, lab, templates[lab], templates[lab] / GRADEBOOK)
            _ensure_assignment(root, lab, db)
        hide = _safe_hide([root / d for d in ("solutions", "submitted", "autograded", "feedback")]
                          + [db, csv_path, Path(submissions_dir).resolve(), work])
        threads = max(1, (os.cpu_count() or 2) // max(1, settings.workers))
        resolved = dataclasses.replace(settings, cell_timeout=cell_timeout, isolation=isolation)
        jobs = []
        for i, sub in enumerate(submissions):
            job_dir = work / f"j{i:04d}"
            job_dir.mkdir()
            jobs.append(Job(index=i, student=sub.student, lab=sub.lab, notebook=str(sub.notebook.absolute()),
                            timestamp=sub.timestamp, root=str(root), template=str(templates[sub.lab]),
                            job_dir=str(job_dir), settings=resolved, threads=threads, hide=hide,
                            protect=[str(db), str(root / "labs"), str(root / "solutions")]))
        bar = tqdm(total=len(jobs), desc="grading", unit="notebook", disable=not progress)
        try:
            for result in _run_jobs(jobs, settings, templates, work):
                _publish(root, db, csv_path, result)
                results.append(result)
                bar.set_postfix_str(f"{result.student}/{result.lab}: {result.status} {result.score:g}", refresh=False)
                bar.update(1)
        finally:
            bar.close()
        missing = _missing_rows(submissions, chosen)
        if missing:
            write_grades_csv(csv_path, missing)
        results += missing
    finally:
        if own_tmp:
            shutil.rmtree(work, ignore_errors=True)
    return results


def _safe_hide(paths: Iterable[Path]) -> list[str]:
    """Paths to hide from student code, minus any that would hide Python or the kit themselves."""
    needed = sandbox.default_exposed_paths()
    out = []
    for path in paths:
        path = str(Path(path).resolve())
        if any(n == path or n.startswith(path.rstrip("/") + "/") for n in needed):
            log.warning("not hiding %s from student code: the kit or Python lives inside it", path)
            continue
        out.append(path)
    return out


def _missing_rows(submissions: list[Submission], labs: Sequence[str]) -> list[GradeResult]:
    students = sorted({s.student for s in submissions})
    submitted_labs = [lab for lab in labs if any(s.lab == lab for s in submissions)]
    have = {(s.student, s.lab) for s in submissions}
    stamp = _now()
    return [GradeResult(student, lab, "missing", reason="no notebook submitted", graded_at=stamp)
            for student in students for lab in submitted_labs if (student, lab) not in have]


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class _Worker:
    """One worker process and the job it is grading."""

    def __init__(self, work: Path, number: int):
        self.log_path = work / f"worker-{number}.log"
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "tradeoffs.grading.worker"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                     start_new_session=True, preexec_fn=_preexec_worker)
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.buffer = b""
        self.job: Job | None = None
        self.started = 0.0
        self.log_offset = 0

    def assign(self, job: Job) -> None:
        job_file = Path(job.job_dir) / "job.json"
        _atomic_write_text(job_file, job.to_json())
        self.job, self.started = job, time.monotonic()
        self.log.flush()
        self.log_offset = self.log_path.stat().st_size
        self.proc.stdin.write(f"{job_file}\n".encode())
        self.proc.stdin.flush()

    def finished(self) -> bool:
        """True once the worker answered for its job (reads what is available, never blocks)."""
        with contextlib.suppress(BlockingIOError, TypeError):
            chunk = self.proc.stdout.read()
            if chunk:
                self.buffer += chunk
        if b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            return line.startswith(b"done ")
        return False

    def job_log(self) -> str:
        with contextlib.suppress(OSError):
            with open(self.log_path, "rb") as fh:
                fh.seek(self.log_offset)
                return fh.read()[-20000:].decode(errors="replace")
        return ""

    def stop(self, kill: bool = False) -> None:
        if kill:
            _kill_group(self.proc)
        else:
            with contextlib.suppress(Exception):
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                _kill_group(self.proc)
        self.log.close()


def _run_jobs(jobs: list[Job], settings: GradeSettings, templates: dict[str, Path], work: Path):
    """Grade jobs with up to ``settings.workers`` worker processes; yield results as they finish.

    A worker that dies or overruns ``settings.job_timeout`` is killed with everything it started
    (its kernel sandbox dies with it) and replaced; that job is recorded as a zero with the reason.
    """
    pending = list(jobs)
    workers: list[_Worker] = []
    spawned = 0
    try:
        while pending or any(w.job for w in workers):
            for worker in workers:
                if worker.job is None and pending:
                    worker.assign(pending.pop(0))
            while pending and len(workers) < max(1, settings.workers):
                spawned += 1
                worker = _Worker(work, spawned)
                worker.assign(pending.pop(0))
                workers.append(worker)
            time.sleep(0.05)
            for worker in list(workers):
                job = worker.job
                if job is None:
                    continue
                if worker.finished():
                    worker.job = None
                    yield _collect(job, None, False, settings, templates[job.lab], worker.started, "")
                    continue
                overdue = time.monotonic() - worker.started > settings.job_timeout
                dead = worker.proc.poll() is not None
                if overdue or dead:
                    code = worker.proc.poll()
                    worker.stop(kill=True)
                    workers.remove(worker)
                    yield _collect(job, code, overdue and not dead, settings, templates[job.lab],
                                   worker.started, worker.job_log())
    finally:
        for worker in workers:
            worker.stop(kill=any(w.job for w in workers))


def _collect(job: Job, returncode: int | None, overdue: bool, settings: GradeSettings,
             template: Path, started: float, log_text: str) -> GradeResult:
    result_file = Path(job.job_dir) / "result.json"
    if result_file.exists() and not overdue:
        result = GradeResult.from_json(result_file.read_text())
    else:
        tail = _short_reason(log_text) if log_text.strip() else "no log"
        if overdue:
            reason = (f"grading took longer than {settings.job_timeout} s and was stopped "
                      f"(an endless loop that ignores interrupts, or a very slow notebook)")
        else:
            reason = f"the grader process died (exit status {returncode}): {tail}"
        result = _finish_failed(GradeResult(job.student, job.lab, "error", timestamp=job.timestamp,
                                            reason=reason), template, job.lab, started)
    result.seconds = time.monotonic() - started
    result.graded_at = _now()
    return result


def _publish(root: Path, db: Path, csv_path: Path, result: GradeResult) -> None:
    """Copy feedback and the graded notebook into the course, merge into the gradebook, update the CSV.

    The folders are copied whole (nbgrader's ``release_feedback`` needs the ``timestamp.txt`` and
    ``submission_secret.txt`` that travel with the feedback) and swapped in with a rename.
    """
    feedback_dir = root / "feedback" / result.student / result.lab
    autograded_dir = root / "autograded" / result.student / result.lab
    html = f"{result.lab}.html"
    if result.feedback and Path(result.feedback).exists():
        _replace_dir(Path(result.feedback).parent, feedback_dir)
    else:
        feedback_dir.mkdir(parents=True, exist_ok=True)
        _atomic_write_text(feedback_dir / html, _failure_feedback_html(result))
    result.feedback = str((feedback_dir / html).relative_to(root))
    if result.autograded and Path(result.autograded).exists():
        _replace_dir(Path(result.autograded).parent, autograded_dir)
        result.autograded = str((autograded_dir / f"{result.lab}.ipynb").relative_to(root))
    merge_result(db, result)
    write_grades_csv(csv_path, [result])


def _replace_dir(src: Path, dest: Path) -> None:
    """Copy the folder ``src`` to ``dest``, replacing what was there, with a final rename."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.new-"))
    shutil.copytree(src, staging, dirs_exist_ok=True, symlinks=False)
    for path in [staging, *staging.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    old = None
    if dest.exists():
        old = dest.parent / f".{dest.name}.old-{os.getpid()}-{time.monotonic_ns()}"
        os.replace(dest, old)
    os.replace(staging, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _failure_feedback_html(result: GradeResult) -> str:
    import html

    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(result.lab)}</title></head>"
            f"<body><h1>{html.escape(result.lab)}: not graded</h1><p>Student: {html.escape(result.student)}</p>"
            f"<p>Your notebook could not be graded: {html.escape(result.reason or result.status)}.</p>"
            f"<p>Score: {result.score:g} / {result.max_score:g}. Ask your instructor to look at it.</p>"
            f"</body></html>\n")
