"""What one machine can do, and what a prediction costs on it: lab 4's measurements.

* **Timing by batch size** — :func:`sweep_batch_sizes` times any batched call with
  :func:`tradeoffs.measure.time_fn` (warm-up, a synchronised clock on a GPU, every sample kept), one
  row per call: lab 4 has you turn those rows into a table of percentiles and throughput.
  :func:`throughput_ci` adds a bootstrap confidence interval of the throughput. :func:`embedder_calls`
  and :class:`DecodeBench` provide the calls: a forward pass of the embedder, one decode step or one
  prefill of the chat model, at any batch size.
* **The decode roofline** — :func:`roofline_frame` sets measured tokens/s beside the memory- and
  compute-bound ceilings of :func:`tradeoffs.measure.decode_roofline`; :func:`quantisation_bounds`
  shows what fewer bytes per weight would buy; :func:`profile_call` splits a call's time into matrix
  multiplies, attention, other tensor operations, and the framework overhead around them.
* **Service curves for the simulator** — :func:`static_batch_curve` (prefill + decode of a whole
  batch, what ``tradeoffs.queueing.BatchAtATime`` needs) and :func:`roofline_curve` (a modelled
  curve for hardware you do not have, e.g. a GPU from its datasheet).
* **The simulator against the live server** — :func:`server_calibration` scales the in-process
  curves to the server's own speed at zero load, and :func:`replay_live` replays what the live
  server saw through the simulator, with the policies you give it.
* **Batch vs real-time** — the self-hosted cost rules are yours to write in lab 4;
  :func:`batch_vs_realtime` lays them side by side for a what-if calculator. API prices of a request
  mix (synchronous and batch) are :func:`tradeoffs.pricing.api_costs_per_million`.

Examples
--------
>>> samples = pd.DataFrame({"batch_size": [1, 1, 1, 4, 4, 4], "seconds": [0.010, 0.011, 0.012, 0.020, 0.021, 0.022]})
>>> throughput_ci(samples, n_boot=200)[["batch_size", "items_per_s_low", "items_per_s_high"]].round(1).values.tolist()
[[1.0, 83.3, 100.0], [4.0, 181.8, 200.0]]
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from . import measure
from .queueing import ServiceCurve

__all__ = ["sweep_batch_sizes", "throughput_ci", "embedder_calls", "DecodeBench", "sync_error",
           "roofline_frame", "QUANT_FORMATS", "quantisation_bounds", "profile_call", "static_batch_curve",
           "roofline_curve", "GpuSpec", "NVIDIA_L4", "server_calibration", "replay_live", "batch_vs_realtime"]


# --------------------------------------------------------------------------------------------
# Timing by batch size
# --------------------------------------------------------------------------------------------
def _check_batch_sizes(batch_sizes: Sequence[int]) -> list[int]:
    sizes = [int(b) for b in batch_sizes]
    if not sizes or any(b < 1 for b in sizes) or any(b != b_ for b, b_ in zip(sizes, batch_sizes)):
        raise ValueError(f"batch_sizes must be whole numbers >= 1, got {list(batch_sizes)}")
    return sizes


def sweep_batch_sizes(make_call: Callable[[int], Callable[[], Any]], batch_sizes: Sequence[int], *,
                      repeats: int = 10, warmup: int = 1, device=None, label: str = "",
                      budget_s: float | None = None, min_repeats: int = 3,
                      progress: bool = False) -> pd.DataFrame:
    """Time ``make_call(b)()`` at every batch size ``b``; one row per timed call.

    Parameters
    ----------
    make_call : callable
        ``make_call(b)`` prepares the inputs of one batch of ``b`` items (outside the clock) and
        returns a no-argument function that processes them.
    batch_sizes : sequence of int
    repeats : int
        Timed calls per batch size (at most).
    warmup : int
        Untimed calls first (at least 1 when ``budget_s`` is given: the first one is used to
        estimate the call's duration).
    device : str or torch.device, optional
        On a GPU the clock is read after ``torch.cuda.synchronize()`` (see ``tradeoffs.measure``).
    label : str
        Written into every row (e.g. ``"embedder"``).
    budget_s : float, optional
        Seconds to spend per batch size: large batches get fewer repeats (never fewer than
        ``min_repeats``), so a sweep up to batch 128 stays affordable on a laptop.
    progress : bool
        Show a tqdm bar over batch sizes.

    Returns
    -------
    DataFrame with columns ``label, device, batch_size, call, seconds``.

    Examples
    --------
    >>> df = sweep_batch_sizes(lambda b: (lambda: sum(range(1000 * b))), [1, 8], repeats=4)
    >>> df.groupby("batch_size")["seconds"].size().tolist()
    [4, 4]
    """
    sizes = _check_batch_sizes(batch_sizes)
    if repeats < 1 or min_repeats < 1:
        raise ValueError(f"repeats and min_repeats must be >= 1, got {repeats} and {min_repeats}")
    dev = str(device) if device is not None else "cpu"
    iterator: Any = sizes
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(sizes, desc=f"timing {label}".strip(), unit="batch size")
    rows = []
    for b in iterator:
        fn = make_call(b)
        n, warm = repeats, warmup
        if budget_s is not None:
            first = measure.time_fn(fn, repeats=1, warmup=0, device=device).median  # the first warm-up call
            warm = max(warmup - 1, 0)
            n = int(np.clip(budget_s / max(first, 1e-9), min(min_repeats, repeats), repeats))
        timing = measure.time_fn(fn, repeats=n, warmup=warm, device=device, items_per_call=b, label=label)
        rows += [{"label": label, "device": dev, "batch_size": b, "call": i, "seconds": float(s)}
                 for i, s in enumerate(timing.samples)]
        del fn
    return pd.DataFrame(rows, columns=["label", "device", "batch_size", "call", "seconds"])


def throughput_ci(samples: pd.DataFrame, *, level: float = 0.95, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """A bootstrap confidence interval of the throughput at each batch size.

    The percentile bootstrap of the median call time (``tradeoffs.measure.bootstrap_ci``), turned into
    items per second: ``batch size / upper bound`` and ``batch size / lower bound``.

    Parameters
    ----------
    samples : DataFrame
        One row per timed call with ``batch_size`` and ``seconds`` (what :func:`sweep_batch_sizes`
        returns).
    level, n_boot, seed
        Confidence level, bootstrap resamples and their seed.

    Returns
    -------
    DataFrame, one row per batch size (ascending): ``batch_size``, ``items_per_s_low``,
    ``items_per_s_high`` (a single call gives a zero-width interval).

    Examples
    --------
    >>> s = pd.DataFrame({"batch_size": [2, 2, 2], "seconds": [0.1, 0.2, 0.4]})
    >>> throughput_ci(s, n_boot=200).round(1).values.tolist()
    [[2.0, 5.0, 20.0]]
    """
    missing = {"batch_size", "seconds"} - set(samples.columns)
    if missing:
        raise ValueError(f"samples lacks column(s) {sorted(missing)}; it has {list(samples.columns)}")
    if samples.empty:
        raise ValueError("samples is empty; time at least one call")
    rows = []
    for b, grp in samples.groupby("batch_size", sort=True):
        secs = grp["seconds"].to_numpy(dtype=float)
        if np.any(~np.isfinite(secs)) or np.any(secs <= 0):
            raise ValueError(f"batch size {b}: seconds must be positive and finite")
        if secs.size >= 2:
            lo, hi = measure.bootstrap_ci(secs, np.median, level=level, n_boot=n_boot, seed=seed)
        else:
            lo = hi = float(secs[0])
        rows.append({"batch_size": int(b), "items_per_s_low": b / hi, "items_per_s_high": b / lo})
    return pd.DataFrame(rows, columns=["batch_size", "items_per_s_low", "items_per_s_high"])


def _groups(items: Sequence[Any], b: int) -> list[list[Any]]:
    """``ceil(len(items) / b)`` groups of exactly ``b`` items that together cover every item once
    (the last group wraps around to the start)."""
    n = len(items)
    return [[items[(g * b + j) % n] for j in range(b)] for g in range(max(1, math.ceil(n / b)))]


def embedder_calls(embedder, texts: Sequence[str]) -> Callable[[int], Callable[[], Any]]:
    """``make_call`` for :func:`sweep_batch_sizes`: one forward pass + mean pooling of the embedder
    over ``b`` texts, tokenised and moved to the model's device *before* the clock starts.

    The texts are cut into batches of ``b`` that together cover all of them, and successive calls go
    round those batches: every batch size sees the same texts, and the spread of the call times
    shows the spread of text lengths (a long ticket is a slow call at batch 1).
    """
    import itertools

    import torch

    texts = list(texts)
    if not texts or not all(isinstance(t, str) and t for t in texts):
        raise ValueError("texts must be a non-empty list of non-empty strings")

    def make(b: int) -> Callable[[], Any]:
        encoded = []
        for group in _groups(texts, b):
            enc = embedder.tokenizer(group, padding=True, truncation=True, max_length=embedder.max_length,
                                     return_tensors="pt").to(embedder.device)
            encoded.append((enc, enc["attention_mask"].unsqueeze(-1)))
        batches = itertools.cycle(encoded)

        def call():
            enc, mask = next(batches)
            with torch.inference_mode():
                hidden = embedder.model(**enc).last_hidden_state
                m = mask.to(hidden.dtype)
                return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)

        return call

    return make


class DecodeBench:
    """Time the chat model's two kinds of work at any batch size: **prefill** (read a prompt, fill
    the KV cache) and one **decode step** (one new token for every sequence in the batch).

    For decode, one prompt is prefilled once and its KV cache copied ``b`` times, so a decode step
    at batch 128 costs what it costs in a real batch without first paying 128 prefills; after each
    timed step the cache is cropped back, so every step sees the same context length.

    Parameters
    ----------
    chat : tradeoffs.models.ChatModel
    messages : list of dict
        The conversation whose KV cache the decode steps extend.

    Examples
    --------
    >>> from tradeoffs.models import load_chat_model                                   # doctest: +SKIP
    >>> bench = DecodeBench(load_chat_model("cpu"), [{"role": "user", "content": "Hi"}])  # doctest: +SKIP
    >>> steps = sweep_batch_sizes(bench.step_call, [1, 8], repeats=5)                    # doctest: +SKIP
    """

    def __init__(self, chat, messages: Sequence[Mapping[str, str]]) -> None:
        import torch

        self.chat = chat
        self.device = chat.device
        enc = chat.encode_chat([list(messages)])
        self.context_tokens = int(enc["input_ids"].shape[1])
        with torch.inference_mode():
            out = chat.model(**enc, use_cache=True, logits_to_keep=1)
        self._cache = out.cache
        self._next = out.logits[:, -1].argmax(-1, keepdim=True)

    def step_call(self, b: int) -> Callable[[], Any]:
        """One decode step for a batch of ``b`` sequences (``make_call`` for the sweep)."""
        import torch

        if b < 1:
            raise ValueError(f"batch size must be >= 1, got {b}")
        cache = copy.deepcopy(self._cache)
        if b > 1:
            cache.batch_repeat_interleave(b)
        ids = self._next.repeat(b, 1)
        pos = torch.full((b, 1), self.context_tokens, dtype=torch.long, device=self.device)
        model = self.chat.model

        def call():
            with torch.inference_mode():
                out = model(input_ids=ids, position_ids=pos, cache=cache, use_cache=True)
            cache.crop(-1)  # back to the prompt: every timed step sees the same context
            return out.logits

        return call

    def prefill_call(self, prompts: Sequence[Sequence[Mapping[str, str]]]) -> Callable[[int], Callable[[], Any]]:
        """``make_call`` for prefilling ``b`` of ``prompts`` together (left-padded, as the server's
        engine does when ``b`` requests join at once); each call builds a fresh KV cache. Like
        :func:`embedder_calls`, successive calls go round batches that cover every prompt once."""
        import torch

        import itertools

        prompts = [list(p) for p in prompts]
        if not prompts:
            raise ValueError("prompts is empty")
        model = self.chat.model

        def make(b: int) -> Callable[[], Any]:
            batches = itertools.cycle([self.chat.encode_chat(group) for group in _groups(prompts, b)])

            def call():
                with torch.inference_mode():
                    return model(**next(batches), use_cache=True, logits_to_keep=1).logits

            return call

        return make


def sync_error(fn: Callable[[], Any], device, *, repeats: int = 10, warmup: int = 3) -> dict[str, Any]:
    """Time ``fn`` the right way (synchronised) and the wrong way (no ``synchronize``) on ``device``.

    On a CPU both read the same; on a GPU the unsynchronised clock stops when the kernels are
    *queued*, not when they finish, and reports a fraction of the real time.

    Returns
    -------
    dict with ``device``, ``synchronised_s`` and ``unsynchronised_s`` (medians) and ``ratio``
    (synchronised / unsynchronised: how many times too fast the wrong number is).
    """
    right = measure.time_fn(fn, repeats=repeats, warmup=warmup, device=device, label="synchronised")
    wrong = measure.time_unsynchronized(fn, repeats=repeats, warmup=warmup)
    measure.synchronize(device)  # drain the queue the wrong measurement left behind
    return {"device": str(device), "synchronised_s": right.median, "unsynchronised_s": wrong.median,
            "ratio": right.median / wrong.median}


# --------------------------------------------------------------------------------------------
# Roofline and profile
# --------------------------------------------------------------------------------------------
def roofline_frame(table: pd.DataFrame, *, n_params: int, bytes_per_param: float, bandwidth: float,
                   peak_flops: float, measured_col: str = "items_per_s") -> pd.DataFrame:
    """Measured decode tokens/s beside its roofline ceilings, per batch size.

    ``table`` has ``batch_size`` and the measured tokens/s (``measured_col``; for a decode-step
    sweep, items/s *are* tokens/s). Returns ``batch_size, memory_bound, compute_bound, bound,
    regime, measured, fraction`` (measured / bound).

    Examples
    --------
    >>> t = pd.DataFrame({"batch_size": [1, 8], "items_per_s": [20.0, 100.0]})
    >>> f = roofline_frame(t, n_params=100_000_000, bytes_per_param=4, bandwidth=20e9, peak_flops=100e9)
    >>> f[["memory_bound", "compute_bound", "fraction"]].round(2).values.tolist()
    [[50.0, 500.0, 0.4], [400.0, 500.0, 0.25]]
    """
    rows = []
    for b, measured in zip(table["batch_size"], table[measured_col]):
        r = measure.decode_roofline(n_params, bytes_per_param, int(b), bandwidth, peak_flops)
        rows.append({"batch_size": int(b), "memory_bound": r.memory_bound_tokens_per_s,
                     "compute_bound": r.compute_bound_tokens_per_s, "bound": r.bound_tokens_per_s,
                     "regime": r.regime, "measured": float(measured),
                     "fraction": r.fraction_achieved(float(measured))})
    return pd.DataFrame(rows)


#: Bytes per weight of common number formats (int4 stores two weights per byte; real int4 formats
#: such as GGUF Q4 or AWQ add a scale per group of 32-128 weights, about 0.03-0.1 bytes per weight).
QUANT_FORMATS = {"float32": 4.0, "bfloat16": 2.0, "int8": 1.0, "int4": 0.5}


def quantisation_bounds(n_params: int, bandwidth: float, peak_flops: float, batch_size: int = 1,
                        formats: Mapping[str, float] = QUANT_FORMATS) -> pd.DataFrame:
    """The decode ceiling at ``batch_size`` for each weight format: fewer bytes per weight means
    fewer bytes to stream per token, so a memory-bound decode speeds up in proportion (the compute
    ceiling is left unchanged here, although int8/int4 kernels also raise it on hardware that has them).

    Examples
    --------
    >>> quantisation_bounds(100_000_000, 20e9, 1e12)["memory_bound"].round(1).tolist()
    [50.0, 100.0, 200.0, 400.0]
    """
    rows = []
    for name, bpp in formats.items():
        r = measure.decode_roofline(n_params, bpp, batch_size, bandwidth, peak_flops)
        rows.append({"format": name, "bytes_per_param": float(bpp), "weight_mb": r.weight_bytes / 1e6,
                     "memory_bound": r.memory_bound_tokens_per_s, "compute_bound": r.compute_bound_tokens_per_s,
                     "bound": r.bound_tokens_per_s, "regime": r.regime})
    return pd.DataFrame(rows)


# CPU operators (aten::...) and GPU kernel names (cuBLAS/CUTLASS GEMM and GEMV kernels, flash attention).
_MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::matmul", "aten::linear",
               "aten::_addmm_activation", "mkldnn", "onednn", "gemm", "gemv", "cutlass", "xmma")
_ATTENTION_OPS = ("scaled_dot_product", "attention", "aten::_softmax", "aten::softmax", "flash", "fmha")


def _op_category(name: str) -> str:
    """Which of the profile's categories an operator or GPU kernel belongs to.

    Examples
    --------
    >>> _op_category("aten::addmm"), _op_category("ampere_bf16_s16816gemm_bf16_128x64"), _op_category("aten::add")
    ('matrix multiply (weights)', 'matrix multiply (weights)', 'other tensor ops (norms, activations, copies)')
    >>> _op_category("aten::_scaled_dot_product_flash_attention_for_cpu")
    'attention'
    """
    low = name.lower()
    if any(k in low for k in _ATTENTION_OPS):
        return "attention"
    if any(k in low for k in _MATMUL_OPS):
        return "matrix multiply (weights)"
    return "other tensor ops (norms, activations, copies)"


def profile_call(fn: Callable[[], Any], *, device=None, repeats: int = 3, warmup: int = 1) -> pd.DataFrame:
    """Where the time of ``fn()`` goes, from ``torch.profiler``.

    Categories: ``matrix multiply (weights)`` (streaming the weights: the memory-bound part at small
    batch), ``attention``, ``other tensor ops``, and ``framework overhead`` = wall time minus the time
    spent inside operators: Python, module calls, dispatch, allocation — and, on a GPU, the time the
    GPU sits idle waiting for kernel launches. On a GPU the operator times are kernel times.

    Returns
    -------
    DataFrame with ``category``, ``seconds`` (per call) and ``share`` of the wall time, plus a
    ``wall`` row.
    """
    import torch
    from torch.profiler import ProfilerActivity, profile

    dev = torch.device(device) if device is not None else torch.device("cpu")
    on_gpu = dev.type == "cuda"
    for _ in range(warmup):
        fn()
    measure.synchronize(dev)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_gpu else [])
    import time

    with profile(activities=activities) as prof:
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        measure.synchronize(dev)
        wall = (time.perf_counter() - start) / repeats
    from torch.autograd import DeviceType

    totals: dict[str, float] = {}
    for evt in prof.key_averages():
        if on_gpu:  # kernel rows only: an operator's own device time would count its kernels twice
            if getattr(evt, "device_type", None) != DeviceType.CUDA:
                continue
            us = evt.self_device_time_total
        else:
            if not evt.key.startswith("aten::"):
                continue
            us = evt.self_cpu_time_total
        if not us:
            continue
        cat = _op_category(evt.key)
        totals[cat] = totals.get(cat, 0.0) + us / 1e6 / repeats
    inside = sum(totals.values())
    label = "framework overhead (GPU idle: Python, launches)" if on_gpu else "framework overhead (Python, dispatch)"
    totals[label] = max(wall - inside, 0.0)
    rows = [{"category": k, "seconds": v, "share": v / wall} for k, v in totals.items()]
    rows.append({"category": "wall", "seconds": wall, "share": 1.0})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Service curves for the simulator
# --------------------------------------------------------------------------------------------
def static_batch_curve(prefill: ServiceCurve, step: ServiceCurve, batch_sizes: Sequence[int],
                       new_tokens: int) -> ServiceCurve:
    """Seconds to serve a whole batch of ``b`` generations of ``new_tokens`` each with *static*
    batching: one prefill of ``b`` prompts (which yields the first token) then ``new_tokens - 1``
    decode steps at batch ``b``. Nobody leaves early: what ``queueing.BatchAtATime`` simulates.

    Examples
    --------
    >>> c = static_batch_curve(ServiceCurve.constant(0.2), ServiceCurve([1, 8], [0.05, 0.1]), [1, 8], 5)
    >>> round(c.mean(1), 3), round(c.mean(8), 3)
    (0.4, 0.6)
    """
    if new_tokens < 1:
        raise ValueError(f"new_tokens must be >= 1, got {new_tokens}")
    sizes = _check_batch_sizes(batch_sizes)
    secs = [prefill.mean(b) + (new_tokens - 1) * step.mean(b) for b in sizes]
    return ServiceCurve(sizes, secs)


@dataclass(frozen=True)
class GpuSpec:
    """Datasheet numbers of an accelerator, for a modelled what-if (not a measurement)."""

    name: str
    bandwidth: float  # bytes/s
    peak_flops: float  # FLOP/s in the serving dtype, dense
    bytes_per_param: float
    source: str


#: NVIDIA L4 (the GPU of AWS g6 instances, priced in ``tradeoffs.pricing.GPU_L4_VM``): 300 GB/s of
#: GDDR6 bandwidth and 121 TFLOPS of dense BF16 tensor-core compute (242 with sparsity).
#: Source: NVIDIA, "NVIDIA L4 Tensor Core GPU" datasheet (2023), https://www.nvidia.com/en-us/data-center/l4/
NVIDIA_L4 = GpuSpec("NVIDIA L4 (datasheet, modelled)", 300e9, 121e12, 2.0,
                    "NVIDIA L4 Tensor Core GPU datasheet, https://www.nvidia.com/en-us/data-center/l4/")


def roofline_curve(n_params: int, bytes_per_param: float, bandwidth: float, peak_flops: float,
                   batch_sizes: Sequence[int], *, tokens_per_item: int = 1, efficiency: float = 1.0,
                   overhead_s: float = 0.0) -> ServiceCurve:
    """A *modelled* service curve from the roofline: seconds per forward pass over ``b`` items of
    ``tokens_per_item`` tokens = max(weight bytes / bandwidth, FLOPs / peak) / efficiency + overhead.

    ``tokens_per_item=1`` models a decode step; the prompt length models a prefill. Use it for
    hardware you cannot measure (label the result "modelled"); ``efficiency`` (0-1] is the fraction of
    the roofline the software reaches and ``overhead_s`` the fixed framework cost per forward pass.

    Examples
    --------
    >>> c = roofline_curve(1_000_000_000, 2, 1e12, 100e12, [1, 1000])
    >>> round(c.mean(1), 4), round(c.mean(1000), 4)   # memory-bound, then compute-bound
    (0.002, 0.02)
    """
    if not 0 < efficiency <= 1:
        raise ValueError(f"efficiency must be in (0, 1], got {efficiency}")
    if overhead_s < 0 or tokens_per_item < 1:
        raise ValueError("overhead_s must be >= 0 and tokens_per_item >= 1")
    sizes = _check_batch_sizes(batch_sizes)
    weight_bytes = n_params * bytes_per_param
    secs = [max(weight_bytes / bandwidth, 2.0 * n_params * b * tokens_per_item / peak_flops) / efficiency + overhead_s
            for b in sizes]
    return ServiceCurve(sizes, secs)


# --------------------------------------------------------------------------------------------
# The simulator against the live server
# --------------------------------------------------------------------------------------------
def _scaled(curve: ServiceCurve, factor: float) -> ServiceCurve:
    return ServiceCurve(curve.batch_sizes, np.asarray(curve.seconds) * factor)


def server_calibration(alone: pd.DataFrame, step: ServiceCurve, prefill: ServiceCurve) -> dict[str, Any]:
    """Scale the in-process curves to the live server's speed, from requests it served alone.

    The server is another process with HTTP, tokenisation and bookkeeping around the model: its time
    to first token is compared with ``prefill.mean(1)``, and its time per further token with
    ``step.mean(1)``.

    Parameters
    ----------
    alone : DataFrame
        Requests served one at a time: ``latency``, ``ttft`` (seconds) and ``completion_tokens``.
    step, prefill : ServiceCurve
        Seconds per decode step and per prefill, by batch size (measured in process).

    Returns
    -------
    dict with ``prefill_factor``, ``step_factor`` (server / in-process), and the scaled curves
    ``step`` and ``prefill``. With no request longer than one token the step factor falls back to the
    prefill factor.

    Examples
    --------
    >>> alone = pd.DataFrame({"latency": [1.2, 1.2], "ttft": [0.3, 0.3], "completion_tokens": [10, 10]})
    >>> cal = server_calibration(alone, ServiceCurve.constant(0.05), ServiceCurve.constant(0.2))
    >>> round(cal["prefill_factor"], 2), round(cal["step_factor"], 2), round(cal["step"].mean(1), 3)
    (1.5, 2.0, 0.1)
    """
    missing = {"latency", "ttft", "completion_tokens"} - set(alone.columns)
    if missing or alone.empty:
        raise ValueError(f"alone needs rows with latency, ttft and completion_tokens; missing {sorted(missing)}")
    per_token = ((alone["latency"] - alone["ttft"]) / (alone["completion_tokens"] - 1).clip(lower=1)
                 ).where(alone["completion_tokens"] > 1)
    prefill_factor = float(alone["ttft"].median()) / prefill.mean(1)
    step_factor = float(per_token.median()) / step.mean(1) if per_token.notna().any() else prefill_factor
    return {"prefill_factor": prefill_factor, "step_factor": step_factor,
            "step": _scaled(step, step_factor), "prefill": _scaled(prefill, prefill_factor)}


def replay_live(live: pd.DataFrame, live_log: pd.DataFrame, step: ServiceCurve, prefill: ServiceCurve,
                policies: Mapping[str, Any], *, context_tokens: int, max_tokens: int,
                calibration: Mapping[str, float] | None = None, tolerance: float = 0.30) -> pd.DataFrame:
    """Replay exactly what each live load level saw through the simulator, and compare median latencies.

    Every request is replayed at its real send time with its real completion length (a failed one
    with ``max_tokens``). The curves are scaled to the speed the server itself reported during that
    level: its mean engine step (``server_step_s``, with ``server_step_batch`` requests and
    ``server_step_tokens`` prompt tokens read per step) over what ``step`` and ``prefill`` predict for
    such a step. Without server metrics, ``calibration`` (:func:`server_calibration`) sets the scale.

    Parameters
    ----------
    live : DataFrame
        One row per (``label``, ``offered_rate``) with the server metrics columns of
        ``tradeoffs.loadtest.sweep``.
    live_log : DataFrame
        One row per request: ``label``, ``offered_rate``, ``start``, ``ok``, ``latency``,
        ``completion_tokens``.
    step, prefill : ServiceCurve
        In-process curves (seconds per decode step; per prefill of ``b`` prompts of
        ``context_tokens`` tokens).
    policies : mapping
        Server label -> the simulator policy that stands for it (e.g. a
        ``queueing.Continuous(8, 0.005, next_batch)`` with your admission rule).
    tolerance : float
        The relative error counted as "within tolerance".

    Returns
    -------
    DataFrame, one row per level: ``server``, ``offered_rate``, ``requests``, ``errors``,
    ``speed_vs_section_2``, ``measured_p50_s``, ``predicted_p50_s``, ``error`` (predicted / measured
    - 1) and ``within_tolerance``.

    Examples
    --------
    >>> from tradeoffs.queueing import Continuous
    >>> live = pd.DataFrame({"label": ["naive"], "offered_rate": [1.0], "server_step_s": [np.nan],
    ...                      "server_step_batch": [np.nan], "server_step_tokens": [np.nan]})
    >>> log = pd.DataFrame({"label": "naive", "offered_rate": 1.0, "start": [0.0, 0.1], "ok": True,
    ...                     "latency": [0.5, 0.9], "completion_tokens": 5})
    >>> v = replay_live(live, log, ServiceCurve.constant(0.1), ServiceCurve.constant(0.1), {"naive": Continuous(1)},
    ...                 context_tokens=100, max_tokens=5)
    >>> v[["measured_p50_s", "predicted_p50_s"]].round(2).values.tolist()   # 0.5 s each; the second queues 0.4 s
    [[0.7, 0.7]]
    """
    from .queueing import simulate

    cal = calibration or {"step_factor": 1.0, "prefill_factor": 1.0}
    rows = []
    for (name, rate), grp in live_log.groupby(["label", "offered_rate"], sort=False):
        if name not in policies:
            raise ValueError(f"no policy given for server {name!r}; policies has {sorted(policies)}")
        grp = grp.sort_values("start")
        level = live[(live["label"] == name) & (live["offered_rate"] == rate)].iloc[0]
        b_srv, t_srv = max(1.0, float(level.get("server_step_batch", np.nan))), float(level.get("server_step_tokens", np.nan))
        expected = step.mean(b_srv) + max(0.0, t_srv - b_srv) / context_tokens * prefill.mean(1)
        speed = float(level.get("server_step_s", np.nan)) / expected
        sf, pf = (speed, speed) if np.isfinite(speed) else (cal["step_factor"], cal["prefill_factor"])
        steps = np.where(grp["ok"], grp["completion_tokens"], max_tokens).clip(1)
        sim = simulate(grp["start"].to_numpy(dtype=float), policies[name], _scaled(step, sf), steps=steps,
                       prefill=_scaled(prefill, pf))
        measured = float(np.median(np.where(grp["ok"], grp["latency"], np.inf)))
        predicted = float(sim["latency"].median())
        rows.append({"server": name, "offered_rate": rate, "requests": len(grp), "errors": int((~grp["ok"]).sum()),
                     "speed_vs_section_2": sf, "measured_p50_s": measured, "predicted_p50_s": predicted,
                     "error": predicted / measured - 1 if np.isfinite(measured) else np.nan})
    out = pd.DataFrame(rows)
    out["within_tolerance"] = out["error"].abs() <= tolerance
    return out


# --------------------------------------------------------------------------------------------
# Batch vs real-time: a what-if over measured numbers
# --------------------------------------------------------------------------------------------
def batch_vs_realtime(traffic_x: float, slo_s: float, usd_per_hour: float, *, daily_requests: float,
                      peak_rps: float, sweeps: Mapping[str, pd.DataFrame], job_items_per_s: float,
                      startup_s: float, capacity_fn: Callable, realtime_cost_fn: Callable,
                      batch_cost_fn: Callable) -> pd.DataFrame:
    """Cost per million predictions of real-time serving and of a nightly batch job, at a traffic
    multiple, a latency SLO and a machine price: the callback of lab 4's what-if calculator.

    It computes nothing of its own: the capacity per machine at the SLO comes from ``capacity_fn``
    over each simulated sweep, and the costs from ``realtime_cost_fn`` and ``batch_cost_fn`` (pass
    your own functions).

    Parameters
    ----------
    traffic_x : float
        Multiple of today's traffic (volume and peak scale together).
    slo_s : float
        p99 latency objective of the real-time service, seconds.
    usd_per_hour : float
        Price of one machine.
    daily_requests, peak_rps : float
        Today's volume and peak request rate.
    sweeps : mapping
        Policy name -> simulated sweep (``offered_rate``, ``p99_s``, ``errors``), one row per rate.
    job_items_per_s, startup_s : float
        The batch job's throughput and its start-up time.
    capacity_fn : callable
        ``capacity_fn(table, slo_s)`` -> requests/s one machine serves within the SLO.
    realtime_cost_fn : callable
        ``realtime_cost_fn(daily_requests, peak_rps, rps_per_machine, usd_per_hour)`` -> US$ per million.
    batch_cost_fn : callable
        ``batch_cost_fn(items_per_s, usd_per_hour, daily_requests, startup_s)`` -> US$ per million.

    Returns
    -------
    DataFrame indexed by option: ``req/s per machine at the SLO``, ``usd_per_million``,
    ``usd_per_day``, ``fresh within``.

    Examples
    --------
    >>> sweeps = {"naive": pd.DataFrame({"offered_rate": [1.0, 2.0], "p99_s": [0.5, 3.0], "errors": [0, 0]})}
    >>> cap = lambda t, slo: float(t.loc[t["p99_s"] <= slo, "offered_rate"].max())
    >>> rt = lambda d, peak, rate, usd: 24 * usd * max(1, -(-peak // rate)) / d * 1e6
    >>> job = lambda rate, usd, d, start: (start + d / rate) / 3600 * usd / d * 1e6
    >>> batch_vs_realtime(1.0, 1.0, 1.0, daily_requests=86_400, peak_rps=1.5, sweeps=sweeps, job_items_per_s=10.0,
    ...                   startup_s=0.0, capacity_fn=cap, realtime_cost_fn=rt, batch_cost_fn=job)["usd_per_million"].round(1).tolist()
    [555.6, 27.8]
    """
    if not traffic_x > 0 or not slo_s > 0 or not usd_per_hour > 0:
        raise ValueError("traffic_x, slo_s and usd_per_hour must be positive")
    daily, peak = daily_requests * traffic_x, peak_rps * traffic_x
    rows = []
    for name, table in sweeps.items():
        rate = float(capacity_fn(table, slo_s))
        usd = float(realtime_cost_fn(daily, peak, rate, usd_per_hour))
        rows.append({"option": f"real-time, {name}", "req/s per machine at the SLO": rate, "usd_per_million": usd,
                     "usd_per_day": usd * daily / 1e6, "fresh within": f"p99 {slo_s:.1f} s"})
    usd = float(batch_cost_fn(job_items_per_s, usd_per_hour, daily, startup_s))
    rows.append({"option": "nightly batch job", "req/s per machine at the SLO": np.nan, "usd_per_million": usd,
                 "usd_per_day": usd * daily / 1e6, "fresh within": "24 h"})
    return pd.DataFrame(rows).set_index("option")
