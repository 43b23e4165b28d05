"""Every real lab, graded end to end: a class of five fake students per lab.

* ``ada`` submits the solution notebook (hidden tests and all): full marks on every autograded part;
* ``bob`` submits the released blank notebook: zero on every autograded part, and grading finishes;
* ``cy`` submits the solution with every test cell deleted: the tests are restored and pass;
* ``lib`` answers every part by calling or pasting the closest ``tradeoffs`` function
  (``lab_answers/<lab>.py``): at most 10% of the autograded points -- the answer key is not in the package;
* ``part`` is right on one part's core cases but not its edge cases: partial credit, not zero.

Each lab is graded in its own course (``-k <lab_id>`` grades one lab only).

The tests pick up each lab as soon as ``solutions/<lab>/<lab>.ipynb`` exists
(``tradeoffs.course.existing_labs``); with no labs yet they are skipped.
"""

from __future__ import annotations

import copy
import importlib.util
import re

import nbformat
import pytest

from grading_helpers import HERE, REPO, make_course, submission, write_submission
from tradeoffs import course, grading

# one fixture per lab grades its class of five: allow it far more than the default 900 s
pytestmark = [pytest.mark.grading, pytest.mark.slow, pytest.mark.models, pytest.mark.timeout(3600)]

LABS = course.existing_labs()
ANSWERS = HERE / "lab_answers"


def _test_ids(nb) -> list[str]:
    return [c.metadata.nbgrader.grade_id for c in nb.cells
            if (c.metadata.get("nbgrader") or {}).get("grade") and not c.metadata.nbgrader.get("solution")
            and c.cell_type == "code"]


def _answer_ids(nb) -> list[str]:
    return [c.metadata.nbgrader.grade_id for c in nb.cells
            if (c.metadata.get("nbgrader") or {}).get("solution") and c.cell_type == "code"
            and not c.metadata.nbgrader.get("grade")]


def lab_answers(lab: str):
    """The lab's library-answer and partial-credit submissions (tests/grading/lab_answers/<lab>.py), or None."""
    path = ANSWERS / f"{lab}.py"
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location(f"lab_answers_{lab}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module", params=LABS)
def real_class(request, tmp_path_factory):
    """One lab graded for a class of five: ada (solution), bob (blank), cy (tests deleted),
    lib (every answer calls or pastes the closest library function), part (one part half right)."""
    lab = request.param
    course = make_course(tmp_path_factory.mktemp(f"real-course-{lab}"), solutions_from=REPO / "solutions", labs=[lab])
    grading.release(course)
    folder = tmp_path_factory.mktemp(f"real-submitted-{lab}")
    solution = nbformat.read(course / "solutions" / lab / f"{lab}.ipynb", as_version=4)
    blank = nbformat.read(course / "labs" / lab / f"{lab}.ipynb", as_version=4)
    answers = lab_answers(lab)
    write_submission(folder, "ada", solution, lab=lab)
    write_submission(folder, "bob", blank, lab=lab, flat=True)
    if answers is not None:
        write_submission(folder, "lib", submission(blank, answers=answers.LIBRARY_ANSWERS), lab=lab)
        write_submission(folder, "part", submission(solution, answers=answers.PARTIAL), lab=lab)
    tests = _test_ids(solution)
    deleted = copy.deepcopy(solution)
    deleted.cells = [c for c in deleted.cells if (c.metadata.get("nbgrader") or {}).get("grade_id") not in tests]
    write_submission(folder, "cy", deleted, lab=lab)
    results = grading.grade(folder, root=course, settings=grading.GradeSettings(workers=2), progress=False)
    return {"lab": lab, "course": course, "tests": tests, "answers": answers, "answer_ids": _answer_ids(solution),
            "results": {r.student: r for r in results}}


@pytest.mark.parametrize("lab", LABS)
def test_points_sum_to_100(lab):
    nb = nbformat.read(REPO / "solutions" / lab / f"{lab}.ipynb", as_version=4)
    points = [float(c.metadata.nbgrader.get("points", 0)) for c in nb.cells
              if (c.metadata.get("nbgrader") or {}).get("grade")]
    assert sum(points) == 100.0, f"{lab}: graded points sum to {sum(points)}, not 100"


def test_solution_gets_full_marks(real_class):
    result = real_class["results"]["ada"]
    assert result.full_marks, (result.score, result.max_auto_score, result.reason, result.flags,
                               [(p.grade_id, p.score) for p in result.parts])
    assert not any(f.startswith("tampering") for f in result.flags)


def test_blank_gets_zero_on_every_autograded_part_and_finishes(real_class):
    result = real_class["results"]["bob"]
    assert result.status == "graded", result.reason
    assert [p.score for p in result.parts if p.autograded and p.score] == []


def test_deleted_tests_are_restored_and_graded(real_class):
    result = real_class["results"]["cy"]
    assert set(result.restored_cells) == set(real_class["tests"])
    assert result.full_marks, result


def test_grading_runs_the_lab_at_smoke_size(real_class):
    """Under nbgrader (NBGRADER_EXECUTION set) `setup` forces smoke mode: grades never depend on speed."""
    graded = real_class["course"] / real_class["results"]["ada"].autograded
    text = graded.read_text()
    assert "forced by the autograder" in text, f"{real_class['lab']} did not call setup(MODE, SEED, DEVICE) visibly"


@pytest.mark.parametrize("lab", LABS)
def test_test_cells_never_time_the_machine(lab):
    nb = nbformat.read(REPO / "solutions" / lab / f"{lab}.ipynb", as_version=4)
    timing = re.compile(r"perf_counter|monotonic\(|time\.time\(|timeit|time_fn|time_unsynchronized"
                        r"|memory_bandwidth|matmul_flops")
    offenders = [c.metadata.nbgrader.grade_id for c in nb.cells
                 if (c.metadata.get("nbgrader") or {}).get("grade") and c.cell_type == "code"
                 and not c.metadata.nbgrader.get("solution") and timing.search(c.source)]
    assert offenders == [], f"{lab}: test cells {offenders} depend on this machine's speed"


def _answers(real_class):
    assert real_class["answers"] is not None, (
        f"{real_class['lab']} has no tests/grading/lab_answers/{real_class['lab']}.py: write its LIBRARY_ANSWERS, "
        "PARTIAL and PARTIAL_PART (docs/authoring.md, 'Graded work')")
    return real_class["answers"]


def test_library_answers_cover_every_answer_cell(real_class):
    _answers(real_class)
    missing = set(real_class["answer_ids"]) - set(real_class["answers"].LIBRARY_ANSWERS)
    assert not missing, f"{real_class['lab']}: LIBRARY_ANSWERS has no entry for {sorted(missing)}"


def test_library_answers_earn_at_most_ten_percent(real_class):
    """The answer key is not in the package: calling or pasting the closest library function fails."""
    _answers(real_class)
    result = real_class["results"]["lib"]
    assert result.status == "graded", result.reason
    assert result.score <= 0.10 * result.max_auto_score + 1e-9, (
        f"{real_class['lab']}: a submission answered from the library scored {result.score:g} of "
        f"{result.max_auto_score:g}: {[(p.grade_id, p.score) for p in result.parts if p.score]}")


def test_a_part_right_on_the_core_but_not_the_edges_gets_partial_credit(real_class):
    part = _answers(real_class).PARTIAL_PART
    result = real_class["results"]["part"]
    assert result.status == "graded", result.reason
    scored = [p for p in result.parts if p.autograded and p.grade_id.startswith(f"{part}_")]
    earned, worth = sum(p.score or 0 for p in scored), sum(p.max_score for p in scored)
    assert 0 < earned < worth, f"{real_class['lab']}: part {part} earned {earned:g} of {worth:g}: {scored}"
    others = [p for p in result.parts if p.autograded and not p.grade_id.startswith(f"{part}_")]
    assert all(p.score == p.max_score for p in others), [p for p in others if p.score != p.max_score]


def test_class_grades_csv(real_class):
    rows = grading.read_grades_csv(real_class["course"] / grading.GRADES_CSV)
    students = ("ada", "bob", "cy") + (("lib", "part") if real_class["answers"] is not None else ())
    assert {(r["student_id"], r["lab"]) for r in rows} == {(s, real_class["lab"]) for s in students}
