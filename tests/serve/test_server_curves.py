"""tradeoffs.server_curves against the kit's real server: the curves lab 4's what-if runs on come from
requests the server actually answered (invariants only, no timing thresholds)."""

from __future__ import annotations

import numpy as np
import pytest

from tradeoffs import loadtest, metering, models
from tradeoffs.data import load_tickets, load_trace
from tradeoffs.server_curves import measure_server_curves

pytestmark = pytest.mark.models

CHAT = models.CHAT_MODEL_ID
MAX_TOKENS = 4


def test_measure_server_curves_on_the_kit_server(server):
    requests = metering.trace_requests(load_trace().iloc[:4], load_tickets(), model=CHAT, max_tokens_cap=MAX_TOKENS)
    loadtest.run(loadtest.closed_loop(server.base_url, CHAT, requests[:1], 1, 1, MAX_TOKENS, 300))   # warm-up
    curves = measure_server_curves(server.base_url, CHAT, requests, concurrencies=(1, 2), per_client=1,
                                   max_tokens=MAX_TOKENS, timeout=300)

    out = curves.outcomes
    assert out["ok"].all() and sorted(out["clients"].value_counts().items()) == [(1, 1), (2, 2)]
    assert out["completion_tokens"].between(2, MAX_TOKENS).all(), out["completion_tokens"].tolist()
    assert (0 < out["ttft"]).all() and (out["ttft"] <= out["latency"]).all()

    step, prefill = curves.step, curves.prefill
    assert step.batch_sizes.tolist() == [1.0, 2.0] and prefill.batch_sizes.tolist() == [1.0, 2.0]
    for s in (step.mean(1), step.mean(2), prefill.mean(1), prefill.mean(2)):
        assert np.isfinite(s) and s > 0
    assert step.mean(2) >= 0.5 * step.mean(1), "two requests decoding together cannot each take under half a step"
    assert prefill.mean(2) == pytest.approx(2 * prefill.mean(1)), "prefill of b prompts is modelled as b x one"
    alone = out[out["clients"] == 1].iloc[0]
    assert prefill.mean(1) == pytest.approx(alone["ttft"])
    assert step.mean(1) == pytest.approx((alone["latency"] - alone["ttft"]) / (alone["completion_tokens"] - 1))
    assert step.mean(1) < alone["latency"]
    assert curves.table()["step_s"].tolist() == pytest.approx(step.seconds.tolist())
