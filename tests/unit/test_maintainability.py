"""Unit tests for tradeoffs.maintainability (the mechanisms of Lab 2): constructed cases with known answers, properties on
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
# Retraining: another seed, 1% of rows changed, one extra column
# --------------------------------------------------------------------------------------------
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


def test_identical_retrains_reproduce_the_model(blobs):
    X, y, Xt, _ = blobs
    for factory in (mt.make_logistic, lambda s: mt.make_gradient_boosting(s, fast=True)):
        P = mt.retrain_predictions(factory, X, y, Xt, kind="identical", n_retrains=2)
        assert P.shape == (3, len(Xt)) and np.all(P == P[0])


def test_a_model_that_ignores_its_seed_gives_the_same_predictions(blobs):
    X, y, Xt, _ = blobs
    P = mt.retrain_predictions(threshold_factory, X, y, Xt, kind="seed", n_retrains=3)
    assert P.shape == (4, len(Xt)) and np.all(P == P[0])


def test_stochastic_boosting_moves_with_the_seed(blobs):
    X, y, Xt, _ = blobs
    P = mt.retrain_predictions(lambda s: mt.make_gradient_boosting(s, fast=True), X, y, Xt, kind="seed",
                               n_retrains=3)
    assert (P[1:] != P[0]).any() and (P[1:] == P[0]).mean() > 0.5


def test_row_retrains_use_the_pool_and_a_given_reference(blobs):
    X, y, Xt, yt = blobs
    ref = mt.make_logistic(0).fit(X, y)
    with_ref = mt.retrain_predictions(mt.make_logistic, X, y, Xt, kind="rows", n_retrains=2, fraction=0.1,
                                      X_pool=Xt[:40], y_pool=yt[:40], reference=ref)
    without = mt.retrain_predictions(mt.make_logistic, X, y, Xt, kind="rows", n_retrains=2, fraction=0.1,
                                     X_pool=Xt[:40], y_pool=yt[:40])
    assert np.array_equal(with_ref, without)
    assert np.array_equal(with_ref[0], ref.predict(Xt)), "row 0 is the reference model"


@pytest.mark.parametrize("kwargs, match", [({"kind": "weather"}, "kind"), ({"n_retrains": 0}, "n_retrains"),
                                           ({"seed": -2}, "seed")])
def test_retrain_predictions_rejects_bad_arguments(blobs, kwargs, match):
    X, y, Xt, _ = blobs
    with pytest.raises(ValueError, match=match):
        mt.retrain_predictions(mt.make_logistic, X, y, Xt, **kwargs)


def test_retrain_predictions_rejects_feature_mismatch(blobs):
    X, y, Xt, _ = blobs
    with pytest.raises(ValueError, match="features"):
        mt.retrain_predictions(mt.make_logistic, X, y, Xt[:, :3])


def test_no_churn_or_scorecard_answers_in_the_package():
    """The lab's graded parts are the learner's: the package must not answer them (DESIGN rule 2)."""
    for name in ("prediction_churn", "churn_matrix", "pairwise_churn", "retrain_churn", "paired_diff_ci",
                 "metric_ci", "feature_sensitivity", "cace_sensitivity", "cace_table", "data_dependencies",
                 "scorecard", "choose_model"):
        assert not hasattr(mt, name), name


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


def test_auc_ci_contains_the_estimate_matches_scikit_learn_and_is_reproducible():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 200)
    s = y * 0.5 + rng.random(200)
    ci = mt.auc_ci(y, s, n_boot=300)
    assert ci.estimate == pytest.approx(roc_auc_score(y, s))
    assert ci.low <= ci.estimate <= ci.high <= 1.0
    assert mt.auc_ci(y, s, n_boot=300) == ci
    narrow = mt.auc_ci(y, s, n_boot=300, level=0.5)
    assert narrow.high - narrow.low < ci.high - ci.low


@pytest.mark.parametrize("kwargs, match", [({"n_boot": 10}, "n_boot"), ({"level": 1.5}, "level"),
                                           ({"seed": -1}, "seed")])
def test_auc_ci_rejects_bad_arguments(kwargs, match):
    y = np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match=match):
        mt.auc_ci(y, [0.1, 0.9, 0.2, 0.8], **kwargs)


def test_auc_ci_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="lengths differ"):
        mt.auc_ci([0, 1, 0], [0.1, 0.9])


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


def _flips(predict, X, y, feature, transform):
    """A measure for cace_sweep, written here for the tests (the lab's learner writes their own)."""
    Z = X.copy()
    Z[:, feature] = transform(X[:, feature].copy())
    before, after = predict(X), predict(Z)
    return float(np.mean(before != after)), float(np.mean(before == y) - np.mean(after == y))


def test_cace_sweep_a_model_that_ignores_a_feature_does_not_move(blobs):
    X, y, Xt, yt = blobs
    df = mt.cace_sweep({"first": FirstColumnThreshold(column=0)}, Xt, yt, _flips, X_ref=X)
    assert len(df) == X.shape[1] * 4
    assert df[df.feature_index > 0]["flip_rate"].eq(0).all() and df[df.feature_index == 0]["flip_rate"].max() > 0


def test_cace_sweep_gives_every_model_the_same_rows_and_its_own_copy(blobs):
    X, y, Xt, yt = blobs
    lr = mt.make_logistic().fit(X, y)
    seen = []

    def careless(predict, X_, y_, feature, transform):
        seen.append(X_.copy())
        X_[:, feature] = transform(X_[:, feature])  # modifies its input: the next model must not see it
        return 0.0, 0.0

    Xt_copy = Xt.copy()
    mt.cace_sweep({"a": lr, "b": lr}, Xt, yt, careless, features=[1], perturbations=[mt.missing_fill(0.2)],
                  X_ref=X, seed=3)
    assert len(seen) == 2 and np.array_equal(seen[0], seen[1])
    assert np.array_equal(Xt, Xt_copy)
    names = [f"f{j}" for j in range(X.shape[1])]
    df = mt.cace_sweep({"lr": lr, "lr_again": lr}, Xt, yt, _flips, X_ref=X, feature_names=names, seed=1)
    a = df[df.model == "lr"].reset_index(drop=True)
    b = df[df.model == "lr_again"].reset_index(drop=True)
    pd.testing.assert_frame_equal(a.drop(columns="model"), b.drop(columns="model"))
    assert list(df.columns) == ["model", "feature", "feature_index", "perturbation", "flip_rate", "accuracy_drop"]


def test_cace_sweep_passes_the_changed_column_and_the_old_fill(blobs):
    X, y, Xt, yt = blobs
    got = {}

    def record(predict, X_, y_, feature, transform):
        got["before"], got["after"] = X_[:, feature].copy(), transform(X_[:, feature])
        return 0.0, 0.0

    mt.cace_sweep({"m": FirstColumnThreshold()}, Xt, yt, record, features=[2], perturbations=[mt.unit_change(10)])
    assert np.allclose(got["before"], Xt[:, 2]) and np.allclose(got["after"], 10 * Xt[:, 2])
    mt.cace_sweep({"m": FirstColumnThreshold()}, Xt, yt, record, features=[2], perturbations=[mt.missing_fill(0.5, -7.0)],
                  X_ref=X)
    missing = got["after"] == -7.0
    assert missing.sum() == round(0.5 * len(Xt)) and np.allclose(got["before"][missing], X[:, 2].mean())


def test_cace_sweep_rejects_bad_inputs(blobs):
    X, y, Xt, yt = blobs
    with pytest.raises(ValueError, match="models is empty"):
        mt.cace_sweep({}, Xt, yt, _flips)
    with pytest.raises(ValueError, match="feature_names"):
        mt.cace_sweep({"m": FirstColumnThreshold()}, Xt, yt, _flips, feature_names=["a"])
    with pytest.raises(ValueError, match="column indices"):
        mt.cace_sweep({"m": FirstColumnThreshold()}, Xt, yt, _flips, features=[-1])
    with pytest.raises(TypeError, match="measure"):
        mt.cace_sweep({"m": FirstColumnThreshold()}, Xt, yt, None)
    with pytest.raises(TypeError, match="flip_rate"):
        mt.cace_sweep({"m": FirstColumnThreshold()}, Xt, yt, lambda *a: 0.5, features=[0])


def test_logistic_variants_and_their_bad_arguments(blobs):
    X, y, Xt, _ = blobs
    strong, weak = mt.make_logistic(0, C=0.01).fit(X, y), mt.make_logistic(0, C=100.0).fit(X, y)
    assert np.abs(strong[-1].coef_).sum() < np.abs(weak[-1].coef_).sum(), "stronger L2, smaller weights"
    quantile = mt.make_logistic(0, scaler="quantile").fit(X, y)
    far = Xt.copy()
    far[:, 0] = 1e6
    edge = Xt.copy()
    edge[:, 0] = X[:, 0].max()
    assert np.allclose(quantile.predict_proba(far), quantile.predict_proba(edge)), "beyond the range: its edge"
    with pytest.raises(ValueError, match="C must"):
        mt.make_logistic(0, C=0)
    with pytest.raises(ValueError, match="scaler"):
        mt.make_logistic(0, scaler="robust")


# --------------------------------------------------------------------------------------------
# Entanglement
# --------------------------------------------------------------------------------------------
def test_a_model_blind_to_new_columns_is_not_entangled(blobs):
    X, y, Xt, yt = blobs
    r = mt.entanglement_test(threshold_factory, X, y, Xt, y_test=yt)
    assert np.array_equal(r.predictions_before, r.predictions_after) and r.accuracy_before == r.accuracy_after


def test_noise_feature_changes_few_linear_predictions(blobs):
    X, y, Xt, yt = blobs
    r = mt.entanglement_test(mt.make_logistic, X, y, Xt, y_test=yt, seed=2)
    assert np.mean(r.predictions_before != r.predictions_after) <= 0.2
    assert r.accuracy_before == pytest.approx(np.mean(r.predictions_before == yt))


def test_entanglement_with_a_given_informative_feature(blobs):
    X, y, Xt, yt = blobs
    # the label itself, as a new feature: a linear model must change many predictions (to fix them)
    r = mt.entanglement_test(mt.make_logistic, X, y, Xt, y_test=yt, new_train=y * 5.0, new_test=yt * 5.0)
    assert np.mean(r.predictions_before != r.predictions_after) > 0.05 and r.accuracy_after > r.accuracy_before


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
# End to end
# --------------------------------------------------------------------------------------------
def test_the_ladder_runs_end_to_end(blobs):
    X, y, Xt, yt = blobs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the MLP may stop early on this noisy synthetic task
        fitted = {n: spec(0, fast=True).fit(X, y) for n, spec in mt.model_ladder().items()}
    df = mt.cace_sweep(fitted, Xt, yt, _flips, X_ref=X, features=[0, 1])
    assert set(df["model"]) == set(mt.LADDER) and df["flip_rate"].between(0, 1).all()


def test_the_fast_mlp_converges_on_the_lab_data():
    from tradeoffs import data

    split = data.load_breast_cancer_split()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a ConvergenceWarning would clutter the lab's smoke run
        mlp = mt.make_mlp(0, fast=True).fit(split.X_train, split.y_train)
    assert mlp[-1].n_iter_ < mlp[-1].max_iter
