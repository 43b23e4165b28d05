"""Every lab follows the rules of graded work, checked statically on its instructor notebook.

The rules (docs/authoring.md, "Graded work"):

* the learner's graded functions drive the experiment: each one is used by a later cell that is
  neither an answer nor a test;
* predict, then measure: a ``prediction`` cell precedes each main experiment (``experiment`` cell),
  and each prediction is set beside its measurement with ``compare_prediction``;
* every part has a collapsed hint and at least two test cells (core, then edge cases), with points;
* autograded parts are worth 80 points and the memo 20 in every lab; the memo's rubric adds up to
  its points and the learner sees a checklist.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict

import nbformat
import pytest

from tradeoffs import course

LABS = course.existing_labs()
AUTOGRADED_POINTS = 80.0
MEMO_POINTS = 20.0
PART = re.compile(r"^q(\d+)_")


def _meta(cell) -> dict:
    return cell.metadata.get("nbgrader") or {}


def _is_answer(cell) -> bool:
    return cell.cell_type == "code" and _meta(cell).get("solution") and not _meta(cell).get("grade")


def _is_test(cell) -> bool:
    return cell.cell_type == "code" and _meta(cell).get("grade") and not _meta(cell).get("solution")


def _tags(cell) -> list[str]:
    return list(cell.metadata.get("tags") or [])


def _tree(source: str) -> ast.AST:
    """Parse a code cell, ignoring IPython magics and shell escapes."""
    lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()]
    return ast.parse("\n".join(lines))


def _loaded_names(source: str) -> set[str]:
    return {n.id for n in ast.walk(_tree(source)) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


@pytest.fixture(params=LABS)
def lab(request):
    return request.param


@pytest.fixture
def nb(lab):
    return nbformat.read(course.solution_notebook(lab), as_version=4)


def _parts(nb) -> dict[str, dict[str, list]]:
    parts: dict[str, dict[str, list]] = defaultdict(lambda: {"answers": [], "tests": [], "statements": []})
    for index, cell in enumerate(nb.cells):
        match = PART.match(_meta(cell).get("grade_id") or "")
        if not match:
            continue
        part = f"q{match.group(1)}"
        if _is_answer(cell):
            parts[part]["answers"].append((index, cell))
        elif _is_test(cell):
            parts[part]["tests"].append((index, cell))
        elif cell.cell_type == "markdown" and _meta(cell).get("grade_id") == f"{part}_md":
            parts[part]["statements"].append((index, cell))
    return dict(parts)


def test_at_least_five_parts_each_with_an_answer(lab, nb):
    parts = _parts(nb)
    assert len(parts) >= 5, f"{lab}: {len(parts)} graded parts ({sorted(parts)}); a lab has at least 5"
    for part, cells in parts.items():
        assert cells["answers"], f"{lab}: part {part} has test cells but no answer cell (grade_id {part}_<name>)"


def test_every_part_has_a_hint_and_at_least_two_test_cells(lab, nb):
    for part, cells in _parts(nb).items():
        assert len(cells["statements"]) == 1, f"{lab}: part {part} needs one statement cell with grade_id {part}_md"
        statement = cells["statements"][0][1].source
        assert "<details>" in statement and "<summary>" in statement, \
            f"{lab}: {part}_md has no collapsed hint (<details><summary>Hint 1</summary>...</details>)"
        tests = cells["tests"]
        assert len(tests) >= 2, (f"{lab}: part {part} has {len(tests)} test cell(s); split its points over at "
                                 f"least two ({part}_tests_core, {part}_tests_edge) for partial credit")
        for _, cell in tests:
            gid = _meta(cell)["grade_id"]
            assert gid.startswith(f"{part}_tests"), f"{lab}: test cell {gid} should be named {part}_tests_<what>"
            assert float(_meta(cell).get("points", 0)) > 0, f"{lab}: test cell {gid} carries no points"
        first_answer = min(i for i, _ in cells["answers"])
        assert cells["statements"][0][0] < first_answer, f"{lab}: {part}_md must come before the part's answer"


def test_graded_functions_drive_later_cells(lab, nb):
    """Rule 1: what the lab shows next comes out of the learner's code."""
    unused = []
    for index, cell in enumerate(nb.cells):
        if not _is_answer(cell):
            continue
        defined = [n.name for n in _tree(cell.source).body if isinstance(n, ast.FunctionDef)]
        later = set().union(*[_loaded_names(c.source) for c in nb.cells[index + 1:]
                              if c.cell_type == "code" and not _meta(c).get("grade") and not _meta(c).get("solution")]
                            or [set()])
        unused += [f"{name} ({_meta(cell)['grade_id']})" for name in defined if name not in later]
    assert unused == [], f"{lab}: graded functions never used by a later experiment cell: {unused}"


def test_a_prediction_precedes_each_main_experiment(lab, nb):
    """Rule 4: predict, then measure, then set the two side by side."""
    code = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    experiments = [i for i, c in code if "experiment" in _tags(c)]
    predictions = [i for i, c in code if "prediction" in _tags(c)]
    assert experiments, f"{lab}: tag the first cell of each main experiment with 'experiment'"
    previous = -1
    for start in experiments:
        assert any(previous < p < start for p in predictions), \
            f"{lab}: the experiment at cell {start} has no 'prediction' cell between cell {previous} and it"
        previous = start
    for index in predictions:
        cell = nb.cells[index]
        assert not _meta(cell).get("grade") and not _meta(cell).get("solution"), \
            f"{lab}: prediction cell {index} must be a plain cell the learner edits, not an nbgrader cell"
        names = [t.id for n in _tree(cell.source).body if isinstance(n, ast.Assign)
                 for t in n.targets if isinstance(t, ast.Name)]
        predicted = [n for n in names if n.startswith("predicted_")]
        assert predicted, f"{lab}: prediction cell {index} assigns no predicted_<what> variable"
        for name in predicted:
            compared = any(isinstance(n, ast.Call) and getattr(n.func, "id", getattr(n.func, "attr", None))
                           == "compare_prediction" and name in {a.id for a in ast.walk(n) if isinstance(a, ast.Name)}
                           for _, c in code if _ > index for n in ast.walk(_tree(c.source)))
            assert compared, f"{lab}: {name} is never set beside its measurement with compare_prediction(...)"


def test_points_are_80_autograded_and_20_for_the_memo(lab, nb):
    autograded = sum(float(_meta(c).get("points", 0)) for c in nb.cells if _is_test(c))
    memos = [c for c in nb.cells if c.cell_type == "markdown" and _meta(c).get("grade") and _meta(c).get("solution")]
    assert autograded == AUTOGRADED_POINTS, f"{lab}: autograded parts are worth {autograded:g}, not {AUTOGRADED_POINTS:g}"
    assert len(memos) == 1, f"{lab}: {len(memos)} manually graded memo cells; a lab has exactly one"
    assert float(_meta(memos[0]).get("points", 0)) == MEMO_POINTS, f"{lab}: the memo is not worth {MEMO_POINTS:g}"


def test_memo_has_a_rubric_that_adds_up_and_a_checklist(lab, nb):
    index = next(i for i, c in enumerate(nb.cells)
                 if c.cell_type == "markdown" and _meta(c).get("grade") and _meta(c).get("solution"))
    memo = nb.cells[index]
    points = float(_meta(memo)["points"])
    header = re.search(r"\*\*Rubric \((\d+) points\)\*\*", memo.source)
    assert header, f"{lab}: the memo's reference answer has no '**Rubric ({points:g} points)**' block"
    assert float(header.group(1)) == points, f"{lab}: the rubric says {header.group(1)} points, the memo is worth {points:g}"
    items = [float(x) for x in re.findall(r"^\s*- \((\d+(?:\.\d+)?) pts?\)", memo.source[header.end():], re.M)]
    assert len(items) >= 3 and sum(items) == points, \
        f"{lab}: rubric criteria {items} should be at least three '- (N pts) ...' lines adding up to {points:g}"
    statement = nb.cells[index - 1]
    assert statement.cell_type == "markdown", f"{lab}: the cell before the memo should be its statement"
    checklist = re.findall(r"^\s*- \[ \] \S", statement.source, re.M)
    assert len(checklist) >= 3, f"{lab}: the memo statement should give the learner a checklist ('- [ ] ...', >= 3)"


def test_released_lab_holds_no_rubric_or_reference_answers(lab):
    released = nbformat.read(course.repo_root() / "labs" / lab / f"{lab}.ipynb", as_version=4)
    text = "\n".join(c.source for c in released.cells)
    assert "**Rubric (" not in text, f"{lab}: the released lab shows the memo rubric; run `make release`"
    assert "BEGIN HIDDEN TESTS" not in text and "BEGIN SOLUTION" not in text, \
        f"{lab}: the released lab still holds solutions or hidden tests; run `make release`"
