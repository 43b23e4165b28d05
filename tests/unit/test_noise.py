"""Unit tests for tradeoffs.noise: the transition matrix, the textbook noise model, out-of-fold
probabilities, confident learning on a planted case, and the cleaning comparison."""

from __future__ import annotations

import numpy as np
import pytest

from tradeoffs import noise as nz


def _blobs(n_per_class=100, k=3, seed=0, spread=0.4):
    """Well separated Gaussian blobs: the true class is obvious from the features."""
    rng = np.random.default_rng(seed)
    centres = np.eye(k) * 6.0
    X = np.vstack([rng.normal(centres[c], spread, size=(n_per_class, k)) for c in range(k)])
    y = np.repeat(np.arange(k), n_per_class)
    return X, y


def _plant(y, n_wrong, k, seed=0):
    """Move ``n_wrong`` random rows to the next class: planted errors with a known mask."""
    rows = np.random.default_rng(seed).choice(len(y), size=n_wrong, replace=False)
    noisy = np.asarray(y).copy()
    noisy[rows] = (noisy[rows] + 1) % k
    return noisy, noisy != y


# --------------------------------------------------------------------------------------------
# measuring noise, and the textbook noise model
# --------------------------------------------------------------------------------------------
def test_noise_transition_matrix_known_answer_and_missing_class():
    t = nz.noise_transition_matrix([0, 0, 0, 0, 1, 1], [0, 0, 0, 1, 1, 0], n_classes=3)
    np.testing.assert_allclose(t[:2], [[0.75, 0.25, 0.0], [0.5, 0.5, 0.0]])
    assert np.all(np.isnan(t[2]))
    with pytest.raises(ValueError, match="length"):
        nz.noise_transition_matrix([0, 1], [0, 1, 1])


def test_uniform_label_noise_redraws_from_all_classes():
    k = 4
    y = np.repeat(np.arange(k), 5000)
    noisy, changed = nz.uniform_label_noise(y, 0.4, n_classes=k, seed=2)
    assert changed.dtype == bool and np.array_equal(changed, noisy != y)
    # a redraw lands on the true class with probability 1/K: about 0.4 * 3/4 of the rows change
    assert abs(changed.mean() - 0.4 * (k - 1) / k) < 0.01
    t = nz.noise_transition_matrix(y, noisy)
    np.testing.assert_allclose(np.diag(t), 1 - 0.3, atol=0.02)
    np.testing.assert_allclose(t[~np.eye(k, dtype=bool)], 0.1, atol=0.02)
    again, _ = nz.uniform_label_noise(y, 0.4, n_classes=k, seed=2)
    assert np.array_equal(noisy, again)
    assert not nz.uniform_label_noise(y, 0.0, seed=0)[1].any()


@pytest.mark.parametrize("rate", [-0.1, 1.01, float("nan"), True, "0.2", None])
def test_uniform_label_noise_refuses_impossible_rates(rate):
    with pytest.raises(ValueError, match="rate"):
        nz.uniform_label_noise(np.arange(10) % 3, rate)


def test_percentage_instead_of_fraction_gets_a_hint():
    with pytest.raises(ValueError, match="0.3 means 30"):
        nz.uniform_label_noise(np.arange(10) % 3, 30)


@pytest.mark.parametrize("y,match", [
    (np.zeros((3, 2), dtype=int), "1-D"),
    (np.array([], dtype=int), "empty"),
    (np.array(["a", "b"]), "LabelEncoder"),
    (np.array([0.5, 1.0]), "non-integer"),
    (np.array([0, -1]), ">= 0"),
])
def test_bad_labels_are_refused_with_a_reason(y, match):
    with pytest.raises(ValueError, match=match):
        nz.uniform_label_noise(y, 0.1)


# --------------------------------------------------------------------------------------------
# out-of-fold probabilities and confident learning
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
    noisy, flipped = _plant(y, 8, 2)
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
    noisy, flipped = _plant(y, 30, 3, seed=2)
    proba = nz.out_of_fold_proba(X, noisy, seed=0)
    issues = nz.find_label_issues(noisy, proba)
    scores = nz.detection_scores(issues, flipped)
    assert scores["flipped"] == 30
    assert scores["recall"] >= 0.9 and scores["precision"] >= 0.9
    quality = nz.label_quality(noisy, proba)
    assert quality[flipped].mean() < quality[~flipped].mean()
    assert abs(nz.count_label_issues(noisy, proba) - 30) <= 3


def test_estimated_noise_rate_tracks_the_planted_rate():
    X, y = _blobs(100, k=3, seed=5)
    for n_wrong in (15, 60):
        noisy, _ = _plant(y, n_wrong, 3, seed=1)
        est = nz.estimated_noise_rate(noisy, nz.out_of_fold_proba(X, noisy, seed=0))
        assert abs(est - n_wrong / 300) < 0.05
    assert nz.estimated_noise_rate(y, nz.out_of_fold_proba(X, y, seed=0)) < 0.02


def test_find_label_issues_validates_inputs():
    with pytest.raises(ValueError, match="sum to 1"):
        nz.find_label_issues(np.array([0, 1]), np.array([[0.5, 0.6], [0.5, 0.5]]))
    with pytest.raises(ValueError, match="shape"):
        nz.label_quality(np.array([0, 1]), np.array([[0.5, 0.5]]))


# --------------------------------------------------------------------------------------------
# cleaning
# --------------------------------------------------------------------------------------------
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


def test_clean_labels_contracts():
    X = np.arange(8).reshape(4, 2)
    y = np.array([0, 1, 1, 0])
    mask = np.array([True, False, False, True])
    Xr, yr = nz.clean_labels(X, y, mask)
    assert Xr.shape == (2, 2) and yr.tolist() == [1, 1]
    _, relabelled = nz.clean_labels(X, y, mask, strategy="relabel", proba=np.eye(2)[[1, 1, 1, 1]])
    assert relabelled.tolist() == [1, 1, 1, 1]
    with pytest.raises(ValueError, match="proba"):
        nz.clean_labels(X, y, mask, strategy="relabel")
    with pytest.raises(ValueError, match="strategy"):
        nz.clean_labels(X, y, mask, strategy="drop")
    with pytest.raises(ValueError, match="boolean"):
        nz.clean_labels(X, y, np.array([1, 0, 0, 1]))


def test_compare_cleaning_reports_every_arm_and_a_good_rule_beats_random_removal():
    from sklearn.neighbors import KNeighborsClassifier

    X, y = _blobs(60, k=3, seed=6, spread=1.6)
    X_test, y_test = _blobs(60, k=3, seed=7, spread=1.6)
    noisy, flipped = _plant(y, 54, 3, seed=2)
    knn = KNeighborsClassifier(1)
    out = nz.compare_cleaning(X, y, noisy, flipped, flipped, X_test, y_test, estimator=knn, seed=0)
    assert set(out) == {"true_rate", "estimated_rate", "rule_removed", "rule_precision", "rule_recall",
                        "cleanlab_removed", "cleanlab_precision", "cleanlab_recall", "acc_noisy", "acc_rule",
                        "acc_cleanlab", "acc_random_removal", "acc_oracle"}
    assert out["true_rate"] == pytest.approx(0.3)
    assert out["rule_precision"] == 1.0 and out["rule_recall"] == 1.0 and out["rule_removed"] == 54
    assert out["acc_rule"] > out["acc_random_removal"] + 0.1
    assert out["acc_oracle"] >= out["acc_noisy"]
    assert out == nz.compare_cleaning(X, y, noisy, flipped, flipped, X_test, y_test, estimator=knn, seed=0)


def test_compare_cleaning_refuses_bad_masks():
    X, y = _blobs(20, k=2)
    noisy, flipped = _plant(y, 4, 2)
    with pytest.raises(ValueError, match="one entry per row"):
        nz.compare_cleaning(X, y, noisy[:-1], flipped, flipped, X, y)
    with pytest.raises(ValueError, match="boolean"):
        nz.compare_cleaning(X, y, noisy, flipped, flipped.astype(int), X, y)
    with pytest.raises(ValueError, match="every row"):
        nz.compare_cleaning(X, y, noisy, flipped, np.ones(len(y), bool), X, y)
