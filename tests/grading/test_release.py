"""``make release``: labs/ is generated from solutions/ by nbgrader, and a test catches drift."""

from __future__ import annotations

import json
import shutil

import nbformat
import pytest

from grading_helpers import LAB, make_course
from tradeoffs import course, grading

pytestmark = pytest.mark.grading


def test_release_strips_solutions_hidden_tests_and_outputs(fixture_course):
    text = (fixture_course / "labs" / LAB / f"{LAB}.ipynb").read_text()
    assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text
    assert "np.percentile(np.asarray" not in text  # the solution body
    nb = nbformat.read(fixture_course / "labs" / LAB / f"{LAB}.ipynb", as_version=4)
    stubs = [c for c in nb.cells if (c.metadata.get("nbgrader") or {}).get("solution") and c.cell_type == "code"]
    assert stubs and all("raise NotImplementedError()" in c.source for c in stubs)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    assert (fixture_course / "labs" / LAB / "prices.csv").is_file()  # support files travel along
    assert not (fixture_course / "gradebook.db").exists()  # releasing does not touch the gradebook


def test_release_is_idempotent_and_detects_drift(tmp_path, fixture_course):
    course = tmp_path / "course"
    shutil.copytree(fixture_course, course)
    assert grading.stale_labs(course) == {}
    assert [r.changed for r in grading.release(course)] == [False]

    path = course / "solutions" / LAB / f"{LAB}.ipynb"
    nb = json.loads(path.read_text())
    nb["cells"][0]["source"] = "# Fixture lab, edited after the release\n"
    path.write_text(json.dumps(nb))
    stale = grading.stale_labs(course)
    assert list(stale) == [LAB] and "differs" in stale[LAB][0]

    assert [r.changed for r in grading.release(course)] == [True]
    assert grading.stale_labs(course) == {}
    assert "edited after the release" in (course / "labs" / LAB / f"{LAB}.ipynb").read_text()


def test_stale_labs_reports_missing_and_orphaned_releases(tmp_path):
    course = make_course(tmp_path / "course")
    assert "does not exist" in grading.stale_labs(course)[LAB][0]
    grading.release(course)
    (course / "labs" / "old_lab").mkdir()
    assert "has no solutions/old_lab" in grading.stale_labs(course)["old_lab"][0]


def test_release_explains_an_unknown_lab(fixture_course):
    with pytest.raises(grading.GradingError, match="does not exist; the labs with solutions are fixture_lab"):
        grading.release(fixture_course, ["no_such_lab"])


def test_repository_labs_are_up_to_date_with_solutions():
    """The kit's own labs/ must match solutions/: run `make release` after editing a solution."""
    root = course.repo_root()
    stale = grading.stale_labs(root)
    assert stale == {}, "labs/ is out of date; run `make release`:\n" + "\n".join(
        f"{lab}: {'; '.join(problems)}" for lab, problems in stale.items())
