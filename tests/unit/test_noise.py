"""Unit tests for tradeoffs.noise: injectors (exact rates, class structure, determinism, refusals),
the transition matrix, learning curves, confident learning on a planted case, and the budget maths."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tradeoffs import noise as nz


def _labels(n=600, k=10, seed=0):
    return np.random.default_rng(seed).integers(0, k, size=n)


def _blobs(n_per_class=100, k=3, seed=0, spread=0.4):
    """Well separated Gaussian blobs: the true class is obvious from the features."""
    rng = np.random.default_rng(seed)
    centres = np.eye(k) * 6.0
    X = np.vstack([rng.normal(centres[c], spread, size=(n_per_class, k)) for c in range(k)])
    y = np.repeat(np.arange(k), n_per_class)
    return X, y


# --------------------------------------------------------------------------------------------
# symmetric noise
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n,rate", [(1000, 0.3), (999, 0.1), (7, 0.5), (50, 0.0), (50, 1.0), (123, 0.37)])
def test_symmetric_flips_exactly_round_rate_times_n(n, rate):
    y = _labels(n)
    noisy, flipped = nz.symmetric_noise(y, rate, n_classes=10, seed=3)
    assert flipped.sum() == round(rate * n)
    assert np.array_equal(flipped, noisy != y)  # a flip always changes the label
    assert noisy.min() >= 0 and noisy.max() < 10
    assert noisy.dtype == np.int64 and flipped.dtype == bool


def test_symmetric_property_many_random_cases():
    rng = np.random.default_rng(42)
    for _ in range(200):
        n = int(rng.integers(1, 400))
        k = int(rng.integers(2, 12))
        rate = float(rng.random())
        y = rng.integers(0, k, size=n)
        res = nz.symmetric_noise(y, rate, n_classes=k, seed=int(rng.integers(1000)))
        assert res.flipped.sum() == round(rate * n)
        assert np.array_equal(res.flipped, res.labels != y)
        assert res.rate == pytest.approx(round(rate * n) / n)
        assert res.labels.max() < k


def test_symmetric_is_deterministic_for_a_seed_and_varies_across_seeds():
    y = _labels(500)
    a = nz.symmetric_noise(y, 0.2, seed=7)
    b = nz.symmetric_noise(y, 0.2, seed=7)
    c = nz.symmetric_noise(y, 0.2, seed=8)
    assert np.array_equal(a.labels, b.labels) and np.array_equal(a.flipped, b.flipped)
    assert not np.array_equal(a.flipped, c.flipped)
    g1 = nz.symmetric_noise(y, 0.2, seed=np.random.default_rng(5))
    g2 = nz.symmetric_noise(y, 0.2, seed=np.random.default_rng(5))
    assert np.array_equal(g1.labels, g2.labels)


def test_symmetric_does_not_modify_its_input():
    y = _labels(100)
    before = y.copy()
    nz.symmetric_noise(y, 0.5, seed=0)
    assert np.array_equal(y, before)


def test_symmetric_targets_are_uniform_over_other_classes_and_classes_hit_evenly():
    k = 5
    y = np.repeat(np.arange(k), 4000)
    noisy, flipped = nz.symmetric_noise(y, 0.3, n_classes=k, seed=1)
    # each class loses about 30 % of its rows
    per_class = np.array([flipped[y == c].mean() for c in range(k)])
    assert np.all(np.abs(per_class - 0.3) < 0.03)
    # a flipped 0 becomes 1, 2, 3 or 4 with equal chance (1/4 each)
    targets = np.bincount(noisy[flipped & (y == 0)], minlength=k)
    assert targets[0] == 0
    shares = targets[1:] / targets[1:].sum()
    assert np.all(np.abs(shares - 0.25) < 0.05)


def test_symmetric_uses_n_classes_for_unseen_classes():
    y = np.zeros(400, dtype=int)
    noisy, _ = nz.symmetric_noise(y, 1.0, n_classes=4, seed=0)
    assert set(np.unique(noisy)) == {1, 2, 3}


@pytest.mark.parametrize("rate", [-0.1, 1.01, float("nan"), float("inf"), True, "0.2", None])
def test_symmetric_refuses_impossible_rates(rate):
    with pytest.raises(ValueError, match="rate"):
        nz.symmetric_noise(_labels(10), rate)


def test_percentage_instead_of_fraction_gets_a_hint():
    with pytest.raises(ValueError, match="fraction"):
        nz.symmetric_noise(_labels(10), 30)


@pytest.mark.parametrize("y,match", [
    (np.zeros((3, 2), dtype=int), "1-D"),
    (np.array([], dtype=int), "empty"),
    (np.array([0.5, 1.0]), "integer"),
    (np.array([-1, 0, 1]), ">= 0"),
    (np.array(["a", "b"]), "LabelEncoder"),
    (np.array([True, False]), "integer"),
])
def test_symmetric_refuses_bad_labels(y, match):
    with pytest.raises(ValueError, match=match):
        nz.symmetric_noise(y, 0.5)


def test_symmetric_refuses_flips_with_one_class_and_a_too_small_n_classes():
    with pytest.raises(ValueError, match="single class"):
        nz.symmetric_noise(np.zeros(10, dtype=int), 0.5)
    with pytest.raises(ValueError, match="n_classes"):
        nz.symmetric_noise(np.array([0, 1, 5]), 0.5, n_classes=3)
    with pytest.raises(ValueError, match="seed"):
        nz.symmetric_noise(_labels(10), 0.5, seed=-1)


def test_float_labels_that_are_integers_are_accepted():
    noisy, flipped = nz.symmetric_noise(np.array([0.0, 1.0, 2.0, 1.0]), 0.5, seed=0)
    assert flipped.sum() == 2 and noisy.dtype == np.int64


# --------------------------------------------------------------------------------------------
# class-conditional noise and the transition matrix
# --------------------------------------------------------------------------------------------
def test_pair_transition_matrix_structure():
    t = nz.pair_transition_matrix(10, [(1, 7), (3, 8)], 0.2)
    assert t.shape == (10, 10)
    np.testing.assert_allclose(t.sum(1), 1.0)
    assert t[1, 7] == t[7, 1] == t[3, 8] == t[8, 3] == pytest.approx(0.2)
    assert t[1, 1] == t[7, 7] == pytest.approx(0.8)
    untouched = [c for c in range(10) if c not in (1, 7, 3, 8)]
    np.testing.assert_array_equal(t[np.ix_(untouched, untouched)], np.eye(len(untouched)))


@pytest.mark.parametrize("pairs,match", [
    ([(1, 7), (7, 3)], "more than one pair"),
    ([(2, 2)], "two different"),
    ([(1, 12)], "outside"),
    ([], "at least one"),
    ([(1, 2, 3)], "two different"),
])
def test_pair_transition_matrix_refuses_bad_pairs(pairs, match):
    with pytest.raises(ValueError, match=match):
        nz.pair_transition_matrix(10, pairs, 0.2)


def test_class_conditional_flips_only_within_pairs_with_exact_counts():
    y = np.repeat(np.arange(10), [30, 41, 25, 33, 20, 20, 20, 52, 18, 20])
    noisy, flipped = nz.class_conditional_noise(y, 0.3, pairs=[(1, 7), (3, 8)], seed=4)
    assert np.array_equal(flipped, noisy != y)
    for c, partner in [(1, 7), (7, 1), (3, 8), (8, 3)]:
        members = y == c
        assert flipped[members].sum() == round(0.3 * members.sum())
        assert np.all(noisy[members & flipped] == partner)
    for c in (0, 2, 4, 5, 6, 9):
        assert not flipped[y == c].any()
    realised = nz.noise_transition_matrix(y, noisy, n_classes=10)
    assert realised[1, 7] == pytest.approx(round(0.3 * 41) / 41)
    assert realised[0, 0] == 1.0


def test_class_conditional_is_deterministic_and_refuses_bad_rates():
    y = np.repeat(np.arange(10), 20)
    a = nz.class_conditional_noise(y, 0.4, seed=1)
    b = nz.class_conditional_noise(y, 0.4, seed=1)
    assert np.array_equal(a.labels, b.labels)
    for bad in (-0.2, 1.5, float("nan")):
        with pytest.raises(ValueError, match="rate"):
            nz.class_conditional_noise(y, bad)


def test_transition_noise_reproduces_the_matrix_when_counts_divide():
    y = np.repeat(np.arange(3), [40, 20, 60])
    T = np.array([[0.5, 0.25, 0.25], [0.0, 1.0, 0.0], [0.1, 0.4, 0.5]])
    noisy, flipped = nz.transition_noise(y, T, seed=0)
    np.testing.assert_allclose(nz.noise_transition_matrix(y, noisy), T)
    assert flipped.sum() == 20 + 0 + 30


def test_transition_noise_with_rounding_keeps_per_class_totals():
    y = np.repeat(np.arange(4), [7, 11, 13, 17])
    T = np.full((4, 4), 0.1) + np.eye(4) * 0.6  # 70 % stay, 10 % to each other class
    noisy, flipped = nz.transition_noise(y, T, seed=9)
    for c, n_c in enumerate([7, 11, 13, 17]):
        assert flipped[y == c].sum() == round(n_c * 0.3)
    identity = nz.transition_noise(y, np.eye(4), seed=0)
    assert not identity.flipped.any()


@pytest.mark.parametrize("T,match", [
    (np.ones((2, 3)) / 3, "square"),
    (np.array([[0.9, 0.2], [0.0, 1.0]]), "sum to 1"),
    (np.array([[1.2, -0.2], [0.0, 1.0]]), "non-negative"),
    (np.eye(1), "covers 1 classes"),
])
def test_transition_noise_refuses_bad_matrices(T, match):
    with pytest.raises(ValueError, match=match):
        nz.transition_noise(np.array([0, 1, 0]), T)


def test_noise_transition_matrix_known_answer_and_missing_class():
    t = nz.noise_transition_matrix([0, 0, 0, 0, 1, 1], [0, 0, 0, 1, 1, 0], n_classes=3)
    np.testing.assert_allclose(t[:2], [[0.75, 0.25, 0.0], [0.5, 0.5, 0.0]])
    assert np.all(np.isnan(t[2]))
    with pytest.raises(ValueError, match="length"):
        nz.noise_transition_matrix([0, 1], [0, 1, 1])


def test_noise_transition_matrix_of_symmetric_noise_is_flat_off_diagonal():
    k = 4
    y = np.repeat(np.arange(k), 3000)
    noisy, _ = nz.symmetric_noise(y, 0.4, n_classes=k, seed=2)
    t = nz.noise_transition_matrix(y, noisy)
    np.testing.assert_allclose(np.diag(t), 0.6, atol=0.03)
    off = t[~np.eye(k, dtype=bool)]
    np.testing.assert_allclose(off, 0.4 / (k - 1), atol=0.03)
    np.testing.assert_allclose(t.sum(1), 1.0)


# --------------------------------------------------------------------------------------------
# instance-dependent noise
# --------------------------------------------------------------------------------------------
def _easy_and_hard(n=1000, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    hard = np.arange(n) < n // 2
    proba = np.zeros((n, 3))
    proba[np.arange(n), y] = np.where(hard, 0.4, 0.99)
    other = (y + 1) % 3  # all the doubt goes to one confusable class
    proba[np.arange(n), other] = 1 - proba[np.arange(n), y]
    return y, proba, hard, other


def test_instance_dependent_flips_exact_count_and_prefers_hard_rows():
    y, proba, hard, other = _easy_and_hard()
    noisy, flipped = nz.instance_dependent_noise(y, 0.2, proba, seed=0)
    assert flipped.sum() == 200
    assert np.array_equal(flipped, noisy != y)
    # hardness 0.6 vs 0.01: about 98 % of flips land on hard rows
    assert flipped[hard].sum() / flipped.sum() > 0.9
    # a flipped label goes where the model's doubt is
    assert np.all(noisy[flipped] == other[flipped])


def test_instance_dependent_is_deterministic():
    y, proba, *_ = _easy_and_hard()
    a = nz.instance_dependent_noise(y, 0.3, proba, seed=5)
    b = nz.instance_dependent_noise(y, 0.3, proba, seed=5)
    assert np.array_equal(a.labels, b.labels)


def test_instance_dependent_refuses_rates_the_probabilities_cannot_support():
    y = np.array([0, 0, 1, 1])
    proba = np.array([[1.0, 0.0], [0.6, 0.4], [0.0, 1.0], [0.0, 1.0]])
    assert nz.instance_dependent_noise(y, 0.25, proba, seed=0).flipped.tolist() == [False, True, False, False]
    with pytest.raises(ValueError, match="only 1 of 4 rows"):
        nz.instance_dependent_noise(y, 0.5, proba, seed=0)


@pytest.mark.parametrize("proba,match", [
    (np.full((4, 2), 0.4), "sum to 1"),
    (np.full((3, 2), 0.5), "shape"),
    (np.array([[1.5, -0.5]] * 4), "non-negative"),
    (np.full((4, 1), 1.0), "columns"),
])
def test_instance_dependent_refuses_bad_probabilities(proba, match):
    with pytest.raises(ValueError, match=match):
        nz.instance_dependent_noise(np.array([0, 1, 0, 1]), 0.25, proba)


# --------------------------------------------------------------------------------------------
# out-of-fold probabilities, confident learning on a planted case, cleaning
# --------------------------------------------------------------------------------------------
def test_out_of_fold_proba_shape_and_columns_for_every_class():
    X, y = _blobs(30, k=3)
    p = nz.out_of_fold_proba(X, y, n_splits=3, n_classes=5, seed=0)
    assert p.shape == (90, 5)
    np.testing.assert_allclose(p.sum(1), 1.0)
    assert np.all(p[:, 3:] == 0)
    assert (p.argmax(1) == y).mean() > 0.95


def test_out_of_fold_proba_never_sees_the_row_it_scores():
    from sklearn.neighbors import KNeighborsClassifier

    X, y = _blobs(40, k=2)
    noisy, flipped = nz.symmetric_noise(y, 0.1, seed=0)
    p = nz.out_of_fold_proba(X, noisy, KNeighborsClassifier(1), n_splits=5, seed=0)
    # in-sample 1-NN would echo every noisy label back; out of fold it predicts the true class
    assert np.mean(p[flipped].argmax(1) == y[flipped]) >= 0.75
    in_sample = KNeighborsClassifier(1).fit(X, noisy).predict(X)
    assert np.all(in_sample[flipped] == noisy[flipped])


def test_out_of_fold_proba_handles_a_class_too_small_for_stratified_folds():
    X, y = _blobs(20, k=3)
    y = y.copy()
    y[0] = 3  # a class with a single row
    p = nz.out_of_fold_proba(X, y, n_splits=5, seed=0)
    assert p.shape == (60, 4) and np.allclose(p.sum(1), 1)


def test_out_of_fold_proba_refuses_bad_inputs():
    X, y = _blobs(10, k=2)
    with pytest.raises(ValueError, match="rows"):
        nz.out_of_fold_proba(X[:-1], y)
    with pytest.raises(ValueError, match="n_splits"):
        nz.out_of_fold_proba(X, y, n_splits=1)


def test_confident_learning_finds_planted_errors():
    X, y = _blobs(100, k=3, seed=1)
    noisy, flipped = nz.symmetric_noise(y, 0.1, seed=2)
    proba = nz.out_of_fold_proba(X, noisy, seed=0)
    issues = nz.find_label_issues(noisy, proba)
    scores = nz.detection_scores(issues, flipped)
    assert scores["flipped"] == 30
    assert scores["recall"] >= 0.9 and scores["precision"] >= 0.9
    quality = nz.label_quality(noisy, proba)
    assert quality[flipped].mean() < quality[~flipped].mean()
    assert nz.review_precision(quality, flipped, 30) >= 0.9


def test_cleaning_beats_random_removal_on_the_planted_case():
    X, y = _blobs(60, k=3, seed=3, spread=1.6)
    X_test, y_test = _blobs(60, k=3, seed=4, spread=1.6)
    from sklearn.neighbors import KNeighborsClassifier

    noisy, flipped = nz.symmetric_noise(y, 0.35, seed=1)
    proba = nz.out_of_fold_proba(X, noisy, seed=0)
    issues = nz.find_label_issues(noisy, proba)

    def accuracy(Xa, ya):
        return KNeighborsClassifier(1).fit(Xa, ya).score(X_test, y_test)

    cleaned = accuracy(*nz.clean_labels(X, noisy, issues))
    relabelled = accuracy(*nz.clean_labels(X, noisy, issues, strategy="relabel", proba=proba))
    randomly = accuracy(*nz.clean_labels(X, noisy, nz.random_mask(len(y), int(issues.sum()), seed=0)))
    assert cleaned > randomly + 0.1
    assert relabelled > randomly + 0.1


def test_estimated_noise_rate_tracks_the_planted_rate():
    X, y = _blobs(100, k=3, seed=5)
    for rate in (0.05, 0.2):
        noisy, _ = nz.symmetric_noise(y, rate, seed=1)
        est = nz.estimated_noise_rate(noisy, nz.out_of_fold_proba(X, noisy, seed=0))
        assert abs(est - rate) < 0.05
    clean_est = nz.estimated_noise_rate(y, nz.out_of_fold_proba(X, y, seed=0))
    assert clean_est < 0.02


def test_compare_cleaning_reports_every_arm():
    X, y = _blobs(60, k=3, seed=6, spread=1.6)
    X_test, y_test = _blobs(60, k=3, seed=7, spread=1.6)
    from sklearn.neighbors import KNeighborsClassifier

    noisy = nz.symmetric_noise(y, 0.3, seed=2)
    out = nz.compare_cleaning(X, y, noisy, X_test, y_test, estimator=KNeighborsClassifier(5), seed=0)
    assert set(out) == {"true_rate", "estimated_rate", "flagged", "precision", "recall", "acc_noisy",
                        "acc_remove", "acc_relabel", "acc_random_removal", "acc_oracle"}
    assert out["true_rate"] == pytest.approx(0.3)
    assert out["acc_oracle"] >= out["acc_noisy"] and out["acc_remove"] > out["acc_random_removal"]
    assert out == nz.compare_cleaning(X, y, noisy, X_test, y_test, estimator=KNeighborsClassifier(5), seed=0)
    with pytest.raises(ValueError, match="one entry per row"):
        nz.compare_cleaning(X, y, nz.NoisyLabels(noisy.labels[:-1], noisy.flipped[:-1]), X_test, y_test)


def test_clean_labels_and_random_mask_contracts():
    X = np.arange(8).reshape(4, 2)
    y = np.array([0, 1, 1, 0])
    mask = np.array([True, False, False, True])
    Xr, yr = nz.clean_labels(X, y, mask)
    assert Xr.shape == (2, 2) and yr.tolist() == [1, 1]
    with pytest.raises(ValueError, match="proba"):
        nz.clean_labels(X, y, mask, strategy="relabel")
    with pytest.raises(ValueError, match="strategy"):
        nz.clean_labels(X, y, mask, strategy="drop")
    with pytest.raises(ValueError, match="boolean"):
        nz.clean_labels(X, y, np.array([1, 0, 0, 1]))
    m = nz.random_mask(100, 17, seed=3)
    assert m.sum() == 17 and np.array_equal(m, nz.random_mask(100, 17, seed=3))
    with pytest.raises(ValueError):
        nz.random_mask(5, 6)


def test_detection_scores_known_answers_and_zero_division():
    flagged = np.array([True, True, True, False, False])
    flipped = np.array([True, False, False, True, False])
    s = nz.detection_scores(flagged, flipped)
    assert s["precision"] == pytest.approx(1 / 3) and s["recall"] == pytest.approx(0.5)
    assert s["f1"] == pytest.approx(2 * (1 / 3) * 0.5 / (1 / 3 + 0.5))
    none = nz.detection_scores(np.zeros(4, bool), np.zeros(4, bool))
    assert none["precision"] == 0.0 and none["recall"] == 0.0 and none["f1"] == 0.0
    with pytest.raises(ValueError, match="boolean"):
        nz.detection_scores([1, 0], [True, False])
    with pytest.raises(ValueError, match="same length"):
        nz.detection_scores(np.array([True]), np.array([True, False]))


def test_review_precision_orders_by_quality():
    q = np.array([0.5, 0.1, 0.9, 0.2])
    flipped = np.array([False, True, False, False])
    assert nz.review_precision(q, flipped, 1) == 1.0
    assert nz.review_precision(q, flipped, 2) == 0.5
    with pytest.raises(ValueError, match="k must"):
        nz.review_precision(q, flipped, 0)


def test_find_label_issues_validates_inputs():
    with pytest.raises(ValueError, match="sum to 1"):
        nz.find_label_issues(np.array([0, 1]), np.array([[0.5, 0.6], [0.5, 0.5]]))


def test_confusable_pairs_picks_the_most_confused_disjoint_pairs():
    y = np.repeat(np.arange(4), 10)
    p = np.zeros((40, 4))
    p[np.arange(40), y] = 0.7
    p[np.arange(40), [{0: 1, 1: 0, 2: 3, 3: 2}[c] for c in y]] = 0.3
    p[:10] = [0.6, 0.25, 0.15, 0.0]  # class 0 also doubts class 2 a little
    # 2<->3 carries 6.0 of confused probability, 0<->1 5.5, 0<->2 only 1.5; most confused first
    assert nz.confusable_pairs(y, p, n_pairs=2) == [(2, 3), (0, 1)]
    assert nz.confusable_pairs(y, p, n_pairs=1) == [(2, 3)]
    with pytest.raises(ValueError, match="n_pairs"):
        nz.confusable_pairs(y, p, n_pairs=3)


# --------------------------------------------------------------------------------------------
# learning curves and the accuracy surface
# --------------------------------------------------------------------------------------------
def test_learning_curve_grid_shape_exact_rates_and_noise_hurts():
    from tradeoffs.data import load_digits_split

    s = load_digits_split()
    grid = nz.learning_curve_grid(s.X_train, s.y_train, s.X_test, s.y_test, sizes=[100, 400],
                                  rates=[0.0, 0.6], seeds=[0, 1])
    assert list(grid.columns) == ["size", "rate", "seed", "realised_rate", "accuracy"]
    assert len(grid) == 8
    np.testing.assert_allclose(grid["realised_rate"], [round(r * n) / n for n, r in zip(grid["size"], grid["rate"])])
    assert grid["accuracy"].between(0, 1).all()
    summary = nz.summarize_grid(grid).set_index(["size", "rate"])["mean"]
    assert summary[(400.0, 0.0)] > summary[(400.0, 0.6)] + 0.1
    assert summary[(400.0, 0.0)] > summary[(100.0, 0.0)]
    again = nz.learning_curve_grid(s.X_train, s.y_train, s.X_test, s.y_test, sizes=[100, 400],
                                   rates=[0.0, 0.6], seeds=[0, 1])
    pd.testing.assert_frame_equal(grid, again)


def test_learning_curve_grid_accepts_class_conditional_and_callable_noise():
    X, y = _blobs(40, k=4)
    Xt, yt = _blobs(20, k=4, seed=9)
    g = nz.learning_curve_grid(X, y, Xt, yt, sizes=[40, 160], rates=[0.5], seeds=[0],
                               noise="class_conditional", pairs=[(0, 1)])
    # half of two of the four classes: exactly 0.25 on the balanced full pool, near it on a subset
    assert g["realised_rate"].iloc[1] == 0.25 and 0.1 < g["realised_rate"].iloc[0] < 0.4
    calls = []

    def no_noise(labels, rate, rng):
        calls.append(rate)
        return nz.NoisyLabels(labels.copy(), np.zeros(labels.size, bool))

    g2 = nz.learning_curve_grid(X, y, Xt, yt, sizes=[40], rates=[0.1, 0.2], seeds=[0], noise=no_noise)
    assert calls == [0.1, 0.2] and (g2["realised_rate"] == 0).all()


@pytest.mark.parametrize("kwargs,match", [
    (dict(sizes=[50, 500], rates=[0.1]), "exceeds the pool"),
    (dict(sizes=[100, 50], rates=[0.1]), "increasing"),
    (dict(sizes=[50], rates=[1.5]), "rate"),
    (dict(sizes=[50], rates=[]), "at least one"),
    (dict(sizes=[50], rates=[0.1], noise="gaussian"), "noise must"),
])
def test_learning_curve_grid_refuses_bad_arguments(kwargs, match):
    X, y = _blobs(40, k=3)
    with pytest.raises(ValueError, match=match):
        nz.learning_curve_grid(X, y, X, y, **kwargs)


def test_summarize_grid_and_saturation_size():
    g = pd.DataFrame({"size": [10, 10, 10, 20], "rate": [0.0, 0.0, 0.0, 0.0], "seed": [0, 1, 2, 0],
                      "accuracy": [0.7, 0.8, 0.9, 0.95]})
    s = nz.summarize_grid(g)
    row = s[s["size"] == 10].iloc[0]
    assert row["mean"] == pytest.approx(0.8) and row["std"] == pytest.approx(0.1)
    assert row["sem"] == pytest.approx(0.1 / math.sqrt(3)) and row["n"] == 3
    with pytest.raises(ValueError, match="columns"):
        nz.summarize_grid(pd.DataFrame({"size": [1]}))
    assert nz.saturation_size([100, 200, 400], [0.5, 0.6, 0.7]) is None
    assert nz.saturation_size([100, 200, 400], [0.5, 0.5, 0.4]) == 100.0
    assert nz.saturation_size([100, 200, 400, 800], [0.5, 0.8, 0.801, 0.9]) is None


def test_accuracy_surface_interpolates_and_refuses_to_extrapolate():
    surf = nz.AccuracySurface(np.array([100.0, 400.0, 1600.0]), np.array([0.0, 0.2, 0.4]),
                              np.array([[0.8, 0.7, 0.6], [0.9, 0.8, 0.7], [0.95, 0.85, 0.75]]))
    assert surf(400, 0.2) == pytest.approx(0.8)
    assert surf(200, 0.0) == pytest.approx(0.85)  # halfway in log size
    assert surf(1600, 0.3) == pytest.approx(0.8)
    with pytest.raises(ValueError, match="outside the measured sizes"):
        surf(2000, 0.1)
    with pytest.raises(ValueError, match="outside the measured rates"):
        surf(400, 0.5)
    with pytest.raises(ValueError, match="shape"):
        nz.AccuracySurface(np.array([1.0, 2.0]), np.array([0.0, 0.1]), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="NaN"):
        nz.AccuracySurface(np.array([1.0, 2.0]), np.array([0.0, 0.1]), np.full((2, 2), np.nan))


def test_accuracy_surface_from_grid_is_monotone_in_rate_only_when_asked():
    g = pd.DataFrame({"size": [10, 10, 10, 20, 20, 20], "rate": [0.0, 0.2, 0.4] * 2,
                      "seed": 0, "accuracy": [0.6, 0.65, 0.5, 0.9, 0.8, 0.7]})
    mono = nz.AccuracySurface.from_grid(g)
    np.testing.assert_allclose(mono.accuracy, [[0.625, 0.625, 0.5], [0.9, 0.8, 0.7]])
    raw = nz.AccuracySurface.from_grid(g, monotone_in_rate=False)
    np.testing.assert_allclose(raw.accuracy, [[0.6, 0.65, 0.5], [0.9, 0.8, 0.7]])


def test_break_even_rate_analytic_and_none():
    acc = lambda n, r: 1.0 - 10 / n - r  # noqa: E731
    # 1 - 10/1000 - r <= 1 - 10/100  <=>  r >= 0.09
    assert nz.break_even_rate(acc, 100, 1000, resolution=1001) == pytest.approx(0.09, abs=1e-3)
    assert nz.break_even_rate(lambda n, r: 1 - 10 / n, 100, 1000) is None


# --------------------------------------------------------------------------------------------
# the budget decision
# --------------------------------------------------------------------------------------------
def test_marginal_value_matches_hand_computation():
    acc = lambda n, r: 0.95 - 20.0 / n - 0.5 * r  # noqa: E731
    mv = nz.marginal_value(acc, n=500, rate=0.3, reviewed_per_hour=100, review_precision=0.8,
                           collected_per_day=400, new_label_rate=0.1, hours_per_day=8)
    # cleaning: 80 of the 150 errors fixed, rate 0.3 -> 0.14: gain 0.5 * 0.16 = 0.08
    assert mv.clean_per_hour == pytest.approx(0.08)
    # collecting: n 900, rate (150 + 40) / 900
    expected = (acc(900, 190 / 900) - acc(500, 0.3)) / 8
    assert mv.collect_per_hour == pytest.approx(expected)


def test_marginal_value_caps_fixes_at_existing_errors():
    acc = lambda n, r: 0.9 - 0.5 * r  # noqa: E731
    mv = nz.marginal_value(acc, n=100, rate=0.05, reviewed_per_hour=1000, review_precision=1.0,
                           collected_per_day=0, new_label_rate=0.0)
    assert mv.clean_per_hour == pytest.approx(0.025)  # all 5 errors fixed, no more
    assert mv.collect_per_hour == 0.0
    zero = nz.marginal_value(acc, n=100, rate=0.0, reviewed_per_hour=100, review_precision=1.0,
                             collected_per_day=10, new_label_rate=0.0)
    assert zero.clean_per_hour == 0.0


@pytest.mark.parametrize("bad", [dict(n=0), dict(rate=1.2), dict(reviewed_per_hour=-1),
                                 dict(review_precision=2.0), dict(hours_per_day=0), dict(collected_per_day=float("nan"))])
def test_marginal_value_refuses_bad_inputs(bad):
    args = dict(n=500, rate=0.3, reviewed_per_hour=100, review_precision=0.8, collected_per_day=400,
                new_label_rate=0.3)
    args.update(bad)
    with pytest.raises(ValueError):
        nz.marginal_value(lambda n, r: 0.5, **args)


def test_marginal_value_needs_an_accuracy_function():
    with pytest.raises(ValueError, match="function"):
        nz.marginal_value(0.5, n=500, rate=0.3, reviewed_per_hour=100, review_precision=0.8,
                          collected_per_day=400, new_label_rate=0.3)


def test_recommend_clean_collect_stop_and_ties():
    costs = dict(reviewer_cost_per_hour=40.0, collection_cost_per_hour=25.0, value_per_point=100.0)
    assert nz.recommend(nz.MarginalValue(0.01, 0.002), **costs) == "clean"      # 60 vs -5
    assert nz.recommend((0.003, 0.005), **costs) == "collect"                  # -10 vs 25
    assert nz.recommend((0.002, 0.001), **costs) == "stop"                     # -20 vs -15
    assert nz.recommend((0.0065, 0.005), **costs) == "clean"                   # 25 vs 25: tie
    with pytest.raises(ValueError, match="pair"):
        nz.recommend(0.1, **costs)
    with pytest.raises(ValueError, match="value_per_point"):
        nz.recommend((0.1, 0.1), reviewer_cost_per_hour=1, collection_cost_per_hour=1, value_per_point=-1)


def test_flip_rate_finds_the_crossing():
    acc = lambda n, r: 0.95 - 20.0 / n - 0.5 * r  # noqa: E731
    budget = dict(reviewed_per_hour=100, review_precision=0.8, collected_per_day=400, new_label_rate=0.05)
    table, flip = nz.flip_rate(acc, n=500, rates=np.linspace(0, 0.5, 501), **budget)
    assert list(table.columns) == ["rate", "clean_per_hour", "collect_per_hour"]
    # clean = 0.5 r (while 500 r <= 80), collect = (0.00667 + 0.2222 r) / 8  ->  cross at r = 0.00176
    assert flip == pytest.approx(0.002, abs=1e-3)
    never = nz.flip_rate(acc, n=500, rates=[0.1, 0.2], reviewed_per_hour=0, review_precision=0.8,
                         collected_per_day=400, new_label_rate=0.0)[1]
    assert never is None


# --------------------------------------------------------------------------------------------
# ticket embeddings: in-process cache (a fake embedder keeps this test fast and offline)
# --------------------------------------------------------------------------------------------
class _FakeEmbedder:
    name = "fake"

    def __init__(self):
        self.calls = 0

    def encode(self, texts, progress=False):
        self.calls += 1
        return np.array([[len(t), t.count(" ")] for t in texts], dtype=np.float32)


def test_embed_texts_caches_in_process_and_keeps_row_order():
    emb = _FakeEmbedder()
    texts = ["a much longer ticket text", "short", "middle one"]
    first = nz.embed_texts(texts, emb)
    assert first[:, 0].tolist() == [25, 5, 10]
    second = nz.embed_texts(texts, emb)
    assert emb.calls == 1 and np.array_equal(first, second)
    second[0, 0] = -1  # callers get a copy, never the cached array
    assert nz.embed_texts(texts, emb)[0, 0] == 25
    nz.embed_texts(texts[::-1], emb)
    assert emb.calls == 2
    with pytest.raises(TypeError):
        nz.embed_texts([1, 2], emb)


def test_load_ticket_features_with_a_fake_embedder():
    from tradeoffs import data

    if not hasattr(data, "load_tickets"):
        pytest.skip("tradeoffs.data.load_tickets is not in this checkout yet")
    t = nz.load_ticket_features(_FakeEmbedder(), pool_size=80, test_size=40, seed=0)
    assert t.X.shape == (80, 2) and t.X_test.shape == (40, 2)
    assert t.intents == tuple(data.INTENTS)
    assert set(np.unique(t.y)) <= set(range(len(t.intents)))
    assert len(np.unique(t.y)) == len(t.intents)  # stratified: every intent present
