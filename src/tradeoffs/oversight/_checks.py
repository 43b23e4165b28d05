"""Input checks shared by the oversight modules (calibration, selective, review_queue, drift).

Every check returns a clean NumPy value or raises ``ValueError`` with a message that says what was
wrong and how to fix it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

EPS = 1e-12  # probabilities are clipped to [EPS, 1] before taking logs


def _check_proba(proba: Any, name: str = "proba") -> np.ndarray:
    """Return an ``(n, k)`` float array of probabilities; a 1-D binary input becomes ``[1-p, p]``."""
    P = np.asarray(proba, dtype=float)
    if P.ndim == 1:
        P = np.column_stack([1.0 - P, P])
    if P.ndim != 2 or P.shape[1] < 2:
        raise ValueError(f"{name} must be (n,) for a binary task or (n, k) with k >= 2 classes, got shape "
                         f"{np.shape(proba)}")
    if P.shape[0] == 0:
        raise ValueError(f"{name} is empty: pass at least one prediction")
    if not np.isfinite(P).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    if (P < -1e-9).any() or (P > 1 + 1e-9).any():
        raise ValueError(f"{name} must hold probabilities in [0, 1]; if these are logits, use "
                         "scale_logits(logits) to turn them into probabilities first")
    if not np.allclose(P.sum(axis=1), 1.0, atol=1e-6):
        raise ValueError(f"every row of {name} must sum to 1 (pass predict_proba output, or softmax your "
                         "scores first)")
    return np.clip(P, 0.0, 1.0)


def _check_labels(y: Any, n: int, k: int | None = None, name: str = "y_true") -> np.ndarray:
    labels = np.asarray(y)
    if labels.ndim != 1 or labels.shape[0] != n:
        raise ValueError(f"{name} must be a 1-D array of {n} labels, got shape {labels.shape}")
    if labels.dtype == bool:
        labels = labels.astype(np.int64)
    if not np.issubdtype(labels.dtype, np.integer):
        as_int = labels.astype(np.int64) if np.issubdtype(labels.dtype, np.floating) else None
        if as_int is None or not np.array_equal(as_int, labels):
            raise ValueError(f"{name} must hold integer class indices 0..k-1, got dtype {labels.dtype}; "
                             "encode string labels first (e.g. with sklearn's LabelEncoder)")
        labels = as_int
    labels = labels.astype(np.int64)
    if k is not None and labels.size and (labels.min() < 0 or labels.max() >= k):
        raise ValueError(f"{name} must hold class indices in [0, {k - 1}], got values from {labels.min()} "
                         f"to {labels.max()}")
    return labels


def _check_confidence(confidence: Any, name: str = "confidence") -> np.ndarray:
    c = np.asarray(confidence, dtype=float)
    if c.ndim != 1 or c.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {c.shape}")
    if not np.isfinite(c).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return c


def _check_mask(mask: Any, n: int, name: str) -> np.ndarray:
    m = np.asarray(mask)
    if m.shape != (n,):
        raise ValueError(f"{name} must be a 1-D array with one entry per item ({n}), got shape {m.shape}")
    if m.dtype != bool:
        if not np.isin(m, (0, 1)).all():
            raise ValueError(f"{name} must be boolean (True/False or 1/0)")
        m = m.astype(bool)
    return m


def _check_unit(value: Any, name: str) -> float:
    v = float(value)
    if not 0.0 <= v <= 1.0 or math.isnan(v):
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
    return v


def _check_nonneg(value: Any, name: str) -> float:
    v = float(value)
    if not v >= 0.0 or math.isinf(v):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return v


def _per_item(value: Any, n: int, name: str) -> np.ndarray:
    arr = np.broadcast_to(np.asarray(value, dtype=float), (n,)).astype(float) if np.ndim(value) == 0 \
        else np.asarray(value, dtype=float)
    if arr.shape != (n,):
        raise ValueError(f"{name} must be a number or one value per item ({n}), got shape {arr.shape}")
    if not np.isfinite(arr).all() or (arr < 0).any():
        raise ValueError(f"{name} must be finite and >= 0")
    return arr


def _check_logits(logits: Any) -> np.ndarray:
    z = np.asarray(logits, dtype=float)
    if z.ndim not in (1, 2) or z.shape[0] == 0 or (z.ndim == 2 and z.shape[1] < 2):
        raise ValueError(f"logits must be (n,) log-odds of a binary task or (n, k) scores with k >= 2, got "
                         f"shape {z.shape}")
    if not np.isfinite(z).all():
        raise ValueError("logits contain NaN or infinite values; if they come from log(proba), use "
                         "proba_to_logits(proba), which clips zero probabilities")
    return z


def _check_temperature(temperature: Any) -> float:
    t = float(temperature)
    if not t > 0 or math.isinf(t):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    return t


def _check_correct(correct: Any, n: int) -> np.ndarray:
    return _check_mask(correct, n, "correct")
