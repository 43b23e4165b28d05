"""Input checks shared by every lab module, so the same input is judged the same way everywhere.

Modelled on scikit-learn's ``utils.validation``: each check returns a clean NumPy value or raises
``ValueError`` with a message that says what was wrong and how to fix it. Imports nothing of the kit.

Examples
--------
>>> check_fraction(0.3, "rate")
0.3
>>> check_fraction(30, "rate")
Traceback (most recent call last):
...
ValueError: rate must be a fraction in [0, 1], got 30 (it is a fraction: 0.3 means 30 %)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: How far a row of probabilities may be from summing to 1 (float64 ``predict_proba`` is within 1e-12;
#: float32 softmax outputs within about 1e-6).
PROBA_ATOL = 1e-5


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))


def check_fraction(value: Any, name: str) -> float:
    """A number in [0, 1] (a rate, a share, a probability), as a float."""
    if not _is_number(value):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    v = float(value)
    if not math.isfinite(v) or not 0.0 <= v <= 1.0:
        hint = " (it is a fraction: 0.3 means 30 %)" if math.isfinite(v) and 1 < v <= 100 else ""
        raise ValueError(f"{name} must be a fraction in [0, 1], got {value!r}{hint}")
    return v


def check_non_negative(value: Any, name: str) -> float:
    """A finite number >= 0, as a float.

    >>> check_non_negative(2, "cost")
    2.0
    """
    if not _is_number(value) or not math.isfinite(float(value)) or float(value) < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def check_seed(seed: Any) -> int:
    """A non-negative integer seed.

    >>> check_seed(3)
    3
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def check_labels(y: Any, *, n: int | None = None, n_classes: int | None = None, name: str = "y") -> np.ndarray:
    """Integer class indices ``0..n_classes-1`` as a non-empty 1-D int64 array.

    Parameters
    ----------
    y : array-like
        Labels; whole-number floats are accepted, strings and booleans are not.
    n : int, optional
        The number of labels expected (one per row of something else).
    n_classes : int, optional
        Classes the labels may use.

    Examples
    --------
    >>> check_labels([0, 2, 1.0], n_classes=3)
    array([0, 2, 1])
    >>> check_labels(["cat"])
    Traceback (most recent call last):
    ...
    ValueError: y must hold integer class indices 0..K-1, got dtype <U3; encode string labels first, e.g. with sklearn.preprocessing.LabelEncoder
    """
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of class indices, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty; pass at least one label")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} must be a 1-D array of {n} labels (one per row), got {arr.shape[0]}")
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"{name} must hold integer class indices 0..K-1, got dtype {arr.dtype}; encode string "
                         "labels first, e.g. with sklearn.preprocessing.LabelEncoder")
    if arr.dtype.kind == "f" and not (np.isfinite(arr).all() and np.array_equal(arr, np.round(arr))):
        raise ValueError(f"{name} must hold integer class indices, got non-integer values")
    labels = arr.astype(np.int64)
    if labels.min() < 0:
        raise ValueError(f"{name} must hold class indices >= 0, got {int(labels.min())}")
    if n_classes is not None and labels.max() >= n_classes:
        raise ValueError(f"{name} holds class {int(labels.max())} but there are {n_classes} classes; "
                         f"class indices run from 0 to {n_classes - 1}")
    return labels


def check_proba(proba: Any, *, n_rows: int | None = None, name: str = "proba") -> np.ndarray:
    """Probabilities as an ``(n, k)`` float array whose rows sum to 1; a 1-D binary input becomes ``[1-p, p]``.

    Examples
    --------
    >>> check_proba([0.2, 0.9]).round(1).tolist()
    [[0.8, 0.2], [0.1, 0.9]]
    >>> check_proba([[0.5, 0.6]])
    Traceback (most recent call last):
    ...
    ValueError: every row of proba must sum to 1; row 0 sums to 1.1000 (pass predict_proba output, not scores or logits)
    """
    P = np.asarray(proba, dtype=float)
    if P.ndim == 1:
        P = np.column_stack([1.0 - P, P])
    if P.ndim != 2 or P.shape[1] < 2:
        raise ValueError(f"{name} must be (n,) for a binary task or (n, k) with k >= 2 classes, got shape "
                         f"{np.shape(proba)}")
    if P.shape[0] == 0:
        raise ValueError(f"{name} is empty: pass at least one prediction")
    if n_rows is not None and P.shape[0] != n_rows:
        raise ValueError(f"{name} must have one row per item: shape ({n_rows}, k), got shape {P.shape}")
    if not np.isfinite(P).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    if (P < -1e-9).any() or (P > 1 + 1e-9).any():
        raise ValueError(f"{name} must hold probabilities in [0, 1] (pass predict_proba output, not scores or "
                         "logits)")
    sums = P.sum(axis=1)
    if not np.allclose(sums, 1.0, atol=PROBA_ATOL):
        worst = int(np.argmax(np.abs(sums - 1)))
        raise ValueError(f"every row of {name} must sum to 1; row {worst} sums to {sums[worst]:.4f} (pass "
                         "predict_proba output, not scores or logits)")
    return np.clip(P, 0.0, 1.0)


def check_mask(mask: Any, n: int, name: str) -> np.ndarray:
    """A boolean array with one entry per item (True/False or 1/0).

    >>> check_mask([1, 0], 2, "correct").tolist()
    [True, False]
    """
    m = np.asarray(mask)
    if m.shape != (n,):
        raise ValueError(f"{name} must be a 1-D array with one entry per item ({n}), got shape {m.shape}")
    if m.dtype != bool:
        if not np.isin(m, (0, 1)).all():
            raise ValueError(f"{name} must be boolean (True/False or 1/0)")
        m = m.astype(bool)
    return m
