"""Browser tests: a real Chromium (Playwright, headless) drives JupyterLab as a learner would.

JupyterLab starts with the flags `make lab` uses (`make -s lab-flags` prints them), plus a free port
on 127.0.0.1, a random token and no browser of its own, in a temporary course folder holding copies
of the notebooks under test (the repository's notebooks are never opened, so autosave cannot touch
them). The kernel finds the kit's datasets and models through ``$TRADEOFFS_REPO``. Jupyter's user
config, data and runtime folders point into the temporary folder too: a learner's own settings or
saved workspace cannot change what the tests see, and the course's settings (overrides.json,
installed into the venv by `make install`) are the ones under test.

Playwright's own browser download needs the network, so the tests use the system Chromium
(``$TRADEOFFS_CHROMIUM``, else ``chromium`` / ``chromium-browser`` / ``google-chrome`` on PATH) and
skip with the install command when there is none. Every step saves a screenshot into
build/browser-screenshots/ (printed at the end of the run).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
from pathlib import Path

import nbformat
import psutil
import pytest

from browser_helpers import (INSTALL_HINT, LAB, REPO, SCREENSHOTS, SERVER_START_S, Server, answered_notebook,
                             api_call, find_chromium, lab_flags, shoot, shutdown_kernels)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def chromium() -> str:
    path = find_chromium()
    if path is None:
        pytest.skip(INSTALL_HINT)
    try:
        import playwright.sync_api  # noqa: F401  (installed with the dev extras)
    except ImportError:
        pytest.skip("playwright is not installed: `.venv/bin/pip install -e '.[dev]'`")
    return path


@pytest.fixture(scope="session")
def course(tmp_path_factory) -> Path:
    """A throwaway course folder: copies of the notebooks under test, never the repository's own."""
    root = tmp_path_factory.mktemp("course")
    shutil.copy(REPO / "nbgrader_config.py", root)  # nbgrader's Validate reads the course's config
    (root / "notebooks").mkdir()
    shutil.copy(REPO / "notebooks" / "00_start_here.ipynb", root / "notebooks")
    shutil.copytree(REPO / "labs" / LAB, root / "labs" / LAB)
    # `make lab` signs the kit's notebooks (trust database in the venv); sign the copy the same way.
    notary = [f for f in lab_flags() if f.startswith("--NotebookNotary.")]
    for flag in notary:
        Path(flag.split("=", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(Path(sys.executable).parent / "jupyter"), "trust", *notary,
                    str(root / "notebooks" / "00_start_here.ipynb")], check=True, capture_output=True)
    return root


@pytest.fixture(scope="session")
def answered_lab(course) -> str:
    """The released lab with the solution's answers pasted in, beside the blank copy; its path in the course."""
    released = nbformat.read(course / "labs" / LAB / f"{LAB}.ipynb", as_version=4)
    solution = nbformat.read(REPO / "solutions" / LAB / f"{LAB}.ipynb", as_version=4)
    (course / "answered" / LAB).mkdir(parents=True, exist_ok=True)
    nbformat.write(answered_notebook(released, solution), course / "answered" / LAB / f"{LAB}.ipynb")
    return f"answered/{LAB}/{LAB}.ipynb"


@pytest.fixture(scope="session")
def jupyterlab(chromium, course, tmp_path_factory) -> Server:
    """JupyterLab as `make lab` starts it, on a free loopback port with a token; always stopped."""
    private = tmp_path_factory.mktemp("jupyter-home")
    token = secrets.token_hex(16)
    port = _free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in {"MPLBACKEND", "NBGRADER_EXECUTION", "NBGRADER_VALIDATING", "JUPYTERLAB_SETTINGS_DIR",
                        "JUPYTERLAB_WORKSPACES_DIR"}}
    env.update(TRADEOFFS_REPO=str(REPO), JUPYTER_CONFIG_DIR=str(private / "config"),
               JUPYTER_DATA_DIR=str(private / "data"), JUPYTER_RUNTIME_DIR=str(private / "runtime"),
               PYTHONUNBUFFERED="1")
    jupyter = Path(sys.executable).parent / "jupyter"
    cmd = [str(jupyter), "lab", *lab_flags(), "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}"]
    log = private / "jupyterlab.log"
    server = Server(url=f"http://127.0.0.1:{port}", token=token, root=course, log=log)
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=course, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with code {proc.returncode}:\n{server.log_tail()}")
            try:
                if api_call(server, "/api/status") == 200:
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer within {SERVER_START_S} s:\n{server.log_tail()}")
            time.sleep(0.5)
        yield server
    finally:
        _stop(proc, server)


def _stop(proc: subprocess.Popen, server: Server) -> None:
    """Shut JupyterLab down with its kernels; kill whatever is left (the kernels run in sessions of
    their own, so they are collected from the process tree first)."""
    try:
        family = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    try:
        api_call(server, "/api/shutdown", method="POST")
        proc.wait(timeout=30)
    except Exception:  # noqa: BLE001 - whatever went wrong, the kill below still runs
        pass
    for p in [psutil.Process(proc.pid)] if proc.poll() is None else []:
        family.append(p)
    for p in family:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(family, timeout=10)
    if proc.poll() is None:
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser(chromium):
    """One Chromium per test module. Playwright's sync API keeps an asyncio loop running on this thread
    until it stops, so it must stop before the rest of the suite (asyncio.run() refuses to start
    inside a running loop): module scope ends it with the last browser test."""
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    # Chromium refuses to sandbox itself as root (containers, CI).
    args = ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    b = pw.chromium.launch(executable_path=chromium, headless=True, args=args)
    try:
        yield b
    finally:
        b.close()
        pw.stop()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def page(browser, jupyterlab, screenshots, request):
    """A fresh browser tab; when the test fails, what it showed is saved as FAILED_<test>.png. Afterwards
    the kernels the test started are shut down (the next test starts its own)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    p = context.new_page()
    p.set_default_timeout(60_000)
    try:
        yield p
    finally:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            shoot(p, screenshots, f"FAILED_{request.node.name}")
        context.close()
        shutdown_kernels(jupyterlab)


_SHOT_THIS_RUN = []


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """build/browser-screenshots/, emptied at the start of each run that uses it."""
    if SCREENSHOTS.exists():
        shutil.rmtree(SCREENSHOTS)
    SCREENSHOTS.mkdir(parents=True)
    _SHOT_THIS_RUN.append(True)
    return SCREENSHOTS


def pytest_terminal_summary(terminalreporter):
    if _SHOT_THIS_RUN and SCREENSHOTS.is_dir():
        shots = sorted(p.name for p in SCREENSHOTS.glob("*.png"))
        if shots:
            terminalreporter.write_line(f"browser screenshots ({len(shots)}): "
                                        f"{SCREENSHOTS.relative_to(REPO)}/ — {', '.join(shots)}")
