"""CI checks notebooks with nbgrader's Validator API (the `nbgrader validate` command exits 0 on failure)."""

from __future__ import annotations

import shutil

import pytest

from grading_helpers import LAB
from tradeoffs import grading

pytestmark = pytest.mark.grading


def test_solution_validates(fixture_course):
    report = grading.validate_notebook(fixture_course / "solutions" / LAB / f"{LAB}.ipynb", root=fixture_course)
    assert report.passed, report.summary()
    assert report.summary().endswith("all tests pass")


def test_blank_lab_fails_every_test(fixture_course):
    report = grading.validate_notebook(fixture_course / "labs" / LAB / f"{LAB}.ipynb", root=fixture_course)
    assert not report.passed
    failed_tests = [f for f in report.failed if "NotImplementedError" in f["raw_error"]]
    assert len(failed_tests) == 3
    assert "test cell(s) failed" in report.summary()


def test_edited_locked_cell_is_reported(tmp_path, fixture_course):
    import nbformat

    nb_path = tmp_path / f"{LAB}.ipynb"
    shutil.copy2(fixture_course / "labs" / LAB / "prices.csv", tmp_path / "prices.csv")
    nb = nbformat.read(fixture_course / "labs" / LAB / f"{LAB}.ipynb", as_version=4)
    for cell in nb.cells:
        if (cell.metadata.get("nbgrader") or {}).get("grade_id") == "q1_tests":
            cell.source = "pass"
    nbformat.write(nb, nb_path)
    report = grading.validate_notebook(nb_path, root=fixture_course)
    assert not report.passed and report.changed


def test_missing_notebook_is_a_clear_error(fixture_course):
    with pytest.raises(grading.GradingError, match="does not exist"):
        grading.validate_notebook(fixture_course / "nope.ipynb", root=fixture_course)
