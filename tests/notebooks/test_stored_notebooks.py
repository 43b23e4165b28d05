"""What every stored notebook (notebooks/, solutions/, labs/) must not carry."""

from __future__ import annotations

import nbformat
import pytest

from tradeoffs import course

ROOT = course.repo_root()
STORED = sorted([*ROOT.glob("notebooks/*.ipynb"), *ROOT.glob("solutions/*/*.ipynb"), *ROOT.glob("labs/*/*.ipynb")])


@pytest.mark.parametrize("path", STORED, ids=[str(p.relative_to(ROOT)) for p in STORED])
def test_no_papermill_injected_parameters(path):
    """A leftover `injected-parameters` cell overrides the parameters cell: a learner who sets
    MODE = "full" would silently run whatever papermill injected."""
    nb = nbformat.read(path, as_version=4)
    injected = [i for i, c in enumerate(nb.cells) if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected == [], f"{path.relative_to(ROOT)}: delete the papermill injected-parameters cell(s) {injected}"


@pytest.mark.parametrize("path", STORED, ids=[str(p.relative_to(ROOT)) for p in STORED])
def test_exactly_one_parameters_cell_with_mode_seed_device(path):
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{path.relative_to(ROOT)}: {len(cells)} cells tagged 'parameters'; exactly one"
    for name in ("MODE", "SEED", "DEVICE"):
        assert f"{name} =" in cells[0].source, f"{path.relative_to(ROOT)}: the parameters cell does not set {name}"
