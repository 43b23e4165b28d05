"""Label noise: inject it, measure what it costs, find it again, and price cleaning against collecting.

Lab 3 (data quantity vs quality) is built from these pieces:

* **Injectors** that flip an *exact* number of labels and return the noisy labels together with the
  mask of flipped rows, reproducibly from a seed:
  :func:`symmetric_noise` (any other class, uniformly), :func:`class_conditional_noise` (confusable
  pairs such as 1<->7 and 3<->8 on digits, or any transition matrix via :func:`transition_noise`) and
  :func:`instance_dependent_noise` (hard examples, those a model is unsure about, are flipped more).
* **Measurement**: :func:`noise_transition_matrix`, :func:`learning_curve_grid` (accuracy over
  training-set size x noise rate x seeds), :func:`summarize_grid`, :func:`saturation_size` and
  :class:`AccuracySurface` (the measured grid as a function ``accuracy(n, rate)``).
* **Cleaning** with confident learning (Northcutt, Jiang & Chuang, JAIR 2021): :func:`out_of_fold_proba`,
  :func:`find_label_issues`, :func:`label_quality` and :func:`estimated_noise_rate` (all three from
  ``cleanlab``), :func:`detection_scores`, :func:`review_precision`, :func:`clean_labels`,
  :func:`random_mask` (the baseline) and :func:`compare_cleaning` (the whole experiment).
* **The budget decision**: :func:`marginal_value` (accuracy bought by one hour of review versus one
  day of collection, per hour), :func:`recommend`, :func:`flip_rate` and :func:`break_even_rate`.
* **Ticket intents**: :func:`load_ticket_features` (the kit's support tickets through MiniLM, cached in
  this process only, never on disk) and :func:`confusable_pairs` (which intents a model mixes up).

Everything takes a ``seed`` (an int or a :class:`numpy.random.Generator`) and never touches global
random state. Small scikit-learn fits run with one BLAS thread: on a shared 2-core machine OpenBLAS's
spinning worker threads make a 50 ms logistic regression take seconds.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterable, NamedTuple, Sequence

import numpy as np
import pandas as pd

#: Confusable digit pairs used by the lab's class-conditional noise (the issue's examples).
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
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of class indices, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty; pass at least one label")
    if arr.dtype.kind == "b" or arr.dtype.kind not in "iuf":
        raise ValueError(
            f"{name} must hold integer class indices 0..K-1, got dtype {arr.dtype}; "
            "encode string labels first, e.g. with sklearn.preprocessing.LabelEncoder"
        )
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError(f"{name} must hold integer class indices, got non-integer values")
    labels = arr.astype(np.int64)
    if labels.min() < 0:
        raise ValueError(f"{name} must hold class indices >= 0, got {int(labels.min())}")
    k = int(labels.max()) + 1
    if n_classes is None:
        n_classes = k
    else:
        if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 1:
            raise ValueError(f"n_classes must be a positive integer, got {n_classes!r}")
        n_classes = int(n_classes)
        if k > n_classes:
            raise ValueError(f"{name} holds class {k - 1} but n_classes={n_classes}; pass n_classes >= {k}")
    return labels, n_classes


def _check_rate(rate: Any, name: str = "rate") -> float:
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number in [0, 1], got {rate!r}")
    rate = float(rate)
    if not math.isfinite(rate) or rate < 0 or rate > 1:
        hint = " (it is a fraction: 0.3 means 30 %)" if math.isfinite(rate) and 1 < rate <= 100 else ""
        raise ValueError(f"{name} must be a fraction in [0, 1], got {rate!r}{hint}")
    return rate


def _check_proba(proba: Any, n_rows: int, n_classes: int) -> np.ndarray:
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != n_rows:
        raise ValueError(f"proba must have shape (n_rows, n_classes) = ({n_rows}, K), got {p.shape}")
    if p.shape[1] < n_classes:
        raise ValueError(f"proba has {p.shape[1]} columns but the labels use {n_classes} classes")
    if not np.all(np.isfinite(p)) or p.min() < 0:
        raise ValueError("proba must hold finite, non-negative probabilities")
    sums = p.sum(axis=1)
    if not np.allclose(sums, 1.0, atol=1e-3):
        worst = int(np.argmax(np.abs(sums - 1)))
        raise ValueError(f"each row of proba must sum to 1; row {worst} sums to {sums[worst]:.4f} "
                         "(pass predict_proba output, not scores or logits)")
    return p


def n_flips(rate: float, n: int) -> int:
    """The exact number of rows an injector flips: ``round(rate * n)`` (Python's rounding).

    Examples
    --------
    >>> n_flips(0.3, 1000), n_flips(0.1, 7)
    (300, 1)
    """
    return int(round(_check_rate(rate) * int(n)))


# --------------------------------------------------------------------------------------------
# Injectors
# --------------------------------------------------------------------------------------------
class NoisyLabels(NamedTuple):
    """What every injector returns: the noisy labels and the mask of the rows that were flipped.

    It unpacks like a tuple: ``labels, flipped = symmetric_noise(y, 0.2)``. ``flipped`` is exactly
    ``labels != y``: an injector never "flips" a label to its own class.
    """

    labels: np.ndarray
    flipped: np.ndarray

    @property
    def rate(self) -> float:
        """The realised noise rate (fraction of rows flipped)."""
        return float(self.flipped.mean()) if self.flipped.size else 0.0


def symmetric_noise(y: Any, rate: float, *, n_classes: int | None = None, seed: SeedLike = 0) -> NoisyLabels:
    """Flip exactly ``round(rate * n)`` labels, each to a uniformly chosen *other* class.

    The rows to flip are a uniform sample without replacement, so every class is hit in proportion
    to its size. Above ``rate = (K-1)/K`` the true class is no longer the most frequent label of its
    own examples and the labels stop carrying signal; the injector still obliges (it is possible),
    but learning curves at such rates are meaningless.

    Parameters
    ----------
    y : array-like of int, shape (n,)
        Clean class indices ``0..K-1``.
    rate : float in [0, 1]
        Fraction of rows to flip.
    n_classes : int, optional
        ``K``; defaults to ``max(y) + 1``. Must be >= 2 when anything is flipped.
    seed : int or numpy.random.Generator
        Same seed, same flips.

    Returns
    -------
    NoisyLabels
        ``labels`` (int64, shape (n,)) and ``flipped`` (bool, shape (n,)).

    Raises
    ------
    ValueError
        A rate outside [0, 1], labels that are not class indices, or flips requested with one class.

    Examples
    --------
    >>> y = np.repeat(np.arange(4), 25)
    >>> noisy, flipped = symmetric_noise(y, 0.2, seed=1)
    >>> int(flipped.sum()), bool(np.all((noisy != y) == flipped))
    (20, True)
    >>> np.array_equal(symmetric_noise(y, 0.2, seed=1).labels, noisy)
    True
    """
    labels, k = _check_labels(y, n_classes)
    rate = _check_rate(rate)
    n = labels.size
    m = n_flips(rate, n)
    if m and k < 2:
        raise ValueError(f"cannot flip labels with a single class (n_classes={k}); pass n_classes >= 2")
    rng = _rng(seed)
    noisy = labels.copy()
    rows = rng.choice(n, size=m, replace=False)
    if m:
        noisy[rows] = (labels[rows] + rng.integers(1, k, size=m)) % k
    flipped = np.zeros(n, dtype=bool)
    flipped[rows] = True
    return NoisyLabels(noisy, flipped)


def _apportion(total: int, weights: np.ndarray) -> np.ndarray:
    """Integers proportional to ``weights`` that sum to ``total`` (largest remainder)."""
    if total == 0 or weights.sum() == 0:
        return np.zeros(weights.size, dtype=np.int64)
    exact = total * weights / weights.sum()
    base = np.floor(exact).astype(np.int64)
    short = total - int(base.sum())
    order = np.argsort(-(exact - base), kind="stable")
    base[order[:short]] += 1
    return base


def check_transition_matrix(matrix: Any, n_classes: int | None = None) -> np.ndarray:
    """Validate a noise transition matrix ``T[i, j] = P(noisy = j | true = i)`` and return it.

    Examples
    --------
    >>> check_transition_matrix([[0.9, 0.1], [0.2, 0.8]]).shape
    (2, 2)
    """
    t = np.asarray(matrix, dtype=np.float64)
    if t.ndim != 2 or t.shape[0] != t.shape[1]:
        raise ValueError(f"a transition matrix must be square (K, K), got shape {t.shape}")
    if n_classes is not None and t.shape[0] < n_classes:
        raise ValueError(f"the transition matrix covers {t.shape[0]} classes but the labels use {n_classes}")
    if not np.all(np.isfinite(t)) or t.min() < 0:
        raise ValueError("a transition matrix must hold finite, non-negative probabilities")
    sums = t.sum(axis=1)
    if not np.allclose(sums, 1.0, atol=1e-6):
        worst = int(np.argmax(np.abs(sums - 1)))
        raise ValueError(f"each row of a transition matrix must sum to 1 (row = true class); "
                         f"row {worst} sums to {sums[worst]:.6f}")
    return t


def transition_noise(y: Any, matrix: Any, *, seed: SeedLike = 0) -> NoisyLabels:
    """Class-conditional noise from a transition matrix, with exact counts per class.

    For every class ``i`` with ``n_i`` rows, exactly ``round(n_i * (1 - T[i, i]))`` of its rows are
    flipped (a uniform sample of them), and those are spread over the target classes ``j != i`` in
    proportion to ``T[i, j]`` (largest-remainder rounding), so the realised matrix matches ``T`` as
    closely as whole rows allow.

    Parameters
    ----------
    y : array-like of int, shape (n,)
    matrix : array-like, shape (K, K)
        ``T[i, j] = P(noisy = j | true = i)``; rows sum to 1.
    seed : int or numpy.random.Generator

    Examples
    --------
    >>> y = np.repeat([0, 1, 2], 10)
    >>> T = [[0.8, 0.2, 0.0], [0.0, 1.0, 0.0], [0.0, 0.5, 0.5]]
    >>> noisy, flipped = transition_noise(y, T, seed=0)
    >>> noise_transition_matrix(y, noisy).round(2).tolist()
    [[0.8, 0.2, 0.0], [0.0, 1.0, 0.0], [0.0, 0.5, 0.5]]
    """
    labels, k = _check_labels(y)
    t = check_transition_matrix(matrix, k)
    rng = _rng(seed)
    noisy = labels.copy()
    flipped = np.zeros(labels.size, dtype=bool)
    for c in range(t.shape[0]):
        members = np.flatnonzero(labels == c)
        if members.size == 0:
            continue
        off = t[c].copy()
        off[c] = 0.0
        total = int(round(members.size * (1.0 - t[c, c])))
        counts = _apportion(total, off)
        rows = rng.choice(members, size=total, replace=False)
        noisy[rows] = np.repeat(np.arange(t.shape[0]), counts)
        flipped[rows] = True
    return NoisyLabels(noisy, flipped)


def pair_transition_matrix(n_classes: int, pairs: Iterable[Sequence[int]], rate: float) -> np.ndarray:
    """The transition matrix of "confusable pairs" noise: within each pair ``(a, b)`` a fraction
    ``rate`` of ``a`` is labelled ``b`` and vice versa; other classes stay clean.

    A rate above 0.5 means most of the pair is swapped: possible, and a classifier will learn the
    swap. A class may belong to one pair only.

    Examples
    --------
    >>> pair_transition_matrix(3, [(0, 2)], 0.25)
    array([[0.75, 0.  , 0.25],
           [0.  , 1.  , 0.  ],
           [0.25, 0.  , 0.75]])
    """
    rate = _check_rate(rate)
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 2:
        raise ValueError(f"n_classes must be an integer >= 2, got {n_classes!r}")
    t = np.eye(int(n_classes))
    seen: set[int] = set()
    pairs = [tuple(int(c) for c in p) for p in pairs]
    if not pairs:
        raise ValueError("pass at least one confusable pair, e.g. pairs=[(1, 7), (3, 8)]")
    for pair in pairs:
        if len(pair) != 2 or pair[0] == pair[1]:
            raise ValueError(f"each pair must be two different classes, got {pair}")
        for c in pair:
            if not 0 <= c < n_classes:
                raise ValueError(f"class {c} in pair {pair} is outside 0..{n_classes - 1}")
            if c in seen:
                raise ValueError(f"class {c} appears in more than one pair; each class may have one partner")
            seen.add(c)
        a, b = pair
        t[a, a] = t[b, b] = 1.0 - rate
        t[a, b] = t[b, a] = rate
    return t


def class_conditional_noise(y: Any, rate: float, pairs: Iterable[Sequence[int]] = DIGIT_PAIRS, *,
                            n_classes: int | None = None, seed: SeedLike = 0) -> NoisyLabels:
    """Flip a fraction ``rate`` of each class in a confusable pair to its partner (1<->7, 3<->8...).

    Exactly ``round(rate * n_c)`` rows of every paired class ``c`` are flipped; unpaired classes are
    untouched, so the overall rate is ``rate`` times the share of rows in paired classes.

    Examples
    --------
    >>> y = np.repeat(np.arange(10), 20)
    >>> noisy, flipped = class_conditional_noise(y, 0.25, pairs=[(1, 7), (3, 8)], seed=0)
    >>> int(flipped.sum()), sorted(set(zip(y[flipped].tolist(), noisy[flipped].tolist())))
    (20, [(1, 7), (3, 8), (7, 1), (8, 3)])
    """
    labels, k = _check_labels(y, n_classes)
    k = max(k, 2)
    return transition_noise(labels, pair_transition_matrix(k, pairs, rate), seed=seed)


def instance_dependent_noise(y: Any, rate: float, proba: Any, *, seed: SeedLike = 0) -> NoisyLabels:
    """Flip exactly ``round(rate * n)`` labels, choosing hard examples more often.

    A row's hardness is ``1 - proba[i, y_i]``: how much a model (fitted on clean labels, ideally
    out of fold) believes the example belongs elsewhere. Rows are drawn without replacement with
    probability proportional to hardness, and each flipped row gets a wrong class drawn from the
    model's probabilities over the other classes: a blurry 7 becomes a 1, not a 4. This mimics
    annotators, who err on ambiguous items.

    Parameters
    ----------
    y : array-like of int, shape (n,)
    rate : float in [0, 1]
    proba : array-like, shape (n, K)
        Class probabilities per row (rows sum to 1), e.g. from :func:`out_of_fold_proba`.
    seed : int or numpy.random.Generator

    Raises
    ------
    ValueError
        When fewer rows than requested have any probability of another class (hardness > 0): such a
        rate is impossible for this model's probabilities.

    Examples
    --------
    >>> y = np.array([0, 0, 1, 1])
    >>> proba = np.array([[1.0, 0.0], [0.6, 0.4], [0.0, 1.0], [0.3, 0.7]])
    >>> instance_dependent_noise(y, 0.5, proba, seed=0).flipped.tolist()
    [False, True, False, True]
    """
    labels, k = _check_labels(y)
    rate = _check_rate(rate)
    p = _check_proba(proba, labels.size, k)
    n = labels.size
    m = n_flips(rate, n)
    hardness = np.clip(1.0 - p[np.arange(n), labels], 0.0, None)
    hardness[hardness < 1e-12] = 0.0
    possible = int(np.count_nonzero(hardness))
    if m > possible:
        raise ValueError(
            f"rate={rate} asks for {m} flips but only {possible} of {n} rows have any probability of "
            "another class in proba; lower the rate, or pass smoother probabilities (e.g. a more "
            "regularised model, or out-of-fold probabilities)"
        )
    rng = _rng(seed)
    noisy = labels.copy()
    flipped = np.zeros(n, dtype=bool)
    if m:
        rows = rng.choice(n, size=m, replace=False, p=hardness / hardness.sum())
        for r in rows:
            other = p[r].copy()
            other[labels[r]] = 0.0
            noisy[r] = rng.choice(other.size, p=other / other.sum())
        flipped[rows] = True
    return NoisyLabels(noisy, flipped)


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
# Models and learning curves
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


def _one_thread():
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


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
    with _one_thread():
        for train, test in splitter.split(X, labels):
            train_classes = np.unique(labels[train])
            if train_classes.size == 1:  # a fold with one class: predict it with certainty
                out[np.ix_(test, train_classes)] = 1.0
                continue
            model = _fit_quiet(clone(estimator), X[train], labels[train])
            out[test] = _proba_full(model, X[test], k)
    return out


NoiseFn = Callable[[np.ndarray, float, np.random.Generator], NoisyLabels]


def _noise_fn(noise: str | NoiseFn, pairs, n_classes: int) -> NoiseFn:
    if callable(noise):
        return noise
    if noise == "symmetric":
        return lambda y, rate, rng: symmetric_noise(y, rate, n_classes=n_classes, seed=rng)
    if noise == "class_conditional":
        matrix_pairs = pairs if pairs is not None else DIGIT_PAIRS
        return lambda y, rate, rng: transition_noise(
            y, pair_transition_matrix(n_classes, matrix_pairs, rate), seed=rng)
    raise ValueError(f"noise must be 'symmetric', 'class_conditional' or a callable, got {noise!r}")


def learning_curve_grid(X: Any, y: Any, X_test: Any, y_test: Any, *, sizes: Sequence[int],
                        rates: Sequence[float], seeds: Sequence[int] = (0, 1, 2),
                        noise: str | NoiseFn = "symmetric", pairs=None, estimator=None,
                        n_classes: int | None = None, progress: bool = False) -> pd.DataFrame:
    """Test accuracy over training-set size x noise rate x seed: the lab's learning curves.

    For each seed the pool is shuffled once and a training set of size ``n`` is its first ``n`` rows
    (so a bigger set contains the smaller one, as when you collect more). Each training set then gets
    exactly ``round(rate * n)`` flipped labels, the model is fitted on the noisy labels, and it is
    scored on the **clean** test labels.

    Parameters
    ----------
    X, y : the training pool (clean labels).
    X_test, y_test : the held-out set, clean.
    sizes : increasing training-set sizes, each <= len(y).
    rates : noise rates in [0, 1].
    seeds : one curve per seed (sampling and noise both follow it).
    noise : "symmetric", "class_conditional" (with ``pairs``) or ``f(y, rate, rng) -> NoisyLabels``.
    estimator : scikit-learn classifier, optional (default :func:`default_classifier`).
    progress : show a tqdm bar.

    Returns
    -------
    pandas.DataFrame
        One row per fit: ``size``, ``rate``, ``seed``, ``realised_rate``, ``accuracy``.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> X, y = load_iris(return_X_y=True)
    >>> grid = learning_curve_grid(X[::2], y[::2], X[1::2], y[1::2], sizes=[30, 75], rates=[0, 0.4], seeds=[0])
    >>> grid[["size", "rate"]].values.tolist()
    [[30.0, 0.0], [30.0, 0.4], [75.0, 0.0], [75.0, 0.4]]
    """
    from sklearn.base import clone

    labels, k = _check_labels(y, n_classes)
    test_labels, k = _check_labels(y_test, max(k, int(np.max(y_test)) + 1))
    X = np.asarray(X)
    X_test = np.asarray(X_test)
    if X.shape[0] != labels.size or X_test.shape[0] != test_labels.size:
        raise ValueError("X and y (and X_test and y_test) must have the same number of rows")
    sizes = [int(s) for s in sizes]
    if not sizes or any(s < 2 for s in sizes) or sorted(set(sizes)) != sizes:
        raise ValueError(f"sizes must be strictly increasing integers >= 2, got {sizes}")
    if sizes[-1] > labels.size:
        raise ValueError(f"the largest size {sizes[-1]} exceeds the pool of {labels.size} rows; "
                         "pass smaller sizes or a bigger pool")
    rates = [_check_rate(r) for r in rates]
    if not rates:
        raise ValueError("pass at least one noise rate, e.g. rates=[0.0, 0.2]")
    seeds = list(seeds)
    if not seeds:
        raise ValueError("pass at least one seed")
    inject = _noise_fn(noise, pairs, k)
    estimator = estimator if estimator is not None else default_classifier()
    total = len(seeds) * len(sizes) * len(rates)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="learning curves", unit="fit")
    rows = []
    with _one_thread():
        for seed in seeds:
            order = _rng(seed).permutation(labels.size)
            for size in sizes:
                idx = order[:size]
                for rate in rates:
                    # keyed on the rate's value, so another grid with this (seed, size, rate) cell
                    # draws exactly the same noisy labels (head-to-head runs reuse the main grid's noise)
                    rng = np.random.default_rng([int(seed), size, int(round(rate * 1_000_000))])
                    noisy = inject(labels[idx], rate, rng)
                    if np.unique(noisy.labels).size < 2:
                        acc = float(np.mean(test_labels == noisy.labels[0]))
                    else:
                        model = _fit_quiet(clone(estimator), X[idx], noisy.labels)
                        acc = float(np.mean(model.predict(X_test) == test_labels))
                    rows.append({"size": size, "rate": rate, "seed": seed,
                                 "realised_rate": noisy.rate, "accuracy": acc})
                    if bar is not None:
                        bar.update(1)
    if bar is not None:
        bar.close()
    frame = pd.DataFrame(rows)
    frame["size"] = frame["size"].astype(float)
    return frame


def summarize_grid(grid: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard deviation, standard error and count of accuracy per (size, rate).

    Examples
    --------
    >>> g = pd.DataFrame({"size": [10, 10], "rate": [0.0, 0.0], "seed": [0, 1], "accuracy": [0.8, 0.9]})
    >>> summarize_grid(g)[["mean", "n"]].round(3).values.tolist()
    [[0.85, 2.0]]
    """
    missing = {"size", "rate", "accuracy"} - set(grid.columns)
    if missing:
        raise ValueError(f"grid lacks columns {sorted(missing)}; pass the output of learning_curve_grid")
    out = grid.groupby(["size", "rate"])["accuracy"].agg(["mean", "std", "count"]).reset_index()
    out["std"] = out["std"].fillna(0.0)
    out["sem"] = out["std"] / np.sqrt(out["count"])
    return out.rename(columns={"count": "n"}).astype({"n": float})


def saturation_size(sizes: Sequence[float], accuracy: Sequence[float], *, min_gain_per_100: float = 0.005) -> float | None:
    """Where adding data stops helping: the smallest size from which every further step gains less
    than ``min_gain_per_100`` accuracy per 100 extra rows. ``None`` if the curve still climbs at the end.

    Examples
    --------
    >>> saturation_size([100, 200, 400, 800], [0.70, 0.80, 0.805, 0.80])
    200.0
    >>> saturation_size([100, 200], [0.5, 0.9]) is None
    True
    """
    s = np.asarray(sizes, dtype=float)
    a = np.asarray(accuracy, dtype=float)
    if s.ndim != 1 or s.shape != a.shape or s.size < 2:
        raise ValueError("sizes and accuracy must be 1-D of the same length >= 2")
    if np.any(np.diff(s) <= 0):
        raise ValueError("sizes must be strictly increasing")
    slopes = np.diff(a) / np.diff(s) * 100.0
    below = slopes < min_gain_per_100
    if not below[-1]:
        return None
    first = below.size
    while first > 0 and below[first - 1]:
        first -= 1
    return float(s[first])


@dataclass(frozen=True)
class AccuracySurface:
    """Measured accuracy as a function of training-set size and noise rate.

    Linear interpolation in ``(log size, rate)`` between the grid points of
    :func:`learning_curve_grid`; refuses to extrapolate outside the measured range (a learning curve
    says nothing about sizes you did not measure).

    Examples
    --------
    >>> s = AccuracySurface(sizes=np.array([100., 1000.]), rates=np.array([0.0, 0.5]),
    ...                     accuracy=np.array([[0.8, 0.6], [0.9, 0.7]]))
    >>> round(s(100, 0.25), 3), round(s(math.sqrt(100 * 1000), 0.0), 3)
    (0.7, 0.85)
    """

    sizes: np.ndarray
    rates: np.ndarray
    accuracy: np.ndarray

    def __post_init__(self):
        sizes = np.asarray(self.sizes, dtype=float)
        rates = np.asarray(self.rates, dtype=float)
        acc = np.asarray(self.accuracy, dtype=float)
        if sizes.ndim != 1 or rates.ndim != 1 or acc.shape != (sizes.size, rates.size):
            raise ValueError(f"accuracy must have shape (len(sizes), len(rates)) = ({sizes.size}, {rates.size}), "
                             f"got {acc.shape}")
        if sizes.size < 2 or rates.size < 2:
            raise ValueError("a surface needs at least two sizes and two rates")
        if np.any(np.diff(sizes) <= 0) or np.any(np.diff(rates) <= 0) or sizes[0] <= 0:
            raise ValueError("sizes (positive) and rates must be strictly increasing")
        if not np.all(np.isfinite(acc)):
            raise ValueError("accuracy holds NaN: every (size, rate) cell of the grid must be measured")
        object.__setattr__(self, "sizes", sizes)
        object.__setattr__(self, "rates", rates)
        object.__setattr__(self, "accuracy", acc)

    @classmethod
    def from_grid(cls, grid: pd.DataFrame, *, monotone_in_rate: bool = True) -> "AccuracySurface":
        """Build the surface from :func:`learning_curve_grid` output (means over seeds).

        With ``monotone_in_rate`` (the default) each size's accuracies are made non-increasing in the
        noise rate by isotonic regression: more flipped labels never help *in expectation*, and a
        seed-to-seed wiggle would otherwise show up as a negative value of cleaning. Sizes are left
        as measured: whether more data helps is exactly what the lab tests.

        Examples
        --------
        >>> g = pd.DataFrame({"size": [10, 10, 20, 20], "rate": [0.0, 0.5] * 2, "accuracy": [0.6, 0.62, 0.8, 0.7]})
        >>> AccuracySurface.from_grid(g).accuracy.round(2).tolist()
        [[0.61, 0.61], [0.8, 0.7]]
        """
        summary = summarize_grid(grid)
        table = summary.pivot(index="size", columns="rate", values="mean").sort_index().sort_index(axis=1)
        acc = np.array(table.to_numpy(float), dtype=float)  # a writable copy (pandas copy-on-write)
        if monotone_in_rate and acc.shape[1] > 1 and np.all(np.isfinite(acc)):
            from sklearn.isotonic import IsotonicRegression

            weights = summary.pivot(index="size", columns="rate", values="n").sort_index().sort_index(axis=1)
            rates = table.columns.to_numpy(float)
            for i in range(acc.shape[0]):
                iso = IsotonicRegression(increasing=False)
                acc[i] = iso.fit_transform(rates, acc[i], sample_weight=weights.to_numpy(float)[i])
        return cls(table.index.to_numpy(float), table.columns.to_numpy(float), acc)

    def __call__(self, n: float, rate: float) -> float:
        from scipy.interpolate import RegularGridInterpolator

        n = float(n)
        rate = float(rate)
        lo, hi = self.sizes[0], self.sizes[-1]
        if not lo * (1 - 1e-9) <= n <= hi * (1 + 1e-9):
            raise ValueError(f"size {n:g} is outside the measured sizes [{lo:g}, {hi:g}]; "
                             "measure the learning curve over a wider range of sizes")
        if not self.rates[0] - 1e-9 <= rate <= self.rates[-1] + 1e-9:
            raise ValueError(f"rate {rate:g} is outside the measured rates [{self.rates[0]:g}, {self.rates[-1]:g}]")
        interp = RegularGridInterpolator((np.log(self.sizes), self.rates), self.accuracy)
        point = [np.clip(math.log(n), math.log(lo), math.log(hi)), np.clip(rate, self.rates[0], self.rates[-1])]
        return float(interp([point])[0])


def break_even_rate(accuracy: Callable[[float, float], float], n_small: float, n_large: float,
                    *, resolution: int = 401) -> float | None:
    """The noise rate at which ``n_large`` noisy rows stop beating ``n_small`` clean rows.

    Scans rates from 0 to the surface's largest measured rate; returns the first rate where
    ``accuracy(n_large, rate) <= accuracy(n_small, 0)``, or ``None`` if the large noisy set wins at
    every measured rate.

    Examples
    --------
    >>> acc = lambda n, r: 0.9 - 30 / n - 0.4 * r
    >>> round(break_even_rate(acc, 150, 1000, resolution=1001), 3)
    0.425
    """
    top = float(getattr(accuracy, "rates", np.array([0.0, 1.0]))[-1])
    clean = accuracy(n_small, 0.0)
    for rate in np.linspace(0.0, top, resolution):
        if accuracy(n_large, float(rate)) <= clean:
            return float(rate)
    return None


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


def review_precision(quality: Any, flipped: Any, k: int) -> float:
    """Share of real errors among the ``k`` rows a reviewer sees first (lowest quality first).

    Examples
    --------
    >>> review_precision([0.1, 0.9, 0.2, 0.8], np.array([True, False, False, False]), 2)
    0.5
    """
    q = np.asarray(quality, dtype=float)
    b = np.asarray(flipped)
    if q.ndim != 1 or b.shape != q.shape or b.dtype != bool:
        raise ValueError("quality and flipped must be 1-D of the same length (flipped boolean)")
    if not isinstance(k, (int, np.integer)) or not 1 <= k <= q.size:
        raise ValueError(f"k must be an integer in [1, {q.size}], got {k!r}")
    first = np.argsort(q, kind="stable")[: int(k)]
    return float(b[first].mean())


def random_mask(n: int, k: int, *, seed: SeedLike = 0) -> np.ndarray:
    """A mask of ``k`` rows out of ``n`` chosen uniformly: the "remove rows at random" baseline.

    Examples
    --------
    >>> int(random_mask(10, 3, seed=0).sum())
    3
    """
    if not isinstance(n, (int, np.integer)) or not isinstance(k, (int, np.integer)) or not 0 <= k <= n:
        raise ValueError(f"need integers 0 <= k <= n, got n={n!r}, k={k!r}")
    mask = np.zeros(int(n), dtype=bool)
    mask[_rng(seed).choice(int(n), size=int(k), replace=False)] = True
    return mask


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


def compare_cleaning(X: Any, y_clean: Any, noisy: NoisyLabels, X_test: Any, y_test: Any, *, estimator=None,
                     n_splits: int = 5, seed: SeedLike = 0) -> dict[str, float]:
    """One cleaning experiment: find the injected errors with confident learning, then retrain.

    Returns the cleaner's precision and recall against the known flips, cleanlab's estimate of the
    noise rate against the true one, and the clean-test accuracy of the same model trained on

    * ``noisy``: the labels as given;
    * ``remove``: without the flagged rows;
    * ``relabel``: with the flagged rows relabelled by the out-of-fold prediction;
    * ``random_removal``: without as many rows chosen at random (the baseline cleaning must beat);
    * ``oracle``: the clean labels (the ceiling).

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> X, y = load_iris(return_X_y=True)
    >>> out = compare_cleaning(X[::2], y[::2], symmetric_noise(y[::2], 0.2, seed=0), X[1::2], y[1::2])
    >>> out["recall"] > 0.5, out["acc_remove"] >= out["acc_random_removal"]
    (True, True)
    """
    from sklearn.base import clone

    y, k = _check_labels(y_clean)
    X = np.asarray(X)
    labels, flipped = noisy
    if np.asarray(labels).shape != y.shape or np.asarray(flipped).shape != y.shape:
        raise ValueError("noisy labels and mask must have one entry per row of X")
    estimator = estimator if estimator is not None else default_classifier()
    rng = _rng(seed)
    proba = out_of_fold_proba(X, labels, estimator, n_splits=n_splits, n_classes=k, seed=rng)
    issues = find_label_issues(labels, proba)
    scores = detection_scores(issues, np.asarray(flipped, dtype=bool))
    y_test = np.asarray(y_test)
    training = {
        "noisy": (X, np.asarray(labels)),
        "remove": clean_labels(X, labels, issues),
        "relabel": clean_labels(X, labels, issues, strategy="relabel", proba=proba),
        "random_removal": clean_labels(X, labels, random_mask(y.size, int(issues.sum()), seed=rng)),
        "oracle": (X, y),
    }
    out = {"true_rate": float(np.mean(flipped)), "estimated_rate": estimated_noise_rate(labels, proba),
           "flagged": scores["flagged"], "precision": scores["precision"], "recall": scores["recall"]}
    with _one_thread():
        for name, (Xa, ya) in training.items():
            model = _fit_quiet(clone(estimator), Xa, ya)
            out[f"acc_{name}"] = float(np.mean(model.predict(np.asarray(X_test)) == y_test))
    return out


# --------------------------------------------------------------------------------------------
# The budget decision: one hour of cleaning vs one day of collecting
# --------------------------------------------------------------------------------------------
class MarginalValue(NamedTuple):
    """Accuracy gained per hour of work, by option (fractions: 0.01 = one accuracy point)."""

    clean_per_hour: float
    collect_per_hour: float


def _check_positive(value: Any, name: str, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return v


def marginal_value(accuracy: Callable[[float, float], float], *, n: float, rate: float,
                   reviewed_per_hour: float, review_precision: float, collected_per_day: float,
                   new_label_rate: float, hours_per_day: float = 8.0) -> MarginalValue:
    """Accuracy bought per hour by one hour of cleaning versus one day of collecting.

    The model, stated so that it can be argued with:

    * **cleaning** — a reviewer checks ``reviewed_per_hour`` labels from the cleaner's queue in one
      hour; a share ``review_precision`` of them are wrong and get fixed (never more than the
      ``n * rate`` errors that exist). The set keeps its size; its noise rate drops to
      ``(n*rate - fixed) / n``. Gain = ``accuracy(n, new rate) - accuracy(n, rate)``.
    * **collecting** — one day brings ``collected_per_day`` new labels with noise
      ``new_label_rate``; the set grows to ``n + collected`` with noise
      ``(n*rate + collected*new_label_rate) / (n + collected)``. Gain per hour = that day's gain
      divided by ``hours_per_day``.

    Parameters
    ----------
    accuracy : callable ``(n, rate) -> accuracy``
        Usually an :class:`AccuracySurface` built from the measured learning curves.
    n : current training-set size; rate : its current noise rate.
    reviewed_per_hour : labels one reviewer checks per hour.
    review_precision : share of reviewed labels that are wrong (the cleaner's precision at that depth).
    collected_per_day, new_label_rate : what one day of collection delivers, and how noisy it is.
    hours_per_day : working hours in that day.

    Examples
    --------
    >>> acc = lambda n, r: 0.95 - 20 / n - 0.5 * r
    >>> mv = marginal_value(acc, n=500, rate=0.3, reviewed_per_hour=100, review_precision=0.8,
    ...                     collected_per_day=400, new_label_rate=0.3)
    >>> round(mv.clean_per_hour, 4), round(mv.collect_per_hour, 4)
    (0.08, 0.0022)
    """
    if not callable(accuracy):
        raise ValueError("accuracy must be a function (n, rate) -> accuracy, e.g. an AccuracySurface")
    n = _check_positive(n, "n")
    rate = _check_rate(rate)
    reviewed = _check_positive(reviewed_per_hour, "reviewed_per_hour", allow_zero=True)
    precision = _check_rate(review_precision, "review_precision")
    collected = _check_positive(collected_per_day, "collected_per_day", allow_zero=True)
    new_rate = _check_rate(new_label_rate, "new_label_rate")
    hours = _check_positive(hours_per_day, "hours_per_day")
    now = accuracy(n, rate)
    errors = n * rate
    fixed = min(errors, reviewed * precision)
    clean = accuracy(n, (errors - fixed) / n) - now
    grown = n + collected
    collect = (accuracy(grown, (errors + collected * new_rate) / grown) - now) / hours
    return MarginalValue(float(clean), float(collect))


def recommend(value: MarginalValue | Sequence[float], *, reviewer_cost_per_hour: float,
              collection_cost_per_hour: float, value_per_point: float) -> str:
    """Decide: ``"clean"``, ``"collect"`` or ``"stop"``.

    Each option's net value per hour = accuracy points gained per hour x ``value_per_point``
    (dollars one accuracy point is worth) - its cost per hour. Pick the option with the larger net
    value (ties go to ``"clean"``: it is reversible and needs no vendor); if neither is positive,
    ``"stop"``: more data work does not pay.

    Examples
    --------
    >>> recommend(MarginalValue(0.004, 0.001), reviewer_cost_per_hour=40, collection_cost_per_hour=25,
    ...           value_per_point=200)
    'clean'
    >>> recommend((0.0001, 0.0001), reviewer_cost_per_hour=40, collection_cost_per_hour=25, value_per_point=200)
    'stop'
    """
    try:
        clean, collect = (float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise ValueError("value must be a MarginalValue or a pair (clean_per_hour, collect_per_hour)") from exc
    if not (math.isfinite(clean) and math.isfinite(collect)):
        raise ValueError("marginal values must be finite")
    c_cost = _check_positive(reviewer_cost_per_hour, "reviewer_cost_per_hour", allow_zero=True)
    k_cost = _check_positive(collection_cost_per_hour, "collection_cost_per_hour", allow_zero=True)
    worth = _check_positive(value_per_point, "value_per_point", allow_zero=True)
    net_clean = clean * 100 * worth - c_cost
    net_collect = collect * 100 * worth - k_cost
    if max(net_clean, net_collect) <= 0:
        return "stop"
    return "clean" if net_clean >= net_collect else "collect"


def flip_rate(accuracy: Callable[[float, float], float], *, n: float, rates: Sequence[float] | None = None,
              **budget: float) -> tuple[pd.DataFrame, float | None]:
    """Marginal value of cleaning and of collecting over a range of current noise rates, and the
    lowest rate at which one hour of cleaning buys more accuracy (and some accuracy) than one day of
    collecting does per hour.

    ``budget`` holds the other arguments of :func:`marginal_value` (``reviewed_per_hour``,
    ``review_precision``, ``collected_per_day``, ``new_label_rate``, ``hours_per_day``).

    Returns
    -------
    (pandas.DataFrame, float or None)
        Columns ``rate``, ``clean_per_hour``, ``collect_per_hour``; and the flip rate (``None`` if
        cleaning never wins in the range).

    Examples
    --------
    >>> acc = lambda n, r: 0.95 - 20 / n - 0.5 * r
    >>> table, flip = flip_rate(acc, n=500, rates=np.linspace(0, 0.5, 51), reviewed_per_hour=100,
    ...                         review_precision=0.8, collected_per_day=400, new_label_rate=0.05)
    >>> round(flip, 2)
    0.01
    """
    if rates is None:
        top = float(getattr(accuracy, "rates", np.array([0.0, 0.5]))[-1])
        rates = np.linspace(0.0, top, 51)
    rows = []
    for r in rates:
        mv = marginal_value(accuracy, n=n, rate=float(r), **budget)
        rows.append({"rate": float(r), "clean_per_hour": mv.clean_per_hour, "collect_per_hour": mv.collect_per_hour})
    table = pd.DataFrame(rows)
    wins = table[(table["clean_per_hour"] > table["collect_per_hour"]) & (table["clean_per_hour"] > 0)]
    return table, (float(wins["rate"].iloc[0]) if len(wins) else None)


# --------------------------------------------------------------------------------------------
# Ticket intents through the embedder (in-process cache only)
# --------------------------------------------------------------------------------------------
_EMBED_CACHE: dict[tuple[str, int, str], np.ndarray] = {}


class _torch_threads_for_load:
    """Run torch with one intra-op thread while the machine is oversubscribed, then restore.

    When the 1-minute load average already reaches the core count (a shared CI box, or nbgrader
    grading two notebooks at once on two cores), extra torch threads only fight for the same cores:
    measured on the kit's 2-core reference machine at load ~11, MiniLM embedded 200 tickets in 14 s
    with one thread and 27-37 s with two. On an idle machine nothing changes.
    """

    def __enter__(self):
        import os

        import torch

        self.before = torch.get_num_threads()
        try:
            busy = os.getloadavg()[0] >= (os.cpu_count() or 1)
        except OSError:  # getloadavg is not available everywhere (Windows)
            busy = False
        if busy and self.before > 1:
            torch.set_num_threads(1)
        return self

    def __exit__(self, *exc):
        import torch

        torch.set_num_threads(self.before)
        return False


def embed_texts(texts: Sequence[str], embedder=None, *, progress: bool = False) -> np.ndarray:
    """MiniLM embeddings of ``texts``, cached in this process (never on disk).

    The second call with the same texts and embedder returns at once, so a notebook can rebuild its
    features freely. Pass an :class:`tradeoffs.models.Embedder`; by default one is loaded on the CPU.

    Examples
    --------
    >>> embed_texts(["refund please", "where is my parcel"]).shape   # doctest: +SKIP
    (2, 384)
    """
    import hashlib

    texts = list(texts)
    if not all(isinstance(t, str) for t in texts):
        raise TypeError("embed_texts takes a sequence of strings")
    if embedder is None:
        from .models import load_embedder

        embedder = load_embedder("cpu")
    digest = hashlib.sha256("\x1f".join(texts).encode("utf-8")).hexdigest()
    key = (str(getattr(embedder, "name", "embedder")), len(texts), digest)
    if key not in _EMBED_CACHE:
        with _torch_threads_for_load():
            _EMBED_CACHE[key] = embedder.encode(texts, progress=progress)
    return _EMBED_CACHE[key].copy()


class TicketFeatures(NamedTuple):
    """Support-ticket intents as MiniLM embeddings: a training pool and a clean test set."""

    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    intents: tuple[str, ...]


def _stratified_take(labels: np.ndarray, size: int | None, rng: np.random.Generator) -> np.ndarray:
    idx = np.arange(labels.size)
    if size is None or size >= labels.size:
        return idx
    from sklearn.model_selection import train_test_split

    taken, _ = train_test_split(idx, train_size=int(size), stratify=labels,
                                random_state=int(rng.integers(2**31 - 1)))
    return np.sort(taken)


def load_ticket_features(embedder=None, *, pool_size: int | None = None, test_size: int | None = None,
                         seed: SeedLike = 0, progress: bool = False) -> TicketFeatures:
    """The kit's support tickets (``tradeoffs.data.load_tickets``) embedded with MiniLM.

    The training pool is the ``train`` and ``validation`` splits, the test set the ``test`` split;
    labels are indices into ``tradeoffs.data.INTENTS``. ``pool_size`` / ``test_size`` take a
    stratified subsample (smoke runs). Embeddings are cached in this process only.

    Examples
    --------
    >>> t = load_ticket_features(pool_size=80, test_size=40)      # doctest: +SKIP
    >>> t.X.shape, len(t.intents)                                   # doctest: +SKIP
    ((80, 384), 8)
    """
    from . import data

    if not hasattr(data, "load_tickets"):
        raise RuntimeError("tradeoffs.data.load_tickets is not available in this version of the kit; "
                           "update the kit (git pull && make install) to get the support-ticket data set")
    intents = tuple(data.INTENTS)
    frame = data.load_tickets()
    code = {name: i for i, name in enumerate(intents)}
    labels = frame["intent"].map(code)
    if labels.isna().any():
        raise ValueError(f"tickets carry intents outside INTENTS: {sorted(set(frame['intent'][labels.isna()]))}")
    labels = labels.to_numpy(np.int64)
    rng = _rng(seed)
    is_test = (frame["split"] == "test").to_numpy()
    pool_rows = np.flatnonzero(~is_test)[_stratified_take(labels[~is_test], pool_size, rng)]
    test_rows = np.flatnonzero(is_test)[_stratified_take(labels[is_test], test_size, rng)]
    texts = frame["text"].tolist()
    vectors = embed_texts([texts[i] for i in np.r_[pool_rows, test_rows]], embedder, progress=progress)
    return TicketFeatures(vectors[: pool_rows.size], labels[pool_rows], vectors[pool_rows.size:],
                          labels[test_rows], intents)


def confusable_pairs(y: Any, proba: Any, n_pairs: int = 2) -> list[tuple[int, int]]:
    """The ``n_pairs`` disjoint class pairs a model confuses most (out-of-fold confusion, both ways).

    Use it to build realistic class-conditional noise where no one has said which classes are
    confusable: annotators confuse what models confuse.

    Examples
    --------
    >>> y = np.array([0, 0, 1, 1, 2, 2])
    >>> p = np.array([[.6, .4, 0], [.9, .1, 0], [.45, .55, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1]])
    >>> confusable_pairs(y, p, n_pairs=1)
    [(0, 1)]
    """
    labels, k = _check_labels(y)
    p = _check_proba(proba, labels.size, k)
    k = p.shape[1]
    if not isinstance(n_pairs, (int, np.integer)) or not 1 <= n_pairs <= k // 2:
        raise ValueError(f"n_pairs must be an integer in [1, {k // 2}] for {k} classes, got {n_pairs!r}")
    mass = np.zeros((k, k))
    np.add.at(mass, labels, p)
    both = mass + mass.T
    np.fill_diagonal(both, -np.inf)
    chosen: list[tuple[int, int]] = []
    used: set[int] = set()
    for flat in np.argsort(-both, axis=None, kind="stable"):
        a, b = divmod(int(flat), k)
        if a < b and a not in used and b not in used:
            chosen.append((a, b))
            used.update((a, b))
            if len(chosen) == n_pairs:
                break
    return chosen
