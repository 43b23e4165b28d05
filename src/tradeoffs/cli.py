"""The ``tradeoffs`` command: ``doctor``, ``models``, ``run`` (and ``serve``, ``grade``)."""

from __future__ import annotations

import os
import platform
import shutil
import sys
from pathlib import Path
from typing import Optional

import typer

from . import models

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Production AI Trade-offs course kit: check, prepare, run and grade.")
models_app = typer.Typer(no_args_is_help=True, help="The kit's offline models.")
app.add_typer(models_app, name="models")


def _fail(message: str, code: int = 1) -> None:
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


@models_app.command("prepare")
def models_prepare(force: bool = typer.Option(False, "--force", help="fetch and convert again")) -> None:
    """Fetch, verify and convert the chat model into the cache (idempotent)."""
    try:
        path = models.prepare_chat_model(force=force)
        emb = models.embedder_dir()
    except models.ModelArtifactError as exc:
        _fail(f"models prepare failed: {exc}")
    typer.echo(f"chat model ready: {path}")
    typer.echo(f"embedder ready:   {emb}")


@models_app.command("list")
def models_list() -> None:
    """List the kit's models, their licences and whether they are ready."""
    for m in models.model_catalogue():
        typer.echo(f"{m['id']:<24} {m['licence']:<11} ready={m['ready']}\n    source:   {m['source']}\n"
                   f"    location: {m['location']}")


def _check(name: str, ok: bool, detail: str, fix: str = "") -> bool:
    mark = typer.style("ok  ", fg=typer.colors.GREEN) if ok else typer.style("FAIL", fg=typer.colors.RED)
    typer.echo(f"[{mark}] {name:<18} {detail}")
    if not ok and fix:
        typer.echo(f"       fix: {fix}")
    return ok


@app.command()
def doctor(load: bool = typer.Option(True, help="load both models and run them once")) -> None:
    """Check Python, torch, device, memory, versions, the cache and both models."""
    import importlib.metadata as md

    results = []
    py_ok = sys.version_info[:2] >= (3, 11)
    results.append(_check("python", py_ok, platform.python_version(),
                          "install Python 3.11 and run `make install`"))
    try:
        import torch

        results.append(_check("torch", True, torch.__version__))
        dev = models.pick_device("auto")
        gpu = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "no GPU (CPU is the reference)"
        results.append(_check("device", True, f"{dev}  ({gpu})"))
    except Exception as exc:  # broken torch install
        results.append(_check("torch", False, str(exc), "run `make install`"))
    try:
        import psutil

        mem = psutil.virtual_memory().total / 2**30
        results.append(_check("machine", mem >= 7.5, f"{os.cpu_count()} cores, {mem:.1f} GiB RAM",
                              "the labs need about 8 GiB of memory"))
    except ImportError:
        results.append(_check("machine", True, f"{os.cpu_count()} cores"))
    versions = []
    for pkg in ("transformers", "nbgrader", "papermill", "openai", "pandas", "scikit-learn", "peft"):
        try:
            versions.append(f"{pkg} {md.version(pkg)}")
        except md.PackageNotFoundError:
            results.append(_check(pkg, False, "not installed", "run `make install`"))
    _check("packages", True, ", ".join(versions))
    root = models.cache_dir()
    try:
        models._ensure_writable(root)
        results.append(_check("cache", True, f"{root} (writable; set {models.CACHE_ENV} to move it)"))
    except models.ModelArtifactError as exc:
        results.append(_check("cache", False, str(exc)))
    gguf = models.chat_gguf_path()
    if gguf.exists():
        try:
            models.verify_chat_gguf(gguf)
            results.append(_check("chat GGUF", True, f"{gguf} (sha256 verified)"))
        except models.ModelArtifactError as exc:
            results.append(_check("chat GGUF", False, str(exc), f"{models.FIX_PREPARE} --force"))
    ready = models.chat_model_ready()
    results.append(_check("chat model", ready, str(models.chat_model_dir()) if ready else "not prepared",
                          models.FIX_PREPARE))
    try:
        results.append(_check("embedder", True, str(models.embedder_dir())))
    except models.ModelArtifactError as exc:
        results.append(_check("embedder", False, str(exc)))
    if load and all(results):
        try:
            chat = models.load_chat_model("cpu")
            reply = chat.generate([{"role": "user", "content": "Say hello."}], max_new_tokens=8)[0]
            results.append(_check("chat loads", True, f"{models.CHAT_MODEL_NAME} replied {reply!r}"))
            vec = models.load_embedder("cpu").encode(["hello"])
            results.append(_check("embedder loads", vec.shape == (1, 384), f"{models.EMBEDDER_NAME} -> {vec.shape}"))
        except Exception as exc:
            results.append(_check("models load", False, f"{type(exc).__name__}: {exc}",
                                  f"{models.FIX_PREPARE} --force"))
    if not all(results):
        _fail("doctor found problems; apply the fixes above and run `tradeoffs doctor` again")
    typer.secho("all checks passed", fg=typer.colors.GREEN)


@app.command()
def run(
    labs: Optional[list[str]] = typer.Argument(None, help="lab ids (default: every lab that exists)"),
    mode: str = typer.Option("full", help="full | smoke"),
    out: Path = typer.Option(Path("build"), help="where executed notebooks go"),
    device: str = typer.Option("auto"),
    seed: int = typer.Option(0),
    list_only: bool = typer.Option(False, "--list", help="only list the labs that exist"),
) -> None:
    """Execute lab solution notebooks headlessly (papermill) and print one line per lab."""
    from . import execute

    available = execute.existing_labs()
    if list_only:
        for lab in available:
            typer.echo(lab)
        return
    if mode not in ("full", "smoke"):
        _fail(f"--mode must be 'full' or 'smoke', got {mode!r}")
    chosen = labs or available
    if not chosen:
        typer.echo("no lab solution notebooks exist yet under solutions/")
        return
    failed = 0
    for lab in chosen:
        try:
            nb = execute.solution_notebook(lab)
        except (ValueError, FileNotFoundError) as exc:
            _fail(str(exc), code=2)
        result = execute.run_notebook(nb, out.resolve() / f"{lab}.ipynb", mode=mode, seed=seed, device=device)
        typer.echo(result.line())
        failed += not result.ok
    if failed:
        raise typer.Exit(1)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
