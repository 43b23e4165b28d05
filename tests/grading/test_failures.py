"""A submission that hangs its grader is stopped at the job deadline; the next student is unaffected."""

from __future__ import annotations

import subprocess
import time

import psutil
import pytest

from grading_helpers import LAB, SOLUTION, make_course, submission, write_submission
from tradeoffs import grading
from tradeoffs.grading import sandbox

pytestmark = [pytest.mark.grading, pytest.mark.slow]

MARKER = "tradeoffs-hung-child-9157"


def _grading_children(before: set[int] = frozenset()) -> list[str]:
    """Command lines of this process's "tradeoffs" children, minus those in ``before`` (e.g. the
    session-scoped model server of tests/serve when both folders run in one session)."""
    return [" ".join(p.cmdline()) for p in psutil.Process().children(recursive=True)
            if p.pid not in before and "tradeoffs" in " ".join(p.cmdline())]


def test_job_deadline_stops_a_hung_submission_and_grading_goes_on(tmp_path, fixture_course, released):
    course = make_course(tmp_path / "course")
    folder = tmp_path / "submitted"
    hang = ("import subprocess, sys, time\n"
            f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(900)  # {MARKER}'])\n"
            "open('reached-the-hang', 'w').close()\n"
            "time.sleep(900)")
    write_submission(folder, "a_hung", submission(released, answers=SOLUTION, prefix={"q1_mean_cost": hang}))
    write_submission(folder, "b_fine", submission(released, answers=SOLUTION))
    settings = grading.GradeSettings(workers=1, cell_timeout=1000, job_timeout=90)
    already_running = {p.pid for p in psutil.Process().children(recursive=True)}
    start = time.monotonic()
    results = {r.student: r for r in grading.grade(folder, root=course, labs=[LAB], settings=settings,
                                                   progress=False, work_dir=tmp_path / "work")}
    assert time.monotonic() - start < 600
    # the deadline struck while the submission was hanging (not while the machine was still starting it)
    assert (tmp_path / "work" / "j0000" / "run" / "reached-the-hang").exists()
    hung, fine = results["a_hung"], results["b_fine"]
    assert hung.status == "error" and hung.score == 0 and "longer than 90 s" in hung.reason
    assert fine.status == "graded" and fine.score == 90.0
    rows = {r["student_id"]: r for r in grading.read_grades_csv(course / grading.GRADES_CSV)}
    assert rows["a_hung"]["status"] == "error" and float(rows["b_fine"]["score"]) == 90.0
    assert (course / rows["a_hung"]["feedback"]).read_text().count("not graded") == 1
    assert _grading_children(already_running) == []
    if sandbox.detect_isolation() != "limits":
        time.sleep(0.5)
        assert MARKER not in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout


def test_no_submissions_is_a_clear_error(tmp_path, fixture_course):
    (tmp_path / "empty").mkdir()
    with pytest.raises(grading.GradingError, match="no lab notebooks found"):
        grading.grade(tmp_path / "empty", root=fixture_course, progress=False)
    with pytest.raises(grading.GradingError, match="does not exist"):
        grading.grade(tmp_path / "nope", root=fixture_course, progress=False)


def test_find_submissions_layouts_and_problems(tmp_path, released):
    write_submission(tmp_path, "nested", released)
    write_submission(tmp_path, "flat", released, flat=True)
    write_submission(tmp_path, "stamped", released, timestamp="2030-01-01 00:00:00 UTC")
    (tmp_path / "renamed").mkdir()
    (tmp_path / "renamed" / "fixture_lab (1).ipynb").write_text("{}")
    found, problems = grading.find_submissions(tmp_path, [LAB])
    assert {(s.student, s.lab) for s in found} == {("nested", LAB), ("flat", LAB), ("stamped", LAB)}
    assert next(s for s in found if s.student == "stamped").timestamp == "2030-01-01 00:00:00 UTC"
    assert len(problems) == 1 and "fixture_lab (1).ipynb" in problems[0] and "not a lab notebook" in problems[0]
