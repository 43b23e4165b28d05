"""Replaying the kit's traffic trace through a metered client.
"""

from __future__ import annotations

import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .client import MeteredClient

#: The system prompts of the three support features, as used to build the traffic trace
#: (``datasets/traffic/make_trace.py``, ``PROMPTS``: the trace's prompt_tokens count exactly these).
SUPPORT_TEMPLATES: dict[str, tuple[str, str]] = {
    "summarise/v1": ("summarise", "You summarise customer-support tickets for {company}'s agents. Write one or two "
                     "plain sentences: what the customer wants, and any order number, amount or date they give."),
    "classify/v1": ("classify", "You triage customer-support tickets for {company}. Reply with JSON only: "
                    '{{"intent": one of {intents}, "priority": one of {priorities}}}.'),
    "draft_reply/v1": ("draft_reply", "You are a support agent at {company}. Draft a short, polite reply to the "
                       "customer below. Answer what they asked, say what happens next, and promise nothing you "
                       "cannot check."),
}


def support_messages(template_id: str, tenant: str, ticket_text: str,
                     templates: Mapping[str, tuple[str, str]] = SUPPORT_TEMPLATES) -> list[dict[str, str]]:
    """The chat messages of one support request: the feature's system prompt for the tenant + the ticket.

    Examples
    --------
    >>> m = support_messages("summarise/v1", "parcelpoint", "Where is my parcel?")
    >>> [x["role"] for x in m], m[1]["content"]
    (['system', 'user'], 'Where is my parcel?')
    """
    from .. import data

    if template_id not in templates:
        raise ValueError(f"unknown template {template_id!r}; known: {sorted(templates)}")
    company = data.TENANT_NAMES.get(tenant, tenant)
    system = templates[template_id][1].format(company=company, intents=", ".join(data.INTENTS),
                                              priorities=", ".join(data.PRIORITIES))
    return [{"role": "system", "content": system}, {"role": "user", "content": ticket_text}]


def trace_requests(trace: pd.DataFrame, tickets: pd.DataFrame, model: str, *, max_tokens_cap: int | None = None,
                   templates: Mapping[str, tuple[str, str]] = SUPPORT_TEMPLATES) -> list[dict[str, Any]]:
    """Turn rows of :func:`tradeoffs.data.load_trace` into keyword arguments for ``metered.create``.

    Each request carries its tenant, feature, template id (``<feature>/v1``), the trace's request id,
    the ticket's text in the feature's prompt, greedy decoding, and ``max_tokens`` = the trace's
    completion length (capped at ``max_tokens_cap``).

    Examples
    --------
    >>> trace = pd.DataFrame({"request_id": ["req-1"], "tenant": ["kitcube"], "feature": ["classify"],
    ...                       "completion_tokens": [16], "ticket_id": ["T1"]})
    >>> tickets = pd.DataFrame({"ticket_id": ["T1"], "text": ["My box is late"]})
    >>> r = trace_requests(trace, tickets, model="m", max_tokens_cap=8)[0]
    >>> r["template_id"], r["max_tokens"], r["request_id"]
    ('classify/v1', 8, 'req-1')
    """
    need = ["request_id", "tenant", "feature", "completion_tokens", "ticket_id"]
    missing = [c for c in need if c not in trace.columns]
    if missing:
        raise ValueError(f"trace lacks the column(s) {missing}; pass rows of tradeoffs.data.load_trace()")
    text = dict(zip(tickets["ticket_id"], tickets["text"]))
    by_feature = {feature: tid for tid, (feature, _) in templates.items()}
    out = []
    for row in trace.itertuples(index=False):
        if row.ticket_id not in text:
            raise ValueError(f"ticket {row.ticket_id!r} of {row.request_id} is not in tickets; "
                             "pass tradeoffs.data.load_tickets()")
        if row.feature not in by_feature:
            raise ValueError(f"no template for feature {row.feature!r}; templates cover {sorted(by_feature)}")
        template_id = by_feature[row.feature]
        limit = int(row.completion_tokens) if max_tokens_cap is None else min(int(row.completion_tokens), max_tokens_cap)
        out.append({"tenant": row.tenant, "feature": row.feature, "template_id": template_id,
                    "request_id": row.request_id, "model": model, "temperature": 0.0, "max_tokens": max(1, limit),
                    "messages": support_messages(template_id, row.tenant, text[row.ticket_id], templates)})
    return out


@dataclass
class ReplayResult:
    """What one replay did: counts (ok, failed, skipped over the time budget), wall time, throughput and the
    latencies of its successful calls."""

    requests: int
    ok: int
    failed: int
    wall_s: float
    concurrency: int
    latencies_s: np.ndarray = field(repr=False)
    errors: list[str] = field(default_factory=list, repr=False)
    skipped: int = 0

    @property
    def throughput_rps(self) -> float:
        """Successful requests per second of wall time."""
        return self.ok / self.wall_s if self.wall_s > 0 else float("nan")

    def p(self, q: float) -> float:
        return float(np.quantile(self.latencies_s, q)) if len(self.latencies_s) else float("nan")

    def summary(self) -> dict[str, float]:
        return {"concurrency": self.concurrency, "requests": self.requests, "ok": self.ok, "failed": self.failed,
                "skipped": self.skipped, "wall_s": self.wall_s, "throughput_rps": self.throughput_rps, "p50_s": self.p(0.5),
                "p95_s": self.p(0.95)}


def _completed(pending: set[Future], poll_s: float = 0.1):
    """Yield futures as they finish, waking every ``poll_s`` seconds.

    A signal (Ctrl-C, a grader's cell timeout) can be delivered to any thread of the process; Python
    raises ``KeyboardInterrupt`` only when the main thread runs bytecode again. ``as_completed`` sleeps
    until a request finishes, so a signal taken by a worker thread would wait for the request in flight;
    waking on a short timeout handles it within ``poll_s``.
    """
    while pending:
        done, pending = wait(pending, timeout=poll_s, return_when=FIRST_COMPLETED)
        yield from done


def replay(metered: MeteredClient, requests: Sequence[Mapping[str, Any]], *, concurrency: int = 4,
           stream: bool = False, tag: str | None = None, progress: bool = False,
           time_budget_s: float | None = None) -> ReplayResult:
    """Send ``requests`` through a metered client with ``concurrency`` requests in flight; every call is metered.

    A failed request (after the client's retries) is counted, not raised: a load test must finish.

    Parameters
    ----------
    time_budget_s : float, optional
        Stop *starting* requests once this many seconds have passed; the ones not started are counted
        as ``skipped`` (requests in flight finish normally). Bounds the run on a slow or busy machine.

    Notes
    -----
    An interrupt (Ctrl-C, a grader's cell timeout) returns control at once: requests not yet started
    are cancelled, and the ones in flight finish in the background (and are still metered).

    Examples
    --------
    >>> import httpx, openai, tempfile, os
    >>> def fake(request):
    ...     return httpx.Response(200, json={"id": "x", "object": "chat.completion", "created": 0, "model": "m",
    ...         "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}],
    ...         "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}})
    >>> client = openai.OpenAI(base_url="http://fake/v1", api_key="-", http_client=httpx.Client(transport=httpx.MockTransport(fake)))
    >>> metered = MeteredClient(client, os.path.join(tempfile.mkdtemp(), "l.db"))
    >>> reqs = [dict(tenant="a", feature="f", template_id="f/v1", model="m", messages=[]) for _ in range(6)]
    >>> r = replay(metered, reqs, concurrency=3, tag="demo")
    >>> r.ok, r.skipped, len(metered.ledger.frame(tag="demo"))
    (6, 0, 6)
    """
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be a whole number >= 1, got {concurrency!r}")
    if not isinstance(metered, MeteredClient):
        raise TypeError(f"metered must be a MeteredClient, got {type(metered).__name__}")
    if time_budget_s is not None and not time_budget_s >= 0:
        raise ValueError(f"time_budget_s must be None or a number of seconds >= 0, got {time_budget_s!r}")
    start = time.perf_counter()

    def one(req: Mapping[str, Any]) -> float | None:
        t0 = time.perf_counter()
        if time_budget_s is not None and t0 - start > time_budget_s:
            return None  # over budget: not sent
        kwargs = dict(req)
        if tag is not None:
            kwargs["tag"] = tag
        if stream:
            with metered.create(**kwargs, stream=True) as s:
                for _ in s:
                    pass
        else:
            metered.create(**kwargs)
        return time.perf_counter() - t0

    latencies: list[float] = []
    errors: list[str] = []
    skipped = 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(requests), desc=f"replay x{concurrency}", leave=False)
    pool = ThreadPoolExecutor(max_workers=concurrency)
    try:
        pending = {pool.submit(one, r) for r in requests}
        for fut in _completed(pending):
            try:
                latency = fut.result()
            except Exception as exc:  # already in the ledger as an error row
                errors.append(f"{type(exc).__name__}: {exc}")
            else:
                if latency is None:
                    skipped += 1
                else:
                    latencies.append(latency)
            if bar is not None:
                bar.update(1)
    except BaseException:  # KeyboardInterrupt: give control back now, do not wait for the requests in flight
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        if bar is not None:
            bar.close()
    pool.shutdown(wait=True)
    wall = time.perf_counter() - start
    return ReplayResult(requests=len(requests), ok=len(latencies), failed=len(errors), wall_s=wall,
                        concurrency=concurrency, latencies_s=np.asarray(latencies), errors=errors, skipped=skipped)
