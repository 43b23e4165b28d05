"""Statistics for Lab 2 that are not graded: ROC AUC with a bootstrap interval, and how many test
rows a paired comparison needs before a gain can be told from noise (a normal approximation).

The paired bootstrap of an accuracy difference is what the learner writes in the lab.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._checks import _as_1d, _check_level, _check_same_length, _check_seed


def _auc_rows(Y: np.ndarray, S: np.ndarray) -> np.ndarray:
    """Row-wise ROC AUC of binary labels ``Y`` (0/1) and scores ``S``, both ``(r, n)``; ties count
    one half (Mann-Whitney). NaN for a row with a single class."""
    from scipy.stats import rankdata

    ranks = rankdata(S, axis=1, method="average")
    pos = (Y == 1)
    n_pos = pos.sum(axis=1).astype(float)
    n_neg = Y.shape[1] - n_pos
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = ((ranks * pos).sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    auc[(n_pos == 0) | (n_neg == 0)] = np.nan
    return auc


def _binary_labels(y: np.ndarray) -> np.ndarray:
    labels = np.unique(y)
    if not np.array_equal(labels, [0, 1]) and not (labels.size == 1 and labels[0] in (0, 1)):
        raise ValueError(f"AUC needs binary labels 0/1, got the classes {labels.tolist()[:10]}; "
                         f"use metric='accuracy' for multi-class tasks")
    return y.astype(int)


def auc_score(y_true, scores) -> float:
    """ROC AUC (the probability that a random positive outscores a random negative).

    Examples
    --------
    >>> auc_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    y = _binary_labels(_as_1d(y_true, "y_true"))
    s = _as_1d(scores, "scores").astype(float)
    _check_same_length(y_true=y, scores=s)
    if np.unique(y).size < 2:
        raise ValueError("AUC is undefined when y_true holds a single class")
    return float(_auc_rows(y[None, :], s[None, :])[0])


@dataclass(frozen=True)
class Interval:
    """A point estimate with a percentile-bootstrap confidence interval.

    Unpacks as ``estimate, low, high``.
    """

    estimate: float
    low: float
    high: float
    level: float = 0.95

    def __iter__(self):
        return iter((self.estimate, self.low, self.high))

    @property
    def excludes_zero(self) -> bool:
        """True when the whole interval is on one side of zero (the difference is not noise)."""
        return self.low > 0 or self.high < 0


def auc_ci(y_true, scores, *, level: float = 0.95, n_boot: int = 2000, seed: int = 0) -> Interval:
    """ROC AUC on the test set and its percentile-bootstrap confidence interval (one model).

    Parameters
    ----------
    y_true : array-like of 0/1
    scores : array-like
        The model's score for class 1 (``predict_proba(X)[:, 1]``).

    Examples
    --------
    >>> y = np.array([0, 1] * 50); s = np.where(y == 1, 0.8, 0.2); s[:10] = 0.5
    >>> ci = auc_ci(y, s, n_boot=200)
    >>> ci.low <= ci.estimate <= ci.high <= 1.0
    True
    """
    _check_level(level, n_boot)
    _check_seed(seed)
    y = _binary_labels(_as_1d(y_true, "y_true"))
    s = _as_1d(scores, "scores").astype(float)
    _check_same_length(y_true=y, scores=s)
    if np.unique(y).size < 2:
        raise ValueError("AUC is undefined when y_true holds a single class")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(y), size=(n_boot, len(y)))
    stats = np.concatenate([_auc_rows(y[rows], s[rows]) for rows in np.array_split(idx, max(1, n_boot // 256))])
    stats = stats[np.isfinite(stats)]
    alpha = (1 - level) / 2
    lo, hi = np.quantile(stats, [alpha, 1 - alpha])
    return Interval(float(_auc_rows(y[None, :], s[None, :])[0]), float(lo), float(hi), level)


def _accuracy_deltas(y_true, pred_a, pred_b) -> np.ndarray:
    y = _as_1d(y_true, "y_true")
    a = _as_1d(pred_a, "pred_a")
    b = _as_1d(pred_b, "pred_b")
    _check_same_length(y_true=y, pred_a=a, pred_b=b)
    return (a == y).astype(float) - (b == y).astype(float)


def _z(level: float) -> float:
    from scipy.stats import norm

    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    return float(norm.ppf(0.5 + level / 2))


def detectable_gain(y_true, pred_a, pred_b, n_rows, *, level: float = 0.95) -> np.ndarray:
    """Smallest accuracy difference a paired test set of ``n_rows`` rows can tell from noise.

    It is the half-width of the paired interval, ``z * sd(d) / sqrt(n_rows)``, with the per-row
    difference ``d_i = [a_i == y_i] - [b_i == y_i]`` measured on the rows given (normal
    approximation; the two models are assumed to disagree as often on more rows).

    Examples
    --------
    >>> y = np.zeros(100, int); a = y.copy(); b = y.copy(); b[:10] = 1
    >>> detectable_gain(y, a, b, [100, 400]).round(3).tolist()
    [0.059, 0.029]
    """
    d = _accuracy_deltas(y_true, pred_a, pred_b)
    n = np.asarray(n_rows, dtype=float)
    if np.any(~np.isfinite(n)) or np.any(n < 1):
        raise ValueError("n_rows must be finite and at least 1")
    return _z(level) * d.std(ddof=0) / np.sqrt(n)


def rows_to_resolve(y_true, pred_a, pred_b, *, level: float = 0.95) -> float:
    """Test rows needed before the observed accuracy difference would clear its confidence interval.

    The paired difference per row is ``d_i = [a_i == y_i] - [b_i == y_i]``; its interval half-width
    shrinks as ``z * sd(d) / sqrt(n)``, so it equals the observed gain ``|mean(d)|`` at
    ``n* = (z * sd(d) / mean(d))**2`` (see :func:`detectable_gain`). ``inf`` when the models tie.

    Examples
    --------
    >>> y = np.zeros(100, int); a = y.copy(); b = y.copy(); b[:10] = 1
    >>> round(rows_to_resolve(y, a, b), 1)
    34.6
    """
    z = _z(level)
    d = _accuracy_deltas(y_true, pred_a, pred_b)
    mean, sd = d.mean(), d.std(ddof=0)
    if mean == 0:
        return float("inf")
    return float((z * sd / mean) ** 2)


# --------------------------------------------------------------------------------------------
