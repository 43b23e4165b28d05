"""Lab 2 submissions that the real-lab grading tests paste into the released notebook.

LIBRARY_ANSWERS answers every graded cell with the closest function left in ``tradeoffs`` (the
package keeps mechanisms only: it trains, retrains, perturbs, resamples and times, but measures no
churn, no CACE sensitivity, no share of resamples in which one model is not better, and builds no
scorecard), so it must earn at most 10% of the autograded points. PARTIAL is the solution's Part 3
without the negative-index check: right on the core cases, wrong on the edge case ``feature=-1``.
"""

LIBRARY_ANSWERS: dict[str, str] = {
    # The closest: the package's percentile bootstrap of one statistic (measure.bootstrap_ci, the same
    # default_rng(seed) draw of (n_boot, n) indices and np.quantile as the stated recipe) of the per-row
    # differences that maint.stats._accuracy_deltas builds. It gives the interval exactly; it does not give
    # the share of resamples in which a is not better, so that share can only be read off the interval.
    "q1_paired_bootstrap_diff": '''
from tradeoffs import measure
from tradeoffs.maintainability.stats import _accuracy_deltas

def paired_bootstrap_diff(y_true, pred_a, pred_b, n_boot=2000, level=0.95, seed=0):
    if not 0 < level < 1:
        raise ValueError("level")
    d = _accuracy_deltas(y_true, pred_a, pred_b)
    low, high = measure.bootstrap_ci(d, np.mean, level=level, n_boot=n_boot, seed=seed)
    p_not_better = 0.0 if low > 0 else 1.0 if high <= 0 else 0.5
    return float(d.mean()), low, high, p_not_better
''',
    # No churn function is left; the closest mechanism returns the predictions whose churn is asked for.
    "q2_churn_vs_reference": '''
from tradeoffs import maintainability as maint

def churn_vs_reference(predictions):
    P = np.asarray(predictions)
    return np.array([maint.detectable_gain(P[0], P[i], P[0], P.shape[1])[()] for i in range(1, len(P))])
''',
    # The sweep needs the measure itself: calling it without one is all the package offers.
    "q3_feature_sensitivity": '''
from tradeoffs import maintainability as maint

def feature_sensitivity(predict, X, y, feature, transform):
    df = maint.cace_sweep({"m": predict}, X, y, None, features=[feature],
                       perturbations=[maint.Perturbation.from_transform("t", transform)])
    return float(df["flip_rate"].iloc[0]), float(df["accuracy_drop"].iloc[0])
''',
    # No table reader is left; the perturbation names are the closest thing the package knows.
    "q4_fragile_features": '''
from tradeoffs import maintainability as maint

def fragile_features(cace, model, change, threshold):
    names = [p.name for p in maint.upstream_perturbations()]
    rows = cace[(cace["model"] == model) & (cace["perturbation"].isin(names))]
    return sorted(rows.loc[rows["flip_rate"] > threshold, "feature"].unique().tolist())
''',
    # No scorecard is left; the cost profile is the package's nearest row of costs.
    "q5_scorecard": '''
from tradeoffs import maintainability as maint

def scorecard(metrics, baseline, weights):
    card = metrics.copy()
    card["gain"] = card["accuracy"] - card.loc[baseline, "accuracy"]
    card["gain_is_real"] = False
    card["cost"] = 0.0
    return card
''',
    # No decision rule is left: ship the model of the ladder the package lists first.
    "q6_choose_model": '''
from tradeoffs import maintainability as maint

def choose_model(card, budget, baseline):
    return maint.LADDER[0]
''',
}

PARTIAL_PART = "q3"
PARTIAL: dict[str, str] = {
    "q3_feature_sensitivity": '''
def feature_sensitivity(predict, X, y, feature, transform):
    X = np.asarray(X, dtype=float)
    y = np.asarray(y)
    if feature >= X.shape[1]:          # forgets negative indices, floats and bools
        raise ValueError(f"feature {feature} is not a column of X")
    if len(y) != len(X):
        raise ValueError("one label per row")
    changed = X.copy()
    changed[:, feature] = transform(X[:, feature].copy())
    before, after = np.asarray(predict(X)), np.asarray(predict(changed))
    return float(np.mean(before != after)), float(np.mean(before == y) - np.mean(after == y))
''',
}
