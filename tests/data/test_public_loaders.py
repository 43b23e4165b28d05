"""load_public_intents: explicit opt-in, lazy import with a clear error, and the column mapping
(exercised with a stand-in for the Hugging Face `datasets` library: tests never download)."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from tradeoffs import data


class _ClassLabel:
    def __init__(self, names):
        self.names = names


class _FakeDataset:
    def __init__(self, columns, features):
        self._columns, self.features = columns, features
        self.column_names = list(columns)

    def __getitem__(self, key):
        return self._columns[key]


def _fake_hf(calls, columns=None):
    module = types.ModuleType("datasets")

    def load_dataset(*args, split):
        calls.append((args, split))
        cols = columns or {"text": ["refund pls", "card stolen", "hi"], "label": [2, 0, 1]}
        names = _ClassLabel(["card_lost", "greeting", "refund_request"])
        return _FakeDataset(cols, {c: names for c in cols if c != "text"})

    module.load_dataset = load_dataset
    return module


def test_requires_explicit_opt_in(monkeypatch):
    monkeypatch.delenv(data.DOWNLOAD_ENV, raising=False)
    with pytest.raises(PermissionError, match=r"download=True.*pip install datasets"):
        data.load_public_intents("banking77")


def test_missing_library_says_pip_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    with pytest.raises(ImportError, match="pip install datasets"):
        data.load_public_intents("clinc150", "validation", download=True)


def test_shadowing_folder_is_explained(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", types.ModuleType("datasets"))  # like the repo's datasets/ folder
    with pytest.raises(ImportError, match="shadows"):
        data.load_public_intents("banking77", download=True)


def test_maps_labels_to_names(monkeypatch):
    calls = []
    monkeypatch.setitem(sys.modules, "datasets", _fake_hf(calls))
    df = data.load_public_intents("banking77", "test", download=True)
    assert calls == [(("PolyAI/banking77",), "test")]
    assert list(df.columns) == ["text", "intent", "label"]
    assert df["intent"].tolist() == ["refund_request", "card_lost", "greeting"]
    assert df["label"].dtype == np.int64 and str(df["text"].dtype) == "str"
    assert "CC BY 4.0" == df.attrs["licence"] and "arxiv" in df.attrs["citation"]


def test_clinc_uses_its_config_and_env_opt_in(monkeypatch):
    calls = []
    cols = {"text": ["what's the weather"], "intent": [1]}
    monkeypatch.setitem(sys.modules, "datasets", _fake_hf(calls, cols))
    monkeypatch.setenv(data.DOWNLOAD_ENV, "1")
    with pytest.raises(data.DatasetError, match="expected 'text' and 'label'"):
        data.load_public_intents("banking77", "train")  # banking77 expects a 'label' column
    df = data.load_public_intents("clinc150", "validation", hub_id="mirror/clinc")
    assert calls[-1] == (("mirror/clinc", "plus"), "validation")
    assert df.attrs["source"].endswith("mirror/clinc (plus)")
    assert df["intent"].tolist() == ["greeting"]


def test_bad_name_or_split():
    with pytest.raises(ValueError, match="name must be one of"):
        data.load_public_intents("imdb", download=True)
    with pytest.raises(ValueError, match="has splits"):
        data.load_public_intents("banking77", "validation", download=True)
