"""Retraining as upstream really does it: another seed, or 1% of the training rows replaced, or one
extra input column. These functions train and predict; how much the predictions moved is what the
lab measures (prediction churn: Milani Fard, Cormier, Canini & Gupta, "Launch and Iterate: Reducing
Prediction Churn", NeurIPS 2016).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np

from ._checks import _as_1d, _as_2d, _check_same_length, _check_seed, _predictor
from .ladder import make_logistic  # noqa: F401  (used by the examples)


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


CHURN_KINDS = ("seed", "rows", "identical")


def retrain_predictions(factory: Callable[[int], Any], X_train, y_train, X_test, *, kind: str = "seed",
                        n_retrains: int = 3, fraction: float = 0.01, seed: int = 0, X_pool=None, y_pool=None,
                        reference=None, progress: bool = False) -> np.ndarray:
    """Retrain a model ``n_retrains`` times and return every model's test predictions.

    Parameters
    ----------
    factory : callable
        ``factory(seed)`` returns a new unfitted estimator (a :class:`ModelSpec` works; for a plain
        estimator use ``lambda s: with_seed(est, s)``).
    kind : {"seed", "rows", "identical"}
        ``"seed"``: same data, seeds ``seed+1 ... seed+n_retrains``. ``"rows"``: same seed, ``fraction``
        of the training rows changed (see :func:`perturb_rows`; another draw per retrain).
        ``"identical"``: same seed, same data — a reproducibility check.
    n_retrains : int
        Retrains after the reference model (fitted with ``seed`` on the unchanged data).
    X_pool, y_pool : array-like, optional
        Where ``"rows"`` draws its replacement rows (e.g. the validation set); see :func:`perturb_rows`.
    reference : fitted estimator, optional
        The reference model, if it is already fitted (``factory(seed)`` on ``X_train``); saves a fit.

    Returns
    -------
    np.ndarray
        ``(1 + n_retrains, n_test)`` predictions; row 0 is the reference model, row ``i`` retrain ``i``.

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> X, y = make_classification(200, 5, random_state=0)
    >>> P = retrain_predictions(make_logistic, X[:150], y[:150], X[150:], kind="identical", n_retrains=2)
    >>> P.shape, bool((P == P[0]).all())
    ((3, 50), True)
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
    return np.vstack(preds)


# --------------------------------------------------------------------------------------------
# Entanglement: add one feature, retrain with the same seed
# --------------------------------------------------------------------------------------------
@dataclass
class EntanglementResult:
    """Predictions of the same model trained without and with one extra feature.

    Attributes
    ----------
    predictions_before, predictions_after : np.ndarray
        Test predictions of the model without and with the extra feature (same seed). How many
        differ is the entanglement; the lab measures it with the learner's churn function.
    accuracy_before, accuracy_after : float or None
    """

    predictions_before: np.ndarray
    predictions_after: np.ndarray
    accuracy_before: float | None = None
    accuracy_after: float | None = None


def entanglement_test(factory: Callable[[int], Any], X_train, y_train, X_test, *, y_test=None,
                      new_train=None, new_test=None, seed: int = 0, reference=None) -> EntanglementResult:
    """Train the same model (same seed) without and with one extra feature; return both predictions.

    With no ``new_train``/``new_test`` the extra feature is pure noise (standard normal, drawn from
    ``seed``): it carries no information, so every changed prediction is entanglement. Pass the
    already fitted ``reference`` (``factory(seed)`` on ``X_train``) to save a fit.

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> X, y = make_classification(300, 5, random_state=0)
    >>> r = entanglement_test(make_logistic, X[:200], y[:200], X[200:], y_test=y[200:])
    >>> r.predictions_before.shape, r.predictions_after.shape
    ((100,), (100,))
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
    return EntanglementResult(before, after, acc_b, acc_a)
