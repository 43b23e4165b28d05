"""Automation vs human oversight: calibrate, defer, and price the review queue.

Lab 6 decides which predictions a model may act on alone and which go to a person. This module
holds the mechanisms that decision rests on:

* **calibration** — reliability tables, expected calibration error (ECE), Brier score and negative
  log-likelihood, and temperature scaling fitted on a validation set (Guo, Pleiss, Sun & Weinberger,
  "On Calibration of Modern Neural Networks", ICML 2017, https://arxiv.org/abs/1706.04599);
* **selective prediction** — the coverage-risk curve, the confidence threshold that meets a target
  error rate, and its high-probability version, the SGR algorithm of Geifman & El-Yaniv
  ("Selective Classification for Deep Neural Networks", NeurIPS 2017, https://arxiv.org/abs/1705.08500);
* **review economics** — the expected cost per item of a review policy: errors let through times
  their cost plus reviews times the review cost, with reviewer capacity (a queue that can overflow),
  reviewers who are right with probability below 1, and automation bias (a reviewer who follows the
  model's suggestion with probability ``p``, after Dratsch et al., "Automation Bias in Mammography",
  Radiology 2023, https://doi.org/10.1148/radiol.222176); the cost-minimising threshold, its closed
  form, and an hour-by-hour simulation of the review queue over a week of traffic;
* **drift** — typos injected into text (a shifted test set built from real tickets) and a p-chart
  rule that raises an alarm when the share of items sent to review leaves its control limits.

Conventions. ``proba`` is either an ``(n, k)`` array of class probabilities (rows sum to 1) or, for
a binary task, an ``(n,)`` array of P(class 1). The *confidence* of a prediction is its top-label
probability; an item is *flagged* for review when its confidence is **below** the threshold; items
at or above it are automated. ``correct`` is a boolean array: was the model's top label right. The
review-economics functions also accept the *probability* of being right instead (calibrated
confidence): then they return what the model expects, without labels.

Every function takes plain NumPy arrays; nothing here trains a model. Two small data helpers for the
lab sit at the end: :func:`stratified_sample` (smoke-size subsamples) and :func:`embed_texts`
(length-sorted batching for the MiniLM embedder).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

QUEUES = ("fifo", "triage")
EPS = 1e-12  # probabilities are clipped to [EPS, 1] before taking logs


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------
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


def top_label(y_true: Any, proba: Any) -> tuple[np.ndarray, np.ndarray]:
    """Confidence (top-label probability) and correctness of each prediction.

    Ties between classes go to the lowest class index (``np.argmax``).

    Returns
    -------
    confidence : np.ndarray of float, shape (n,)
    correct : np.ndarray of bool, shape (n,)

    Examples
    --------
    >>> conf, ok = top_label([0, 1, 1], [[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]])
    >>> conf.tolist(), ok.tolist()
    ([0.9, 0.7, 0.6], [True, True, False])
    """
    P = _check_proba(proba)
    y = _check_labels(y_true, P.shape[0], P.shape[1])
    return P.max(axis=1), P.argmax(axis=1) == y


# --------------------------------------------------------------------------------------------
# Calibration metrics
# --------------------------------------------------------------------------------------------
def _bin_index(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-width bins ``(i/B, (i+1)/B]``; confidence 0 goes to the first bin."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)


def _check_bins(n_bins: Any) -> int:
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    return int(n_bins)


def reliability_table(y_true: Any, proba: Any, n_bins: int = 10) -> pd.DataFrame:
    """Accuracy against confidence in equal-width confidence bins: the data of a reliability diagram.

    Parameters
    ----------
    y_true : array-like of int, shape (n,)
    proba : array-like, shape (n, k) or (n,)
    n_bins : int
        Bins ``(0, 1/B], (1/B, 2/B], ..., ((B-1)/B, 1]`` (Guo et al. 2017, §2).

    Returns
    -------
    pandas.DataFrame
        One row per bin: ``lower``, ``upper``, ``count``, ``share`` (of all items), ``confidence`` (mean
        top-label probability), ``accuracy`` and ``gap`` = accuracy - confidence (negative: overconfident).
        Empty bins have ``count`` 0 and NaN means.

    Examples
    --------
    >>> t = reliability_table([0, 0, 0, 1], [[0.75, 0.25]] * 4, n_bins=4)
    >>> t.loc[2, ["count", "confidence", "accuracy", "gap"]].tolist()
    [4.0, 0.75, 0.75, 0.0]
    """
    n_bins = _check_bins(n_bins)
    conf, correct = top_label(y_true, proba)
    idx = _bin_index(conf, n_bins)
    count = np.bincount(idx, minlength=n_bins).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, weights=conf, minlength=n_bins) / count
        acc = np.bincount(idx, weights=correct.astype(float), minlength=n_bins) / count
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return pd.DataFrame({"lower": edges[:-1], "upper": edges[1:], "count": count, "share": count / conf.size,
                         "confidence": mean_conf, "accuracy": acc, "gap": acc - mean_conf})


def expected_calibration_error(y_true: Any, proba: Any, n_bins: int = 10) -> float:
    """Expected calibration error: the share-weighted mean of |accuracy - confidence| over the bins.

    ``ECE = sum_b (n_b / n) * |acc_b - conf_b|`` on the top label (Naeini, Cooper & Hauskrecht, AAAI 2015;
    Guo et al., ICML 2017, eq. 3). 0 for perfectly calibrated bins; at most 1.

    Examples
    --------
    >>> round(expected_calibration_error([0, 0, 0, 1], [[0.75, 0.25]] * 4), 12)   # 3 of 4 right at 0.75
    0.0
    >>> expected_calibration_error([1, 1], [[0.9, 0.1], [0.9, 0.1]])            # 0 of 2 right at 0.9
    0.9
    """
    table = reliability_table(y_true, proba, n_bins)
    used = table["count"] > 0
    return float((table.loc[used, "share"] * table.loc[used, "gap"].abs()).sum())


def brier_score(y_true: Any, proba: Any) -> float:
    """Brier score (lower is better).

    For a binary ``(n,)`` input: ``mean((p - y)^2)``, as scikit-learn's ``brier_score_loss``. For an
    ``(n, k)`` input: Brier's original multi-class score ``mean(sum_k (p_k - 1[y = k])^2)``, which is
    twice the binary score when ``k = 2`` (Brier, Monthly Weather Review 78(1), 1950).

    Examples
    --------
    >>> brier_score([1, 0], [0.8, 0.4])
    0.1
    >>> round(brier_score([1, 0], [[0.2, 0.8], [0.6, 0.4]]), 12)
    0.2
    """
    binary = np.ndim(proba) == 1
    P = _check_proba(proba)
    y = _check_labels(y_true, P.shape[0], P.shape[1])
    onehot = np.eye(P.shape[1])[y]
    if binary:
        return float(np.mean((P[:, 1] - onehot[:, 1]) ** 2))
    return float(np.mean(np.sum((P - onehot) ** 2, axis=1)))


def log_loss(y_true: Any, proba: Any) -> float:
    """Mean negative log-likelihood of the true class, ``-mean(log p_y)`` (probabilities clipped at 1e-12).

    Examples
    --------
    >>> round(log_loss([0, 1], [[0.5, 0.5], [0.5, 0.5]]), 6)
    0.693147
    """
    P = _check_proba(proba)
    y = _check_labels(y_true, P.shape[0], P.shape[1])
    return float(-np.mean(np.log(np.clip(P[np.arange(y.size), y], EPS, 1.0))))


# --------------------------------------------------------------------------------------------
# Temperature scaling
# --------------------------------------------------------------------------------------------
def proba_to_logits(proba: Any) -> np.ndarray:
    """Logits that reproduce ``proba`` under softmax (log-probabilities; for ``(n,)`` input, log-odds).

    Use it on models that only expose ``predict_proba``: ``softmax(log p) = p``, so temperature scaling
    of these logits is the same as temperature scaling of the model's own scores up to a per-row
    constant. Probabilities are clipped at 1e-12 first, so logits stay finite.

    Examples
    --------
    >>> z = proba_to_logits([[0.2, 0.8]])
    >>> np.allclose(scale_logits(z), [[0.2, 0.8]])
    True
    >>> proba_to_logits([0.5, 0.9]).round(4).tolist()
    [0.0, 2.1972]
    """
    if np.ndim(proba) == 1:
        p = np.clip(_check_proba(proba)[:, 1], EPS, 1 - EPS)
        return np.log(p) - np.log1p(-p)
    return np.log(np.clip(_check_proba(proba), EPS, 1.0))


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


def scale_logits(logits: Any, temperature: float = 1.0) -> np.ndarray:
    """Probabilities from logits divided by a temperature: ``softmax(z / T)`` (``sigmoid(z / T)`` for 1-D).

    ``T > 1`` softens (less confident), ``T < 1`` sharpens; the top label never changes.

    Examples
    --------
    >>> scale_logits([[2.0, 0.0]], 1.0).round(4).tolist()
    [[0.8808, 0.1192]]
    >>> scale_logits([[2.0, 0.0]], 2.0).round(4).tolist()
    [[0.7311, 0.2689]]
    >>> scale_logits([0.0, 4.0], 2.0).round(4).tolist()
    [0.5, 0.8808]
    """
    z = _check_logits(logits) / _check_temperature(temperature)
    if z.ndim == 1:
        return np.exp(-np.logaddexp(0.0, -z))
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def logits_nll(logits: Any, y_true: Any, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``softmax(logits / T)`` (``sigmoid`` for 1-D), computed stably.

    Examples
    --------
    >>> round(logits_nll([[0.0, 0.0]], [1]), 6)
    0.693147
    """
    z = _check_logits(logits) / _check_temperature(temperature)
    y = _check_labels(y_true, z.shape[0], 2 if z.ndim == 1 else z.shape[1])
    if z.ndim == 1:  # -[y log s(z) + (1 - y) log(1 - s(z))] = log(1 + e^z) - y z
        return float(np.mean(np.logaddexp(0.0, z) - y * z))
    zmax = z.max(axis=1, keepdims=True)
    lse = zmax[:, 0] + np.log(np.exp(z - zmax).sum(axis=1))
    return float(np.mean(lse - z[np.arange(y.size), y]))


_T_GRID = 121  # grid points over log T before the local refinement


def fit_temperature(logits: Any, y_true: Any, bounds: tuple[float, float] = (0.01, 100.0)) -> float:
    """The temperature ``T`` in ``bounds`` that minimises the validation NLL of ``softmax(logits / T)``.

    The NLL is convex in ``1 / T``, hence unimodal in ``log T``: a grid of 121 points over ``log T``
    brackets the minimum and a bounded Brent search refines it. The result never has a higher NLL than
    ``T = 1`` (when 1 lies in ``bounds``): temperature scaling cannot make the validation fit worse.

    Parameters
    ----------
    logits : array-like, shape (n, k) or (n,)
        Validation scores (see :func:`proba_to_logits` for models that only give probabilities).
    y_true : array-like of int, shape (n,)
    bounds : (float, float)
        Search range for ``T``. A result at a bound means the optimum lies beyond it (for example a
        validation set the model separates perfectly, where the NLL keeps falling as ``T -> 0``).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(0, 3, size=(4000, 3))
    >>> y = np.array([rng.choice(3, p=p) for p in scale_logits(z, 2.0)])   # true temperature 2
    >>> 1.8 < fit_temperature(z, y) < 2.2
    True
    """
    from scipy.optimize import minimize_scalar

    z = _check_logits(logits)
    y = _check_labels(y_true, z.shape[0], 2 if z.ndim == 1 else z.shape[1])
    lo, hi = (float(b) for b in bounds)
    if not (0 < lo < hi) or math.isinf(hi):
        raise ValueError(f"bounds must satisfy 0 < low < high < inf, got {bounds!r}")
    grid = np.linspace(math.log(lo), math.log(hi), _T_GRID)
    values = np.array([logits_nll(z, y, math.exp(g)) for g in grid])
    i = int(np.argmin(values))
    a, b = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
    best_log, best = grid[i], values[i]
    if b > a:
        res = minimize_scalar(lambda g: logits_nll(z, y, math.exp(g)), bounds=(a, b), method="bounded",
                              options={"xatol": 1e-7})
        if res.fun <= best:
            best_log, best = float(res.x), float(res.fun)
    temperature = math.exp(best_log)
    if lo <= 1.0 <= hi and logits_nll(z, y, 1.0) <= best:
        temperature = 1.0
    return float(temperature)


class TemperatureScaler:
    """Temperature scaling as a scikit-learn-style post-processor.

    Attributes (after :meth:`fit`)
    ------------------------------
    temperature_ : float
    nll_before_, nll_after_ : float
        Validation NLL at ``T = 1`` and at the fitted ``T`` (``nll_after_ <= nll_before_``).
    at_bound_ : bool
        The fitted ``T`` lies within one grid step of a search bound (the optimum may lie beyond it,
        e.g. a validation set the model separates perfectly).

    Examples
    --------
    >>> scaler = TemperatureScaler().fit([[3.0, 0.0], [3.0, 0.0], [0.0, 3.0]], [0, 1, 1])
    >>> scaler.temperature_ > 1, scaler.nll_after_ <= scaler.nll_before_
    (True, True)
    >>> scaler.transform([[3.0, 0.0]]).shape
    (1, 2)
    """

    def __init__(self, bounds: tuple[float, float] = (0.01, 100.0)):
        self.bounds = bounds

    def fit(self, logits: Any, y_true: Any) -> "TemperatureScaler":
        self.temperature_ = fit_temperature(logits, y_true, self.bounds)
        self.nll_before_ = logits_nll(logits, y_true, 1.0)
        self.nll_after_ = logits_nll(logits, y_true, self.temperature_)
        lo, hi = (float(b) for b in self.bounds)
        step = (hi / lo) ** (1.0 / (_T_GRID - 1))  # within one grid step of a bound: the optimum may lie beyond
        self.at_bound_ = bool(self.temperature_ < lo * step or self.temperature_ > hi / step)
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "temperature_"):
            raise RuntimeError("this TemperatureScaler is not fitted yet; call .fit(val_logits, y_val) first")

    def transform(self, logits: Any) -> np.ndarray:
        """Calibrated probabilities ``softmax(logits / temperature_)``."""
        self._check_fitted()
        return scale_logits(logits, self.temperature_)

    predict_proba = transform

    def __repr__(self) -> str:
        fitted = f", temperature_={self.temperature_:.3f}" if hasattr(self, "temperature_") else ""
        return f"TemperatureScaler(bounds={self.bounds!r}{fitted})"


# --------------------------------------------------------------------------------------------
# Selective prediction
# --------------------------------------------------------------------------------------------
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


def _check_correct(correct: Any, n: int) -> np.ndarray:
    return _check_mask(correct, n, "correct")


def _check_correct_prob(correct: Any, n: int) -> np.ndarray:
    """``correct`` as booleans (labelled data) or probabilities of being correct (e.g. calibrated
    confidence, for the model's own forecast); returned as floats in [0, 1]."""
    c = np.asarray(correct)
    if c.shape != (n,):
        raise ValueError(f"correct must be a 1-D array with one entry per item ({n}), got shape {c.shape}")
    c = c.astype(float)
    if not np.isfinite(c).all() or (c < 0).any() or (c > 1).any():
        raise ValueError("correct must be booleans or probabilities of being correct in [0, 1]")
    return c


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


# --------------------------------------------------------------------------------------------
# Review economics
# --------------------------------------------------------------------------------------------
def reviewed_error(model_wrong: Any, reviewer_accuracy: float, follow_prob: float) -> np.ndarray:
    """Probability that a reviewed item ends up wrong, with automation bias.

    The reviewer sees the model's suggestion. With probability ``follow_prob`` (``p``) they follow it
    whatever it says; otherwise they decide on their own and are right with probability
    ``reviewer_accuracy`` (``a``). So an item the model got wrong ends wrong with probability
    ``p + (1 - p)(1 - a)``, one it got right with ``(1 - p)(1 - a)``; in one line ``p*w + (1-p)(1-a)``.

    Review lowers the error of an item only where the model's error exceeds the reviewer's own
    (``w > 1 - a``); automation bias scales that gain by ``1 - p`` but does not move the break-even.

    Examples
    --------
    >>> reviewed_error([True, False], reviewer_accuracy=0.9, follow_prob=0.0).round(3).tolist()
    [0.1, 0.1]
    >>> reviewed_error([True, False], reviewer_accuracy=0.9, follow_prob=0.5).round(3).tolist()
    [0.55, 0.05]
    """
    w = np.asarray(model_wrong, dtype=float)
    if w.size and ((w < 0).any() or (w > 1).any()):
        raise ValueError("model_wrong must be booleans or error probabilities in [0, 1]")
    a = _check_unit(reviewer_accuracy, "reviewer_accuracy")
    p = _check_unit(follow_prob, "follow_prob")
    return p * w + (1 - p) * (1 - a)


def system_error(model_wrong: Any, reviewed: Any, reviewer_accuracy: float = 1.0, follow_prob: float = 0.0) -> float:
    """Final error rate of a human-AI system: automated items keep the model's error, reviewed items get
    :func:`reviewed_error`.

    Parameters
    ----------
    model_wrong : array-like of bool (or error probabilities), shape (n,)
    reviewed : array-like of bool or probabilities in [0, 1], shape (n,)
        Whether (or with what probability) each item is reviewed.
    reviewer_accuracy, follow_prob : float

    Examples
    --------
    >>> system_error([True, False, True, False], [True, True, False, False], 0.9, 0.5)   # (0.55+0.05+1+0)/4
    0.4
    """
    w = np.asarray(model_wrong, dtype=float)
    r = np.asarray(reviewed, dtype=float)
    if w.ndim != 1 or w.shape != r.shape or w.size == 0:
        raise ValueError(f"model_wrong and reviewed must be non-empty 1-D arrays of the same length, got "
                         f"shapes {w.shape} and {r.shape}")
    if (r < 0).any() or (r > 1).any():
        raise ValueError("reviewed must be booleans or probabilities in [0, 1]")
    final = (1 - r) * w + r * reviewed_error(w, reviewer_accuracy, follow_prob)
    return float(final.mean())


def analytic_threshold(review_cost: Any, error_cost: Any, reviewer_accuracy: float = 1.0,
                       follow_prob: float = 0.0) -> Any:
    """The cost-minimising confidence threshold for calibrated scores and unlimited reviewers.

    Reviewing an item with calibrated error ``e = 1 - confidence`` saves ``(1 - p)(e - (1 - a)) * c``
    in expected error cost and costs ``r``. It pays when ``confidence < a - r / ((1 - p) c)``: that is the
    threshold. It rises with reviewer accuracy and error cost, falls with review cost and automation
    bias; with ``p = 1`` review never pays (``-inf``). Below 0 means "review nothing".

    Examples
    --------
    >>> analytic_threshold(review_cost=1.0, error_cost=10.0)            # review when confidence < 0.9
    0.9
    >>> round(analytic_threshold(1.0, 10.0, reviewer_accuracy=0.95, follow_prob=0.5), 6)
    0.75
    """
    a = _check_unit(reviewer_accuracy, "reviewer_accuracy")
    p = _check_unit(follow_prob, "follow_prob")
    r = np.asarray(review_cost, dtype=float)
    c = np.asarray(error_cost, dtype=float)
    if (r < 0).any() or (c <= 0).any():
        raise ValueError("review_cost must be >= 0 and error_cost > 0")
    if p >= 1.0:
        out = np.full(np.broadcast(r, c).shape, -np.inf)
    else:
        out = a - r / ((1 - p) * c)
    return float(out) if np.ndim(out) == 0 else out


@dataclass(frozen=True)
class ReviewOutcome:
    """Expected outcome of one review policy, per item (shares are fractions of all items)."""

    threshold: float
    flagged: float          # share sent to the review queue
    reviewed: float         # share actually reviewed (capacity permitting)
    overflow: float         # flagged but not reviewed: the model's decision stands
    automated: float        # 1 - reviewed: share decided by the model alone
    error_rate: float       # share that ends wrong (errors let through)
    error_cost: float       # expected error cost per item
    review_cost: float      # review (and overflow) cost per item
    cost: float             # total expected cost per item

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


def review_probability(confidence: Any, threshold: float, *, capacity: float | None = None,
                       always_review: Any = None, queue: str = "fifo") -> tuple[np.ndarray, np.ndarray]:
    """Which items are flagged for review, and the probability each one is actually reviewed.

    An item is flagged when ``confidence < threshold`` or ``always_review`` is set for it. With
    ``capacity`` reviews available for these items (``None``: unlimited):

    * ``queue="fifo"`` — reviewers take flagged items in arrival order, so each is reviewed with
      probability ``min(1, capacity / flagged)``;
    * ``queue="triage"`` — always-review items first, then the least confident: the first
      ``floor(capacity)`` flagged items are reviewed, the next one with probability equal to the
      fractional part (so both queues review ``capacity`` items in expectation).

    Returns
    -------
    flagged : np.ndarray of bool
    reviewed : np.ndarray of float in [0, 1]
    """
    conf = _check_confidence(confidence)
    n = conf.size
    t = float(threshold)
    if math.isnan(t):
        raise ValueError("threshold is NaN")
    if queue not in QUEUES:
        raise ValueError(f"queue must be one of {QUEUES}, got {queue!r}")
    always = np.zeros(n, bool) if always_review is None else _check_mask(always_review, n, "always_review")
    flagged = (conf < t) | always
    demand = int(flagged.sum())
    reviewed = flagged.astype(float)
    if capacity is None or demand == 0:
        return flagged, reviewed
    cap = _check_nonneg(capacity, "capacity")
    if cap >= demand:
        return flagged, reviewed
    if queue == "fifo":
        return flagged, reviewed * (cap / demand)
    idx = np.flatnonzero(flagged)
    order = idx[np.lexsort((idx, conf[idx], ~always[idx]))]   # always-review first, then least confident
    whole = int(math.floor(cap))
    reviewed[:] = 0.0
    reviewed[order[:whole]] = 1.0
    reviewed[order[whole]] = cap - whole   # whole < demand here
    return flagged, reviewed


def review_economics(confidence: Any, correct: Any, cost_if_wrong: Any, threshold: float, *,
                     review_cost: float, capacity: float | None = None, reviewer_accuracy: float = 1.0,
                     follow_prob: float = 0.0, always_review: Any = None, queue: str = "fifo",
                     overflow_cost: float = 0.0) -> ReviewOutcome:
    """Expected cost per item of the policy "review when confidence < threshold (or always_review)".

    ``cost per item = mean_i [ c_i * P(item i ends wrong) + P(reviewed_i) * review_cost
    + P(flagged, not reviewed)_i * overflow_cost ]``, where an automated item ends wrong when the model is
    wrong, a reviewed one with :func:`reviewed_error`, and an overflowing one (flagged, no reviewer free)
    keeps the model's decision.

    Parameters
    ----------
    confidence : array-like of float, shape (n,)
    correct : array-like of bool or float, shape (n,)
        Whether the model's decision is right (labelled data: what the policy *did*), or the
        probability that it is right (calibrated confidence: what the model *expects*, no labels needed).
    cost_if_wrong : float or array-like, shape (n,)
        What a wrong final decision on each item costs (e.g. higher for high-stakes items).
    threshold : float
    review_cost : float
        Cost of one review.
    capacity : float, optional
        Reviews available for these ``n`` items (e.g. ``n * reviews_per_day / items_per_day``).
    reviewer_accuracy, follow_prob : float
        See :func:`reviewed_error`.
    always_review : array-like of bool, optional
        Items that go to the queue whatever their confidence (high-stakes rules).
    queue : {"fifo", "triage"}
        See :func:`review_probability`.
    overflow_cost : float
        Extra cost of an item that was flagged but never reviewed (an SLA breach, a late reply).

    Examples
    --------
    >>> conf = [0.95, 0.9, 0.6, 0.55]; ok = [True, True, False, True]
    >>> out = review_economics(conf, ok, 10.0, 0.7, review_cost=1.0)
    >>> out.flagged, out.error_rate, out.cost            # 2 reviews, perfect reviewers, no errors left
    (0.5, 0.0, 0.5)
    >>> review_economics(conf, ok, 10.0, 0.7, review_cost=1.0, capacity=1).cost   # each reviewed w.p. 1/2
    1.5
    """
    conf = _check_confidence(confidence)
    n = conf.size
    p_ok = _check_correct_prob(correct, n)
    c = _per_item(cost_if_wrong, n, "cost_if_wrong")
    r_cost = _check_nonneg(review_cost, "review_cost")
    o_cost = _check_nonneg(overflow_cost, "overflow_cost")
    flagged, rev = review_probability(conf, threshold, capacity=capacity, always_review=always_review, queue=queue)
    wrong = 1.0 - p_ok
    final_wrong = (1 - rev) * wrong + rev * reviewed_error(wrong, reviewer_accuracy, follow_prob)
    over = flagged * (1 - rev)
    error_cost = float(np.mean(c * final_wrong))
    other = float(np.mean(rev * r_cost + over * o_cost))
    return ReviewOutcome(threshold=float(threshold), flagged=float(flagged.mean()), reviewed=float(rev.mean()),
                         overflow=float(over.mean()), automated=float(1 - rev.mean()),
                         error_rate=float(final_wrong.mean()), error_cost=error_cost, review_cost=other,
                         cost=error_cost + other)


def candidate_thresholds(confidence: Any) -> np.ndarray:
    """Every threshold that gives a distinct policy: 0 (review nothing), each distinct confidence, and
    ``inf`` (review everything), in increasing order.

    Examples
    --------
    >>> candidate_thresholds([0.7, 0.9, 0.7]).tolist()
    [0.0, 0.7, 0.9, inf]
    """
    conf = _check_confidence(confidence)
    return np.append(np.unique(np.r_[0.0, conf[conf > 0]]), np.inf)


def cost_curve(confidence: Any, correct: Any, cost_if_wrong: Any, thresholds: Any = None, **policy) -> pd.DataFrame:
    """:func:`review_economics` at every threshold (default :func:`candidate_thresholds`), one row each.

    ``policy`` takes the keyword arguments of :func:`review_economics` (``review_cost`` is required).
    """
    ts = candidate_thresholds(confidence) if thresholds is None else np.asarray(thresholds, dtype=float).ravel()
    if ts.size == 0:
        raise ValueError("thresholds is empty")
    rows = [review_economics(confidence, correct, cost_if_wrong, float(t), **policy).as_dict() for t in ts]
    return pd.DataFrame(rows)


def best_threshold(confidence: Any, correct: Any, cost_if_wrong: Any, thresholds: Any = None,
                   **policy) -> ReviewOutcome:
    """The cost-minimising threshold among ``thresholds`` (ties: the smallest, i.e. the least review).

    Examples
    --------
    >>> conf = [0.95, 0.9, 0.6, 0.55]; ok = [True, True, False, True]
    >>> best_threshold(conf, ok, 10.0, review_cost=1.0).threshold    # review only the two uncertain ones
    0.9
    >>> best_threshold(conf, ok, 10.0, review_cost=20.0).threshold   # reviews cost more than errors
    0.0
    """
    curve = cost_curve(confidence, correct, cost_if_wrong, thresholds, **policy)
    best = curve["cost"].min()
    row = curve[curve["cost"] <= best + 1e-12 * max(1.0, abs(best))].sort_values("threshold").iloc[0]
    return ReviewOutcome(**{k: float(row[k]) for k in ReviewOutcome.__dataclass_fields__})


# --------------------------------------------------------------------------------------------
# A week of traffic: arrivals, reviewer shifts, and an hour-by-hour queue
# --------------------------------------------------------------------------------------------
def hourly_profile(timestamps: Any) -> np.ndarray:
    """The share of requests in each hour of the day (24 values summing to 1) from arrival times.

    Examples
    --------
    >>> ts = pd.to_datetime(["2025-01-06 09:10", "2025-01-06 09:50", "2025-01-06 14:00"], utc=True)
    >>> p = hourly_profile(ts); p[9], p[14]
    (np.float64(0.6666666666666666), np.float64(0.3333333333333333))
    """
    ts = pd.DatetimeIndex(pd.to_datetime(timestamps))
    if ts.size == 0:
        raise ValueError("timestamps is empty")
    counts = np.bincount(ts.hour, minlength=24).astype(float)
    return counts / counts.sum()


def poisson_arrivals(profile: Any, per_day: float, days: int = 7, *, day_factors: Any = None,
                     seed: int = 0) -> np.ndarray:
    """Arrivals per hour over ``days`` days: Poisson with mean ``per_day * day_factor * profile[hour]``.

    Parameters
    ----------
    profile : array-like, shape (24,)
        Share of a day's traffic in each hour (see :func:`hourly_profile`).
    per_day : float
        Mean items per day.
    day_factors : array-like, shape (days,), optional
        Multiplier per day (e.g. quieter weekends); default 1.

    Examples
    --------
    >>> a = poisson_arrivals(np.full(24, 1 / 24), per_day=240, days=7, seed=0)
    >>> a.shape, bool(1500 < a.sum() < 1860)
    ((168,), True)
    """
    prof = np.asarray(profile, dtype=float)
    if prof.shape != (24,) or (prof < 0).any() or not np.isclose(prof.sum(), 1.0):
        raise ValueError("profile must be 24 non-negative shares that sum to 1 (see hourly_profile)")
    rate = _check_nonneg(per_day, "per_day")
    if isinstance(days, bool) or not isinstance(days, (int, np.integer)) or days < 1:
        raise ValueError(f"days must be a positive integer, got {days!r}")
    factors = np.ones(days) if day_factors is None else np.asarray(day_factors, dtype=float)
    if factors.shape != (days,) or (factors < 0).any():
        raise ValueError(f"day_factors must be {days} non-negative numbers")
    lam = rate * np.outer(factors, prof).ravel()
    return np.random.default_rng(seed).poisson(lam).astype(np.int64)


def shift_capacity(reviews_per_hour: float, days: int = 7, *, hours: tuple[int, int] = (9, 17),
                   workdays: Sequence[int] = (0, 1, 2, 3, 4)) -> np.ndarray:
    """Reviews available in each hour: ``reviews_per_hour`` inside shift hours on workdays, else 0.

    Day 0 of the simulation is a Monday (weekday 0).

    Examples
    --------
    >>> cap = shift_capacity(10, days=7)
    >>> cap.sum(), cap[9], cap[8], cap[5 * 24 + 10]     # 5 days x 8 hours x 10; Saturday is off
    (np.float64(400.0), np.float64(10.0), np.float64(0.0), np.float64(0.0))
    """
    per_hour = _check_nonneg(reviews_per_hour, "reviews_per_hour")
    start, end = hours
    if not 0 <= start < end <= 24:
        raise ValueError(f"hours must be (start, end) with 0 <= start < end <= 24, got {hours!r}")
    cap = np.zeros(days * 24)
    for d in range(days):
        if d % 7 in set(workdays):
            cap[d * 24 + start: d * 24 + end] = per_hour
    return cap


def simulate_review_queue(confidence: Any, correct: Any, cost_if_wrong: Any, threshold: float, *,
                          arrivals: Any, capacity: Any, review_cost: float, reviewer_accuracy: float = 1.0,
                          follow_prob: float = 0.0, always_review: Any = None, max_wait: int | None = None,
                          overflow_cost: float = 0.0, queue: str = "fifo", watch: Any = None,
                          seed: int = 0) -> pd.DataFrame:
    """Simulate the review queue hour by hour over real items.

    Each hour, ``arrivals[h]`` items are drawn (with replacement) from the evaluated items. Items with
    confidence >= threshold (and no always-review flag) are automated at once. Flagged items wait in
    the queue; reviewers clear up to ``capacity[h]`` of them (fractional capacity carries over), in
    arrival order (``queue="fifo"``) or always-review items first, then the least confident
    (``queue="triage"``). A reviewer follows the model's suggestion with probability ``follow_prob``,
    otherwise decides correctly with probability ``reviewer_accuracy``. An item that has waited
    ``max_wait`` hours is released with the model's decision (an overflow, charged ``overflow_cost``).
    ``watch`` marks items to follow (e.g. high-stakes tickets): ``watched`` counts those that arrive,
    ``watched_unreviewed`` those decided without a human (automated or released).

    Returns
    -------
    pandas.DataFrame
        One row per hour: ``hour``, ``day``, ``arrivals``, ``automated``, ``flagged``, ``reviewed``,
        ``released`` (overflowed), ``backlog`` (waiting at the end of the hour), ``errors`` (wrong final
        decisions made this hour), ``cost``, ``max_wait_h`` (the oldest waiting item's age),
        ``watched`` and ``watched_unreviewed``.
        Items still waiting at the end are in the last row's ``backlog``, not costed.

    Examples
    --------
    >>> sim = simulate_review_queue([0.99, 0.5], [True, False], 10.0, 0.9, arrivals=[10] * 24,
    ...                             capacity=[2] * 24, review_cost=1.0, seed=0)
    >>> int(sim["arrivals"].sum()), int(sim["automated"].sum() + sim["flagged"].sum())
    (240, 240)
    """
    conf = _check_confidence(confidence)
    n = conf.size
    ok = _check_correct(correct, n)
    c = _per_item(cost_if_wrong, n, "cost_if_wrong")
    arr = np.asarray(arrivals)
    if arr.ndim != 1 or arr.size == 0 or (arr < 0).any() or not np.all(np.mod(arr, 1) == 0):
        raise ValueError("arrivals must be a 1-D array of non-negative integers, one per hour")
    arr = arr.astype(np.int64)
    cap = np.broadcast_to(np.asarray(capacity, dtype=float), arr.shape) if np.ndim(capacity) == 0 \
        else np.asarray(capacity, dtype=float)
    if cap.shape != arr.shape or (cap < 0).any():
        raise ValueError(f"capacity must be a number or one non-negative value per hour ({arr.size})")
    a = _check_unit(reviewer_accuracy, "reviewer_accuracy")
    p = _check_unit(follow_prob, "follow_prob")
    r_cost, o_cost = _check_nonneg(review_cost, "review_cost"), _check_nonneg(overflow_cost, "overflow_cost")
    if max_wait is not None and (isinstance(max_wait, bool) or int(max_wait) < 0):
        raise ValueError(f"max_wait must be None or hours >= 0, got {max_wait!r}")
    if queue not in QUEUES:
        raise ValueError(f"queue must be one of {QUEUES}, got {queue!r}")
    always = np.zeros(n, bool) if always_review is None else _check_mask(always_review, n, "always_review")
    watched = np.zeros(n, bool) if watch is None else _check_mask(watch, n, "watch")
    flag_item = (conf < float(threshold)) | always

    rng = np.random.default_rng(seed)
    # waiting items as (priority key, arrival hour, item); FIFO: arrival order, triage: rule, confidence
    waiting: list[tuple[tuple, int, int]] = []
    seq = 0
    credit = 0.0
    rows = []
    for h, k in enumerate(arr):
        items = rng.integers(0, n, size=int(k))
        auto = items[~flag_item[items]]
        unseen = int(watched[auto].sum())
        errors = float((~ok[auto]).sum())
        cost = float(c[auto][~ok[auto]].sum())
        for i in items[flag_item[items]]:
            key = (h, seq) if queue == "fifo" else (not always[i], float(conf[i]), h, seq)
            waiting.append((key, h, int(i)))
            seq += 1
        credit += cap[h]
        take = min(len(waiting), int(math.floor(credit)))
        reviewed = 0
        if take:
            waiting.sort(key=lambda entry: entry[0])
            done, waiting = waiting[:take], waiting[take:]
            credit -= take
            for _, _, i in done:
                reviewed += 1
                follows = rng.random() < p
                wrong = (not ok[i]) if follows else (rng.random() >= a)
                errors += wrong
                cost += r_cost + (c[i] if wrong else 0.0)
        if not waiting:
            credit %= 1.0  # idle reviewers cannot bank whole reviews for later hours
        released = 0
        if max_wait is not None:
            stale = [entry for entry in waiting if h - entry[1] >= int(max_wait)]
            if stale:
                waiting = [entry for entry in waiting if h - entry[1] < int(max_wait)]
                for _, _, i in stale:
                    released += 1
                    unseen += int(watched[i])
                    errors += not ok[i]
                    cost += o_cost + (0.0 if ok[i] else c[i])
        rows.append({"hour": h, "day": h // 24, "arrivals": int(k), "automated": int(auto.size),
                     "flagged": int(k - auto.size), "reviewed": reviewed, "released": released,
                     "backlog": len(waiting), "errors": errors, "cost": cost,
                     "max_wait_h": max((h - entry[1] for entry in waiting), default=0),
                     "watched": int(watched[items].sum()), "watched_unreviewed": unseen})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Drift: shifted inputs and a monitoring rule
# --------------------------------------------------------------------------------------------
_KEY_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_NEIGHBOURS = {ch: "".join(row[j] for j in (i - 1, i + 1) if 0 <= j < len(row))
               for row in _KEY_ROWS for i, ch in enumerate(row)}
TYPO_OPERATIONS = ("delete", "duplicate", "swap", "neighbour")


def inject_typos(texts: Sequence[str] | str, rate: float, seed: int = 0) -> list[str]:
    """Real text with typing errors: each letter, with probability ``rate``, is deleted, doubled,
    swapped with the next letter, or replaced by a neighbouring key on a QWERTY keyboard (one of the
    four, equally likely; case is kept). Digits, spaces and punctuation are left alone.

    A reproducible covariate shift for text models: the same tickets, typed in a hurry.

    Examples
    --------
    >>> inject_typos(["where is my parcel"], 0.0)
    ['where is my parcel']
    >>> inject_typos("where is my parcel", 0.3, seed=1) != ["where is my parcel"]
    True
    """
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    if not all(isinstance(t, str) for t in texts):
        raise TypeError("inject_typos takes a string or a sequence of strings")
    r = _check_unit(rate, "rate")
    rng = np.random.default_rng(seed)
    out = []
    for text in texts:
        chars = list(text)
        result: list[str] = []
        i = 0
        while i < len(chars):
            ch = chars[i]
            if ch.isalpha() and rng.random() < r:
                op = TYPO_OPERATIONS[int(rng.integers(len(TYPO_OPERATIONS)))]
                if op == "delete":
                    i += 1
                    continue
                if op == "duplicate":
                    result += [ch, ch]
                elif op == "swap" and i + 1 < len(chars) and chars[i + 1].isalpha():
                    result += [chars[i + 1], ch]
                    i += 2
                    continue
                elif op == "neighbour" and ch.lower() in _NEIGHBOURS:
                    nb = _NEIGHBOURS[ch.lower()]
                    new = nb[int(rng.integers(len(nb)))]
                    result.append(new.upper() if ch.isupper() else new)
                else:
                    result.append(ch)
            else:
                result.append(ch)
            i += 1
        out.append("".join(result))
    return out


def flag_rate_alarm(baseline_rate: float, flagged: Any, totals: Any, z: float = 3.0) -> pd.DataFrame:
    """A p-chart on the share of items sent to review: the monitoring rule that needs no labels.

    For each window (e.g. a day) with ``totals`` items of which ``flagged`` went to review, the control
    limits are ``baseline_rate +- z * sqrt(baseline_rate (1 - baseline_rate) / total)``; the alarm fires
    outside them. A rising review share is the first visible sign of drift: confidence falls before
    anyone has labels to measure the accuracy (Shewhart control chart for proportions; Montgomery,
    *Introduction to Statistical Quality Control*, ch. 7).

    Examples
    --------
    >>> t = flag_rate_alarm(0.2, flagged=[21, 45], totals=[100, 100])
    >>> t["alarm"].tolist(), round(float(t["upper"].iloc[0]), 3)
    ([False, True], 0.32)
    """
    p0 = _check_unit(baseline_rate, "baseline_rate")
    f = np.asarray(flagged, dtype=float)
    n = np.asarray(totals, dtype=float)
    if f.ndim != 1 or f.shape != n.shape or f.size == 0:
        raise ValueError("flagged and totals must be non-empty 1-D arrays of the same length")
    if (n <= 0).any() or (f < 0).any() or (f > n).any():
        raise ValueError("need totals > 0 and 0 <= flagged <= totals in every window")
    zz = _check_nonneg(z, "z")
    rate = f / n
    half = zz * np.sqrt(p0 * (1 - p0) / n)
    lower, upper = np.clip(p0 - half, 0, 1), np.clip(p0 + half, 0, 1)
    return pd.DataFrame({"window": np.arange(f.size), "flagged": f, "total": n, "rate": rate,
                         "lower": lower, "upper": upper, "alarm": (rate > upper) | (rate < lower)})


# --------------------------------------------------------------------------------------------
# Data helpers for the lab: stratified subsamples and length-sorted embedding
# --------------------------------------------------------------------------------------------
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
