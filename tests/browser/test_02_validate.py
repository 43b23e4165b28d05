"""A released lab in JupyterLab: run its parameters and set-up cells, then press nbgrader's Validate.

The blank lab (as released in labs/) must report failing tests; the same notebook with the solution's
answers pasted in (answer cells matched by nbgrader grade_id, nothing hard-coded per lab) must report
success. Both are copies in the temporary course: labs/ and solutions/ are never touched.
"""

from __future__ import annotations

import re

import nbformat
import pytest

from browser_helpers import LAB, cells, cell_errors, notebook_panel, open_notebook, run_cell, shoot

pytestmark = [pytest.mark.browser, pytest.mark.slow]

VALIDATE_MS = 300_000  # Validate runs the whole notebook at smoke size (nbgrader sets NBGRADER_EXECUTION)


def run_setup_and_validate(page, server, path: str, screenshots, step: str) -> str:
    """Open ``path``, run its parameters and set-up cells, press Validate; the dialog's class and text."""
    from playwright.sync_api import expect

    open_notebook(page, server, path)
    nb = nbformat.read(server.root / path, as_version=4)
    params = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    setup = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "setup(MODE" in c.source)
    for count, i in enumerate([params, setup], start=1):
        run_cell(page, i, count)
        assert not cell_errors(page, i), f"{path}: cell {i} shows an error: {cell_errors(page, i)}"
    setup_out = cells(page).nth(setup).locator(".jp-Cell-outputArea").inner_text()
    assert re.search(r"MODE=\w+", setup_out), f"{path}: the set-up cell printed {setup_out!r}"
    shoot(page, screenshots, f"{step}_setup_run")

    notebook_panel(page).locator(".validate-button").click()
    message = page.locator("#validation-message")
    message.wait_for(timeout=VALIDATE_MS)
    expect(page.locator(".jp-Dialog-header")).to_contain_text("Validation Results")
    shoot(page, screenshots, f"{step}_validate")
    result = f"{message.get_attribute('class')}\n{message.inner_text()}"
    page.locator(".jp-Dialog .jp-mod-accept").click()
    return result


def test_validate_blank_lab_fails(jupyterlab, page, screenshots):
    result = run_setup_and_validate(page, jupyterlab, f"labs/{LAB}/{LAB}.ipynb", screenshots, "03_lab_blank")
    assert "validation-failed" in result, f"Validate on the blank {LAB} did not report failing tests:\n{result}"
    assert "The following cell failed" in result, result


def test_validate_answered_lab_passes(jupyterlab, answered_lab, page, screenshots):
    result = run_setup_and_validate(page, jupyterlab, answered_lab, screenshots, "04_lab_answered")
    assert "validation-success" in result, f"Validate on {LAB} with the solution's answers failed:\n{result}"
    assert "Success! Your notebook passes all the tests." in result, result
