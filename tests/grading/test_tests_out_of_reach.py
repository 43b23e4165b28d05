"""Tests out of the student's reach: attacks that fool nbgrader's stock ``Execute`` score zero under
``GuardedExecute``, whose test cells run in a fresh interpreter (:mod:`tradeoffs.grading.checker`).

Each attack is a submission with *wrong* answers plus a trick. Run with nbgrader's own Execute
preprocessor the trick earns marks (so these tests can fail: they prove the attack is real); run
with the kit's GuardedExecute the same notebook scores zero. The second half checks that honest
tests keep their meaning across the wall (in-place changes, exceptions, isinstance, timeouts).
"""

from __future__ import annotations

import pytest
from nbgrader.preprocessors import Execute
from nbgrader.utils import determine_grade, is_grade, is_solution

import nbformat

from tradeoffs import grading

from grading_helpers import FIXTURES, LAB, SOLUTION, WRONG, submission

pytestmark = pytest.mark.grading

ATTACKS = {
    # replace the checks the tests call, at the top of the first answer cell
    "patch_globals": {"prefix": {"q1_mean_cost": (
        "import builtins, math, numpy\n"
        "numpy.isclose = lambda *a, **k: True\n"
        "numpy.testing.assert_allclose = lambda *a, **k: None\n"
        "math.isclose = lambda *a, **k: True\n"
        "builtins.abs = lambda x: 0\n"
        "builtins.all = lambda x: True")}},
    # shadow the names the tests use in the notebook's namespace
    "shadow_names": {"prefix": {"q1_mean_cost": (
        "class _Yes:\n"
        "    def __getattr__(self, name):\n        return self\n"
        "    def __call__(self, *a, **k):\n        return self\n"
        "    def __bool__(self):\n        return True\n"
        "np = math = _Yes()\n"
        "abs = lambda x: 0\n"
        "all = lambda x: True")}},
    # replace numpy.isclose from inside the function under test, while the test runs
    "patch_during_test": {"answers": {"q1_mean_cost": (
        "def mean_cost(costs):\n"
        "    import numpy\n"
        "    numpy.isclose = lambda *a, **k: True\n"
        "    return 0.0")}},
    # publish a number as the test cell's result: nbgrader reads it as partial credit
    "displayhook": {"answers": {gid: src.replace("return 0.0", "__import__('sys').displayhook(30)\n    return 0.0")
                                for gid, src in WRONG.items()}},
    # rewrite every later cell so that nothing it raises is seen
    "ast_transformer": {"prefix": {"q1_mean_cost": (
        "import ast\n"
        "class _Swallow(ast.NodeTransformer):\n"
        "    def visit_Module(self, node):\n"
        "        h = ast.ExceptHandler(type=ast.Name('BaseException', ast.Load()), name=None, body=[ast.Pass()])\n"
        "        node.body = [ast.Try(body=node.body or [ast.Pass()], handlers=[h], orelse=[], finalbody=[])]\n"
        "        return ast.fix_missing_locations(node)\n"
        "get_ipython().ast_transformers.append(_Swallow())")}},
    "input_transformer": {"prefix": {"q1_mean_cost": (
        "get_ipython().input_transformers_post.append(\n"
        "    lambda lines: ['try:\\n'] + ['    ' + l for l in lines] + ['\\n    pass\\nexcept BaseException:\\n    pass\\n'])")}},
    # answers equal to anything (a float subclass; NumPy asks it too)
    "always_equal": {"answers": {
        "q1_mean_cost": ("class _Any(float):\n"
                         "    __eq__ = lambda self, other: True\n    __ne__ = lambda self, other: False\n"
                         "    __lt__ = __le__ = __gt__ = __ge__ = __eq__\n"
                         "    __sub__ = __rsub__ = __abs__ = lambda self, *a: _Any(0.0)\n"
                         "    __array_ufunc__ = lambda self, *a, **k: True\n"
                         "def mean_cost(costs):\n    return _Any(0.0)"),
        "q2_break_even": "def break_even(fixed, api_price, own_price):\n    return _Any(0.0)",
        "q3_p99": "def p99(latencies):\n    return _Any(0.0)"}},
}


def _score(nb) -> float:
    total = 0.0
    for cell in nb.cells:
        if is_grade(cell) and not is_solution(cell) and cell.cell_type == "code":
            score, _ = determine_grade(cell)
            total += score or 0.0
    return total


def _attack_notebook(solution_nb, name):
    spec = ATTACKS[name]
    answers = dict(WRONG)
    answers.update(spec.get("answers", {}))
    return submission(solution_nb, answers=answers, prefix=spec.get("prefix"))


def _resources():
    return {"metadata": {"path": str(FIXTURES / "solutions" / LAB)}}


def test_solution_scores_full_marks_with_both_executors(solution_nb):
    nb = submission(solution_nb, answers=SOLUTION)
    stock, _ = Execute(timeout=60).preprocess(nb.copy(), _resources())
    guarded, _ = grading.GuardedExecute(timeout=60).preprocess(nb, _resources())
    assert _score(stock) == 90.0
    assert _score(guarded) == 90.0


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_attack_fools_stock_nbgrader_but_not_the_kit(solution_nb, attack):
    import copy

    nb = _attack_notebook(solution_nb, attack)
    stock, _ = Execute(timeout=60).preprocess(copy.deepcopy(nb), _resources())
    assert _score(stock) > 0, f"{attack} no longer fools nbgrader's stock Execute; the control is void"
    guarded, _ = grading.GuardedExecute(timeout=60).preprocess(nb, _resources())
    assert _score(guarded) == 0.0


def test_a_startup_file_beside_an_untouched_blank_changes_nothing(released, tmp_path):
    """The submission folder becomes the kernel's home: its IPython startup file does run, and still
    cannot touch a test."""
    import shutil

    folder = tmp_path / "submission"
    shutil.copytree(FIXTURES / "solutions" / LAB, folder)
    startup = folder / ".ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-swallow.py").write_text(ATTACKS["ast_transformer"]["prefix"]["q1_mean_cost"].replace(
        "get_ipython()", "__import__('IPython').get_ipython()") + "\nSTARTUP_RAN = 'yes'\n")
    nb = submission(released)
    nb.cells.append(nbformat.v4.new_code_cell("print(STARTUP_RAN)"))
    out, _ = grading.GuardedExecute(timeout=60).preprocess(nb, {"metadata": {"path": str(folder)}})
    assert "".join(o.get("text", "") for o in out.cells[-1].outputs).strip() == "yes", "the attack did run"
    assert _score(out) == 0.0


def test_honest_shadowing_keeps_full_marks(solution_nb):
    """A submission that defines its own ``max`` or ``np`` (innocent shadowing) still gets full marks."""
    answers = dict(SOLUTION)
    answers["q1_mean_cost"] = "max = 3  # a student's own variable\n" + SOLUTION["q1_mean_cost"]
    out, _ = grading.GuardedExecute(timeout=60).preprocess(submission(solution_nb, answers=answers), _resources())
    assert _score(out) == 90.0


def test_kernel_sees_no_grader_secrets_and_a_private_home(solution_nb, monkeypatch):
    import nbformat

    monkeypatch.setenv("OPENAI_API_KEY", "sk-grader-secret")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp-grader-secret")
    nb = submission(solution_nb, answers=SOLUTION)
    probe = nbformat.v4.new_code_cell(
        "import os\nprint(repr(os.environ.get('OPENAI_API_KEY')), repr(os.environ.get('GITHUB_TOKEN')),\n"
        "      os.environ['HOME'] == os.getcwd(), os.environ.get('NBGRADER_EXECUTION'))")
    nb.cells.insert(2, probe)
    out, _ = grading.GuardedExecute(timeout=60).preprocess(nb, _resources())
    text = "".join(o.get("text", "") for o in out.cells[2].outputs)
    assert text.strip() == "None None True None", text


# ------------------------------------------------------------------------------------------
# Honest tests keep their meaning across the wall
# ------------------------------------------------------------------------------------------
def _lab(answer: str, *tests: str):
    """A one-answer notebook whose test cells are worth 1 point each."""
    cells = [nbformat.v4.new_code_cell("import numpy as np\nimport pandas as pd"),
             nbformat.v4.new_code_cell(answer, metadata={"nbgrader": {
                 "grade": False, "solution": True, "locked": False, "grade_id": "answer", "schema_version": 3}})]
    for i, test in enumerate(tests):
        cells.append(nbformat.v4.new_code_cell(test, metadata={"nbgrader": {
            "grade": True, "solution": False, "locked": True, "points": 1, "grade_id": f"t{i}",
            "schema_version": 3}}))
    return nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "language": "python",
                                                                         "display_name": "Python 3"}})


def _grades(nb, tmp_path, timeout=60):
    out, _ = grading.GuardedExecute(timeout=timeout, interrupt_grace=5).preprocess(
        nb, {"metadata": {"path": str(tmp_path)}})
    tests = [c for c in out.cells if is_grade(c) and not is_solution(c)]
    return [determine_grade(c)[0] for c in tests], tests


def test_in_place_changes_to_arguments_are_seen_by_the_test(tmp_path):
    nb = _lab("def scale(x):\n    x *= 2\n    return None\ndef drop(frame):\n    frame.drop(columns='b', inplace=True)",
              "_a = np.ones(3)\nscale(_a)\nassert _a.tolist() == [2.0, 2.0, 2.0]",
              "_f = pd.DataFrame({'a': [1], 'b': [2]})\ndrop(_f)\nassert list(_f.columns) == ['a']",
              "_l = np.ones(3)\nscale(_l)\nassert np.array_equal(_l, np.ones(3)), 'do not modify the input'")
    scores, _ = _grades(nb, tmp_path)
    assert scores == [1, 1, 0]


def test_exceptions_keep_their_builtin_type(tmp_path):
    nb = _lab("class BadInput(ValueError):\n    pass\n"
              "def check(x):\n    if x < 0:\n        raise BadInput('negative')\n    return float(x)",
              "try:\n    check(-1)\nexcept ValueError as e:\n    assert 'negative' in str(e)\nelse:\n    raise AssertionError",
              "assert check(2) == 2.0 and type(check(2)) is float",
              "check(-5)")
    scores, cells = _grades(nb, tmp_path)
    assert scores == [1, 1, 0]
    assert cells[2].outputs[-1]["ename"] == "ValueError"


def test_notebook_objects_answer_attribute_calls_and_isinstance(tmp_path):
    nb = _lab("import collections\nfrom sklearn.linear_model import LogisticRegression\n"
              "model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])\n"
              "counts = collections.OrderedDict(a=1)",
              "from sklearn.linear_model import LogisticRegression\n"
              "assert isinstance(model, LogisticRegression)\n"
              "assert model.predict(np.array([[0.0], [3.0]])).tolist() == [0, 1]\n"
              "assert model.n_features_in_ == 1",
              "assert counts == {'a': 1}")  # an OrderedDict is not a plain dict: it cannot be compared
    scores, cells = _grades(nb, tmp_path)
    assert scores == [1, 0]
    assert "not a plain value" in cells[1].outputs[-1]["evalue"]


def test_a_hidden_test_failure_shows_its_message_not_its_code(tmp_path):
    nb = _lab("def f():\n    return 1",
              "assert f() == 1\n### BEGIN HIDDEN TESTS\n_secret = 41 + 1\nassert f() == _secret, 'f is wrong'\n"
              "### END HIDDEN TESTS")
    scores, cells = _grades(nb, tmp_path)
    assert scores == [0]
    text = " ".join(str(v) for o in cells[0].outputs for v in o.values())
    assert "f is wrong" in text and "hidden test" in text and "_secret" not in text


def test_a_call_that_never_returns_fails_its_test_and_grading_goes_on(tmp_path):
    nb = _lab("import time\ndef slow():\n    while True:\n        time.sleep(0.05)\ndef fast():\n    return 1",
              "slow()", "assert fast() == 1")
    scores, cells = _grades(nb, tmp_path, timeout=3)
    assert scores == [0, 1]
    assert "limit" in cells[0].outputs[-1]["evalue"]
