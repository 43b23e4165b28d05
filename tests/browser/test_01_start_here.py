"""The first thing a learner does: `make lab`, open notebooks/00_start_here.ipynb, run its first cells."""

from __future__ import annotations

import re

import nbformat
import pytest

from browser_helpers import cells, cell_errors, get_json, run_cell, shoot, wait_notebook

pytestmark = pytest.mark.browser


def test_start_here_runs_from_the_ui(jupyterlab, page, screenshots):
    # The URL `make lab` prints without a display, on a first visit (?reset: no layout saved by earlier tests).
    page.goto(f"{jupyterlab.url}/lab?reset&token={jupyterlab.token}")
    listing = page.locator(".jp-DirListing-content .jp-DirListing-item")
    listing.filter(has_text="notebooks").first.wait_for()
    names = set(page.locator(".jp-DirListing-content .jp-DirListing-itemName").all_inner_texts())
    assert {"labs", "notebooks"} <= names, f"the file browser does not show the course root: {names}"
    # The course's settings (jupyter/overrides.json, installed into the venv by `make install`): no
    # "get notified about Jupyter news" prompt. Without them the prompt shows as soon as the page loads.
    # (overrides.json replaces the schema's defaults, which is what the settings API serves).
    news = get_json(jupyterlab, "/lab/api/settings/@jupyterlab/apputils-extension:notification")
    default = news["schema"]["properties"]["fetchNews"].get("default")
    assert default == "false", f"JupyterLab's fetchNews default is {default!r}: run `make install`"
    page.wait_for_timeout(1500)
    assert page.get_by_text("official Jupyter news").count() == 0, "the Jupyter news prompt is shown"
    shoot(page, screenshots, "01_lab_at_course_root")

    listing.filter(has_text="notebooks").first.dblclick()
    listing.filter(has_text="00_start_here.ipynb").first.dblclick()
    wait_notebook(page)
    trust = page.locator(".jp-StatusItem-trust").first
    trust.wait_for()
    assert "Notebook trusted" in (trust.get_attribute("title") or ""), trust.get_attribute("title")

    nb = nbformat.read(jupyterlab.root / "notebooks" / "00_start_here.ipynb", as_version=4)
    # Its first code cells, up to the machine check (the doctor): parameters, setup(), doctor.
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    doctor = next(i for i in code if "doctor" in nb.cells[i].source)
    to_run = [i for i in code if i <= doctor]
    for count, i in enumerate(to_run, start=1):
        run_cell(page, i, count)
        assert not cell_errors(page, i), f"cell {i} shows an error: {cell_errors(page, i)}"
    setup_cell = next(i for i in to_run if "setup(" in nb.cells[i].source)
    setup_out = cells(page).nth(setup_cell).locator(".jp-Cell-outputArea").inner_text()
    assert re.search(r"MODE=\w+\s+SEED=0", setup_out), setup_out
    doctor_out = cells(page).nth(doctor).locator(".jp-Cell-outputArea").inner_text()
    assert "doctor exit code: 0" in doctor_out, doctor_out
    cells(page).nth(doctor).scroll_into_view_if_needed()
    shoot(page, screenshots, "02_start_here_first_cells_run")
