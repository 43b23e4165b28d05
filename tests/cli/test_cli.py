"""The `tradeoffs` command: doctor, models, run (subprocess, as a user would type it)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tradeoffs import models

TRADEOFFS = [sys.executable, "-m", "tradeoffs.cli"]


def _run(args, env_extra=None, timeout=300):
    env = dict(os.environ)
    env.update(env_extra or {})
    return subprocess.run(TRADEOFFS + args, capture_output=True, text=True, env=env, timeout=timeout)


@pytest.mark.models
def test_doctor_passes_here():
    proc = _run(["doctor"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "all checks passed" in proc.stdout
    assert "replied" in proc.stdout


def test_doctor_fails_with_unwritable_cache(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = _run(["doctor", "--no-load"], {models.CACHE_ENV: str(blocker / "cache")})
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "not writable" in out and "tradeoffs models prepare" in out


def test_doctor_fails_on_corrupted_gguf_and_leaves_no_partial_model(tmp_path):
    cache = tmp_path / "cache"
    gguf = cache / "artifacts" / models.CHAT_GGUF_FILENAME
    gguf.parent.mkdir(parents=True)
    real = models.chat_gguf_path()
    if real.exists():
        shutil.copyfile(real, gguf)
        with open(gguf, "r+b") as fh:  # flip bytes in the middle of the weights
            fh.seek(50_000_000)
            fh.write(b"\x00" * 64)
    else:
        gguf.write_bytes(b"corrupted")
    proc = _run(["doctor", "--no-load"], {models.CACHE_ENV: str(cache)})
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "corrupted" in out and "tradeoffs models prepare --force" in out
    assert not (cache / "models" / models.CHAT_CACHE_DIRNAME).exists()
    assert not list((cache / "models").glob(".*tmp-*")) if (cache / "models").exists() else True


def test_models_list():
    proc = _run(["models", "list"])
    assert proc.returncode == 0
    assert models.CHAT_MODEL_ID in proc.stdout and models.EMBEDDER_ID in proc.stdout


def test_run_list_and_unknown_lab():
    proc = _run(["run", "--list"])
    assert proc.returncode == 0
    proc = _run(["run", "lab9_nonexistent"])
    assert proc.returncode == 2 and "unknown lab" in proc.stderr


def test_run_rejects_bad_mode():
    proc = _run(["run", "--mode", "fast"])
    assert proc.returncode != 0 and "--mode" in proc.stderr
