"""The 90-minute workshop notebook runs top to bottom (papermill, smoke size) and stays a workshop."""

from __future__ import annotations

import nbformat
import pytest

from tradeoffs import course, runner

WORKSHOP = course.repo_root() / "notebooks" / "workshop_90_minutes.ipynb"
pytestmark = [pytest.mark.notebooks, pytest.mark.slow, pytest.mark.models]


def test_workshop_runs_in_smoke_mode(tmp_path):
    result = runner.run_notebook(WORKSHOP, tmp_path / WORKSHOP.name, mode="smoke", timeout=600)
    assert result.ok, f"the workshop failed in smoke mode after {result.seconds:.0f} s: {result.error}"
    out = nbformat.read(tmp_path / WORKSHOP.name, as_version=4)
    text = "\n".join(o.get("text", "") for c in out.cells if c.cell_type == "code" for o in c.outputs)
    assert text.count("no prediction written") == 7, "every segment sets its predictions beside a measurement"
    assert text.count("at your measured numbers") == 2, "both what-if calculators show their default state"


def test_workshop_visits_six_trade_offs_each_with_a_prediction_before_its_experiment():
    nb = nbformat.read(WORKSHOP, as_version=4)
    tags = [t for c in nb.cells for t in c.metadata.get("tags", []) if t in ("prediction", "experiment")]
    assert tags == ["prediction", "experiment"] * 6, tags
    headings = [c.source.splitlines()[0] for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("## ")]
    assert len([h for h in headings if h[3].isdigit()]) == 6, headings


def test_workshop_is_stored_without_outputs_and_is_not_graded():
    nb = nbformat.read(WORKSHOP, as_version=4)
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), "store it without outputs"
    assert not any(c.metadata.get("nbgrader") for c in nb.cells), "the workshop has no graded cells"
