"""The load generator (tradeoffs.loadtest) against the kit's real server: what lab 4 measures is
what the server reports, and an open loop of concurrent requests is batched."""

from __future__ import annotations

import numpy as np
import pytest

from tradeoffs import loadtest, metering, models
from tradeoffs.data import load_tickets, load_trace

pytestmark = pytest.mark.models

CHAT = models.CHAT_MODEL_ID


def test_open_loop_on_trace_requests(server):
    trace = load_trace().iloc[:4]
    requests = metering.trace_requests(trace, load_tickets(), model=CHAT, max_tokens_cap=3)
    outcomes, wall = loadtest.run(loadtest.open_loop(server.base_url, CHAT, requests,
                                                     arrivals=[0.0, 0.0, 0.05, 0.1], timeout=300))
    assert all(o.ok for o in outcomes), [o.status for o in outcomes]
    assert [o.index for o in outcomes] == [0, 1, 2, 3]
    for o, trace_row in zip(outcomes, trace.itertuples()):
        assert 1 <= o.completion_tokens <= 3
        assert o.prompt_tokens == trace_row.prompt_tokens  # the trace counts the same chat template
        assert 0 < o.ttft <= o.latency <= wall
    s = loadtest.summarize(outcomes, wall)
    assert s["ok"] == 4 and s["errors"] == 0 and s["p50_s"] <= s["p99_s"]


def test_closed_loop_counts_tokens(server):
    outcomes, wall = loadtest.run(loadtest.closed_loop(server.base_url, CHAT, ["Say hi", "Say bye"], clients=2,
                                                       per_client=1, max_tokens=2, timeout=300))
    assert len(outcomes) == 2 and all(o.ok for o in outcomes)
    s = loadtest.summarize(outcomes, wall)
    assert s["tok_per_s"] == pytest.approx(sum(o.completion_tokens for o in outcomes) / wall)
    assert np.isfinite(s["ttft_p50_s"])


def test_unknown_model_is_a_recorded_404(server):
    outcomes, _ = loadtest.run(loadtest.open_loop(server.base_url, "no-such-model", ["hi"], arrivals=[0.0],
                                                  max_tokens=2, timeout=60))
    assert not outcomes[0].ok and outcomes[0].status == "404"


def test_sweep_reads_the_kit_servers_step_timings(server):
    summary, log = loadtest.sweep(server.base_url, CHAT, ["Say hi", "Say bye"], [5.0], duration=0.1, min_requests=2,
                                  max_requests=2, max_tokens=3, timeout=300, metrics_url=f"{server.url}/metrics")
    row = summary.iloc[0]
    assert row["ok"] == 2
    assert row["server_step_s"] > 0 and row["server_steps"] >= 3  # at least one prefill and two decode steps
    assert 1 <= row["server_step_batch"] <= 2
    assert row["server_step_tokens"] >= row["server_step_batch"]  # a step reads one token per running request, or more
