"""The guarded, sandboxed ``Execute`` preprocessor that runs a submission's kernel.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import re
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

from . import sandbox
from ..course import repo_root
from ..threads import thread_env
from .config import GradeSettings
from .results import _atomic_write_text


# The guard's source (guard.py), executed in a fresh namespace inside the kernel.
GUARD_SOURCE = (Path(__file__).with_name("guard.py")).read_text(encoding="utf-8")
GUARD_INSTALL = ("_tradeoffs_guard_result = (lambda g: (exec(compile(" + repr(GUARD_SOURCE)
                 + ", '<tradeoffs guard>', 'exec'), g), g['install']())[1])({})")

GUARD_BEFORE = ('_tradeoffs_guard_result = repr(__import__("sys").modules["_tradeoffs_guard"]'
                '.restore(get_ipython().user_ns, {names!r}))')
GUARD_AFTER = ('__import__("sys").modules["_tradeoffs_guard"].unhide(get_ipython().user_ns); '
               '_tradeoffs_guard_result = repr(__import__("sys").modules["_tradeoffs_guard"].ids())')
GUARD_CLEANUP = "_tradeoffs_guard_result = None; del _tradeoffs_guard_result"
# CPU seconds the kernel and everything it started have used (for the grading benchmark).
CPU_PROBE = r'''
def __tradeoffs_cpu():
    import psutil
    me = psutil.Process()
    total = sum(me.cpu_times()[:4])
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.Error:
            pass
    return repr(total)
_tradeoffs_guard_result = __tradeoffs_cpu()
del __tradeoffs_cpu
'''

def _kernel_environment(workdir: Path, cache: Path, threads: int | None) -> dict[str, str]:
    """What the sandboxed kernel's environment sets on top of the allow-listed variables it keeps
    (:data:`tradeoffs.grading.sandbox.DEFAULT_ENV_ALLOW`: no API keys, no tokens)."""
    env = {
        "HOME": str(workdir), "IPYTHONDIR": str(workdir / ".ipython"),
        "MPLCONFIGDIR": str(workdir / ".config" / "matplotlib"),
        "XDG_CACHE_HOME": str(workdir / ".cache"), "XDG_CONFIG_HOME": str(workdir / ".config"),
        "JUPYTER_RUNTIME_DIR": str(workdir / ".runtime"), "TMPDIR": "/tmp",
        "TRADEOFFS_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
        "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1", "MPLBACKEND": "agg",
        # Idle OpenMP threads sleep instead of spinning: kernels share the cores with the other workers.
        # Measured without it, beside another job: lab 5 took 172 s of CPU per notebook instead of ~36 s.
        "OMP_WAIT_POLICY": "PASSIVE",
    }
    if threads:
        env.update(thread_env(threads))
    return env


def _prepare_workdir(workdir: Path, support_from: Path | None) -> Path:
    """Fill the kernel's work directory: support files, config dirs, a cache with the models linked."""
    workdir.mkdir(parents=True, exist_ok=True)
    if support_from is not None and support_from.is_dir():
        for item in support_from.iterdir():
            if item.suffix == ".ipynb" or item.name == "timestamp.txt" or item.is_symlink():
                continue
            target = workdir / item.name
            if item.is_dir():
                shutil.copytree(item, target, symlinks=False, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
            else:
                shutil.copy2(item, target)
    for sub in (".ipython", ".config/matplotlib", ".cache", ".runtime"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    mpl_cache = Path(os.environ.get("MPLCONFIGDIR", Path.home() / ".cache" / "matplotlib"))
    for font_cache in mpl_cache.glob("fontlist-*.json"):
        shutil.copy2(font_cache, workdir / ".config" / "matplotlib" / font_cache.name)
    cache = workdir / ".cache" / "tradeoffs"
    cache.mkdir(parents=True, exist_ok=True)
    return cache


def _model_binds(cache: Path) -> list[list[str]]:
    """Read-only views of the real model cache inside the sandbox's writable cache."""
    from .. import models

    real = models.cache_dir()
    binds = [[str(real / sub), str(cache / sub)] for sub in ("models", "artifacts", "wheels")
             if (real / sub).is_dir()]
    if os.geteuid() == 0:  # the kernel will run as a throwaway uid: it must be able to read them
        for source, _ in binds:
            _make_world_readable(Path(source))
    return binds


def _make_world_readable(root: Path) -> None:
    """``chmod a+rX`` a folder of public model files (a cache built with ``mkdtemp`` is 0700)."""
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        wanted = mode | 0o444 | (0o111 if path.is_dir() else 0)
        if wanted != mode:
            path.chmod(wanted)


class _KernelStopped(Exception):
    """The kernel died or had to be stopped; the rest of the notebook cannot run."""


def _make_sandbox_kernel_manager(spec: sandbox.SandboxSpec, spec_path: Path, kernel_name: str):
    from jupyter_client.manager import AsyncKernelManager

    class SandboxKernelManager(AsyncKernelManager):
        """A kernel manager whose kernel starts inside :mod:`tradeoffs.grading.sandbox` and talks over
        Unix sockets (the sandbox has no network, not even the host's loopback)."""

        def format_kernel_cmd(self, extra_arguments=None):
            cmd = super().format_kernel_cmd(extra_arguments)
            return spec.command(cmd, spec_path)

    workdir = Path(spec.workdir)
    return SandboxKernelManager(kernel_name=kernel_name, transport="ipc", ip=str(workdir / ".k"),
                                connection_file=str(workdir / ".kernel.json"), cache_ports=False)


def _execute_class():
    from nbgrader.preprocessors import Execute
    from nbgrader import utils as nbutils
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from nbformat.v4 import new_output
    from traitlets import Bool, Integer, List, Unicode

    class GuardedExecute(Execute):
        """nbgrader's ``Execute``, hardened for untrusted submissions.

        * The kernel starts inside :mod:`tradeoffs.grading.sandbox` (resource limits; where the OS allows,
          no network, its own PIDs, a read-only filesystem except its work directory, hidden
          solutions and gradebooks, an unprivileged user).
        * A cell that runs past ``timeout`` is interrupted; a kernel that ignores the interrupt for
          ``interrupt_grace`` seconds is stopped. A kernel that dies (``os._exit``, out of memory,
          CPU limit) or is stopped leaves the cells already run graded and every later cell failed,
          with the reason in its output, instead of failing the whole submission.
        * Output past ``max_output_chars`` per cell is dropped (a note says so).
        * Before every test cell, ``builtins`` and the numeric helpers tests rely on
          (``numpy.isclose``, ``numpy.testing``, ``math.isclose``, ...) are restored and names the
          test uses that the submission shadowed (``abs = ...``, ``np = ...``) are hidden; if they
          change *during* a test cell, that cell fails with an ``IntegrityError``. A test cell's
          ``execute_result`` counts as partial credit only when the test's own last line is an
          expression and the cell raised nothing.
        """

        sandbox = Bool(True, help="Run the kernel in tradeoffs.grading.sandbox.").tag(config=True)
        isolation = Unicode("auto", help="Sandbox level: auto, root, userns or limits.").tag(config=True)
        workdir = Unicode("", help="Kernel work directory (default: a fresh temporary one).").tag(config=True)
        hide = List(Unicode(), help="Paths invisible to student code.").tag(config=True)
        protect = List(Unicode(), help="Paths that must not be writable by student code.").tag(config=True)
        private = List(Unicode(), help="Folders hidden from student code except what the kernel needs "
                                       "(default: the grader's home).").tag(config=True)
        expose = List(Unicode(), help="Extra paths the kernel may read (Python and the kit always).").tag(config=True)
        cpu_seconds = Integer(GradeSettings.cpu_seconds, help="CPU-time limit of the kernel.").tag(config=True)
        memory_mb = Integer(GradeSettings.memory_mb, help="Memory limit of the kernel (MiB).").tag(config=True)
        threads = Integer(0, help="Threads per kernel for BLAS/OpenMP (0: library default).").tag(config=True)
        uid = Integer(65534, help="Throwaway uid when grading as root.").tag(config=True)
        guard = Bool(GradeSettings.guard, help="Restore and check builtins/numpy around test cells, and count a test "
                                "cell's execute_result only when honest.").tag(config=True)
        interrupt_grace = Integer(GradeSettings.interrupt_grace, help="Seconds a timed-out cell gets to stop after an interrupt.").tag(config=True)
        max_output_chars = Integer(1_000_000, help="Output kept per cell.").tag(config=True)
        report_path = Unicode("", help="Write a JSON report of the execution here.").tag(config=True)

        # ---------------------------------------------------------------- set-up
        def _sandbox_spec(self, workdir: Path, cache: Path) -> sandbox.SandboxSpec:
            limits = sandbox.Limits(cpu_seconds=int(self.cpu_seconds), memory_bytes=int(self.memory_mb) << 20)
            return sandbox.SandboxSpec(
                workdir=str(workdir), hide=list(self.hide), protect=list(self.protect),
                private=list(self.private) or [str(Path.home())],
                readonly_binds=_model_binds(cache),
                expose=sandbox.default_exposed_paths() + [str(repo_root())] + list(self.expose),
                limits=limits, isolation=self.isolation, uid=int(self.uid),
                env=_kernel_environment(workdir, cache, int(self.threads) or None))

        def preprocess(self, nb, resources=None, km=None):
            from nbclient import NotebookClient

            resources = resources if resources is not None else {}
            metadata = resources.setdefault("metadata", {})
            source_dir = Path(metadata.get("path") or os.getcwd())
            own_tmp = None
            if self.workdir:
                workdir = Path(self.workdir)
            else:
                own_tmp = tempfile.mkdtemp(prefix="tradeoffs-kernel-")
                workdir = Path(own_tmp) / "run"
            cache = _prepare_workdir(workdir, source_dir)
            self.report = {"kernel": "ok", "reason": "", "timeouts": [], "tampering": [],
                           "shadowed": [], "truncated": [], "isolation": "none", "cells_not_run": 0,
                           "seconds": {}}
            if self.sandbox:
                spec = self._sandbox_spec(workdir, cache)
                self.report["isolation"] = spec.resolved_isolation()
                spec_path = workdir.parent / f".{workdir.name}.sandbox.json"
                km = _make_sandbox_kernel_manager(spec, spec_path, self.kernel_name or
                                                  nb.metadata.get("kernelspec", {}).get("name", "python3"))
            metadata["path"] = str(workdir)
            try:
                NotebookClient.__init__(self, nb, km)
                # We interrupt timed-out cells ourselves and then decide whether the kernel lives.
                self.interrupt_on_timeout = False
                # The kernel and its work directory are thrown away: kill it once the cells have run
                # instead of a graceful shutdown (measured: 2.6 s of every graded notebook).
                self.shutdown_kernel = "immediate"
                self.raise_on_iopub_timeout = False
                self._output_chars, self._dropped = 0, set()
                self.reset_execution_trackers()
                self._check_assign_resources(resources)
                self._run_all(nb, resources)
            finally:
                metadata["path"] = str(source_dir)
                self._write_report()
                if own_tmp:
                    shutil.rmtree(own_tmp, ignore_errors=True)
            return self.nb, self.resources

        def _run_all(self, nb, resources) -> None:
            stopped = ""
            seconds = self.report["seconds"]
            mark = time.perf_counter()
            try:
                with self.setup_kernel(cleanup_kc=True, cwd=self.resources["metadata"]["path"]):
                    info = self.wait_for_reply(self.kc.kernel_info())
                    self.nb.metadata["language_info"] = info["content"]["language_info"]
                    seconds["start"] = time.perf_counter() - mark
                    mark = time.perf_counter()
                    self._pristine = self._install_guard() if self.guard else None
                    seconds["guard"] = time.perf_counter() - mark
                    mark = time.perf_counter()
                    for index, cell in enumerate(self.nb.cells):
                        if stopped:
                            self._fail_cell(cell, "NotRun", stopped)
                            continue
                        try:
                            self.preprocess_cell(cell, resources, index)
                        except _KernelStopped as exc:
                            stopped = str(exc)
                    seconds["cells"] = time.perf_counter() - mark
                    if not stopped:
                        with contextlib.suppress(_KernelStopped):
                            cpu = self._quiet(CPU_PROBE, timeout=30)
                            if isinstance(cpu, float):
                                seconds["cpu"] = cpu
                    self.set_widgets_metadata()
            except _KernelStopped as exc:  # the kernel died while starting up or installing the guard
                stopped = stopped or str(exc)
                for cell in self.nb.cells:
                    if not cell.get("outputs"):
                        self._fail_cell(cell, "NotRun", stopped)
            except RuntimeError as exc:  # kernel never became ready (sandbox could not start)
                raise RuntimeError(f"the kernel did not start: {exc}") from exc
            if stopped:
                self.report["kernel"] = "stopped"
                self.report["reason"] = stopped

        # ---------------------------------------------------------------- per cell
        def preprocess_cell(self, cell, resources, index):
            if cell.cell_type != "code" or not cell.source.strip():
                return cell, self.resources
            is_test = nbutils.is_grade(cell) and not nbutils.is_solution(cell)
            grade_id = (cell.metadata.get("nbgrader") or {}).get("grade_id", f"cell {index}")
            guard_failure = None
            if is_test and self._pristine is not None:
                guard_failure = self._guard_before(cell, grade_id)
            self._output_chars, self._dropped = 0, set()
            try:
                self.execute_cell(cell, index, store_history=True)
            except CellTimeoutError:
                seconds = self._get_timeout(cell)
                self.report["timeouts"].append(grade_id)
                self._fail_cell(cell, "CellTimeoutError",
                                f"this cell ran longer than the grader's limit of {seconds} s and was interrupted")
                if not self._recover_after_timeout():
                    self._add_truncation_notes(cell)
                    raise _KernelStopped(f"a cell ({grade_id}) ran past {seconds} s and ignored the interrupt; "
                                         f"the grader stopped the kernel")
            except DeadKernelError:
                reason = self._death_reason(grade_id)
                self._fail_cell(cell, "DeadKernelError", reason)
                self._add_truncation_notes(cell)
                raise _KernelStopped(reason)
            self._add_truncation_notes(cell)
            if is_test:
                if guard_failure:
                    self._fail_cell(cell, "IntegrityError", guard_failure)
                elif self._pristine is not None:
                    self._guard_after(cell, grade_id)
                if self.guard:
                    _neutralise_partial_credit(cell)
            return cell, self.resources

        def _fail_cell(self, cell, ename: str, message: str) -> None:
            if cell.cell_type != "code":
                return
            cell.setdefault("outputs", [])
            cell.outputs.append(new_output("error", ename=ename, evalue=message,
                                           traceback=[f"{ename}: {message}"]))
            if ename == "NotRun":
                self.report["cells_not_run"] += 1

        def _death_reason(self, grade_id: str) -> str:
            code = None
            with contextlib.suppress(Exception):
                code = self.km.provisioner.process.poll()
            detail = ""
            if code is not None:
                if code in (128 + signal.SIGXCPU, -signal.SIGXCPU):
                    detail = f" (CPU-time limit of {self.cpu_seconds} s reached)"
                elif code in (128 + signal.SIGKILL, -signal.SIGKILL):
                    detail = " (killed: out of memory or a resource limit)"
                elif code == sandbox.SETUP_FAILED:
                    detail = " (the sandbox could not start it)"
                else:
                    detail = f" (exit status {code})"
            return f"the kernel died while running {grade_id}{detail}; later cells were not run"

        def _recover_after_timeout(self) -> bool:
            """Interrupt; True if the kernel answers within the grace period, else stop it."""
            from jupyter_core.utils import run_sync

            async def recover() -> bool:
                with contextlib.suppress(Exception):
                    await self.km.interrupt_kernel()
                return await self._async_quiet_execute("pass", {}, float(self.interrupt_grace)) is not None

            if run_sync(recover)():
                return True
            with contextlib.suppress(Exception):
                run_sync(self.km.shutdown_kernel)(now=True)
            return False

        def _output_size(self, out) -> int:
            if out.get("output_type") == "stream":
                return len(out.get("text", ""))
            if out.get("output_type") == "error":
                return 0  # errors are always kept: they decide the grade
            return sum(len(v) if isinstance(v, str) else len(json.dumps(v)) for v in out.get("data", {}).values())

        def output(self, outs, msg, display_id, cell_index):
            from nbformat.v4 import output_from_msg

            with contextlib.suppress(ValueError):
                out = output_from_msg(msg)
                size = self._output_size(out)
                if self._output_chars + size > self.max_output_chars and out.get("output_type") != "error":
                    self._dropped.add(out.get("name", "display"))
                    return None
                self._output_chars += size
            return super().output(outs, msg, display_id, cell_index)

        def _add_truncation_notes(self, cell) -> None:
            if not self._dropped:
                return
            gid = (cell.metadata.get("nbgrader") or {}).get("grade_id", "cell")
            self.report["truncated"].append(gid)
            for name in sorted(self._dropped):
                stream = name if name in ("stdout", "stderr") else "stdout"
                cell.outputs.append(new_output("stream", name=stream, text=(
                    f"\n[grader: further {name} output of this cell was dropped after "
                    f"{self.max_output_chars:,} characters]\n")))
            self._dropped = set()

        # ---------------------------------------------------------------- the guard
        async def _async_quiet_execute(self, code: str, expressions: dict, timeout: float):
            """Run ``code`` silently in the kernel; the reply content, or None on timeout/death."""
            from queue import Empty

            msg_id = self.kc.execute(code, silent=True, store_history=False, user_expressions=expressions,
                                     allow_stdin=False, stop_on_error=False)
            deadline = time.monotonic() + timeout
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                try:
                    msg = await self.kc.shell_channel.get_msg(timeout=min(remaining, 1.0))
                except Empty:
                    if not await self.kc.is_alive():
                        return None
                    continue
                if msg["parent_header"].get("msg_id") == msg_id:
                    return msg["content"]

        def _quiet(self, code: str, timeout: float = 60.0) -> Any:
            """Run guard code and return the literal value of ``_tradeoffs_guard_result``."""
            from jupyter_core.utils import run_sync

            async def go():
                return await self._async_quiet_execute(code, {"r": "_tradeoffs_guard_result"}, timeout)

            content = run_sync(go)()
            if content is None:
                if not run_sync(self.km.is_alive)():
                    raise _KernelStopped(self._death_reason("the grader's guard"))
                raise _KernelStopped("the kernel stopped answering the grader")
            if content.get("status") != "ok":
                return None
            expr = content.get("user_expressions", {}).get("r", {})
            if expr.get("status") != "ok":
                return None
            with contextlib.suppress(ValueError, SyntaxError):
                return ast.literal_eval(ast.literal_eval(expr["data"]["text/plain"]))
            return None

        def _install_guard(self) -> dict | None:
            ids = self._quiet(GUARD_INSTALL)
            self._quiet(GUARD_CLEANUP)
            if not isinstance(ids, dict):
                self.log.warning("could not install the grading guard (is numpy importable?)")
                return None
            return ids

        def _guard_before(self, cell, grade_id: str) -> str | None:
            """Restore what tests rely on; a failure message when the guard itself is gone."""
            names = sorted(set(re.findall(r"[A-Za-z_]\w*", cell.source)))
            result = self._quiet(GUARD_BEFORE.format(names=names))
            self._quiet(GUARD_CLEANUP)
            if not (isinstance(result, tuple) and len(result) == 2):
                self.report["tampering"].append(f"{grade_id}: the grader's guard was removed or broken")
                return "the submission removed or broke the grader's guard, so this test cannot be trusted"
            changed, shadowed = result
            if changed:
                self.report["tampering"].append(f"before {grade_id}: restored {', '.join(changed)}")
            if shadowed:
                self.report["shadowed"].append(f"{grade_id}: {', '.join(shadowed)}")
            return None

        def _guard_after(self, cell, grade_id: str) -> None:
            ids = self._quiet(GUARD_AFTER)
            self._quiet(GUARD_CLEANUP)
            if not isinstance(ids, dict):
                changed = ["the grader's guard"]
            else:
                changed = sorted(k for k, v in self._pristine.items() if ids.get(k) != v)
            if changed:
                self.report["tampering"].append(f"during {grade_id}: {', '.join(changed[:10])}")
                self._fail_cell(cell, "IntegrityError",
                                f"this test cell's code replaced {', '.join(changed[:5])}; a test that "
                                f"runs with replaced checks cannot be trusted, so it scores zero")

        def _write_report(self) -> None:
            if self.report_path:
                _atomic_write_text(Path(self.report_path), json.dumps(self.report, indent=1))

    return GuardedExecute


def _neutralise_partial_credit(cell) -> None:
    """Keep a test cell's ``execute_result`` (nbgrader's partial credit) only when it is honest.

    nbgrader reads the *first* ``execute_result`` or error of a test cell, so a submission that
    publishes a number (``sys.displayhook(15)``) before a failing assert would score it. Results
    count only when the cell raised nothing and the test's own last statement is an expression.
    """
    failed = any(o.get("output_type") == "error" for o in cell.outputs)
    last_is_expr = False
    with contextlib.suppress(SyntaxError, ValueError):
        body = ast.parse(cell.source).body
        last_is_expr = bool(body) and isinstance(body[-1], ast.Expr)
    results = [o for o in cell.outputs if o.get("output_type") == "execute_result"]
    keep = results[-1] if (results and last_is_expr and not failed) else None
    for out in results:
        if out is not keep:
            out["output_type"] = "display_data"
            out.pop("execution_count", None)


def __getattr__(name: str):
    if name == "GuardedExecute":  # built lazily: importing nbgrader costs about a second
        cls = _execute_class()
        globals()["GuardedExecute"] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def autograde_preprocessors() -> list:
    """nbgrader's autograde pipeline with :class:`GuardedExecute` in place of ``Execute``."""
    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, IgnorePattern, LimitOutput,
                                        SaveAutoGrades)

    return [__getattr__("GuardedExecute"), IgnorePattern, ClearMetadataPreprocessor, LimitOutput,
            SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
