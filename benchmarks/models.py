"""Benchmark the kit's two models on this machine and write the "Models" section of
docs/benchmarks.md.

* cold load: the one-time GGUF dequantization + safetensors save (in a scratch cache),
* cached load: what every later `load_chat_model()` costs,
* decode tokens/s of SmolLM2-135M at batch 1, 4, 16, 64 (32 new tokens, greedy, float32),
* sentences/s of all-MiniLM-L6-v2 at batch 1..128.

Usage: python benchmarks/models.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import machine, table, update_section  # noqa: E402

from tradeoffs import measure, models  # noqa: E402

PROMPT = [{"role": "user", "content": "Summarise this support ticket in one sentence: my parcel "
                                      "PP-4821-XK was marked delivered but it is not here."}]
SENTENCES = [
    "my parcel says delivered but it is not here",
    "I was charged twice for the March invoice, please fix it",
    "cant log in again!! the 2FA code never arrives",
    "How do I export my VAT return to a spreadsheet?",
]


def cold_and_cached_load() -> list[dict]:
    real_wheels = models.cache_dir() / "wheels"
    with tempfile.TemporaryDirectory(prefix="tradeoffs-bench-") as tmp:
        os.environ[models.CACHE_ENV] = tmp
        try:
            if real_wheels.exists():  # reuse the downloaded wheel: we time conversion, not the network
                shutil.copytree(real_wheels, Path(tmp) / "wheels")
            start = time.perf_counter()
            models.prepare_chat_model(progress=False)
            cold = time.perf_counter() - start
            loads = []
            for _ in range(3):
                start = time.perf_counter()
                models.load_chat_model("cpu")
                loads.append(time.perf_counter() - start)
        finally:
            del os.environ[models.CACHE_ENV]
    return [{"step": "cold load (GGUF dequantize + save, once)", "seconds": cold},
            {"step": "cached load (safetensors, median of 3)", "seconds": sorted(loads)[1]}]


def decode_rows(batches, new_tokens: int, repeats: int) -> list[dict]:
    chat = models.load_chat_model("cpu")
    rows = []
    for b in batches:
        enc = chat.encode_chat([PROMPT] * b)

        def step():
            with torch.inference_mode():
                chat.model.generate(**enc, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                    do_sample=False, pad_token_id=chat.tokenizer.pad_token_id)

        t = measure.time_fn(step, repeats=repeats, warmup=1, items_per_call=b * new_tokens,
                            label=f"batch {b}")
        lo, hi = t.throughput_ci(n_boot=500)
        rows.append({"batch": b, "tokens/s": t.throughput, "95% CI": f"{lo:,.1f}-{hi:,.1f}",
                     "p50 s/batch": t.median, "per-request tokens/s": t.throughput / b})
    return rows


def embed_rows(batches, n_sentences: int, repeats: int) -> list[dict]:
    emb = models.load_embedder("cpu")
    texts = [f"{SENTENCES[i % len(SENTENCES)]} (ticket {i})" for i in range(n_sentences)]
    rows = []
    for b in batches:
        t = measure.time_fn(lambda: emb.encode(texts, batch_size=b), repeats=repeats, warmup=1,
                            items_per_call=n_sentences, label=f"batch {b}")
        lo, hi = t.throughput_ci(n_boot=500)
        rows.append({"batch": b, "sentences/s": t.throughput, "95% CI": f"{lo:,.0f}-{hi:,.0f}"})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run of the script)")
    parser.add_argument("--no-write", action="store_true", help="print, do not update docs/benchmarks.md")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    repeats = 2 if args.quick else 5
    busy = os.getloadavg()
    start = time.perf_counter()
    load = cold_and_cached_load()
    decode = decode_rows([1, 4, 16, 64], new_tokens=32, repeats=repeats)
    embed = embed_rows([1, 2, 4, 8, 16, 32, 64, 128], n_sentences=256, repeats=repeats)
    body = "\n".join([
        "## Models", "",
        f"Script: `python benchmarks/models.py` (this run took {(time.perf_counter() - start) / 60:.1f} min). "
        f"Machine: {machine()}. Load average when the run started: {busy[0]:.1f} / {busy[1]:.1f} / "
        f"{busy[2]:.1f} (1/5/15 min)" + ("; other jobs shared these cores, so the numbers are lower and noisier "
                                         "than on an idle machine." if busy[0] > 1.5 else "."), "",
        "### Loading SmolLM2-135M-Instruct", "", table(load),
        "### Decode throughput, SmolLM2-135M-Instruct float32, 32 new tokens, greedy", "",
        "Tokens/s counts generated tokens of the whole batch (prefill included).", "",
        table(decode),
        f"### Embedding throughput, all-MiniLM-L6-v2, 256 short sentences", "", table(embed),
    ])
    print(body)
    if not args.no_write:
        print(f"updated {update_section('models', body)}")


if __name__ == "__main__":
    main()
