"""Prometheus metrics of one server instance (queue depth, batch sizes, latencies, tokens).

Each :class:`ServerMetrics` owns its own ``CollectorRegistry``, so several apps in one process
(tests, notebooks) never collide on metric names.
"""

from __future__ import annotations

from prometheus_client import (CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics,
                               generate_latest)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# The `*_created` timestamp series double the output and mean nothing to a learner reading /metrics.
disable_created_metrics()

__all__ = ["ServerMetrics", "CONTENT_TYPE_LATEST"]

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128)
_BATCH_BUCKETS = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 128)


class ServerMetrics:
    """The server's counters, gauges and histograms, exported in Prometheus text format.

    Examples
    --------
    >>> m = ServerMetrics()
    >>> m.queue_depth.set(3)
    >>> b"tradeoffs_queue_depth 3.0" in m.render()
    True
    """

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.queue_depth = Gauge("tradeoffs_queue_depth", "Requests waiting to join the batch.", registry=r)
        self.running = Gauge("tradeoffs_running_requests", "Requests in the running batch.", registry=r)
        self.max_batch_size = Gauge("tradeoffs_max_batch_size", "Configured max batch size.", registry=r)
        self.max_queue = Gauge("tradeoffs_max_queue", "Configured queue bound.", registry=r)
        self.requests = Counter("tradeoffs_requests", "HTTP requests by endpoint and status code.",
                                ["endpoint", "status"], registry=r)
        self.rejected = Counter("tradeoffs_rejected_requests", "Requests refused with 429 (queue full).",
                                registry=r)
        self.cancelled = Counter("tradeoffs_cancelled_requests",
                                 "Requests whose client went away before the reply finished.", registry=r)
        self.prompt_tokens = Counter("tradeoffs_prompt_tokens", "Prompt tokens processed.",
                                     ["model"], registry=r)
        self.completion_tokens = Counter("tradeoffs_completion_tokens", "Completion tokens generated.",
                                         ["model"], registry=r)
        self.batch_size_hist = Histogram("tradeoffs_batch_size", "Requests in the running batch at each step.",
                                      buckets=_BATCH_BUCKETS, registry=r)
        self.step_tokens = Histogram("tradeoffs_step_tokens", "Tokens in each forward pass (decode + prompt chunks).",
                                     buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024), registry=r)
        self.admitted_batch = Histogram("tradeoffs_admitted_batch_size", "Requests admitted together.",
                                        buckets=_BATCH_BUCKETS, registry=r)
        self.prefix_tokens = Counter("tradeoffs_prefix_cache_tokens", "Prompt tokens reused from the prefix cache.",
                                     registry=r)
        self.embed_batch = Histogram("tradeoffs_embedding_batch_size", "Inputs per embedding call.",
                                     buckets=_BATCH_BUCKETS, registry=r)
        self.step_seconds = Histogram("tradeoffs_step_seconds", "Seconds per engine step (one forward pass).",
                                      buckets=_LATENCY_BUCKETS, registry=r)
        self.queue_seconds = Histogram("tradeoffs_queue_wait_seconds",
                                       "Seconds from arrival to joining the batch.",
                                       buckets=_LATENCY_BUCKETS, registry=r)
        self.ttft_seconds = Histogram("tradeoffs_time_to_first_token_seconds",
                                      "Seconds from arrival to the first generated token.",
                                      buckets=_LATENCY_BUCKETS, registry=r)
        self.latency_seconds = Histogram("tradeoffs_request_latency_seconds",
                                         "Seconds from arrival to the last token (or embedding).",
                                         ["endpoint"], buckets=_LATENCY_BUCKETS, registry=r)

    def render(self) -> bytes:
        """The metrics in Prometheus text exposition format."""
        return generate_latest(self.registry)
