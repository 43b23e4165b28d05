"""What the browser tests do, step by step, as plain functions (the fixtures are in conftest.py).

A learner's actions in JupyterLab (open a notebook, select a cell, Shift+Enter, read its output) and
the course plumbing around them: the system Chromium, the flags `make lab` passes, the answered copy
of a released lab, a screenshot per step.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "build" / "browser-screenshots"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_HINT = ("no Chromium found for the browser tests: install it with `sudo apt-get install -y chromium` "
                "(Debian/Ubuntu) or set TRADEOFFS_CHROMIUM to a Chromium executable")
# The released lab whose notebook validates fastest at smoke size (docs/benchmarks.md, "Grading").
LAB = os.environ.get("TRADEOFFS_BROWSER_LAB", "lab2_complexity_vs_maintainability")
SERVER_START_S = 120
KERNEL_IDLE_MS = 120_000


def find_chromium() -> str | None:
    """The system Chromium: ``$TRADEOFFS_CHROMIUM`` if set, else the first known name on PATH."""
    explicit = os.environ.get("TRADEOFFS_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def lab_flags() -> list[str]:
    """The JupyterLab flags `make lab` passes (the Makefile is their one source)."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("`make` is not installed: the browser tests start JupyterLab with `make -s lab-flags`")
    out = subprocess.run([make, "-s", "--no-print-directory", "-C", str(REPO), "lab-flags"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert "--notebook-dir=." in out, f"make lab-flags printed {out}: expected --notebook-dir=."
    return out


def answered_notebook(released: nbformat.NotebookNode, solution: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The released notebook with each answer cell's source replaced by the solution's, by grade_id.

    Nothing is hard-coded per lab: every cell nbgrader marks ``solution: true`` (code answers and the
    memo) takes the source of the solution cell with the same grade_id; every other cell stays as
    released, so the locked tests are exactly the learner's.
    """
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in solution.cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    answered = nbformat.from_dict(json.loads(json.dumps(released)))
    replaced = 0
    for cell in answered.cells:
        meta = cell.metadata.get("nbgrader", {})
        if not meta.get("solution"):
            continue
        grade_id = meta["grade_id"]
        assert grade_id in answers, (f"answer cell {grade_id!r} of the released lab has no solution cell with "
                                     "that grade_id: regenerate labs/ with `make release`")
        cell.source = answers[grade_id]
        replaced += 1
    assert replaced, "the released lab has no nbgrader answer cells"
    return answered


@dataclass
class Server:
    url: str
    token: str
    root: Path
    log: Path

    def lab_url(self, path: str) -> str:
        # ?reset: a fresh layout, not the tabs the previous test left open (JupyterLab saves its workspace)
        return f"{self.url}/lab/tree/{path}?reset&token={self.token}"

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])


def api_call(server: Server, path: str, method: str = "GET") -> int:
    req = urllib.request.Request(f"{server.url}{path}", method=method,
                                 headers={"Authorization": f"token {server.token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status


def get_json(server: Server, path: str):
    """GET a JupyterLab REST endpoint with the token."""
    req = urllib.request.Request(f"{server.url}{path}", headers={"Authorization": f"token {server.token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)


def shutdown_kernels(server: Server) -> None:
    for kernel in get_json(server, "/api/kernels"):
        api_call(server, f"/api/kernels/{kernel['id']}", method="DELETE")


# ---------------------------------------------------------------- what a learner does, step by step


def shoot(page, screenshots: Path, name: str) -> Path:
    path = screenshots / f"{name}.png"
    page.screenshot(path=str(path))
    print(f"screenshot: {path}")
    return path


def open_notebook(page, server: Server, path: str) -> None:
    """Open a notebook in JupyterLab and wait until its kernel is idle."""
    page.goto(server.lab_url(path))
    wait_notebook(page)


def wait_notebook(page) -> None:
    notebook_panel(page).locator(".jp-Notebook .jp-Cell").first.wait_for()
    wait_idle(page)


def wait_idle(page, timeout_ms: int = KERNEL_IDLE_MS) -> None:
    """Wait until the visible notebook's kernel is connected and idle (a cell run before that is dropped)."""
    from playwright.sync_api import expect

    # The status bar reads "Python 3 (ipykernel) | Idle" once the kernel is connected and idle.
    status = page.locator("#jp-main-statusbar").get_by_text(re.compile(r"\|\s*Idle$")).first
    expect(status).to_be_visible(timeout=timeout_ms)
    notebook_panel(page).locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(timeout=timeout_ms)


def notebook_panel(page):
    """The notebook in the visible tab."""
    return page.locator(".jp-NotebookPanel").filter(visible=True).first


def cells(page):
    return notebook_panel(page).locator(".jp-Notebook .jp-Cell")


def run_cell(page, index: int, count: int, timeout_ms: int = KERNEL_IDLE_MS) -> None:
    """Select cell ``index`` (0-based, all cells), press Shift+Enter, wait until it has run.

    ``count`` is the execution count the cell must show when done (the kernel's n-th run): a copy of a
    notebook stored with outputs shows old counts, which must not pass for a finished run.
    """
    from playwright.sync_api import expect

    cell = cells(page).nth(index)
    cell.scroll_into_view_if_needed()
    cell.locator(".jp-InputPrompt").click()
    expect(cell).to_have_class(re.compile(r"\bjp-mod-selected\b"))
    page.keyboard.press("Shift+Enter")
    expect(cell.locator(".jp-InputArea-prompt")).to_have_text(f"[{count}]:", timeout=timeout_ms)


def errors_in(locator) -> list[str]:
    """Error outputs (tracebacks; JupyterLab renders them as stderr) under ``locator``. Warnings and
    progress bars also go to stderr: they are not errors."""
    outputs = locator.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    return [t for t in outputs.all_inner_texts() if "Traceback" in t or re.search(r"(?m)^\w*Error\b", t)]


def cell_errors(page, index: int) -> list[str]:
    """Error outputs shown under cell ``index``."""
    return errors_in(cells(page).nth(index))
