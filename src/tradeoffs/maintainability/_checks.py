"""Input checks of the maintainability modules (private); the seed check is :mod:`tradeoffs.checks`'s."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..checks import check_seed


def _check_seed(seed) -> None:
    check_seed(seed)


def _as_1d(values, what: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional (one value per test row), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{what} is empty; pass at least one prediction")
    return arr


def _check_same_length(**arrays: np.ndarray) -> None:
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{k}={v}" for k, v in lengths.items())
        raise ValueError(f"the arrays must describe the same rows but their lengths differ ({detail})")


def _as_2d(X, what: str = "X") -> np.ndarray:
    arr = np.asarray(X, dtype=float)
    if arr.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array (rows x features), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{what} has no rows")
    return arr


def _check_level(level: float, n_boot: int) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), e.g. 0.95, got {level}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 100:
        raise ValueError(f"n_boot={n_boot!r} is too few for a stable interval; use at least 100")


def _predictor(model) -> Callable[[np.ndarray], np.ndarray]:
    if hasattr(model, "predict"):
        return model.predict
    if callable(model):
        return model
    raise TypeError(f"expected a fitted model with .predict or a callable X -> predictions, got {type(model).__name__}")
