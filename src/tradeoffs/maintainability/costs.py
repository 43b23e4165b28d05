"""What it costs to own a model, measured: training time, single-row latency (via
:func:`tradeoffs.measure.time_fn`), the size of the pickled model, its hyperparameters, the packages
and classes the artifact needs wherever it is loaded, and the lines of pipeline code.
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
from typing import Any, Callable

import numpy as np

from ..measure import Timing, time_fn
from ._checks import _as_2d, _predictor
from .ladder import NON_TUNING_PARAMS, ModelSpec, make_logistic  # noqa: F401  (make_logistic: examples)


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
