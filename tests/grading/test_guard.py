"""The execution guard: attacks that fool nbgrader's stock ``Execute`` score zero under ``GuardedExecute``.

Each attack is a submission with *wrong* answers plus a trick. Run with nbgrader's own Execute
preprocessor the trick earns marks (so these tests can fail: they prove the attack is real); run
with the kit's GuardedExecute the same notebook scores zero.
"""

from __future__ import annotations

import pytest
from nbgrader.preprocessors import Execute
from nbgrader.utils import determine_grade, is_grade, is_solution

from tradeoffs import grading
from tradeoffs.grading import guarded

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
def test_attack_fools_stock_nbgrader_but_not_the_guard(solution_nb, attack):
    import copy

    nb = _attack_notebook(solution_nb, attack)
    stock, _ = Execute(timeout=60).preprocess(copy.deepcopy(nb), _resources())
    assert _score(stock) > 0, f"{attack} no longer fools nbgrader's stock Execute; the control is void"
    executor = grading.GuardedExecute(timeout=60)
    guarded, _ = executor.preprocess(nb, _resources())
    assert _score(guarded) == 0.0
    if attack in ("patch_globals", "patch_during_test"):
        assert executor.report["tampering"], "tampering should be reported to the instructor"


def test_guard_reports_restoration_but_keeps_honest_shadowing_working(solution_nb):
    """A submission that defines its own ``max`` (innocent shadowing) still gets full marks."""
    answers = dict(SOLUTION)
    answers["q1_mean_cost"] = "max = 3  # a student's own variable\n" + SOLUTION["q1_mean_cost"]
    nb = submission(solution_nb, answers=answers)
    executor = grading.GuardedExecute(timeout=60)
    out, _ = executor.preprocess(nb, _resources())
    assert _score(out) == 90.0
    assert not executor.report["tampering"]


def test_neutralise_partial_credit_keeps_an_honest_trailing_expression():
    import nbformat

    cell = nbformat.v4.new_code_cell("check(answer)")
    cell.outputs = [nbformat.v4.new_output("execute_result", data={"text/plain": "12"}, execution_count=1)]
    guarded._neutralise_partial_credit(cell)
    assert cell.outputs[0].output_type == "execute_result"

    cell = nbformat.v4.new_code_cell("assert f(1) == 2")
    cell.outputs = [nbformat.v4.new_output("execute_result", data={"text/plain": "30"}, execution_count=1),
                    nbformat.v4.new_output("error", ename="AssertionError", evalue="", traceback=[])]
    guarded._neutralise_partial_credit(cell)
    assert cell.outputs[0].output_type == "display_data"


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
