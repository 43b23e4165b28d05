"""Fixtures for the grading-pipeline tests: a released copy of the fixture course.

Tests copy the fixture lab into a throwaway course directory together with the repository's real
``nbgrader_config.py`` (see grading_helpers.py).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from grading_helpers import LAB, make_course
from tradeoffs import grading

collect_ignore = ["fixtures", "lab_answers"]


@pytest.fixture(autouse=True)
def _limits_only_where_nothing_better(monkeypatch):
    """On a machine without namespaces (macOS, locked-down kernels) the pipeline tests still run,
    with the explicit opt-in an instructor would give; where namespaces work it is never set (and
    tests/grading/test_sandbox.py fails if the grader would not use them)."""
    from tradeoffs.grading import config, sandbox

    if sandbox.detect_isolation() == "limits":
        monkeypatch.setenv(config.ALLOW_LIMITS_ONLY_ENV, "1")


@pytest.fixture(scope="session")
def fixture_course(tmp_path_factory) -> Path:
    """A released fixture course (read-only for tests: copy it before changing anything)."""
    course = make_course(tmp_path_factory.mktemp("fixture-course"))
    grading.release(course)
    return course


@pytest.fixture(scope="session")
def released(fixture_course):
    return nbformat.read(fixture_course / "labs" / LAB / f"{LAB}.ipynb", as_version=4)


@pytest.fixture(scope="session")
def solution_nb(fixture_course):
    return nbformat.read(fixture_course / "solutions" / LAB / f"{LAB}.ipynb", as_version=4)
