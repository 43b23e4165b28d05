"""nbgrader_config.py: the settings docs/instructor.md promises, and the defaults they replace."""

from __future__ import annotations

import re

import pytest

from tradeoffs import course, grading

pytestmark = pytest.mark.grading


@pytest.fixture(scope="module")
def cfg():
    return grading.load_config(course.repo_root())


def test_course_layout(cfg):
    root = str(course.repo_root())
    assert cfg.CourseDirectory.root == root
    assert cfg.CourseDirectory.source_directory == "solutions"
    assert cfg.CourseDirectory.release_directory == "labs"
    assert cfg.CourseDirectory.db_url == f"sqlite:///{root}/gradebook.db"
    assert cfg.CourseDirectory.course_id == grading.COURSE_ID


def test_generous_cell_timeout_and_output_limits(cfg):
    assert cfg.Execute.timeout >= 120  # nbgrader's default of 30 s is too short for real labs
    assert 0 < cfg.LimitOutput.max_lines <= 1000
    assert 0 < cfg.LimitOutput.max_traceback <= 100


@pytest.mark.parametrize("stderr, dropped", [
    ("/x/site-packages/sklearn/base.py:12: UserWarning: X has feature names\n  warnings.warn(\n", True),
    ("FutureWarning: `foo` is deprecated\n", True),
    ("100%|██████████| 272/272 [00:00<00:00, 5678.30it/s]\n", True),
    ("Loading weights:   0%|          | 0/272 [00:00<?, ?it/s]", True),
    ("[INFO] model loaded\n", True),
    ("Traceback (most recent call last):\n  AssertionError\n", False),
    ("something went wrong\n", False),
])
def test_ignore_pattern_drops_warnings_and_progress_bars_only(cfg, stderr, dropped):
    assert cfg.IgnorePattern.enabled is True
    assert bool(re.search(cfg.IgnorePattern.pattern, stderr)) is dropped  # exactly as nbgrader applies it


def test_autograde_uses_the_guarded_sandboxed_execute(cfg):
    pipeline = cfg.Autograde.autograde_preprocessors
    assert pipeline[0].__name__ == "GuardedExecute"
    assert [p.__name__ for p in pipeline[1:]] == ["IgnorePattern", "ClearMetadataPreprocessor", "LimitOutput",
                                                  "SaveAutoGrades", "AssignLatePenalties", "CheckCellMetadata"]
    hidden = set(cfg.GuardedExecute.hide)
    root = course.repo_root()
    assert {str(root / "solutions"), str(root / "gradebook.db")} <= hidden
    assert cfg.OverwriteCells.add_missing_cells is True
