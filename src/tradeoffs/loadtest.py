"""Load tests against any OpenAI-compatible server: open loop (Poisson arrivals) and closed loop.

The load generator is the official ``openai`` client (``AsyncOpenAI``) pointed at a ``base_url``, so
the same code measures the kit's server (:class:`tradeoffs.serve.LocalServer`), ``transformers
serve``, vLLM on a GPU, or a paid API. Every request streams, so each :class:`Outcome` holds the
latency the client saw, its time to first token (TTFT) and the completion tokens the server reported
in ``usage``.

Two ways to offer load:

* **open loop** (:func:`open_loop`): requests are sent at scheduled times (Poisson arrivals, or any
  arrival times you pass), whether or not earlier answers came back — the way independent users
  arrive. Latency then includes queueing, and past capacity it grows without bound.
* **closed loop** (:func:`closed_loop`): ``clients`` users each send the next request when the
  previous answer arrives. It finds the server's capacity, but hides queueing: a slow server slows
  its own load down (the "coordinated omission" of closed-loop benchmarks).

:func:`run` executes a coroutine from plain code *or* from a Jupyter cell (whose event loop is
already running); :func:`sweep` runs an open loop at several rates and returns tables.

Examples
--------
>>> sched = poisson_schedule(rate=4.0, duration=10.0, seed=0)
>>> float(sched[0]), bool(np.all(np.diff(sched) > 0)), bool(sched[-1] < 10.0)
(0.0, True, True)
>>> s = summarize([Outcome(True, 0.0, 1.0, 0.2, 8), Outcome(True, 0.5, 3.0, 0.4, 8)], wall=4.0)
>>> s["ok"], s["req_per_s"], s["tok_per_s"], s["p50_s"]
(2, 0.5, 4.0, 2.0)
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, Awaitable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["Outcome", "make_client", "as_messages", "one_request", "closed_loop", "poisson_schedule",
           "open_loop", "summarize", "outcomes_frame", "run", "sweep", "scrape_metrics", "server_timings",
           "started", "vllm_serve_command"]

DEFAULT_TIMEOUT_S = 120.0


# --------------------------------------------------------------------------------------------
# One request
# --------------------------------------------------------------------------------------------
@dataclass
class Outcome:
    """One request as the client saw it.

    Attributes
    ----------
    ok : bool
        The server answered completely (HTTP 200, stream finished).
    start : float
        When the request was sent, seconds after the load test began.
    latency : float
        Seconds from sending to the last byte of the answer.
    ttft : float
        Seconds from sending to the first generated text (NaN for a failed request).
    completion_tokens : int
        From the server's ``usage``.
    status : str
        ``"200"``, the HTTP status of an error, ``"timeout"``, ``"connection"``, or
        ``"stream_error"`` (the server sent an error event in the middle of a stream).
    prompt_tokens : int
        From ``usage`` (0 when the server sent none).
    scheduled : float
        When the open loop meant to send it (NaN in a closed loop); ``start - scheduled`` is the
        load generator's own lag.
    index : int
        Position of the request in the list of prompts (-1 when unknown).
    """

    ok: bool
    start: float
    latency: float
    ttft: float
    completion_tokens: int
    status: str = "200"
    prompt_tokens: int = 0
    scheduled: float = float("nan")
    index: int = -1


def make_client(base_url: str, *, api_key: str = "local", max_connections: int = 512, timeout: float = 600.0):
    """An ``openai.AsyncOpenAI`` client for load tests: no retries (a retry would hide a failure and
    distort latency), a connection pool large enough for every request in flight.

    Examples
    --------
    >>> c = make_client("http://127.0.0.1:9/v1")
    >>> str(c.base_url), c.max_retries
    ('http://127.0.0.1:9/v1/', 0)
    """
    import httpx
    from openai import AsyncOpenAI

    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        raise ValueError(f"base_url must be an http(s) URL such as 'http://127.0.0.1:8000/v1', got {base_url!r}")
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    return AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0,
                       http_client=httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(timeout)))


def as_messages(prompt: Any, max_tokens: int) -> tuple[list[dict], int]:
    """Normalise one request: a user message string, a list of chat messages, or a dict with
    ``messages`` and (optionally) ``max_tokens`` (what :func:`tradeoffs.metering.trace_requests`
    returns). Returns ``(messages, max_tokens)``; a dict's own ``max_tokens`` wins.

    Examples
    --------
    >>> as_messages("hi", 8)
    ([{'role': 'user', 'content': 'hi'}], 8)
    >>> as_messages({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}, 8)[1]
    3
    """
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}], int(max_tokens)
    if isinstance(prompt, Mapping):
        if "messages" not in prompt:
            raise ValueError(f"a request dict needs 'messages'; got keys {sorted(prompt)}")
        return list(prompt["messages"]), int(prompt.get("max_tokens") or max_tokens)
    if isinstance(prompt, Sequence) and prompt and all(isinstance(m, Mapping) and "role" in m for m in prompt):
        return list(prompt), int(max_tokens)
    raise TypeError("a request must be a string, a list of {'role', 'content'} messages, or a dict with "
                    f"'messages'; got {type(prompt).__name__}")


async def one_request(client, model: str, prompt: Any, max_tokens: int, timeout: float, t0: float, *,
                      scheduled: float = float("nan"), index: int = -1) -> Outcome:
    """Send one streaming chat completion and time it; never raises for a failed request.

    ``t0`` is the ``time.perf_counter()`` reading at which the load test began.
    """
    import openai

    messages, limit = as_messages(prompt, max_tokens)
    start = time.perf_counter()
    first = None
    tokens = prompt_tokens = 0
    try:
        async with asyncio.timeout(timeout):
            stream = await client.chat.completions.create(
                model=model, messages=messages, max_tokens=limit, temperature=0, stream=True,
                stream_options={"include_usage": True})
            async for chunk in stream:
                if first is None and chunk.choices and chunk.choices[0].delta.content:
                    first = time.perf_counter()
                if chunk.usage is not None:
                    tokens = chunk.usage.completion_tokens
                    prompt_tokens = chunk.usage.prompt_tokens
        end = time.perf_counter()
        return Outcome(True, start - t0, end - start, (first or end) - start, tokens, "200", prompt_tokens,
                       scheduled, index)
    except openai.APIStatusError as exc:
        status = str(exc.status_code)
    except (TimeoutError, asyncio.TimeoutError):
        status = "timeout"
    except openai.APIConnectionError:
        status = "connection"
    except openai.APIError:  # the server reported an error inside the stream, after the 200 header
        status = "stream_error"
    return Outcome(False, start - t0, time.perf_counter() - start, float("nan"), 0, status, 0, scheduled, index)


# --------------------------------------------------------------------------------------------
# Closed and open loops
# --------------------------------------------------------------------------------------------
async def closed_loop(base_url: str, model: str, prompts: Sequence[Any], clients: int, per_client: int,
                      max_tokens: int = 32, timeout: float = DEFAULT_TIMEOUT_S) -> tuple[list[Outcome], float]:
    """``clients`` users, each sending ``per_client`` requests back to back; returns (outcomes, wall s).

    User ``k`` sends prompts ``k * per_client ... (k + 1) * per_client - 1`` (cycling through the list).
    """
    if clients < 1 or per_client < 1:
        raise ValueError(f"clients and per_client must be >= 1, got {clients} and {per_client}")
    if not prompts:
        raise ValueError("prompts is empty")
    client = make_client(base_url)
    t0 = time.perf_counter()

    async def user(k: int) -> list[Outcome]:
        out = []
        for j in range(per_client):
            i = (k * per_client + j) % len(prompts)
            out.append(await one_request(client, model, prompts[i], max_tokens, timeout, t0, index=i))
        return out

    try:
        results = await asyncio.gather(*(user(k) for k in range(clients)))
        wall = time.perf_counter() - t0
    finally:
        await client.close()
    return [o for r in results for o in r], wall


def poisson_schedule(rate: float, duration: float, seed: int = 0) -> np.ndarray:
    """Send times (seconds) of a Poisson process at ``rate`` requests/s: the first at 0, then
    exponential gaps, every time below ``duration``.

    Examples
    --------
    >>> len(poisson_schedule(100.0, 10.0, seed=1)) in range(900, 1100)
    True
    """
    if not rate > 0 or not math.isfinite(rate):
        raise ValueError(f"rate must be a positive number of requests/s, got {rate}")
    if not duration > 0:
        raise ValueError(f"duration must be positive (seconds), got {duration}")
    rng = np.random.default_rng(seed)
    times, t = [], 0.0
    while t < duration:
        times.append(t)
        t += rng.exponential(1.0 / rate)
    return np.asarray(times)


async def open_loop(base_url: str, model: str, prompts: Sequence[Any], rate: float | None = None,
                    duration: float | None = None, max_tokens: int = 32, timeout: float = DEFAULT_TIMEOUT_S,
                    seed: int = 0, *, arrivals: Sequence[float] | None = None) -> tuple[list[Outcome], float]:
    """Send request ``i`` at ``arrivals[i]`` seconds (default: a Poisson schedule at ``rate`` for
    ``duration`` seconds), without waiting for earlier answers; wait for every answer (or its
    ``timeout``). Returns (outcomes in send order, wall seconds from the first send to the last answer).

    Prompts are used in order, cycling when there are fewer prompts than arrivals.
    """
    if not prompts:
        raise ValueError("prompts is empty")
    if arrivals is None:
        if rate is None or duration is None:
            raise ValueError("give rate= and duration= (a Poisson schedule) or arrivals= (send times in seconds)")
        arrivals = poisson_schedule(rate, duration, seed)
    sched = np.asarray(arrivals, dtype=float)
    if sched.ndim != 1 or sched.size == 0 or np.any(~np.isfinite(sched)) or np.any(np.diff(sched) < 0):
        raise ValueError("arrivals must be a non-empty, sorted 1-D array of send times in seconds")
    sched = sched - sched[0]
    client = make_client(base_url)
    tasks = []
    t0 = time.perf_counter()
    try:
        for i, at in enumerate(sched):
            delay = t0 + at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            k = i % len(prompts)
            tasks.append(asyncio.create_task(one_request(client, model, prompts[k], max_tokens, timeout, t0,
                                                         scheduled=float(at), index=k)))
        outcomes = await asyncio.gather(*tasks)
        wall = time.perf_counter() - t0
    finally:
        for task in tasks:
            task.cancel()
        await client.close()
    return list(outcomes), wall


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------
def summarize(outcomes: Sequence[Outcome], wall: float) -> dict:
    """Throughput and latency percentiles of one run. Failed requests count as infinitely slow, so
    they push p99 past any SLO instead of silently improving it.

    Keys: ``requests, ok, errors, error_kinds, wall_s, req_per_s, tok_per_s, tokens_per_request,
    p50_s, p90_s, p99_s, ttft_p50_s, ttft_p99_s, ok_p50_s, send_lag_p99_s``.
    """
    if wall <= 0:
        raise ValueError(f"wall must be positive seconds, got {wall}")
    ok = [o for o in outcomes if o.ok]
    lat = np.array([o.latency if o.ok else np.inf for o in outcomes])
    ttft = np.array([o.ttft for o in ok]) if ok else np.array([np.nan])
    tokens = sum(o.completion_tokens for o in ok)
    lag = np.array([o.start - o.scheduled for o in outcomes if not math.isnan(o.scheduled)])

    def pct(a, q):
        return _percentile(a, q) if len(a) else float("nan")

    return {
        "requests": len(outcomes), "ok": len(ok), "errors": len(outcomes) - len(ok),
        "error_kinds": sorted({o.status for o in outcomes if not o.ok}),
        "wall_s": wall, "req_per_s": len(ok) / wall, "tok_per_s": tokens / wall,
        "tokens_per_request": tokens / max(1, len(ok)),
        "p50_s": pct(lat, 50), "p90_s": pct(lat, 90), "p99_s": pct(lat, 99),
        "ttft_p50_s": pct(ttft, 50), "ttft_p99_s": pct(ttft, 99),
        "ok_p50_s": pct(np.array([o.latency for o in ok]), 50),
        "send_lag_p99_s": pct(lag, 99),
    }


def _percentile(a: np.ndarray, q: float) -> float:
    """numpy's linear-interpolation percentile, except that interpolating towards an infinite value
    (a failed request) gives infinity rather than NaN.

    Examples
    --------
    >>> _percentile(np.array([1.0, 2.0, np.inf]), 50), _percentile(np.array([1.0, 2.0, np.inf]), 99)
    (2.0, inf)
    """
    x = np.sort(np.asarray(a, dtype=float))
    pos = q / 100 * (x.size - 1)
    lo, hi = int(np.floor(pos)), int(np.ceil(pos))
    if np.isinf(x[hi]) and hi != lo:
        return float("inf")
    if np.isinf(x[lo]):
        return float(x[lo])
    return float(x[lo] + (pos - lo) * (x[hi] - x[lo]))


def outcomes_frame(outcomes: Sequence[Outcome]) -> pd.DataFrame:
    """One row per request (the :class:`Outcome` fields), in send order.

    Examples
    --------
    >>> outcomes_frame([Outcome(True, 0.0, 1.5, 0.2, 4)])[["ok", "latency", "completion_tokens"]].to_dict("records")
    [{'ok': True, 'latency': 1.5, 'completion_tokens': 4}]
    """
    cols = list(Outcome.__dataclass_fields__)
    return pd.DataFrame([asdict(o) for o in outcomes], columns=cols)


def run(awaitable: Awaitable) -> Any:
    """Run a coroutine to completion from ordinary code or from a Jupyter cell.

    Jupyter already runs an event loop in the kernel's thread, where ``asyncio.run`` refuses to
    start; the coroutine then runs on a fresh loop in a helper thread.

    Examples
    --------
    >>> async def two():
    ...     return 2
    >>> run(two())
    2
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(awaitable)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tradeoffs-loadtest") as pool:
        return pool.submit(asyncio.run, awaitable).result()


def sweep(base_url: str, model: str, prompts: Sequence[Any], rates: Sequence[float], *, duration: float,
          min_requests: int = 8, max_requests: int | None = None, max_tokens: int = 32,
          timeout: float = DEFAULT_TIMEOUT_S, seed: int = 0, label: str = "",
          metrics_url: str | None = None, progress: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Open-loop load at each rate; returns ``(summary, requests)`` DataFrames.

    Each rate runs for ``max(duration, min_requests / rate)`` seconds of arrivals (so slow servers
    still get enough requests for a percentile), capped at ``max_requests`` arrivals. Every rate
    starts from the next unused prompt. ``summary`` has one row per rate (the :func:`summarize` keys
    plus ``label``, ``offered_rate``); ``requests`` one row per request (:func:`outcomes_frame` plus
    ``label`` and ``offered_rate``).

    With ``metrics_url`` (the kit server's ``/metrics``), each summary row also holds what the server
    measured during that level (:func:`server_timings`, columns prefixed ``server_``): its own mean
    time per engine step, batch and tokens per step — how fast the machine actually was while the
    level ran.
    """
    if not rates:
        raise ValueError("rates is empty; give at least one offered load in requests/s")
    rows, frames = [], []
    cursor = 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(rates), desc=f"open loop {label}".strip(), unit="rate")
    try:
        for k, rate in enumerate(rates):
            span = max(float(duration), min_requests / float(rate))
            sched = poisson_schedule(float(rate), span, seed=seed + k)
            if len(sched) < min_requests:  # a short Poisson draw: extend it with the same process
                extra = poisson_schedule(float(rate), 10 * span, seed=seed + 1000 + k)
                sched = np.concatenate([sched, sched[-1] + 1.0 / rate + extra])[:min_requests]
            if max_requests is not None:
                sched = sched[:max_requests]
            first = cursor
            rotated = list(prompts[first:]) + list(prompts[:first])
            before = _try_scrape(metrics_url)
            outcomes, wall = run(open_loop(base_url, model, rotated, max_tokens=max_tokens, timeout=timeout,
                                           arrivals=sched))
            after = _try_scrape(metrics_url)
            cursor = (first + len(outcomes)) % len(prompts)
            summary = summarize(outcomes, wall)
            summary["error_kinds"] = ",".join(summary["error_kinds"])
            row = {"label": label, "offered_rate": float(rate), **summary}
            if metrics_url is not None:
                row.update({f"server_{k}": v for k, v in server_timings(before, after).items()})
            rows.append(row)
            frame = outcomes_frame(outcomes)
            frame["index"] = (frame["index"] + first) % len(prompts)  # position in `prompts`
            frames.append(frame.assign(label=label, offered_rate=float(rate)))
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(f"{rate:.2g}/s: p50 {summary['p50_s']:.2f} s, p99 {summary['p99_s']:.2f} s")
    finally:
        if bar is not None:
            bar.close()
    return pd.DataFrame(rows), pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------------------------
# The server's own view: Prometheus metrics
# --------------------------------------------------------------------------------------------
def scrape_metrics(url: str, timeout: float = 5.0) -> dict[str, float]:
    """Read a Prometheus ``/metrics`` endpoint into ``{'name{label="value",...}': value}``.

    Examples
    --------
    >>> scrape_metrics("http://127.0.0.1:8000/metrics")["tradeoffs_queue_depth"]   # doctest: +SKIP
    0.0
    """
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=timeout) as resp:
        text = resp.read().decode("utf-8", errors="replace")
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = float(sample.value)
    return out


def server_timings(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    """What the kit's server (``tradeoffs.serve``) did between two :func:`scrape_metrics` readings.

    Returns the mean of each engine-step histogram over the interval:

    * ``step_s`` — seconds per engine step (one forward pass: the decode tokens of the running
      requests plus any prompt chunks being prefilled), from ``tradeoffs_step_seconds``;
    * ``step_batch`` — requests in the running batch at each step (``tradeoffs_batch_size``);
    * ``step_tokens`` — tokens in each forward pass (``tradeoffs_step_tokens``); above
      ``step_batch`` the step also read prompt tokens;
    * ``steps`` — how many steps ran.

    NaN for a quantity the server did not report (another server, or no step in the interval).

    Examples
    --------
    >>> b = {"tradeoffs_step_seconds_sum": 1.0, "tradeoffs_step_seconds_count": 10}
    >>> a = {"tradeoffs_step_seconds_sum": 4.0, "tradeoffs_step_seconds_count": 20}
    >>> t = server_timings(b, a)
    >>> t["step_s"], t["steps"]
    (0.3, 10.0)
    >>> import math; math.isnan(t["step_batch"])
    True
    """
    count = after.get("tradeoffs_step_seconds_count", float("nan")) - before.get("tradeoffs_step_seconds_count", 0.0)
    return {"step_s": _interval_mean(before, after, "tradeoffs_step_seconds"),
            "step_batch": _interval_mean(before, after, "tradeoffs_batch_size"),
            "step_tokens": _interval_mean(before, after, "tradeoffs_step_tokens"),
            "steps": float(count)}


def _try_scrape(url: str | None) -> dict[str, float]:
    if url is None:
        return {}
    try:
        return scrape_metrics(url)
    except Exception:  # a server without /metrics: its timings are simply unknown (NaN)
        return {}


def _interval_mean(before: Mapping[str, float], after: Mapping[str, float], name: str) -> float:
    """Mean of a Prometheus histogram's observations between two readings (sum / count of the deltas)."""
    s, c = (after.get(f"{name}_{x}", float("nan")) - before.get(f"{name}_{x}", 0.0) for x in ("sum", "count"))
    return s / c if c > 0 else float("nan")


# --------------------------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------------------------
@contextlib.contextmanager
def started(*servers) -> Iterator[list[str]]:
    """Start several servers (anything with ``start()`` returning a base_url and ``stop()``, e.g.
    :class:`tradeoffs.serve.LocalServer`) **at the same time**, yield their base URLs, and stop all
    of them on exit, whatever happens. If one fails to start, the others are stopped and the error
    is raised.

    Each server is started, kept and stopped by its own helper thread, which lives exactly as long
    as the ``with`` block: on Linux a ``LocalServer`` asks the kernel to stop it when the *thread*
    that launched it ends (``PR_SET_PDEATHSIG``), so a thread that started a server and returned
    would take the server down with it.

    Examples
    --------
    >>> from tradeoffs.serve import LocalServer                                        # doctest: +SKIP
    >>> with started(LocalServer(max_batch_size=1), LocalServer(max_batch_size=8)) as (naive, batched):  # doctest: +SKIP
    ...     ...
    """
    if not servers:
        raise ValueError("give at least one server")
    results: list[Any] = [None] * len(servers)
    ready = [threading.Event() for _ in servers]
    done = threading.Event()

    def keep(i: int) -> None:
        try:
            results[i] = servers[i].start()
        except BaseException as exc:  # collected and re-raised in the caller's thread
            results[i] = exc
        finally:
            ready[i].set()
        done.wait()
        with contextlib.suppress(Exception):
            servers[i].stop()

    threads = [threading.Thread(target=keep, args=(i,), name=f"tradeoffs-server-{i}", daemon=True)
               for i in range(len(servers))]
    try:
        for t in threads:
            t.start()
        for event in ready:
            while not event.wait(0.2):  # short waits keep Ctrl-C responsive
                pass
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise failures[0]
        yield list(results)
    finally:
        done.set()
        for t in threads:
            t.join()
        for s in servers:
            with contextlib.suppress(Exception):
                s.stop()


def vllm_serve_command(model: str = "HuggingFaceTB/SmolLM2-135M-Instruct", *, port: int = 8000,
                       max_num_seqs: int = 256, dtype: str = "bfloat16",
                       gpu_memory_utilization: float = 0.85) -> list[str]:
    """The command that serves ``model`` with vLLM on a GPU (continuous batching + PagedAttention),
    OpenAI-compatible at ``http://127.0.0.1:{port}/v1`` — the same ``base_url`` this module's load
    tests take. vLLM is not a dependency of the kit (``pip install vllm`` on a CUDA machine).

    Examples
    --------
    >>> " ".join(vllm_serve_command(port=8001, max_num_seqs=64))
    'vllm serve HuggingFaceTB/SmolLM2-135M-Instruct --port 8001 --max-num-seqs 64 --dtype bfloat16 --gpu-memory-utilization 0.85'
    """
    if max_num_seqs < 1:
        raise ValueError(f"max_num_seqs must be >= 1, got {max_num_seqs}")
    if not 0 < gpu_memory_utilization <= 1:
        raise ValueError(f"gpu_memory_utilization must be in (0, 1], got {gpu_memory_utilization}")
    return ["vllm", "serve", model, "--port", str(port), "--max-num-seqs", str(max_num_seqs), "--dtype", dtype,
            "--gpu-memory-utilization", f"{gpu_memory_utilization:g}"]


# --------------------------------------------------------------------------------------------
# Lab 4: several servers, alone and under open-loop load (or the simulator standing in for them)
# --------------------------------------------------------------------------------------------
def measure_servers(servers: Mapping[str, Any], model: str, prompts: Sequence[Any],
                    rates: Mapping[str, Sequence[float]], *, max_tokens: int, window_s: float, min_requests: int,
                    alone_repeats: int = 3, seed: int = 0, stand_in: Mapping[str, tuple] | None = None,
                    progress: bool = True) -> tuple[dict[str, pd.DataFrame], pd.DataFrame, pd.DataFrame]:
    """Start the servers together, time requests sent alone, then put each under open-loop Poisson load.

    For each server: a warm-up request and ``alone_repeats`` requests one at a time (its latency with
    no queue), then :func:`sweep` at each of its ``rates`` with the server's ``/metrics`` read
    around every level. The servers are stopped on the way out, whatever happens.

    When a notebook is being graded (``tradeoffs.notebook.autograding()``) no server starts: the
    simulator stands in, with ``stand_in[name] = (policy, step_curve, prefill_curve)``, so that the
    cells after this one run (grading checks the learner's code, never the grader's speed).

    Parameters
    ----------
    servers : mapping
        Label -> server (anything with ``start()`` returning a base URL, ``stop()``, ``url`` and
        ``log_tail()``, e.g. ``tradeoffs.serve.LocalServer``).
    model : str
        Model id sent in every request.
    prompts : sequence
        Requests to send (chat messages or request dicts, as :func:`sweep` takes them).
    rates : mapping
        Label -> offered loads, requests/s.
    max_tokens, window_s, min_requests : int, float, int
        Completion cap, seconds of arrivals per level, and the fewest requests per level.
    alone_repeats : int
        Requests sent one at a time after the warm-up.
    seed : int
        Seed of the arrival times (server ``k`` uses ``seed + 100 k``).
    stand_in : mapping, optional
        Label -> ``(policy, step_curve, prefill_curve)`` for the simulator, used only when grading.

    Returns
    -------
    (alone, live, live_log) : dict of DataFrames (label -> requests sent alone, warm-up dropped:
    ``latency``, ``ttft``, ``completion_tokens``...), the per-level summary (:func:`sweep`'s, all
    servers) and the per-request log.

    Examples
    --------
    >>> from tradeoffs.queueing import Continuous, ServiceCurve
    >>> import os; os.environ["NBGRADER_EXECUTION"] = "autograde"     # what the grader sets
    >>> alone, live, log = measure_servers({"naive": None}, "m", [], {"naive": [1.0]}, max_tokens=4, window_s=1.0,
    ...     min_requests=2, stand_in={"naive": (Continuous(1), ServiceCurve.constant(0.1), ServiceCurve.constant(0.2))},
    ...     progress=False)
    (graded run: no servers start; the simulator stands in for them)
    >>> del os.environ["NBGRADER_EXECUTION"]
    >>> round(float(alone["naive"]["latency"].iloc[0]), 2), list(live["label"]), len(log) == int(live["requests"].sum())
    (0.5, ['naive'], True)
    """
    from .notebook import autograding

    if set(rates) != set(servers):
        raise ValueError(f"rates must name the same servers as servers: {sorted(rates)} vs {sorted(servers)}")
    if autograding():
        if stand_in is None or set(stand_in) != set(servers):
            raise ValueError("while grading, every server needs a stand_in=(policy, step_curve, prefill_curve)")
        return _simulated_servers(stand_in, rates, max_tokens=max_tokens, min_requests=min_requests, seed=seed)
    alone: dict[str, pd.DataFrame] = {}
    live, logs = [], []
    names = list(servers)
    with started(*servers.values()) as urls:
        url = dict(zip(names, urls))
        for name in names:
            outs, _ = run(closed_loop(url[name], model, list(prompts[-4:]), clients=1, per_client=1 + alone_repeats,
                                      max_tokens=max_tokens, timeout=600))
            frame = outcomes_frame(outs)
            if not frame["ok"].all():
                raise RuntimeError(f"the {name} server failed a request sent alone ({sorted(set(frame['status']))}); "
                                   f"its log says:\n{servers[name].log_tail()}")
            alone[name] = frame.iloc[1:] if len(frame) > 1 else frame     # the first call is the warm-up
        unloaded_s = float(alone[names[0]]["latency"].median())
        for k, name in enumerate(names):
            summary, log = sweep(url[name], model, prompts, list(rates[name]), duration=window_s,
                                 min_requests=min_requests, max_tokens=max_tokens,
                                 timeout=window_s + 8 * unloaded_s, seed=seed + 100 * k, label=name,
                                 metrics_url=f"{servers[name].url}/metrics", progress=progress)
            live.append(summary)
            logs.append(log)
    return alone, pd.concat(live, ignore_index=True), pd.concat(logs, ignore_index=True)


def _simulated_servers(stand_in: Mapping[str, tuple], rates: Mapping[str, Sequence[float]], *, max_tokens: int,
                       min_requests: int, seed: int) -> tuple[dict[str, pd.DataFrame], pd.DataFrame, pd.DataFrame]:
    """What :func:`measure_servers` returns, from the simulator (no server, no clock)."""
    from . import queueing as q

    print("(graded run: no servers start; the simulator stands in for them)")
    alone: dict[str, pd.DataFrame] = {}
    live, logs = [], []
    for k, (name, (policy, step, prefill)) in enumerate(stand_in.items()):
        unloaded = prefill.mean(1) + (max_tokens - 1) * step.mean(1)
        alone[name] = pd.DataFrame({"ok": [True], "latency": [unloaded], "ttft": [prefill.mean(1)],
                                    "completion_tokens": [max_tokens]})
        for rate in rates[name]:
            arrivals = q.poisson_arrivals(float(rate), n=4 * min_requests, seed=seed + 100 * k)
            sim = q.simulate(arrivals, policy, step, steps=max_tokens, prefill=prefill)
            outs = [Outcome(True, float(a), float(lat), float(w) + prefill.mean(1), max_tokens)
                    for a, lat, w in zip(sim["arrival"], sim["latency"], sim["wait"])]
            summary = {**summarize(outs, float(sim["finish"].max())), "error_kinds": "",
                       **{f"server_{key}": float("nan") for key in server_timings({}, {})}}
            live.append(pd.DataFrame([{"label": name, "offered_rate": float(rate), **summary}]))
            logs.append(outcomes_frame(outs).assign(label=name, offered_rate=float(rate)))
    return alone, pd.concat(live, ignore_index=True), pd.concat(logs, ignore_index=True)
