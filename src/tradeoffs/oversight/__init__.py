"""Automation vs human oversight (Lab 6): one import for the oversight mechanisms.

``from tradeoffs import oversight as ov`` gives everything Lab 6 and its concept notebook use. The
mechanisms live in modules split by responsibility, re-exported here:

* :mod:`tradeoffs.oversight.calibration` -- top-label confidence, the Brier score, logits <-> probabilities,
  ``softmax(z / T)`` (temperature scaling: Guo, Pleiss, Sun & Weinberger, ICML 2017,
  https://arxiv.org/abs/1706.04599);
* :mod:`tradeoffs.oversight.selective` -- the coverage-risk curve, the empirical threshold for a target risk and
  SGR, its high-probability version (Geifman & El-Yaniv, NeurIPS 2017, https://arxiv.org/abs/1705.08500);
* :mod:`tradeoffs.oversight.review_queue` -- candidate thresholds, a week of arrivals and reviewer shifts, the
  hour-by-hour queue simulator, and runs of a caller's thresholding rule (sweeps, the what-if table);
* :mod:`tradeoffs.oversight.drift` -- typos injected into real text, and a monitoring run that alarms on a
  statistic the caller supplies.

The graded pieces of Lab 6 -- the reliability bins and ECE, the validation NLL and the temperature fit,
the expected cost of a review policy under capacity, the cost-minimising threshold and the drift
alarm -- are the learner's to write; they are not in this package.

Two data helpers for the lab sit here: :func:`stratified_sample` (smoke-size subsamples) and
:func:`embed_texts` (length-sorted batching for the MiniLM embedder).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .calibration import brier_score, proba_to_logits, scale_logits, top_label
from .drift import MONITOR_CHARTS, TYPO_OPERATIONS, inject_typos, simulate_monitoring
from .review_queue import (QUEUES, candidate_thresholds, hourly_profile, one_at_a_time, operating_point,
                           poisson_arrivals, review_whatif, shift_capacity, simulate_review_queue)
from .selective import (SelectiveResult, area_under_risk_coverage, coverage_risk_curve, risk_upper_bound,
                        selective_threshold, sgr_threshold)

__all__ = [
    "MONITOR_CHARTS", "QUEUES", "SelectiveResult", "TYPO_OPERATIONS", "area_under_risk_coverage", "brier_score",
    "candidate_thresholds", "coverage_risk_curve", "embed_texts", "hourly_profile", "inject_typos",
    "one_at_a_time", "operating_point", "poisson_arrivals", "proba_to_logits", "review_whatif",
    "risk_upper_bound", "scale_logits", "selective_threshold", "sgr_threshold", "shift_capacity",
    "simulate_monitoring", "simulate_review_queue", "stratified_sample", "top_label",
]


def stratified_sample(keys: Any, size: int, seed: int = 0) -> np.ndarray:
    """Indices of a subsample of ``size`` rows that keeps the share of every group in ``keys``.

    Quotas by largest remainder, at least one row per group when ``size`` allows; rows are drawn at
    random within each group. Returns sorted indices. ``size >= len(keys)`` returns every row.

    Examples
    --------
    >>> keys = ["a"] * 8 + ["b"] * 2
    >>> idx = stratified_sample(keys, 5, seed=0); len(idx), sum(keys[i] == "b" for i in idx)
    (5, 1)
    """
    k = np.asarray(keys)
    if k.ndim != 1 or k.size == 0:
        raise ValueError("keys must be a non-empty 1-D array (one group label per row)")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    if size >= k.size:
        return np.arange(k.size)
    groups, inverse, counts = np.unique(k, return_inverse=True, return_counts=True)
    exact = size * counts / k.size
    quota = np.floor(exact).astype(int)
    if size >= groups.size:
        quota = np.maximum(quota, 1)
    quota = np.minimum(quota, counts)
    remainder = exact - np.floor(exact)
    while quota.sum() < size:
        room = np.flatnonzero(quota < counts)
        quota[room[np.argmax(remainder[room])]] += 1
        remainder[room[np.argmax(remainder[room])]] = -1
    while quota.sum() > size:
        big = np.flatnonzero(quota > 1) if (quota > 1).any() else np.flatnonzero(quota > 0)
        quota[big[np.argmax(quota[big])]] -= 1
    rng = np.random.default_rng(seed)
    picked = [rng.choice(np.flatnonzero(inverse == g), size=q, replace=False) for g, q in enumerate(quota) if q]
    return np.sort(np.concatenate(picked))


def embed_texts(texts: Sequence[str], embedder, *, batch_size: int = 32, progress: bool = False) -> np.ndarray:
    """Embed texts with a :class:`tradeoffs.models.Embedder` (which batches texts of similar
    length together and returns rows in the original order)."""
    texts = list(texts)
    if not all(isinstance(t, str) for t in texts):
        raise TypeError("embed_texts takes a sequence of strings")
    return embedder.encode(texts, batch_size=batch_size, progress=progress)
