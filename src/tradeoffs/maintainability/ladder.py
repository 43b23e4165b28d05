"""The model ladder of Lab 2: the same task at four levels of complexity, and how to run them.

Examples
--------
>>> list(model_ladder())
['logistic', 'gradient_boosting', 'mlp', 'stacked']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ._checks import _check_seed

LADDER = ("logistic", "gradient_boosting", "mlp", "stacked")

# Constructor parameters that change how an estimator runs, not what it learns; not counted as
# hyperparameters. ``random_state`` is reported separately: retrain churn measures its effect.
NON_TUNING_PARAMS = frozenset({"verbose", "n_jobs", "memory", "copy", "copy_X", "warm_start",
                               "random_state", "transform_input"})


def make_logistic(seed: int = 0, *, fast: bool = False, C: float = 1.0, scaler: str = "standard"):
    """Scale the inputs, then L2-regularised logistic regression (the simple baseline).

    ``fast`` is accepted for a uniform signature; the model is already fast. ``C`` is the inverse
    regularisation strength (smaller = stronger L2, smaller weights). ``scaler`` chooses how the
    inputs are scaled: ``"standard"`` (mean 0, sd 1 with the training statistics: the ladder's
    model) or ``"quantile"`` (each feature mapped through its training quantiles to a normal
    distribution, so values beyond the training range land at its edge).

    Examples
    --------
    >>> make_logistic(0).steps[-1][0]
    'logisticregression'
    >>> make_logistic(0, C=0.01, scaler="quantile").steps[0][0]
    'quantiletransformer'
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import QuantileTransformer, StandardScaler

    if not np.isfinite(C) or C <= 0:
        raise ValueError(f"C must be a positive number (e.g. 1.0; smaller = stronger regularisation), got {C!r}")
    if scaler == "standard":
        scale = StandardScaler()
    elif scaler == "quantile":
        scale = QuantileTransformer(n_quantiles=100, output_distribution="normal", random_state=seed)
    else:
        raise ValueError(f"scaler must be 'standard' or 'quantile', got {scaler!r}")
    return make_pipeline(scale, LogisticRegression(C=float(C), max_iter=2000, random_state=seed))


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
        from .costs import source_lines

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


# --------------------------------------------------------------------------------------------
