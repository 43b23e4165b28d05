"""The serving engine's step in process: the native step (decode.c) against the PyTorch step.

For each dtype the server runs (float32, and bfloat16 where the CPU computes it natively), builds
two engines over the same model, one with the native step and one without, and times

* decode-only steps (every sequence decodes one token, after its prompt is in the cache) at 1, 2,
  4, 8 and 16 sequences: the median of the steps of 24-token completions. Batch 1 is also set
  against the memory-bandwidth ceiling (``tradeoffs.measure.decode_ceiling``);
* prompt steps of 8 to 256 tokens (one prompt, nothing cached): the fastest of 3. Where the PyTorch
  step wins is where the engine's ``NATIVE_ROWS`` should stop.

No HTTP, no scheduler: what the engine itself costs per step; ``serving.py`` measures the servers.

Run it on an otherwise idle machine (about a minute on 2 cores)::

    python benchmarks/engine_step.py
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import machine, settle, table, update_section  # noqa: E402

BATCHES = (1, 2, 4, 8, 16)
PROMPT_TOKENS = (8, 16, 32, 64, 96, 128, 192, 256)
PROMPTS = [f"Ticket {i}: my parcel has not arrived and the tracking page shows no update. What now?" for i in range(16)]


def step_ms(engine, chat, batch: int, tokens: int = 24) -> float:
    """Median milliseconds of the decode-only steps of ``batch`` greedy completions run together."""
    from tradeoffs.serve.engine import GenRequest, SamplingParams

    reqs = [GenRequest(chat.encode_chat([{"role": "user", "content": p}])["input_ids"][0].tolist(),
                       SamplingParams(max_tokens=tokens, temperature=0)) for p in PROMPTS[:batch]]
    engine.admit(reqs)
    while any(r.prefilling for r in reqs):
        engine.step()
    times = []
    while engine.running:
        full = len(engine.running) == batch
        start = time.perf_counter()
        _, done = engine.step()
        if full:
            times.append(time.perf_counter() - start)
        engine.release(done)
    times.sort()
    return 1e3 * times[len(times) // 2]


def prompt_ms(engine, tokens: int, repeats: int = 3) -> float:
    """Fastest milliseconds of a step that prefills one ``tokens``-token prompt, nothing cached."""
    from tradeoffs.serve.engine import GenRequest, SamplingParams

    times = []
    for _ in range(repeats):
        r = GenRequest([100 + i for i in range(tokens)], SamplingParams(max_tokens=1, temperature=0))
        engine.admit([r])
        start = time.perf_counter()
        engine.step()
        times.append(time.perf_counter() - start)
        engine.release([r])
    return 1e3 * min(times)


def measure(dtype_name: str) -> tuple[list[dict], list[dict]]:
    import torch

    from tradeoffs import measure as mt
    from tradeoffs.models import load_chat_model
    from tradeoffs.serve.engine import BatchEngine

    chat = load_chat_model("cpu", dtype=getattr(torch, dtype_name))
    native = BatchEngine.from_chat_model(chat, max_batch_size=max(BATCHES), prefix_cache=False)
    if native.native is None:
        raise SystemExit("the native step is unavailable here (see the warning above): nothing to compare")
    # time it at every size, whatever the engine's defaults (which cut bfloat16 prompt chunks to fit)
    native.native_rows = native.step_tokens = native.max_step_tokens
    plain = BatchEngine.from_chat_model(chat, max_batch_size=max(BATCHES), native=False, prefix_cache=False)
    for engine in (native, plain):  # warm-up
        step_ms(engine, chat, 2, tokens=4)
    rows = []
    for b in BATCHES:
        n, p = step_ms(native, chat, b), step_ms(plain, chat, b)
        rows.append({"dtype": dtype_name, "sequences": b, "native step (ms)": n, "PyTorch step (ms)": p,
                     "PyTorch / native": p / n, "native tok/s": 1e3 * b / n})
    ceiling = mt.decode_ceiling(chat.model, rows[0]["native tok/s"])
    rows[0]["native: fraction of the bandwidth ceiling"] = (
        f"{ceiling['fraction']:.2f} ({ceiling['ceiling_tokens_per_s']:.1f} tok/s at "
        f"{ceiling['bandwidth'] / 1e9:.1f} GB/s)")
    prompts = []
    for n in PROMPT_TOKENS:
        a, b = prompt_ms(native, n), prompt_ms(plain, n)
        prompts.append({"dtype": dtype_name, "prompt tokens": n, "native step (ms)": a, "PyTorch step (ms)": b,
                        "PyTorch / native": b / a})
    return rows, prompts


def native_rows() -> dict[str, int]:
    from tradeoffs.serve.engine import NATIVE_ROWS

    return {str(k).replace("torch.", ""): v for k, v in NATIVE_ROWS.items()}


def main(argv: list[str] | None = None) -> int:
    import torch

    from tradeoffs.serve.config import resolve_dtype

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print the section instead of writing it")
    args = parser.parse_args(argv)
    torch.set_num_threads(os.cpu_count() or 1)  # as the server does: one thread per core
    load = settle()
    started = time.perf_counter()
    dtypes = ["float32"] + (["bfloat16"] if resolve_dtype("auto", "cpu") == "bfloat16" else [])
    measured = [measure(d) for d in dtypes]
    rows = [row for decode, _ in measured for row in decode]
    prompts = [row for _, prompt in measured for row in prompt]
    body = "\n".join([
        "## Engine step: native vs PyTorch",
        "",
        f"Regenerate with `python benchmarks/engine_step.py` (this run took {time.perf_counter() - started:.0f} s). "
        f"Machine: {machine()}, {torch.get_num_threads()} torch threads. Load average when the run started: "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min).",
        "",
        "The serving engine in process (no HTTP, no scheduler), SmolLM2-135M-Instruct: the median time of a "
        "decode-only step (every sequence decodes one token) of 24-token greedy completions, with the native "
        "step (`decode.c`) and with the PyTorch step (`llama.py`). Batch 1 beside its memory-bandwidth ceiling "
        "(measured copy bandwidth on a buffer the size of the weights / weight bytes per token).",
        "",
        table(rows, floatfmt="{:,.2f}").rstrip(),
        "",
        "Prompt steps (one prompt of that many tokens, nothing cached; the fastest of 3). The engine runs steps of "
        f"up to `NATIVE_ROWS` tokens natively ({', '.join(f'{k}: {v}' for k, v in native_rows().items())}); "
        "longer float32 steps run the PyTorch step, and in bfloat16 it cuts prompt chunks to fit, so that every "
        "step is native (the two steps' bfloat16 logits differ by 1-2% of their range).",
        "",
        table(prompts, floatfmt="{:,.2f}"),
    ])
    if args.no_write:
        print(body)
    else:
        update_section("engine-step", body)
        print(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
