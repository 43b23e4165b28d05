"""Unit tests for tradeoffs.oversight: hand-computed cases, properties on random inputs, bad inputs.

Everything here is NumPy on small arrays (no models, no embedder): the whole file runs in seconds.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tradeoffs import oversight as ov


def softmax(z, t=1.0):
    s = np.asarray(z, dtype=float) / t
    s = s - s.max(axis=1, keepdims=True)
    e = np.exp(s)
    return e / e.sum(axis=1, keepdims=True)


def sample_labels(proba, rng):
    """One label per row drawn from its probabilities (vectorised inverse CDF)."""
    P = np.asarray(proba)
    return np.minimum((P.cumsum(axis=1) < rng.random((P.shape[0], 1))).sum(axis=1), P.shape[1] - 1)


# --------------------------------------------------------------------------------------------
# Calibration metrics
# --------------------------------------------------------------------------------------------
def test_perfectly_calibrated_scores_give_ece_zero():
    # bin (0.7, 0.8]: 4 items at 0.75, 3 right; bin (0.9, 1.0]: 20 items at 0.95, 19 right;
    # bin (0.5, 0.6]: 5 items at 0.6, 3 right -> accuracy equals confidence in every bin
    proba = np.array([[0.75, 0.25]] * 4 + [[0.05, 0.95]] * 20 + [[0.6, 0.4]] * 5)
    y = np.array([0, 0, 0, 1] + [1] * 19 + [0] + [0, 0, 0, 1, 1])
    assert ov.expected_calibration_error(y, proba) == pytest.approx(0.0, abs=1e-12)
    table = ov.reliability_table(y, proba)
    used = table[table["count"] > 0]
    assert np.allclose(used["gap"], 0.0)
    assert used["count"].sum() == len(y)


def test_ece_hand_computed_two_bins_and_one_bin():
    proba = [[0.95, 0.03, 0.02], [0.02, 0.95, 0.03], [0.65, 0.20, 0.15], [0.20, 0.65, 0.15]]
    y = [0, 1, 0, 2]
    assert ov.expected_calibration_error(y, proba) == pytest.approx(0.5 * 0.05 + 0.5 * 0.15)
    assert ov.expected_calibration_error(y, proba, n_bins=1) == pytest.approx(abs(0.75 - 0.80))


def test_ece_always_wrong_equals_confidence():
    assert ov.expected_calibration_error([1, 1, 1], [[0.9, 0.1]] * 3) == pytest.approx(0.9)


def test_ece_binary_1d_input_matches_two_columns():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=200)
    y = (rng.uniform(size=200) < p).astype(int)
    assert ov.expected_calibration_error(y, p) == pytest.approx(
        ov.expected_calibration_error(y, np.column_stack([1 - p, p])))


def test_ece_bins_are_right_closed():
    # confidence exactly 0.8 belongs to the bin (0.7, 0.8], not (0.8, 0.9]
    table = ov.reliability_table([0], [[0.8, 0.2]], n_bins=10)
    assert table.loc[7, "count"] == 1 and table.loc[8, "count"] == 0


def test_ece_of_labels_sampled_from_the_scores_is_small_and_bounded():
    rng = np.random.default_rng(1)
    P = rng.dirichlet(np.ones(5), size=30_000)
    y = sample_labels(P, rng)
    assert ov.expected_calibration_error(y, P) < 0.015
    # an overconfident version of the same scores is worse
    sharp = softmax(np.log(P), 0.4)
    assert ov.expected_calibration_error(y, sharp) > 0.05
    for _ in range(20):
        k = int(rng.integers(2, 6))
        Q = rng.dirichlet(np.ones(k) * 0.5, size=int(rng.integers(1, 100)))
        yy = rng.integers(0, k, size=Q.shape[0])
        assert 0.0 <= ov.expected_calibration_error(yy, Q, n_bins=int(rng.integers(1, 20))) <= 1.0


def test_brier_and_log_loss_hand_computed():
    assert ov.brier_score([1, 0], [0.8, 0.4]) == pytest.approx((0.04 + 0.16) / 2)
    assert ov.brier_score([1, 0], [[0.2, 0.8], [0.6, 0.4]]) == pytest.approx(2 * (0.04 + 0.16) / 2)
    assert ov.brier_score([0, 1, 2], np.eye(3)) == 0.0
    assert ov.log_loss([0, 1], [[0.5, 0.5], [0.5, 0.5]]) == pytest.approx(math.log(2))
    assert ov.log_loss([0], [[1.0, 0.0]]) == pytest.approx(0.0)
    assert np.isfinite(ov.log_loss([1], [[1.0, 0.0]]))  # clipped, not inf


def test_top_label_ties_go_to_lowest_class():
    conf, ok = ov.top_label([0, 1], [[0.5, 0.5], [0.5, 0.5]])
    assert conf.tolist() == [0.5, 0.5] and ok.tolist() == [True, False]


@pytest.mark.parametrize("proba, message", [
    ([[0.5, 0.6]], "sum to 1"),
    ([[1.5, -0.5]], r"\[0, 1\]"),
    ([[np.nan, 1.0]], "NaN"),
    ([[1.0]], "k >= 2"),
    (np.zeros((0, 2)), "empty"),
])
def test_bad_probabilities_raise(proba, message):
    with pytest.raises(ValueError, match=message):
        ov.expected_calibration_error([0] * len(proba), proba)


def test_bad_labels_raise():
    with pytest.raises(ValueError, match="class indices"):
        ov.expected_calibration_error([0, 2], [[0.5, 0.5], [0.5, 0.5]])
    with pytest.raises(ValueError, match="integer class indices"):
        ov.brier_score(["a", "b"], [[0.5, 0.5], [0.5, 0.5]])
    with pytest.raises(ValueError, match="1-D array of 2 labels"):
        ov.log_loss([0], [[0.5, 0.5], [0.5, 0.5]])
    with pytest.raises(ValueError, match="n_bins"):
        ov.expected_calibration_error([0], [[0.6, 0.4]], n_bins=0)


# --------------------------------------------------------------------------------------------
# Temperature scaling
# --------------------------------------------------------------------------------------------
def test_scale_logits_and_proba_to_logits_round_trip():
    rng = np.random.default_rng(2)
    P = rng.dirichlet(np.ones(4), size=50)
    assert np.allclose(ov.scale_logits(ov.proba_to_logits(P)), P, atol=1e-9)
    p = rng.uniform(0.01, 0.99, size=50)
    assert np.allclose(ov.scale_logits(ov.proba_to_logits(p)), p)
    z = rng.normal(size=(10, 3))
    # the top label never changes with T
    for t in (0.1, 1.0, 7.0):
        assert (ov.scale_logits(z, t).argmax(1) == z.argmax(1)).all()
    # T > 1 softens, T < 1 sharpens
    assert (ov.scale_logits(z, 3.0).max(1) <= ov.scale_logits(z, 1.0).max(1) + 1e-12).all()
    assert (ov.scale_logits(z, 0.3).max(1) >= ov.scale_logits(z, 1.0).max(1) - 1e-12).all()


def test_logits_nll_matches_log_loss_of_the_probabilities():
    rng = np.random.default_rng(3)
    z = rng.normal(0, 3, size=(100, 5))
    y = rng.integers(0, 5, 100)
    assert ov.logits_nll(z, y, 2.0) == pytest.approx(ov.log_loss(y, softmax(z, 2.0)))
    zb = rng.normal(0, 3, size=100)
    yb = rng.integers(0, 2, 100)
    assert ov.logits_nll(zb, yb, 0.5) == pytest.approx(ov.log_loss(yb, 1 / (1 + np.exp(-zb / 0.5))))
    # stable for huge logits
    assert np.isfinite(ov.logits_nll([[1e4, -1e4]], [1]))


@pytest.mark.parametrize("true_t", [0.4, 1.0, 2.5])
def test_fit_temperature_recovers_the_generating_temperature(true_t):
    rng = np.random.default_rng(4)
    z = rng.normal(0, 3, size=(6000, 4))
    y = sample_labels(softmax(z, true_t), rng)
    assert ov.fit_temperature(z, y) == pytest.approx(true_t, rel=0.08)


def test_fit_temperature_binary_logits():
    rng = np.random.default_rng(5)
    z = rng.normal(0, 4, size=6000)
    y = (rng.uniform(size=6000) < 1 / (1 + np.exp(-z / 3.0))).astype(int)
    assert ov.fit_temperature(z, y) == pytest.approx(3.0, rel=0.1)


def test_temperature_scaling_never_increases_validation_nll():
    rng = np.random.default_rng(6)
    for trial in range(40):
        n, k = int(rng.integers(2, 300)), int(rng.integers(2, 6))
        z = rng.normal(0, rng.uniform(0.1, 10), size=(n, k))
        y = rng.integers(0, k, n)
        t = ov.fit_temperature(z, y)
        assert ov.logits_nll(z, y, t) <= ov.logits_nll(z, y, 1.0) + 1e-12, trial
        scaler = ov.TemperatureScaler().fit(z, y)
        assert scaler.nll_after_ <= scaler.nll_before_ + 1e-12


def test_fit_temperature_is_the_minimum_of_a_fine_grid():
    rng = np.random.default_rng(7)
    z = rng.normal(0, 5, size=(800, 3))
    y = sample_labels(softmax(z, 1.7), rng)
    t = ov.fit_temperature(z, y)
    grid = np.geomspace(0.01, 100, 4001)
    best_grid = min(ov.logits_nll(z, y, g) for g in grid)
    assert ov.logits_nll(z, y, t) <= best_grid + 1e-9


def test_fit_temperature_invariant_to_a_constant_per_row():
    rng = np.random.default_rng(8)
    z = rng.normal(0, 2, size=(500, 3))
    y = rng.integers(0, 3, 500)
    shift = rng.normal(0, 10, size=(500, 1))
    assert ov.fit_temperature(z + shift, y) == pytest.approx(ov.fit_temperature(z, y), rel=1e-5)


def test_perfectly_separated_validation_hits_the_lower_bound():
    z = np.array([[5.0, 0.0], [0.0, 5.0]] * 10)
    y = np.array([0, 1] * 10)
    scaler = ov.TemperatureScaler(bounds=(0.05, 20)).fit(z, y)
    assert scaler.temperature_ < 0.06 and scaler.at_bound_   # the NLL keeps falling as T -> 0
    assert not ov.TemperatureScaler().fit([[3.0, 0.0], [3.0, 0.0], [0.0, 3.0]], [0, 1, 1]).at_bound_


def test_temperature_scaler_api_and_errors():
    scaler = ov.TemperatureScaler()
    with pytest.raises(RuntimeError, match="not fitted"):
        scaler.transform([[1.0, 0.0]])
    assert "bounds" in repr(scaler)
    scaler.fit([[3.0, 0.0], [3.0, 0.0], [0.0, 3.0]], [0, 1, 1])
    assert scaler.temperature_ > 1 and "temperature_" in repr(scaler)
    assert scaler.predict_proba([[3.0, 0.0]]).shape == (1, 2)
    with pytest.raises(ValueError, match="NaN or infinite"):
        ov.fit_temperature([[np.inf, 0.0]], [0])
    with pytest.raises(ValueError, match="bounds"):
        ov.fit_temperature([[1.0, 0.0]], [0], bounds=(2.0, 1.0))
    with pytest.raises(ValueError, match="temperature"):
        ov.scale_logits([[1.0, 0.0]], 0.0)
    with pytest.raises(ValueError, match="logits"):
        ov.scale_logits(np.zeros((2, 2, 2)))


# --------------------------------------------------------------------------------------------
# Selective prediction
# --------------------------------------------------------------------------------------------
def test_coverage_risk_curve_hand_computed_with_ties():
    curve = ov.coverage_risk_curve([0.9, 0.8, 0.8, 0.6], [True, True, False, False])
    assert curve["threshold"].tolist() == [0.9, 0.8, 0.6]
    assert curve["accepted"].tolist() == [1, 3, 4]
    assert curve["coverage"].tolist() == [0.25, 0.75, 1.0]
    assert np.allclose(curve["risk"], [0.0, 1 / 3, 0.5])


def test_selective_threshold_takes_the_largest_coverage_that_meets_the_target():
    conf = [0.99, 0.95, 0.9, 0.85, 0.8]
    ok = [True, False, True, True, True]
    assert tuple(ov.selective_threshold(conf, ok, 0.25)) == (0.8, 1.0, 0.2)
    assert tuple(ov.selective_threshold(conf, ok, 0.0)) == (0.99, 0.2, 0.0)
    assert tuple(ov.selective_threshold([0.9, 0.8], [False, False], 0.1)) == (math.inf, 0.0, 0.0)


def test_selective_threshold_matches_brute_force():
    rng = np.random.default_rng(9)
    for _ in range(50):
        n = int(rng.integers(1, 80))
        conf = np.round(rng.uniform(0.3, 1, n), 2)
        ok = rng.uniform(size=n) < conf
        target = float(rng.choice([0.0, 0.05, 0.1, 0.3, 1.0]))
        best = (math.inf, 0.0, 0.0)
        for t in np.unique(conf):
            acc = conf >= t
            risk = np.mean(~ok[acc])
            if risk <= target + 1e-12 and acc.mean() > best[1]:
                best = (t, acc.mean(), risk)
        got = ov.selective_threshold(conf, ok, target)
        assert got.threshold == best[0] and got.coverage == pytest.approx(best[1]) and got.risk == pytest.approx(best[2])


def test_risk_upper_bound_properties():
    assert ov.risk_upper_bound(0, 100, 0.05) == pytest.approx(1 - 0.05 ** (1 / 100))
    assert ov.risk_upper_bound(10, 10, 0.05) == 1.0
    # above the empirical rate, shrinking with n, growing as delta shrinks
    assert ov.risk_upper_bound(10, 100, 0.05) > 0.1
    assert ov.risk_upper_bound(100, 1000, 0.05) < ov.risk_upper_bound(10, 100, 0.05)
    assert ov.risk_upper_bound(10, 100, 0.001) > ov.risk_upper_bound(10, 100, 0.05)
    for bad in ((5, 3, 0.05), (0, 0, 0.05), (1, 10, 0.0), (1, 10, 1.0)):
        with pytest.raises(ValueError):
            ov.risk_upper_bound(*bad)


def test_sgr_bound_holds_on_fresh_data_and_is_conservative():
    rng = np.random.default_rng(10)
    conf = rng.uniform(0.5, 1.0, 20_000)
    ok = rng.uniform(size=conf.size) < conf
    result = ov.sgr_threshold(conf, ok, target_risk=0.1, delta=0.001)
    assert result.bound < 0.1 and result.risk <= result.bound
    empirical = ov.selective_threshold(conf, ok, 0.1)
    assert result.coverage <= empirical.coverage + 1e-12  # the guarantee costs coverage
    fresh = rng.uniform(0.5, 1.0, 200_000)
    fresh_ok = rng.uniform(size=fresh.size) < fresh
    assert np.mean(~fresh_ok[fresh >= result.threshold]) < 0.1


def test_sgr_certifies_nothing_on_tiny_samples():
    result = ov.sgr_threshold([0.99] * 20, [True] * 20, target_risk=0.05, delta=0.05)
    assert result.threshold == math.inf and result.coverage == 0.0


def test_area_under_risk_coverage():
    assert ov.area_under_risk_coverage([0.9, 0.1], [True, False]) == pytest.approx(0.25)
    # a perfect ranking (all errors last) beats the reverse ranking
    ok = np.array([True] * 8 + [False] * 2)
    good = np.linspace(1, 0.1, 10)
    assert ov.area_under_risk_coverage(good, ok) < ov.area_under_risk_coverage(good[::-1], ok)


def test_selective_bad_inputs():
    with pytest.raises(ValueError, match="correct"):
        ov.coverage_risk_curve([0.9, 0.8], [True])
    with pytest.raises(ValueError, match="boolean"):
        ov.coverage_risk_curve([0.9, 0.8], [2, 0])
    with pytest.raises(ValueError, match="target_risk"):
        ov.selective_threshold([0.9], [True], 1.5)
    with pytest.raises(ValueError, match="non-empty"):
        ov.coverage_risk_curve([], [])


# --------------------------------------------------------------------------------------------
# Review economics
# --------------------------------------------------------------------------------------------
def test_reviewed_error_and_system_error_hand_computed():
    assert ov.reviewed_error([True, False], 0.9, 0.5).tolist() == pytest.approx([0.55, 0.05])
    assert ov.system_error([True, True, False, False], [True, False, True, False], 1.0, 0.0) == 0.25
    assert ov.system_error([True, True, False, False], [True, False, True, False], 0.9, 1.0) == 0.5
    assert ov.system_error([True, False, True, False], [True, True, False, False], 0.9, 0.5) == pytest.approx(0.4)
    assert ov.system_error([1, 0], [0.5, 0.5]) == pytest.approx(0.25)


def test_review_helps_exactly_when_the_model_is_worse_than_the_reviewer():
    rng = np.random.default_rng(11)
    for _ in range(50):
        a, p, w = rng.uniform(0.5, 1), rng.uniform(0, 0.99), rng.uniform(0, 1)
        gain = w - float(ov.reviewed_error(w, a, p))
        assert gain == pytest.approx((1 - p) * (w - (1 - a)))
        assert (gain > 0) == (w > 1 - a)


def test_analytic_threshold():
    assert ov.analytic_threshold(1.0, 10.0) == pytest.approx(0.9)
    assert ov.analytic_threshold(1.0, 10.0, 0.95, 0.5) == pytest.approx(0.75)
    assert ov.analytic_threshold(1.0, 10.0, 0.95, 1.0) == -math.inf
    assert np.allclose(ov.analytic_threshold(1.0, np.array([10.0, 100.0])), [0.9, 0.99])
    with pytest.raises(ValueError):
        ov.analytic_threshold(1.0, 0.0)
    with pytest.raises(ValueError, match="follow_prob"):
        ov.analytic_threshold(1.0, 10.0, 0.9, 1.5)


def test_review_economics_hand_computed():
    conf = [0.95, 0.9, 0.6, 0.55]
    ok = [True, True, False, True]
    out = ov.review_economics(conf, ok, 10.0, 0.7, review_cost=1.0)
    assert (out.flagged, out.reviewed, out.overflow, out.error_rate, out.cost) == (0.5, 0.5, 0.0, 0.0, 0.5)
    capped = ov.review_economics(conf, ok, 10.0, 0.7, review_cost=1.0, capacity=1)
    assert capped.reviewed == 0.25 and capped.overflow == 0.25
    assert capped.error_rate == pytest.approx(0.5 / 4) and capped.cost == pytest.approx(1.5)
    with_overflow_cost = ov.review_economics(conf, ok, 10.0, 0.7, review_cost=1.0, capacity=1, overflow_cost=2.0)
    assert with_overflow_cost.cost == pytest.approx(1.5 + 0.25 * 2.0)
    triage = ov.review_economics(conf, ok, 10.0, 0.7, review_cost=1.0, capacity=1, queue="triage")
    # triage reviews the least confident flagged item (0.55, which the model got right): the error stays
    assert triage.error_rate == pytest.approx(0.25) and triage.cost == pytest.approx((10 + 1) / 4)


def test_expected_cost_with_calibrated_probabilities_matches_labels_on_average():
    rng = np.random.default_rng(12)
    conf = rng.uniform(0.3, 1.0, 100_000)
    ok = rng.uniform(size=conf.size) < conf
    policy = dict(review_cost=1.0, capacity=0.2 * conf.size, reviewer_accuracy=0.9, follow_prob=0.3)
    expected = ov.review_economics(conf, conf, 12.0, 0.7, **policy)
    realised = ov.review_economics(conf, ok, 12.0, 0.7, **policy)
    assert expected.cost == pytest.approx(realised.cost, rel=0.02)


def test_triage_never_costs_more_than_fifo_when_errors_are_calibrated():
    rng = np.random.default_rng(13)
    conf = rng.uniform(0.3, 1.0, 500)
    for cap in (0, 10, 50, 200, 1000):
        for t in (0.5, 0.8, 1.01):
            kw = dict(review_cost=1.0, capacity=cap, reviewer_accuracy=0.95, follow_prob=0.2)
            fifo = ov.review_economics(conf, conf, 12.0, t, **kw)
            triage = ov.review_economics(conf, conf, 12.0, t, queue="triage", **kw)
            assert triage.cost <= fifo.cost + 1e-9
            assert triage.reviewed == pytest.approx(fifo.reviewed)


def test_review_probability_always_review_and_triage_order():
    conf = np.array([0.99, 0.5, 0.4, 0.3])
    always = np.array([True, False, False, False])
    flagged, rev = ov.review_probability(conf, 0.45, capacity=2, always_review=always, queue="triage")
    assert flagged.tolist() == [True, False, True, True]
    assert rev.tolist() == [1.0, 0.0, 0.0, 1.0]  # the always-review item first, then the least confident
    flagged, rev = ov.review_probability(conf, 0.45, capacity=2, always_review=always)
    assert np.allclose(rev, [2 / 3, 0, 2 / 3, 2 / 3])
    flagged, rev = ov.review_probability(conf, 0.0)
    assert not flagged.any() and not rev.any()


def test_best_threshold_with_and_without_capacity():
    conf = [0.98, 0.95, 0.9, 0.8, 0.7, 0.6]
    ok = [True, True, True, False, True, False]
    ts = [0.0, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, math.inf]
    assert ov.best_threshold(conf, ok, 10.0, ts, review_cost=1.0).threshold == 0.9
    capped = ov.best_threshold(conf, ok, 10.0, ts, review_cost=1.0, capacity=1)
    assert capped.threshold == 0.7 and capped.cost == pytest.approx(11 / 6)
    biased = ov.best_threshold(conf, ok, 10.0, ts, review_cost=1.0, reviewer_accuracy=0.9, follow_prob=0.5)
    assert biased.threshold == 0.9 and biased.cost == pytest.approx(14.5 / 6)
    # ties go to the smallest threshold (the least review)
    assert ov.best_threshold(conf, ok, 10.0, ts, review_cost=50.0).threshold == 0.0


def test_best_threshold_is_the_minimum_of_the_cost_curve():
    rng = np.random.default_rng(14)
    conf = rng.uniform(0.3, 1, 200)
    ok = rng.uniform(size=200) < conf
    cost_w = rng.uniform(1, 30, 200)
    curve = ov.cost_curve(conf, ok, cost_w, review_cost=1.0, capacity=40, follow_prob=0.2)
    best = ov.best_threshold(conf, ok, cost_w, review_cost=1.0, capacity=40, follow_prob=0.2)
    assert isinstance(best, ov.ReviewOutcome)
    assert best.cost == pytest.approx(curve["cost"].min())
    assert best.threshold == curve.loc[np.isclose(curve["cost"], curve["cost"].min(), rtol=1e-12), "threshold"].min()
    assert curve["threshold"].iloc[0] == 0.0 and curve["threshold"].iloc[-1] == math.inf
    assert len(curve) == len(np.unique(conf)) + 2
    assert list(curve.columns) == list(ov.ReviewOutcome.__dataclass_fields__)
    assert (curve["reviewed"] <= 40 / 200 + 1e-12).all()


def test_calibrated_optimum_matches_the_closed_form():
    rng = np.random.default_rng(15)
    conf = np.sort(rng.uniform(0.3, 1.0, 5000))
    a, p, r, c = 0.95, 0.3, 1.5, 12.0
    best = ov.best_threshold(conf, conf, c, review_cost=r, reviewer_accuracy=a, follow_prob=p)
    assert best.threshold == pytest.approx(ov.analytic_threshold(r, c, a, p), abs=2e-3)


def test_capacity_lowers_the_best_threshold_and_costs_more():
    rng = np.random.default_rng(16)
    conf = rng.uniform(0.3, 1.0, 1000)
    free = ov.best_threshold(conf, conf, 12.0, review_cost=1.5, reviewer_accuracy=0.95, follow_prob=0.3)
    capped = ov.best_threshold(conf, conf, 12.0, review_cost=1.5, reviewer_accuracy=0.95, follow_prob=0.3, capacity=100)
    assert capped.threshold < free.threshold and capped.cost > free.cost
    assert capped.flagged == pytest.approx(0.1, abs=0.01)  # FIFO: flag about what can be reviewed


def test_automation_bias_makes_review_worth_less():
    rng = np.random.default_rng(17)
    conf = rng.uniform(0.3, 1.0, 1000)
    costs = [ov.best_threshold(conf, conf, 12.0, review_cost=1.5, follow_prob=p).cost for p in (0.0, 0.5, 0.9, 1.0)]
    assert costs == sorted(costs)
    auto_all = ov.review_economics(conf, conf, 12.0, 0.0, review_cost=1.5).cost
    assert costs[-1] == pytest.approx(auto_all)  # p = 1: review never pays


def test_review_economics_bad_inputs():
    conf, ok = [0.9, 0.5], [True, False]
    with pytest.raises(ValueError, match="queue"):
        ov.review_economics(conf, ok, 1.0, 0.7, review_cost=1.0, queue="lifo")
    with pytest.raises(ValueError, match="capacity"):
        ov.review_economics(conf, ok, 1.0, 0.7, review_cost=1.0, capacity=-1)
    with pytest.raises(ValueError, match="cost_if_wrong"):
        ov.review_economics(conf, ok, [1.0, 2.0, 3.0], 0.7, review_cost=1.0)
    with pytest.raises(ValueError, match="correct"):
        ov.review_economics(conf, [1.2, 0.0], 1.0, 0.7, review_cost=1.0)
    with pytest.raises(ValueError, match="review_cost"):
        ov.review_economics(conf, ok, 1.0, 0.7, review_cost=-1.0)
    with pytest.raises(ValueError, match="reviewer_accuracy"):
        ov.review_economics(conf, ok, 1.0, 0.7, review_cost=1.0, reviewer_accuracy=1.2)
    with pytest.raises(ValueError, match="always_review"):
        ov.review_economics(conf, ok, 1.0, 0.7, review_cost=1.0, always_review=[True])
    with pytest.raises(ValueError, match="NaN"):
        ov.review_economics(conf, ok, 1.0, float("nan"), review_cost=1.0)
    with pytest.raises(ValueError, match="same length"):
        ov.system_error([True], [True, False])


# --------------------------------------------------------------------------------------------
# Traffic and the queue simulation
# --------------------------------------------------------------------------------------------
def test_hourly_profile_poisson_arrivals_and_shifts():
    ts = pd.to_datetime(["2025-01-06 09:10", "2025-01-06 09:50", "2025-01-07 14:00", "2025-01-07 14:30"], utc=True)
    prof = ov.hourly_profile(ts)
    assert prof.sum() == pytest.approx(1.0) and prof[9] == prof[14] == 0.5
    arr = ov.poisson_arrivals(prof, 1000, days=3, day_factors=[1, 1, 0], seed=1)
    assert arr.shape == (72,) and arr[48:].sum() == 0 and arr[[i for i in range(72) if i % 24 not in (9, 14)]].sum() == 0
    assert np.array_equal(arr, ov.poisson_arrivals(prof, 1000, days=3, day_factors=[1, 1, 0], seed=1))
    cap = ov.shift_capacity(5, days=8, hours=(9, 17))
    assert cap.sum() == 6 * 8 * 5  # Mon-Fri plus the second Monday
    with pytest.raises(ValueError, match="profile"):
        ov.poisson_arrivals([0.5, 0.5], 10)
    with pytest.raises(ValueError, match="hours"):
        ov.shift_capacity(5, hours=(17, 9))


def test_simulation_conserves_items_and_respects_capacity():
    rng = np.random.default_rng(18)
    conf = rng.uniform(0.3, 1.0, 300)
    ok = rng.uniform(size=300) < conf
    arrivals = rng.poisson(20, 48)
    cap = np.where(np.arange(48) % 24 < 12, 6.0, 0.0)
    sim = ov.simulate_review_queue(conf, ok, 10.0, 0.7, arrivals=arrivals, capacity=cap, review_cost=1.0,
                                   max_wait=6, seed=3)
    assert (sim["automated"] + sim["flagged"] == sim["arrivals"]).all()
    assert (sim["reviewed"] <= cap + 1e-9).all()
    done = sim["automated"].sum() + sim["reviewed"].sum() + sim["released"].sum()
    assert done + sim["backlog"].iloc[-1] == sim["arrivals"].sum()
    assert (sim["max_wait_h"] <= 6).all()
    same = ov.simulate_review_queue(conf, ok, 10.0, 0.7, arrivals=arrivals, capacity=cap, review_cost=1.0,
                                    max_wait=6, seed=3)
    pd.testing.assert_frame_equal(sim, same)


def test_simulation_with_ample_capacity_matches_the_static_formula():
    rng = np.random.default_rng(19)
    conf = rng.uniform(0.3, 1.0, 400)
    ok = rng.uniform(size=400) < conf
    arrivals = np.full(24 * 20, 50)
    sim = ov.simulate_review_queue(conf, ok, 10.0, 0.75, arrivals=arrivals, capacity=1e6, review_cost=1.0,
                                   reviewer_accuracy=0.9, follow_prob=0.4, seed=4)
    static = ov.review_economics(conf, ok, 10.0, 0.75, review_cost=1.0, reviewer_accuracy=0.9, follow_prob=0.4)
    assert sim["cost"].sum() / sim["arrivals"].sum() == pytest.approx(static.cost, rel=0.05)
    assert sim["backlog"].max() == 0


def test_simulation_watch_counts_high_stakes_without_a_human():
    conf = np.array([0.99, 0.2])
    ok = np.array([True, True])
    watch = np.array([True, True])
    sim = ov.simulate_review_queue(conf, ok, 1.0, 0.5, arrivals=[10] * 4, capacity=0, review_cost=1.0,
                                   max_wait=1, watch=watch, seed=0)
    # confident items are automated, the others time out: every watched item is decided without a human
    assert sim["watched_unreviewed"].sum() + sim["backlog"].iloc[-1] == 40
    sim2 = ov.simulate_review_queue(conf, ok, 1.0, 0.5, arrivals=[10] * 4, capacity=100, review_cost=1.0,
                                    always_review=[True, True], watch=watch, seed=0)
    assert sim2["watched_unreviewed"].sum() == 0 and sim2["reviewed"].sum() == 40


def test_simulation_bad_inputs():
    with pytest.raises(ValueError, match="arrivals"):
        ov.simulate_review_queue([0.9], [True], 1.0, 0.5, arrivals=[1.5], capacity=1, review_cost=1.0)
    with pytest.raises(ValueError, match="capacity"):
        ov.simulate_review_queue([0.9], [True], 1.0, 0.5, arrivals=[1, 2], capacity=[1], review_cost=1.0)
    with pytest.raises(ValueError, match="max_wait"):
        ov.simulate_review_queue([0.9], [True], 1.0, 0.5, arrivals=[1], capacity=1, review_cost=1.0, max_wait=-1)


# --------------------------------------------------------------------------------------------
# Drift and monitoring
# --------------------------------------------------------------------------------------------
def test_inject_typos_is_reproducible_and_keeps_non_letters():
    texts = ["Where is my parcel PP-4821-XK? Ordered on 12/03.", "cant log in!!"]
    assert ov.inject_typos(texts, 0.0) == texts
    a, b = ov.inject_typos(texts, 0.3, seed=7), ov.inject_typos(texts, 0.3, seed=7)
    assert a == b and a != texts
    assert ov.inject_typos(texts, 0.3, seed=8) != a
    digits = lambda s: [ch for ch in s if not ch.isalpha()]
    heavy = ov.inject_typos(texts, 1.0, seed=1)
    # digits, spaces and punctuation survive (order kept; letters around them change)
    assert all(digits(h) == digits(t) for h, t in zip(heavy, texts))
    # more typos, more changed characters
    rng_texts = ["the quick brown fox jumps over the lazy dog " * 5] * 20
    diff = lambda r: np.mean([sum(x != y for x, y in zip(t, n)) + abs(len(t) - len(n))
                              for t, n in zip(rng_texts, ov.inject_typos(rng_texts, r, seed=2))])
    assert diff(0.02) < diff(0.1) < diff(0.3)
    with pytest.raises(TypeError):
        ov.inject_typos([1, 2], 0.1)
    with pytest.raises(ValueError, match="rate"):
        ov.inject_typos(["abc"], 1.5)


def test_flag_rate_alarm():
    chart = ov.flag_rate_alarm(0.2, flagged=[21, 45, 5], totals=[100, 100, 100])
    assert chart["alarm"].tolist() == [False, True, True]
    assert chart["upper"].iloc[0] == pytest.approx(0.2 + 3 * math.sqrt(0.2 * 0.8 / 100))
    rng = np.random.default_rng(20)
    quiet = ov.flag_rate_alarm(0.3, rng.binomial(400, 0.3, 1000), [400] * 1000)
    assert quiet["alarm"].mean() < 0.01  # about 0.3% false alarms at 3 sigma
    with pytest.raises(ValueError):
        ov.flag_rate_alarm(0.2, [5], [4])
    with pytest.raises(ValueError):
        ov.flag_rate_alarm(0.2, [1, 2], [10])


# --------------------------------------------------------------------------------------------
# Data helpers
# --------------------------------------------------------------------------------------------
def test_stratified_sample_keeps_every_group():
    rng = np.random.default_rng(21)
    keys = rng.choice(["a", "b", "c", "d"], p=[0.7, 0.2, 0.08, 0.02], size=500)
    idx = ov.stratified_sample(keys, 40, seed=0)
    assert len(idx) == 40 and len(set(idx)) == 40 and (np.diff(idx) > 0).all()
    assert set(keys[idx]) == {"a", "b", "c", "d"}
    assert abs(np.mean(keys[idx] == "a") - np.mean(keys == "a")) < 0.1
    assert np.array_equal(idx, ov.stratified_sample(keys, 40, seed=0))
    assert np.array_equal(ov.stratified_sample(keys, 1000), np.arange(500))
    with pytest.raises(ValueError):
        ov.stratified_sample(keys, 0)


class _FakeEmbedder:
    """Embeds a text as (its length, its batch's size): checks the order comes back right."""

    def encode(self, texts, batch_size=32, progress=False):
        out = []
        for start in range(0, len(texts), batch_size):
            batch = texts[start:start + batch_size]
            out += [[len(t), len(batch)] for t in batch]
        return np.asarray(out, dtype=np.float32)


def test_embed_texts_restores_the_original_order():
    texts = ["a" * n for n in (5, 1, 9, 3, 7)]
    vectors = ov.embed_texts(texts, _FakeEmbedder(), batch_size=2)
    assert vectors[:, 0].tolist() == [5, 1, 9, 3, 7]
    with pytest.raises(TypeError):
        ov.embed_texts([1], _FakeEmbedder())


def test_triage_simulation_reviews_always_review_items_first():
    conf = np.array([0.99, 0.6, 0.3])
    ok = np.array([True, True, False])
    always = np.array([True, False, False])
    kw = dict(arrivals=[30] * 48, capacity=5, review_cost=1.0, always_review=always, max_wait=4, watch=always, seed=5)
    triage = ov.simulate_review_queue(conf, ok, 10.0, 0.7, queue="triage", **kw)
    fifo = ov.simulate_review_queue(conf, ok, 10.0, 0.7, queue="fifo", **kw)
    # same arrivals (same seed), same number of reviews, but triage lets fewer watched items go unreviewed
    assert (triage["arrivals"] == fifo["arrivals"]).all() and triage["reviewed"].sum() == fifo["reviewed"].sum()
    assert triage["watched_unreviewed"].sum() < fifo["watched_unreviewed"].sum()
    assert triage["watched"].sum() == fifo["watched"].sum() > 0
    with pytest.raises(ValueError, match="queue"):
        ov.simulate_review_queue(conf, ok, 10.0, 0.7, queue="lifo", **kw)
