"""Deleted cells come back before grading, in the right place, whatever else was deleted."""

from __future__ import annotations

import nbformat

from grading_helpers import TESTS, submission
from tradeoffs import grading


def _ids(nb):
    return [(c.metadata.get("nbgrader") or {}).get("grade_id") for c in nb.cells]


def test_nothing_to_restore(released):
    nb = submission(released)
    assert grading.restore_missing_cells(nb, released) == []
    assert _ids(nb) == _ids(released)


def test_deleted_tests_come_back_after_their_answers(released):
    nb = submission(released, delete=TESTS)
    assert grading.restore_missing_cells(nb, released) == list(TESTS)
    assert _ids(nb) == _ids(released)


def test_deleting_a_test_and_the_cell_before_it(released):
    """nbgrader's own add_missing_cells raises KeyError here; the kit's restore does not."""
    nb = submission(released, delete=("q2_text", "q2_break_even", "q2_tests", "memo"))
    restored = grading.restore_missing_cells(nb, released)
    assert restored == ["q2_text", "q2_break_even", "q2_tests", "memo"]
    assert _ids(nb) == _ids(released)


def test_student_cells_are_kept_and_cell_ids_stay_unique(released):
    nb = submission(released, delete=("q1_tests",))
    extra = nbformat.v4.new_code_cell("helper = 1  # the student's own cell")
    nb.cells.insert(3, extra)
    grading.restore_missing_cells(nb, released)
    assert extra in nb.cells
    ids = [c.id for c in nb.cells]
    assert len(ids) == len(set(ids))
    nbformat.validate(nb)


def test_restored_cells_have_no_outputs(released):
    nb = submission(released, delete=TESTS)
    grading.restore_missing_cells(nb, released)
    assert all(not c.outputs for c in nb.cells if c.cell_type == "code")
