"""The load generator against a fake OpenAI-compatible server with a known service time.

The fake server streams ``max_tokens`` chunks, ``TOKEN_S`` apart, and serves one request at a time
(an asyncio lock): a single-worker server whose queueing the open loop must expose and the closed
loop must hide. No model is loaded, so these tests are fast.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time

import numpy as np
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from tradeoffs import loadtest

TOKEN_S = 0.02


class FakeServer:
    def __init__(self) -> None:
        import uvicorn

        from tradeoffs.serve import free_port

        app = FastAPI()
        lock = asyncio.Lock()
        self.served = 0
        registry = CollectorRegistry()
        # the names the kit's server exports (tradeoffs.serve.metrics)
        steps = Histogram("tradeoffs_step_seconds", "step", registry=registry)
        batch = Histogram("tradeoffs_batch_size", "batch", registry=registry)

        @app.get("/metrics")
        async def metrics():
            return PlainTextResponse(generate_latest(registry).decode())

        @app.post("/v1/chat/completions")
        async def chat(request: Request):
            body = await request.json()
            text = body["messages"][-1]["content"]
            n = int(body.get("max_tokens") or 4)
            if text == "fail":
                return JSONResponse({"error": {"message": "boom", "type": "server_error"}}, status_code=500)

            async def events():
                async with lock:
                    delay = 5.0 if text == "hang" else TOKEN_S
                    yield "data: " + json.dumps(_chunk({"role": "assistant", "content": ""})) + "\n\n"
                    if text == "midfail":  # an engine error after the 200 header: OpenAI's in-stream error
                        yield "data: " + json.dumps({"error": {"message": "engine failed", "type": "server_error"}}) + "\n\n"
                        return
                    for i in range(n):
                        await asyncio.sleep(delay)
                        steps.observe(delay)
                        batch.observe(1)
                        yield "data: " + json.dumps(_chunk({"content": f"t{i} "})) + "\n\n"
                    yield "data: " + json.dumps(_chunk({}, "length")) + "\n\n"
                    usage = {"prompt_tokens": 7, "completion_tokens": n, "total_tokens": 7 + n}
                    yield "data: " + json.dumps({**_chunk({}), "choices": [], "usage": usage}) + "\n\n"
                    yield "data: [DONE]\n\n"
                    self.served += 1

            return StreamingResponse(events(), media_type="text/event-stream")

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "fake server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)


def _chunk(delta, finish=None):
    return {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "fake",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


@pytest.fixture(scope="module")
def fake():
    with FakeServer() as srv:
        yield srv


def test_one_request_measures_latency_ttft_and_usage(fake):
    async def go():
        client = loadtest.make_client(fake.base_url)
        try:
            return await loadtest.one_request(client, "fake", "hello", 5, 10.0, time.perf_counter())
        finally:
            await client.close()

    o = loadtest.run(go())
    assert o.ok and o.status == "200"
    assert o.completion_tokens == 5 and o.prompt_tokens == 7
    assert 0 < o.ttft < o.latency
    assert o.latency >= 5 * TOKEN_S * 0.9


def test_failures_are_recorded_not_raised(fake):
    async def go(prompt, timeout):
        client = loadtest.make_client(fake.base_url)
        try:
            return await loadtest.one_request(client, "fake", prompt, 2, timeout, time.perf_counter())
        finally:
            await client.close()

    err = loadtest.run(go("fail", 10.0))
    assert not err.ok and err.status == "500" and np.isnan(err.ttft)
    slow = loadtest.run(go("hang", 0.3))
    assert not slow.ok and slow.status == "timeout" and slow.latency < 2.0
    broken = loadtest.run(go("midfail", 10.0))
    assert not broken.ok and broken.status == "stream_error"
    dead = loadtest.run(loadtest.closed_loop("http://127.0.0.1:9/v1", "fake", ["x"], 1, 1, 2, 2.0))[0][0]
    assert not dead.ok and dead.status == "connection"


def test_open_loop_sends_on_schedule_and_sees_queueing(fake):
    """Five requests sent at once to a one-at-a-time server: the k-th waits for k-1 others."""
    outcomes, wall = loadtest.run(loadtest.open_loop(fake.base_url, "fake", ["a", "b", "c", "d", "e"],
                                                     max_tokens=10, arrivals=[0, 0, 0, 0, 0]))
    assert [o.ok for o in outcomes] == [True] * 5
    lat = sorted(o.latency for o in outcomes)
    service = 10 * TOKEN_S
    assert lat[-1] >= 5 * service  # the last one queued behind four others
    assert lat[-1] - lat[0] >= 3.5 * service
    assert all(o.start - o.scheduled < 0.5 for o in outcomes)  # sent when scheduled
    assert wall >= lat[-1]


def test_open_loop_respects_arrival_times(fake):
    outcomes, _ = loadtest.run(loadtest.open_loop(fake.base_url, "fake", ["a"], max_tokens=1,
                                                  arrivals=[10.0, 10.2, 10.5]))
    starts = np.array([o.start for o in outcomes])
    assert starts == pytest.approx([0.0, 0.2, 0.5], abs=0.1)  # shifted to start at 0
    assert [o.index for o in outcomes] == [0, 0, 0]  # one prompt, cycled


def test_closed_loop_hides_queueing(fake):
    outcomes, wall = loadtest.run(loadtest.closed_loop(fake.base_url, "fake", ["p"] * 4, 1, 4, 2, 10.0))
    lat = [o.latency for o in outcomes]
    assert len(outcomes) == 4 and all(o.ok for o in outcomes)
    assert max(lat) < 3 * min(lat) + 0.1  # one client never queues behind itself
    s = loadtest.summarize(outcomes, wall)
    assert s["req_per_s"] == pytest.approx(4 / wall)
    assert s["tok_per_s"] == pytest.approx(8 / wall)


def test_sweep_tables(fake):
    summary, requests = loadtest.sweep(fake.base_url, "fake", ["a", "b", "c"], [20.0, 40.0], duration=0.1,
                                       min_requests=3, max_requests=5, max_tokens=1, label="fake")
    assert summary["offered_rate"].tolist() == [20.0, 40.0]
    assert (summary["requests"] >= 3).all() and (summary["requests"] <= 5).all()
    assert set(requests["label"]) == {"fake"} and len(requests) == summary["requests"].sum()
    assert requests["index"].between(0, 2).all()
    assert (summary["p50_s"] <= summary["p99_s"]).all()


def test_sweep_reads_the_servers_own_timings(fake):
    summary, _ = loadtest.sweep(fake.base_url, "fake", ["a"], [30.0], duration=0.1, min_requests=3,
                                max_requests=3, max_tokens=2, label="fake",
                                metrics_url=fake.base_url.replace("/v1", "/metrics"))
    row = summary.iloc[0]
    assert row["server_step_s"] == pytest.approx(TOKEN_S)  # 6 decode steps of TOKEN_S each
    assert row["server_steps"] == 6.0 and row["server_step_batch"] == 1.0
    assert np.isnan(row["server_step_tokens"])  # the fake server does not report tokens per step


def test_scrape_metrics_and_server_timings(fake):
    m = loadtest.scrape_metrics(fake.base_url.replace("/v1", "/metrics"))
    assert any(k.startswith("tradeoffs_step_seconds_count") for k in m)
    assert all(np.isnan(v) for v in loadtest.server_timings({}, {}).values())
    summary, _ = loadtest.sweep(fake.base_url, "fake", ["a"], [30.0], duration=0.1, min_requests=2, max_requests=2,
                                max_tokens=1, metrics_url="http://127.0.0.1:9/metrics")  # unreachable: NaN, no error
    assert np.isnan(summary["server_step_s"].iloc[0])


def test_poisson_schedule_rate_and_reproducibility():
    a = loadtest.poisson_schedule(50.0, 200.0, seed=3)
    assert len(a) / 200.0 == pytest.approx(50.0, rel=0.05)
    gaps = np.diff(a)
    assert gaps.mean() == pytest.approx(1 / 50.0, rel=0.05)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, rel=0.1)  # exponential: CV = 1
    assert np.array_equal(a, loadtest.poisson_schedule(50.0, 200.0, seed=3))


def test_summarize_counts_failures_as_slow():
    outs = [loadtest.Outcome(True, 0.0, 1.0, 0.1, 4), loadtest.Outcome(False, 0.1, 0.5, float("nan"), 0, "429")]
    s = loadtest.summarize(outs, wall=2.0)
    assert s["errors"] == 1 and s["error_kinds"] == ["429"]
    assert s["p99_s"] == float("inf") and s["ok_p50_s"] == 1.0


@pytest.mark.parametrize("call, match", [
    (lambda: loadtest.poisson_schedule(0, 1), "rate"),
    (lambda: loadtest.poisson_schedule(1, 0), "duration"),
    (lambda: loadtest.make_client("localhost:8000"), "http"),
    (lambda: loadtest.as_messages({"prompt": "x"}, 3), "messages"),
    (lambda: loadtest.summarize([], 0), "wall"),
    (lambda: loadtest.run(loadtest.open_loop("http://127.0.0.1:9/v1", "m", ["x"])), "rate"),
    (lambda: loadtest.run(loadtest.open_loop("http://127.0.0.1:9/v1", "m", ["x"], arrivals=[1, 0])), "sorted"),
    (lambda: loadtest.vllm_serve_command(max_num_seqs=0), "max_num_seqs"),
])
def test_bad_inputs_are_explained(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_as_messages_rejects_other_types():
    with pytest.raises(TypeError, match="string"):
        loadtest.as_messages(42, 3)


def test_started_stops_every_server_even_when_one_fails():
    class Good:
        def __init__(self):
            self.stopped = False
            self.threads = []

        def start(self):
            self.threads.append(threading.get_ident())
            return "http://good/v1"

        def stop(self):
            if not self.stopped:
                self.threads.append(threading.get_ident())
            self.stopped = True

    class Bad(Good):
        def start(self):
            raise RuntimeError("no port")

    good, bad = Good(), Bad()
    with pytest.raises(RuntimeError, match="no port"):
        with loadtest.started(good, bad):
            pass
    assert good.stopped and bad.stopped
    g1, g2 = Good(), Good()
    with loadtest.started(g1, g2) as urls:
        assert urls == ["http://good/v1", "http://good/v1"]
        assert not g1.stopped
    assert g1.stopped and g2.stopped
    # each server is started and stopped by one thread that lives as long as the with-block
    # (Linux sends a LocalServer SIGTERM when the thread that launched it ends)
    assert g1.threads[0] == g1.threads[1] != threading.get_ident()
    assert g1.threads[0] != g2.threads[0]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_started_keeps_a_real_subprocess_alive_for_the_whole_block():
    """A child launched with PR_SET_PDEATHSIG from the helper thread survives until the block ends."""
    import ctypes
    import signal
    import subprocess
    import sys

    def die_with_parent():  # what LocalServer does on Linux
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    class Sleeper:
        proc = None

        def start(self):
            self.proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                                         preexec_fn=die_with_parent)
            return "sleeper"

        def stop(self):
            if self.proc and self.proc.poll() is None:
                self.proc.terminate()
                self.proc.wait(10)

    s = Sleeper()
    with loadtest.started(s):
        time.sleep(1.0)  # the helper thread is idle now; the child must still run
        assert s.proc.poll() is None
    assert s.proc.poll() is not None


def test_run_works_inside_a_running_loop():
    async def outer():
        async def inner():
            return 7
        return loadtest.run(inner())  # what a Jupyter cell does

    assert asyncio.run(outer()) == 7
