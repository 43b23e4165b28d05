"""Timing done right, used by every lab that times anything.

Rules this module enforces, because each one is a classic way to publish a wrong number:

* **warm-up** calls are run and discarded (allocator, kernel selection, caches);
* every sample is **kept** (percentiles and confidence intervals need the distribution, not a mean);
* on a GPU the clock is read only after ``torch.cuda.synchronize()``: kernels are launched
  asynchronously, so without it you time the launch, not the work;
* memory-bandwidth probes **touch** their buffers first: untouched pages from ``torch.empty`` map to
  the kernel's shared zero page and read at absurd speed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np

DEFAULT_PERCENTILES = (50, 90, 99)


# --------------------------------------------------------------------------------------------
# Device synchronisation
# --------------------------------------------------------------------------------------------
def synchronize(device=None) -> None:
    """Wait for all queued work on ``device`` (no-op on CPU).

    Examples
    --------
    >>> synchronize("cpu")
    """
    if device is None:
        return
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    elif dev.type == "mps":
        torch.mps.synchronize()


# --------------------------------------------------------------------------------------------
# Statistics on samples
# --------------------------------------------------------------------------------------------
def _as_samples(samples: Iterable[float], what: str = "samples") -> np.ndarray:
    arr = np.asarray(list(samples) if not isinstance(samples, np.ndarray) else samples, dtype=float).ravel()
    if arr.size == 0:
        raise ValueError(f"{what} is empty; time at least one call")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} contains NaN or infinite values")
    return arr


def percentiles(samples: Iterable[float], qs: Sequence[float] = DEFAULT_PERCENTILES) -> dict[str, float]:
    """Percentiles of the samples, keyed ``"p50"``, ``"p90"``...; numpy's linear interpolation.

    Examples
    --------
    >>> percentiles([1, 2, 3, 4, 5], qs=(50, 100))
    {'p50': 3.0, 'p100': 5.0}
    """
    arr = _as_samples(samples)
    for q in qs:
        if not 0 <= q <= 100:
            raise ValueError(f"percentile {q} is outside [0, 100]")
    values = np.percentile(arr, list(qs))
    return {f"p{q:g}": float(v) for q, v in zip(qs, values)}


def bootstrap_ci(samples: Iterable[float], stat: Callable[[np.ndarray], float] = np.median,
                 level: float = 0.95, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval for ``stat`` of the samples.

    Parameters
    ----------
    samples : array-like of float
    stat : callable
        Statistic applied along axis 1 of a ``(n_boot, n)`` resample matrix if it accepts ``axis``
        (numpy reductions do), else row by row.
    level : float
        Coverage, e.g. 0.95.
    n_boot : int
        Number of bootstrap resamples.
    seed : int
        Seed of the resampling generator (the interval is reproducible).

    Returns
    -------
    (low, high) : tuple of float

    Examples
    --------
    >>> lo, hi = bootstrap_ci(np.arange(100.0), stat=np.mean)
    >>> lo < 49.5 < hi
    True
    """
    arr = _as_samples(samples)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n_boot < 100:
        raise ValueError(f"n_boot={n_boot} is too few for a stable interval; use at least 100")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, arr.size, size=(n_boot, arr.size))
    resampled = arr[idx]
    try:
        stats = np.asarray(stat(resampled, axis=1), dtype=float)
    except TypeError:
        stats = np.array([stat(row) for row in resampled], dtype=float)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(stats, [alpha, 1 - alpha])
    return float(lo), float(hi)


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------
@dataclass
class Timing:
    """The kept samples of a timed operation and what follows from them.

    Attributes
    ----------
    samples : np.ndarray
        Seconds per call, warm-up excluded.
    items_per_call : int
        How many items (sentences, sequences, tokens) one call processes; used for throughput.
    label : str
    device : str
    """

    samples: np.ndarray
    items_per_call: int = 1
    label: str = ""
    device: str = "cpu"
    warmup: int = 0

    def __post_init__(self) -> None:
        self.samples = _as_samples(self.samples)
        if self.items_per_call < 1:
            raise ValueError(f"items_per_call must be >= 1, got {self.items_per_call}")

    @property
    def n(self) -> int:
        return int(self.samples.size)

    @property
    def median(self) -> float:
        return float(np.median(self.samples))

    @property
    def mean(self) -> float:
        return float(np.mean(self.samples))

    def percentile(self, q: float) -> float:
        return percentiles(self.samples, (q,))[f"p{q:g}"]

    @property
    def throughput(self) -> float:
        """Items per second at the median call time."""
        return self.items_per_call / self.median

    def ci(self, stat: Callable = np.median, level: float = 0.95, n_boot: int = 2000,
           seed: int = 0) -> tuple[float, float]:
        """Bootstrap CI of a statistic of the per-call seconds."""
        return bootstrap_ci(self.samples, stat=stat, level=level, n_boot=n_boot, seed=seed)

    def throughput_ci(self, level: float = 0.95, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
        """Bootstrap CI of the throughput (items/s at the median call time)."""
        lo, hi = self.ci(np.median, level=level, n_boot=n_boot, seed=seed)
        return self.items_per_call / hi, self.items_per_call / lo

    def summary(self, qs: Sequence[float] = DEFAULT_PERCENTILES) -> dict[str, Any]:
        """One row for a results table: latency percentiles (ms), throughput and its 95% CI."""
        pct = percentiles(self.samples, qs)
        t_lo, t_hi = self.throughput_ci()
        row: dict[str, Any] = {"label": self.label, "device": self.device, "n": self.n,
                               "items_per_call": self.items_per_call}
        row.update({f"{k}_ms": v * 1e3 for k, v in pct.items()})
        row.update({"mean_ms": self.mean * 1e3, "throughput_per_s": self.throughput,
                    "throughput_ci_low": t_lo, "throughput_ci_high": t_hi})
        return row


def time_fn(fn: Callable[[], Any], *, repeats: int = 20, warmup: int = 3, device=None,
            items_per_call: int = 1, label: str = "", min_seconds: float = 0.0,
            max_repeats: int | None = None) -> Timing:
    """Time ``fn()`` the right way: warm-up, synchronised clock, every sample kept.

    Parameters
    ----------
    fn : callable
        Called with no arguments; its result is discarded.
    repeats : int
        Timed calls (at least 1).
    warmup : int
        Untimed calls first.
    device : str or torch.device, optional
        When it is a GPU, the device is synchronised before starting and before stopping the clock.
    items_per_call : int
        Items processed per call, for throughput.
    min_seconds : float
        Keep timing (beyond ``repeats``) until this much time is spent, up to ``max_repeats``.

    Examples
    --------
    >>> t = time_fn(lambda: sum(range(1000)), repeats=5, warmup=1)
    >>> t.n, t.median > 0
    (5, True)
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    dev = str(device) if device is not None else "cpu"
    for _ in range(warmup):
        fn()
    synchronize(device)
    samples: list[float] = []
    limit = max_repeats if max_repeats is not None else max(repeats, 10_000)
    spent = 0.0
    while len(samples) < repeats or (spent < min_seconds and len(samples) < limit):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        elapsed = time.perf_counter() - start
        samples.append(elapsed)
        spent += elapsed
    return Timing(np.asarray(samples), items_per_call=items_per_call, label=label, device=dev, warmup=warmup)


def time_unsynchronized(fn: Callable[[], Any], *, repeats: int = 20, warmup: int = 3,
                        items_per_call: int = 1, label: str = "no synchronize (wrong on GPU)") -> Timing:
    """Time ``fn()`` *without* synchronising: the wrong way, kept to show how wrong it is on a GPU.

    On a CPU the two agree; on a GPU this measures the kernel launches only.
    """
    return time_fn(fn, repeats=repeats, warmup=warmup, device=None, items_per_call=items_per_call,
                   label=label)


# --------------------------------------------------------------------------------------------
# Hardware probes and the roofline
# --------------------------------------------------------------------------------------------
def memory_bandwidth(device="cpu", size_mb: int = 256, repeats: int = 5) -> float:
    """Measured copy bandwidth in bytes/s (read + write counted), median of ``repeats``.

    Both buffers are filled before timing: an untouched ``torch.empty`` buffer is backed by the zero
    page on Linux and would "read" at impossible speed.

    Examples
    --------
    >>> bw = memory_bandwidth("cpu", size_mb=32, repeats=3)
    >>> 1e8 < bw < 1e13
    True
    """
    import torch

    if size_mb < 1:
        raise ValueError(f"size_mb must be >= 1, got {size_mb}")
    dev = torch.device(device)
    n = size_mb * (1 << 20) // 4
    src = torch.empty(n, dtype=torch.float32, device=dev)
    dst = torch.empty(n, dtype=torch.float32, device=dev)
    src.fill_(1.0)  # touch every page
    dst.fill_(0.0)
    timing = time_fn(lambda: dst.copy_(src), repeats=repeats, warmup=1, device=dev)
    return 2 * n * 4 / timing.median


def matmul_flops(device="cpu", n: int = 1024, dtype=None, repeats: int = 5) -> float:
    """Measured dense matmul rate in FLOP/s (``2 n^3`` per ``n x n`` product), median of repeats.

    Examples
    --------
    >>> f = matmul_flops("cpu", n=256, repeats=3)
    >>> f > 1e8
    True
    """
    import torch

    dev = torch.device(device)
    dtype = dtype or torch.float32
    a = torch.randn(n, n, device=dev, dtype=dtype)
    b = torch.randn(n, n, device=dev, dtype=dtype)
    timing = time_fn(lambda: a @ b, repeats=repeats, warmup=2, device=dev)
    return 2 * n**3 / timing.median


@dataclass
class Roofline:
    """Upper bounds on decode throughput for one batch size.

    During decoding every step reads all weights once (``weight_bytes``) and does about
    ``2 * n_params`` FLOPs per token. A batch of ``b`` sequences shares that read, so

    * memory bound: ``bandwidth * b / weight_bytes`` tokens/s,
    * compute bound: ``peak_flops / (2 * n_params)`` tokens/s,

    and the attainable rate is the smaller one (KV-cache traffic is ignored: it is small for short
    contexts and a 135M model).
    """

    n_params: int
    bytes_per_param: float
    batch_size: int
    bandwidth: float
    peak_flops: float
    memory_bound_tokens_per_s: float = field(init=False)
    compute_bound_tokens_per_s: float = field(init=False)

    def __post_init__(self) -> None:
        for name in ("n_params", "bytes_per_param", "batch_size", "bandwidth", "peak_flops"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        self.memory_bound_tokens_per_s = self.bandwidth * self.batch_size / self.weight_bytes
        self.compute_bound_tokens_per_s = self.peak_flops / self.flops_per_token

    @property
    def weight_bytes(self) -> float:
        return self.n_params * self.bytes_per_param

    @property
    def flops_per_token(self) -> float:
        return 2.0 * self.n_params

    @property
    def arithmetic_intensity(self) -> float:
        """FLOPs per byte of weights read at this batch size."""
        return self.flops_per_token * self.batch_size / self.weight_bytes

    @property
    def ridge_point(self) -> float:
        """Arithmetic intensity (FLOP/byte) where memory and compute bounds meet."""
        return self.peak_flops / self.bandwidth

    @property
    def bound_tokens_per_s(self) -> float:
        return min(self.memory_bound_tokens_per_s, self.compute_bound_tokens_per_s)

    @property
    def regime(self) -> str:
        return "memory-bound" if self.memory_bound_tokens_per_s <= self.compute_bound_tokens_per_s else "compute-bound"

    def fraction_achieved(self, measured_tokens_per_s: float) -> float:
        """Measured throughput as a fraction of the roofline bound."""
        return measured_tokens_per_s / self.bound_tokens_per_s


def decode_roofline(n_params: int, bytes_per_param: float, batch_size: int, bandwidth: float,
                    peak_flops: float) -> Roofline:
    """Roofline bound on decode tokens/s.

    Examples
    --------
    >>> r = decode_roofline(n_params=135_000_000, bytes_per_param=4, batch_size=1,
    ...                     bandwidth=20e9, peak_flops=100e9)
    >>> round(r.memory_bound_tokens_per_s, 1), r.regime
    (37.0, 'memory-bound')
    """
    return Roofline(n_params=int(n_params), bytes_per_param=float(bytes_per_param),
                    batch_size=int(batch_size), bandwidth=float(bandwidth), peak_flops=float(peak_flops))


def decode_ceiling(model, measured_tokens_per_s: float | None = None, *, bandwidth: float | None = None,
                   device="cpu") -> dict:
    """Single-stream decode against its memory-bandwidth ceiling, for the dtype the model is in.

    At batch 1 every generated token reads every weight once, so tokens/s can be at most
    ``bandwidth / weight_bytes``. The bandwidth is measured (when not given) with
    :func:`memory_bandwidth` on a buffer the size of the weights, so the probe meets the same
    caches the weights do (on a CPU whose last-level cache holds most of a bfloat16 model, the
    ceiling is the cache's, and a fraction near or above 1 says the weights were served from it).

    Parameters
    ----------
    model : torch.nn.Module
        The model as served (its parameters' dtype sets the bytes per weight; tied weights count once).
    measured_tokens_per_s : float, optional
        Single-stream decode speed to place against the ceiling.
    bandwidth : float, optional
        Bytes/s; measured when omitted.

    Returns
    -------
    dict
        ``weight_bytes``, ``bandwidth``, ``ceiling_tokens_per_s`` and, when a measurement is given,
        ``tokens_per_s`` and ``fraction`` (measured / ceiling).

    Examples
    --------
    >>> import torch
    >>> m = torch.nn.Linear(1000, 1000, bias=False)
    >>> c = decode_ceiling(m, 5000.0, bandwidth=20e9)
    >>> c["weight_bytes"], c["ceiling_tokens_per_s"], c["fraction"]
    (4000000, 5000.0, 1.0)
    """
    n, bytes_per_param = parameter_count(model)
    weight_bytes = int(round(n * bytes_per_param))
    if weight_bytes <= 0:
        raise ValueError("the model has no parameters; pass the loaded chat model (chat.model)")
    if bandwidth is None:
        bandwidth = memory_bandwidth(device, size_mb=max(16, weight_bytes >> 20), repeats=5)
    if bandwidth <= 0:
        raise ValueError(f"bandwidth must be positive bytes/s, got {bandwidth}")
    out = {"weight_bytes": weight_bytes, "bandwidth": float(bandwidth),
           "ceiling_tokens_per_s": float(bandwidth) / weight_bytes}
    if measured_tokens_per_s is not None:
        if measured_tokens_per_s < 0:
            raise ValueError(f"measured_tokens_per_s must be >= 0, got {measured_tokens_per_s}")
        out["tokens_per_s"] = float(measured_tokens_per_s)
        out["fraction"] = float(measured_tokens_per_s) / out["ceiling_tokens_per_s"]
    return out


def parameter_count(model) -> tuple[int, float]:
    """Parameters of a torch module and bytes per parameter (from its dtypes)."""
    params = list(model.parameters())
    n = sum(p.numel() for p in params)
    nbytes = sum(p.numel() * p.element_size() for p in params)
    return int(n), nbytes / max(n, 1)
