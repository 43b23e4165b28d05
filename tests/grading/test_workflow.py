"""The instructor's workflow from docs/instructor.md, command for command, on the fixture lab.

Route A (JupyterHub exchange): release -> student fetches and submits -> collect -> grade ->
release feedback -> student fetches feedback -> export.
Route B (LMS download): zip -> nbgrader zip_collect -> grade -> export.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from grading_helpers import LAB, make_course
from tradeoffs import grading

pytestmark = [pytest.mark.grading, pytest.mark.slow]

BIN = Path(sys.executable).parent


def sh(*args: str, cwd: Path, exchange: Path | None = None) -> str:
    """Run a documented command exactly as an instructor would (the kit's environment on PATH)."""
    cmd = list(args)
    if exchange is not None:
        cmd.append(f"--Exchange.root={exchange}")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout + out.stderr


def export(course: Path) -> dict[str, dict[str, str]]:
    sh("nbgrader", "export", "--to", "gradebook-export.csv", cwd=course)
    with open(course / "gradebook-export.csv", newline="") as fh:
        return {row["student_id"]: row for row in csv.DictReader(fh)}


def test_jupyterhub_exchange_route(tmp_path):
    course = make_course(tmp_path / "course")
    exchange = tmp_path / "exchange"
    exchange.mkdir()
    exchange.chmod(0o777)
    student_home = tmp_path / "home"
    student_home.mkdir()

    sh("tradeoffs", "release", cwd=course)
    sh("nbgrader", "release_assignment", LAB, cwd=course, exchange=exchange)
    # the student's side
    sh("nbgrader", "fetch_assignment", LAB, "--course", grading.COURSE_ID, cwd=student_home, exchange=exchange)
    fetched = student_home / LAB / f"{LAB}.ipynb"
    solution = course / "solutions" / LAB / f"{LAB}.ipynb"
    shutil.copyfile(solution, fetched)  # a diligent student: their answers are the instructor's
    sh("nbgrader", "submit", LAB, "--course", grading.COURSE_ID, cwd=student_home, exchange=exchange)
    # back to the instructor
    sh("nbgrader", "collect", LAB, cwd=course, exchange=exchange)
    collected = list((course / "submitted").glob(f"*/{LAB}/{LAB}.ipynb"))
    assert len(collected) == 1
    student = collected[0].parent.parent.name
    out = sh("tradeoffs", "grade", "submitted", "--workers", "2", "--no-progress", cwd=course)
    assert "graded" in out and "90.0 / 90" in out
    sh("nbgrader", "release_feedback", LAB, cwd=course, exchange=exchange)
    sh("nbgrader", "fetch_feedback", LAB, "--course", grading.COURSE_ID, cwd=student_home, exchange=exchange)
    feedback = list((student_home / LAB / "feedback").rglob(f"{LAB}.html"))
    assert feedback and "mean_cost" in feedback[0].read_text()
    row = export(course)[student]
    assert float(row["raw_score"]) == 90.0 and float(row["max_score"]) == 100.0


def test_lms_zip_route(tmp_path):
    course = make_course(tmp_path / "course")
    sh("tradeoffs", "release", cwd=course)
    archive = course / "downloaded" / LAB / "archive"
    archive.mkdir(parents=True)
    with zipfile.ZipFile(archive / "submissions.zip", "w") as zf:  # names as Canvas writes them
        zf.write(course / "solutions" / LAB / f"{LAB}.ipynb", f"adalovelace_1001_5001_{LAB}.ipynb")
        zf.write(course / "labs" / LAB / f"{LAB}.ipynb", f"bobsmith_LATE_1002_5002_{LAB}-1.ipynb")
    sh("nbgrader", "zip_collect", LAB, cwd=course)
    assert (course / "submitted" / "adalovelace" / LAB / f"{LAB}.ipynb").is_file()
    assert (course / "submitted" / "bobsmith" / LAB / f"{LAB}.ipynb").is_file()
    # plain nbgrader works too, with the kit's sandboxed GuardedExecute from nbgrader_config.py
    sh("nbgrader", "generate_assignment", LAB, "--force", cwd=course)  # records the lab in gradebook.db
    assert grading.stale_labs(course) == {}  # ... and writes the very same labs/ as `tradeoffs release`
    sh("nbgrader", "autograde", LAB, "--student", "adalovelace", cwd=course)
    sh("nbgrader", "export", "--to", "first-pass.csv", cwd=course)
    with open(course / "first-pass.csv", newline="") as fh:
        assert [float(r["raw_score"]) for r in csv.DictReader(fh) if r["student_id"] == "adalovelace"] == [90.0]
    sh("tradeoffs", "grade", "submitted", "--workers", "2", "--no-progress", cwd=course)
    html = course / "feedback" / "adalovelace" / LAB / f"{LAB}.html"
    html.unlink()
    sh("nbgrader", "generate_feedback", LAB, "--force", cwd=course)  # after manual grading
    assert html.is_file()
    rows = export(course)
    assert float(rows["adalovelace"]["raw_score"]) == 90.0
    assert float(rows["bobsmith"]["raw_score"]) == 0.0
    assert (course / "feedback" / "adalovelace" / LAB / f"{LAB}.html").is_file()
    assert {r["student_id"] for r in grading.read_grades_csv(course / "grades.csv")} == {"adalovelace", "bobsmith"}
