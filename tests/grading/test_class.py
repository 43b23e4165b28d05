"""A class of fake students -- honest, blank, broken and hostile -- graded end to end on the fixture lab.

One ``grade()`` run (two worker processes) grades everybody; the tests then check every student's
score, status and reason, the grades CSV, the course gradebook, the feedback files, and that nothing
a hostile submission did reached the course or another student.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from grading_helpers import LAB, SOLUTION, TESTS, WRONG, make_course, submission, write_submission
from tradeoffs import grading
from tradeoffs.grading import sandbox

pytestmark = pytest.mark.grading

CELL_TIMEOUT = 10
DAEMON_MARKER = "tradeoffs-daemon-marker-4711"

# student -> (expected autograded score, expected status)
EXPECTED = {
    "solution": (90.0, "graded"),        # the instructor's notebook, hidden tests and all
    "blank": (0.0, "graded"),            # the released notebook, untouched (flat LMS layout)
    "partial": (30.0, "graded"),         # only Q1 answered
    "patch_globals": (0.0, "graded"),    # wrong answers + numpy.isclose/builtins monkeypatched
    "loop": (60.0, "graded"),            # an endless loop in Q2 (interruptible)
    "stubborn_loop": (30.0, "partial"),  # an endless loop that swallows KeyboardInterrupt
    "sys_exit": (90.0, "graded"),        # sys.exit() after a correct answer: the kernel survives
    "os_exit": (30.0, "partial"),        # os._exit() in Q2: the kernel dies
    "flood": (90.0, "graded"),           # tens of megabytes of output
    "vandal": (90.0, "graded"),          # deletes files, attacks the gradebook, leaves a daemon
    "edit_tests_right": (90.0, "graded"),   # correct answers, tests edited to fail: restored
    "edit_tests_wrong": (0.0, "graded"),    # wrong answers, tests edited to pass: restored
    "delete_tests_wrong": (0.0, "graded"),  # wrong answers, every test cell deleted: restored
    "delete_pair": (60.0, "graded"),        # Q2's answer and test (and the memo) deleted
    "corrupt": (0.0, "error"),              # not a notebook at all
    "bad_timestamp": (90.0, "graded"),      # an unreadable timestamp.txt is ignored, not fatal
    # hostile: each would earn points against a grader that runs tests in the student's kernel or
    # shows it the course; here each earns nothing
    "startup_file": (0.0, "graded"),      # the untouched blank + an IPython startup file that swallows failures
    "ast_transformer": (0.0, "graded"),   # wrong answers + an AST transformer that swallows failures
    "always_equal": (0.0, "graded"),      # answers that return objects equal to anything
    "read_instructor": (0.0, "graded"),   # wrong answers that exec the solution read from the course or .git
    "orphan": (0.0, "graded"),            # wrong answers + a setsid daemon without a parent-death signal
    "error_flood": (0.0, "partial"),      # wrong answers + a 40 MB display, 30 MB of updates, a 10 MB error
                                          # (the error's reply is over the message limit: kernel stopped)
    "script_output": (0.0, "graded"),     # wrong answers + <script> in an output and in the memo
    "symlinked_lab": (0.0, "error"),      # a lab folder that is a symbolic link into solutions/
    "=2+3": (0.0, "error"),               # a student id shaped like a spreadsheet formula
}
ORPHAN_MARKER = "tradeoffs-orphan-marker-4712"
XSS = "<script>alert('tradeoffs-xss')</script>"
HIDDEN_TEST_SNIPPETS = ("BEGIN HIDDEN TESTS", "default_rng(1)", "_fixed / (_a - _b)")
# Wraps every cell in try/except: with tests run in the kernel, every test cell "passes".
SWALLOW = (
    "import ast\n"
    "class _Swallow(ast.NodeTransformer):\n"
    "    def visit_Module(self, node):\n"
    "        handler = ast.ExceptHandler(type=ast.Name('BaseException', ast.Load()), name=None, body=[ast.Pass()])\n"
    "        node.body = [ast.Try(body=node.body or [ast.Pass()], handlers=[handler], orelse=[], finalbody=[])]\n"
    "        return ast.fix_missing_locations(node)\n"
    "get_ipython().ast_transformers.append(_Swallow())\n"
)
ALWAYS_EQUAL = {
    "q1_mean_cost": ("class _Any(float):\n"
                     "    __eq__ = lambda self, other: True\n    __ne__ = lambda self, other: False\n"
                     "    __lt__ = __le__ = __gt__ = __ge__ = __eq__\n"
                     "    __sub__ = __rsub__ = __abs__ = __add__ = lambda self, *a: _Any(0.0)\n"
                     "    __array_function__ = lambda self, *a, **k: True\n"
                     "    __array_ufunc__ = lambda self, *a, **k: True\n"
                     "def mean_cost(costs):\n    return _Any(0.0)"),
    "q2_break_even": "def break_even(fixed, api_price, own_price):\n    return _Any(0.0)",
    "q3_p99": "def p99(latencies):\n    return _Any(0.0)",
}
ISOLATED = sandbox.detect_isolation() != "limits"
if not ISOLATED:  # without namespaces the vandal really could wreck the course: see docs/instructor.md
    del EXPECTED["vandal"]


def _tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _vandal_code(course: Path, submissions: Path) -> str:
    targets = [course / "gradebook.db", course / "grades.csv", course / "solutions", course / "labs",
               submissions / "solution", course / "feedback"]
    return (
        "import os, shutil, sqlite3, subprocess, sys\n"
        "for _p in os.listdir('.'):\n"
        "    try:\n"
        "        shutil.rmtree(_p) if os.path.isdir(_p) else os.remove(_p)\n"
        "    except OSError:\n"
        "        pass\n"
        f"for _t in {[str(t) for t in targets]!r}:\n"
        "    try:\n"
        "        shutil.rmtree(_t) if os.path.isdir(_t) else os.remove(_t)\n"
        "    except OSError:\n"
        "        pass\n"
        "try:\n"
        f"    _c = sqlite3.connect({str(course / 'gradebook.db')!r})\n"
        "    _c.execute('UPDATE grade SET auto_score = 1000')\n"
        "    _c.commit()\n"
        "except Exception:\n"
        "    pass\n"
        f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)  # {DAEMON_MARKER}'],\n"
        "                 start_new_session=True)\n"
    )


def _read_instructor_code(course: Path) -> str:
    """Exec the solution's answer cells, read from the course, the kit or the kit's .git."""
    kit = Path(__file__).resolve().parents[2]
    paths = [course / "solutions" / LAB / f"{LAB}.ipynb", kit / "tests/grading/fixtures/solutions" / LAB / f"{LAB}.ipynb"]
    return (
        "import json, subprocess\n"
        "_nb = None\n"
        f"for _p in {[str(p) for p in paths]!r}:\n"
        "    try:\n        _nb = json.load(open(_p)); break\n    except Exception:\n        pass\n"
        "if _nb is None:\n"
        "    try:\n"
        f"        _out = subprocess.run(['git', '-C', {str(kit)!r}, 'show', "
        f"'HEAD:tests/grading/fixtures/solutions/{LAB}/{LAB}.ipynb'], capture_output=True, text=True).stdout\n"
        "        _nb = json.loads(_out)\n"
        "    except Exception:\n        pass\n"
        "for _c in (_nb or {}).get('cells', []):\n"
        "    if _c['cell_type'] == 'code' and _c.get('metadata', {}).get('nbgrader', {}).get('solution'):\n"
        "        _code = ''.join(_c['source']) if isinstance(_c['source'], list) else _c['source']\n"
        "        exec(_code, globals())\n"
    )


def _build_class(course: Path, folder: Path, released, solution_path: Path) -> None:
    solution = nbformat.read(solution_path, as_version=4)
    stubborn = ("import time\nwhile True:\n    try:\n        time.sleep(0.05)\n"
                "    except KeyboardInterrupt:\n        pass\n")
    notebooks = {
        "solution": solution,
        "partial": submission(released, answers={"q1_mean_cost": SOLUTION["q1_mean_cost"]}),
        "patch_globals": submission(released, answers=WRONG, prefix={"q1_mean_cost": (
            "import builtins, math, numpy\nnumpy.isclose = lambda *a, **k: True\n"
            "numpy.testing.assert_allclose = lambda *a, **k: None\nmath.isclose = lambda *a, **k: True\n"
            "builtins.abs = lambda x: 0\nbuiltins.all = lambda x: True")}),
        "loop": submission(released, answers=SOLUTION, prefix={"q2_break_even": "while True:\n    pass"}),
        "stubborn_loop": submission(released, answers=SOLUTION, prefix={"q2_break_even": stubborn}),
        "sys_exit": submission(released, answers={**SOLUTION, "q2_break_even":
                                                  SOLUTION["q2_break_even"] + "\nimport sys\nsys.exit(3)"}),
        "os_exit": submission(released, answers={**SOLUTION, "q2_break_even":
                                                 SOLUTION["q2_break_even"] + "\nimport os\nos._exit(0)"}),
        # (the flood follows the answer: on a busy machine it may run into the cell timeout)
        "flood": submission(released, answers={**SOLUTION, "q1_mean_cost": SOLUTION["q1_mean_cost"] + (
            "\nprint('x' * 20_000_000)\nfor _i in range(300_000):\n    print(_i)\n"
            "import sys\nsys.stderr.write('e' * 5_000_000)")}),
        "vandal": submission(released, answers=SOLUTION,
                             prefix={"q1_mean_cost": _vandal_code(course, folder)}),
        "edit_tests_right": submission(released, answers=SOLUTION,
                                       edit={t: "assert False, 'edited by the student'" for t in TESTS}),
        "edit_tests_wrong": submission(released, answers=WRONG, edit={t: "pass" for t in TESTS}),
        "delete_tests_wrong": submission(released, answers=WRONG, delete=TESTS),
        "delete_pair": submission(released, answers=SOLUTION, delete=("q2_break_even", "q2_tests", "memo")),
        "ast_transformer": submission(released, answers=WRONG, prefix={"q1_mean_cost": SWALLOW}),
        "always_equal": submission(released, answers=ALWAYS_EQUAL),
        "read_instructor": submission(released, answers={gid: src + "\n" + _read_instructor_code(course)
                                                         for gid, src in WRONG.items()}),
        "orphan": submission(released, answers=WRONG, prefix={"q1_mean_cost": (
            "import ctypes, os, sys\n"
            "if os.fork() == 0:\n"
            "    os.setsid()\n"
            "    ctypes.CDLL(None).prctl(1, 0, 0, 0, 0)\n"
            f"    os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(600)  # {ORPHAN_MARKER}'])")}),
        "error_flood": submission(released, answers={**WRONG, "q1_mean_cost": WRONG["q1_mean_cost"] + (
            "\nfrom IPython.display import display\n_h = display('start', display_id=True)\n"
            "for _i in range(300):\n    _h.update('u' * 100_000)\n"
            "display({'text/plain': 'x' * 40_000_000}, raw=True)\n"
            "raise ValueError('e' * 10_000_000)")}),
        "script_output": submission(released, answers={**WRONG, "memo": f"My memo. {XSS}"}, prefix={"q1_mean_cost": (
            f"from IPython.display import HTML, display\ndisplay(HTML({XSS!r}))\nprint({XSS!r})")}),
        "=2+3": submission(released, answers=SOLUTION),
    }
    if not ISOLATED:
        del notebooks["vandal"]
    for student, nb in notebooks.items():
        write_submission(folder, student, nb,
                         timestamp="2030-01-15 12:00:00.000000 UTC" if student == "solution" else None)
    write_submission(folder, "blank", released, flat=True)
    startup = write_submission(folder, "startup_file", released).parent / ".ipython/profile_default/startup"
    startup.mkdir(parents=True)
    (startup / "00-swallow.py").write_text(SWALLOW.replace("get_ipython()", "__import__('IPython').get_ipython()"))
    (folder / "symlinked_lab").mkdir()
    (folder / "symlinked_lab" / LAB).symlink_to(course / "solutions" / LAB)
    write_submission(folder, "bad_timestamp", submission(released, answers=SOLUTION), timestamp="next tuesday")
    (folder / "corrupt" / LAB).mkdir(parents=True)
    (folder / "corrupt" / LAB / f"{LAB}.ipynb").write_text("this is not JSON {")
    (folder / "stray").mkdir()
    (folder / "stray" / "my_notes.ipynb").write_text("{}")


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory, fixture_course, released):
    course = make_course(tmp_path_factory.mktemp("class-course"))
    grading.release(course)
    folder = tmp_path_factory.mktemp("submitted")
    _build_class(course, folder, released, course / "solutions" / LAB / f"{LAB}.ipynb")
    before = {d: _tree_digest(course / d) for d in ("solutions", "labs")}
    before_submissions = _tree_digest(folder)
    settings = grading.GradeSettings(workers=2, cell_timeout=CELL_TIMEOUT, interrupt_grace=5, job_timeout=600)
    results = grading.grade(folder, root=course, settings=settings, progress=False)
    return {"course": course, "folder": folder, "results": {r.student: r for r in results},
            "before": before, "before_submissions": before_submissions}


@pytest.mark.parametrize("student", sorted(EXPECTED))
def test_every_student_gets_an_honest_grade(graded_class, student):
    result = graded_class["results"][student]
    score, status = EXPECTED[student]
    assert (result.score, result.status) == (score, status), result
    assert result.max_auto_score == 90.0
    assert result.max_score == 100.0
    assert Path(graded_class["course"] / result.feedback).is_file()


def test_blank_scores_zero_on_every_autograded_part(graded_class):
    parts = [p for p in graded_class["results"]["blank"].parts if p.autograded]
    assert {p.grade_id for p in parts} == set(TESTS)
    assert all(p.score == 0 for p in parts)


def test_memo_waits_for_manual_grading(graded_class):
    assert graded_class["results"]["solution"].manual_points_pending == 10.0
    # an unchanged memo is "no response": nbgrader scores it zero, nothing left to grade by hand
    assert graded_class["results"]["blank"].manual_points_pending == 0.0


def test_reasons_and_flags_tell_the_instructor_what_happened(graded_class):
    results = graded_class["results"]
    assert "timed out: q2_break_even" in "; ".join(results["loop"].flags)
    assert "ignored the interrupt" in results["stubborn_loop"].reason
    assert "kernel died" in results["os_exit"].reason and "q2_break_even" in results["os_exit"].reason
    for student in ("flood", "error_flood"):
        assert any(f.startswith("output budget reached") for f in results[student].flags), results[student]
    assert "over the grader's size limit" in results["error_flood"].reason
    assert "symbolic link" in results["symlinked_lab"].reason
    assert "student id '=2+3' refused" in results["=2+3"].reason
    assert set(results["delete_tests_wrong"].restored_cells) == set(TESTS)
    assert set(results["delete_pair"].restored_cells) == {"q2_break_even", "q2_tests", "memo"}
    assert "could not be read" in results["corrupt"].reason
    assert results["solution"].flags == []
    assert any("timestamp.txt unreadable" in f for f in results["bad_timestamp"].flags)


@pytest.mark.parametrize("student", ["flood", "error_flood"])
def test_a_flood_stays_within_the_output_budget(graded_class, student):
    result = graded_class["results"][student]
    budget = grading.GradeSettings().max_output_chars
    assert (graded_class["course"] / result.feedback).stat().st_size < budget + 1_000_000
    graded = graded_class["course"] / "autograded" / student / LAB / f"{LAB}.ipynb"
    assert graded.stat().st_size < budget + 500_000


def test_no_feedback_shows_hidden_tests_or_runs_student_html(graded_class):
    course = graded_class["course"]
    for student, result in graded_class["results"].items():
        html = (course / result.feedback).read_text(encoding="utf-8")
        for snippet in HIDDEN_TEST_SNIPPETS:
            assert snippet not in html, f"{student}'s feedback shows hidden test code: {snippet!r}"
        assert XSS not in html, f"{student}'s feedback carries a live <script>"
    html = (course / graded_class["results"]["script_output"].feedback).read_text(encoding="utf-8")
    assert "tradeoffs-xss" in html, "the student's output is shown, as text"


def test_formula_shaped_ids_are_text_in_the_csv(graded_class):
    rows = grading.read_grades_csv(graded_class["course"] / grading.GRADES_CSV)
    ids = {r["student_id"] for r in rows}
    assert "'=2+3" in ids and "=2+3" not in ids
    assert not any(str(v).startswith(("=", "+", "@")) for r in rows for v in r.values())


def test_grades_csv_has_one_row_per_student(graded_class):
    rows = grading.read_grades_csv(graded_class["course"] / grading.GRADES_CSV)
    by_student = {r["student_id"]: r for r in rows}
    expected = {grading.csv_safe(k): v for k, v in EXPECTED.items()}
    assert set(by_student) == set(expected)  # the stray folder's notebook is not a lab: no row
    for student, (score, status) in expected.items():
        assert float(by_student[student]["score"]) == score
        assert by_student[student]["status"] == status


def test_gradebook_holds_every_score_and_the_vandal_changed_nothing(graded_class):
    course = graded_class["course"]
    with Gradebook(f"sqlite:///{course / grading.GRADEBOOK}", grading.COURSE_ID) as gb:
        for student, (score, _) in EXPECTED.items():
            sub = gb.find_submission(LAB, student)
            autoscore = sum(g.auto_score or 0 for nb in sub.notebooks for g in nb.grades
                            if g.cell.cell_type == "code")
            assert autoscore == score, student
        stamp = gb.find_submission(LAB, "solution").timestamp
        assert stamp is not None and stamp.year == 2030


def test_course_and_other_submissions_untouched(graded_class):
    course = graded_class["course"]
    for folder, digest in graded_class["before"].items():
        assert _tree_digest(course / folder) == digest, f"{folder}/ changed during grading"
    assert _tree_digest(graded_class["folder"]) == graded_class["before_submissions"]


def test_feedback_and_autograded_notebooks_use_nbgrader_layout(graded_class):
    course = graded_class["course"]
    assert (course / "feedback" / "solution" / LAB / f"{LAB}.html").is_file()
    assert (course / "autograded" / "solution" / LAB / f"{LAB}.ipynb").is_file()


def test_no_process_outlives_grading(graded_class):
    if not ISOLATED:
        pytest.skip("without a PID namespace a setsid daemon can outlive its kernel")
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert DAEMON_MARKER not in ps and ORPHAN_MARKER not in ps
