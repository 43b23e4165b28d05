"""The native step (decode.c through tradeoffs.serve.native): its logits are the PyTorch
step's within rounding in float32 and bfloat16, it is built once and cached, and wherever it cannot
be built, or does not agree with the PyTorch step, the engine says why and runs the PyTorch step
with the same answers."""

from __future__ import annotations

import json
import shutil
import urllib.request

import pytest

from tradeoffs.serve import native
from tradeoffs.serve.engine import BatchEngine, GenRequest, SamplingParams

pytestmark = pytest.mark.models

HAS_COMPILER = any(shutil.which(c) for c in ("cc", "gcc", "clang"))
needs_compiler = pytest.mark.skipif(not HAS_COMPILER, reason="no C compiler on this machine")
PROMPT = "My parcel has not arrived. What should I do?"


@pytest.fixture(scope="module")
def models_by_dtype(chat_model):
    import torch

    from tradeoffs.models import load_chat_model

    return {"float32": chat_model, "bfloat16": load_chat_model("cpu", dtype=torch.bfloat16)}


def _ids(chat, prompt: str = PROMPT) -> list[int]:
    return chat.encode_chat([{"role": "user", "content": prompt}])["input_ids"][0].tolist()


def _decode_logits(engine: BatchEngine, chat, steps: int = 6) -> tuple[list, list[int]]:
    """Logits of the prompt step and of each decode step of one greedy request, and its tokens."""
    r = GenRequest(_ids(chat), SamplingParams(max_tokens=steps + 1, temperature=0))
    engine.admit([r])
    engine.step()  # the prompt
    logits = [engine.last_logits[0].clone()]
    while engine.running:
        _, done = engine.step()
        logits.append(engine.last_logits[0].clone())
        engine.release(done)
    return logits, r.output_ids


@needs_compiler
@pytest.mark.parametrize("dtype, tolerance", [("float32", 1e-4), ("bfloat16", 0.04)])
def test_native_logits_equal_the_pytorch_steps(models_by_dtype, dtype, tolerance):
    """Step by step, while the tokens agree, the logits are within ``tolerance`` x their range."""
    chat = models_by_dtype[dtype]
    fast = BatchEngine.from_chat_model(chat, max_batch_size=2)
    assert fast.native is not None, "a C compiler is here, so the native step should have been built"
    slow = BatchEngine.from_chat_model(chat, max_batch_size=2, native=False)
    assert slow.native is None
    got, got_ids = _decode_logits(fast, chat)
    want, want_ids = _decode_logits(slow, chat)
    compared = 0
    for i, (g, w) in enumerate(zip(got, want)):
        assert float((g - w).abs().max()) <= tolerance * float(w.max() - w.min()), f"step {i} (0: the prompt)"
        compared += 1
        if got_ids[i] != want_ids[i]:
            break  # a near-tie went the other way: later steps see other tokens
    assert compared >= 4
    if dtype == "float32":
        assert got_ids == want_ids


@needs_compiler
def test_prompt_chunks_beside_decoding_requests_run_natively(models_by_dtype):
    """Steps that mix decode rows with prompt chunks (a prompt split over several steps, starting
    past position 0) run natively and give the PyTorch step's tokens in float32."""
    chat = models_by_dtype["float32"]
    prompts = [PROMPT, "Where is my refund? I sent the parcel back two weeks ago.", "hi"]
    outputs = {}
    for use_native in (True, False):
        engine = BatchEngine.from_chat_model(chat, max_batch_size=3, max_step_tokens=12, native=use_native,
                                             prefix_cache=False)
        rows = []
        if use_native:
            real = engine.native
            engine.native = lambda *args: rows.append((len(args[0]), len(set(args[2])))) or real(*args)
        reqs = [GenRequest(_ids(chat, p), SamplingParams(max_tokens=6, temperature=0)) for p in prompts]
        engine.admit(reqs[:1])
        engine.step()
        engine.admit(reqs[1:])  # admitted while the first is still prefilling
        while engine.running:
            _, done = engine.step()
            engine.release(done)
        outputs[use_native] = [r.output_ids for r in reqs]
        if use_native:
            assert any(n > slots > 1 for n, slots in rows), "no step mixed sequences with a prompt chunk"
            assert max(n for n, _ in rows) == 12, "a full step of max_step_tokens should have run natively"
    assert outputs[True] == outputs[False]


@needs_compiler
def test_batches_above_native_rows_run_the_pytorch_step(models_by_dtype):
    chat = models_by_dtype["bfloat16"]
    engine = BatchEngine.from_chat_model(chat, max_batch_size=4)
    calls = []
    real = engine.native
    engine.native = lambda *args: calls.append(len(args[0])) or real(*args)
    engine.native_rows = 2
    reqs = [GenRequest(_ids(chat, p), SamplingParams(max_tokens=4, temperature=0)) for p in ("hi", "hello", "hey")]
    engine.admit(reqs)
    three_decoding = 0
    while engine.running:
        three_decoding += len(engine.running) == 3 and not any(r.prefilling for r in engine.running)
        _, done = engine.step()
        engine.release(done)
    assert three_decoding >= 1 and max(calls, default=0) <= 2, "a step of more rows than native_rows ran natively"
    calls.clear()
    engine.admit([GenRequest(_ids(chat, "hi"), SamplingParams(max_tokens=4, temperature=0))])
    while engine.running:
        _, done = engine.step()
        engine.release(done)
    assert calls and set(calls) == {1}, "a single decoding sequence should run natively"


def test_no_compiler_falls_back_to_the_pytorch_step(models_by_dtype, monkeypatch, caplog):
    chat = models_by_dtype["float32"]
    monkeypatch.setenv("CC", "no-such-compiler")
    monkeypatch.setattr(native.shutil, "which", lambda name: None)
    with caplog.at_level("WARNING", logger="tradeoffs.serve"):
        engine = BatchEngine.from_chat_model(chat, max_batch_size=2)
    assert engine.native is None
    assert "the native step is unavailable (no C compiler found (install gcc, or set CC to one))" in caplog.text
    _, ids = _decode_logits(engine, chat)
    _, want = _decode_logits(BatchEngine.from_chat_model(chat, max_batch_size=2, native=False), chat)
    assert ids == want


def test_a_failing_build_names_the_compiler_and_its_error(tmp_path, monkeypatch):
    false = shutil.which("false")
    if false is None:
        pytest.skip("no `false` command")
    monkeypatch.setenv("CC", false)
    with pytest.raises(native.NativeUnavailable, match="false failed to build decode.c"):
        native.build(tmp_path / "build")
    assert not list((tmp_path / "build").glob("*.so")), "a failed build leaves no library behind"


@needs_compiler
def test_a_native_step_that_disagrees_is_refused_at_start(models_by_dtype, monkeypatch, caplog):
    import torch

    monkeypatch.setattr(native.NativeDecoder, "__call__",
                        lambda self, tokens, *rest: torch.zeros((len(tokens), self.vocab)))
    with caplog.at_level("WARNING", logger="tradeoffs.serve"):
        engine = BatchEngine.from_chat_model(models_by_dtype["float32"], max_batch_size=2)
    assert engine.native is None
    assert "its logits differ from the PyTorch step's" in caplog.text


@needs_compiler
def test_the_build_is_cached(tmp_path, monkeypatch):
    first = native.build(tmp_path)
    assert first.is_file()

    def no_compiler(*args, **kwargs):
        raise AssertionError("the compiler ran again for an unchanged source")

    monkeypatch.setattr(native.subprocess, "run", no_compiler)
    assert native.build(tmp_path) == first


def test_native_decoder_refuses_other_dtypes():
    import torch

    class Half:  # the first attribute NativeDecoder reads, in float16
        embed = torch.zeros(2, 2, dtype=torch.float16)

    with pytest.raises(native.NativeUnavailable, match="runs float32 or bfloat16 on a CPU, not torch.float16"):
        native.NativeDecoder(Half(), 8)


@needs_compiler
def test_health_says_whether_decode_steps_run_natively(server):
    health = json.load(urllib.request.urlopen(f"{server.url}/health"))
    assert health["native"] is True


@needs_compiler
def test_the_bf16_kernels_agree(models_by_dtype):
    """Where the CPU has AMX tiles, the native step uses them; its bf16 dot-product kernel (CPUs
    without AMX) must give the same logits within the bfloat16 tolerance."""
    chat = models_by_dtype["bfloat16"]
    engine = BatchEngine.from_chat_model(chat, max_batch_size=4)
    engine._ensure_capacity(64)
    if engine.native is None or not engine.native.amx:
        pytest.skip("this CPU has no AMX tiles: the dot-product kernel is the one the other tests run")
    reqs = [GenRequest(_ids(chat, p), SamplingParams(max_tokens=8, temperature=0)) for p in ("hi", PROMPT, "hey")]
    engine.admit(reqs)
    while any(r.prefilling for r in reqs):
        engine.step()
    args = ([r.output_ids[-1] for r in reqs], [r.cached for r in reqs], [0, 1, 2], engine._keys, engine._values)
    # and a 41-row prompt step in slot 3: whole 16-row tiles, two at a time, the last one padded
    prompt = (_ids(chat, PROMPT + " " + PROMPT) * 2)[:41]
    chunk = (prompt, range(41), [3] * 41, engine._keys, engine._values, [40])
    tiles, tiles_prompt = engine.native(*args), engine.native(*chunk)
    engine.native._model.amx = 0
    dots, dots_prompt = engine.native(*args), engine.native(*chunk)
    for t, d in ((tiles, dots), (tiles_prompt, dots_prompt)):
        assert float((t - d).abs().max()) <= 0.04 * float(t.max() - t.min())
