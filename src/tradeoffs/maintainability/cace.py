"""CACE — "Changing Anything Changes Everything" (Sculley et al., "Hidden Technical Debt in Machine
Learning Systems", NeurIPS 2015): the upstream changes a feature column really goes through, and a
sweep that applies each of them to each feature for each model.

What a change does to a model (how many predictions flip, how much accuracy it costs) is measured by
a function the caller passes to :func:`cace_sweep`: in Lab 2, the learner's own.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from ._checks import _as_2d, _check_same_length, _check_seed, _predictor

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


Measure = Callable[[Callable[[np.ndarray], np.ndarray], np.ndarray, np.ndarray, int,
                    Callable[[np.ndarray], np.ndarray]], tuple[float, float]]


def _returns(column: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """A ``column -> new column`` function that hands back (a copy of) a column computed in advance."""
    def transform(_old: np.ndarray) -> np.ndarray:
        return column.copy()

    return transform


def cace_sweep(models: Mapping[str, Any], X, y, measure: Measure, *,
               perturbations: Sequence[Perturbation] | None = None, X_ref=None,
               features: Sequence[int] | None = None, feature_names: Sequence[str] | None = None,
               seed: int = 0, progress: bool = False) -> pd.DataFrame:
    """Run ``measure`` for every model x feature x upstream change.

    For each feature ``j`` and perturbation, the sweep draws the column as the models saw it until
    now (``before``; for a changed missing-value fill it carries the old fill) and as it arrives
    after the change (``after``), builds ``X_before`` (``X`` with column ``j`` = ``before``) and
    calls, for every model, ``measure(model.predict, X_before_copy, y, j, transform)`` where
    ``transform`` returns the ``after`` column. Every model sees exactly the same rows (the random
    draws depend on the seed, the feature and the perturbation, never on the model), and each call
    gets its own copy of ``X_before``.

    Parameters
    ----------
    models : mapping name -> fitted model (anything with ``predict``, or a function ``X -> labels``)
    X, y : test rows and labels
    measure : callable
        ``measure(predict, X, y, feature, transform) -> (flip_rate, accuracy_drop)``.
    perturbations : sequence of Perturbation, optional
        Default :func:`upstream_perturbations`.
    X_ref : array-like, optional
        Reference data for the perturbations' statistics (quantiles, mean, sd): the training set.
        Defaults to ``X``.
    features : sequence of int, optional
        Column indices to change (default: all).
    feature_names : sequence of str, optional
        One name per column of ``X``.

    Returns
    -------
    pandas.DataFrame
        One row per (model, feature, perturbation): ``model``, ``feature``, ``feature_index``,
        ``perturbation``, ``flip_rate``, ``accuracy_drop`` (what ``measure`` returned).

    Examples
    --------
    >>> def values_changed(predict, X, y, feature, transform):  # a stand-in: share of the column changed
    ...     return float(np.mean(transform(X[:, feature]) != X[:, feature])), 0.0
    >>> X = np.random.default_rng(0).normal(size=(50, 3)); y = (X[:, 0] > 0).astype(int)
    >>> df = cace_sweep({"first": lambda Z: (Z[:, 0] > 0).astype(int)}, X, y, values_changed)
    >>> df.shape, df.groupby("perturbation", sort=False)["flip_rate"].mean().round(2).tolist()
    ((12, 6), [1.0, 0.12, 0.1, 1.0])
    """
    if not models:
        raise ValueError("models is empty; pass a dict name -> fitted model")
    if not callable(measure):
        raise TypeError("measure must be a function (predict, X, y, feature, transform) -> (flip_rate, accuracy_drop)")
    X = _as_2d(X, "X")
    y = np.asarray(y)
    _check_same_length(X=X, y=y)
    ref = X if X_ref is None else _as_2d(X_ref, "X_ref")
    if ref.shape[1] != X.shape[1]:
        raise ValueError(f"X_ref has {ref.shape[1]} features but X has {X.shape[1]}")
    perturbations = list(perturbations) if perturbations is not None else upstream_perturbations()
    if not perturbations:
        raise ValueError("perturbations is empty")
    features = list(range(X.shape[1])) if features is None else [int(f) for f in features]
    bad = [j for j in features if not 0 <= j < X.shape[1]]
    if bad:
        raise ValueError(f"features {bad} are not column indices of X (0 to {X.shape[1] - 1})")
    if feature_names is None:
        feature_names = [f"x{j}" for j in range(X.shape[1])]
    if len(feature_names) != X.shape[1]:
        raise ValueError(f"feature_names has {len(feature_names)} names but X has {X.shape[1]} columns")
    _check_seed(seed)
    predictors = {name: _predictor(model) for name, model in models.items()}
    jobs = list(itertools.product(features, range(len(perturbations))))
    if progress:
        from tqdm.auto import tqdm

        jobs = tqdm(jobs, desc="CACE (feature x change)", leave=False)
    rows = []
    for j, k in jobs:
        # the same draw for every model: the generator's seed depends on (seed, feature, perturbation)
        rng = np.random.default_rng(int(np.random.default_rng([seed, j, k]).integers(2**31)))
        before, after = perturbations[k](X[:, j], ref[:, j], rng)
        X_before = X.copy()
        X_before[:, j] = before
        for name, predict in predictors.items():
            result = measure(predict, X_before.copy(), y, j, _returns(after))
            try:
                flip_rate, accuracy_drop = (float(v) for v in result)
            except (TypeError, ValueError):
                raise TypeError(f"measure must return the tuple (flip_rate, accuracy_drop), got {result!r}") from None
            rows.append({"model": name, "feature": feature_names[j], "feature_index": j,
                         "perturbation": perturbations[k].name, "flip_rate": flip_rate,
                         "accuracy_drop": accuracy_drop})
    return pd.DataFrame(rows)
