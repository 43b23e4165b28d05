"""Scoring a classifier on one test set, and timing and pricing single requests.

Examples
--------
>>> r = evaluate(["a", "b", "a", "b"], ["a", "b", "unparsed", "a"], ["a", "b"], n_boot=200)
>>> r["accuracy"], r["unparsed"]
(0.5, 0.25)
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from .prompts import _check_labels

def evaluate(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str], *, n_boot: int = 2000,
             level: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Accuracy (with a bootstrap interval), macro-F1 over ``labels`` and the share of ``unparsed`` answers.

    Predictions outside ``labels`` (``"unparsed"``) count as wrong.

    Examples
    --------
    >>> r = evaluate(["a", "b", "a", "b"], ["a", "b", "unparsed", "a"], ["a", "b"], n_boot=200)
    >>> r["accuracy"], r["unparsed"]
    (0.5, 0.25)
    """
    from sklearn.metrics import f1_score

    from ..measure import bootstrap_ci

    y_true = np.asarray(list(y_true), dtype=object)
    y_pred = np.asarray(list(y_pred), dtype=object)
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError(f"y_true and y_pred must be non-empty and the same length, got {y_true.size} and {y_pred.size}")
    labels = _check_labels(labels)
    correct = (y_true == y_pred).astype(float)
    if correct.min() == correct.max():
        low = high = float(correct[0])
    else:
        low, high = bootstrap_ci(correct, stat=np.mean, level=level, n_boot=n_boot, seed=seed)
    return {"n": int(y_true.size), "accuracy": float(correct.mean()), "acc_low": low, "acc_high": high,
            "macro_f1": float(f1_score(list(y_true), list(y_pred), labels=labels, average="macro", zero_division=0)),
            "unparsed": float(np.mean([p not in labels for p in y_pred]))}


def time_requests(fn: Callable[[Any], Any], items: Sequence[Any], *, warmup: int = 1, device=None,
                  label: str = ""):
    """Time ``fn(item)`` once per item (a request each), after ``warmup`` untimed calls.

    Returns a :class:`tradeoffs.measure.Timing` (seconds per request, every sample kept).

    Examples
    --------
    >>> t = time_requests(lambda x: sum(range(x)), [1000, 2000, 3000])
    >>> t.n
    3
    """
    from ..measure import time_fn

    items = list(items)
    if not items:
        raise ValueError("items is empty: time at least one request")
    for item in items[:warmup]:
        fn(item)
    position = iter(range(len(items)))
    return time_fn(lambda: fn(items[next(position)]), repeats=len(items), warmup=0, device=device, label=label,
                   max_repeats=len(items))


# ============================================================================================

def compute_usd_per_request(seconds_per_request: float, usd_per_hour: float) -> float:
    """Machine cost of one request: measured seconds x the machine's hourly price / 3600.

    Examples
    --------
    >>> round(compute_usd_per_request(0.36, 0.1), 12)
    1e-05
    """
    if seconds_per_request < 0 or usd_per_hour < 0:
        raise ValueError("seconds_per_request and usd_per_hour must be >= 0")
    return seconds_per_request * usd_per_hour / 3600.0

