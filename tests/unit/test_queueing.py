"""The simulator against queueing theory and hand-worked cases."""

import numpy as np
import pandas as pd
import pytest

from tradeoffs import queueing as q


# Test policies for the pluggable policy step. Deliberately simple ones: the simulator's job is to
# call the rule it is given and respect its answer, whatever the rule is.
def start_now(free_at, queued, upcoming, max_batch_size, max_wait_s):
    """Never waits: whoever is queued goes now."""
    return free_at, min(len(queued), max_batch_size)


def wait_full_wait(free_at, queued, upcoming, max_batch_size, max_wait_s):
    """Always holds the batch for max_wait_s after the server frees (ignores fill time)."""
    start = free_at + max_wait_s
    arrived = len(queued) + int(np.searchsorted(np.asarray(upcoming), start, side="right"))
    return start, min(arrived, max_batch_size)


@pytest.mark.parametrize("rho", [0.3, 0.5, 0.7])
def test_mm1_mean_wait_matches_theory(rho):
    mu = 10.0
    lam = rho * mu
    curve = q.ServiceCurve.constant(1 / mu, distribution="exponential")
    waits = [q.summarise(q.simulate(q.poisson_arrivals(lam, n=60_000, seed=s), q.NoBatching(), curve, seed=s + 100),
                         warmup_fraction=0.05)["mean_wait_s"] for s in range(3)]
    assert np.mean(waits) == pytest.approx(q.mm1_mean_wait(lam, mu), rel=0.05)


@pytest.mark.parametrize("rho", [0.3, 0.5, 0.7])
def test_md1_mean_wait_matches_theory(rho):
    mu = 20.0
    lam = rho * mu
    curve = q.ServiceCurve.constant(1 / mu)
    waits = [q.summarise(q.simulate(q.poisson_arrivals(lam, n=60_000, seed=s), q.NoBatching(), curve),
                         warmup_fraction=0.05)["mean_wait_s"] for s in range(3)]
    assert np.mean(waits) == pytest.approx(q.md1_mean_wait(lam, mu), rel=0.05)


def test_no_batching_hand_case():
    r = q.simulate([0.0, 0.1, 0.15, 1.0], q.NoBatching(), q.ServiceCurve.constant(0.2))
    assert r["start"].tolist() == pytest.approx([0.0, 0.2, 0.4, 1.0])
    assert r["finish"].tolist() == pytest.approx([0.2, 0.4, 0.6, 1.2])
    assert (r["batch_size"] == 1).all()


def test_batch_at_a_time_follows_the_policy_it_is_given():
    # B=3, the policy holds every batch 0.05 s after the server frees: the first batch starts at 0.05
    # with the 2 arrived by then; the second (server free at 0.25, idle until 0.5) at 0.55 with 3 of the
    # 4 arrived; the last, queued, at 0.55 + 0.2 + 0.05.
    curve = q.ServiceCurve([1, 3], [0.1, 0.2])
    r = q.simulate([0.0, 0.01, 0.5, 0.51, 0.52, 0.53], q.BatchAtATime(3, 0.05, wait_full_wait), curve)
    assert r["start"].tolist() == pytest.approx([0.05, 0.05, 0.55, 0.55, 0.55, 0.80])
    assert r["batch_size"].tolist() == [2, 2, 3, 3, 3, 1]
    assert r["finish"].iloc[0] == pytest.approx(0.05 + curve.mean(2))
    now = q.simulate([0.0, 0.01, 0.5, 0.51, 0.52, 0.53], q.BatchAtATime(3, 0.05, start_now), curve)
    assert now["batch_size"].tolist() == [1, 1, 1, 3, 3, 3]


def test_policy_answers_are_checked_and_explained():
    def early(free_at, queued, upcoming, b, w):
        return free_at - 1.0, 1

    def too_many(free_at, queued, upcoming, b, w):
        return free_at, len(queued) + 5

    def not_a_pair(free_at, queued, upcoming, b, w):
        return free_at

    for bad, match in ((early, "before the server is free"), (too_many, "at most"), (not_a_pair, r"\(start, size\)")):
        with pytest.raises(ValueError, match=match):
            q.simulate([0.0, 0.5], q.BatchAtATime(2, 0.0, bad), q.ServiceCurve.constant(0.1))
    with pytest.raises(TypeError, match="next_batch"):
        q.BatchAtATime(2, 0.0, None)
    with pytest.raises(ValueError, match="next_batch"):
        q.Continuous(4, max_wait_s=0.01)


def test_continuous_asks_the_policy_at_step_boundaries():
    """With a rule that holds requests back, a busy server decodes on and admits them at the first step
    boundary at or after the rule's start; an idle server sleeps until then."""
    curve = q.ServiceCurve.constant(0.01)
    pol = q.Continuous(4, 0.025, wait_full_wait)
    r = q.simulate([0.0, 0.001], pol, curve, steps=[10, 1])
    # idle at 0: the rule says 0.025 -> both start together at 0.025
    assert r["start"].tolist() == pytest.approx([0.025, 0.025])
    greedy = q.simulate([0.0, 0.001], q.Continuous(4, 0.0, start_now), curve, steps=[10, 1])
    default = q.simulate([0.0, 0.001], q.Continuous(4), curve, steps=[10, 1])
    assert greedy.equals(default)
    assert greedy["start"].tolist() == pytest.approx([0.0, 0.01])

    def deadline_only(free_at, queued, upcoming, max_batch_size, max_wait_s):
        start = max(free_at, queued[0] + max_wait_s)
        arrived = len(queued) + int(np.searchsorted(np.asarray(upcoming), start, side="right"))
        return start, min(arrived, max_batch_size)

    busy = q.simulate([0.0, 0.75], q.Continuous(4, 0.5, deadline_only), q.ServiceCurve.constant(0.25), steps=[10, 1])
    # request 0 starts at its deadline 0.5; request 1 arrives at 0.75 while it decodes: the rule says 1.25
    # at the boundaries 0.75 and 1.0, and "now" at 1.25
    assert busy["start"].tolist() == pytest.approx([0.5, 1.25])


def test_continuous_lets_short_requests_leave_early():
    curve = q.ServiceCurve.constant(0.01)
    r = q.simulate([0.0, 0.0], q.Continuous(4), curve, steps=[2, 10])
    assert r["finish"].tolist() == pytest.approx([0.02, 0.10])
    # A static batch would hold the short one until the long one finishes.
    static = q.simulate([0.0, 0.0], q.BatchAtATime(4, 0.0, start_now), q.ServiceCurve.constant(0.10))
    assert static["finish"].iloc[0] > r["finish"].iloc[0]


def test_continuous_joins_at_step_boundaries():
    curve = q.ServiceCurve.constant(0.01)
    r = q.simulate([0.0, 0.015], q.Continuous(2), curve, steps=[5, 1])
    assert r["start"].iloc[1] == pytest.approx(0.02)
    assert r["finish"].iloc[1] == pytest.approx(0.03)
    assert r["finish"].iloc[0] == pytest.approx(0.05)


def test_continuous_respects_max_batch():
    r = q.simulate(np.zeros(5), q.Continuous(2), q.ServiceCurve.constant(0.01), steps=1)
    assert r["batch_size"].max() == 2
    assert r["finish"].max() == pytest.approx(0.03)


def test_batching_beats_no_batching_under_load():
    curve = q.ServiceCurve([1, 8, 32], [0.010, 0.020, 0.060])
    arrivals = q.poisson_arrivals(90, n=4000, seed=1)  # 90% utilisation for the naive server
    naive = q.summarise(q.simulate(arrivals, q.NoBatching(), curve))
    batched = q.summarise(q.simulate(arrivals, q.BatchAtATime(8, 0.005, start_now), curve))
    assert batched["p99_s"] < naive["p99_s"]
    assert batched["mean_batch_size"] > 1


def test_summary_fields_and_utilisation():
    r = q.simulate(q.poisson_arrivals(5.0, n=3000, seed=2), q.NoBatching(), q.ServiceCurve.constant(0.1))
    s = q.summarise(r)
    assert s["utilisation"] == pytest.approx(0.5, abs=0.05)
    assert s["throughput_per_s"] == pytest.approx(5.0, rel=0.1)
    assert s["p50_s"] <= s["p90_s"] <= s["p99_s"]


def test_max_rate_under_slo_is_monotone_in_slo():
    curve = q.ServiceCurve([1, 8], [0.01, 0.03])
    tight = q.max_rate_under_slo(curve, q.BatchAtATime(8, 0.005, start_now), slo_p99_s=0.05, n=1500)
    loose = q.max_rate_under_slo(curve, q.BatchAtATime(8, 0.005, start_now), slo_p99_s=0.2, n=1500)
    assert 0 < tight <= loose
    assert q.max_rate_under_slo(curve, q.NoBatching(), slo_p99_s=0.001, n=500) == 0.0


def test_sweep_shape():
    df = q.sweep([10, 50], {"naive": q.NoBatching(), "batched": q.BatchAtATime(8, 0.01, start_now)},
                 q.ServiceCurve([1, 8], [0.01, 0.03]), n=500)
    assert len(df) == 4 and set(df["policy"]) == {"naive", "batched"}


def test_service_curve_interpolates_and_extrapolates():
    c = q.ServiceCurve([1, 4, 8], [0.01, 0.02, 0.04])
    assert c.mean(2) == pytest.approx(0.01 + 0.01 / 3)
    assert c.mean(16) == pytest.approx(0.08)
    assert c.throughput(8) == pytest.approx(200)
    t = pd.DataFrame({"batch_size": [4, 1], "seconds": [0.02, 0.01]})
    assert q.ServiceCurve.from_table(t).mean(1) == pytest.approx(0.01)


@pytest.mark.parametrize("sizes, secs", [([], []), ([2, 1], [0.1, 0.1]), ([1], [0]), ([0, 1], [1, 1])])
def test_service_curve_rejects_bad_points(sizes, secs):
    with pytest.raises(ValueError):
        q.ServiceCurve(sizes, secs)


def test_bad_inputs_are_explained():
    with pytest.raises(ValueError, match="sorted"):
        q.simulate([1.0, 0.5], q.NoBatching(), q.ServiceCurve.constant(0.1))
    with pytest.raises(ValueError, match="exactly one"):
        q.poisson_arrivals(1.0)
    with pytest.raises(ValueError, match="rate"):
        q.poisson_arrivals(0, n=3)
    with pytest.raises(ValueError, match="max_batch_size"):
        q.BatchAtATime(0, 0.1, start_now)
    with pytest.raises(ValueError, match="unstable"):
        q.mm1_mean_wait(2, 1)
    with pytest.raises(TypeError, match="policy"):
        q.simulate([0.0], "fifo", q.ServiceCurve.constant(0.1))
    with pytest.raises(ValueError, match="steps"):
        q.simulate([0.0], q.NoBatching(), q.ServiceCurve.constant(0.1), steps=3)


def test_arrivals_from_timestamps():
    ts = pd.to_datetime(["2026-01-01 00:00:10", "2026-01-01 00:00:00", "2026-01-01 00:01:00"])
    assert q.arrivals_from_timestamps(ts, speedup=10).tolist() == pytest.approx([0, 1, 6])


# --------------------------------------------------------------------------------------------
# Added for lab 4: prefill in the continuous policy, and the knee of a latency curve
# --------------------------------------------------------------------------------------------
def test_continuous_prefill_hand_case():
    # Request 0 arrives alone: prefill 0.5 s (its first token), then 2 decode steps of 0.01 s.
    # Request 1 arrives at 0.2 s, joins at the next step boundary (0.51): prefill 0.5 s stalls the
    # batch, then both decode together.
    curve = q.ServiceCurve.constant(0.01)
    pre = q.ServiceCurve.constant(0.5)
    r = q.simulate([0.0, 0.2], q.Continuous(4), curve, steps=[3, 2], prefill=pre)
    assert r["start"].tolist() == pytest.approx([0.0, 0.51])
    assert r["finish"].tolist() == pytest.approx([0.5 + 0.01 + 0.5 + 0.01, 0.51 + 0.5 + 0.01])


def test_continuous_prefill_single_slot_equals_no_batching():
    """With one slot, prefill + (k-1) decode steps is a single server with that service time."""
    arrivals = q.poisson_arrivals(1.5, n=400, seed=4)
    k = 6
    pre, step = 0.2, 0.05
    cont = q.simulate(arrivals, q.Continuous(1), q.ServiceCurve.constant(step), steps=k,
                      prefill=q.ServiceCurve.constant(pre))
    naive = q.simulate(arrivals, q.NoBatching(), q.ServiceCurve.constant(pre + (k - 1) * step))
    assert cont["finish"].to_numpy() == pytest.approx(naive["finish"].to_numpy())


def test_continuous_without_prefill_is_unchanged():
    arrivals = q.poisson_arrivals(20, n=300, seed=5)
    curve = q.ServiceCurve([1, 8], [0.01, 0.02])
    a = q.simulate(arrivals, q.Continuous(8), curve, steps=4)
    b = q.simulate(arrivals, q.Continuous(8), curve, steps=4, prefill=None)
    assert a.equals(b)


def test_prefill_one_step_request_finishes_at_prefill():
    r = q.simulate([0.0], q.Continuous(2), q.ServiceCurve.constant(0.01), steps=1, prefill=q.ServiceCurve.constant(0.3))
    assert r["finish"].iloc[0] == pytest.approx(0.3)


def test_prefill_rejected_for_static_batching_and_passed_by_helpers():
    with pytest.raises(ValueError, match="prefill"):
        q.simulate([0.0], q.BatchAtATime(2, 0.0, start_now), q.ServiceCurve.constant(0.1),
                   prefill=q.ServiceCurve.constant(0.1))
    curve, pre = q.ServiceCurve.constant(0.01), q.ServiceCurve.constant(0.2)
    df = q.sweep([2.0], {"c": q.Continuous(4)}, curve, n=300, steps=3, prefill=pre)
    assert df["p50_s"].iloc[0] >= 0.2 + 2 * 0.01 - 1e-9
    with_pre = q.max_rate_under_slo(curve, q.Continuous(4), slo_p99_s=1.0, n=500, steps=3, prefill=pre)
    without = q.max_rate_under_slo(curve, q.Continuous(4), slo_p99_s=1.0, n=500, steps=3)
    assert 0 < with_pre < without


def test_knee_hand_cases_and_errors():
    assert q.knee([1, 2, 3, 4], [1.0, 1.1, 1.5, 3.0]) == pytest.approx(10 / 3)
    assert q.knee([4, 1, 3, 2], [3.0, 1.0, 1.5, 1.1]) == pytest.approx(10 / 3)  # order does not matter
    assert np.isnan(q.knee([1, 2, 3], [1.0, 1.2, 1.9]))
    assert q.knee([1, 2, 3], [1.0, 1.2, np.inf]) == 2.0  # a failed level: the knee is before it
    assert q.knee([1, 2], [1.0, 3.0], factor=3.0) == 2.0
    for rates, lat in (([1], [1.0]), ([1, 2], [1.0]), ([1, 2], [1.0, np.nan]), ([0, 1], [1.0, 2.0])):
        with pytest.raises(ValueError):
            q.knee(rates, lat)
    with pytest.raises(ValueError, match="factor"):
        q.knee([1, 2], [1.0, 2.0], factor=1.0)


def test_knee_of_md1_curve_is_below_capacity():
    mu = 10.0
    rates = np.linspace(1, 9.5, 12)
    lat = [q.md1_mean_wait(r, mu) + 1 / mu for r in rates]
    k = q.knee(rates, lat)
    # mean latency doubles when rho / (2 (1 - rho)) = 1, i.e. rho = 2/3 (approx., from interpolation)
    assert 0.6 * mu < k < 0.75 * mu


def test_saturation_rate_hand_cases():
    assert q.saturation_rate(q.ServiceCurve([1, 8], [0.01, 0.04]), q.BatchAtATime(8, 0.0, start_now)) == pytest.approx(200.0)
    assert q.saturation_rate(q.ServiceCurve.constant(0.05), q.NoBatching()) == pytest.approx(20.0)
    step, pre = q.ServiceCurve.constant(0.01), q.ServiceCurve([1, 4], [0.1, 0.4])
    assert q.saturation_rate(step, q.Continuous(4), steps=11, prefill=pre) == pytest.approx(4 / (10 * 0.01 + 0.4))
    with pytest.raises(TypeError, match="policy"):
        q.saturation_rate(step, "fifo")


def test_capacity_at_slo_matches_mm1_theory():
    """M/M/1 response time is exponential with rate mu - lambda: p99 <= SLO iff lambda <= mu - ln(100)/SLO."""
    mu, slo = 10.0, 2.0
    curve = q.ServiceCurve.constant(1 / mu, distribution="exponential")
    rates = [q.capacity_at_slo(curve, q.NoBatching(), slo, n_min=20_000, seed=s) for s in range(4)]
    assert np.mean(rates) == pytest.approx(mu - np.log(100) / slo, rel=0.05)


def test_capacity_at_slo_detects_overload_that_a_short_run_misses():
    """A fast batched server with a loose SLO: 300 arrivals at 1.7x saturation last 1.4 s, too
    short for the queue to break a 2 s SLO; simulating 20 SLOs of traffic catches it."""
    step, pre = q.ServiceCurve([1, 64], [0.02, 0.03]), q.ServiceCurve([1, 64], [0.02, 0.1])
    sat = q.saturation_rate(step, q.Continuous(64), steps=15, prefill=pre)
    short = q.max_rate_under_slo(step, q.Continuous(64), 2.0, steps=15, prefill=pre, n=300)
    long = q.capacity_at_slo(step, q.Continuous(64), 2.0, steps=15, prefill=pre, n_min=300)
    assert short > sat  # the fixed-n search reports more than the server can ever complete
    assert 0 < long <= sat
    assert q.capacity_at_slo(q.ServiceCurve.constant(2.0), q.NoBatching(), 1.0) == 0.0  # one request alone misses it


def test_capacity_at_slo_per_request_steps_and_bad_inputs():
    step = q.ServiceCurve([1, 8], [0.01, 0.02])
    fixed = q.capacity_at_slo(step, q.Continuous(8), 1.0, steps=10, n_min=500)
    varied = q.capacity_at_slo(step, q.Continuous(8), 1.0, steps=[5, 15], n_min=500)  # same mean, resampled
    assert 0 < fixed and 0 < varied
    assert varied == pytest.approx(fixed, rel=0.3)
    with pytest.raises(ValueError, match="slo"):
        q.capacity_at_slo(step, q.Continuous(8), 0.0)
    with pytest.raises(ValueError, match="steps"):
        q.capacity_at_slo(step, q.NoBatching(), 1.0, steps=3)
