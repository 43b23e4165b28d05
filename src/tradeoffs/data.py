"""Loaders for the data the labs use: ``datasets/`` shipped with the kit (checksum-verified) and
scikit-learn's bundled real datasets (no download), with fixed splits and seeds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

SPLIT_SEED = 20260101  # the fixed seed of every sklearn split in the kit


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
