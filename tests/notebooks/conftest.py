"""Collect the concept notebooks (``notebooks/*.ipynb``) as nbval tests when plain ``pytest`` runs.

nbval is a pytest plugin that only collects when ``--nbval``/``--nbval-lax`` is given, and then
collects *every* ``.ipynb`` it meets. Instead of switching it on globally (which would also pick up
``solutions/``, ``labs/`` and test fixtures), ``test_concept_notebooks.py`` is the anchor: this hook
attaches one nbval collector per concept notebook to it, always in lax mode (only cells marked
``# NBVAL_CHECK_OUTPUT`` compare outputs) and always with ``nbval_sanitize.cfg`` (timings, paths,
memory addresses, hardware labels).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from nbval.plugin import IPyNbFile

from tradeoffs import course

HERE = Path(__file__).parent
ANCHOR = "test_concept_notebooks.py"
SANITIZE = HERE / "nbval_sanitize.cfg"


class ConceptNotebook(IPyNbFile):
    """An nbval notebook collector that is always lax and always sanitized, whatever the command line."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.compare_outputs = False  # lax: only NBVAL_CHECK_OUTPUT cells are compared

    def get_sanitize_files(self):
        return [str(SANITIZE)]


class ConceptNotebooks(pytest.File):
    """One nbval collector per ``notebooks/NN_*.ipynb``."""

    def collect(self):
        for notebook in course.concept_notebooks():
            yield ConceptNotebook.from_parent(self, path=notebook, name=notebook.name)


def pytest_collect_file(file_path: Path, parent):
    if file_path.name == ANCHOR and file_path.parent == HERE:
        return ConceptNotebooks.from_parent(parent, path=file_path, name="concept notebooks (nbval-lax)")
    return None
