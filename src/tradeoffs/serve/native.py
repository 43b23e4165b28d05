"""The engine's native step: ``decode.c`` built with the system's C compiler, called through ctypes.

Serving spends most of its time in steps of a few rows: one per decoding request, plus the prompt
chunks prefilled beside them. Such a step is bound by reading the weights, and
:class:`PackedLlama`'s PyTorch forward spends about half of it elsewhere: some 40 small operations
per layer, each with its own dispatch, and matrix kernels not tuned for a few rows. ``decode.c``
does the same computation (same rounding points, float32 sums) as one parallel region per step,
streaming each weight matrix once for all the rows (see its header). The engine uses it for steps
of up to ``engine.NATIVE_ROWS`` tokens.

It is built once per machine, at server start-up: ``cc -O3 -march=native -fopenmp`` into the kit's
cache (``~/.cache/tradeoffs/native/<hash>/``; the hash covers the source, the flags, the compiler and
the CPU's feature flags, so a cache shared by two kinds of machine keeps one build per kind). Where
there is no C compiler, no OpenMP, or the build fails, :func:`build` raises :class:`NativeUnavailable`
with the reason, and the engine logs it and runs the PyTorch path: the same computation, only slower
(in bfloat16 the two differ in the last bits, so a near-tie between two tokens can go either way). ``tradeoffs serve --no-native`` chooses the PyTorch path.

The library links the same OpenMP runtime as torch (``libgomp.so.1``, already loaded by torch), so
the two share one pool of threads.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any, Sequence

import torch

from .. import files, models
from .llama import _signed_sin

__all__ = ["NativeUnavailable", "NativeDecoder", "build", "SOURCE"]

log = logging.getLogger("tradeoffs.serve")

SOURCE = Path(__file__).with_name("decode.c")
FLAGS = ("-O3", "-march=native", "-fopenmp", "-shared", "-fPIC")
_DTYPES = {torch.bfloat16: 1, torch.float32: 0}


class NativeUnavailable(RuntimeError):
    """The native step cannot run here; the message says why (the engine then runs the PyTorch path)."""


def _compiler() -> str:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    raise NativeUnavailable("no C compiler found (install gcc, or set CC to one)")


def _cpu_features() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


def build(cache: str | os.PathLike | None = None) -> Path:
    """Compile ``decode.c`` (once per source, compiler and CPU) and return the shared library's path.

    Raises
    ------
    NativeUnavailable
        No compiler, or the compiler failed (its first error line is in the message).

    Examples
    --------
    >>> build().name                                     # doctest: +SKIP
    'libdecode.so'
    """
    cc = _compiler()
    source = SOURCE.read_bytes()
    key = hashlib.sha256(b"\0".join([source, " ".join(FLAGS).encode(), cc.encode(), _cpu_features().encode()]))
    folder = Path(cache) if cache is not None else models.cache_dir() / "native" / key.hexdigest()[:16]
    target = folder / "libdecode.so"
    if target.exists():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with files.atomic_file(target, mode=0o755) as tmp:
        try:
            done = subprocess.run([cc, *FLAGS, "-o", str(tmp), str(SOURCE), "-lm"], capture_output=True, text=True,
                                  timeout=120)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise NativeUnavailable(f"{Path(cc).name} could not run: {exc}") from None
        if done.returncode != 0:
            first = next((ln for ln in done.stderr.splitlines() if "error" in ln), done.stderr.strip()[:200])
            raise NativeUnavailable(f"{Path(cc).name} failed to build {SOURCE.name}: {first}")
    return target


_P = ctypes.c_void_p


class _Model(ctypes.Structure):
    """``Model`` in decode.c: the shapes and where every weight lives."""

    _fields_ = [(name, ctypes.c_int) for name in
                ("n_layers", "hidden", "heads", "kv_heads", "head_dim", "inter", "vocab", "bf16", "blocked", "amx")] + [
        ("embed", _P), ("ln1", ctypes.POINTER(_P)), ("ln2", ctypes.POINTER(_P)),
        ("eps1", ctypes.POINTER(ctypes.c_float)), ("eps2", ctypes.POINTER(ctypes.c_float)),
        ("w_qkv", ctypes.POINTER(_P)), ("b_qkv", ctypes.POINTER(_P)), ("w_o", ctypes.POINTER(_P)),
        ("b_o", ctypes.POINTER(_P)), ("w_gu", ctypes.POINTER(_P)), ("b_gu", ctypes.POINTER(_P)),
        ("w_down", ctypes.POINTER(_P)), ("b_down", ctypes.POINTER(_P)), ("norm", _P), ("norm_eps", ctypes.c_float),
        ("lm_head", _P), ("lm_bias", _P), ("cos", ctypes.POINTER(ctypes.c_float)),
        ("sin", ctypes.POINTER(ctypes.c_float))]


def _blocked(weight: torch.Tensor) -> torch.Tensor:
    """``weight`` (N, K) copied into decode.c's blocked layout: (N/16, K/2, 16, 2), each block of 16 rows
    with every pair of columns side by side (see ``blocked_rows`` there).

    >>> w = torch.arange(32 * 4).reshape(32, 4)
    >>> _blocked(w)[0, 0].tolist()[:3]     # rows 0, 1, 2 of block 0: columns 0 and 1
    [[0, 1], [4, 5], [8, 9]]
    """
    n, k = weight.shape
    return weight.view(n // 16, 16, k // 2, 2).permute(0, 2, 1, 3).contiguous()


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _pointers(tensors: Sequence[torch.Tensor | None]) -> ctypes.Array:
    return (_P * len(tensors))(*[_ptr(t) for t in tensors])


class NativeDecoder:
    """The forward step of a :class:`~.llama.PackedLlama` in C: decode rows and prompt chunks.

    Parameters
    ----------
    net : PackedLlama
        Its fused (not prepacked) weights are read in place, except in bfloat16 on a CPU with bf16
        dot products, where the five projections are copied once into decode.c's blocked layout.
    context_length : int
        Positions to prepare rotary tables for.
    library : path, optional
        A built ``decode.c`` (default: :func:`build`).

    Raises
    ------
    NativeUnavailable
        The model's dtype or device is not supported, or the library cannot be built or loaded.

    Examples
    --------
    >>> dec = NativeDecoder(engine.net, engine.context_length)                  # doctest: +SKIP
    >>> logits = dec([token], [position], [slot], engine._keys, engine._values)  # (1, vocab) float32  # doctest: +SKIP
    """

    def __init__(self, net: Any, context_length: int, library: str | os.PathLike | None = None) -> None:
        dtype, device = net.embed.dtype, net.embed.device
        if device.type != "cpu" or dtype not in _DTYPES:
            raise NativeUnavailable(f"the native step runs float32 or bfloat16 on a CPU, not {dtype} on {device.type}")
        if net.heads % net.kv_heads or net.head_dim % 2:
            raise NativeUnavailable("the model's attention heads do not split evenly into key/value groups")
        layers = net.layers
        weights = [t for L in layers for t in (L.ln1, L.ln2, L.w_qkv, L.w_o, L.w_gu, L.w_down)]
        weights += [net.embed, net.norm, net.lm_head]
        if any(not t.is_contiguous() or t.dtype != dtype for t in weights):
            raise NativeUnavailable("a weight is not a contiguous tensor of the model's dtype")
        path = Path(library) if library is not None else build()
        try:
            self._lib = ctypes.CDLL(str(path))
        except OSError as exc:
            raise NativeUnavailable(f"could not load {path.name}: {exc}") from None
        # bfloat16 products run on 16-row blocks where the CPU has bf16 dot products (a copy of the
        # weights, as large as the model, made once here); float32 and other CPUs read the weights in place.
        mats = [w for L in layers for w in (L.w_qkv, L.w_o, L.w_gu, L.w_down)] + [net.lm_head]
        self.blocked = bool(dtype == torch.bfloat16 and self._lib.blocked_layout()
                            and all(w.shape[0] % 16 == 0 and w.shape[1] % 2 == 0 for w in mats))
        # and on AMX tiles where the CPU has them and the OS grants them (up to 16 sequences a step)
        self.amx = bool(self.blocked and self._lib.amx_available() and all(w.shape[1] % 32 == 0 for w in mats))
        lay = _blocked if self.blocked else (lambda w: w)
        with torch.inference_mode():
            proj = [(lay(L.w_qkv), lay(L.w_o), lay(L.w_gu), lay(L.w_down)) for L in layers]
            head = lay(net.lm_head)
        self._lib.forward_step.restype = ctypes.c_int
        self._lib.forward_step.argtypes = [ctypes.POINTER(_Model), ctypes.c_int, _P, _P, _P, ctypes.c_int, _P,
                                           ctypes.POINTER(_P), ctypes.POINTER(_P), ctypes.c_int, ctypes.c_int, _P]
        with torch.inference_mode():
            # Rotary tables for every position, in the model's dtype as the PyTorch path rounds them.
            pos = torch.arange(int(context_length))[None]
            cos, sin = (t[0] for t in net.rotary(net.embed[:1], pos))
            self._cos, self._sin = cos.float().contiguous(), _signed_sin(sin).float().contiguous()
        self._keep = [self._cos, self._sin, proj, head]  # keep every array the structure points into alive
        self.vocab = int(net.lm_head.shape[0])
        self.context_length = int(context_length)

        def array(ts):
            arr = _pointers(ts)
            self._keep.append(arr)
            return arr

        floats = lambda xs: (ctypes.c_float * len(xs))(*xs)  # noqa: E731
        eps1, eps2 = floats([L.eps1 for L in layers]), floats([L.eps2 for L in layers])
        self._keep += [eps1, eps2]
        self._model = _Model(
            len(layers), net.embed.shape[1], net.heads, net.kv_heads, net.head_dim, layers[0].w_down.shape[1],
            self.vocab, _DTYPES[dtype], int(self.blocked), int(self.amx), _ptr(net.embed), array([L.ln1 for L in layers]),
            array([L.ln2 for L in layers]), eps1, eps2, array([p[0] for p in proj]),
            array([L.b_qkv for L in layers]), array([p[1] for p in proj]), array([L.b_o for L in layers]),
            array([p[2] for p in proj]), array([L.b_gu for L in layers]), array([p[3] for p in proj]),
            array([L.b_down for L in layers]), _ptr(net.norm), float(net.norm_eps), _ptr(head),
            _ptr(net.lm_bias), ctypes.cast(self._cos.data_ptr(), ctypes.POINTER(ctypes.c_float)),
            ctypes.cast(self._sin.data_ptr(), ctypes.POINTER(ctypes.c_float)))
        self._cache_ptrs: tuple = ()  # data pointers of the engine's caches the arrays below were made for
        self._keys = self._values = None

    def __call__(self, tokens: Sequence[int], positions: Sequence[int], slots: Sequence[int],
                 keys: Sequence[torch.Tensor], values: Sequence[torch.Tensor],
                 keep: Sequence[int] | None = None) -> torch.Tensor:
        """Next-token logits ``(len(keep), vocab)``, float32; writes every row's keys and values.

        Row ``i`` feeds ``tokens[i]`` at ``positions[i]`` of the sequence in slot ``slots[i]`` of
        ``keys[layer]`` and ``values[layer]``, the engine's ``(slots, kv_heads, capacity, head_dim)``
        caches in the model's dtype. A decoding sequence is one row; a prompt chunk is several rows of
        one slot at consecutive positions, whose earlier positions are already in the cache. ``keep``
        lists the rows whose logits are wanted (default: every row).
        """
        if not len(tokens) == len(positions) == len(slots) >= 1:
            raise ValueError("tokens, positions and slots must have the same, non-zero length")
        keep = range(len(tokens)) if keep is None else keep
        if keep and (min(keep) < 0 or max(keep) >= len(tokens)):
            raise ValueError(f"keep lists rows by index, each below {len(tokens)}")
        capacity = keys[0].shape[2]
        if max(positions) >= min(capacity, self.context_length):
            raise ValueError(f"position {max(positions)} is past the cache ({capacity} columns)")
        where = tuple(t.data_ptr() for t in (*keys, *values))
        if where != self._cache_ptrs:  # the engine reallocated its caches (grown or freed)
            self._cache_ptrs, self._keys, self._values = where, _pointers(keys), _pointers(values)
        index = torch.tensor([list(tokens), list(positions), list(slots)], dtype=torch.int64)
        kept = torch.tensor(list(keep), dtype=torch.int64)
        logits = torch.empty((len(kept), self.vocab), dtype=torch.float32)
        failed = self._lib.forward_step(ctypes.byref(self._model), len(tokens), index[0].data_ptr(),
                                        index[1].data_ptr(), index[2].data_ptr(), len(kept), kept.data_ptr(),
                                        self._keys, self._values, capacity, torch.get_num_threads(),
                                        logits.data_ptr())
        if failed:
            raise MemoryError("the native step could not allocate its buffers")
        return logits
