"""Learning curves: accuracy over training-set size x label-noise rate x seed, and what they say.

* :func:`learning_curve_grid` trains one model per (seed, size, rate) on labels made noisy by a noise
  function **you pass** (Lab 3: the learner's own injector), and scores it on clean test labels.
* :func:`summarize_grid` gives the mean over seeds with a 95% *t* interval (with 8 seeds the t quantile
  for 7 degrees of freedom is 2.36, not the 1.96 of the normal approximation).
* :func:`saturation_size` finds where a curve stops climbing; :class:`AccuracySurface` turns the
  measured grid into a function ``accuracy(n, rate)`` that refuses to extrapolate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from .noise import _check_labels, _check_rate, _fit_quiet, default_classifier
from .threads import limit_threads

#: ``noise(y, rate, seed=..., **noise_kwargs) -> (noisy_labels, flipped)``
NoiseFn = Callable[..., tuple]


def _noise_seed(seed: int, size: int, rate: float) -> int:
    """The seed handed to the noise function for one grid cell: keyed on (seed, size, rate value), so
    two grids with the same cell draw exactly the same noisy labels."""
    return int(np.random.default_rng([int(seed), int(size), int(round(rate * 1_000_000))]).integers(2**31 - 1))


def _checked_noise(noise: NoiseFn, y: np.ndarray, rate: float, seed: int,
                   kwargs: dict) -> tuple[np.ndarray, np.ndarray]:
    name = getattr(noise, "__name__", "the noise function")
    out = noise(y.copy(), rate, seed=seed, **kwargs)
    try:
        labels, flipped = out
    except (TypeError, ValueError):
        raise ValueError(f"{name} must return a pair (noisy_labels, flipped), got {type(out).__name__}") from None
    labels, flipped = np.asarray(labels), np.asarray(flipped)
    if labels.shape != y.shape or flipped.shape != y.shape or flipped.dtype != bool:
        raise ValueError(f"{name} must return noisy labels and a boolean mask, each of shape {y.shape}; "
                         f"got {labels.dtype}{labels.shape} and {flipped.dtype}{flipped.shape}")
    return labels.astype(np.int64), flipped


def learning_curve_grid(X: Any, y: Any, X_test: Any, y_test: Any, *, sizes: Sequence[int],
                        rates: Sequence[float], noise: NoiseFn, noise_kwargs: dict | None = None,
                        seeds: Sequence[int] = (0, 1, 2), estimator=None, n_classes: int | None = None,
                        progress: bool = False) -> pd.DataFrame:
    """Test accuracy over training-set size x noise rate x seed: learning curves under label noise.

    For each seed the pool is shuffled once and a training set of size ``n`` is its first ``n`` rows
    (so a bigger set contains the smaller one, as when you collect more). Each training set's labels
    go through ``noise(labels, rate, seed=..., **noise_kwargs)``, which returns ``(noisy_labels,
    flipped)``; the model is fitted on the noisy labels and scored on the **clean** test labels.

    Parameters
    ----------
    X, y : the training pool (clean labels).
    X_test, y_test : the held-out set, clean.
    sizes : increasing training-set sizes, each <= len(y).
    rates : noise rates in [0, 1].
    noise : callable
        The noise injector, called as ``noise(labels, rate, seed=int, **noise_kwargs)``.
    noise_kwargs : dict, optional
        Extra keyword arguments for ``noise`` (e.g. ``{"n_classes": 10}``).
    seeds : one curve per seed (sampling and noise both follow it).
    estimator : scikit-learn classifier, optional (default :func:`tradeoffs.noise.default_classifier`).
    progress : show a tqdm bar.

    Returns
    -------
    pandas.DataFrame
        One row per fit: ``size``, ``rate``, ``seed``, ``realised_rate``, ``accuracy``.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from tradeoffs.noise import uniform_label_noise
    >>> X, y = load_iris(return_X_y=True)
    >>> grid = learning_curve_grid(X[::2], y[::2], X[1::2], y[1::2], sizes=[30, 75], rates=[0, 0.4],
    ...                            noise=uniform_label_noise, noise_kwargs={"n_classes": 3}, seeds=[0])
    >>> grid[["size", "rate"]].values.tolist()
    [[30.0, 0.0], [30.0, 0.4], [75.0, 0.0], [75.0, 0.4]]
    """
    from sklearn.base import clone

    from .noise import _rng

    if not callable(noise):
        raise ValueError("noise must be a function (labels, rate, seed=...) -> (noisy_labels, flipped), "
                         f"e.g. your injector; got {noise!r}")
    kwargs = dict(noise_kwargs or {})
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
    estimator = estimator if estimator is not None else default_classifier()
    total = len(seeds) * len(sizes) * len(rates)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="learning curves", unit="fit")
    rows = []
    with limit_threads(1):
        for seed in seeds:
            order = _rng(seed).permutation(labels.size)
            for size in sizes:
                idx = order[:size]
                for rate in rates:
                    noisy, flipped = _checked_noise(noise, labels[idx], rate, _noise_seed(seed, size, rate), kwargs)
                    if np.unique(noisy).size < 2:
                        acc = float(np.mean(test_labels == noisy[0]))
                    else:
                        model = _fit_quiet(clone(estimator), X[idx], noisy)
                        acc = float(np.mean(model.predict(X_test) == test_labels))
                    rows.append({"size": size, "rate": rate, "seed": seed,
                                 "realised_rate": float(flipped.mean()), "accuracy": acc})
                    if bar is not None:
                        bar.update(1)
    if bar is not None:
        bar.close()
    frame = pd.DataFrame(rows)
    frame["size"] = frame["size"].astype(float)
    return frame


def t_quantile(n: int, confidence: float = 0.95) -> float:
    """The two-sided Student-t quantile for a mean over ``n`` values (``n - 1`` degrees of freedom).

    Use it instead of 1.96 when the mean is over a handful of seeds; NaN for ``n < 2``.

    Examples
    --------
    >>> round(t_quantile(8), 2), round(t_quantile(1000), 2)
    (2.36, 1.96)
    """
    from scipy.stats import t

    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    return float(t.ppf(0.5 + confidence / 2, int(n) - 1)) if n >= 2 else float("nan")


def summarize_grid(grid: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard deviation, standard error, count and 95% t half-width of accuracy per (size, rate).

    ``ci95`` = :func:`t_quantile` (n) x ``sem``: the half-width of a 95% confidence interval of the mean
    over ``n`` seeds (NaN with a single seed).

    Examples
    --------
    >>> g = pd.DataFrame({"size": [10, 10], "rate": [0.0, 0.0], "seed": [0, 1], "accuracy": [0.8, 0.9]})
    >>> summarize_grid(g)[["mean", "n", "ci95"]].round(3).values.tolist()
    [[0.85, 2.0, 0.635]]
    """
    missing = {"size", "rate", "accuracy"} - set(grid.columns)
    if missing:
        raise ValueError(f"grid lacks columns {sorted(missing)}; pass the output of learning_curve_grid")
    out = grid.groupby(["size", "rate"])["accuracy"].agg(["mean", "std", "count"]).reset_index()
    out["std"] = out["std"].fillna(0.0)
    out["sem"] = out["std"] / np.sqrt(out["count"])
    out["ci95"] = [t_quantile(int(c)) * s for c, s in zip(out["count"], out["sem"])]
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
