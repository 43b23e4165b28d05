"""The guarded, sandboxed ``Execute`` preprocessor that runs a submission's kernel.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
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


# The largest single message from the kernel, as a multiple of the output budget (JSON escaping,
# an honest answer's arrays); ZeroMQ drops larger ones before they are read.
MESSAGE_FACTOR = 8
SEND_TIMEOUT_MS = 10_000
# One request of the test runner, answered inside the kernel (see tradeoffs.grading.answers).
ANSWER_EXPRESSION = '__import__("tradeoffs.grading.answers", fromlist=["answer"]).answer({request!r})'
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
_tradeoffs_cpu_result = __tradeoffs_cpu()
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
        # The kernel's parent is the sandbox's init (PID 1): ipykernel must not take that for "my
        # parent exited" and quit. The sandbox (and the parent-death signal) stop it with the grader.
        "JPY_PARENT_PID": "1",
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


def _make_sandbox_kernel_manager(spec: sandbox.SandboxSpec, spec_path: Path, kernel_name: str,
                                 max_message_bytes: int):
    from jupyter_client.manager import AsyncKernelManager

    class SandboxKernelManager(AsyncKernelManager):
        """A kernel manager whose kernel starts inside :mod:`tradeoffs.grading.sandbox` and talks over
        Unix sockets (the sandbox has no network, not even the host's loopback). Its clients refuse
        any single message over ``max_message_bytes`` (ZeroMQ drops it before the grader parses it)."""

        def format_kernel_cmd(self, extra_arguments=None):
            cmd = super().format_kernel_cmd(extra_arguments)
            return spec.command(cmd, spec_path)

        def client(self, **kwargs):
            import zmq
            import zmq.asyncio

            context = zmq.asyncio.Context()
            context.setsockopt(zmq.MAXMSGSIZE, int(max_message_bytes))
            # A connection dropped for an oversized message leaves nobody to send to: fail, do not block.
            context.setsockopt(zmq.SNDTIMEO, SEND_TIMEOUT_MS)
            return super().client(context=context, **kwargs)

    workdir = Path(spec.workdir)
    return SandboxKernelManager(kernel_name=kernel_name, transport="ipc", ip=str(workdir / ".k"),
                                connection_file=str(workdir / ".kernel.json"), cache_ports=False)


def _execute_class():
    from nbgrader.preprocessors import Execute
    from nbgrader import utils as nbutils
    import zmq
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
        * Output past ``max_output_chars`` per notebook is dropped, whatever its kind (a note says so,
          and the report lists the cells).
        * Test cells never run in the student's kernel: they run in :mod:`tradeoffs.grading.checker`,
          a fresh interpreter started before any student code, which asks the kernel only for
          plain values (the student's functions are called there; see :mod:`tradeoffs.grading.wire`).
          A test cell's ``execute_result`` (nbgrader's partial credit) is the test's own last
          expression, only when the test raised nothing.
        """

        sandbox = Bool(True, help="Run the kernel in tradeoffs.grading.sandbox.").tag(config=True)
        isolation = Unicode("auto", help="Sandbox level: auto, root, userns or limits.").tag(config=True)
        workdir = Unicode("", help="Kernel work directory (default: a fresh temporary one).").tag(config=True)
        hide = List(Unicode(), help="Paths invisible to student code.").tag(config=True)
        protect = List(Unicode(), help="Paths that must not be writable by student code.").tag(config=True)
        expose = List(Unicode(), help="Course folders whose datasets/ the kernel may read (Python, the kit's "
                                      "src/ and datasets/ always).").tag(config=True)
        cpu_seconds = Integer(GradeSettings.cpu_seconds, help="CPU-time limit of the kernel.").tag(config=True)
        memory_mb = Integer(GradeSettings.memory_mb, help="Memory limit of the kernel (MiB).").tag(config=True)
        threads = Integer(0, help="Threads per kernel for BLAS/OpenMP (0: library default).").tag(config=True)
        uid = Integer(65534, help="Throwaway uid when grading as root.").tag(config=True)
        interrupt_grace = Integer(GradeSettings.interrupt_grace, help="Seconds a timed-out cell gets to stop after an interrupt.").tag(config=True)
        max_output_chars = Integer(GradeSettings.max_output_chars,
                                   help="Output kept per notebook, every kind counted (streams, displays and "
                                        "their updates, results, errors).").tag(config=True)
        report_path = Unicode("", help="Write a JSON report of the execution here.").tag(config=True)

        # ---------------------------------------------------------------- set-up
        def _sandbox_spec(self, workdir: Path, cache: Path) -> sandbox.SandboxSpec:
            limits = sandbox.Limits(cpu_seconds=int(self.cpu_seconds), memory_bytes=int(self.memory_mb) << 20)
            return sandbox.SandboxSpec(
                workdir=str(workdir), hide=list(self.hide), protect=list(self.protect),
                readonly_binds=_model_binds(cache),
                expose=sandbox.default_exposed_paths() + _data_paths([repo_root(), *map(Path, self.expose)]),
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
            self.report = {"kernel": "ok", "reason": "", "timeouts": [], "truncated": [], "isolation": "none",
                           "cells_not_run": 0, "seconds": {}}
            if self.sandbox:
                spec = self._sandbox_spec(workdir, cache)
                self.report["isolation"] = spec.resolved_isolation()
                spec_path = workdir.parent / f".{workdir.name}.sandbox.json"
                km = _make_sandbox_kernel_manager(spec, spec_path, self.kernel_name or
                                                  nb.metadata.get("kernelspec", {}).get("name", "python3"),
                                                  max_message_bytes=MESSAGE_FACTOR * int(self.max_output_chars))
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
                self._checker, self._checker_dir = None, tempfile.mkdtemp(prefix="tradeoffs-checker-")
                self._channel_lost, self._monitor = False, None
                self.reset_execution_trackers()
                self._check_assign_resources(resources)
                self._run_all(nb, resources)
            finally:
                if self._checker is not None:
                    self._checker.close()
                shutil.rmtree(self._checker_dir, ignore_errors=True)
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
                    self._monitor = _DisconnectMonitor(self.kc.iopub_channel.socket)
                    seconds["start"] = time.perf_counter() - mark
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
                        with contextlib.suppress(_KernelStopped, TimeoutError, ValueError, TypeError):
                            seconds["cpu"] = float(self._quiet(CPU_PROBE, "_tradeoffs_cpu_result", 30))
                    self.set_widgets_metadata()
            except _KernelStopped as exc:  # the kernel died while starting up
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
            grade_id = (cell.metadata.get("nbgrader") or {}).get("grade_id", f"cell {index}")
            if nbutils.is_grade(cell) and not nbutils.is_solution(cell):
                self._run_test_cell(cell, grade_id)
                return cell, self.resources
            try:
                self.execute_cell(cell, index, store_history=True)
            except zmq.ZMQError as exc:
                raise _KernelStopped(f"the grader lost its channel to the kernel while running {grade_id} "
                                     f"({exc}; a single output over the size limit does this)") from exc
            except CellTimeoutError:
                seconds = self._get_timeout(cell)
                self.report["timeouts"].append(grade_id)
                self._fail_cell(cell, "CellTimeoutError",
                                f"this cell ran longer than the grader's limit of {seconds} s and was interrupted")
                if not self._recover_after_timeout():
                    self._add_truncation_notes(cell)
                    if self._channel_lost:
                        raise _KernelStopped(f"a cell ({grade_id}) sent a message over the grader's size limit "
                                             f"({MESSAGE_FACTOR} x the output budget); the grader stopped the kernel")
                    raise _KernelStopped(f"a cell ({grade_id}) ran past {seconds} s and ignored the interrupt; "
                                         f"the grader stopped the kernel")
            except DeadKernelError:
                reason = self._death_reason(grade_id)
                self._fail_cell(cell, "DeadKernelError", reason)
                self._add_truncation_notes(cell)
                raise _KernelStopped(reason)
            self._add_truncation_notes(cell)
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
                try:
                    return await self._async_quiet_execute("pass", {}, float(self.interrupt_grace)) is not None
                except zmq.ZMQError:  # the channel itself is gone (a message over the size limit)
                    self._channel_lost = True
                    return False

            if run_sync(recover)():
                return True
            with contextlib.suppress(Exception):
                run_sync(self.km.shutdown_kernel)(now=True)
            return False

        # ---------------------------------------------------------------- the output budget
        def _admit(self, out) -> bool:
            """Count ``out`` against the notebook's budget; False when it must be dropped.

            Errors decide grades, so they are always kept, cut to a few thousand characters.
            """
            if out.get("output_type") == "error":
                out["ename"], out["evalue"] = str(out.get("ename", ""))[:200], str(out.get("evalue", ""))[:2000]
                out["traceback"] = [str(line)[:2000] for line in out.get("traceback", [])[-20:]]
                self._output_chars += _output_size(out)
                return True
            return self._spend(_output_size(out), out.get("name") or out.get("output_type", "display"))

        def _spend(self, size: int, kind: str) -> bool:
            """Take ``size`` characters from the budget; False (and ``kind`` noted as dropped) when over."""
            if self._output_chars + size > self.max_output_chars:
                self._dropped.add(kind)
                return False
            self._output_chars += size
            return True

        def output(self, outs, msg, display_id, cell_index):
            from nbformat.v4 import output_from_msg

            try:
                out = output_from_msg(msg)
            except ValueError:
                return None
            if not self._admit(out):
                return None
            if out.get("output_type") == "error":  # the admitted (cut) version
                msg = {**msg, "content": {**msg["content"], "ename": out["ename"], "evalue": out["evalue"],
                                          "traceback": out["traceback"]}}
            return super().output(outs, msg, display_id, cell_index)

        def _update_display_id(self, display_id, msg):
            size = len(json.dumps(msg.get("content", {}).get("data", {}), default=str))
            if not self._spend(size, "display update"):
                return None
            return super()._update_display_id(display_id, msg)

        def handle_comm_msg(self, outs, msg, cell_index):
            if not self._spend(len(json.dumps(msg.get("content", {}), default=str)), "widget"):
                return None
            return super().handle_comm_msg(outs, msg, cell_index)

        def _add_truncation_notes(self, cell) -> None:
            if self._monitor is not None and self._monitor.dropped():
                self._dropped.add(f"a single output over {MESSAGE_FACTOR} x the budget")
            if not self._dropped:
                return
            gid = (cell.metadata.get("nbgrader") or {}).get("grade_id", "cell")
            self.report["truncated"].append(gid)
            cell.outputs.append(new_output("stream", name="stdout", text=(
                f"\n[grader: output of this cell dropped ({', '.join(sorted(self._dropped))}): the notebook "
                f"reached the grader's output budget of {self.max_output_chars:,} characters]\n")))
            self._dropped = set()

        # ---------------------------------------------------------------- test cells
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

        def _quiet(self, code: str, expression: str, timeout: float) -> Any:
            """Run ``code`` silently; the text of ``expression`` afterwards (None when it failed).

            Raises :class:`_KernelStopped` when the kernel died, and :class:`TimeoutError` when it
            did not answer within ``timeout`` seconds.
            """
            from jupyter_core.utils import run_sync

            async def go():
                return await self._async_quiet_execute(code, {"r": expression}, timeout)

            try:
                content = run_sync(go)()
            except zmq.ZMQError as exc:
                raise _KernelStopped(f"the grader lost its channel to the kernel ({exc})") from exc
            if content is None:
                if not run_sync(self.km.is_alive)():
                    raise _KernelStopped(self._death_reason("a test cell"))
                raise TimeoutError
            expr = (content.get("user_expressions") or {}).get("r", {})
            if content.get("status") != "ok" or expr.get("status") != "ok":
                return None
            with contextlib.suppress(ValueError, SyntaxError):
                return ast.literal_eval(expr["data"]["text/plain"])
            return None

        def _checker_client(self):
            from . import checker

            if self._checker is None or not self._checker.alive():
                self._checker = checker.CheckerClient(self._checker_dir, env=_checker_environment(self.threads))
            return self._checker

        def _run_test_cell(self, cell, grade_id: str) -> None:
            """Run a test cell in the checker, its questions answered by the student's kernel."""
            from nbformat.v4 import new_output

            from . import checker

            cell.outputs = []
            timeout = float(self._get_timeout(cell) or 300)
            state = {"stopped": "", "timeout": False}

            def ask_kernel(request: str, left: float) -> str:
                if state["stopped"] or left <= 0:
                    raise checker.KernelStopped(state["stopped"] or "the test ran past the grader's limit")
                try:
                    text = self._quiet("", ANSWER_EXPRESSION.format(request=request), left)
                except TimeoutError:
                    state["timeout"] = True
                    if not self._recover_after_timeout():
                        state["stopped"] = (f"a test cell ({grade_id}) ran past {timeout:g} s and the kernel "
                                            f"ignored the interrupt; the grader stopped the kernel")
                    raise checker.KernelStopped(f"this test ran longer than the grader's limit of {timeout:g} s "
                                                f"and was interrupted")
                except _KernelStopped as exc:
                    state["stopped"] = str(exc)
                    raise checker.KernelStopped(str(exc))
                return text if isinstance(text, str) else ""

            outcome = self._checker_client().run(cell.source, grade_id, ask_kernel, time.monotonic() + timeout)
            if outcome.get("timeout"):
                state["timeout"] = True
            for name in ("stdout", "stderr"):
                if outcome.get(name):
                    self._keep(cell, new_output("stream", name=name, text=outcome[name]))
            error = outcome.get("error")
            if error:
                where = f" ({error['where']})" if error.get("where") else ""
                self._keep(cell, new_output("error", ename=error["ename"], evalue=error["evalue"],
                                            traceback=[f"{error['ename']}: {error['evalue']}{where}"]))
            elif "result" in outcome:
                self._keep(cell, new_output("execute_result", data={"text/plain": outcome["result"]},
                                            execution_count=None))
            self._add_truncation_notes(cell)
            if state["timeout"]:
                self.report["timeouts"].append(grade_id)
            if state["stopped"]:
                raise _KernelStopped(state["stopped"])

        def _keep(self, cell, out) -> None:
            """Append one output, within the notebook's output budget."""
            if self._admit(out):
                cell.outputs.append(out)

        def _write_report(self) -> None:
            if self.report_path:
                _atomic_write_text(Path(self.report_path), json.dumps(self.report, indent=1))

    return GuardedExecute


class _DisconnectMonitor:
    """Tells whether ZeroMQ dropped the kernel's output connection since the last look.

    An output message over the size limit makes ZeroMQ drop it and reconnect; the message is gone
    without a trace in the notebook, so the grader watches the socket's disconnect events to say so.
    """

    def __init__(self, socket):
        import zmq

        self._zmq = zmq
        self._socket = zmq.Socket.shadow(socket.get_monitor_socket(zmq.EVENT_DISCONNECTED).underlying)

    def dropped(self) -> bool:
        from zmq.utils.monitor import recv_monitor_message

        seen = False
        while self._socket.poll(0):
            seen |= recv_monitor_message(self._socket)["event"] == self._zmq.EVENT_DISCONNECTED
        return seen


def _data_paths(roots) -> list[str]:
    """The ``datasets/`` folder of each course root that has one (all the kernel reads of a course)."""
    return [str(root / "datasets") for root in roots if (root / "datasets").is_dir()]


def _output_size(out) -> int:
    """Characters an output adds to a notebook (every kind counted)."""
    kind = out.get("output_type")
    if kind == "stream":
        return len(out.get("text", ""))
    if kind == "error":
        return sum(len(str(v)) for v in (out.get("ename"), out.get("evalue"), *out.get("traceback", [])))
    return sum(len(v) if isinstance(v, str) else len(json.dumps(v)) for v in out.get("data", {}).values()) + \
        len(json.dumps(out.get("metadata", {}), default=str))


def _checker_environment(threads: int) -> dict[str, str]:
    """The test runner's environment: the grader's PATH and locale, no secrets, bounded threads."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TRADEOFFS_CACHE")}
    env.update({"MPLBACKEND": "agg", "OMP_WAIT_POLICY": "PASSIVE", "PYTHONDONTWRITEBYTECODE": "1"})
    if threads:
        env.update(thread_env(threads))
    return env


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
