"""Concept notebooks keep their outputs (they render on GitHub) and still run.

The conftest beside this file turns every ``notebooks/NN_*.ipynb`` into nbval-lax tests collected
from here; the tests below check what nbval cannot.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbval.plugin import get_sanitize_patterns

from tradeoffs import course

SANITIZE = Path(__file__).parent / "nbval_sanitize.cfg"

NOTEBOOKS = course.concept_notebooks()
pytestmark = pytest.mark.notebooks


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_concept_notebook_stores_its_outputs(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    assert code and any(c.outputs for c in code), f"{path.name} has no stored outputs; execute and save it"
    assert any("parameters" in c.metadata.get("tags", []) for c in code), f"{path.name} has no parameters cell"


def test_sanitize_file_is_valid_and_covers_volatile_output():
    rules = get_sanitize_patterns(SANITIZE.read_text())  # exactly how nbval reads it
    assert len(rules) == SANITIZE.read_text().count("\nregex: ")

    def sanitize(text):
        for regex, replace in rules:
            text = re.sub(regex, replace, text)
        return text

    a = "SmolLM2 loaded on cpu in 11.7 s at 0x7f3a2c1d90 from /root/.cache/tradeoffs/models [CPU x86_64, 2 cores, torch 2.13.0]"
    b = "SmolLM2 loaded on cpu in 0.9 s at 0x55d0aa11b2 from /home/ci/.cache/tradeoffs/models [CPU arm, 8 cores, torch 2.13.0]"
    assert sanitize(a) == sanitize(b)
    assert sanitize("accuracy 0.91") == "accuracy 0.91"  # results are not sanitized away


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_concept_notebook_checks_some_stable_output(path):
    """nbval-lax compares only cells marked NBVAL_CHECK_OUTPUT: each notebook must mark at least one."""
    nb = nbformat.read(path, as_version=4)
    marked = [c for c in nb.cells if c.cell_type == "code" and "NBVAL_CHECK_OUTPUT" in c.source]
    assert marked, (f"{path.name}: mark a cell whose output must stay the same (a result computed from "
                    f"fixed data and seeds) with a first line `# NBVAL_CHECK_OUTPUT`")


def test_sanitized_nbval_run_passes_where_a_raw_one_fails(tmp_path):
    """The sanitize file, used by nbval itself, absorbs a timing and an address but not a result."""
    import subprocess
    import sys

    cell = nbformat.v4.new_code_cell(
        "# NBVAL_CHECK_OUTPUT\nimport time\nt0 = time.perf_counter()\n"
        "print(f'accuracy 0.91 in {time.perf_counter() - t0 + 1:.3f} s at {hex(id(t0))}')")
    cell.execution_count = 1
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout",
                                           text="accuracy 0.91 in 7.250 s at 0x7f3a2c1d9a10\n")]
    nb = nbformat.v4.new_notebook(cells=[cell], metadata={"kernelspec": {"name": "python3",
                                  "display_name": "Python 3", "language": "python"}})
    path = tmp_path / "probe.ipynb"
    nbformat.write(nb, path)

    def nbval(*extra):
        return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
                               *extra, str(path)], capture_output=True, text=True, cwd=tmp_path, timeout=300)

    assert nbval().returncode != 0
    sanitized = nbval("--nbval-sanitize-with", str(SANITIZE))
    assert sanitized.returncode == 0, sanitized.stdout[-2000:]
    cell.outputs[0]["text"] = "accuracy 0.87 in 7.250 s at 0x7f3a2c1d9a10\n"  # a different result
    nbformat.write(nb, path)
    assert nbval("--nbval-sanitize-with", str(SANITIZE)).returncode != 0
