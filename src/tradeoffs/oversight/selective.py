"""Selective prediction: automate the confident, defer the rest.

The coverage-risk curve, the empirical threshold that meets a target error rate, and its
high-probability version, the SGR algorithm of Geifman & El-Yaniv ("Selective Classification for
Deep Neural Networks", NeurIPS 2017, https://arxiv.org/abs/1705.08500). An item is *automated* when
its confidence is at or above the threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ._checks import _check_confidence, _check_correct, _check_unit


@dataclass(frozen=True)
class SelectiveResult:
    """A selection rule "automate when confidence >= threshold" and what it gives on the data it was
    chosen on. ``threshold`` is ``inf`` (automate nothing) when no threshold meets the target."""

    threshold: float
    coverage: float
    risk: float
    accepted: int
    bound: float = float("nan")  # the high-probability risk bound (SGR only)

    def __iter__(self):
        return iter((self.threshold, self.coverage, self.risk))


def coverage_risk_curve(confidence: Any, correct: Any) -> pd.DataFrame:
    """Coverage and selective risk for every threshold "automate when confidence >= t".

    Parameters
    ----------
    confidence : array-like of float, shape (n,)
    correct : array-like of bool, shape (n,)

    Returns
    -------
    pandas.DataFrame
        One row per distinct confidence value ``t``, from the highest (least coverage) to the lowest
        (coverage 1): ``threshold``, ``accepted`` (items with confidence >= t), ``coverage``
        (accepted / n), ``errors`` (wrong among accepted) and ``risk`` (errors / accepted).

    Examples
    --------
    >>> coverage_risk_curve([0.9, 0.8, 0.8, 0.6], [True, True, False, False])[["threshold", "coverage", "risk"]].values.tolist()
    [[0.9, 0.25, 0.0], [0.8, 0.75, 0.3333333333333333], [0.6, 1.0, 0.5]]
    """
    conf = _check_confidence(confidence)
    ok = _check_correct(correct, conf.size)
    order = np.argsort(-conf, kind="stable")
    c_sorted = conf[order]
    errors = np.cumsum(~ok[order])
    last = np.r_[np.flatnonzero(np.diff(c_sorted) != 0), conf.size - 1]  # last row of each distinct value
    accepted = last + 1
    return pd.DataFrame({"threshold": c_sorted[last], "accepted": accepted, "coverage": accepted / conf.size,
                         "errors": errors[last], "risk": errors[last] / accepted})


def selective_threshold(confidence: Any, correct: Any, target_risk: float) -> SelectiveResult:
    """The lowest threshold (the most coverage) whose selective risk on this data is <= ``target_risk``.

    This is the empirical rule: it meets the target on the data it was chosen on. On new data the risk
    fluctuates around it; :func:`sgr_threshold` gives a threshold whose risk bound holds with high
    probability. Choose on validation data, then check on test data.

    Returns
    -------
    SelectiveResult
        ``threshold = inf``, ``coverage = 0`` and ``risk = 0`` when not even the most confident items
        meet the target.

    Examples
    --------
    >>> tuple(selective_threshold([0.9, 0.8, 0.8, 0.6], [True, True, False, False], 0.4))
    (0.8, 0.75, 0.3333333333333333)
    >>> tuple(selective_threshold([0.9, 0.8], [False, False], 0.1))
    (inf, 0.0, 0.0)
    """
    target = _check_unit(target_risk, "target_risk")
    curve = coverage_risk_curve(confidence, correct)
    ok = curve[curve["risk"] <= target + 1e-12]
    if ok.empty:
        return SelectiveResult(float("inf"), 0.0, 0.0, 0)
    row = ok.iloc[-1]
    return SelectiveResult(float(row["threshold"]), float(row["coverage"]), float(row["risk"]), int(row["accepted"]))


def risk_upper_bound(errors: int, n: int, delta: float) -> float:
    """One-sided upper bound on a true error rate after ``errors`` of ``n``, holding with prob. ``1 - delta``.

    The binomial tail inversion ``B*(errors, n, delta)`` of Geifman & El-Yaniv (2017, Lemma 3.1), which is
    the one-sided Clopper-Pearson bound ``Beta.ppf(1 - delta, errors + 1, n - errors)``.

    Examples
    --------
    >>> round(risk_upper_bound(0, 100, 0.05), 4)      # the "rule of three": about 3 / n
    0.0295
    >>> risk_upper_bound(5, 5, 0.05)
    1.0
    """
    from scipy.stats import beta

    errors, n = int(errors), int(n)
    if n < 1 or not 0 <= errors <= n:
        raise ValueError(f"need n >= 1 and 0 <= errors <= n, got errors={errors}, n={n}")
    d = float(delta)
    if not 0 < d < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta!r}")
    if errors == n:
        return 1.0
    return float(beta.ppf(1 - d, errors + 1, n - errors))


def sgr_threshold(confidence: Any, correct: Any, target_risk: float, delta: float = 0.001) -> SelectiveResult:
    """Selection with guaranteed risk (SGR; Geifman & El-Yaniv, NeurIPS 2017, Algorithm 1).

    Binary search over the sorted confidences for the lowest threshold whose risk *upper bound*
    (:func:`risk_upper_bound` at ``delta / ceil(log2 n)``, a union bound over the search steps) is below
    ``target_risk``. With probability at least ``1 - delta`` over the draw of this (validation) data,
    the true risk of the returned rule on new data from the same distribution is at most ``bound``.

    Returns
    -------
    SelectiveResult
        With ``bound`` set. ``threshold = inf`` and ``coverage = 0`` when no threshold qualifies
        (small samples cannot certify small risks: with ``n`` items the bound is at least about
        ``log(1/delta) / n``).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> conf = rng.uniform(0.5, 1.0, 20000); ok = rng.uniform(size=20000) < conf   # calibrated scores
    >>> r = sgr_threshold(conf, ok, target_risk=0.1, delta=0.001)
    >>> r.bound < 0.1, 0.8 < r.threshold < 0.9
    (True, True)
    """
    target = _check_unit(target_risk, "target_risk")
    d = float(delta)
    if not 0 < d < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta!r}")
    conf = _check_confidence(confidence)
    ok = _check_correct(correct, conf.size)
    m = conf.size
    steps = max(1, math.ceil(math.log2(m))) if m > 1 else 1
    order = np.argsort(-conf, kind="stable")
    c_sorted, errs = conf[order], np.cumsum(~ok[order])
    best = SelectiveResult(float("inf"), 0.0, 0.0, 0, float("nan"))
    z_min, z_max = 0, m  # search over "accept the z most confident items" (then extend over ties)
    for _ in range(steps):
        if z_max <= z_min:
            break
        z = math.ceil((z_min + z_max) / 2)
        theta = c_sorted[z - 1]
        accepted = int(np.searchsorted(-c_sorted, -theta, side="right"))  # every item with conf >= theta
        e = int(errs[accepted - 1])
        b = risk_upper_bound(e, accepted, d / steps)
        if b < target:
            if accepted > best.accepted:
                best = SelectiveResult(float(theta), accepted / m, e / accepted, accepted, b)
            z_min = z
        else:
            z_max = z - 1
    return best


def area_under_risk_coverage(confidence: Any, correct: Any) -> float:
    """Area under the risk-coverage curve (AURC; lower is better): the mean selective risk over the
    coverages ``1/n, 2/n, ..., 1`` when items are accepted in decreasing confidence (ties: stable order).

    Examples
    --------
    >>> area_under_risk_coverage([0.9, 0.1], [True, False])   # risks 0 then 1/2
    0.25
    """
    conf = _check_confidence(confidence)
    ok = _check_correct(correct, conf.size)
    errs = np.cumsum(~ok[np.argsort(-conf, kind="stable")])
    return float(np.mean(errs / np.arange(1, conf.size + 1)))
