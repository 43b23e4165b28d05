"""A what-if calculator (tradeoffs.whatif.calculator) in JupyterLab: move a slider, the output changes.

Preferred: the real calculator of a released lab (WHATIF_LAB), answered with the solution's cells
(conftest.answered_notebook) and run from the UI at smoke size with Run > Run All Cells, so its sliders
start at the numbers the notebook just measured. If that lab has no calculator cell, a small notebook
in the temporary course calls the calculator with a real library callback instead.
"""

from __future__ import annotations

import os
import re

import nbformat
import pytest

from browser_helpers import (REPO, answered_notebook, cells, errors_in, notebook_panel, open_notebook, run_cell,
                             shoot, wait_idle)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WHATIF_LAB = os.environ.get("TRADEOFFS_BROWSER_WHATIF_LAB", "lab6_automation_vs_oversight")
RUN_ALL_MS = 420_000

FALLBACK = '''\
from tradeoffs import pricing
from tradeoffs.whatif import calculator

calculator(
    lambda peak_rps, utilisation: f"{pricing.machines_needed(peak_rps, 4.0, utilisation)} machines at peak",
    {"peak_rps": (1.0, 100.0, 1.0, 10.0), "utilisation": (0.1, 1.0, 0.05, 0.5)},
    title="Fleet for the peak")'''


def _is_calculator(cell) -> bool:
    return cell.cell_type == "code" and "calculator(" in cell.source


@pytest.fixture(scope="module")
def whatif_notebook(course) -> tuple[str, int, bool]:
    """(path in the course, index of the calculator cell, whether it is a real lab)."""
    released_path = REPO / "labs" / WHATIF_LAB / f"{WHATIF_LAB}.ipynb"
    released = nbformat.read(released_path, as_version=4) if released_path.exists() else None
    if released is not None and any(_is_calculator(c) for c in released.cells):
        solution = nbformat.read(REPO / "solutions" / WHATIF_LAB / f"{WHATIF_LAB}.ipynb", as_version=4)
        nb = answered_notebook(released, solution)
        params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        # What papermill does for CI: the same notebook at smoke size.
        params.source = re.sub(r'(?m)^MODE\s*=\s*"\w+"', 'MODE = "smoke"', params.source)
        assert 'MODE = "smoke"' in params.source, params.source
        folder, real = course / "whatif" / WHATIF_LAB, True
        name = f"{WHATIF_LAB}.ipynb"
    else:
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_markdown_cell("# What-if: the fleet for a peak load"),
                    nbformat.v4.new_code_cell(FALLBACK)]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
        folder, real, name = course / "whatif", False, "whatif_calculator.ipynb"
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / name)
    index = next(i for i, c in enumerate(nb.cells) if _is_calculator(c))
    return str((folder / name).relative_to(course)), index, real


def drag_handle(page, slider, fraction: float) -> None:
    """Drag a slider's handle to ``fraction`` of its track with the mouse, as a learner does."""
    slider.scroll_into_view_if_needed()
    track = slider.locator(".noUi-target").bounding_box()
    box = slider.locator(".noUi-handle").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] / 2, y)
    page.mouse.down()
    page.mouse.move(track["x"] + fraction * track["width"], y, steps=12)
    page.mouse.up()


def test_moving_a_slider_recomputes(jupyterlab, whatif_notebook, page, screenshots):
    from playwright.sync_api import expect

    path, index, real = whatif_notebook
    open_notebook(page, jupyterlab, path)
    if real:
        page.locator("#jp-MainMenu").get_by_text("Run", exact=True).click()
        page.locator(".lm-Menu").get_by_text("Run All Cells", exact=True).click()
    else:
        run_cell(page, index, 1)
    cell = cells(page).nth(index)
    sliders = cell.locator(".widget-slider")
    sliders.first.wait_for(timeout=RUN_ALL_MS)
    wait_idle(page, RUN_ALL_MS)
    errors = errors_in(notebook_panel(page))
    assert not errors, f"{path}: cells show errors:\n" + "\n\n".join(errors)
    expect(cell.locator(".jp-Cell-outputArea")).to_contain_text("at your measured numbers")
    whatif = cell.locator(".widget-output").last
    before = whatif.inner_text()
    assert before.strip(), "the what-if output is empty at the defaults"
    slider = sliders.first
    readout = slider.locator(".widget-readout")
    start = readout.inner_text()
    whatif.scroll_into_view_if_needed()  # the sliders and, under them, the what-if output
    shoot(page, screenshots, "05_whatif_calculator_at_defaults")

    drag_handle(page, slider, 0.8)
    expect(readout).not_to_have_text(start)
    expect(whatif).not_to_have_text(before, use_inner_text=True, timeout=30_000)
    if not real:  # the fallback's answer is known: ceil(peak / (4 rps x 0.5)) machines
        peak = float(readout.inner_text())
        expect(whatif).to_have_text(re.compile(f"^'?{-(-peak // 2):.0f} machines at peak'?$"), use_inner_text=True)
    wait_idle(page)
    whatif.scroll_into_view_if_needed()
    shoot(page, screenshots, "06_whatif_slider_moved")
    print(f"what-if ({path}): {slider.inner_text()!r} moved from {start} to {readout.inner_text()}; "
          f"output {before!r} -> {whatif.inner_text()!r}")
