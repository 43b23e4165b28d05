"""Pieces of the server that need no model: incremental detokenization with stop strings,
sampling, request validation errors, and LocalServer's start-up failure and interrupt handling."""

from __future__ import annotations

import subprocess
import time

import pytest
import torch

from serve_helpers import wait_until
from tradeoffs.serve import LocalServer, ServerStartError, free_port
from tradeoffs.threads import available_cores, default_threads
from tradeoffs.serve.engine import GenRequest, SamplingParams, TextStream, estimate_cache_bytes, sample_token


class CharTokenizer:
    """Token i is the UTF-8 byte i: decoding a partial multi-byte character gives U+FFFD, exactly
    the case byte-level BPE tokenizers produce mid-character."""

    def decode(self, ids, skip_special_tokens=True):
        return bytes(ids).decode("utf-8", errors="replace")


def feed(stream: TextStream, text: str) -> list[str]:
    pieces = []
    for b in text.encode("utf-8"):
        stream.push(b)
        pieces.append(stream.take())
        if stream.stopped:
            break
    pieces.append(stream.take(final=True))
    return pieces


def test_text_stream_never_emits_half_a_character():
    s = TextStream(CharTokenizer())
    pieces = feed(s, "naïve café ☕")
    assert "".join(pieces) == s.text == "naïve café ☕"
    assert all("\ufffd" not in p for p in pieces)


def test_stop_string_split_across_tokens_is_never_streamed():
    s = TextStream(CharTokenizer(), stop=["END", "\n\n"])
    pieces = feed(s, "The answer is 42.ENDmore text")
    assert s.stopped and s.text == "The answer is 42."
    assert "".join(pieces) == "The answer is 42."
    assert not any("E" in p for p in pieces)


def test_text_without_stop_is_released_at_once():
    s = TextStream(CharTokenizer())
    s.push(ord("a"))
    assert s.take() == "a"


def test_sampling_params_are_validated():
    with pytest.raises(ValueError, match="max_tokens"):
        SamplingParams(max_tokens=0)
    with pytest.raises(ValueError, match="temperature"):
        SamplingParams(temperature=-1)
    with pytest.raises(ValueError, match="top_p"):
        SamplingParams(top_p=0)
    assert SamplingParams(temperature=0).greedy


def test_top_p_keeps_only_the_nucleus():
    logits = torch.log(torch.tensor([0.6, 0.3, 0.05, 0.05]))
    g = torch.Generator().manual_seed(0)
    draws = {sample_token(logits, 1.0, 0.8, g) for _ in range(300)}
    assert draws == {0, 1}
    draws = {sample_token(logits, 1.0, 1.0, g) for _ in range(600)}
    assert draws == {0, 1, 2, 3}
    assert sample_token(logits, 0.0, 1.0) == 0


def test_seeded_requests_draw_the_same_tokens():
    logits = torch.randn(50)
    a = GenRequest([1, 2], SamplingParams(temperature=1.0, seed=3))
    b = GenRequest([1, 2], SamplingParams(temperature=1.0, seed=3))
    assert [sample_token(logits, 1.0, 1.0, a.generator) for _ in range(20)] == \
           [sample_token(logits, 1.0, 1.0, b.generator) for _ in range(20)]


def test_empty_prompt_is_refused():
    with pytest.raises(ValueError, match="prompt_ids is empty"):
        GenRequest([], SamplingParams())


def test_cache_size_formula():
    from types import SimpleNamespace

    cfg = SimpleNamespace(num_hidden_layers=30, num_key_value_heads=3, head_dim=64, hidden_size=576,
                          num_attention_heads=9)
    # SmolLM2-135M: 2 (K and V) x 30 layers x 3 heads x 64 dims x 4 bytes = 46,080 bytes per token
    assert estimate_cache_bytes(cfg, batch=2, columns=10) == 2 * 10 * 46_080


def test_startup_failure_surfaces_the_server_log():
    srv = LocalServer(extra_args=["--max-wait-ms", "-5"], startup_timeout=120)
    with pytest.raises(ServerStartError) as err:
        srv.start()
    assert "exited with code" in str(err.value)
    assert "max-wait-ms" in str(err.value)  # typer's complaint, taken from the log
    assert not srv.running


def test_interrupt_during_startup_stops_the_server(monkeypatch):
    srv = LocalServer(port=free_port(), startup_timeout=120)
    launched = {}

    def interrupted(self):
        launched["process"] = self.process
        time.sleep(0.5)
        raise KeyboardInterrupt

    monkeypatch.setattr(LocalServer, "_wait_healthy", interrupted)
    with pytest.raises(KeyboardInterrupt):
        with srv:
            pytest.fail("the body must not run")
    proc = launched["process"]
    assert proc.poll() is not None, "the server process outlived the interrupt"
    assert not srv.running
    srv.stop()  # idempotent


def test_base_url_needs_a_started_server():
    with pytest.raises(RuntimeError, match="has not been started"):
        LocalServer().base_url
    assert LocalServer(port=1234).base_url == "http://127.0.0.1:1234/v1"


def test_serve_command_is_registered():
    import sys

    out = subprocess.run([sys.executable, "-m", "tradeoffs.cli", "serve", "--help"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    for option in ("--port", "--max-batch-size", "--max-wait-ms", "--max-queue"):
        assert option in out.stdout


@pytest.mark.parametrize("value, expected", [("1", 1), ("3", 3), ("2,1", 2), ("", None), ("0", None), ("many", None)])
def test_server_threads_follow_omp_num_threads(monkeypatch, value, expected):
    """A grader (or any scheduler) that gives a process one thread via OMP_NUM_THREADS gets a server that
    keeps to it; unset, empty or unreadable values mean every core."""
    monkeypatch.setenv("OMP_NUM_THREADS", value)
    assert default_threads() == (expected or available_cores())


def test_chat_only_server_command():
    assert "--no-embedder" in LocalServer(embedder=False).command()
    assert "--no-embedder" not in LocalServer().command()


# ---------------------------------------------------------------------------------------------
# Stopping: drain (queued requests fail at once), abort (the running ones, when the grace ends)
# ---------------------------------------------------------------------------------------------
class NeverEndingEngine:
    """Stands in for BatchEngine: ``max_batch_size`` slots, each step takes 10 ms, nobody finishes."""

    def __init__(self, max_batch_size: int = 2) -> None:
        self.max_batch_size = max_batch_size
        self.running: list = []
        self.stats = {"steps": 0, "step_tokens": 0, "prefix_tokens_reused": 0}
        self.max_step_tokens, self.prefix_cache = 64, False

    batch_size = property(lambda self: len(self.running))
    free_slots = property(lambda self: self.max_batch_size - len(self.running))

    def admit(self, requests):
        self.running += list(requests)

    def step(self):
        time.sleep(0.01)
        return [], []

    def release(self, requests):
        self.running = [r for r in self.running if all(r is not q for q in requests)]

    def cancel_all(self):
        dropped, self.running = self.running, []
        return dropped


def _outcome(ticket, timeout: float = 5.0):
    import asyncio

    async def first_final_event():
        while True:
            kind, payload = await ticket.events.get()
            if kind in ("done", "error"):
                return kind, payload

    return ticket.loop.run_until_complete(asyncio.wait_for(first_final_event(), timeout))


def test_drain_fails_queued_requests_at_once_and_abort_ends_the_running_ones():
    import asyncio

    from tradeoffs.serve.scheduler import Scheduler, ShuttingDown

    loop = asyncio.new_event_loop()
    sched = Scheduler(NeverEndingEngine(2), max_wait_ms=0, max_queue=8)
    sched.start()
    try:
        def request():
            return GenRequest(prompt_ids=[1, 2, 3], params=SamplingParams(max_tokens=10))

        running = [sched.submit(request(), loop) for _ in range(2)]
        assert wait_until(lambda: sched.running == 2)
        queued = [sched.submit(request(), loop) for _ in range(3)]
        assert sched.queue_depth == 3 and sched.in_flight == 5

        assert sched.drain() == 3
        for t in queued:
            kind, exc = _outcome(t, timeout=1.0)
            assert kind == "error" and isinstance(exc, ShuttingDown) and exc.retry_after >= 1
        with pytest.raises(ShuttingDown, match="takes no new requests"):
            sched.submit(request(), loop)
        time.sleep(0.1)
        assert all(t.events.empty() for t in running) and sched.running == 2  # still decoding

        assert sched.abort("the 3 s grace period ended") == 2
        for t in running:
            kind, exc = _outcome(t, timeout=1.0)
            assert kind == "error" and "grace period ended" in str(exc)
        assert wait_until(lambda: not sched.alive, timeout=5)
        assert not running[0]._post(("done", running[0].request))  # one final event per ticket
    finally:
        sched.stop(timeout=5)
        loop.close()


def test_shutting_down_is_a_retryable_openai_shaped_503():
    from tradeoffs.serve.errors import engine_error
    from tradeoffs.serve.scheduler import ShuttingDown

    err = engine_error(ShuttingDown("the server is shutting down and did not start this request", 1))
    assert err.status == 503 and err.headers == {"Retry-After": "1"}
    assert set(err.body()["error"]) == {"message", "type", "param", "code"}
    assert err.body()["error"]["code"] == "server_shutting_down"
    assert err.message.startswith("The server is shutting down")


def test_grace_period_must_not_be_negative():
    import uvicorn

    from tradeoffs.serve.shutdown import GRACE_PERIOD_S, GracefulServer

    assert GRACE_PERIOD_S == 10.0
    with pytest.raises(ValueError, match="grace_period"):
        GracefulServer(uvicorn.Config(app=None), scheduler=None, grace_period=-1)
