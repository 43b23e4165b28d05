"""Unit tests for tradeoffs.maintainability: constructed cases with known answers, properties on
random inputs, and bad inputs. Small synthetic data and the fast model sizes keep this under a minute."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import make_classification
from sklearn.metrics import roc_auc_score

from tradeoffs import maintainability as mt


# --------------------------------------------------------------------------------------------
# Fixtures and helpers
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small models run faster on one BLAS/OpenMP thread (and far faster on a shared machine)."""
    limiter = mt.limit_threads(1)
    yield
    limiter.restore_original_limits()


@pytest.fixture(scope="module")
def blobs():
    """A small, moderately noisy binary task: 240 train rows, 120 test rows, 6 features."""
    X, y = make_classification(n_samples=360, n_features=6, n_informative=4, n_redundant=0, flip_y=0.08,
                               class_sep=0.8, random_state=3)
    return X[:240], y[:240], X[240:], y[240:]


class FirstColumnThreshold(BaseEstimator, ClassifierMixin):
    """Predicts 1 when column ``column`` exceeds ``threshold``; ignores every other column; seedless."""

    def __init__(self, column: int = 0, threshold: float = 0.0, random_state=None):
        self.column = column
        self.threshold = threshold
        self.random_state = random_state

    def fit(self, X, y):
        self.classes_ = np.array([0, 1])
        return self

    def predict(self, X):
        return (np.asarray(X)[:, self.column] > self.threshold).astype(int)


def threshold_factory(seed: int = 0, fast: bool = False):
    return FirstColumnThreshold(random_state=seed)


# --------------------------------------------------------------------------------------------
# The model ladder
# --------------------------------------------------------------------------------------------
def test_ladder_names_order_and_unfitted_estimators():
    ladder = mt.model_ladder()
    assert list(ladder) == list(mt.LADDER)
    for name, spec in ladder.items():
        model = spec(0, fast=True)
        assert hasattr(model, "fit") and hasattr(model, "predict")
        assert not hasattr(model, "classes_"), f"{name} must come unfitted"


def test_ladder_seed_reaches_every_random_state():
    model = mt.make_stacked(7, fast=True)
    seeds = {v for k, v in model.get_params(deep=True).items() if k.endswith("random_state")}
    assert seeds == {7}
    assert model.cv.random_state == 7


def test_limit_threads_limits_and_restores():
    from threadpoolctl import threadpool_info

    with mt.limit_threads(1):
        assert all(pool["num_threads"] == 1 for pool in threadpool_info())
    with pytest.raises(ValueError, match="n_threads"):
        mt.limit_threads(0)


def test_fast_shrinks_sizes():
    assert mt.make_gradient_boosting(0, fast=True).n_estimators < mt.make_gradient_boosting(0).n_estimators
    assert mt.make_stacked(0, fast=True).cv.n_splits < mt.make_stacked(0).cv.n_splits


def test_stacked_owns_the_code_of_its_members():
    ladder = mt.model_ladder()
    parts = sum(mt.source_lines(f) for f in ladder["stacked"].code)
    assert ladder["stacked"].lines_of_code == parts
    assert ladder["stacked"].lines_of_code > max(ladder[n].lines_of_code for n in mt.LADDER[:3])


def test_with_seed_sets_nested_random_states_and_leaves_original():
    original = mt.make_mlp(1)
    reseeded = mt.with_seed(original, 42)
    assert reseeded.get_params()["mlpclassifier__random_state"] == 42
    assert original.get_params()["mlpclassifier__random_state"] == 1


@pytest.mark.parametrize("seed", [-1, 1.5, "3", True])
def test_with_seed_rejects_bad_seeds(seed):
    with pytest.raises(ValueError, match="seed"):
        mt.with_seed(mt.make_logistic(), seed)


# --------------------------------------------------------------------------------------------
# Churn
# --------------------------------------------------------------------------------------------
def test_churn_known_answers():
    assert mt.prediction_churn([0, 1, 1, 0], [0, 1, 1, 0]) == 0.0
    assert mt.prediction_churn([0, 1, 1, 0], [1, 0, 0, 1]) == 1.0
    assert mt.prediction_churn(["a", "b", "c"], ["a", "b", "x"]) == pytest.approx(1 / 3)
    assert mt.pairwise_churn([[0, 1, 1, 0], [0, 1, 0, 0], [0, 1, 1, 0]]) == pytest.approx(1 / 6)


def test_churn_properties_on_random_predictions():
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(1, 60))
        a, b, c = (rng.integers(0, 3, n) for _ in range(3))
        ab, ba = mt.prediction_churn(a, b), mt.prediction_churn(b, a)
        assert ab == ba and 0.0 <= ab <= 1.0
        # churn is a (normalised Hamming) distance: the triangle inequality holds
        assert mt.prediction_churn(a, c) <= ab + mt.prediction_churn(b, c) + 1e-12
        P = np.vstack([a, b, c])
        M = mt.churn_matrix(P)
        assert np.allclose(M, M.T) and np.all(np.diag(M) == 0)
        assert mt.pairwise_churn(P) == pytest.approx((M[0, 1] + M[0, 2] + M[1, 2]) / 3)
        assert mt.pairwise_churn(P[:2]) == pytest.approx(ab)


@pytest.mark.parametrize("a, b, match", [([0, 1], [0], "lengths differ"), ([], [], "empty"),
                                         ([[0, 1]], [[0, 1]], "one-dimensional")])
def test_churn_rejects_bad_inputs(a, b, match):
    with pytest.raises(ValueError, match=match):
        mt.prediction_churn(a, b)


def test_pairwise_churn_needs_two_retrains():
    with pytest.raises(ValueError, match="k >= 2"):
        mt.pairwise_churn([[0, 1, 1]])


def test_perturb_rows_changes_exactly_the_fraction_from_the_pool():
    X = np.arange(400.0).reshape(200, 2)
    y = np.arange(200) % 2
    pool_X = -np.ones((30, 2)) * np.arange(1, 31)[:, None]
    pool_y = np.ones(30, int)
    X2, y2, changed = mt.perturb_rows(X, y, fraction=0.05, seed=1, X_pool=pool_X, y_pool=pool_y)
    assert X2.shape == X.shape and len(changed) == 10
    assert np.all((X2 != X).any(axis=1) == np.isin(np.arange(200), changed))
    assert np.all(X2[changed] < 0) and np.all(y2[changed] == 1)
    assert np.array_equal(X, np.arange(400.0).reshape(200, 2)), "the input must not be modified"
    again = mt.perturb_rows(X, y, fraction=0.05, seed=1, X_pool=pool_X, y_pool=pool_y)
    assert np.array_equal(again[0], X2), "same seed, same rows"


def test_perturb_rows_without_pool_duplicates_other_rows_and_changes_at_least_one():
    X = np.arange(20.0).reshape(10, 2)
    y = np.arange(10)
    X2, y2, changed = mt.perturb_rows(X, y, fraction=0.01, seed=0)
    assert len(changed) == 1
    assert any(np.array_equal(X2[changed[0]], X[i]) for i in range(10) if i != changed[0])


@pytest.mark.parametrize("kwargs, match", [({"fraction": 0.0}, "fraction"), ({"fraction": 1.0}, "fraction"),
                                           ({"X_pool": np.zeros((3, 2))}, "both"),
                                           ({"X_pool": np.zeros((3, 5)), "y_pool": np.zeros(3)}, "features")])
def test_perturb_rows_rejects_bad_inputs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mt.perturb_rows(np.zeros((10, 2)), np.zeros(10), **kwargs)


def test_identical_retrains_have_zero_churn(blobs):
    X, y, Xt, yt = blobs
    for factory in (mt.make_logistic, lambda s: mt.make_gradient_boosting(s, fast=True)):
        r = mt.retrain_churn(factory, X, y, Xt, y_test=yt, kind="identical", n_retrains=2)
        assert r.churn == 0.0 and r.pairwise == 0.0
        assert r.predictions.shape == (3, len(yt)) and np.all(r.accuracy == r.accuracy[0])


def test_a_model_that_ignores_its_seed_has_zero_seed_churn(blobs):
    X, y, Xt, _ = blobs
    r = mt.retrain_churn(threshold_factory, X, y, Xt, kind="seed", n_retrains=3)
    assert r.churn == 0.0 and np.all(r.per_retrain == 0)


def test_stochastic_boosting_churns_with_the_seed(blobs):
    X, y, Xt, yt = blobs
    r = mt.retrain_churn(lambda s: mt.make_gradient_boosting(s, fast=True), X, y, Xt, y_test=yt,
                         kind="seed", n_retrains=3)
    assert 0.0 < r.churn < 0.5
    assert r.per_retrain.shape == (3,)
    assert r.churn == pytest.approx(np.mean(r.predictions[1:] != r.predictions[0]))


def test_rows_churn_uses_the_pool_and_a_given_reference(blobs):
    X, y, Xt, yt = blobs
    ref = mt.make_logistic(0).fit(X, y)
    with_ref = mt.retrain_churn(mt.make_logistic, X, y, Xt, kind="rows", n_retrains=2, fraction=0.1,
                                X_pool=Xt[:40], y_pool=yt[:40], reference=ref)
    without = mt.retrain_churn(mt.make_logistic, X, y, Xt, kind="rows", n_retrains=2, fraction=0.1,
                               X_pool=Xt[:40], y_pool=yt[:40])
    assert np.array_equal(with_ref.predictions, without.predictions)
    assert 0.0 <= with_ref.churn <= 0.3


@pytest.mark.parametrize("kwargs, match", [({"kind": "weather"}, "kind"), ({"n_retrains": 0}, "n_retrains"),
                                           ({"seed": -2}, "seed")])
def test_retrain_churn_rejects_bad_arguments(blobs, kwargs, match):
    X, y, Xt, _ = blobs
    with pytest.raises(ValueError, match=match):
        mt.retrain_churn(mt.make_logistic, X, y, Xt, **kwargs)


def test_retrain_churn_rejects_feature_mismatch(blobs):
    X, y, Xt, _ = blobs
    with pytest.raises(ValueError, match="features"):
        mt.retrain_churn(mt.make_logistic, X, y, Xt[:, :3])


# --------------------------------------------------------------------------------------------
# Accuracy, AUC and intervals
# --------------------------------------------------------------------------------------------
def test_auc_matches_scikit_learn_with_ties():
    rng = np.random.default_rng(1)
    for _ in range(30):
        n = int(rng.integers(4, 80))
        y = rng.integers(0, 2, n)
        y[:2] = [0, 1]
        s = rng.integers(0, 5, n) / 4.0  # many ties
        assert mt.auc_score(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


@pytest.mark.parametrize("y, match", [([0, 1, 2], "binary"), ([1, 1, 1], "single class")])
def test_auc_rejects_non_binary_or_single_class(y, match):
    with pytest.raises(ValueError, match=match):
        mt.auc_score(y, [0.1, 0.2, 0.3])


def test_metric_ci_contains_estimate_and_is_reproducible():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 300)
    p = np.where(rng.random(300) < 0.85, y, 1 - y)
    ci = mt.metric_ci(y, p, n_boot=500, seed=3)
    assert ci.low <= ci.estimate <= ci.high
    assert ci.estimate == pytest.approx(np.mean(p == y))
    assert mt.metric_ci(y, p, n_boot=500, seed=3) == ci
    narrow = mt.metric_ci(y, p, n_boot=500, seed=3, level=0.5)
    assert narrow.high - narrow.low < ci.high - ci.low
    perfect = mt.metric_ci(y, y, n_boot=200)
    assert tuple(perfect) == (1.0, 1.0, 1.0)


def test_metric_ci_auc_estimate_matches_scikit_learn():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 200)
    s = y * 0.5 + rng.random(200)
    ci = mt.metric_ci(y, s, "auc", n_boot=300)
    assert ci.estimate == pytest.approx(roc_auc_score(y, s))
    assert ci.low <= ci.estimate <= ci.high <= 1.0


def test_paired_diff_of_identical_models_is_exactly_zero():
    y = np.array([0, 1] * 40)
    p = np.where(np.arange(80) % 7 == 0, 1 - y, y)
    ci = mt.paired_diff_ci(y, p, p.copy())
    assert tuple(ci) == (0.0, 0.0, 0.0) and not ci.excludes_zero


def test_paired_diff_known_estimate_and_clear_winner():
    y = np.zeros(500, int)
    a = y.copy()
    b = y.copy()
    b[:150] = 1  # b is wrong on 30% of rows, a on none
    ci = mt.paired_diff_ci(y, a, b, n_boot=1000)
    assert ci.estimate == pytest.approx(0.30)
    assert ci.excludes_zero and 0.25 < ci.low < 0.30 < ci.high < 0.35
    flipped = mt.paired_diff_ci(y, b, a, n_boot=1000)
    assert flipped.estimate == pytest.approx(-0.30) and flipped.high < 0


def test_paired_interval_is_much_narrower_than_separate_intervals():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 400)
    a = np.where(rng.random(400) < 0.8, y, 1 - y)  # both about 80% accurate...
    b = a.copy()
    b[:4] = 1 - b[:4]  # ...and disagree on only 4 rows
    paired = mt.paired_diff_ci(y, a, b, n_boot=1000)
    sep_a, sep_b = mt.metric_ci(y, a, n_boot=1000), mt.metric_ci(y, b, n_boot=1000)
    assert paired.high - paired.low < 0.04
    assert (sep_a.high - sep_a.low) > 2 * (paired.high - paired.low)
    assert (sep_b.high - sep_b.low) > 2 * (paired.high - paired.low)


def test_paired_diff_auc_runs_on_scores():
    rng = np.random.default_rng(6)
    y = rng.integers(0, 2, 300)
    good = y + rng.normal(0, 0.6, 300)
    bad = y + rng.normal(0, 3.0, 300)
    ci = mt.paired_diff_ci(y, good, bad, "auc", n_boot=500)
    assert ci.estimate == pytest.approx(roc_auc_score(y, good) - roc_auc_score(y, bad))
    assert ci.low > 0


@pytest.mark.parametrize("kwargs, match", [({"n_boot": 10}, "n_boot"), ({"level": 1.5}, "level"),
                                           ({"metric": "f1"}, "metric"), ({"seed": -1}, "seed")])
def test_intervals_reject_bad_arguments(kwargs, match):
    y = np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match=match):
        mt.paired_diff_ci(y, y, y, **kwargs)


def test_paired_diff_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="lengths differ"):
        mt.paired_diff_ci([0, 1, 0], [0, 1, 0], [0, 1])


def test_detectable_gain_shrinks_with_rows_and_meets_the_gain_at_rows_to_resolve():
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 300)
    a = np.where(rng.random(300) < 0.9, y, 1 - y)
    b = np.where(rng.random(300) < 0.85, y, 1 - y)
    gains = mt.detectable_gain(y, a, b, [100, 400, 1600])
    assert gains[0] > gains[1] > gains[2] and gains[0] / gains[1] == pytest.approx(2.0)
    n_star = mt.rows_to_resolve(y, a, b)
    observed = abs(np.mean(a == y) - np.mean(b == y))
    assert mt.detectable_gain(y, a, b, n_star)[()] == pytest.approx(observed)
    assert mt.rows_to_resolve(y, a, a) == float("inf")


# --------------------------------------------------------------------------------------------
# CACE
# --------------------------------------------------------------------------------------------
def test_perturbations_do_what_they_say():
    rng = np.random.default_rng(8)
    col = rng.normal(5.0, 2.0, 1000)
    ref = rng.normal(5.0, 2.0, 1000)
    before, after = mt.unit_change(10)(col, ref)
    assert np.array_equal(before, col) and np.allclose(after, 10 * col)
    _, clipped = mt.clipping(0.05, 0.95)(col, ref)
    lo, hi = np.quantile(ref, [0.05, 0.95])
    assert clipped.min() >= lo - 1e-12 and clipped.max() <= hi + 1e-12
    before, after = mt.missing_fill(0.1, 0.0)(col, ref, np.random.default_rng(0))
    missing = before != col
    assert missing.sum() == 100 and np.allclose(before[missing], ref.mean()) and np.all(after[missing] == 0)
    assert np.array_equal(after[~missing], col[~missing])
    _, shifted = mt.drift(0.25)(col, ref)
    assert np.allclose(shifted - col, 0.25 * ref.std())
    assert [p.name for p in mt.upstream_perturbations()] == ["unit x10", "clip p5-p95", "missing 10% -> 0",
                                                            "drift +0.25 sd"]


@pytest.mark.parametrize("make", [lambda: mt.unit_change(1.0), lambda: mt.unit_change(-2),
                                  lambda: mt.clipping(0.9, 0.1), lambda: mt.missing_fill(0.0),
                                  lambda: mt.drift(0.0)])
def test_perturbations_reject_bad_parameters(make):
    with pytest.raises(ValueError):
        make()


def test_a_model_that_ignores_a_feature_has_zero_sensitivity_to_it(blobs):
    X, y, Xt, yt = blobs
    model = FirstColumnThreshold(column=0)
    for feature in range(1, X.shape[1]):
        for p in mt.upstream_perturbations():
            r = mt.feature_sensitivity(model, Xt, yt, feature, p, X_ref=X)
            assert r["flip_rate"] == 0.0 and r["accuracy_drop"] == 0.0


def test_a_fitted_linear_model_with_a_zeroed_coefficient_ignores_that_feature(blobs):
    X, y, Xt, yt = blobs
    model = mt.make_logistic().fit(X, y)
    model[-1].coef_[0, 2] = 0.0
    r = mt.feature_sensitivity(model, Xt, yt, 2, mt.unit_change(1000), X_ref=X)
    assert r["flip_rate"] == 0.0
    assert mt.feature_sensitivity(model, Xt, yt, 0, mt.unit_change(1000), X_ref=X)["flip_rate"] > 0


def test_feature_sensitivity_known_answer_and_input_untouched():
    X = np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 1.0], [3.0, 1.0]])
    y = np.array([0, 0, 1, 1])
    X_copy = X.copy()
    model = lambda Z: (Z[:, 0] > 1.5).astype(int)  # noqa: E731
    r = mt.feature_sensitivity(model, X, y, 0, lambda c: c + 1.0)  # row 1 crosses the threshold
    assert r == {"flip_rate": 0.25, "accuracy_before": 1.0, "accuracy_after": 0.75, "accuracy_drop": 0.25}
    assert np.array_equal(X, X_copy)


@pytest.mark.parametrize("feature", [-1, 2, 1.0, True])
def test_feature_sensitivity_rejects_bad_feature(feature):
    with pytest.raises(ValueError, match="feature"):
        mt.feature_sensitivity(lambda Z: Z[:, 0], np.zeros((3, 2)), np.zeros(3), feature, mt.drift(1))


def test_feature_sensitivity_rejects_a_non_model():
    with pytest.raises(TypeError, match="predict"):
        mt.feature_sensitivity(42, np.zeros((3, 2)), np.zeros(3), 0, mt.drift(1))


def test_cace_sensitivity_shape_fairness_and_tables(blobs):
    X, y, Xt, yt = blobs
    lr = mt.make_logistic().fit(X, y)
    models = {"lr": lr, "lr_again": lr, "first": FirstColumnThreshold(column=0)}
    names = [f"f{j}" for j in range(X.shape[1])]
    df = mt.cace_sensitivity(models, Xt, yt, X_ref=X, feature_names=names, seed=1)
    assert len(df) == 3 * X.shape[1] * 4
    a = df[df.model == "lr"].reset_index(drop=True)
    b = df[df.model == "lr_again"].reset_index(drop=True)
    pd.testing.assert_frame_equal(a.drop(columns="model"), b.drop(columns="model"))  # same perturbed data
    table = mt.cace_table(df)
    assert list(table.index) == names and list(table.columns) == ["lr", "lr_again", "first"]
    assert table["first"].iloc[1:].eq(0).all() and table.loc["f0", "first"] > 0
    worst = mt.cace_table(df, "flip_rate", "max")
    assert (worst >= table - 1e-12).all().all()
    deps = mt.data_dependencies(df)
    assert deps["first"] == 1 and deps["lr"] >= 1


def test_cace_sensitivity_rejects_bad_inputs(blobs):
    X, y, Xt, yt = blobs
    with pytest.raises(ValueError, match="models is empty"):
        mt.cace_sensitivity({}, Xt, yt)
    with pytest.raises(ValueError, match="feature_names"):
        mt.cace_sensitivity({"m": FirstColumnThreshold()}, Xt, yt, feature_names=["a"])
    with pytest.raises(ValueError, match="columns"):
        mt.cace_table(pd.DataFrame({"model": ["a"]}))


# --------------------------------------------------------------------------------------------
# Entanglement
# --------------------------------------------------------------------------------------------
def test_a_model_blind_to_new_columns_is_not_entangled(blobs):
    X, y, Xt, yt = blobs
    r = mt.entanglement_test(threshold_factory, X, y, Xt, y_test=yt)
    assert r.changed == 0.0 and r.accuracy_before == r.accuracy_after


def test_noise_feature_changes_few_linear_predictions(blobs):
    X, y, Xt, yt = blobs
    r = mt.entanglement_test(mt.make_logistic, X, y, Xt, y_test=yt, seed=2)
    assert 0.0 <= r.changed <= 0.2
    assert r.changed == pytest.approx(np.mean(r.predictions_before != r.predictions_after))


def test_entanglement_with_a_given_informative_feature(blobs):
    X, y, Xt, yt = blobs
    # the label itself, as a new feature: a linear model must change many predictions (to fix them)
    r = mt.entanglement_test(mt.make_logistic, X, y, Xt, y_test=yt, new_train=y * 5.0, new_test=yt * 5.0)
    assert r.changed > 0.05 and r.accuracy_after > r.accuracy_before


def test_entanglement_rejects_half_given_feature(blobs):
    X, y, Xt, _ = blobs
    with pytest.raises(ValueError, match="both"):
        mt.entanglement_test(mt.make_logistic, X, y, Xt, new_train=np.zeros(len(X)))
    with pytest.raises(ValueError, match="lengths differ"):
        mt.entanglement_test(mt.make_logistic, X, y, Xt, new_train=np.zeros(3), new_test=np.zeros(len(Xt)))


# --------------------------------------------------------------------------------------------
# Costs
# --------------------------------------------------------------------------------------------
def test_model_size_grows_with_trees(blobs):
    X, y, _, _ = blobs
    small = mt.make_gradient_boosting(0, fast=True).fit(X, y)
    big = mt.make_gradient_boosting(0).fit(X, y)
    assert mt.model_size_bytes(big) > 2 * mt.model_size_bytes(small)


def test_code_dependencies_of_a_pipeline(blobs):
    X, y, _, _ = blobs
    deps = mt.code_dependencies(mt.make_logistic().fit(X, y))
    assert deps.packages == ("numpy", "sklearn")
    assert "sklearn.linear_model._logistic.LogisticRegression" in deps.classes
    assert "sklearn.preprocessing._data.StandardScaler" in deps.classes


def test_count_hyperparameters_known_values():
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    lr_params = set(LogisticRegression().get_params(deep=False))
    assert mt.count_hyperparameters(LogisticRegression()) == len(lr_params - mt.NON_TUNING_PARAMS)
    assert mt.count_hyperparameters(StandardScaler()) == 2
    assert mt.count_hyperparameters(mt.make_logistic()) == 2 + len(lr_params - mt.NON_TUNING_PARAMS)
    members = sum(mt.count_hyperparameters(f(0)) for f in (mt.make_logistic, mt.make_gradient_boosting,
                                                           mt.make_mlp))
    assert mt.count_hyperparameters(mt.make_stacked(0)) > members


def test_count_hyperparameters_rejects_non_estimators():
    with pytest.raises(TypeError, match="scikit-learn"):
        mt.count_hyperparameters(lambda x: x)


def test_source_lines_skips_docstrings_comments_and_blanks():
    def f():
        """One line.

        Two lines.
        """
        # comment

        a = 1
        return a

    assert mt.source_lines(f) == 3
    with pytest.raises(ValueError):
        mt.source_lines()


def test_cost_profile_row(blobs):
    X, y, Xt, _ = blobs
    spec = mt.model_ladder()["logistic"]
    fitted = spec(0).fit(X, y)
    row = mt.cost_profile(spec, fitted, X, y, Xt, fit_repeats=1, latency_repeats=20)
    assert set(row) == {"model", "fit_s", "p50_ms", "p99_ms", "size_kb", "hyperparameters", "packages",
                        "classes", "lines_of_code"}
    assert row["p99_ms"] >= row["p50_ms"] > 0 and row["fit_s"] > 0 and row["size_kb"] > 0
    assert row["lines_of_code"] == spec.lines_of_code
    with pytest.raises(TypeError, match="ModelSpec"):
        mt.cost_profile(mt.make_logistic, fitted, X, y, Xt)


# --------------------------------------------------------------------------------------------
# Scorecard and decision
# --------------------------------------------------------------------------------------------
@pytest.fixture
def metrics():
    return pd.DataFrame({"accuracy": [0.90, 0.93, 0.95], "diff_low": [0.0, 0.01, -0.01],
                         "p99_ms": [1.0, 3.0, 9.0], "churn": [0.0, 0.02, 0.02], "size_kb": [2.0, 2.0, 2.0]},
                        index=["simple", "boosted", "stacked"])


def test_scorecard_known_answer(metrics):
    card = mt.scorecard(metrics, "simple", {"p99_ms": 1.0, "churn": 3.0, "size_kb": 1.0})
    assert card["gain"].round(10).tolist() == [0.0, 0.03, 0.05]
    assert card["gain_is_real"].tolist() == [False, True, False]
    assert card["p99_ms_score"].tolist() == [0.0, 0.25, 1.0]
    assert card["churn_score"].tolist() == [0.0, 1.0, 1.0]
    assert card["size_kb_score"].tolist() == [0.0, 0.0, 0.0]  # all equal: no one pays more
    assert card["cost"].round(10).tolist() == [0.0, round((0.25 + 3.0) / 5, 10), round((1.0 + 3.0) / 5, 10)]
    assert list(metrics.columns) == ["accuracy", "diff_low", "p99_ms", "churn", "size_kb"], "input untouched"


def test_scorecard_cost_is_in_unit_interval_and_scale_invariant(metrics):
    rng = np.random.default_rng(9)
    for _ in range(20):
        m = metrics.copy()
        m["p99_ms"] = rng.random(3) * 10
        m["churn"] = rng.random(3)
        w = {"p99_ms": float(rng.random()) + 0.1, "churn": float(rng.random())}
        card = mt.scorecard(m, "simple", w)
        assert card["cost"].between(0, 1).all()
        scaled = m.assign(p99_ms=m["p99_ms"] * 1000)
        assert np.allclose(mt.scorecard(scaled, "simple", w)["cost"], card["cost"])
        doubled = {k: 2 * v for k, v in w.items()}
        assert np.allclose(mt.scorecard(m, "simple", doubled)["cost"], card["cost"])


@pytest.mark.parametrize("args, match", [(("nope", {"p99_ms": 1}), "baseline"), (("simple", {}), "weights"),
                                         (("simple", {"latency": 1}), "lacks"),
                                         (("simple", {"p99_ms": -1}), "non-negative"),
                                         (("simple", {"p99_ms": 0}), "non-negative")])
def test_scorecard_rejects_bad_arguments(metrics, args, match):
    with pytest.raises(ValueError, match=match):
        mt.scorecard(metrics, *args)


def test_choose_model_rules(metrics):
    card = mt.scorecard(metrics, "simple", {"p99_ms": 1.0, "churn": 1.0})
    assert mt.choose_model(card, {"p99_ms": 10}, "simple") == "boosted"  # stacked's gain is not real
    assert mt.choose_model(card, {"p99_ms": 2}, "simple") == "simple"
    card.loc["stacked", "gain_is_real"] = True
    assert mt.choose_model(card, {"p99_ms": 10}, "simple") == "stacked"
    # the baseline is over budget and no feasible gain is real: the cheapest feasible model
    card2 = card.assign(gain_is_real=False)
    assert mt.choose_model(card2, {"p99_ms": 9.5, "churn": 0.05}, "simple") == "simple"
    assert mt.choose_model(card2.assign(p99_ms=[20.0, 3.0, 9.0]), {"p99_ms": 9.5}, "simple") == "boosted"
    with pytest.raises(ValueError, match="no model fits"):
        mt.choose_model(card, {"p99_ms": 0.5}, "simple")
    with pytest.raises(ValueError, match="lacks"):
        mt.choose_model(card, {"memory": 1}, "simple")


def test_choose_model_ties_go_to_the_cheaper_then_the_name():
    card = pd.DataFrame({"accuracy": [0.9, 0.95, 0.95], "gain_is_real": [False, True, True],
                         "cost": [0.0, 0.6, 0.4]}, index=["base", "b", "a"])
    assert mt.choose_model(card, {}, "base") == "a"
    card.loc["a", "cost"] = 0.6
    assert mt.choose_model(card, {}, "base") == "a"


def test_the_ladder_runs_end_to_end(blobs):
    X, y, Xt, yt = blobs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the MLP may stop early on this noisy synthetic task
        fitted = {n: spec(0, fast=True).fit(X, y) for n, spec in mt.model_ladder().items()}
    df = mt.cace_sensitivity(fitted, Xt, yt, X_ref=X, features=[0, 1])
    assert set(df["model"]) == set(mt.LADDER) and df["flip_rate"].between(0, 1).all()


def test_the_fast_mlp_converges_on_the_lab_data():
    from tradeoffs import data

    split = data.load_breast_cancer_split()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a ConvergenceWarning would clutter the lab's smoke run
        mlp = mt.make_mlp(0, fast=True).fit(split.X_train, split.y_train)
    assert mlp[-1].n_iter_ < mlp[-1].max_iter
