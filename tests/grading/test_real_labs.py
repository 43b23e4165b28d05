"""Every real lab, graded end to end: a class of three fake students per lab.

* ``ada`` submits the solution notebook (hidden tests and all): full marks on every autograded part;
* ``bob`` submits the released blank notebook: zero on every autograded part, and grading finishes;
* ``cy`` submits the solution with every test cell deleted: the tests are restored and pass.

The tests pick up each lab as soon as ``solutions/<lab>/<lab>.ipynb`` exists
(``tradeoffs.execute.existing_labs``); with no labs yet they are skipped.
"""

from __future__ import annotations

import re

import nbformat
import pytest

from grading_helpers import REPO, make_course, write_submission
from tradeoffs import execute, grading

# one fixture grades the whole class (3 students x every lab): allow it far more than the default 900 s
pytestmark = [pytest.mark.grading, pytest.mark.slow, pytest.mark.models, pytest.mark.timeout(3600)]

LABS = execute.existing_labs()


def _test_ids(nb) -> list[str]:
    return [c.metadata.nbgrader.grade_id for c in nb.cells
            if (c.metadata.get("nbgrader") or {}).get("grade") and not c.metadata.nbgrader.get("solution")
            and c.cell_type == "code"]


@pytest.fixture(scope="module")
def real_class(tmp_path_factory):
    if not LABS:
        pytest.skip("no lab has a solution notebook yet")
    course = make_course(tmp_path_factory.mktemp("real-course"), solutions_from=REPO / "solutions", labs=LABS)
    grading.release(course)
    folder = tmp_path_factory.mktemp("real-submitted")
    tests = {}
    for lab in LABS:
        solution = nbformat.read(course / "solutions" / lab / f"{lab}.ipynb", as_version=4)
        write_submission(folder, "ada", solution, lab=lab)
        blank = nbformat.read(course / "labs" / lab / f"{lab}.ipynb", as_version=4)
        write_submission(folder, "bob", blank, lab=lab, flat=True)
        tests[lab] = _test_ids(solution)
        solution.cells = [c for c in solution.cells
                          if (c.metadata.get("nbgrader") or {}).get("grade_id") not in tests[lab]]
        write_submission(folder, "cy", solution, lab=lab)
    results = grading.grade(folder, root=course, settings=grading.GradeSettings(workers=2), progress=False)
    return {"course": course, "tests": tests,
            "results": {(r.student, r.lab): r for r in results}}


@pytest.mark.parametrize("lab", LABS)
def test_points_sum_to_100(lab):
    nb = nbformat.read(REPO / "solutions" / lab / f"{lab}.ipynb", as_version=4)
    points = [float(c.metadata.nbgrader.get("points", 0)) for c in nb.cells
              if (c.metadata.get("nbgrader") or {}).get("grade")]
    assert sum(points) == 100.0, f"{lab}: graded points sum to {sum(points)}, not 100"


@pytest.mark.parametrize("lab", LABS)
def test_solution_gets_full_marks(real_class, lab):
    result = real_class["results"][("ada", lab)]
    assert result.full_marks, (result.score, result.max_auto_score, result.reason, result.flags,
                               [(p.grade_id, p.score) for p in result.parts])
    assert not any(f.startswith("tampering") for f in result.flags)


@pytest.mark.parametrize("lab", LABS)
def test_blank_gets_zero_on_every_autograded_part_and_finishes(real_class, lab):
    result = real_class["results"][("bob", lab)]
    assert result.status == "graded", result.reason
    assert [p.score for p in result.parts if p.autograded and p.score] == []


@pytest.mark.parametrize("lab", LABS)
def test_deleted_tests_are_restored_and_graded(real_class, lab):
    result = real_class["results"][("cy", lab)]
    assert set(result.restored_cells) == set(real_class["tests"][lab])
    assert result.full_marks, result


@pytest.mark.parametrize("lab", LABS)
def test_grading_runs_the_lab_at_smoke_size(real_class, lab):
    """Under nbgrader (NBGRADER_EXECUTION set) `setup` forces smoke mode: grades never depend on speed."""
    graded = real_class["course"] / real_class["results"][("ada", lab)].autograded
    text = graded.read_text()
    assert "forced by the autograder" in text, f"{lab} did not call setup(MODE, SEED, DEVICE) visibly"


@pytest.mark.parametrize("lab", LABS)
def test_test_cells_never_time_the_machine(lab):
    nb = nbformat.read(REPO / "solutions" / lab / f"{lab}.ipynb", as_version=4)
    timing = re.compile(r"perf_counter|monotonic\(|time\.time\(|timeit|time_fn|time_unsynchronized"
                        r"|memory_bandwidth|matmul_flops")
    offenders = [c.metadata.nbgrader.grade_id for c in nb.cells
                 if (c.metadata.get("nbgrader") or {}).get("grade") and c.cell_type == "code"
                 and not c.metadata.nbgrader.get("solution") and timing.search(c.source)]
    assert offenders == [], f"{lab}: test cells {offenders} depend on this machine's speed"


def test_class_grades_csv(real_class):
    rows = grading.read_grades_csv(real_class["course"] / grading.GRADES_CSV)
    assert {(r["student_id"], r["lab"]) for r in rows} == {(s, lab) for s in ("ada", "bob", "cy") for lab in LABS}
