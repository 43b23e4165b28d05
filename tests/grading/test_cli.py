"""`tradeoffs release` and `tradeoffs grade`: what `make release` and `make grade` run."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from grading_helpers import LAB, write_submission
from tradeoffs import grading
from tradeoffs.cli import app

pytestmark = pytest.mark.grading
runner = CliRunner()


def test_release_check_passes_then_fails_on_drift(tmp_path, fixture_course):
    course = tmp_path / "course"
    shutil.copytree(fixture_course, course)
    ok = runner.invoke(app, ["release", "--check", "--root", str(course)])
    assert ok.exit_code == 0 and "up to date" in ok.output
    path = course / "solutions" / LAB / f"{LAB}.ipynb"
    nb = json.loads(path.read_text())
    nb["cells"][0]["source"] = "# changed\n"
    path.write_text(json.dumps(nb))
    stale = runner.invoke(app, ["release", "--check", "--root", str(course)])
    assert stale.exit_code == 1 and "out of date: fixture_lab" in stale.output
    released = runner.invoke(app, ["release", "--root", str(course)])
    assert released.exit_code == 0 and "updated" in released.output
    assert runner.invoke(app, ["release", "--check", "--root", str(course)]).exit_code == 0


def test_grade_command_grades_and_reports(tmp_path, fixture_course, solution_nb):
    course = tmp_path / "course"
    shutil.copytree(fixture_course, course)
    folder = tmp_path / "submitted"
    write_submission(folder, "ada", solution_nb, flat=True)
    out = runner.invoke(app, ["grade", str(folder), "--root", str(course), "--workers", "1", "--no-progress",
                              "--cell-timeout", "60", "--csv", str(tmp_path / "marks.csv")])
    assert out.exit_code == 0, out.output
    assert "ada" in out.output and "graded" in out.output and "90.0 / 90" in out.output
    rows = grading.read_grades_csv(tmp_path / "marks.csv")
    assert [(r["student_id"], r["status"], r["score"]) for r in rows] == [("ada", "graded", "90")]
    assert (course / "feedback" / "ada" / LAB / f"{LAB}.html").is_file()


def test_grade_command_explains_a_missing_folder(tmp_path, fixture_course):
    out = runner.invoke(app, ["grade", str(tmp_path / "nope"), "--root", str(fixture_course)])
    assert out.exit_code == 2 and "does not exist" in out.output
