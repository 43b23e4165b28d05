"""Builders for fixture-lab submissions, shared by the grading tests.

The fixture lab (``fixtures/solutions/fixture_lab``) has the shape of a real lab -- parameters,
setup, three autograded parts with visible and hidden tests, a manually graded memo, a support file
-- so the whole pipeline is proven even before (and besides) the real labs.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import nbformat

HERE = Path(__file__).parent
FIXTURES = HERE / "fixtures"
REPO = HERE.parent.parent
LAB = "fixture_lab"

# The fixture's answers: correct and wrong versions of each autograded answer cell.
SOLUTION = {
    "q1_mean_cost": "def mean_cost(costs):\n    return float(np.mean(np.asarray(costs, dtype=float)))",
    "q2_break_even": "def break_even(fixed, api_price, own_price):\n    return fixed / (api_price - own_price)",
    "q3_p99": "def p99(latencies):\n    return float(np.percentile(np.asarray(latencies, dtype=float), 99))",
    "memo": "The API: below 10,000 requests a month it is cheaper.",
}
WRONG = {
    "q1_mean_cost": "def mean_cost(costs):\n    return 0.0",
    "q2_break_even": "def break_even(fixed, api_price, own_price):\n    return 0.0",
    "q3_p99": "def p99(latencies):\n    return 0.0",
}
TESTS = ("q1_tests", "q2_tests", "q3_tests")
POINTS = {"q1_tests": 30.0, "q2_tests": 30.0, "q3_tests": 30.0}


def make_course(dest: Path, solutions_from: Path = FIXTURES / "solutions", labs: list[str] | None = None) -> Path:
    """A course directory at ``dest``: the repository's nbgrader_config.py and some solutions."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / "nbgrader_config.py", dest / "nbgrader_config.py")
    if solutions_from == FIXTURES / "solutions":
        shutil.copy2(FIXTURES / "course.toml", dest / "course.toml")  # registers fixture_lab in this course
    for lab_dir in sorted(solutions_from.iterdir()):
        if lab_dir.is_dir() and (labs is None or lab_dir.name in labs):
            shutil.copytree(lab_dir, dest / "solutions" / lab_dir.name)
    return dest


def cell_by_id(nb, grade_id: str):
    for cell in nb.cells:
        if (cell.metadata.get("nbgrader") or {}).get("grade_id") == grade_id:
            return cell
    raise KeyError(grade_id)


def submission(released, answers: dict[str, str] | None = None, prefix: dict[str, str] | None = None,
               edit: dict[str, str] | None = None, delete: tuple[str, ...] = ()):
    """A student's notebook built from the released one.

    ``answers`` replace answer cells, ``prefix`` adds code before an answer, ``edit`` rewrites any
    cell (tests included), ``delete`` removes cells by grade id.
    """
    nb = copy.deepcopy(released)
    for gid, source in (answers or {}).items():
        cell_by_id(nb, gid).source = source
    for gid, source in (prefix or {}).items():
        cell = cell_by_id(nb, gid)
        cell.source = source + "\n" + cell.source
    for gid, source in (edit or {}).items():
        cell_by_id(nb, gid).source = source
    nb.cells = [c for c in nb.cells if (c.metadata.get("nbgrader") or {}).get("grade_id") not in delete]
    return nb


def write_submission(folder: Path, student: str, nb, lab: str = LAB, flat: bool = False,
                     timestamp: str | None = None) -> Path:
    """Write ``nb`` as ``student``'s submission in nbgrader's layout (or a flat LMS-style folder)."""
    target = folder / student if flat else folder / student / lab
    target.mkdir(parents=True, exist_ok=True)
    path = target / f"{lab}.ipynb"
    nbformat.write(nb, path)
    if timestamp:
        (target / "timestamp.txt").write_text(timestamp)
    return path
