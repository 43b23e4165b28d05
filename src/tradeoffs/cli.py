"""The ``tradeoffs`` command: ``doctor``, ``models``, ``run`` (and ``serve``, ``grade``)."""

from __future__ import annotations

import logging
import dataclasses
import os
import platform
import sys
from pathlib import Path
from typing import Optional

import typer

from . import models
from .grading.config import GradeSettings
from .serve.config import ServeConfig, resolve_dtype
from .serve.config import help_text as serve_help

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
        serve_dtype = resolve_dtype(ServeConfig.dtype, dev.type)
        why = ("the CPU computes bfloat16 natively" if serve_dtype == "bfloat16" and dev.type == "cpu" else
               "no native bfloat16 on this CPU" if dev.type == "cpu" else f"default for {dev.type}")
        results.append(_check("serving dtype", True, f"{serve_dtype} ({why}; `tradeoffs serve --dtype` "
                                                     "overrides it)"))
        from .serve import native

        try:  # optional: without it the server decodes with its PyTorch step, the same computation, slower
            results.append(_check("serving step", True, f"native, built with the C compiler ({native.build()})"))
        except native.NativeUnavailable as exc:
            results.append(_check("serving step", True, f"PyTorch: the native step is unavailable ({exc}); "
                                                               "install gcc for a faster single-stream decode"))
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
        models.ensure_writable(root)
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
    root: Optional[Path] = typer.Option(None, help="course directory (default: the current one if it has "
                                                  "nbgrader_config.py, else this repository)"),
) -> None:
    """Execute lab solution notebooks headlessly (papermill) and print one line per lab."""
    from . import course, runner

    base = course.course_dir(root)
    try:
        available = course.existing_labs(base)
    except ValueError as exc:
        _fail(str(exc), code=2)
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
            nb = course.solution_notebook(lab, base)
        except (ValueError, FileNotFoundError) as exc:
            _fail(str(exc), code=2)
        result = runner.run_notebook(nb, out.resolve() / f"{lab}.ipynb", mode=mode, seed=seed, device=device)
        typer.echo(result.line())
        failed += not result.ok
    if failed:
        raise typer.Exit(1)


@app.command("release")
def release_cmd(
    labs: Optional[list[str]] = typer.Argument(None, help="lab ids (default: every lab with a solution)"),
    check: bool = typer.Option(False, "--check", help="only report labs/ folders out of date with solutions/"),
    root: Optional[Path] = typer.Option(None, help="course directory (default: the current one if it has "
                                                  "nbgrader_config.py, else this repository)"),
) -> None:
    """Regenerate labs/ (student versions) from solutions/ with nbgrader."""
    from . import grading

    try:
        if check:
            stale = grading.stale_labs(root)
            for lab, problems in stale.items():
                typer.echo(f"out of date: {lab}: " + "; ".join(problems))
            if stale:
                _fail("labs/ is out of date with solutions/; run `make release` (tradeoffs release)")
            typer.echo("labs/ is up to date with solutions/")
            return
        results = grading.release(root, labs)
    except grading.GradingError as exc:
        _fail(str(exc))
    if not results:
        typer.echo("no lab solution notebooks exist yet under solutions/")
    for r in results:
        typer.echo(f"{'updated  ' if r.changed else 'unchanged'} {r.lab:<38} -> {r.path}")


@app.command("grade")
def grade_cmd(
    submissions: Path = typer.Argument(..., help="folder with one sub-folder per student"),
    workers: int = typer.Option(GradeSettings.workers, help="parallel grading processes (one kernel each)"),
    labs: Optional[list[str]] = typer.Option(None, "--lab", help="grade only this lab (repeatable)"),
    root: Optional[Path] = typer.Option(None, help="course directory (default: the current one if it has "
                                                  "nbgrader_config.py, else this repository)"),
    csv_path: Optional[Path] = typer.Option(None, "--csv", help="grades CSV (default: grades.csv in the course)"),
    cell_timeout: Optional[int] = typer.Option(None, help="seconds per cell (default: nbgrader_config.py)"),
    job_timeout: int = typer.Option(GradeSettings.job_timeout, help="seconds per submission before it is stopped"),
    progress: bool = typer.Option(True, help="show a progress bar"),
    allow_limits_only: bool = typer.Option(
        False, "--allow-limits-only",
        help="grade even where this machine gives no namespaces (resource limits only: student code can "
             "read and change whatever this account can; see docs/instructor.md, 'Untrusted code')"),
) -> None:
    """Autograde every submission in parallel; write feedback, the gradebook and a grades CSV."""
    from . import grading
    from .grading import sandbox

    grading.fast_imports()
    settings = grading.GradeSettings(workers=workers, cell_timeout=cell_timeout, job_timeout=job_timeout,
                                     allow_limits_only=allow_limits_only)
    typer.echo(f"isolation: {sandbox.describe_isolation(sandbox.detect_isolation())}")
    try:
        results = grading.grade(submissions, root=root, labs=labs, settings=settings, csv_path=csv_path,
                                progress=progress)
    except grading.GradingError as exc:
        _fail(str(exc), code=2)
    for r in sorted(results, key=lambda r: (r.student, r.lab)):
        note = f"  {r.reason}" if r.reason else ""
        typer.echo(f"{r.student:<20} {r.lab:<38} {r.status:<8} {r.score:6.1f} / {r.max_auto_score:g}{note}")
    root_dir = grading.course_root(root)
    typer.echo(f"grades: {csv_path or root_dir / grading.GRADES_CSV}; feedback: {root_dir / 'feedback'}; "
               f"gradebook: {root_dir / grading.GRADEBOOK}")


def _serve_option(name: str, **extra):
    """A ``tradeoffs serve`` option whose default and help come from :class:`ServeConfig`'s field."""
    low = {f.name: f.metadata.get("min") for f in dataclasses.fields(ServeConfig)}[name]
    return typer.Option(getattr(ServeConfig, name), help=serve_help(name), **({"min": low} if low is not None else {}),
                        **extra)


@app.command()
def serve(
    port: int = _serve_option("port"),
    host: str = _serve_option("host"),
    max_batch_size: int = _serve_option("max_batch_size"),
    max_wait_ms: float = _serve_option("max_wait_ms"),
    max_queue: int = _serve_option("max_queue"),
    max_body_bytes: int = _serve_option("max_body_bytes"),
    default_max_tokens: int = _serve_option("default_max_tokens"),
    max_step_tokens: int = _serve_option("max_step_tokens"),
    prefix_cache: bool = _serve_option("prefix_cache"),
    threads: Optional[int] = _serve_option("threads"),
    device: str = _serve_option("device"),
    dtype: str = _serve_option("dtype"),
    compile: bool = _serve_option("compile"),
    native: bool = _serve_option("native"),
    embedder: bool = _serve_option("embedder"),
    log_level: str = _serve_option("log_level"),
    grace_period: float = _serve_option("grace_period"),
) -> None:
    """Serve the chat model and the embedder with an OpenAI-compatible API.

    Stopping (SIGTERM or Ctrl-C) is bounded: new connections are refused at once, queued requests
    get a retryable 503 (OpenAI's error shape, with Retry-After) at once, running requests get up
    to --grace-period seconds to finish and then the same 503 (a stream: an error event, then the
    end), and the server exits. A second SIGTERM or Ctrl-C stops it at once.
    """
    # Before torch loads: idle OpenMP threads sleep after a brief spin instead of spinning on, which
    # keeps a shared or oversubscribed CPU from collapsing (measured: 2 spinning threads ran 6x slower
    # than 1 there) without waking a worker for every operation of a step (threads.SERVE_ENV).
    from .threads import SERVE_ENV

    for name, value in SERVE_ENV.items():
        os.environ.setdefault(name, value)
    from .serve.app import run_server

    try:
        config = ServeConfig(host=host, port=port, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms,
                             max_queue=max_queue, max_body_bytes=max_body_bytes,
                             default_max_tokens=default_max_tokens, max_step_tokens=max_step_tokens,
                             prefix_cache=prefix_cache, threads=threads, device=device, dtype=dtype,
                             compile=compile, native=native, embedder=embedder,
                             log_level=log_level, grace_period=grace_period)
    except ValueError as exc:
        _fail(f"serve: {exc}", code=2)
    try:
        run_server(config)
    except models.ModelArtifactError as exc:
        _fail(f"serve failed: {exc}")
    except KeyboardInterrupt:  # Ctrl-C while the models were still loading: nothing to drain
        raise typer.Exit(130)
    # Stopped cleanly: every client has its answer and the log is written. Skip the interpreter's
    # teardown, whose garbage collection of the loaded models took 5-6 s on a busy 2-core machine
    # and would push the exit past the grace period.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
