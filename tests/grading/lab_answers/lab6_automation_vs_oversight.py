"""Lab 6 submissions that the real-lab grading tests paste into the released notebook.

LIBRARY_ANSWERS answers every graded cell with the closest function left in ``tradeoffs``. The package
keeps mechanisms only: top-label confidence, the Brier score, ``softmax(z / T)`` (``scale_logits``),
the coverage-risk tools, candidate thresholds, the hour-by-hour queue simulator, the binomial risk
bound and the monitoring run that takes an alarm. No ECE, no reliability table, no NLL or temperature
fit, no expected review cost, no cost-minimising threshold, no p-chart and no reader of cost tables or
monitoring logs. It must earn at most 10% of the autograded points.

PARTIAL is Part 6 with only the upper control limit: right on the core cases (rises alarm, days inside
the band do not, limits follow each day's total and ``z``), wrong on the edge cases (a fall below the
lower limit, baselines of 0 and 1, input validation).
"""

LIBRARY_ANSWERS: dict[str, str] = {
    # The Brier score is the package's only calibration summary; the coverage-risk curve the only table
    # of accuracy by confidence (one row per distinct confidence, not per bin).
    "q1_reliability": '''
from tradeoffs import oversight as ov

def reliability_bins(y_true, proba, n_bins=10):
    conf, ok = ov.top_label(y_true, proba)
    curve = ov.coverage_risk_curve(conf, ok)
    return pd.DataFrame({"lower": curve["threshold"], "upper": curve["threshold"], "count": curve["accepted"],
                         "confidence": curve["threshold"], "accuracy": 1 - curve["risk"]})

def ece(y_true, proba, n_bins=10):
    return ov.brier_score(y_true, proba)
''',
    # softmax(z / T) from the package, the log of the true class's probability (clipped, as
    # proba_to_logits does); nothing in the package fits a temperature, so T stays 1.
    "q2_temperature": '''
from tradeoffs import oversight as ov

def softmax_nll(logits, y_true, temperature=1.0):
    log_p = ov.proba_to_logits(ov.scale_logits(logits, temperature))
    y = np.asarray(y_true)
    return float(-np.mean(log_p[np.arange(y.shape[0]), y]))

def temperature_fit(logits, y_true):
    return 1.0
''',
    # The queue simulator prices a threshold: run it on the items, one arrival of each per hour.
    "q3_expected_cost": '''
from tradeoffs import oversight as ov

def expected_cost(confidence, correct, cost_if_wrong, threshold, review_cost, capacity, reviewer_accuracy,
                  follow_prob):
    conf = np.asarray(confidence, dtype=float)
    ok = np.asarray(correct, dtype=float) >= 0.5
    hours = 50
    per_hour = np.full(hours, conf.size)
    cap = conf.size if capacity is None else capacity
    sim = ov.simulate_review_queue(conf, ok, cost_if_wrong, float(threshold), arrivals=per_hour,
                                   capacity=np.full(hours, float(cap)), review_cost=review_cost,
                                   reviewer_accuracy=reviewer_accuracy, follow_prob=follow_prob, max_wait=0)
    return float(sim["cost"].sum() / sim["arrivals"].sum())
''',
    # The package's threshold picker is selective_threshold: the most coverage at a target risk, here
    # the break-even error rate review_cost / cost_if_wrong.
    "q4_min_cost_threshold": '''
from tradeoffs import oversight as ov

def min_cost_threshold(confidence, correct, cost_if_wrong, thresholds, review_cost, capacity,
                       reviewer_accuracy, follow_prob):
    conf = np.asarray(confidence, dtype=float)
    target = min(1.0, float(review_cost) / float(np.mean(cost_if_wrong)))
    chosen = ov.selective_threshold(conf, np.asarray(correct, dtype=float) >= 0.5, target)
    t = float(min(chosen.threshold, 1.0))
    return t, float(np.mean(cost_if_wrong) * (1 - chosen.coverage) * chosen.risk)
''',
    # Nothing in the package reads a cost table; the closest lists the candidate thresholds.
    "q5_capacity_blind_penalty": '''
from tradeoffs import oversight as ov

def capacity_blind_penalty(cost_table):
    return float(ov.candidate_thresholds(cost_table["threshold"].to_numpy())[-2]), 0.0
''',
    # The package's binomial bound (Clopper-Pearson) at the 3-sigma tail: alarm when even the day's
    # lower bound is above the baseline (rises only).
    "q6_drift_alarm": '''
from tradeoffs import oversight as ov

def drift_alarm(baseline_rate, counts, totals, z=3.0):
    from scipy.stats import norm
    delta = float(norm.sf(z))
    return np.array([1 - ov.risk_upper_bound(int(t - c), int(t), delta) > baseline_rate
                     for c, t in zip(counts, totals)])
''',
    # Nothing in the package reads a monitoring log; the charts' names are all it offers.
    "q7_first_alarm_day": '''
from tradeoffs import oversight as ov

def first_alarm_day(log, chart):
    return None if chart in ov.MONITOR_CHARTS else 0
''',
}

PARTIAL_PART = "q6"
PARTIAL: dict[str, str] = {
    "q6_drift_alarm": '''
def drift_alarm(baseline_rate, counts, totals, z=3.0):
    counts = np.asarray(counts, dtype=float)
    totals = np.asarray(totals, dtype=float)
    return counts / totals > baseline_rate + z * np.sqrt(baseline_rate * (1 - baseline_rate) / totals)
''',
}
