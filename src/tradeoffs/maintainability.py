"""Maintainability, measured: prediction churn, CACE sensitivity, entanglement and a complexity scorecard.

Lab 2 asks whether a more complex model's accuracy gain pays for what it costs to keep alive.
Accuracy is one number; this module measures the others:

* **statistics that separate a real gain from noise** — bootstrap confidence intervals of accuracy
  and AUC, and a *paired* bootstrap of the difference between two models on the same test rows;
* **retrain churn** — the fraction of test predictions that flip when the same model is retrained
  with another seed or with 1% of its training rows changed (Milani Fard, Cormier, Canini & Gupta,
  "Launch and Iterate: Reducing Prediction Churn", NeurIPS 2016);
* **CACE sensitivity** — "Changing Anything Changes Everything" (Sculley et al., "Hidden Technical
  Debt in Machine Learning Systems", NeurIPS 2015): perturb one input feature the way upstream data
  really changes (a unit change, clipping, a different fill for missing values, a small drift) and
  count the predictions that change and the accuracy lost;
* **entanglement** — add one new, uninformative feature and count the predictions that change;
* **costs** — training time, single-row latency (via :func:`tradeoffs.measure.time_fn`), size of the
  pickled model, hyperparameters, the packages and classes the artifact needs, lines of pipeline code;
* a **scorecard** that puts them side by side and a **decision rule** under a maintenance budget.

Every function takes plain NumPy arrays and scikit-learn estimators (or any object with ``predict``).
"""

from __future__ import annotations

import ast
import inspect
import io
import itertools
import pickle
import sys
import textwrap
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from .measure import Timing, time_fn

LADDER = ("logistic", "gradient_boosting", "mlp", "stacked")
METRICS = ("accuracy", "auc")

# Constructor parameters that change how an estimator runs, not what it learns; not counted as
# hyperparameters. ``random_state`` is reported separately: retrain churn measures its effect.
NON_TUNING_PARAMS = frozenset({"verbose", "n_jobs", "memory", "copy", "copy_X", "warm_start",
                               "random_state", "transform_input"})


# --------------------------------------------------------------------------------------------
# The model ladder: the same task at four levels of complexity
# --------------------------------------------------------------------------------------------
def make_logistic(seed: int = 0, *, fast: bool = False):
    """Standardise, then L2-regularised logistic regression (the simple baseline).

    ``fast`` is accepted for a uniform signature; the model is already fast.

    Examples
    --------
    >>> make_logistic(0).steps[-1][0]
    'logisticregression'
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000, random_state=seed))


def make_gradient_boosting(seed: int = 0, *, fast: bool = False):
    """Stochastic gradient boosting (Friedman 2002): depth-3 trees on 80% row subsamples.

    ``fast=True`` (smoke runs) fits 30 trees instead of 200.

    Examples
    --------
    >>> make_gradient_boosting(0, fast=True).n_estimators
    30
    """
    from sklearn.ensemble import GradientBoostingClassifier

    return GradientBoostingClassifier(n_estimators=30 if fast else 200, learning_rate=0.1, max_depth=3,
                                      subsample=0.8, random_state=seed)


def make_mlp(seed: int = 0, *, fast: bool = False):
    """Standardise, then a two-hidden-layer perceptron (64 and 32 ReLU units, Adam).

    ``fast=True`` (smoke runs) caps training at 300 epochs instead of 600 (on the breast-cancer
    split Adam converges in about 90-115).

    Examples
    --------
    >>> make_mlp(0).steps[-1][1].hidden_layer_sizes
    (64, 32)
    """
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(64, 32), alpha=1e-3,
                                                         learning_rate_init=3e-3,
                                                         max_iter=300 if fast else 600, random_state=seed))


def make_stacked(seed: int = 0, *, fast: bool = False):
    """A stacked ensemble: the three models above, combined by a logistic regression on their
    out-of-fold probabilities (5-fold; 2-fold when ``fast``).

    Examples
    --------
    >>> [name for name, _ in make_stacked(0).estimators]
    ['logistic', 'gradient_boosting', 'mlp']
    """
    from sklearn.ensemble import StackingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    base = [("logistic", make_logistic(seed, fast=fast)),
            ("gradient_boosting", make_gradient_boosting(seed, fast=fast)),
            ("mlp", make_mlp(seed, fast=fast))]
    folds = StratifiedKFold(n_splits=2 if fast else 5, shuffle=True, random_state=seed)
    return StackingClassifier(estimators=base, cv=folds, stack_method="predict_proba",
                              final_estimator=LogisticRegression(max_iter=2000, random_state=seed))


@dataclass(frozen=True)
class ModelSpec:
    """One rung of the ladder: how to build it and which code a team has to own for it.

    Attributes
    ----------
    name : str
    build : callable
        ``build(seed, fast=False)`` returns a new, unfitted estimator.
    code : tuple of callables
        The functions whose source *is* this model's pipeline code (a stacked ensemble owns the
        code of all its members too); :attr:`lines_of_code` counts them.
    """

    name: str
    build: Callable[..., Any]
    code: tuple[Callable[..., Any], ...]

    def __call__(self, seed: int = 0, fast: bool = False):
        return self.build(seed, fast=fast)

    @property
    def lines_of_code(self) -> int:
        return source_lines(*self.code)


def model_ladder() -> dict[str, ModelSpec]:
    """The four models of Lab 2, simplest first.

    Examples
    --------
    >>> ladder = model_ladder()
    >>> list(ladder)
    ['logistic', 'gradient_boosting', 'mlp', 'stacked']
    >>> ladder["logistic"].lines_of_code < ladder["stacked"].lines_of_code
    True
    """
    return {
        "logistic": ModelSpec("logistic", make_logistic, (make_logistic,)),
        "gradient_boosting": ModelSpec("gradient_boosting", make_gradient_boosting, (make_gradient_boosting,)),
        "mlp": ModelSpec("mlp", make_mlp, (make_mlp,)),
        "stacked": ModelSpec("stacked", make_stacked,
                             (make_stacked, make_logistic, make_gradient_boosting, make_mlp)),
    }


def with_seed(estimator, seed: int):
    """An unfitted clone of ``estimator`` with every ``random_state`` parameter (nested ones too) set
    to ``seed``.

    Cross-validation splitters passed as objects (``cv=StratifiedKFold(...)``) are not estimator
    parameters and keep their own seed; build such models from a factory instead (see
    :func:`model_ladder`).

    Examples
    --------
    >>> from sklearn.ensemble import RandomForestClassifier
    >>> with_seed(RandomForestClassifier(random_state=1), 7).random_state
    7
    """
    from sklearn.base import clone

    _check_seed(seed)
    model = clone(estimator)
    keys = [k for k in model.get_params(deep=True) if k == "random_state" or k.endswith("__random_state")]
    if keys:
        model.set_params(**{k: int(seed) for k in keys})
    return model


def limit_threads(n_threads: int = 1):
    """Limit the BLAS and OpenMP thread pools that scikit-learn's models use, for this process.

    The lab's models are small (hundreds of rows, tens of features): with two or more threads the
    hand-offs between threads cost more than the arithmetic, and on a busy machine much more (a
    logistic regression fit measured 0.13 s of CPU with two OpenBLAS threads under load, 0.01 s with
    one). The native libraries are loaded first so that every pool is covered. Returns the
    ``threadpoolctl`` limiter: use it in a ``with`` block, or keep it and call
    ``restore_original_limits()`` to undo.

    Examples
    --------
    >>> limiter = limit_threads(1)
    >>> limiter.restore_original_limits()
    """
    import sklearn.ensemble  # noqa: F401  (loads OpenMP)
    import sklearn.linear_model  # noqa: F401  (loads scipy's OpenBLAS)
    import sklearn.neural_network  # noqa: F401
    from threadpoolctl import threadpool_limits

    if isinstance(n_threads, bool) or not isinstance(n_threads, (int, np.integer)) or n_threads < 1:
        raise ValueError(f"n_threads must be a positive integer, got {n_threads!r}")
    return threadpool_limits(limits=int(n_threads))


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------
def _check_seed(seed) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")


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


# --------------------------------------------------------------------------------------------
# Churn
# --------------------------------------------------------------------------------------------
def prediction_churn(pred_a, pred_b) -> float:
    """Fraction of rows on which two models' predictions differ (Milani Fard et al., NeurIPS 2016).

    Examples
    --------
    >>> prediction_churn([0, 1, 1, 0], [0, 1, 0, 0])
    0.25
    """
    a = _as_1d(pred_a, "pred_a")
    b = _as_1d(pred_b, "pred_b")
    _check_same_length(pred_a=a, pred_b=b)
    return float(np.mean(a != b))


def churn_matrix(predictions) -> np.ndarray:
    """Churn between every pair of rows of a ``(k, n)`` prediction matrix: a ``(k, k)`` symmetric
    matrix with zeros on the diagonal.

    Examples
    --------
    >>> churn_matrix([[0, 1], [0, 0], [1, 0]]).tolist()
    [[0.0, 0.5, 1.0], [0.5, 0.0, 0.5], [1.0, 0.5, 0.0]]
    """
    P = np.asarray(predictions)
    if P.ndim != 2 or P.shape[0] < 1 or P.shape[1] < 1:
        raise ValueError(f"predictions must be a (k retrains, n rows) matrix, got shape {P.shape}")
    return (P[:, None, :] != P[None, :, :]).mean(axis=2)


def pairwise_churn(predictions) -> float:
    """Mean churn over all pairs of ``k >= 2`` retrains (rows of a ``(k, n)`` matrix).

    Examples
    --------
    >>> pairwise_churn([[0, 1, 1, 0], [0, 1, 0, 0], [0, 1, 1, 0]])
    0.16666666666666666
    """
    P = np.asarray(predictions)
    if P.ndim != 2 or P.shape[0] < 2:
        raise ValueError(f"predictions must be a (k, n) matrix with k >= 2 retrains, got shape {P.shape}")
    M = churn_matrix(P)
    i, j = np.triu_indices(P.shape[0], k=1)
    return float(M[i, j].mean())


def perturb_rows(X, y, fraction: float = 0.01, seed: int = 0, X_pool=None, y_pool=None):
    """A copy of the training set with ``fraction`` of its rows changed, the size kept.

    The changed rows are replaced by rows drawn from ``(X_pool, y_pool)`` (new data arriving, e.g. the
    validation set) when given, otherwise by duplicates of other training rows. At least one row
    changes.

    Returns
    -------
    X_new, y_new : np.ndarray
    changed : np.ndarray of int
        Indices of the replaced rows.

    Examples
    --------
    >>> X = np.arange(200.0).reshape(100, 2); y = np.arange(100) % 2
    >>> X2, y2, changed = perturb_rows(X, y, fraction=0.05, seed=0)
    >>> len(changed), int((X2 != X).any(axis=1).sum()) <= 5
    (5, True)
    """
    X = _as_2d(X, "X")
    y = np.asarray(y)
    _check_same_length(X=X, y=y)
    _check_seed(seed)
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), e.g. 0.01 for 1% of the rows, got {fraction}")
    n = len(y)
    k = max(1, int(round(fraction * n)))
    rng = np.random.default_rng(seed)
    changed = np.sort(rng.choice(n, size=k, replace=False))
    X_new, y_new = X.copy(), y.copy()
    if X_pool is not None or y_pool is not None:
        if X_pool is None or y_pool is None:
            raise ValueError("give both X_pool and y_pool, or neither")
        Xp = _as_2d(X_pool, "X_pool")
        yp = np.asarray(y_pool)
        _check_same_length(X_pool=Xp, y_pool=yp)
        if Xp.shape[1] != X.shape[1]:
            raise ValueError(f"X_pool has {Xp.shape[1]} features but X has {X.shape[1]}")
        src = rng.choice(len(yp), size=k, replace=k > len(yp))
        X_new[changed], y_new[changed] = Xp[src], yp[src]
    else:
        keep = np.setdiff1d(np.arange(n), changed)
        if keep.size == 0:
            raise ValueError("fraction is so large that no row is left to duplicate; lower it or pass a pool")
        src = rng.choice(keep, size=k, replace=True)
        X_new[changed], y_new[changed] = X[src], y[src]
    return X_new, y_new, changed


@dataclass
class ChurnResult:
    """What one retrain-churn experiment measured.

    Attributes
    ----------
    kind : str
        ``"seed"``, ``"rows"`` or ``"identical"``.
    churn : float
        Mean fraction of test predictions that differ from the reference model's.
    per_retrain : np.ndarray
        One churn value per retrain.
    predictions : np.ndarray
        ``(1 + n_retrains, n_test)``; row 0 is the reference model.
    accuracy : np.ndarray or None
        Test accuracy of every row of ``predictions`` when ``y_test`` was given.
    """

    kind: str
    churn: float
    per_retrain: np.ndarray
    predictions: np.ndarray
    accuracy: np.ndarray | None = None

    @property
    def pairwise(self) -> float:
        """Mean churn over all pairs of models (reference included)."""
        return pairwise_churn(self.predictions)


CHURN_KINDS = ("seed", "rows", "identical")


def retrain_churn(factory: Callable[[int], Any], X_train, y_train, X_test, *, y_test=None, kind: str = "seed",
                  n_retrains: int = 3, fraction: float = 0.01, seed: int = 0, X_pool=None, y_pool=None,
                  reference=None, progress: bool = False) -> ChurnResult:
    """Retrain a model and count how many test predictions flip.

    Parameters
    ----------
    factory : callable
        ``factory(seed)`` returns a new unfitted estimator (a :class:`ModelSpec` works; for a plain
        estimator use ``lambda s: with_seed(est, s)``).
    kind : {"seed", "rows", "identical"}
        ``"seed"``: same data, seeds ``seed+1 ... seed+n_retrains``. ``"rows"``: same seed, ``fraction``
        of the training rows changed (see :func:`perturb_rows`; another draw per retrain).
        ``"identical"``: same seed, same data — a reproducibility check; anything but 0 is a bug.
    n_retrains : int
        Retrains compared with the reference model (fitted with ``seed`` on the unchanged data).
    X_pool, y_pool : array-like, optional
        Where ``"rows"`` draws its replacement rows (e.g. the validation set); see :func:`perturb_rows`.
    reference : fitted estimator, optional
        The reference model, if it is already fitted (``factory(seed)`` on ``X_train``); saves a fit.

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> X, y = make_classification(200, 5, random_state=0)
    >>> r = retrain_churn(make_logistic, X[:150], y[:150], X[150:], kind="identical", n_retrains=2)
    >>> r.churn
    0.0
    """
    if kind not in CHURN_KINDS:
        raise ValueError(f"kind must be one of {CHURN_KINDS}, got {kind!r}")
    if isinstance(n_retrains, bool) or not isinstance(n_retrains, (int, np.integer)) or n_retrains < 1:
        raise ValueError(f"n_retrains must be a positive integer, got {n_retrains!r}")
    _check_seed(seed)
    X_train = _as_2d(X_train, "X_train")
    X_test = _as_2d(X_test, "X_test")
    y_train = np.asarray(y_train)
    _check_same_length(X_train=X_train, y_train=y_train)
    if X_test.shape[1] != X_train.shape[1]:
        raise ValueError(f"X_test has {X_test.shape[1]} features but X_train has {X_train.shape[1]}")
    if y_test is not None:
        y_test = np.asarray(y_test)
        _check_same_length(X_test=X_test, y_test=y_test)

    if reference is None:
        reference = factory(seed).fit(X_train, y_train)
    preds = [np.asarray(_predictor(reference)(X_test))]
    rounds: Iterable[int] = range(n_retrains)
    if progress:
        from tqdm.auto import tqdm

        rounds = tqdm(rounds, desc=f"retrain ({kind})", leave=False)
    for i in rounds:
        if kind == "seed":
            model = factory(seed + 1 + i).fit(X_train, y_train)
        elif kind == "rows":
            Xr, yr, _ = perturb_rows(X_train, y_train, fraction, seed=seed + 1 + i, X_pool=X_pool, y_pool=y_pool)
            model = factory(seed).fit(Xr, yr)
        else:
            model = factory(seed).fit(X_train, y_train)
        preds.append(np.asarray(model.predict(X_test)))
    P = np.vstack(preds)
    per = (P[1:] != P[0]).mean(axis=1)
    acc = (P == y_test).mean(axis=1) if y_test is not None else None
    return ChurnResult(kind=kind, churn=float(per.mean()), per_retrain=per, predictions=P, accuracy=acc)


# --------------------------------------------------------------------------------------------
# Accuracy, AUC and their confidence intervals
# --------------------------------------------------------------------------------------------
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


def _per_row_metric(metric: str, Y: np.ndarray, P: np.ndarray) -> np.ndarray:
    if metric == "accuracy":
        return (Y == P).mean(axis=1)
    return _auc_rows(Y, P)


def _boot_stats(metric: str, y: np.ndarray, preds: Sequence[np.ndarray], n_boot: int, seed: int,
                chunk: int = 256) -> list[np.ndarray]:
    """Metric of every prediction vector on the same ``n_boot`` resamples of the rows."""
    rng = np.random.default_rng(seed)
    n = len(y)
    idx = rng.integers(0, n, size=(n_boot, n))
    out: list[list[np.ndarray]] = [[] for _ in preds]
    for start in range(0, n_boot, chunk):
        rows = idx[start:start + chunk]
        Y = y[rows]
        for k, p in enumerate(preds):
            out[k].append(_per_row_metric(metric, Y, p[rows]))
    return [np.concatenate(parts) for parts in out]


def _metric(metric: str, y: np.ndarray, pred: np.ndarray) -> float:
    return float(_per_row_metric(metric, y[None, :], pred[None, :])[0])


def _check_metric_inputs(metric: str, y_true, *preds) -> tuple[np.ndarray, list[np.ndarray]]:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    y = _as_1d(y_true, "y_true")
    arrays = [_as_1d(p, f"predictions {i}") for i, p in enumerate(preds)]
    _check_same_length(y_true=y, **{f"pred_{i}": a for i, a in enumerate(arrays)})
    if metric == "auc":
        y = _binary_labels(y)
        if np.unique(y).size < 2:
            raise ValueError("AUC is undefined when y_true holds a single class")
        arrays = [a.astype(float) for a in arrays]
    return y, arrays


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

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def metric_ci(y_true, pred, metric: str = "accuracy", *, level: float = 0.95, n_boot: int = 2000,
              seed: int = 0) -> Interval:
    """A metric on the test set and its percentile-bootstrap confidence interval.

    Parameters
    ----------
    pred : array-like
        Predicted labels for ``"accuracy"``; scores (probability of class 1) for ``"auc"``.

    Examples
    --------
    >>> y = np.array([0, 1] * 50); p = y.copy(); p[:10] = 1 - p[:10]
    >>> ci = metric_ci(y, p)
    >>> ci.estimate, ci.low < 0.9 < ci.high
    (0.9, True)
    """
    _check_level(level, n_boot)
    _check_seed(seed)
    y, (p,) = _check_metric_inputs(metric, y_true, pred)
    stats = _boot_stats(metric, y, [p], n_boot, seed)[0]
    stats = stats[np.isfinite(stats)]
    alpha = (1 - level) / 2
    lo, hi = np.quantile(stats, [alpha, 1 - alpha])
    return Interval(_metric(metric, y, p), float(lo), float(hi), level)


def paired_diff_ci(y_true, pred_a, pred_b, metric: str = "accuracy", *, level: float = 0.95,
                   n_boot: int = 2000, seed: int = 0) -> Interval:
    """``metric(a) - metric(b)`` on the same test rows, with a *paired* percentile-bootstrap interval.

    Both models are scored on the same resampled rows, so the rows on which they agree (both right
    or both wrong) add no noise: only disagreements move the difference. When two models make mostly
    the same mistakes the interval is far narrower than one built from two independent intervals;
    when their mistakes do not overlap it is about as wide. Either way it answers the question that
    matters — is model A's gain over model B, on these rows, real or noise?

    Examples
    --------
    >>> y = np.zeros(200, int); a = y.copy(); b = y.copy(); b[:6] = 1
    >>> ci = paired_diff_ci(y, a, b)
    >>> round(ci.estimate, 3), ci.excludes_zero
    (0.03, True)
    """
    _check_level(level, n_boot)
    _check_seed(seed)
    y, (a, b) = _check_metric_inputs(metric, y_true, pred_a, pred_b)
    sa, sb = _boot_stats(metric, y, [a, b], n_boot, seed)
    diff = sa - sb
    diff = diff[np.isfinite(diff)]
    alpha = (1 - level) / 2
    lo, hi = np.quantile(diff, [alpha, 1 - alpha])
    return Interval(_metric(metric, y, a) - _metric(metric, y, b), float(lo), float(hi), level)


def _paired_accuracy_deltas(y_true, pred_a, pred_b) -> np.ndarray:
    y, (a, b) = _check_metric_inputs("accuracy", y_true, pred_a, pred_b)
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
    d = _paired_accuracy_deltas(y_true, pred_a, pred_b)
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
    d = _paired_accuracy_deltas(y_true, pred_a, pred_b)
    mean, sd = d.mean(), d.std(ddof=0)
    if mean == 0:
        return float("inf")
    return float((z * sd / mean) ** 2)


# --------------------------------------------------------------------------------------------
# CACE: perturb one input the way upstream data really changes
# --------------------------------------------------------------------------------------------
PerturbFn = Callable[[np.ndarray, np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Perturbation:
    """A realistic upstream change to one feature column.

    ``fn(column, reference_column, rng)`` returns ``(before, after)``: the column as the model saw it
    until now and as it arrives after the change. ``before`` is usually the column itself; for a
    changed missing-value fill it is the column with the old fill.
    """

    name: str
    description: str
    fn: PerturbFn

    def __call__(self, column, reference=None, rng: np.random.Generator | None = None):
        col = np.asarray(column, dtype=float)
        ref = col if reference is None else np.asarray(reference, dtype=float)
        before, after = self.fn(col, ref, rng if rng is not None else np.random.default_rng(0))
        return np.asarray(before, dtype=float), np.asarray(after, dtype=float)

    @classmethod
    def from_transform(cls, name: str, transform: Callable[[np.ndarray], np.ndarray],
                       description: str = "") -> "Perturbation":
        """Wrap a plain ``column -> new column`` function.

        Examples
        --------
        >>> p = Perturbation.from_transform("double", lambda c: 2 * c)
        >>> p(np.array([1.0, 2.0]))[1].tolist()
        [2.0, 4.0]
        """
        return cls(name, description or name, lambda col, ref, rng: (col, np.asarray(transform(col.copy()), float)))


def unit_change(factor: float = 10.0) -> Perturbation:
    """Upstream starts sending the feature in another unit (values multiplied by ``factor``).

    Examples
    --------
    >>> unit_change(10)(np.array([1.0, 2.0]))[1].tolist()
    [10.0, 20.0]
    """
    if not np.isfinite(factor) or factor <= 0 or factor == 1:
        raise ValueError(f"factor must be positive and not 1 (e.g. 10 for cm -> mm), got {factor}")
    return Perturbation(f"unit x{factor:g}", f"values arrive multiplied by {factor:g} (a unit change)",
                        lambda col, ref, rng: (col, col * factor))


def clipping(lower_quantile: float = 0.05, upper_quantile: float = 0.95) -> Perturbation:
    """Upstream starts capping the feature at the reference data's quantiles.

    Examples
    --------
    >>> clipping(0.0, 0.5)(np.array([1.0, 2.0, 3.0]))[1].tolist()
    [1.0, 2.0, 2.0]
    """
    if not 0 <= lower_quantile < upper_quantile <= 1:
        raise ValueError(f"need 0 <= lower_quantile < upper_quantile <= 1, got {lower_quantile}, {upper_quantile}")

    def fn(col, ref, rng):
        lo, hi = np.quantile(ref, [lower_quantile, upper_quantile])
        return col, np.clip(col, lo, hi)

    return Perturbation(f"clip p{100 * lower_quantile:g}-p{100 * upper_quantile:g}",
                        "values capped at the reference quantiles", fn)


def missing_fill(fraction: float = 0.1, new_fill: float = 0.0) -> Perturbation:
    """A fraction of values are missing; upstream used to fill them with the reference mean and now
    fills them with ``new_fill``. ``before`` carries the old fill, ``after`` the new one.

    Examples
    --------
    >>> before, after = missing_fill(1.0, new_fill=0.0)(np.array([2.0, 4.0]))
    >>> before.tolist(), after.tolist()
    ([3.0, 3.0], [0.0, 0.0])
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")

    def fn(col, ref, rng):
        k = max(1, int(round(fraction * col.size)))
        missing = rng.choice(col.size, size=k, replace=False)
        before, after = col.copy(), col.copy()
        before[missing] = float(np.mean(ref))
        after[missing] = new_fill
        return before, after

    return Perturbation(f"missing {100 * fraction:g}% -> {new_fill:g}",
                        f"{100 * fraction:g}% missing, filled with {new_fill:g} instead of the mean", fn)


def drift(shift_std: float = 0.25) -> Perturbation:
    """A small drift: the feature's mean moves by ``shift_std`` reference standard deviations.

    Examples
    --------
    >>> drift(0.5)(np.array([0.0, 2.0]))[1].tolist()
    [0.5, 2.5]
    """
    if not np.isfinite(shift_std) or shift_std == 0:
        raise ValueError(f"shift_std must be a non-zero number of standard deviations, got {shift_std}")

    def fn(col, ref, rng):
        return col, col + shift_std * float(np.std(ref))

    return Perturbation(f"drift {shift_std:+g} sd", f"mean shifted by {shift_std:g} standard deviations", fn)


def upstream_perturbations() -> list[Perturbation]:
    """The four changes Lab 2 applies to every feature: a unit change (x10), clipping at the
    reference 5th/95th percentiles, 10% missing values filled with 0 instead of the mean, and a
    +0.25 standard-deviation drift.

    Examples
    --------
    >>> [p.name for p in upstream_perturbations()]
    ['unit x10', 'clip p5-p95', 'missing 10% -> 0', 'drift +0.25 sd']
    """
    return [unit_change(10.0), clipping(0.05, 0.95), missing_fill(0.10, 0.0), drift(0.25)]


def feature_sensitivity(model, X, y, feature: int, perturbation: Perturbation | Callable[[np.ndarray], np.ndarray],
                        *, X_ref=None, seed: int = 0) -> dict[str, float]:
    """How much one upstream change to one feature moves a fitted model.

    Parameters
    ----------
    model : fitted estimator or callable
        Anything with ``predict(X)``, or a function ``X -> predictions``.
    X, y : test rows and labels
    feature : int
        Column index.
    perturbation : Perturbation or callable
        A :class:`Perturbation`, or a plain ``column -> new column`` function.
    X_ref : array-like, optional
        Reference data for the perturbation's statistics (quantiles, mean, sd); the training set.
        Defaults to ``X``.

    Returns
    -------
    dict with ``flip_rate`` (fraction of predictions that change), ``accuracy_before``,
    ``accuracy_after`` and ``accuracy_drop`` (before minus after).

    Examples
    --------
    >>> X = np.array([[0.0, 5.0], [1.0, 5.0], [2.0, 5.0], [3.0, 5.0]]); y = np.array([0, 0, 1, 1])
    >>> model = lambda X: (X[:, 0] > 1.5).astype(int)
    >>> feature_sensitivity(model, X, y, 1, unit_change(10))["flip_rate"]
    0.0
    >>> feature_sensitivity(model, X, y, 0, drift(1.0))["flip_rate"]
    0.25
    """
    predict = _predictor(model)
    X = _as_2d(X, "X")
    y = np.asarray(y)
    _check_same_length(X=X, y=y)
    if isinstance(feature, bool) or not isinstance(feature, (int, np.integer)) or not 0 <= feature < X.shape[1]:
        raise ValueError(f"feature must be a column index in [0, {X.shape[1] - 1}], got {feature!r}")
    ref = X if X_ref is None else _as_2d(X_ref, "X_ref")
    if ref.shape[1] != X.shape[1]:
        raise ValueError(f"X_ref has {ref.shape[1]} features but X has {X.shape[1]}")
    if not isinstance(perturbation, Perturbation):
        if not callable(perturbation):
            raise TypeError("perturbation must be a Perturbation or a function column -> new column")
        perturbation = Perturbation.from_transform("custom", perturbation)
    _check_seed(seed)
    before_col, after_col = perturbation(X[:, feature], ref[:, feature], np.random.default_rng(seed))
    X_before, X_after = X.copy(), X.copy()
    X_before[:, feature] = before_col
    X_after[:, feature] = after_col
    p_before = np.asarray(predict(X_before))
    p_after = np.asarray(predict(X_after))
    acc_b = float(np.mean(p_before == y))
    acc_a = float(np.mean(p_after == y))
    return {"flip_rate": float(np.mean(p_before != p_after)), "accuracy_before": acc_b,
            "accuracy_after": acc_a, "accuracy_drop": acc_b - acc_a}


def cace_sensitivity(models: Mapping[str, Any], X, y, *, perturbations: Sequence[Perturbation] | None = None,
                     X_ref=None, features: Sequence[int] | None = None, feature_names: Sequence[str] | None = None,
                     seed: int = 0, progress: bool = False) -> pd.DataFrame:
    """:func:`feature_sensitivity` for every model x feature x perturbation.

    Every model sees exactly the same perturbed data (the random draws depend on the seed, the
    feature and the perturbation, never on the model), so the models are compared fairly.

    Returns
    -------
    pandas.DataFrame
        One row per (model, feature, perturbation): ``model``, ``feature``, ``feature_index``,
        ``perturbation``, ``flip_rate``, ``accuracy_before``, ``accuracy_after``, ``accuracy_drop``.

    Examples
    --------
    >>> X = np.random.default_rng(0).normal(size=(50, 3)); y = (X[:, 0] > 0).astype(int)
    >>> df = cace_sensitivity({"first": lambda X: (X[:, 0] > 0).astype(int)}, X, y)
    >>> (df.groupby("feature")["flip_rate"].max() > 0).tolist()  # only the feature it uses
    [True, False, False]
    """
    if not models:
        raise ValueError("models is empty; pass a dict name -> fitted model")
    X = _as_2d(X, "X")
    perturbations = list(perturbations) if perturbations is not None else upstream_perturbations()
    if not perturbations:
        raise ValueError("perturbations is empty")
    features = list(range(X.shape[1])) if features is None else [int(f) for f in features]
    if feature_names is None:
        feature_names = [f"x{j}" for j in range(X.shape[1])]
    if len(feature_names) != X.shape[1]:
        raise ValueError(f"feature_names has {len(feature_names)} names but X has {X.shape[1]} columns")
    _check_seed(seed)
    jobs = list(itertools.product(features, range(len(perturbations))))
    if progress:
        from tqdm.auto import tqdm

        jobs = tqdm(jobs, desc="CACE (feature x perturbation)", leave=False)
    rows = []
    for j, k in jobs:
        # the same draw for every model: the generator's seed depends on (seed, feature, perturbation)
        rng_seed = int(np.random.default_rng([seed, j, k]).integers(2**31))
        for name, model in models.items():
            r = feature_sensitivity(model, X, y, j, perturbations[k], X_ref=X_ref, seed=rng_seed)
            rows.append({"model": name, "feature": feature_names[j], "feature_index": j,
                         "perturbation": perturbations[k].name, **r})
    return pd.DataFrame(rows)


def cace_table(sensitivity: pd.DataFrame, value: str = "flip_rate", agg: str = "mean") -> pd.DataFrame:
    """Feature x model table of a :func:`cace_sensitivity` result (the heat map's data), features in
    their original order; ``agg`` combines the perturbations (``"mean"`` or ``"max"``).

    Examples
    --------
    >>> df = pd.DataFrame({"model": ["a", "a"], "feature": ["f", "f"], "feature_index": [0, 0],
    ...                    "perturbation": ["p", "q"], "flip_rate": [0.1, 0.3]})
    >>> cace_table(df).loc["f", "a"].round(2)
    np.float64(0.2)
    """
    required = {"model", "feature", "feature_index", value}
    missing = required - set(sensitivity.columns)
    if missing:
        raise ValueError(f"sensitivity lacks the columns {sorted(missing)}; pass the output of cace_sensitivity")
    if agg not in ("mean", "max"):
        raise ValueError(f"agg must be 'mean' or 'max', got {agg!r}")
    table = sensitivity.pivot_table(index=["feature_index", "feature"], columns="model", values=value, aggfunc=agg,
                                    sort=False)
    table = table.sort_index(level="feature_index").droplevel("feature_index")
    models = list(dict.fromkeys(sensitivity["model"]))
    return table[models]


def data_dependencies(sensitivity: pd.DataFrame, threshold: float = 0.0) -> pd.Series:
    """Per model, the number of input features whose change moves at least one prediction by more
    than ``threshold`` (as a flip rate): the data dependencies someone must watch.

    Examples
    --------
    >>> df = pd.DataFrame({"model": ["a", "a", "b", "b"], "feature": ["f", "g", "f", "g"],
    ...                    "flip_rate": [0.0, 0.2, 0.1, 0.3]})
    >>> data_dependencies(df).to_dict()
    {'a': 1, 'b': 2}
    """
    missing = {"model", "feature", "flip_rate"} - set(sensitivity.columns)
    if missing:
        raise ValueError(f"sensitivity lacks the columns {sorted(missing)}; pass the output of cace_sensitivity")
    worst = sensitivity.groupby(["model", "feature"], sort=False)["flip_rate"].max()
    counts = (worst > threshold).groupby(level="model", sort=False).sum().astype(int)
    counts.name = "data_dependencies"
    return counts


# --------------------------------------------------------------------------------------------
# Entanglement: add one feature, count what changes
# --------------------------------------------------------------------------------------------
@dataclass
class EntanglementResult:
    """Predictions of the same model trained without and with one extra feature.

    Attributes
    ----------
    changed : float
        Fraction of test predictions that differ.
    accuracy_before, accuracy_after : float or None
    """

    changed: float
    predictions_before: np.ndarray
    predictions_after: np.ndarray
    accuracy_before: float | None = None
    accuracy_after: float | None = None


def entanglement_test(factory: Callable[[int], Any], X_train, y_train, X_test, *, y_test=None,
                      new_train=None, new_test=None, seed: int = 0, reference=None) -> EntanglementResult:
    """Train the same model (same seed) without and with one extra feature; count changed predictions.

    With no ``new_train``/``new_test`` the extra feature is pure noise (standard normal, drawn from
    ``seed``): it carries no information, so every changed prediction is entanglement. Pass the
    already fitted ``reference`` (``factory(seed)`` on ``X_train``) to save a fit.

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> X, y = make_classification(300, 5, random_state=0)
    >>> r = entanglement_test(make_logistic, X[:200], y[:200], X[200:], y_test=y[200:])
    >>> 0.0 <= r.changed <= 0.1
    True
    """
    _check_seed(seed)
    X_train = _as_2d(X_train, "X_train")
    X_test = _as_2d(X_test, "X_test")
    y_train = np.asarray(y_train)
    _check_same_length(X_train=X_train, y_train=y_train)
    if (new_train is None) != (new_test is None):
        raise ValueError("give both new_train and new_test (the new column for each set), or neither")
    if new_train is None:
        rng = np.random.default_rng(seed)
        new_train = rng.standard_normal(len(X_train))
        new_test = rng.standard_normal(len(X_test))
    new_train = _as_1d(new_train, "new_train").astype(float)
    new_test = _as_1d(new_test, "new_test").astype(float)
    _check_same_length(X_train=X_train, new_train=new_train)
    _check_same_length(X_test=X_test, new_test=new_test)
    if reference is None:
        reference = factory(seed).fit(X_train, y_train)
    before = np.asarray(_predictor(reference)(X_test))
    after = np.asarray(factory(seed).fit(np.column_stack([X_train, new_train]), y_train)
                       .predict(np.column_stack([X_test, new_test])))
    acc_b = acc_a = None
    if y_test is not None:
        y_test = np.asarray(y_test)
        _check_same_length(X_test=X_test, y_test=y_test)
        acc_b, acc_a = float(np.mean(before == y_test)), float(np.mean(after == y_test))
    return EntanglementResult(float(np.mean(before != after)), before, after, acc_b, acc_a)


# --------------------------------------------------------------------------------------------
# Costs of owning a model
# --------------------------------------------------------------------------------------------
def model_size_bytes(model) -> int:
    """Bytes of the pickled model: what ``pickle``/``joblib`` write to disk (uncompressed).

    Examples
    --------
    >>> model_size_bytes([1, 2, 3]) > 0
    True
    """
    return len(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))


class _RecordingUnpickler(pickle.Unpickler):
    def __init__(self, file) -> None:
        super().__init__(file)
        self.found: set[tuple[str, str]] = set()

    def find_class(self, module: str, name: str):
        self.found.add((module, name))
        return super().find_class(module, name)


@dataclass(frozen=True)
class CodeDependencies:
    """What a serialized model needs at load time.

    Attributes
    ----------
    packages : tuple of str
        Top-level non-standard-library packages (e.g. ``sklearn``, ``numpy``).
    classes : tuple of str
        Every ``module.name`` the pickle refers to.
    """

    packages: tuple[str, ...]
    classes: tuple[str, ...]


def code_dependencies(model) -> CodeDependencies:
    """The packages and classes a pickled model refers to (each must exist, in a compatible version,
    wherever the model is loaded).

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> code_dependencies(LogisticRegression()).packages
    ('sklearn',)
    """
    blob = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    rec = _RecordingUnpickler(io.BytesIO(blob))
    rec.load()
    stdlib = set(sys.stdlib_module_names) | {"builtins", "__builtin__"}
    packages = sorted({m.split(".")[0] for m, _ in rec.found} - stdlib)
    classes = sorted(f"{m}.{n}" for m, n in rec.found)
    return CodeDependencies(tuple(packages), tuple(classes))


def count_hyperparameters(model) -> int:
    """Constructor parameters a maintainer can tune, summed over every estimator inside ``model``.

    Pipelines, stacking and other meta-estimators are walked into; parameters that hold estimators
    are not counted themselves, and neither are :data:`NON_TUNING_PARAMS` (``n_jobs``, ``verbose``,
    ``random_state``...).

    Examples
    --------
    >>> from sklearn.preprocessing import StandardScaler
    >>> count_hyperparameters(StandardScaler())  # with_mean, with_std (copy is not tuning)
    2
    """
    from sklearn.base import BaseEstimator

    if not isinstance(model, BaseEstimator):
        raise TypeError(f"count_hyperparameters needs a scikit-learn estimator, got {type(model).__name__}")
    total = 0
    for name, value in model.get_params(deep=False).items():
        if isinstance(value, BaseEstimator):
            total += count_hyperparameters(value)
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, tuple) and len(v) >= 2 for v in value):
            total += sum(count_hyperparameters(v[1]) for v in value if isinstance(v[1], BaseEstimator))
        elif name not in NON_TUNING_PARAMS:
            total += 1
    return total


def source_lines(*funcs: Callable[..., Any]) -> int:
    """Lines of code in the given functions: non-blank, not comments, docstrings excluded.

    Examples
    --------
    >>> def f(x):
    ...     '''Docstring.'''
    ...     # a comment
    ...     return x + 1
    >>> source_lines(f)
    2
    """
    if not funcs:
        raise ValueError("pass at least one function")
    total = 0
    for f in funcs:
        try:
            src = textwrap.dedent(inspect.getsource(f))
        except (OSError, TypeError) as exc:
            raise ValueError(f"cannot read the source of {f!r}: {exc}") from exc
        node = ast.parse(src).body[0]
        skip: set[int] = set()
        body = getattr(node, "body", [])
        if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                and isinstance(body[0].value.value, str):
            skip = set(range(body[0].lineno, body[0].end_lineno + 1))
        for number, line in enumerate(src.splitlines(), start=1):
            text = line.strip()
            if text and not text.startswith("#") and number not in skip:
                total += 1
    return total


def prediction_latency(model, X, *, repeats: int = 200, warmup: int = 10, label: str = "") -> Timing:
    """Single-row prediction latency: ``predict`` on one row at a time, cycling through ``X``.

    Examples
    --------
    >>> t = prediction_latency(lambda x: x.sum(axis=1), np.ones((3, 2)), repeats=20, warmup=2)
    >>> t.n
    20
    """
    predict = _predictor(model)
    X = _as_2d(X, "X")
    rows = itertools.cycle([X[i:i + 1] for i in range(len(X))])
    return time_fn(lambda: predict(next(rows)), repeats=repeats, warmup=warmup, label=label)


def fit_time(factory: Callable[[int], Any], X, y, *, repeats: int = 3, seed: int = 0, label: str = "") -> Timing:
    """Seconds to train ``factory(seed)`` on ``(X, y)``, every repeat a fresh model.

    Examples
    --------
    >>> X = np.random.default_rng(0).normal(size=(50, 2)); y = (X[:, 0] > 0).astype(int)
    >>> fit_time(make_logistic, X, y, repeats=2).n
    2
    """
    X = _as_2d(X, "X")
    return time_fn(lambda: factory(seed).fit(X, y), repeats=repeats, warmup=0, label=label)


def cost_profile(spec: ModelSpec, fitted, X_train, y_train, X_test, *, fast: bool = False,
                 fit_repeats: int = 3, latency_repeats: int = 200, seed: int = 0) -> dict[str, Any]:
    """Everything it costs to own one model, measured: one row of the scorecard.

    Returns
    -------
    dict with ``model``, ``fit_s`` (median training seconds), ``p50_ms`` and ``p99_ms`` (single-row
    prediction latency), ``size_kb`` (pickle), ``hyperparameters``, ``packages`` and ``classes``
    (what the pickle needs at load time) and ``lines_of_code``.
    """
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"spec must be a ModelSpec (see model_ladder()), got {type(spec).__name__}")
    fit = fit_time(lambda s: spec(s, fast=fast), X_train, y_train, repeats=fit_repeats, seed=seed,
                   label=spec.name)
    lat = prediction_latency(fitted, X_test, repeats=latency_repeats, label=spec.name)
    deps = code_dependencies(fitted)
    return {"model": spec.name, "fit_s": fit.median, "p50_ms": lat.percentile(50) * 1e3,
            "p99_ms": lat.percentile(99) * 1e3, "size_kb": model_size_bytes(fitted) / 1024,
            "hyperparameters": count_hyperparameters(fitted), "packages": len(deps.packages),
            "classes": len(deps.classes), "lines_of_code": spec.lines_of_code}


# --------------------------------------------------------------------------------------------
# Scorecard and decision
# --------------------------------------------------------------------------------------------
def scorecard(metrics: pd.DataFrame, baseline: str, weights: Mapping[str, float]) -> pd.DataFrame:
    """Put gain and maintenance cost side by side, one row per model.

    Parameters
    ----------
    metrics : pandas.DataFrame
        Indexed by model name, with ``accuracy``, ``diff_low`` (lower end of the confidence interval
        of ``accuracy - accuracy[baseline]``; 0 for the baseline) and every cost column in ``weights``
        (higher = worse).
    baseline : str
        The simple model the others are compared with.
    weights : mapping column -> non-negative weight
        How much each cost matters; at least one weight must be positive.

    Returns
    -------
    pandas.DataFrame
        A copy of ``metrics`` with ``gain`` (accuracy minus the baseline's), ``gain_is_real``
        (``diff_low > 0``; always False for the baseline), ``<column>_score`` per weighted column
        (min-max scaled across the models to [0, 1]: 0 = cheapest, 1 = most expensive, 0 when all
        are equal) and ``cost`` (weighted mean of the scores, in [0, 1]).

    Examples
    --------
    >>> m = pd.DataFrame({"accuracy": [0.90, 0.93], "diff_low": [0.0, 0.01], "p99_ms": [1.0, 5.0]},
    ...                  index=["simple", "complex"])
    >>> card = scorecard(m, "simple", {"p99_ms": 1.0})
    >>> card[["gain", "gain_is_real", "cost"]].round(2).to_dict("list")
    {'gain': [0.0, 0.03], 'gain_is_real': [False, True], 'cost': [0.0, 1.0]}
    """
    if not isinstance(metrics, pd.DataFrame) or metrics.empty:
        raise ValueError("metrics must be a non-empty DataFrame indexed by model name")
    if baseline not in metrics.index:
        raise ValueError(f"baseline {baseline!r} is not a row of metrics; rows are {list(metrics.index)}")
    if not weights:
        raise ValueError("weights is empty; give at least one cost column, e.g. {'p99_ms': 1.0}")
    needed = ["accuracy", "diff_low", *weights]
    missing = [c for c in needed if c not in metrics.columns]
    if missing:
        raise ValueError(f"metrics lacks the columns {missing}")
    w = pd.Series(weights, dtype=float)
    if (w < 0).any() or not np.isfinite(w).all() or w.sum() <= 0:
        raise ValueError(f"weights must be finite, non-negative and not all zero, got {dict(weights)}")
    if metrics[needed].isna().any().any():
        raise ValueError("metrics has missing values in the columns the scorecard uses")
    card = metrics.copy()
    card["gain"] = card["accuracy"] - card.loc[baseline, "accuracy"]
    card["gain_is_real"] = (card["diff_low"] > 0) & (card.index != baseline)
    cost = pd.Series(0.0, index=card.index)
    for col, weight in w.items():
        values = card[col].astype(float)
        span = values.max() - values.min()
        score = (values - values.min()) / span if span > 0 else values * 0.0
        card[f"{col}_score"] = score
        cost += weight * score
    card["cost"] = cost / w.sum()
    return card


def choose_model(card: pd.DataFrame, budget: Mapping[str, float], baseline: str) -> str:
    """Pick the model to ship under a maintenance budget.

    Rule: a model is *feasible* when every budget column is at or below its limit. Among feasible
    models keep the baseline and those whose gain over it is real (``gain_is_real``); ship the most
    accurate of these (ties: lower ``cost``, then the name). If none remains, ship the feasible model
    with the lowest ``cost``. If nothing is feasible, raise ``ValueError``: the budget has to change.

    Examples
    --------
    >>> card = pd.DataFrame({"accuracy": [0.90, 0.95, 0.96], "gain_is_real": [False, True, False],
    ...                      "cost": [0.0, 0.5, 1.0], "p99_ms": [1.0, 4.0, 9.0]},
    ...                     index=["simple", "boosted", "stacked"])
    >>> choose_model(card, {"p99_ms": 5.0}, "simple")
    'boosted'
    >>> choose_model(card, {"p99_ms": 2.0}, "simple")
    'simple'
    """
    if not isinstance(card, pd.DataFrame) or card.empty:
        raise ValueError("card must be a non-empty DataFrame (the output of scorecard)")
    if baseline not in card.index:
        raise ValueError(f"baseline {baseline!r} is not a row of card; rows are {list(card.index)}")
    missing = [c for c in ["accuracy", "gain_is_real", "cost", *budget] if c not in card.columns]
    if missing:
        raise ValueError(f"card lacks the columns {missing}")
    feasible = pd.Series(True, index=card.index)
    for col, limit in budget.items():
        feasible &= card[col].astype(float) <= float(limit)
    if not feasible.any():
        raise ValueError(f"no model fits the budget {dict(budget)}; relax a limit or find a cheaper model")
    ok = card[feasible]
    candidates = ok[(ok.index == baseline) | ok["gain_is_real"].astype(bool)]
    if candidates.empty:
        ranked = ok.assign(_name=ok.index).sort_values(["cost", "_name"])
        return str(ranked.index[0])
    ranked = candidates.assign(_name=candidates.index, _neg_acc=-candidates["accuracy"])
    ranked = ranked.sort_values(["_neg_acc", "cost", "_name"])
    return str(ranked.index[0])
