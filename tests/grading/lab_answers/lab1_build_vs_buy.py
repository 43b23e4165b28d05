"""Lab 1 submissions that the real-lab grading tests paste into the released notebook.

LIBRARY_ANSWERS answers every graded cell with the closest function left in ``tradeoffs``. The package
keeps mechanisms only: the metered client and its ledger, a latency query and a budget projection over
the ledger, API prices, hardware and staff inputs, machines for a peak, a load curve's knee and the
cost of a request from its seconds. It holds no cost attribution, no capacity reading with failures, no bill with staff, no
staircase break-even and no staff-share band, so these answers must earn at most 10% of the autograded
points. PARTIAL is the solution's Part 3 without its edge handling (no ``math.inf`` at volume 0, no
``ValueError``, a division by a total of 0): right on the core cases (volumes above 0, the learner's own
numbers), wrong on the edge cases.
"""

LIBRARY_ANSWERS: dict[str, str] = {
    # The closest query over the ledger: calls and errors per group (latency_by_feature), no cost, no retries.
    "q1_attribute": '''
from tradeoffs import metering as _mt

def attribute(calls, by):
    keys = [by] if isinstance(by, str) else list(by)
    frame = calls.assign(feature=calls[keys].astype(str).agg("|".join, axis=1))
    table = _mt.latency_by_feature(frame)
    out = pd.DataFrame({"calls": table["calls"], "retries": 0, "failed": table["errors"], "cost_usd": 0.0,
                        "share": 0.0})
    out.index.name = by if isinstance(by, str) else None
    return out
''',
    # The closest reading of a load curve left in the package: queueing.knee (where latency doubles), its rate.
    "q2_throughput_within_slo": '''
from tradeoffs import queueing as _q

def throughput_within_slo(capacity, slo_p95_s):
    rate = _q.knee(capacity["throughput_rps"].tolist(), capacity["p95_s"].tolist())
    if rate != rate:  # NaN: the curve never doubles
        raise ValueError("no level meets the SLO")
    return float(rate)
''',
    # Machines for the peak and their rent (pricing.machines_needed); it knows no staff.
    "q3_self_host_day": '''
from tradeoffs import pricing as _pr

def self_host_day(volume, machine_usd_per_day, requests_per_machine_day, staff_usd_per_day, min_machines):
    machines = int(_pr.machines_needed(volume / 86_400, requests_per_machine_day / 86_400, 1.0, min_machines))
    total = machines * machine_usd_per_day
    return {"machines": machines, "total_usd": total, "usd_per_request": total / max(volume, 1), "staff_share": 0.0}
''',
    # Lab 5's cost of one request from measured seconds: a linear cost per request, no staircase of machines.
    "q4_break_even": '''
from tradeoffs import finetune as _ft

def break_even(api_usd_per_request, machine_usd_per_day, requests_per_machine_day, staff_usd_per_day, min_machines):
    own = _ft.compute_usd_per_request(86_400 / requests_per_machine_day, machine_usd_per_day / 24)
    return (min_machines * machine_usd_per_day + staff_usd_per_day) / max(api_usd_per_request - own, 1e-12)
''',
    # Machines for a peak is all the package offers: the band of fleets whose share is in range is not there.
    "q5_staff_share_band": '''
from tradeoffs import pricing as _pr

def staff_share_band(machine_usd_per_day, requests_per_machine_day, staff_usd_per_day, min_machines, low=0.70, high=0.80):
    fleet = int(_pr.machines_needed(0.0, requests_per_machine_day / 86_400, 1.0, min_machines))
    share = staff_usd_per_day / (fleet * machine_usd_per_day + staff_usd_per_day)
    return (0.0, fleet * requests_per_machine_day) if low <= share <= high else None
''',
}

# Part 3 right on the core cases, wrong on the edge cases (volume 0, a total of 0, the ValueErrors).
PARTIAL: dict[str, str] = {
    "q3_self_host_day": '''
def self_host_day(volume, machine_usd_per_day, requests_per_machine_day, staff_usd_per_day, min_machines):
    machines = int(max(min_machines, math.ceil(volume / requests_per_machine_day)))
    total = machines * machine_usd_per_day + staff_usd_per_day
    return {"machines": machines, "total_usd": total, "usd_per_request": total / volume,
            "staff_share": staff_usd_per_day / total}
''',
}
PARTIAL_PART = "q3"
