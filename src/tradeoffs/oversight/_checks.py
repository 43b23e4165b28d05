"""Input checks of the oversight modules (calibration, selective, review_queue, drift): the shared
ones of :mod:`tradeoffs.checks` under the names these modules use, plus the few only they need.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..checks import check_fraction, check_labels, check_mask, check_non_negative, check_proba

EPS = 1e-12  # probabilities are clipped to [EPS, 1] before taking logs


def _check_confidence(confidence: Any, name: str = "confidence") -> np.ndarray:
    c = np.asarray(confidence, dtype=float)
    if c.ndim != 1 or c.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {c.shape}")
    if not np.isfinite(c).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return c


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


def _check_proba(proba: Any, name: str = "proba") -> np.ndarray:
    return check_proba(proba, name=name)


def _check_labels(y: Any, n: int, k: int | None = None, name: str = "y_true") -> np.ndarray:
    return check_labels(y, n=n, n_classes=k, name=name)


def _check_mask(mask: Any, n: int, name: str) -> np.ndarray:
    return check_mask(mask, n, name)


def _check_unit(value: Any, name: str) -> float:
    return check_fraction(value, name)


def _check_nonneg(value: Any, name: str) -> float:
    return check_non_negative(value, name)


def _check_correct(correct: Any, n: int) -> np.ndarray:
    return check_mask(correct, n, "correct")
