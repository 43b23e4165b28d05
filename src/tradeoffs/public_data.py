"""Data from elsewhere: scikit-learn's bundled real datasets and public intent datasets from the hub.

:mod:`tradeoffs.data` re-exports everything here (``data.load_digits_split`` and friends); the data
shipped with the kit (tickets, trace, checksums) stays in :mod:`tradeoffs.data`.

* **scikit-learn's bundled real datasets** (no download): Wisconsin breast cancer and handwritten
  digits (:func:`load_breast_cancer_split`, :func:`load_digits_split`), with fixed splits.
* **Public intent datasets from the Hugging Face hub** (Banking77, CLINC150) for users with internet
  access, behind an explicit opt-in (:func:`load_public_intents`). Tests never download them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

SPLIT_SEED = 20260101  # the fixed seed of every sklearn split in the kit


class DatasetError(RuntimeError):
    """A dataset (a file the kit ships, or one downloaded on request) is missing, corrupted, or not
    what the kit expects.

    The message names the file and ends with the command that fixes it.
    """


# --------------------------------------------------------------------------------------------
# Public intent datasets (internet + explicit opt-in)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PublicIntentSet:
    """Where a public intent dataset lives on the Hugging Face hub and how its columns are named."""

    hub_id: str
    config: str | None
    text_column: str
    label_column: str
    splits: tuple[str, ...]
    licence: str
    citation: str


PUBLIC_INTENT_SETS = {
    "banking77": PublicIntentSet(
        hub_id="PolyAI/banking77", config=None, text_column="text", label_column="label",
        splits=("train", "test"), licence="CC BY 4.0",
        citation="Casanueva et al., Efficient Intent Detection with Dual Sentence Encoders, "
                 "NLP4ConvAI workshop at ACL 2020, https://arxiv.org/abs/2003.04807"),
    "clinc150": PublicIntentSet(
        hub_id="clinc/clinc_oos", config="plus", text_column="text", label_column="intent",
        splits=("train", "validation", "test"), licence="CC BY 3.0",
        citation="Larson et al., An Evaluation Dataset for Intent Classification and Out-of-Scope "
                 "Prediction, EMNLP-IJCNLP 2019, https://aclanthology.org/D19-1131/"),
}
DOWNLOAD_ENV = "TRADEOFFS_ALLOW_DOWNLOAD"


def _import_hf_datasets():
    """Import the Hugging Face ``datasets`` library, or explain how to get it."""
    try:
        import datasets as hf
    except ImportError as exc:
        raise ImportError("loading a public dataset needs the Hugging Face `datasets` library, which the "
                          "kit does not install. Fix: `pip install datasets` (and internet access).") from exc
    if not hasattr(hf, "load_dataset"):
        where = list(getattr(hf, "__path__", [])) or getattr(hf, "__file__", "?")
        raise ImportError(f"`import datasets` found {where}, not the Hugging Face library (the kit's own "
                          "datasets/ folder shadows it when Python runs from the repository root). Fix: "
                          "`pip install datasets`; it then takes precedence over the folder.")
    return hf


def load_public_intents(name: str = "banking77", split: str = "train", *, download: bool = False,
                        hub_id: str | None = None) -> pd.DataFrame:
    """Load Banking77 or CLINC150 (``plus``) from the Hugging Face hub. Needs internet; opt in explicitly.

    The kit ships everything its labs need; these loaders are for learners who want a larger, public
    benchmark. Nothing is downloaded unless you pass ``download=True`` or set
    ``TRADEOFFS_ALLOW_DOWNLOAD=1``. Requires ``pip install datasets`` (not a kit dependency).

    Parameters
    ----------
    name : {"banking77", "clinc150"}
    split : str
        ``"train"`` or ``"test"`` (both sets); ``"validation"`` (CLINC150 only).
    download : bool
        The explicit opt-in to network access.
    hub_id : str, optional
        Load a mirror with the same columns instead of the default hub id.

    Returns
    -------
    pandas.DataFrame
        Columns ``text`` (str), ``intent`` (str, the label name), ``label`` (int64, the hub's label id).
        ``df.attrs`` holds ``source``, ``licence`` and ``citation``.

    Examples
    --------
    >>> df = load_public_intents("banking77", "test", download=True)   # doctest: +SKIP
    >>> df.shape, df["intent"].nunique()                                # doctest: +SKIP
    ((3080, 3), 77)
    """
    if name not in PUBLIC_INTENT_SETS:
        raise ValueError(f"name must be one of {tuple(PUBLIC_INTENT_SETS)}, got {name!r}")
    spec = PUBLIC_INTENT_SETS[name]
    if split not in spec.splits:
        raise ValueError(f"{name} has splits {spec.splits}, not {split!r}")
    if not (download or os.environ.get(DOWNLOAD_ENV) == "1"):
        raise PermissionError(f"load_public_intents({name!r}) downloads {spec.hub_id} from the Hugging Face "
                              f"hub. The kit never downloads data silently. Fix: pass download=True (or set "
                              f"{DOWNLOAD_ENV}=1) on a machine with internet, after `pip install datasets`. "
                              "The labs themselves use the shipped corpus: load_tickets().")
    hf = _import_hf_datasets()
    source = hub_id or spec.hub_id
    args = (source, spec.config) if spec.config else (source,)
    ds = hf.load_dataset(*args, split=split)
    for col in (spec.text_column, spec.label_column):
        if col not in ds.column_names:
            raise DatasetError(f"{source} split {split!r} has columns {ds.column_names}, expected "
                               f"{spec.text_column!r} and {spec.label_column!r}. Fix: pass a hub_id with "
                               "those columns, or leave hub_id unset.")
    names = getattr(dict(ds.features).get(spec.label_column), "names", None)  # ClassLabel names, if any
    labels = np.asarray(ds[spec.label_column], dtype=np.int64)
    df = pd.DataFrame({
        "text": pd.Series(ds[spec.text_column], dtype="str"),
        "intent": pd.Series([names[i] for i in labels] if names else [str(i) for i in labels], dtype="str"),
        "label": labels,
    })
    df.attrs.update(source=f"huggingface.co/datasets/{source}" + (f" ({spec.config})" if spec.config else ""),
                    licence=spec.licence, citation=spec.citation)
    return df


# --------------------------------------------------------------------------------------------
# scikit-learn's bundled real datasets
# --------------------------------------------------------------------------------------------
@dataclass
class Split:
    """Train / validation / test arrays of one dataset, plus what the columns mean.

    Attributes
    ----------
    X_train, X_val, X_test : np.ndarray, float64, shape (n, n_features)
    y_train, y_val, y_test : np.ndarray, int64, shape (n,)
    feature_names : list of str
    target_names : list of str
    name : str
    """

    X_train: np.ndarray
    X_val: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray
    y_val: np.ndarray
    y_test: np.ndarray
    feature_names: list[str]
    target_names: list[str]
    name: str

    def frame(self, part: str = "train") -> pd.DataFrame:
        """One part as a DataFrame with the feature columns and a ``target`` column."""
        if part not in ("train", "val", "test"):
            raise ValueError(f"part must be 'train', 'val' or 'test', got {part!r}")
        X, y = getattr(self, f"X_{part}"), getattr(self, f"y_{part}")
        df = pd.DataFrame(X, columns=self.feature_names)
        df["target"] = y
        return df

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}


def _three_way(X, y, feature_names, target_names, name, val_size, test_size, seed) -> Split:
    from sklearn.model_selection import train_test_split

    if not (0 < val_size < 1 and 0 < test_size < 1 and val_size + test_size < 1):
        raise ValueError(f"val_size and test_size must be in (0, 1) and sum below 1, got {val_size}, {test_size}")
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    X_rest, X_test, y_rest, y_test = train_test_split(X, y, test_size=test_size, stratify=y, random_state=seed)
    rel_val = val_size / (1 - test_size)
    X_train, X_val, y_train, y_val = train_test_split(X_rest, y_rest, test_size=rel_val, stratify=y_rest,
                                                      random_state=seed + 1)
    return Split(X_train, X_val, X_test, y_train, y_val, y_test, list(feature_names), list(target_names), name)


def load_breast_cancer_split(val_size: float = 0.2, test_size: float = 0.25, seed: int = SPLIT_SEED) -> Split:
    """Wisconsin diagnostic breast cancer (569 patients, 30 features), stratified fixed split.

    Labels follow this kit's convention for the medical case: ``1 = malignant`` (the costly miss),
    ``0 = benign`` — the reverse of scikit-learn's raw encoding.

    Examples
    --------
    >>> s = load_breast_cancer_split()
    >>> s.sizes()
    {'train': 312, 'val': 114, 'test': 143}
    >>> s.target_names
    ['benign', 'malignant']
    """
    from sklearn.datasets import load_breast_cancer

    raw = load_breast_cancer()
    y = 1 - raw.target  # sklearn: 0 = malignant, 1 = benign
    return _three_way(raw.data, y, raw.feature_names, ["benign", "malignant"], "breast_cancer",
                      val_size, test_size, seed)


def load_digits_split(val_size: float = 0.2, test_size: float = 0.25, seed: int = SPLIT_SEED) -> Split:
    """Handwritten digits (1,797 8x8 images, pixel values 0-16, 10 classes), stratified fixed split.

    Examples
    --------
    >>> s = load_digits_split()
    >>> s.X_train.shape[1], len(s.target_names)
    (64, 10)
    """
    from sklearn.datasets import load_digits

    raw = load_digits()
    names = [f"pixel_{r}_{c}" for r in range(8) for c in range(8)]
    return _three_way(raw.data, raw.target, names, [str(d) for d in range(10)], "digits",
                      val_size, test_size, seed)
