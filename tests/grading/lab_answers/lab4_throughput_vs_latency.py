"""Lab 4 submissions that the real-lab grading tests paste into the released notebook.

LIBRARY_ANSWERS answers every graded cell with the closest thing left in ``tradeoffs``. The package keeps
mechanisms only: the timer and its sweeps, numpy-style (interpolating) percentiles in ``measure``, the
simulator (which calls a policy it is given), the live server and its scheduler, the roofline, and API
prices. It holds no nearest-rank percentile, no throughput table, no best batch size, no batching policy
step, no capacity reading from a load table and no cost rule, so these answers must earn at most 10% of
the autograded points:

* q1, q2: ``measure.percentiles`` (linear interpolation, not nearest rank);
* q3: the batch with the highest measured throughput of ``capacity.roofline_frame`` (no objective);
* q4: the admission test of the live server's scheduler (``tradeoffs.serve.scheduler.Scheduler._admission``),
  pasted: start now if enough wait or the oldest waited long enough, else at the oldest's deadline with
  only the queued requests (no fill time, no arrivals);
* q5: the highest rate whose p99 meets the objective, as a filter (no walk from the bottom, no errors);
* q6: ``pricing.machines_needed`` for the fleet; the marginal machine time for the job (no start-up, no
  billing increment).

PARTIAL is the solution's Part 1 without its input validation: right on the core cases (the nearest-rank
rule on valid samples), wrong on the edge cases (no ``ValueError`` for empty, NaN or infinite samples or a
``q`` outside [0, 100]).
"""

LIBRARY_ANSWERS: dict[str, str] = {
    "q1_latency_percentiles": '''
from tradeoffs import measure as _measure

def latency_percentiles(samples, qs=(50, 90, 99)):
    return _measure.percentiles(np.asarray(samples, dtype=float).ravel(), qs)
''',
    "q2_throughput_table": '''
from tradeoffs import measure as _measure

def throughput_table(timings):
    rows = {}
    for b, grp in timings.groupby("batch_size"):
        pct = _measure.percentiles(grp["seconds"].to_numpy(dtype=float), (50, 99))
        rows[int(b)] = {"calls": int(len(grp)), "p50_s": pct["p50"], "p99_s": pct["p99"],
                        "items_per_s": b / pct["p50"], "ms_per_item": 1e3 * pct["p50"] / b}
    out = pd.DataFrame.from_dict(rows, orient="index").sort_index()
    out.index.name = "batch_size"
    return out
''',
    "q3_best_batch_size": '''
from tradeoffs import capacity as _capacity

def best_batch_size(table, slo_p99_s):
    roof = _capacity.roofline_frame(table.reset_index(), n_params=1, bytes_per_param=1.0, bandwidth=1.0, peak_flops=1.0)
    return int(roof.loc[roof["measured"].idxmax(), "batch_size"])
''',
    "q4_next_batch": '''
def next_batch(free_at, queued, upcoming, max_batch_size, max_wait_s):
    # tradeoffs.serve.scheduler.Scheduler._admission: admit when the waiting requests fill the free slots
    # or the oldest has waited max_wait
    waited = free_at - queued[0]
    if len(queued) >= max_batch_size or waited >= max_wait_s:
        return float(free_at), int(min(max_batch_size, len(queued)))
    return float(queued[0] + max_wait_s), int(len(queued))
''',
    "q5_capacity_from_table": '''
def capacity_from_table(table, slo_p99_s):
    ok = table[table["p99_s"] <= slo_p99_s]
    return float(ok["offered_rate"].max()) if len(ok) else 0.0
''',
    "q6_realtime_cost": '''
from tradeoffs import pricing as _pricing

def realtime_cost_per_million(daily_requests, peak_rps, rps_per_machine, usd_per_hour, min_machines=1):
    machines = _pricing.machines_needed(peak_rps, rps_per_machine, utilisation=1.0, min_machines=min_machines)
    return float(machines * usd_per_hour * 24 / daily_requests * 1e6)
''',
    "q6_batch_cost": '''
def batch_cost_per_million(items_per_s, usd_per_hour, daily_requests, startup_s, billing_increment_s=60):
    return float(1e6 / items_per_s * usd_per_hour / 3600.0)
''',
}

# Part 1 right on the core cases, wrong on the edge cases (no validation).
PARTIAL: dict[str, str] = {
    "q1_latency_percentiles": '''
def latency_percentiles(samples, qs=(50, 90, 99)):
    import math

    x = np.sort(np.asarray(samples, dtype=float).ravel())
    out = {}
    for q_ in qs:
        rank = max(1, math.ceil(q_ * x.size / 100))
        out[f"p{q_:g}"] = float(x[rank - 1])
    return out
''',
}
PARTIAL_PART = "q1"
