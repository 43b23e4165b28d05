"""Fixtures for the dataset tests: the shipped data, the build scripts as modules, a scratch copy."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

from tradeoffs import data


def _load_script(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses need the module registered while it executes
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def root() -> Path:
    return data.datasets_dir()


@pytest.fixture(scope="session")
def build_mod(root):
    """``datasets/support_tickets/build.py`` imported as a module."""
    return _load_script("tickets_build", root / "support_tickets" / "build.py")


@pytest.fixture(scope="session")
def trace_mod(root):
    """``datasets/traffic/make_trace.py`` imported as a module."""
    return _load_script("traffic_make_trace", root / "traffic" / "make_trace.py")


@pytest.fixture(scope="session")
def tickets():
    return data.load_tickets()


@pytest.fixture(scope="session")
def trace():
    return data.load_trace()


@pytest.fixture()
def data_copy(tmp_path, root) -> Path:
    """A scratch copy of the shipped data files with a manifest that matches them, to corrupt at will.

    The manifest is rewritten for the copy so that error-path tests start from a consistent state even
    while the raw files are being edited; ``test_shipped_files_match_the_manifest`` checks the real one.
    """
    dest = tmp_path / "datasets"
    for rel in data.manifest_files(root):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, dest / rel)
    data.write_manifest(dest)
    return dest
