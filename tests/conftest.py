"""Shared fixtures. Tests are split by kind: unit/, models/ (real packaged models), cli/, data/,
serve/, grading/, notebooks/. Heavy objects load once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("TRADEOFFS_REPO", str(REPO))
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def chat_model():
    """SmolLM2-135M-Instruct on CPU, loaded once for the session (do not fine-tune it in place)."""
    from tradeoffs.models import load_chat_model

    return load_chat_model("cpu")


@pytest.fixture(scope="session")
def embedder():
    """all-MiniLM-L6-v2 on CPU, loaded once for the session."""
    from tradeoffs.models import load_embedder

    return load_embedder("cpu")
