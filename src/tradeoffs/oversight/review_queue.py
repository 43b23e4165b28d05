"""The review queue: arrivals, reviewer shifts, an hour-by-hour simulation, and runs of a caller's
thresholding rule.

Lab 6's learner writes the review economics (the expected cost of a threshold under reviewer
capacity, with reviewers who are not always right and who follow the model with probability ``p``,
after Dratsch et al., "Automation Bias in Mammography", Radiology 2023,
https://doi.org/10.1148/radiol.222176) and the rule that picks the cost-minimising threshold. This
module holds the mechanisms those run in: candidate thresholds, a week of Poisson arrivals shaped
like the kit's traffic trace, reviewer shifts, a queue simulator that takes the chosen threshold, a
one-parameter-at-a-time sweep of the learner's rule, and the what-if table behind the lab's
calculator.

Conventions: an item is *flagged* for review when its confidence is **below** the threshold; items at
or above it are automated. ``correct`` is a boolean array: was the model's decision right.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from ._checks import (_check_confidence, _check_correct, _check_mask, _check_nonneg, _check_unit,
                                _per_item)

QUEUES = ("fifo", "triage")


def candidate_thresholds(confidence: Any) -> np.ndarray:
    """Every threshold that gives a distinct policy: 0 (review nothing), each distinct confidence, and
    ``inf`` (review everything), in increasing order.

    Examples
    --------
    >>> candidate_thresholds([0.7, 0.9, 0.7]).tolist()
    [0.0, 0.7, 0.9, inf]
    """
    conf = _check_confidence(confidence)
    return np.append(np.unique(np.r_[0.0, conf[conf > 0]]), np.inf)


def hourly_profile(timestamps: Any) -> np.ndarray:
    """The share of requests in each hour of the day (24 values summing to 1) from arrival times.

    Examples
    --------
    >>> ts = pd.to_datetime(["2025-01-06 09:10", "2025-01-06 09:50", "2025-01-06 14:00"], utc=True)
    >>> p = hourly_profile(ts); p[9], p[14]
    (np.float64(0.6666666666666666), np.float64(0.3333333333333333))
    """
    ts = pd.DatetimeIndex(pd.to_datetime(timestamps))
    if ts.size == 0:
        raise ValueError("timestamps is empty")
    counts = np.bincount(ts.hour, minlength=24).astype(float)
    return counts / counts.sum()


def poisson_arrivals(profile: Any, per_day: float, days: int = 7, *, day_factors: Any = None,
                     seed: int = 0) -> np.ndarray:
    """Arrivals per hour over ``days`` days: Poisson with mean ``per_day * day_factor * profile[hour]``.

    Parameters
    ----------
    profile : array-like, shape (24,)
        Share of a day's traffic in each hour (see :func:`hourly_profile`).
    per_day : float
        Mean items per day.
    day_factors : array-like, shape (days,), optional
        Multiplier per day (e.g. quieter weekends); default 1.

    Examples
    --------
    >>> a = poisson_arrivals(np.full(24, 1 / 24), per_day=240, days=7, seed=0)
    >>> a.shape, bool(1500 < a.sum() < 1860)
    ((168,), True)
    """
    prof = np.asarray(profile, dtype=float)
    if prof.shape != (24,) or (prof < 0).any() or not np.isclose(prof.sum(), 1.0):
        raise ValueError("profile must be 24 non-negative shares that sum to 1 (see hourly_profile)")
    rate = _check_nonneg(per_day, "per_day")
    if isinstance(days, bool) or not isinstance(days, (int, np.integer)) or days < 1:
        raise ValueError(f"days must be a positive integer, got {days!r}")
    factors = np.ones(days) if day_factors is None else np.asarray(day_factors, dtype=float)
    if factors.shape != (days,) or (factors < 0).any():
        raise ValueError(f"day_factors must be {days} non-negative numbers")
    lam = rate * np.outer(factors, prof).ravel()
    return np.random.default_rng(seed).poisson(lam).astype(np.int64)


def shift_capacity(reviews_per_hour: float, days: int = 7, *, hours: tuple[int, int] = (9, 17),
                   workdays: Sequence[int] = (0, 1, 2, 3, 4)) -> np.ndarray:
    """Reviews available in each hour: ``reviews_per_hour`` inside shift hours on workdays, else 0.

    Day 0 of the simulation is a Monday (weekday 0).

    Examples
    --------
    >>> cap = shift_capacity(10, days=7)
    >>> cap.sum(), cap[9], cap[8], cap[5 * 24 + 10]     # 5 days x 8 hours x 10; Saturday is off
    (np.float64(400.0), np.float64(10.0), np.float64(0.0), np.float64(0.0))
    """
    per_hour = _check_nonneg(reviews_per_hour, "reviews_per_hour")
    start, end = hours
    if not 0 <= start < end <= 24:
        raise ValueError(f"hours must be (start, end) with 0 <= start < end <= 24, got {hours!r}")
    cap = np.zeros(days * 24)
    for d in range(days):
        if d % 7 in set(workdays):
            cap[d * 24 + start: d * 24 + end] = per_hour
    return cap


def simulate_review_queue(confidence: Any, correct: Any, cost_if_wrong: Any, threshold: float, *,
                          arrivals: Any, capacity: Any, review_cost: float, reviewer_accuracy: float = 1.0,
                          follow_prob: float = 0.0, always_review: Any = None, max_wait: int | None = None,
                          overflow_cost: float = 0.0, queue: str = "fifo", watch: Any = None,
                          seed: int = 0) -> pd.DataFrame:
    """Simulate the review queue hour by hour over real items.

    Each hour, ``arrivals[h]`` items are drawn (with replacement) from the evaluated items. Items with
    confidence >= threshold (and no always-review flag) are automated at once. Flagged items wait in
    the queue; reviewers clear up to ``capacity[h]`` of them (fractional capacity carries over), in
    arrival order (``queue="fifo"``) or always-review items first, then the least confident
    (``queue="triage"``). A reviewer follows the model's suggestion with probability ``follow_prob``,
    otherwise decides correctly with probability ``reviewer_accuracy``. An item that has waited
    ``max_wait`` hours is released with the model's decision (an overflow, charged ``overflow_cost``).
    ``watch`` marks items to follow (e.g. high-stakes tickets): ``watched`` counts those that arrive,
    ``watched_unreviewed`` those decided without a human (automated or released).

    Returns
    -------
    pandas.DataFrame
        One row per hour: ``hour``, ``day``, ``arrivals``, ``automated``, ``flagged``, ``reviewed``,
        ``released`` (overflowed), ``backlog`` (waiting at the end of the hour), ``errors`` (wrong final
        decisions made this hour), ``cost``, ``max_wait_h`` (the oldest waiting item's age),
        ``watched`` and ``watched_unreviewed``.
        Items still waiting at the end are in the last row's ``backlog``, not costed.

    Examples
    --------
    >>> sim = simulate_review_queue([0.99, 0.5], [True, False], 10.0, 0.9, arrivals=[10] * 24,
    ...                             capacity=[2] * 24, review_cost=1.0, seed=0)
    >>> int(sim["arrivals"].sum()), int(sim["automated"].sum() + sim["flagged"].sum())
    (240, 240)
    """
    conf = _check_confidence(confidence)
    n = conf.size
    ok = _check_correct(correct, n)
    c = _per_item(cost_if_wrong, n, "cost_if_wrong")
    arr = np.asarray(arrivals)
    if arr.ndim != 1 or arr.size == 0 or (arr < 0).any() or not np.all(np.mod(arr, 1) == 0):
        raise ValueError("arrivals must be a 1-D array of non-negative integers, one per hour")
    arr = arr.astype(np.int64)
    cap = np.broadcast_to(np.asarray(capacity, dtype=float), arr.shape) if np.ndim(capacity) == 0 \
        else np.asarray(capacity, dtype=float)
    if cap.shape != arr.shape or (cap < 0).any():
        raise ValueError(f"capacity must be a number or one non-negative value per hour ({arr.size})")
    a = _check_unit(reviewer_accuracy, "reviewer_accuracy")
    p = _check_unit(follow_prob, "follow_prob")
    r_cost, o_cost = _check_nonneg(review_cost, "review_cost"), _check_nonneg(overflow_cost, "overflow_cost")
    if max_wait is not None and (isinstance(max_wait, bool) or int(max_wait) < 0):
        raise ValueError(f"max_wait must be None or hours >= 0, got {max_wait!r}")
    if queue not in QUEUES:
        raise ValueError(f"queue must be one of {QUEUES}, got {queue!r}")
    always = np.zeros(n, bool) if always_review is None else _check_mask(always_review, n, "always_review")
    watched = np.zeros(n, bool) if watch is None else _check_mask(watch, n, "watch")
    flag_item = (conf < float(threshold)) | always

    rng = np.random.default_rng(seed)
    # waiting items as (priority key, arrival hour, item); FIFO: arrival order, triage: rule, confidence
    waiting: list[tuple[tuple, int, int]] = []
    seq = 0
    credit = 0.0
    rows = []
    for h, k in enumerate(arr):
        items = rng.integers(0, n, size=int(k))
        auto = items[~flag_item[items]]
        unseen = int(watched[auto].sum())
        errors = float((~ok[auto]).sum())
        cost = float(c[auto][~ok[auto]].sum())
        for i in items[flag_item[items]]:
            key = (h, seq) if queue == "fifo" else (not always[i], float(conf[i]), h, seq)
            waiting.append((key, h, int(i)))
            seq += 1
        credit += cap[h]
        take = min(len(waiting), int(math.floor(credit)))
        reviewed = 0
        if take:
            waiting.sort(key=lambda entry: entry[0])
            done, waiting = waiting[:take], waiting[take:]
            credit -= take
            for _, _, i in done:
                reviewed += 1
                follows = rng.random() < p
                wrong = (not ok[i]) if follows else (rng.random() >= a)
                errors += wrong
                cost += r_cost + (c[i] if wrong else 0.0)
        if not waiting:
            credit %= 1.0  # idle reviewers cannot bank whole reviews for later hours
        released = 0
        if max_wait is not None:
            stale = [entry for entry in waiting if h - entry[1] >= int(max_wait)]
            if stale:
                waiting = [entry for entry in waiting if h - entry[1] < int(max_wait)]
                for _, _, i in stale:
                    released += 1
                    unseen += int(watched[i])
                    errors += not ok[i]
                    cost += o_cost + (0.0 if ok[i] else c[i])
        rows.append({"hour": h, "day": h // 24, "arrivals": int(k), "automated": int(auto.size),
                     "flagged": int(k - auto.size), "reviewed": reviewed, "released": released,
                     "backlog": len(waiting), "errors": errors, "cost": cost,
                     "max_wait_h": max((h - entry[1] for entry in waiting), default=0),
                     "watched": int(watched[items].sum()), "watched_unreviewed": unseen})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Running a caller's thresholding rule: at one setting, one parameter at a time, and what-if
# --------------------------------------------------------------------------------------------
RULE_SIGNATURE = ("rule(confidence, correct, cost_if_wrong, thresholds, review_cost, capacity, "
                  "reviewer_accuracy, follow_prob) -> (threshold, cost per item)")


def _capacity(capacity_share: Any, n: int) -> float | None:
    if capacity_share is None:
        return None
    return _check_nonneg(capacity_share, "capacity_share") * n


def operating_point(rule: Callable[..., Any], confidence: Any, correct: Any, thresholds: Any, *,
                    error_cost: float, review_cost: float, capacity_share: float | None,
                    reviewer_accuracy: float, follow_prob: float) -> dict[str, float]:
    """Run a thresholding rule at one setting of the business numbers.

    ``rule`` is called as ``rule(confidence, correct, error_cost, thresholds, review_cost, capacity,
    reviewer_accuracy, follow_prob)`` with ``capacity = capacity_share * len(confidence)`` reviews
    (``None``: unlimited), and must return ``(threshold, cost per item)``.

    Returns
    -------
    dict
        ``best_threshold`` and ``cost`` (per item), as the rule returned them.

    Examples
    --------
    >>> def review_nothing(conf, ok, c, ts, r, cap, a, p):     # a toy rule
    ...     return 0.0, float(c * np.mean(~np.asarray(ok)))
    >>> operating_point(review_nothing, [0.9, 0.6], [True, False], [0.0, 1.0], error_cost=10.0,
    ...                 review_cost=1.0, capacity_share=0.5, reviewer_accuracy=0.95, follow_prob=0.3)
    {'best_threshold': 0.0, 'cost': 5.0}
    """
    conf = _check_confidence(confidence)
    answer = rule(conf, correct, float(error_cost), thresholds, float(review_cost),
                  _capacity(capacity_share, conf.size), float(reviewer_accuracy), float(follow_prob))
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        raise ValueError(f"the thresholding rule must return (threshold, cost per item); got {answer!r}. "
                         f"Expected: {RULE_SIGNATURE}")
    return {"best_threshold": float(answer[0]), "cost": float(answer[1])}


def one_at_a_time(fn: Callable[..., dict], base: dict[str, Any], grids: dict[str, Sequence[float]], *,
                  progress: bool = False) -> pd.DataFrame:
    """Sensitivity sweep: call ``fn(**settings)`` with one parameter of ``base`` varied at a time.

    Parameters
    ----------
    fn : callable
        Takes the keys of ``base`` as keyword arguments and returns a dict of results.
    base : dict
        The baseline setting.
    grids : dict
        Parameter name (a key of ``base``) -> the values to try.
    progress : bool
        Show a tqdm bar over the parameters.

    Returns
    -------
    pandas.DataFrame
        One row per (parameter, value): ``parameter``, ``value`` and the keys ``fn`` returned.

    Examples
    --------
    >>> sweep = one_at_a_time(lambda a, b: {"sum": a + b}, {"a": 1.0, "b": 10.0}, {"a": [0.0, 2.0]})
    >>> sweep.values.tolist()
    [['a', 0.0, 10.0], ['a', 2.0, 12.0]]
    """
    unknown = sorted(set(grids) - set(base))
    if unknown:
        raise ValueError(f"grids name parameters that base does not have: {unknown}; base has {sorted(base)}")
    items = list(grids.items())
    if progress:
        from tqdm.auto import tqdm

        items = tqdm(items, desc="one parameter at a time")
    rows = []
    for param, grid in items:
        for value in grid:
            out = fn(**{**base, param: float(value)})
            if not isinstance(out, dict):
                raise TypeError(f"fn must return a dict of results, got {type(out).__name__}")
            rows.append({"parameter": param, "value": float(value), **out})
    return pd.DataFrame(rows)


def review_whatif(capacity_share: float, error_cost: float, threshold: float, *, cost_fn: Callable[..., Any],
                  rule: Callable[..., Any], confidence: Any, correct: Any, thresholds: Any, review_cost: float,
                  reviewer_accuracy: float, follow_prob: float) -> pd.DataFrame:
    """What-if table over a caller's review economics: three policies at one setting.

    Rows: automating everything (threshold 0), the ``threshold`` chosen on a slider, and the threshold
    the caller's ``rule`` picks. Costs come from the caller's ``cost_fn(confidence, correct,
    error_cost, threshold, review_cost, capacity, reviewer_accuracy, follow_prob)`` with
    ``capacity = capacity_share * len(confidence)`` reviews; bind ``cost_fn``, ``rule`` and the data
    with :func:`functools.partial` and hand the result to :func:`tradeoffs.whatif.calculator`.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``policy``: ``threshold``, ``sent_to_review`` (share with confidence < threshold),
        ``review_capacity`` (capacity_share), ``cost_per_item``.

    Examples
    --------
    >>> def cost(conf, ok, c, t, r, cap, a, p):        # a toy cost: errors only
    ...     return float(c * np.mean(~np.asarray(ok) & (np.asarray(conf) >= t)))
    >>> def rule(conf, ok, c, ts, r, cap, a, p):
    ...     return 1.0, 0.0
    >>> review_whatif(0.2, 10.0, 0.7, cost_fn=cost, rule=rule, confidence=[0.9, 0.6], correct=[True, False],
    ...               thresholds=[0.0, 1.0], review_cost=1.0, reviewer_accuracy=0.95, follow_prob=0.3)["cost_per_item"].tolist()
    [5.0, 0.0, 0.0]
    """
    conf = _check_confidence(confidence)
    cap = _capacity(capacity_share, conf.size)
    best = operating_point(rule, conf, correct, thresholds, error_cost=error_cost, review_cost=review_cost,
                           capacity_share=capacity_share, reviewer_accuracy=reviewer_accuracy,
                           follow_prob=follow_prob)
    rows = []
    for label, t in (("automate everything", 0.0), ("your slider threshold", float(threshold)),
                     ("cost-optimal (your rule)", best["best_threshold"])):
        cost = float(cost_fn(conf, correct, float(error_cost), t, float(review_cost), cap,
                             float(reviewer_accuracy), float(follow_prob)))
        rows.append({"policy": label, "threshold": t, "sent_to_review": float(np.mean(conf < t)),
                     "review_capacity": float(capacity_share), "cost_per_item": cost})
    return pd.DataFrame(rows).set_index("policy")
