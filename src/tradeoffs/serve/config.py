"""One configuration for the server: every default of ``tradeoffs serve`` lives here, once.

:class:`ServeConfig` plays the part of vLLM's ``EngineArgs``: ``tradeoffs serve``'s options default to
its fields, and :func:`~tradeoffs.serve.app.run_server`, :func:`~tradeoffs.serve.app.create_app`,
:class:`~tradeoffs.serve.local.LocalServer`, the engine and the scheduler take their defaults from it.
Importing it is cheap (no torch, no FastAPI).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

#: Seconds a stopping server gives the requests it is running before it ends them with a retryable
#: 503 (``tradeoffs serve --grace-period``, ``LocalServer(grace_period=...)``). Queued requests get
#: the 503 at once. Ten seconds lets a typical short chat reply finish, and fits inside the 30 s
#: Kubernetes waits by default before it kills a stopping pod
#: (https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-termination).
GRACE_PERIOD_S = 10.0


#: The weight and activation dtypes the server accepts (``auto`` picks one with :func:`resolve_dtype`).
DTYPES = ("auto", "float32", "bfloat16")


def _opt(default, help: str, **metadata):
    return field(default=default, metadata={"help": help, **metadata})


@dataclass(frozen=True)
class ServeConfig:
    """How the kit's OpenAI-compatible server runs. Invalid values raise ``ValueError`` naming the flag.

    Examples
    --------
    >>> ServeConfig().max_batch_size, ServeConfig(max_batch_size=1).max_batch_size
    (16, 1)
    >>> ServeConfig(max_batch_size=1).cli_args()[:4]
    ['--host', '127.0.0.1', '--port', '8000']
    >>> ServeConfig(max_batch_size=64, max_step_tokens=32)
    Traceback (most recent call last):
    ...
    ValueError: --max-step-tokens (32) must exceed --max-batch-size (64): a step holds one decode token per running request plus prompt chunks; raise --max-step-tokens or lower --max-batch-size
    """

    host: str = _opt("127.0.0.1", "interface to listen on (0.0.0.0 = every interface)")
    port: int = _opt(8000, "TCP port")
    max_batch_size: int = _opt(16, "most requests decoded together (1 = naive, no batching)", min=1)
    max_wait_ms: float = _opt(5.0, "longest a request waits for companions before it joins", min=0)
    max_queue: int = _opt(128, "most waiting requests; past it clients get HTTP 429", min=1)
    max_body_bytes: int = _opt(2 * 1024 * 1024, "larger request bodies get HTTP 413", min=1024)
    default_max_tokens: int = _opt(512, "completion budget when a request sets none", min=1)
    max_step_tokens: int = _opt(256, "most tokens per forward pass (decode + prompt chunks)", min=2)
    prefix_cache: bool = _opt(True, "reuse the KV cache of shared prompt prefixes")
    threads: int | None = _opt(None, "torch threads (default: $OMP_NUM_THREADS, else every core)", min=1)
    device: str = _opt("cpu", "cpu | cuda | mps | auto")
    dtype: str = _opt("auto", "auto | float32 | bfloat16 (auto: bfloat16 on a CPU that computes it natively, "
                              "AVX512-BF16 or AMX, or a GPU that supports it; float32 elsewhere)")
    compile: bool = _opt(False, "compile the layers' dense blocks with torch.compile (adds seconds to start-up; "
                                "falls back to eager mode, with a warning, where compilation fails)")
    native: bool = _opt(True, "run the engine's steps with its native (C) step, built at start-up with the "
                              "system's C compiler (falls back to the PyTorch step, with a warning, where it "
                              "cannot be built)")
    embedder: bool = _opt(True, "also load MiniLM and serve /v1/embeddings (--no-embedder: chat only, "
                                "starts seconds sooner)")
    log_level: str = _opt("info", "debug | info | warning | error")
    grace_period: float = _opt(GRACE_PERIOD_S, "seconds running requests get to finish when the server is "
                                               "stopped; then they get a retryable 503", min=0)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value, low = getattr(self, f.name), f.metadata.get("min")
            if low is not None and value is not None and not value >= low:
                raise ValueError(f"{flag(f.name)} must be >= {low}, got {value!r}")
        if self.max_step_tokens <= self.max_batch_size:
            raise ValueError(f"--max-step-tokens ({self.max_step_tokens}) must exceed --max-batch-size "
                             f"({self.max_batch_size}): a step holds one decode token per running request plus "
                             "prompt chunks; raise --max-step-tokens or lower --max-batch-size")
        if self.dtype not in DTYPES:
            raise ValueError(f"--dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.log_level not in ("debug", "info", "warning", "error"):
            raise ValueError(f"--log-level must be debug, info, warning or error, got {self.log_level!r}")

    def cli_args(self) -> list[str]:
        """The ``tradeoffs serve`` flags that reproduce this configuration (``None`` fields left out)."""
        args: list[str] = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool):
                args.append(flag(f.name) if value else flag(f.name).replace("--", "--no-", 1))
            elif value is not None:
                args += [flag(f.name), f"{value:g}" if isinstance(value, float) else str(value)]
        return args


def flag(name: str) -> str:
    """The command-line flag of a :class:`ServeConfig` field.

    >>> flag("max_batch_size")
    '--max-batch-size'
    """
    return "--" + name.replace("_", "-")


def help_text(name: str) -> str:
    """The help text of a :class:`ServeConfig` field (``tradeoffs serve --help`` shows it)."""
    return {f.name: f.metadata["help"] for f in dataclasses.fields(ServeConfig)}[name]


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU computes bfloat16 natively (the ``avx512_bf16`` or ``amx_bf16`` flag).

    Without either flag, bfloat16 matrix multiplies are emulated through float32 and run slower than
    float32 itself, so the server keeps float32 there. Reads ``/proc/cpuinfo`` (Linux); elsewhere
    the answer is False.

    Parameters
    ----------
    cpuinfo : str, optional
        The text of ``/proc/cpuinfo`` (read from the machine when omitted; given by the tests).

    Examples
    --------
    >>> cpu_has_native_bf16("flags : fpu sse2 avx2 avx512f avx512_bf16 amx_tile")
    True
    >>> cpu_has_native_bf16("flags : fpu sse2 avx2 fma")
    False
    """
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
                cpuinfo = fh.read()
        except OSError:
            return False
    flags = set()
    for line in cpuinfo.splitlines():
        if line.split(":", 1)[0].strip() in ("flags", "Features"):
            flags.update(line.split(":", 1)[1].split())
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def resolve_dtype(dtype: str, device: str = "cpu", *, cpuinfo: str | None = None) -> str:
    """The dtype the server runs in: ``dtype`` itself, or for ``"auto"`` the fastest exact-enough one.

    ``auto`` means bfloat16 on a CPU with native bfloat16 (:func:`cpu_has_native_bf16`) and on a
    CUDA GPU that supports it, float32 everywhere else (half the bytes per weight only pays where the
    hardware computes in it).

    Examples
    --------
    >>> resolve_dtype("float32"), resolve_dtype("auto", "cpu", cpuinfo="flags : avx512_bf16")
    ('float32', 'bfloat16')
    >>> resolve_dtype("auto", "cpu", cpuinfo="flags : avx2")
    'float32'
    >>> resolve_dtype("half")
    Traceback (most recent call last):
    ...
    ValueError: --dtype must be one of auto, float32, bfloat16, got 'half'
    """
    if dtype not in DTYPES:
        raise ValueError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if dtype != "auto":
        return dtype
    if str(device).startswith("cuda"):
        import torch

        return "bfloat16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "float32"
    if str(device) == "cpu":
        return "bfloat16" if cpu_has_native_bf16(cpuinfo) else "float32"
    return "float32"
