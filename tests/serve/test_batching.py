"""Batching must not change answers: greedy outputs alone == inside a batch (within the documented
tolerance) in float32 and in bfloat16, the engine's continuous batching equals transformers'
generate(), the compiled path falls back cleanly, short requests leave the batch early, and 50
concurrent requests are all answered."""

from __future__ import annotations

import asyncio

import pytest

from tradeoffs.serve.engine import BatchEngine, GenRequest, SamplingParams

from serve_helpers import CHAT

pytestmark = pytest.mark.models

PROMPTS = [
    "What is the capital of France?",
    "My parcel has not arrived. What should I do?",
    "Write a haiku about the sea.",
    "hi",
    "Explain in one sentence what a refund is.",
    "I was charged twice for the March invoice, please fix it. My account number is 4471-22.",
]
N_TOKENS = 16
# Batch non-invariance: a batch uses other matrix-kernel blockings and attention lengths than a
# request alone, so logits differ in the last bits (~1e-5) and a near-tie between the top two tokens
# can flip a greedy choice. We allow at most one prompt of the set to differ, and only after its
# first 8 tokens agree. Lab 4 measures this effect; on the reference machine no prompt differs.
MAX_DIFFERING_PROMPTS = 1
MIN_COMMON_PREFIX = 8
# bfloat16 keeps 8 bits of mantissa, so its logits carry ~1e-2 relative rounding instead of ~1e-7, and
# another summation order flips near-ties far more often than in float32. The native step runs each
# row's sums in the same order whatever the batch, and in bfloat16 the engine runs every step natively,
# so there a request's tokens are the same alone and in a batch, exactly. The PyTorch step (no C
# compiler, or native=False) is compared with the same engine alone in bfloat16 (not with float32,
# which it is not meant to reproduce): at most 2 of the 6 prompts may differ, and each only where it
# was a near-tie alone: at the first differing token, the batched choice scored within 3% of the
# logits' range of the alone run's choice. (The first token, from the prompt's own prefill, must agree.)
BF16_MAX_DIFFERING_PROMPTS = 2
BF16_NEAR_TIE = 0.03
TOLERANCE = {"float32": (MAX_DIFFERING_PROMPTS, MIN_COMMON_PREFIX), "bfloat16": (BF16_MAX_DIFFERING_PROMPTS, 1)}


def _ids(chat, prompt: str) -> list[int]:
    return chat.encode_chat([{"role": "user", "content": prompt}])["input_ids"][0].tolist()


def _generate_alone(chat, prompt: str, n: int) -> list[int]:
    import torch

    batch = chat.encode_chat([{"role": "user", "content": prompt}])
    with torch.inference_mode():
        out = chat.model.generate(**batch, max_new_tokens=n, do_sample=False,
                                  pad_token_id=chat.tokenizer.pad_token_id)
    ids = out[0, batch["input_ids"].shape[1]:].tolist()
    eos = chat.tokenizer.eos_token_id
    return ids[: ids.index(eos) + 1] if eos in ids else ids


def _common_prefix(a, b) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _assert_within_tolerance(got: dict, ref: dict, dtype: str = "float32") -> None:
    max_differing, min_prefix = TOLERANCE[dtype]
    differing = {p: _common_prefix(got[p], ref[p]) for p in ref if got[p] != ref[p]}
    assert len(differing) <= max_differing, f"batched outputs differ for {differing}"
    for p, n in differing.items():
        assert n >= min_prefix, f"{p!r} differs after only {n} tokens"


@pytest.fixture(scope="module")
def references(chat_model):
    return {p: _generate_alone(chat_model, p, N_TOKENS) for p in PROMPTS}


def _drain(engine, max_steps: int = 1000) -> int:
    steps = 0
    while engine.running and steps < max_steps:
        _, done = engine.step()
        engine.release(done)
        steps += 1
    return steps


@pytest.mark.parametrize("options", [{"prefix_cache": False}, {"prefix_cache": True, "max_step_tokens": 24}],
                         ids=["plain", "prefix-cache+chunked-prefill"])
def test_engine_continuous_batching_equals_generate(chat_model, references, options):
    """Requests join a running batch at different steps and leave when done: same tokens as alone.
    With the prefix cache and a tiny step budget, prompts are also split into chunks and later
    requests reuse the system prompt's keys and values."""
    engine = BatchEngine.from_chat_model(chat_model, max_batch_size=8, **options)
    reqs = {p: GenRequest(_ids(chat_model, p), SamplingParams(max_tokens=N_TOKENS, temperature=0)) for p in PROMPTS}
    waves = [PROMPTS[:2], PROMPTS[2:3], PROMPTS[3:]]  # admitted at steps 0, 3 and 6
    seen_batch_sizes = set()
    for wave in waves:
        engine.admit([reqs[p] for p in wave])
        for _ in range(3):
            if engine.running:
                seen_batch_sizes.add(engine.batch_size)
                _, done = engine.step()
                engine.release(done)
    while engine.running:
        seen_batch_sizes.add(engine.batch_size)
        _, done = engine.step()
        engine.release(done)
    assert max(seen_batch_sizes) >= 4, "the waves never ran together"
    _assert_within_tolerance({p: r.output_ids for p, r in reqs.items()}, references)
    for r in reqs.values():
        assert r.finish_reason in ("stop", "length")
    if options["prefix_cache"]:
        assert engine.stats["prefix_tokens_reused"] > 0, "no request reused the shared system prompt"
        assert max(r.prefix_hit for r in reqs.values()) >= 16
    else:
        assert engine.stats["prefix_tokens_reused"] == 0


@pytest.fixture(scope="module")
def bf16_model():
    import torch

    from tradeoffs.models import load_chat_model

    return load_chat_model("cpu", dtype=torch.bfloat16)


def _engine_alone(chat, n: int = N_TOKENS, logits: dict | None = None, **options) -> dict:
    """Each prompt on its own (one slot, no prefix cache): the reference for batched runs.
    With ``logits`` (a dict), also the logits that chose each token: ``logits[prompt][i]``."""
    engine = BatchEngine.from_chat_model(chat, max_batch_size=1, prefix_cache=False, **options)
    out = {}
    for p in PROMPTS:
        r = GenRequest(_ids(chat, p), SamplingParams(max_tokens=n, temperature=0))
        engine.admit([r])
        steps = []
        while engine.running:
            emitted, done = engine.step()
            if emitted:
                steps.append(engine.last_logits[0].clone())
            engine.release(done)
        out[p] = r.output_ids
        if logits is not None:
            logits[p] = steps
    return out


def _engine_batched(chat, **options) -> dict:
    engine = BatchEngine.from_chat_model(chat, max_batch_size=8, **options)
    reqs = {p: GenRequest(_ids(chat, p), SamplingParams(max_tokens=N_TOKENS, temperature=0)) for p in PROMPTS}
    engine.admit(list(reqs.values())[:3])
    for _ in range(2):
        _, done = engine.step()
        engine.release(done)
    engine.admit(list(reqs.values())[3:])  # the rest join a batch that is already decoding
    _drain(engine)
    return {p: r.output_ids for p, r in reqs.items()}


@pytest.mark.parametrize("native", [True, False], ids=["native", "pytorch"])
def test_bfloat16_outputs_alone_equal_outputs_in_a_batch(bf16_model, native):
    """In bfloat16 the engine is compared with itself alone: equal with the native step (batch-
    invariant), within the bfloat16 tolerance with the PyTorch step."""
    if native and BatchEngine.from_chat_model(bf16_model, max_batch_size=1).native is None:
        pytest.skip("the native step is unavailable here (no C compiler?)")
    logits: dict = {}
    alone = _engine_alone(bf16_model, logits=logits, native=native)
    assert all(len(ids) > 0 for ids in alone.values())
    batched = _engine_batched(bf16_model, prefix_cache=True, max_step_tokens=24, native=native)
    if native:
        assert batched == alone
        return
    _assert_within_tolerance(batched, alone, "bfloat16")
    for p in (p for p in PROMPTS if batched[p] != alone[p]):
        i = _common_prefix(batched[p], alone[p])
        step = logits[p][i]
        gap = float(step[alone[p][i]] - step[batched[p][i]])
        assert gap <= BF16_NEAR_TIE * float(step.max() - step.min()), (
            f"{p!r}: token {i} differs in a batch, but alone it led by {gap:.3f} (not a near-tie)")


def test_engine_alone_in_float32_equals_generate(chat_model, references):
    """The engine's own forward (fused projections) reproduces transformers' forward in float32."""
    _assert_within_tolerance(_engine_alone(chat_model), references, "float32")


def test_compile_failure_falls_back_to_eager(chat_model, references, monkeypatch, caplog):
    """Where torch.compile fails, the engine warns, runs eagerly, and answers the same."""
    import torch

    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler found")

    monkeypatch.setattr(torch, "compile", broken)
    with caplog.at_level("WARNING", logger="tradeoffs.serve"):
        engine = BatchEngine.from_chat_model(chat_model, max_batch_size=8, compile=True)
    assert not engine.compiled
    assert "torch.compile is unavailable here (RuntimeError: no C++ compiler found)" in caplog.text
    reqs = {p: GenRequest(_ids(chat_model, p), SamplingParams(max_tokens=N_TOKENS, temperature=0)) for p in PROMPTS}
    engine.admit(list(reqs.values()))
    _drain(engine)
    _assert_within_tolerance({p: r.output_ids for p, r in reqs.items()}, references, "float32")


def test_bfloat16_prepacked_weights_answer_as_plain_ones(bf16_model, monkeypatch):
    """oneDNN-prepacked bfloat16 weights (where this CPU has them) give the plain matmuls' tokens,
    and where prepacking fails the engine falls back to plain matmuls."""
    from tradeoffs.serve import llama

    engine = BatchEngine.from_chat_model(bf16_model, max_batch_size=1, native=False)
    assert engine.net.prepacked == llama._can_prepack(bf16_model.model.dtype)
    packed = _engine_alone(bf16_model, native=False)  # the PyTorch step: the native one has its own weights

    def broken(weight):
        raise RuntimeError("oneDNN is not built in")

    monkeypatch.setattr(llama, "_prepack", broken)
    assert not BatchEngine.from_chat_model(bf16_model, max_batch_size=1, native=False).net.prepacked
    _assert_within_tolerance(_engine_alone(bf16_model, native=False), packed, "bfloat16")


def test_compiled_engine_equals_generate(chat_model, references):
    """The compiled dense blocks (where this machine can compile) give the same greedy tokens."""
    engine = BatchEngine.from_chat_model(chat_model, max_batch_size=8, compile=True)
    reqs = {p: GenRequest(_ids(chat_model, p), SamplingParams(max_tokens=N_TOKENS, temperature=0)) for p in PROMPTS}
    engine.admit(list(reqs.values()))
    _drain(engine)
    _assert_within_tolerance({p: r.output_ids for p, r in reqs.items()}, references, "float32")


def test_short_request_leaves_the_batch_before_its_long_neighbour(chat_model):
    engine = BatchEngine.from_chat_model(chat_model, max_batch_size=2, prefix_cache=False)
    long = GenRequest(_ids(chat_model, PROMPTS[1]), SamplingParams(max_tokens=12, temperature=0))
    short = GenRequest(_ids(chat_model, PROMPTS[1]), SamplingParams(max_tokens=3, temperature=0))
    engine.admit([long, short])
    steps = 0
    while short in engine.running:
        emitted, done = engine.step()
        assert emitted == [long, short]  # both get a token on every step
        engine.release(done)
        steps += 1
    assert steps == 3 and short.finish_reason == "length" and short.completion_tokens == 3
    assert engine.running == [long] and engine.free_slots == 1
    _drain(engine)
    assert long.output_ids[:3] == short.output_ids and long.completion_tokens == 12


def test_engine_rejects_more_requests_than_slots(chat_model):
    engine = BatchEngine.from_chat_model(chat_model, max_batch_size=1)
    a, b = (GenRequest(_ids(chat_model, "hi"), SamplingParams(max_tokens=1, temperature=0)) for _ in range(2))
    with pytest.raises(ValueError, match="free slots"):
        engine.admit([a, b])


def test_server_outputs_alone_equal_outputs_in_a_batch(server, client, aclient, chat_model, references, bf16_model):
    """The server runs in its automatic dtype; its answers, alone and batched, match the engine alone
    in that dtype (float32: transformers' generate())."""
    import httpx

    from tradeoffs.serve.config import resolve_dtype

    health = httpx.get(server.base_url.removesuffix("/v1") + "/health", timeout=30).json()
    assert health["dtype"] == resolve_dtype("auto", "cpu")
    dtype = health["dtype"]
    ref_ids = references if dtype == "float32" else _engine_alone(bf16_model, native=health["native"])
    # in bfloat16 with the native step, alone and batched are the same computation row by row
    max_differing = 0 if dtype == "bfloat16" and health["native"] else TOLERANCE[dtype][0]

    def create(c, p):
        return c.chat.completions.with_raw_response.create(
            model=CHAT, messages=[{"role": "user", "content": p}], max_tokens=N_TOKENS, temperature=0)

    alone = {p: create(client, p) for p in PROMPTS}

    async def together():
        async with aclient:
            return dict(zip(PROMPTS, await asyncio.gather(*(create(aclient, p) for p in PROMPTS))))

    batched = asyncio.run(together())
    assert all(int(alone[p].headers["x-batch-size"]) == 1 for p in PROMPTS)
    assert max(int(batched[p].headers["x-batch-size"]) for p in PROMPTS) >= 3, "the requests never shared a batch"
    expected = {p: chat_model.tokenizer.decode(ref_ids[p], skip_special_tokens=True) for p in PROMPTS}
    for replies in (alone, batched):
        parsed = {p: replies[p].parse() for p in PROMPTS}
        differing = [p for p in PROMPTS if parsed[p].choices[0].message.content != expected[p]]
        assert len(differing) <= max_differing, differing
        for p in PROMPTS:
            assert parsed[p].usage.prompt_tokens == len(_ids(chat_model, p))
            if p not in differing:
                assert parsed[p].usage.completion_tokens == len(ref_ids[p])


def test_fifty_concurrent_requests_are_all_answered(aclient):
    async def burst():
        async with aclient:
            calls = [aclient.chat.completions.create(
                model=CHAT, messages=[{"role": "user", "content": f"Say the number {i}."}], max_tokens=4,
                temperature=0) for i in range(50)]
            return await asyncio.gather(*calls, return_exceptions=True)

    replies = asyncio.run(burst())
    errors = [r for r in replies if isinstance(r, Exception)]
    assert not errors, errors[:3]
    assert len({r.id for r in replies}) == 50
    assert all(1 <= r.usage.completion_tokens <= 4 for r in replies)
