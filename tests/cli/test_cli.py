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


def _link_or_copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)


@pytest.mark.skipif(not (models.cache_dir() / "wheels" / models.CHAT_WHEEL_FILENAME).exists(),
                    reason="needs the chat model's wheel in the kit cache (run `tradeoffs models prepare`)")
def test_killed_prepare_leaves_nothing_the_next_run_keeps(tmp_path, monkeypatch):
    """kill -9 of a real `tradeoffs models prepare` in the middle of its work (the wheel is already
    cached, so nothing is downloaded): the next run removes the dead run's temporary files."""
    import signal
    import time

    wheel = models.cache_dir() / "wheels" / models.CHAT_WHEEL_FILENAME
    cache = tmp_path / "cache"
    _link_or_copy(wheel, cache / "wheels" / models.CHAT_WHEEL_FILENAME)
    env = {**os.environ, models.CACHE_ENV: str(cache)}
    proc = subprocess.Popen(TRADEOFFS + ["models", "prepare"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)

    def debris() -> list[Path]:
        found = []
        for sub in ("artifacts", "models", "wheels"):
            folder = cache / sub
            if folder.is_dir():
                found += [p for p in folder.iterdir() if models._OWNED_TEMP.match(p.name)]
        return found

    def mid_write() -> bool:  # a temporary folder, or a temporary file with some megabytes in it
        for p in debris():
            try:
                if p.is_dir() or p.stat().st_size > 4 << 20:
                    return True
            except FileNotFoundError:  # renamed into place just now
                pass
        return False

    try:
        deadline = time.monotonic() + 60
        while not mid_write() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert mid_write(), "prepare ended or stalled before writing any temporary file"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    left = debris()
    assert left and all(f"-{proc.pid}-" in p.name for p in left), left

    # The next run (in this process; the slow conversion replaced by a stand-in) sweeps them.
    monkeypatch.setenv(models.CACHE_ENV, str(cache))

    def stand_in(gguf, out_dir, progress):
        (out_dir / "model.safetensors").write_bytes(b"converted")

    monkeypatch.setattr(models, "_convert_gguf", stand_in)
    path = models.prepare_chat_model(progress=False)
    assert models.chat_model_ready() and (path / "model.safetensors").read_bytes() == b"converted"
    assert not debris()
    assert models.verify_chat_gguf() == models.chat_gguf_path()
    leftovers = [p for p in cache.rglob(".*") if p.name != ".lock"]
    assert not leftovers, leftovers
