"""Label noise: measure it, find it again with confident learning, and compare ways of cleaning.

Lab 3 (data quantity vs quality) rests on these mechanisms; the learner writes the noise injectors,
the cleaning rule and the budget arithmetic, and the lab runs them through what is here:

* **Measurement**: :func:`noise_transition_matrix` (where each true class's labels ended up).
* **The textbook noise model** for illustrations: :func:`uniform_label_noise` (each label is replaced,
  with probability ``rate``, by a class drawn from *all* classes, so some "replacements" are the true class).
* **Models**: :func:`default_classifier` and :func:`out_of_fold_proba` (each row scored by a model
  that never saw its label).
* **Confident learning** (Northcutt, Jiang & Chuang, JAIR 2021) through ``cleanlab``:
  :func:`find_label_issues` (cleanlab's own rule), :func:`label_quality` (a score per row),
  :func:`count_label_issues` and :func:`estimated_noise_rate` (how many labels look wrong).
* **Cleaning**: :func:`detection_scores` (a cleaner's precision and recall against known flips),
  :func:`clean_labels` (apply a mask) and :func:`compare_cleaning` (retrain on the noisy labels, without
  the rows *a given rule* flagged, without cleanlab's suspects, without as many random rows, and on
  the clean labels).

Learning curves live in :mod:`tradeoffs.curves`, the support-ticket features in
:mod:`tradeoffs.ticket_features`.

Everything takes a ``seed`` (an int or a :class:`numpy.random.Generator`) and never touches global
random state. Small scikit-learn fits run with one BLAS thread: on a shared 2-core machine OpenBLAS's
spinning worker threads make a 50 ms logistic regression take seconds.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .checks import check_fraction, check_labels, check_proba
from .threads import limit_threads

#: Confusable digit pairs used by the lab's class-conditional noise.
DIGIT_PAIRS: tuple[tuple[int, int], ...] = ((1, 7), (3, 8))

SeedLike = int | np.random.Generator | None

# --------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------
def _rng(seed: SeedLike) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        return np.random.default_rng()
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer or a numpy Generator, got {seed!r}")
    return np.random.default_rng(int(seed))


def _check_labels(y: Any, n_classes: int | None = None, name: str = "y") -> tuple[np.ndarray, int]:
    """The labels (:func:`tradeoffs.checks.check_labels`) and the number of classes (default: max + 1)."""
    if n_classes is not None and (isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer))
                                  or n_classes < 1):
        raise ValueError(f"n_classes must be a positive integer, got {n_classes!r}")
    labels = check_labels(y, n_classes=n_classes, name=name)
    return labels, int(n_classes) if n_classes is not None else int(labels.max()) + 1


def _check_rate(rate: Any, name: str = "rate") -> float:
    return check_fraction(rate, name)


def _check_proba(proba: Any, n_rows: int, n_classes: int) -> np.ndarray:
    p = check_proba(proba, n_rows=n_rows)
    if p.shape[1] < n_classes:
        raise ValueError(f"proba has {p.shape[1]} columns but the labels use {n_classes} classes")
    return p


def uniform_label_noise(y: Any, rate: float, *, n_classes: int | None = None, seed: SeedLike = 0
                        ) -> tuple[np.ndarray, np.ndarray]:
    """The textbook noise model: each label is, with probability ``rate``, replaced by a class drawn
    uniformly from **all** ``K`` classes (so about ``rate / K`` of the rows are "replaced" by their own
    class and stay right).

    The number of changed rows is random (binomial), not fixed: use it to illustrate what noise does,
    not where an exact rate matters.

    Parameters
    ----------
    y : array-like of int, shape (n,)
        Clean class indices ``0..K-1``.
    rate : float in [0, 1]
        Probability that a row's label is redrawn.
    n_classes : int, optional
        ``K``; defaults to ``max(y) + 1``.
    seed : int or numpy.random.Generator

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        The labels (int64) and the boolean mask of rows whose label changed (``labels != y``).

    Examples
    --------
    >>> y = np.repeat(np.arange(10), 100)
    >>> noisy, changed = uniform_label_noise(y, 0.5, n_classes=10, seed=0)
    >>> bool(np.all(changed == (noisy != y))), bool(0.4 < changed.mean() < 0.5)
    (True, True)
    """
    labels, k = _check_labels(y, n_classes)
    rate = _check_rate(rate)
    rng = _rng(seed)
    redraw = rng.random(labels.size) < rate
    noisy = np.where(redraw, rng.integers(0, k, size=labels.size), labels).astype(np.int64)
    return noisy, noisy != labels

# --------------------------------------------------------------------------------------------
# Measuring noise
# --------------------------------------------------------------------------------------------
def noise_transition_matrix(y_true: Any, y_noisy: Any, n_classes: int | None = None) -> np.ndarray:
    """The realised transition matrix ``T[i, j]`` = share of true-class-``i`` rows labelled ``j``.

    Rows sum to 1; a class with no rows in ``y_true`` gets a row of NaN (no evidence either way).

    Examples
    --------
    >>> noise_transition_matrix([0, 0, 0, 0, 1, 1], [0, 0, 0, 1, 1, 1], n_classes=3).tolist()
    [[0.75, 0.25, 0.0], [0.0, 1.0, 0.0], [nan, nan, nan]]
    """
    t_true, k1 = _check_labels(y_true, None, "y_true")
    t_noisy, k2 = _check_labels(y_noisy, None, "y_noisy")
    if t_true.size != t_noisy.size:
        raise ValueError(f"y_true and y_noisy differ in length: {t_true.size} vs {t_noisy.size}")
    k = _check_labels(np.concatenate([t_true, t_noisy]), n_classes)[1]
    counts = np.zeros((k, k))
    np.add.at(counts, (t_true, t_noisy), 1.0)
    totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, counts / np.where(totals > 0, totals, 1), np.nan)



# --------------------------------------------------------------------------------------------
# Models and out-of-fold probabilities
# --------------------------------------------------------------------------------------------
def default_classifier():
    """The lab's model: standardise, then multinomial logistic regression (C=1).

    Examples
    --------
    >>> default_classifier().steps[-1][0]
    'logisticregression'
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))


def _fit_quiet(estimator, X, y):
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", UserWarning)
        return estimator.fit(X, y)


def _proba_full(estimator, X, n_classes: int) -> np.ndarray:
    """predict_proba with one column per class 0..K-1 (classes unseen in training get 0)."""
    part = estimator.predict_proba(X)
    out = np.zeros((part.shape[0], n_classes))
    out[:, np.asarray(estimator.classes_, dtype=np.int64)] = part
    return out


def out_of_fold_proba(X: Any, y: Any, estimator=None, *, n_splits: int = 5, n_classes: int | None = None,
                      seed: SeedLike = 0) -> np.ndarray:
    """Out-of-fold predicted probabilities: each row is scored by a model that never saw its label.

    Confident learning needs these (in-sample probabilities simply repeat the noisy label back).
    Folds are stratified when every class has at least ``n_splits`` rows, plain shuffled otherwise.

    Parameters
    ----------
    X : array-like, shape (n, d)
    y : array-like of int, shape (n,)
        The (possibly noisy) labels.
    estimator : scikit-learn classifier with ``predict_proba``, optional
        Cloned for every fold; defaults to :func:`default_classifier`.
    n_splits : int
    n_classes : int, optional
        Number of columns of the result; defaults to ``max(y) + 1``.
    seed : int or numpy.random.Generator

    Returns
    -------
    np.ndarray, shape (n, K)

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> X, y = load_iris(return_X_y=True)
    >>> p = out_of_fold_proba(X, y, n_splits=3)
    >>> p.shape, bool(np.allclose(p.sum(1), 1)), float((p.argmax(1) == y).mean()) > 0.9
    ((150, 3), True, True)
    """
    from sklearn.base import clone
    from sklearn.model_selection import KFold, StratifiedKFold

    labels, k = _check_labels(y, n_classes)
    X = np.asarray(X)
    if X.shape[0] != labels.size:
        raise ValueError(f"X has {X.shape[0]} rows but y has {labels.size}")
    if not isinstance(n_splits, (int, np.integer)) or n_splits < 2 or n_splits > labels.size:
        raise ValueError(f"n_splits must be an integer in [2, n_rows={labels.size}], got {n_splits!r}")
    estimator = estimator if estimator is not None else default_classifier()
    state = int(_rng(seed).integers(2**31 - 1))
    counts = np.bincount(labels, minlength=k)
    present = counts[counts > 0]
    splitter = (StratifiedKFold(n_splits, shuffle=True, random_state=state) if present.min() >= n_splits
                else KFold(n_splits, shuffle=True, random_state=state))
    out = np.zeros((labels.size, k))
    with limit_threads(1):
        for train, test in splitter.split(X, labels):
            train_classes = np.unique(labels[train])
            if train_classes.size == 1:  # a fold with one class: predict it with certainty
                out[np.ix_(test, train_classes)] = 1.0
                continue
            model = _fit_quiet(clone(estimator), X[train], labels[train])
            out[test] = _proba_full(model, X[test], k)
    return out



# --------------------------------------------------------------------------------------------
# Finding and cleaning label errors
# --------------------------------------------------------------------------------------------
def find_label_issues(labels: Any, proba: Any, *, filter_by: str = "prune_by_noise_rate") -> np.ndarray:
    """Confident learning (cleanlab's ``find_label_issues``): a boolean mask of likely label errors.

    Parameters
    ----------
    labels : array-like of int, shape (n,)
        The labels as given (noisy).
    proba : array-like, shape (n, K)
        **Out-of-fold** probabilities (:func:`out_of_fold_proba`).
    filter_by : str
        cleanlab's rule; the default ``"prune_by_noise_rate"`` is the paper's main method.

    Examples
    --------
    >>> y = np.array([0, 0, 0, 1, 1, 1])
    >>> p = np.array([[.9, .1], [.8, .2], [.1, .9], [.2, .8], [.1, .9], [.3, .7]])
    >>> find_label_issues(y, p).tolist()
    [False, False, True, False, False, False]
    """
    from cleanlab.filter import find_label_issues as _cleanlab_find

    y, k = _check_labels(labels)
    p = _check_proba(proba, y.size, k)
    with warnings.catch_warnings():  # cleanlab warns about tiny classes; the mask is still right
        warnings.simplefilter("ignore")
        mask = _cleanlab_find(y, p, filter_by=filter_by, n_jobs=1)
    return np.asarray(mask, dtype=bool)


def label_quality(labels: Any, proba: Any) -> np.ndarray:
    """cleanlab's label-quality score per row (lower = more likely wrong); sort ascending to build a
    review queue.

    Examples
    --------
    >>> label_quality([0, 1], [[0.9, 0.1], [0.8, 0.2]]).round(2).tolist()
    [0.9, 0.2]
    """
    from cleanlab.rank import get_label_quality_scores

    y, k = _check_labels(labels)
    p = _check_proba(proba, y.size, k)
    return np.asarray(get_label_quality_scores(y, p, method="self_confidence"), dtype=float)


def estimated_noise_rate(labels: Any, proba: Any) -> float:
    """How noisy are these labels? cleanlab's estimate of the share of wrong labels, computed from the
    labels and out-of-fold probabilities alone (no ground truth needed).

    Examples
    --------
    >>> y = np.array([0, 0, 0, 1, 1, 1])
    >>> p = np.array([[.9, .1], [.8, .2], [.1, .9], [.2, .8], [.1, .9], [.3, .7]])
    >>> round(estimated_noise_rate(y, p), 3)
    0.167
    """
    from cleanlab.count import num_label_issues

    y, k = _check_labels(labels)
    p = _check_proba(proba, y.size, k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(num_label_issues(y, p)) / y.size


def count_label_issues(labels: Any, proba: Any) -> int:
    """How many labels look wrong? cleanlab's estimate (``cleanlab.count.num_label_issues``), from the
    labels and out-of-fold probabilities alone (no ground truth needed).

    Examples
    --------
    >>> y = np.array([0, 0, 0, 1, 1, 1])
    >>> p = np.array([[.9, .1], [.8, .2], [.1, .9], [.2, .8], [.1, .9], [.3, .7]])
    >>> count_label_issues(y, p)
    1
    """
    from cleanlab.count import num_label_issues

    y, k = _check_labels(labels)
    p = _check_proba(proba, y.size, k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return int(num_label_issues(y, p))


def _check_masks(flagged: Any, flipped: Any) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(flagged)
    b = np.asarray(flipped)
    if a.dtype != bool or b.dtype != bool or a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"flagged and flipped must be 1-D boolean masks of the same length, "
                         f"got {a.dtype}{a.shape} and {b.dtype}{b.shape}")
    return a, b


def detection_scores(flagged: Any, flipped: Any) -> dict[str, float]:
    """Precision and recall of a cleaner against the rows we know were flipped.

    ``precision`` = flagged rows that really were flipped / flagged rows, ``recall`` = flipped rows
    that were flagged / flipped rows, ``f1`` their harmonic mean; a zero denominator gives 0.0
    (scikit-learn's ``zero_division=0``).

    Examples
    --------
    >>> detection_scores(np.array([True, True, False, False]), np.array([True, False, True, False]))
    {'precision': 0.5, 'recall': 0.5, 'f1': 0.5, 'flagged': 2, 'flipped': 2, 'true_positives': 1}
    """
    a, b = _check_masks(flagged, flipped)
    tp = int(np.count_nonzero(a & b))
    n_flag = int(a.sum())
    n_flip = int(b.sum())
    precision = tp / n_flag if n_flag else 0.0
    recall = tp / n_flip if n_flip else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "flagged": n_flag, "flipped": n_flip,
            "true_positives": tp}



def clean_labels(X: Any, labels: Any, issues: Any, *, strategy: str = "remove",
                 proba: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Apply a cleaning decision: drop the flagged rows, or relabel them with the model's guess.

    Parameters
    ----------
    X : array-like, shape (n, d)
    labels : array-like of int, shape (n,)
    issues : boolean mask, shape (n,)
    strategy : {"remove", "relabel"}
    proba : array-like, shape (n, K); required for ``"relabel"`` (the new label is its argmax).

    Examples
    --------
    >>> X = np.arange(6).reshape(3, 2); y = np.array([0, 1, 1])
    >>> clean_labels(X, y, np.array([False, True, False]))[1].tolist()
    [0, 1]
    >>> clean_labels(X, y, np.array([False, True, False]), strategy="relabel",
    ...              proba=np.array([[1., 0.], [.7, .3], [0., 1.]]))[1].tolist()
    [0, 0, 1]
    """
    y, k = _check_labels(labels)
    X = np.asarray(X)
    mask = np.asarray(issues)
    if mask.dtype != bool or mask.shape != y.shape or X.shape[0] != y.size:
        raise ValueError("issues must be a boolean mask with one entry per row of X and labels")
    if strategy == "remove":
        return X[~mask], y[~mask]
    if strategy == "relabel":
        if proba is None:
            raise ValueError("strategy='relabel' needs proba (out-of-fold probabilities) to pick the new label")
        p = _check_proba(proba, y.size, k)
        fixed = y.copy()
        fixed[mask] = p[mask].argmax(axis=1)
        return X, fixed
    raise ValueError(f"strategy must be 'remove' or 'relabel', got {strategy!r}")



def compare_cleaning(X: Any, y_clean: Any, labels: Any, flipped: Any, remove: Any, X_test: Any, y_test: Any, *,
                     proba: Any = None, estimator=None, n_splits: int = 5, seed: SeedLike = 0) -> dict[str, float]:
    """Retrain after a cleaning rule has spoken: what did removing *its* rows buy?

    The same model is fitted on five training sets and scored on the clean test labels:

    * ``noisy``: the labels as given;
    * ``rule``: without the rows in ``remove`` (the rule under test);
    * ``cleanlab``: without the rows cleanlab's own rule flags (:func:`find_label_issues`);
    * ``random_removal``: without as many rows as ``remove`` holds, chosen uniformly (the baseline a
      rule must beat: fewer rows alone changes accuracy);
    * ``oracle``: the clean labels (the ceiling).

    It also scores both rules against the known flips (precision, recall) and reports cleanlab's
    estimate of the noise rate.

    Parameters
    ----------
    X : array-like, shape (n, d)
    y_clean : array-like of int, shape (n,)
        The true labels (known here because the noise was planted).
    labels, flipped : the noisy labels and the boolean mask of the rows that were flipped.
    remove : boolean mask, shape (n,)
        The rows the rule under test removes.
    X_test, y_test : the held-out set, clean.
    proba : array-like, shape (n, K), optional
        Out-of-fold probabilities for ``labels``; computed with :func:`out_of_fold_proba` if omitted.
    estimator : scikit-learn classifier, optional (default :func:`default_classifier`).
    seed : int or numpy.random.Generator

    Returns
    -------
    dict
        ``acc_<arm>`` for the five arms, ``rule_precision``, ``rule_recall``, ``rule_removed``,
        ``cleanlab_precision``, ``cleanlab_recall``, ``cleanlab_removed``, ``true_rate``,
        ``estimated_rate``.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> X, y = load_iris(return_X_y=True)
    >>> noisy, flipped = uniform_label_noise(y[::2], 0.3, seed=0)
    >>> out = compare_cleaning(X[::2], y[::2], noisy, flipped, flipped, X[1::2], y[1::2])
    >>> out["rule_precision"], out["acc_oracle"] >= out["acc_noisy"]
    (1.0, True)
    """
    from sklearn.base import clone

    y, k = _check_labels(y_clean, None, "y_clean")
    X = np.asarray(X)
    noisy, k = _check_labels(labels, max(k, int(np.max(labels)) + 1), "labels")
    rule, truth = _check_masks(remove, flipped)
    if noisy.shape != y.shape or rule.shape != y.shape or X.shape[0] != y.size:
        raise ValueError("labels, flipped and remove must have one entry per row of X and y_clean")
    if rule.all():
        raise ValueError("remove flags every row: nothing would be left to train on")
    estimator = estimator if estimator is not None else default_classifier()
    rng = _rng(seed)
    proba = (out_of_fold_proba(X, noisy, estimator, n_splits=n_splits, n_classes=k, seed=rng) if proba is None
             else _check_proba(proba, y.size, k))
    by_cleanlab = find_label_issues(noisy, proba)
    at_random = np.zeros(y.size, dtype=bool)
    at_random[rng.choice(y.size, size=int(rule.sum()), replace=False)] = True
    training = {"noisy": (X, noisy), "rule": clean_labels(X, noisy, rule),
                "cleanlab": clean_labels(X, noisy, by_cleanlab), "random_removal": clean_labels(X, noisy, at_random),
                "oracle": (X, y)}
    ours, theirs = detection_scores(rule, truth), detection_scores(by_cleanlab, truth)
    out = {"true_rate": float(truth.mean()), "estimated_rate": estimated_noise_rate(noisy, proba),
           "rule_removed": ours["flagged"], "rule_precision": ours["precision"], "rule_recall": ours["recall"],
           "cleanlab_removed": theirs["flagged"], "cleanlab_precision": theirs["precision"],
           "cleanlab_recall": theirs["recall"]}
    y_test = np.asarray(y_test)
    with limit_threads(1):
        for name, (Xa, ya) in training.items():
            model = _fit_quiet(clone(estimator), Xa, ya)
            out[f"acc_{name}"] = float(np.mean(model.predict(np.asarray(X_test)) == y_test))
    return out
