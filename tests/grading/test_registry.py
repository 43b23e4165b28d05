"""A lab added to the registry flows through release, run and grade; an unregistered one is refused.

The fixture course registers ``fixture_lab`` in its own ``course.toml`` (tradeoffs.course), exactly as
an instructor adds a seventh lab.
"""

from __future__ import annotations

import shutil

import nbformat
import pytest
from typer.testing import CliRunner

from grading_helpers import LAB, make_course, write_submission
from tradeoffs import course, grading
from tradeoffs.cli import app

pytestmark = [pytest.mark.grading, pytest.mark.slow]


def test_a_registered_lab_is_released_run_and_graded(tmp_path, monkeypatch):
    root = make_course(tmp_path / "course")
    assert LAB in course.lab_ids(root) and course.existing_labs(root) == [LAB]
    assert [r.lab for r in grading.release(root)] == [LAB]

    monkeypatch.chdir(root)  # `tradeoffs run` defaults to the current course
    listed = CliRunner().invoke(app, ["run", "--list"])
    assert listed.exit_code == 0 and listed.output.split() == [LAB]
    ran = CliRunner().invoke(app, ["run", LAB, "--mode", "smoke", "--out", str(tmp_path / "build")])
    assert ran.exit_code == 0, ran.output
    assert (tmp_path / "build" / f"{LAB}.ipynb").is_file()

    blank = nbformat.read(root / "labs" / LAB / f"{LAB}.ipynb", as_version=4)
    write_submission(tmp_path / "submitted", "ada", blank)
    results = grading.grade(tmp_path / "submitted", root=root, progress=False)
    assert [(r.student, r.lab, r.status) for r in results] == [("ada", LAB, "graded")]


def test_an_unregistered_lab_is_refused_not_skipped(tmp_path):
    root = make_course(tmp_path / "course")
    (root / "course.toml").unlink()
    with pytest.raises(grading.GradingError, match="registry does not list: fixture_lab"):
        grading.release(root)
    result = CliRunner().invoke(app, ["run", "--list", "--root", str(root)])
    assert result.exit_code == 0 and result.output.strip() == ""  # nothing registered exists there


def test_a_kit_lab_copied_into_a_course_needs_no_course_file(tmp_path, repo):
    root = tmp_path / "course"
    shutil.copytree(repo / "solutions" / "lab2_complexity_vs_maintainability",
                    root / "solutions" / "lab2_complexity_vs_maintainability")
    assert grading.course_labs(root) == ["lab2_complexity_vs_maintainability"]
