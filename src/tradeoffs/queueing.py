"""Discrete-event simulation of a single model server: arrivals, a batching policy, and service
times measured on this machine.

The simulator answers the what-ifs a live server cannot: 10x the traffic, a GPU's batch curve, a
different ``max_wait``. It is validated two ways: against queueing theory (M/M/1 and M/D/1 mean
waits, in the tests) and, in lab 4, against the kit's live server.

Three policies:

* :class:`NoBatching` — one request at a time (``max_batch_size=1``): the naive real-time server.
* :class:`BatchAtATime` — static dynamic batching: when the server is free, a *policy function*
  you pass in (``next_batch``, see :data:`NextBatch`) decides when the next batch starts and how
  many requests it takes; the batch runs to its end.
* :class:`Continuous` — iteration-level (continuous) batching for generation: every decode step
  runs the active set; waiting requests join at step boundaries (when your ``next_batch`` admits
  them, if you pass one) and leave when their tokens are done.

Examples
--------
>>> curve = ServiceCurve([1, 8], [0.010, 0.024])
>>> arrivals = poisson_arrivals(rate=50, n=2000, seed=0)
>>> naive = simulate(arrivals, NoBatching(), curve)
>>> def start_now(free_at, queued, upcoming, max_batch_size, max_wait_s):   # never waits to fill a batch
...     return free_at, min(len(queued), max_batch_size)
>>> batched = simulate(arrivals, BatchAtATime(8, 0.0, start_now), curve)
>>> summarise(batched)["p99_s"] < summarise(naive)["p99_s"]
True
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd

DISTRIBUTIONS = ("deterministic", "exponential")


# --------------------------------------------------------------------------------------------
# Service times
# --------------------------------------------------------------------------------------------
class ServiceCurve:
    """Seconds to serve one batch (or one decode step) as a function of batch size.

    Built from measured points and interpolated linearly between them; beyond the largest measured
    size it extrapolates with the slope of the last segment (a conservative choice: real curves
    bend upward once compute-bound).

    Parameters
    ----------
    batch_sizes : sequence of int
        Measured batch sizes, strictly increasing, >= 1.
    seconds : sequence of float
        Measured seconds per batch at those sizes (e.g. medians from ``tradeoffs.measure``).
    distribution : {"deterministic", "exponential"}
        How a single service time varies around the curve's mean. Measured servers are close to
        deterministic; "exponential" exists to check the simulator against M/M/1 theory.

    Examples
    --------
    >>> c = ServiceCurve([1, 4], [0.01, 0.016])
    >>> round(c.mean(2), 4), round(c.mean(8), 4)
    (0.012, 0.024)
    """

    def __init__(self, batch_sizes: Sequence[int], seconds: Sequence[float], distribution: str = "deterministic"):
        sizes = np.asarray(batch_sizes, dtype=float)
        secs = np.asarray(seconds, dtype=float)
        if sizes.ndim != 1 or sizes.size == 0 or sizes.shape != secs.shape:
            raise ValueError("batch_sizes and seconds must be non-empty 1-D sequences of the same length")
        if np.any(sizes < 1) or np.any(np.diff(sizes) <= 0):
            raise ValueError(f"batch_sizes must be >= 1 and strictly increasing, got {list(batch_sizes)}")
        if np.any(~np.isfinite(secs)) or np.any(secs <= 0):
            raise ValueError(f"seconds must be positive and finite, got {list(seconds)}")
        if distribution not in DISTRIBUTIONS:
            raise ValueError(f"distribution must be one of {DISTRIBUTIONS}, got {distribution!r}")
        self.batch_sizes, self.seconds, self.distribution = sizes, secs, distribution

    @classmethod
    def from_table(cls, table: pd.DataFrame, size_col: str = "batch_size", seconds_col: str = "seconds",
                   distribution: str = "deterministic") -> "ServiceCurve":
        """Build a curve from a timing table (one row per batch size)."""
        missing = {size_col, seconds_col} - set(table.columns)
        if missing:
            raise ValueError(f"timing table lacks column(s) {sorted(missing)}; it has {list(table.columns)}")
        t = table.sort_values(size_col)
        return cls(t[size_col].to_numpy(), t[seconds_col].to_numpy(), distribution)

    @classmethod
    def constant(cls, seconds: float, distribution: str = "deterministic") -> "ServiceCurve":
        """The same time whatever the batch size (a single-request server)."""
        return cls([1, 2], [seconds, seconds], distribution)

    def mean(self, batch_size: int) -> float:
        """Mean seconds for one batch of ``batch_size``."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        s, t = self.batch_sizes, self.seconds
        if s.size == 1:
            return float(t[0] * batch_size / s[0]) if batch_size > s[0] else float(t[0])
        if batch_size <= s[-1]:
            return float(np.interp(batch_size, s, t))
        slope = (t[-1] - t[-2]) / (s[-1] - s[-2])
        return float(t[-1] + max(slope, 0.0) * (batch_size - s[-1]))

    def sample(self, batch_size: int, rng: np.random.Generator) -> float:
        m = self.mean(batch_size)
        return m if self.distribution == "deterministic" else float(rng.exponential(m))

    def throughput(self, batch_size: int) -> float:
        """Items per second when every batch is full."""
        return batch_size / self.mean(batch_size)


# --------------------------------------------------------------------------------------------
# Arrivals
# --------------------------------------------------------------------------------------------
def poisson_arrivals(rate: float, n: int | None = None, duration: float | None = None, seed: int = 0) -> np.ndarray:
    """Arrival times (seconds, sorted) of a Poisson process with ``rate`` requests/s.

    Give exactly one of ``n`` (number of arrivals) or ``duration`` (seconds).

    Examples
    --------
    >>> a = poisson_arrivals(10.0, n=5, seed=1)
    >>> len(a), bool(np.all(np.diff(a) > 0))
    (5, True)
    """
    if not rate > 0:
        raise ValueError(f"rate must be positive (requests/s), got {rate}")
    if (n is None) == (duration is None):
        raise ValueError("give exactly one of n= (arrivals) or duration= (seconds)")
    rng = np.random.default_rng(seed)
    if n is not None:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        return np.cumsum(rng.exponential(1.0 / rate, size=int(n)))
    if duration <= 0:
        raise ValueError(f"duration must be positive, got {duration}")
    k = rng.poisson(rate * duration)
    return np.sort(rng.uniform(0.0, duration, size=k))


def arrivals_from_timestamps(timestamps, speedup: float = 1.0) -> np.ndarray:
    """Seconds since the first request for a column of timestamps, optionally compressed in time
    (``speedup=60`` replays an hour of traffic in a minute)."""
    if speedup <= 0:
        raise ValueError(f"speedup must be positive, got {speedup}")
    ts = pd.to_datetime(pd.Series(timestamps)).sort_values()
    if ts.empty:
        raise ValueError("no timestamps given")
    return ((ts - ts.iloc[0]).dt.total_seconds().to_numpy()) / speedup


# --------------------------------------------------------------------------------------------
# Policies
# --------------------------------------------------------------------------------------------
NextBatch = Callable[[float, Sequence[float], Sequence[float], int, float], tuple[float, int]]
"""The policy step a batching server runs whenever it could start work:
``next_batch(free_at, queued, upcoming, max_batch_size, max_wait_s) -> (start, size)``.

``free_at`` is when the server (or, for :class:`Continuous`, a batch slot) is free, ``queued`` the
arrival times of the requests already waiting then (oldest first, non-empty), ``upcoming`` the
arrival times after ``free_at`` (sorted), ``max_batch_size`` how many requests may start together
(for :class:`Continuous`: the free slots) and ``max_wait_s`` how long the oldest may be held back.
The simulator does not ship this rule: you pass it in (lab 4 asks you to write it)."""


def _check_batch(max_batch_size: int, max_wait_s: float) -> None:
    if isinstance(max_batch_size, bool) or int(max_batch_size) != max_batch_size or max_batch_size < 1:
        raise ValueError(f"max_batch_size must be an integer >= 1, got {max_batch_size}")
    if not max_wait_s >= 0:
        raise ValueError(f"max_wait_s must be >= 0, got {max_wait_s}")


@dataclass(frozen=True)
class NoBatching:
    """The naive real-time server: one request at a time, start to finish, never waits."""

    max_batch_size: int = 1

    def __post_init__(self) -> None:
        if self.max_batch_size != 1:
            raise ValueError("NoBatching serves one request at a time (max_batch_size=1)")


@dataclass(frozen=True)
class BatchAtATime:
    """A batch-at-a-time server (static dynamic batching, as in Triton or TorchServe): when it is free,
    your ``next_batch`` rule decides when the next batch starts and how many requests it takes; the
    batch then runs to its end (its service time is ``curve.mean(size)``).

    Parameters
    ----------
    max_batch_size : int
        Most requests in one batch.
    max_wait_s : float
        Longest the oldest waiting request may be held back to fill a batch (passed to ``next_batch``).
    next_batch : callable
        The policy step, see :data:`NextBatch`.

    Examples
    --------
    >>> def start_now(free_at, queued, upcoming, max_batch_size, max_wait_s):   # a policy that never waits
    ...     return free_at, min(len(queued), max_batch_size)
    >>> r = simulate([0.0, 0.0, 0.01], BatchAtATime(4, 0.0, start_now), ServiceCurve.constant(0.1))
    >>> r["batch_size"].tolist()
    [2, 2, 1]
    """

    max_batch_size: int
    max_wait_s: float
    next_batch: NextBatch

    def __post_init__(self) -> None:
        _check_batch(self.max_batch_size, self.max_wait_s)
        if not callable(self.next_batch):
            raise TypeError("next_batch must be a function (free_at, queued, upcoming, max_batch_size, max_wait_s)"
                            " -> (start, size)")


@dataclass(frozen=True)
class Continuous:
    """Iteration-level batching: up to ``max_batch_size`` requests decode together, one step at a
    time; new requests join at a step boundary, finished ones leave at once.

    Which waiting requests join, and when, is an admission rule: with ``next_batch`` given, the
    simulator asks it at every step boundary (``max_batch_size`` = the free slots, ``free_at`` = now):
    a busy server admits the batch when the start it returns is now, else decodes on and asks again
    at the next boundary; an idle server sleeps until that start and admits the batch it named.
    Without ``next_batch`` (and ``max_wait_s=0``), every waiting request joins at the next boundary
    while slots are free.

    Examples
    --------
    >>> r = simulate([0.0, 0.015], Continuous(2), ServiceCurve.constant(0.01), steps=[5, 1])
    >>> r["start"].round(3).tolist()      # the second joins at the step boundary after it arrives
    [0.0, 0.02]
    """

    max_batch_size: int
    max_wait_s: float = 0.0
    next_batch: NextBatch | None = None

    def __post_init__(self) -> None:
        _check_batch(self.max_batch_size, self.max_wait_s)
        if self.next_batch is None and self.max_wait_s > 0:
            raise ValueError("Continuous(max_wait_s > 0) needs an admission rule: pass next_batch=...")
        if self.next_batch is not None and not callable(self.next_batch):
            raise TypeError("next_batch must be a function (free_at, queued, upcoming, max_batch_size, max_wait_s)"
                            " -> (start, size)")


def _ask(policy, free_at: float, queued: np.ndarray, upcoming: np.ndarray, slots: int) -> tuple[float, int]:
    """Call the policy's ``next_batch`` and check what it returned, naming what is wrong."""
    out = policy.next_batch(free_at, queued, upcoming, slots, policy.max_wait_s)
    try:
        start, size = out
        start, size = float(start), int(size)
    except (TypeError, ValueError):
        raise ValueError(f"next_batch must return (start, size), got {out!r}") from None
    if not np.isfinite(start) or start < free_at - 1e-12:
        raise ValueError(f"next_batch returned start={start!r} at free_at={free_at!r}: a batch never starts "
                         "before the server is free, and must start at a finite time")
    arrived = len(queued) + int(np.searchsorted(upcoming, start, side="right"))
    if not 1 <= size <= min(slots, arrived):
        raise ValueError(f"next_batch returned size={size} at start={start!r}: it must be at least 1 and at most "
                         f"max_batch_size ({slots}) and the requests arrived by then ({arrived})")
    return max(start, free_at), size


# --------------------------------------------------------------------------------------------
# Simulation
# --------------------------------------------------------------------------------------------
def _validate_arrivals(arrivals) -> np.ndarray:
    a = np.asarray(arrivals, dtype=float)
    if a.ndim != 1 or a.size == 0:
        raise ValueError("arrivals must be a non-empty 1-D array of times in seconds")
    if np.any(~np.isfinite(a)) or np.any(np.diff(a) < 0):
        raise ValueError("arrivals must be finite and sorted in time")
    return a


def simulate(arrivals, policy, curve: ServiceCurve, steps=None, seed: int = 0,
             prefill: ServiceCurve | None = None) -> pd.DataFrame:
    """Run the server over the arrivals and return one row per request.

    Parameters
    ----------
    arrivals : array-like of float
        Sorted arrival times in seconds.
    policy : NoBatching | BatchAtATime | Continuous
    curve : ServiceCurve
        For :class:`NoBatching` and :class:`BatchAtATime`, seconds per *batch*; for :class:`Continuous`, seconds per
        *decode step* of the active batch.
    steps : int or array-like of int, optional
        Decode steps (tokens) per request, for :class:`Continuous` only (default 1).
    seed : int
        Seed for stochastic service times.
    prefill : ServiceCurve, optional
        For :class:`Continuous` only: seconds to prefill the prompts of the requests that join
        at a step boundary, as a function of how many join. The prefill produces each joiner's
        first token (one of its ``steps``), then the whole batch decodes — the order of the kit's
        engine (``tradeoffs.serve``). Default: no prefill cost (every step is a decode step).

    Returns
    -------
    DataFrame with columns ``arrival``, ``start``, ``finish``, ``wait``, ``latency`` (seconds) and
    ``batch_size`` (size of the batch that started the request).

    Examples
    --------
    >>> r = simulate([0.0], Continuous(4), ServiceCurve.constant(0.01), steps=3,
    ...              prefill=ServiceCurve.constant(0.5))
    >>> round(float(r["latency"].iloc[0]), 3)   # 0.5 s prefill (token 1) + 2 decode steps
    0.52
    """
    a = _validate_arrivals(arrivals)
    rng = np.random.default_rng(seed)
    if isinstance(policy, (NoBatching, BatchAtATime)):
        if steps is not None:
            raise ValueError("steps= applies to the Continuous policy only")
        if prefill is not None:
            raise ValueError("prefill= applies to the Continuous policy only; fold it into the batch curve")
        return _simulate_batches(a, policy, curve, rng)
    if isinstance(policy, Continuous):
        k = np.ones(a.size, dtype=int) if steps is None else np.broadcast_to(np.asarray(steps, dtype=int), a.shape)
        if np.any(k < 1):
            raise ValueError("every request needs at least one step")
        return _simulate_continuous(a, policy, curve, k, rng, prefill)
    raise TypeError(f"unknown policy {policy!r}; use NoBatching(), BatchAtATime(...) or Continuous(...)")


def _simulate_batches(a: np.ndarray, policy, curve: ServiceCurve, rng) -> pd.DataFrame:
    n = a.size
    start = np.empty(n)
    finish = np.empty(n)
    bsize = np.empty(n, dtype=int)
    free_at = 0.0
    i = 0  # first request not yet served
    while i < n:
        free_at = max(free_at, a[i])
        queued_end = bisect.bisect_right(a, free_at, lo=i)
        upcoming = a[queued_end:queued_end + policy.max_batch_size]
        if isinstance(policy, NoBatching):
            t0, size = free_at, 1
        else:
            t0, size = _ask(policy, free_at, a[i:queued_end], upcoming, policy.max_batch_size)
        service = curve.sample(size, rng)
        start[i:i + size] = t0
        finish[i:i + size] = t0 + service
        bsize[i:i + size] = size
        free_at = t0 + service
        i += size
    return _frame(a, start, finish, bsize)


def _simulate_continuous(a: np.ndarray, policy: Continuous, curve: ServiceCurve, k: np.ndarray, rng,
                         prefill: ServiceCurve | None = None) -> pd.DataFrame:
    n = a.size
    start = np.full(n, np.nan)
    finish = np.full(n, np.nan)
    bsize = np.zeros(n, dtype=int)
    remaining = k.astype(int).copy()
    active: list[int] = []
    waiting: deque[int] = deque()
    t = 0.0
    nxt = 0
    done = 0
    while done < n:
        while nxt < n and a[nxt] <= t:
            waiting.append(nxt)
            nxt += 1
        if not active and not waiting:
            t = a[nxt]
            continue
        take = policy.max_batch_size - len(active)
        if policy.next_batch is not None and waiting and take > 0:
            when, size = _ask(policy, t, a[list(waiting)], a[nxt:nxt + take], take)
            if when > t and active:   # the rule holds them back: decode on, ask again at the next boundary
                take = 0
            else:                     # start now, or (idle) sleep until the rule's start and admit its batch
                t = when
                while nxt < n and a[nxt] <= t:
                    waiting.append(nxt)
                    nxt += 1
                take = size
        joined = []
        while waiting and take > 0:
            r = waiting.popleft()
            active.append(r)
            joined.append(r)
            start[r] = t
            take -= 1
        bsize[[r for r in active if bsize[r] == 0]] = len(active)
        if prefill is not None and joined:
            t += prefill.sample(len(joined), rng)
            new = set(joined)
            kept = []
            for r in active:
                if r in new:
                    remaining[r] -= 1  # the prefill yields the first token
                    if remaining[r] == 0:
                        finish[r] = t
                        done += 1
                        continue
                kept.append(r)
            active = kept
            if not active:
                continue
        t += curve.sample(len(active), rng)
        still = []
        for r in active:
            remaining[r] -= 1
            if remaining[r] == 0:
                finish[r] = t
                done += 1
            else:
                still.append(r)
        active = still
    return _frame(a, start, finish, bsize)


def _frame(a, start, finish, bsize) -> pd.DataFrame:
    return pd.DataFrame({"arrival": a, "start": start, "finish": finish, "wait": start - a,
                         "latency": finish - a, "batch_size": bsize})


def _busy_time(start: np.ndarray, finish: np.ndarray) -> float:
    """Length of the union of the [start, finish] intervals: the time the server had work."""
    order = np.argsort(start)
    total, cur_s, cur_f = 0.0, None, None
    for s, f in zip(start[order], finish[order]):
        if cur_f is None or s > cur_f:
            if cur_f is not None:
                total += cur_f - cur_s
            cur_s, cur_f = s, f
        else:
            cur_f = max(cur_f, f)
    return total + (cur_f - cur_s if cur_f is not None else 0.0)


def summarise(result: pd.DataFrame, warmup_fraction: float = 0.1) -> dict[str, float]:
    """Latency percentiles, throughput and mean batch of a simulation, after dropping the first
    ``warmup_fraction`` of requests (the empty-system transient).

    Examples
    --------
    >>> r = simulate(poisson_arrivals(5.0, n=500, seed=0), NoBatching(), ServiceCurve.constant(0.05))
    >>> s = summarise(r)
    >>> s["p50_s"] > 0.049 and 0 < s["utilisation"] < 1
    True
    """
    if not 0 <= warmup_fraction < 1:
        raise ValueError(f"warmup_fraction must be in [0, 1), got {warmup_fraction}")
    r = result.iloc[int(len(result) * warmup_fraction):]
    if r.empty:
        raise ValueError("no requests left after the warm-up cut")
    span = r["finish"].max() - r["arrival"].min()
    busy = _busy_time(r["start"].to_numpy(), r["finish"].to_numpy())
    lat = r["latency"].to_numpy()
    return {
        "requests": float(len(r)),
        "mean_wait_s": float(r["wait"].mean()),
        "mean_latency_s": float(lat.mean()),
        "p50_s": float(np.percentile(lat, 50)),
        "p90_s": float(np.percentile(lat, 90)),
        "p99_s": float(np.percentile(lat, 99)),
        "throughput_per_s": float(len(r) / span) if span > 0 else float("nan"),
        "mean_batch_size": float(r["batch_size"].mean()),
        "utilisation": float(min(busy / span, 1.0)) if span > 0 else float("nan"),
    }


def sweep(rates: Sequence[float], policies: dict[str, object], curve: ServiceCurve, n: int = 2000,
          seed: int = 0, steps=None, prefill: ServiceCurve | None = None) -> pd.DataFrame:
    """Simulate every policy at every offered load; one row per (policy, rate).

    ``steps`` and ``prefill`` are passed to the :class:`Continuous` policies only."""
    rows = []
    for rate in rates:
        arrivals = poisson_arrivals(rate, n=n, seed=seed)
        for name, policy in policies.items():
            kwargs = {"steps": steps, "prefill": prefill} if isinstance(policy, Continuous) else {}
            rows.append({"policy": name, "offered_rate": float(rate),
                         **summarise(simulate(arrivals, policy, curve, seed=seed, **kwargs))})
    return pd.DataFrame(rows)


def max_rate_under_slo(curve: ServiceCurve, policy, slo_p99_s: float, low: float = 0.1,
                       high: float | None = None, n: int = 3000, seed: int = 0, steps=None,
                       tol: float = 0.02, prefill: ServiceCurve | None = None) -> float:
    """Highest Poisson arrival rate (requests/s) whose simulated p99 latency meets the SLO,
    found by bisection. Returns 0.0 if even ``low`` misses it. ``steps`` and ``prefill`` apply to
    the :class:`Continuous` policy."""
    if slo_p99_s <= 0:
        raise ValueError(f"slo_p99_s must be positive, got {slo_p99_s}")
    b = policy.max_batch_size
    if high is None:
        per_req = curve.mean(b) * (int(np.max(steps)) if steps is not None else 1)
        high = 1.5 * b / per_req

    def ok(rate: float) -> bool:
        kwargs = {"steps": steps, "prefill": prefill} if isinstance(policy, Continuous) else {}
        r = simulate(poisson_arrivals(rate, n=n, seed=seed), policy, curve, seed=seed, **kwargs)
        return summarise(r)["p99_s"] <= slo_p99_s

    return _highest_passing(ok, low, high, tol)


def _highest_passing(ok, low: float, high: float, tol: float) -> float:
    """Bisection for the highest rate in ``[low, high]`` where ``ok(rate)`` holds, assuming ``ok`` holds
    below some threshold and fails above it: 0.0 when even ``low`` fails, ``high`` when it passes."""
    if not ok(low):
        return 0.0
    if ok(high):
        return float(high)
    while (high - low) / high > tol:
        mid = (low + high) / 2
        low, high = (mid, high) if ok(mid) else (low, mid)
    return float(low)


def mm1_mean_wait(rate: float, service_rate: float) -> float:
    """Mean time in queue of an M/M/1 server: ``rho / (mu - lambda)``."""
    rho = rate / service_rate
    if not 0 < rho < 1:
        raise ValueError(f"the queue is unstable: utilisation {rho:.2f} must be below 1")
    return rho / (service_rate - rate)


def md1_mean_wait(rate: float, service_rate: float) -> float:
    """Mean time in queue of an M/D/1 server: ``rho / (2 mu (1 - rho))``."""
    rho = rate / service_rate
    if not 0 < rho < 1:
        raise ValueError(f"the queue is unstable: utilisation {rho:.2f} must be below 1")
    return rho / (2 * service_rate * (1 - rho))


def knee(rates: Sequence[float], latencies: Sequence[float], factor: float = 2.0) -> float:
    """The knee of a latency-vs-load curve: the offered rate at which latency first reaches
    ``factor`` times its value at the lightest load, by linear interpolation between measured
    points. NaN when the curve never gets there in the measured range; a level whose latency is
    infinite (failed requests) puts the knee at the level before it.

    Below the knee, more traffic costs little latency (the server is mostly idle); past it, queueing
    dominates and latency climbs steeply towards the capacity asymptote.

    Examples
    --------
    >>> knee([1, 2, 3, 4], [1.0, 1.1, 1.5, 3.0])   # 2 x 1.0 is reached a third of the way from 3 to 4
    3.3333333333333335
    >>> import math; math.isnan(knee([1, 2], [1.0, 1.2]))
    True
    """
    r = np.asarray(rates, dtype=float)
    lat = np.asarray(latencies, dtype=float)
    if r.ndim != 1 or r.shape != lat.shape or r.size < 2:
        raise ValueError("rates and latencies must be 1-D, of the same length, with at least two points")
    if factor <= 1:
        raise ValueError(f"factor must be > 1 (a multiple of the light-load latency), got {factor}")
    if np.any(np.isnan(lat)) or np.any(lat <= 0) or np.any(r <= 0):
        raise ValueError("rates and latencies must be positive (no NaN); drop failed load levels first")
    order = np.argsort(r, kind="stable")
    r, lat = r[order], lat[order]
    threshold = factor * lat[0]
    above = np.nonzero(lat >= threshold)[0]
    if above.size == 0:
        return float("nan")
    i = int(above[0])
    if i == 0:
        return float(r[0])
    if not np.isfinite(lat[i]):  # that level failed (timeouts count as infinite latency)
        return float(r[i - 1])
    return float(r[i - 1] + (threshold - lat[i - 1]) * (r[i] - r[i - 1]) / (lat[i] - lat[i - 1]))


def saturation_rate(curve: ServiceCurve, policy, steps=None, prefill: ServiceCurve | None = None) -> float:
    """Requests/s a server completes when it is kept full: an upper bound on its throughput.

    :class:`NoBatching` and :class:`BatchAtATime`: ``b / curve.mean(b)``. :class:`Continuous`: every one of ``b`` slots
    serves a request every ``k`` decode steps at batch ``b`` (``k`` = mean ``steps``), plus its
    share of a prefill of ``b`` prompts when ``prefill`` is given (whose first token saves a step).

    Examples
    --------
    >>> saturation_rate(ServiceCurve([1, 8], [0.01, 0.04]), NoBatching())
    100.0
    >>> saturation_rate(ServiceCurve.constant(0.01), Continuous(4), steps=10)
    40.0
    """
    if isinstance(policy, (NoBatching, BatchAtATime)):
        return float(policy.max_batch_size / curve.mean(policy.max_batch_size))
    if isinstance(policy, Continuous):
        b = policy.max_batch_size
        k = float(np.mean(steps)) if steps is not None else 1.0
        if prefill is None:
            return float(b / (k * curve.mean(b)))
        return float(b / (max(k - 1.0, 0.0) * curve.mean(b) + prefill.mean(b)))
    raise TypeError(f"unknown policy {policy!r}; use NoBatching(), BatchAtATime(...) or Continuous(...)")


def capacity_at_slo(curve: ServiceCurve, policy, slo_p99_s: float, *, steps=None,
                    prefill: ServiceCurve | None = None, seed: int = 0, n_min: int = 2000,
                    n_max: int = 200_000, horizon_slos: float = 20.0, tol: float = 0.02) -> float:
    """Highest Poisson rate (requests/s) whose simulated p99 latency meets the SLO: the capacity of
    one machine *at the SLO*, what a fleet is sized with.

    Unlike :func:`max_rate_under_slo` (a fixed number of arrivals for every rate tried), each rate
    tried here is simulated for at least ``horizon_slos`` x the SLO in time (between ``n_min`` and
    ``n_max`` arrivals): an overloaded server needs time for its queue to grow past the SLO, and a
    fast server at a high rate would otherwise be judged on a fraction of a second of traffic.
    The search is a bisection between 0 and 1.5 x :func:`saturation_rate`; returns 0.0 if even a
    trickle of traffic misses the SLO.

    Examples
    --------
    >>> curve = ServiceCurve.constant(0.1, distribution="exponential")   # M/M/1, mu = 10/s
    >>> rate = capacity_at_slo(curve, NoBatching(), slo_p99_s=2.0, n_min=20_000)   # theory: 10 - ln(100)/2 = 7.70
    >>> 7.2 < rate < 8.2
    True
    """
    if slo_p99_s <= 0:
        raise ValueError(f"slo_p99_s must be positive, got {slo_p99_s}")
    if not 0 < tol < 1 or horizon_slos <= 0 or not 1 <= n_min <= n_max:
        raise ValueError("need 0 < tol < 1, horizon_slos > 0 and 1 <= n_min <= n_max")
    kwargs = {"steps": steps, "prefill": prefill} if isinstance(policy, Continuous) else {}
    if steps is not None and not isinstance(policy, Continuous):
        raise ValueError("steps= applies to the Continuous policy only")
    sat = saturation_rate(curve, policy, steps=steps, prefill=prefill)

    def ok(rate: float) -> bool:
        n = int(np.clip(rate * horizon_slos * slo_p99_s, n_min, n_max))
        k = kwargs
        if steps is not None and np.ndim(steps) > 0:  # per-request steps: resample to n requests
            k = {**kwargs, "steps": np.resize(np.asarray(steps), n)}
        # separate streams for arrivals and service times: one stream for both would correlate
        # each service time with the gap before it
        r = simulate(poisson_arrivals(rate, n=n, seed=seed), policy, curve, seed=seed + 7919, **k)
        return summarise(r)["p99_s"] <= slo_p99_s

    return _highest_passing(ok, sat * 1e-3, 1.5 * sat, tol)
