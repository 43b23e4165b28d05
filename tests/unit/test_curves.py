"""Unit tests for tradeoffs.curves: learning curves through a noise function you pass, the t interval,
saturation and the accuracy surface."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tradeoffs import curves
from tradeoffs.noise import uniform_label_noise


def _blobs(n_per_class=40, k=3, seed=0):
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(np.eye(k)[c] * 6.0, 0.4, size=(n_per_class, k)) for c in range(k)])
    return X, np.repeat(np.arange(k), n_per_class)


def _first_rows(labels, rate, seed=0, n_classes=10):
    """A deterministic stand-in injector: the first round(rate * n) rows move to the next class."""
    noisy = labels.copy()
    m = round(rate * len(labels))
    noisy[:m] = (noisy[:m] + 1) % n_classes
    return noisy, noisy != labels


def test_learning_curve_grid_shape_rates_and_noise_hurts():
    from tradeoffs.data import load_digits_split

    s = load_digits_split()
    kw = dict(sizes=[100, 400], rates=[0.0, 0.6], seeds=[0, 1], noise=_first_rows, noise_kwargs={"n_classes": 10})
    grid = curves.learning_curve_grid(s.X_train, s.y_train, s.X_test, s.y_test, **kw)
    assert list(grid.columns) == ["size", "rate", "seed", "realised_rate", "accuracy"]
    assert len(grid) == 8
    np.testing.assert_allclose(grid["realised_rate"], [round(r * n) / n for n, r in zip(grid["size"], grid["rate"])])
    assert grid["accuracy"].between(0, 1).all()
    summary = curves.summarize_grid(grid).set_index(["size", "rate"])["mean"]
    assert summary[(400.0, 0.0)] > summary[(400.0, 0.6)] + 0.1
    assert summary[(400.0, 0.0)] > summary[(100.0, 0.0)]
    pd.testing.assert_frame_equal(grid, curves.learning_curve_grid(s.X_train, s.y_train, s.X_test, s.y_test, **kw))


def test_learning_curve_grid_calls_the_noise_function_with_an_int_seed_keyed_on_the_cell():
    X, y = _blobs()
    calls = []

    def spy(labels, rate, seed, n_classes):
        calls.append((len(labels), rate, seed, n_classes))
        return labels.copy(), np.zeros(labels.size, bool)

    kw = dict(sizes=[30, 60], rates=[0.1, 0.2], seeds=[0], noise=spy, noise_kwargs={"n_classes": 3})
    g = curves.learning_curve_grid(X, y, X, y, **kw)
    assert [(n, r, k) for n, r, _, k in calls] == [(30, 0.1, 3), (30, 0.2, 3), (60, 0.1, 3), (60, 0.2, 3)]
    assert all(isinstance(s, int) for _, _, s, _ in calls) and len({s for *_, s, _ in calls}) == 4
    assert (g["realised_rate"] == 0).all()
    first = [s for _, _, s, _ in calls]
    calls.clear()
    curves.learning_curve_grid(X, y, X, y, **{**kw, "rates": [0.2]})
    assert [s for _, _, s, _ in calls] == [first[1], first[3]]  # same cell, same noise seed


def test_learning_curve_grid_explains_a_bad_noise_function():
    X, y = _blobs()
    with pytest.raises(ValueError, match="must return a pair"):
        curves.learning_curve_grid(X, y, X, y, sizes=[30], rates=[0.1], noise=lambda labels, rate, seed: labels)
    with pytest.raises(ValueError, match="boolean mask"):
        curves.learning_curve_grid(X, y, X, y, sizes=[30], rates=[0.1],
                                   noise=lambda labels, rate, seed: (labels, labels))
    with pytest.raises(NotImplementedError):  # a learner's stub passes through for needs() to name
        curves.learning_curve_grid(X, y, X, y, sizes=[30], rates=[0.1],
                                   noise=lambda labels, rate, seed: (_ for _ in ()).throw(NotImplementedError()))


@pytest.mark.parametrize("kwargs,match", [
    (dict(sizes=[50, 500], rates=[0.1]), "exceeds the pool"),
    (dict(sizes=[100, 50], rates=[0.1]), "increasing"),
    (dict(sizes=[50], rates=[1.5]), "rate"),
    (dict(sizes=[50], rates=[]), "at least one"),
    (dict(sizes=[50], rates=[0.1], noise="symmetric"), "noise must be a function"),
])
def test_learning_curve_grid_refuses_bad_arguments(kwargs, match):
    X, y = _blobs()
    kwargs = {"noise": uniform_label_noise, **kwargs}
    with pytest.raises(ValueError, match=match):
        curves.learning_curve_grid(X, y, X, y, **kwargs)


def test_t_quantile_and_summarize_grid():
    assert curves.t_quantile(8) == pytest.approx(2.3646, abs=1e-4)
    assert curves.t_quantile(2) == pytest.approx(12.706, abs=1e-3)
    assert math.isnan(curves.t_quantile(1))
    g = pd.DataFrame({"size": [10, 10, 10, 20], "rate": [0.0, 0.0, 0.0, 0.0], "seed": [0, 1, 2, 0],
                      "accuracy": [0.7, 0.8, 0.9, 0.95]})
    s = curves.summarize_grid(g)
    row = s[s["size"] == 10].iloc[0]
    assert row["mean"] == pytest.approx(0.8) and row["std"] == pytest.approx(0.1)
    assert row["sem"] == pytest.approx(0.1 / math.sqrt(3)) and row["n"] == 3
    assert row["ci95"] == pytest.approx(4.3027 * 0.1 / math.sqrt(3), rel=1e-4)
    assert math.isnan(s[s["size"] == 20].iloc[0]["ci95"])
    with pytest.raises(ValueError, match="columns"):
        curves.summarize_grid(pd.DataFrame({"size": [1]}))


def test_saturation_size():
    assert curves.saturation_size([100, 200, 400], [0.5, 0.6, 0.7]) is None
    assert curves.saturation_size([100, 200, 400], [0.5, 0.5, 0.4]) == 100.0
    assert curves.saturation_size([100, 200, 400, 800], [0.5, 0.8, 0.801, 0.9]) is None


def test_accuracy_surface_interpolates_and_refuses_to_extrapolate():
    surf = curves.AccuracySurface(np.array([100.0, 400.0, 1600.0]), np.array([0.0, 0.2, 0.4]),
                                  np.array([[0.8, 0.7, 0.6], [0.9, 0.8, 0.7], [0.95, 0.85, 0.75]]))
    assert surf(400, 0.2) == pytest.approx(0.8)
    assert surf(200, 0.0) == pytest.approx(0.85)  # halfway in log size
    assert surf(1600, 0.3) == pytest.approx(0.8)
    with pytest.raises(ValueError, match="outside the measured sizes"):
        surf(2000, 0.1)
    with pytest.raises(ValueError, match="outside the measured rates"):
        surf(400, 0.5)
    with pytest.raises(ValueError, match="shape"):
        curves.AccuracySurface(np.array([1.0, 2.0]), np.array([0.0, 0.1]), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="NaN"):
        curves.AccuracySurface(np.array([1.0, 2.0]), np.array([0.0, 0.1]), np.full((2, 2), np.nan))


def test_accuracy_surface_from_grid_is_monotone_in_rate_only_when_asked():
    g = pd.DataFrame({"size": [10, 10, 10, 20, 20, 20], "rate": [0.0, 0.2, 0.4] * 2,
                      "seed": 0, "accuracy": [0.6, 0.65, 0.5, 0.9, 0.8, 0.7]})
    mono = curves.AccuracySurface.from_grid(g)
    np.testing.assert_allclose(mono.accuracy, [[0.625, 0.625, 0.5], [0.9, 0.8, 0.7]])
    raw = curves.AccuracySurface.from_grid(g, monotone_in_rate=False)
    np.testing.assert_allclose(raw.accuracy, [[0.6, 0.65, 0.5], [0.9, 0.8, 0.7]])
