"""The test runner: every test cell runs here, in a fresh interpreter the submission never touched.

The grader starts one checker per graded notebook (``python -I -m tradeoffs.grading.checker``)
before any student code runs, and sends it the notebook's test cells one by one. A name the test
uses and does not define itself (the student's function, an experiment's result) is fetched from
the student's kernel; a value arrives as an exact builtin, NumPy or pandas object
(:mod:`tradeoffs.grading.wire`), anything else as a :class:`Remote` that forwards attribute access,
indexing and calls to the kernel and refuses comparison. So no startup file, profile, input or AST
transformer, trace function, monkeypatch or always-equal object from the submission can change what
a test computes or reports: the student's code only ever answers calls, with plain values.

Protocol (JSON lines; the grader writes stdin, the checker a private copy of stdout):

* grader -> checker ``{"run": source, "name": grade_id}``; checker -> grader ``{"done": outcome}``
* while running: checker -> grader ``{"rpc": request}``; grader -> checker ``{"reply": text}`` (the
  kernel's answer, see :mod:`tradeoffs.grading.answers`) or ``{"stop": reason}`` (the kernel timed
  out or died: the test cell fails with that reason).
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import io
import json
import os
import sys
import traceback
from typing import Any

from . import answers, wire

MAX_CAPTURE = 100_000  # characters of a test cell's own printing kept
HIDDEN_BEGIN, HIDDEN_END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"


class KernelStopped(BaseException):
    """The student's kernel timed out or died while answering (not catchable by ``except Exception``)."""


class RemoteError(Exception):
    """The student's code raised an exception that is not one of Python's own."""


class Remote(wire.Handle):
    """An object of the student's notebook: attribute access, indexing and calls go to the kernel."""

    __slots__ = ()

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return _ask({"op": "getattr", "h": self.hid, "name": name})

    def __getitem__(self, key):
        return _ask({"op": "getitem", "h": self.hid, "key": _send(key)})

    def __call__(self, *args, **kwargs):
        sent = [_send(a) for a in args]
        return _ask({"op": "call", "h": self.hid, "args": sent,
                     "kwargs": [[k, _send(v)] for k, v in kwargs.items()]}, args=args)

    def __len__(self):
        return _plain(_ask({"op": "len", "h": self.hid}), int, "len()")

    def __iter__(self):
        return iter(_ask({"op": "iter", "h": self.hid}))

    def __contains__(self, key):
        return _plain(_ask({"op": "contains", "h": self.hid, "key": _send(key)}), bool, "in")

    def __repr__(self):
        text = _ask({"op": "repr", "h": self.hid})
        return text if type(text) is str else super().__repr__()

    __str__ = __repr__

    def __reduce__(self):  # a test's callable that closes over a notebook object, sent to the kernel
        return answers.lookup, (self.hid,)

    @property
    def __class__(self):
        """The notebook object's class when the test has imported its module (so ``isinstance(m,
        torch.nn.Linear)`` works); else :class:`Remote`. ``type()`` still says :class:`Remote`, and
        the object still refuses comparison, so claiming a class gains nothing."""
        return _known_class(self.type_name) or Remote


def _known_class(name: str) -> type | None:
    """The class ``module.Qualname`` if its module is already imported here (never imports one)."""
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module = sys.modules.get(".".join(parts[:cut]))
        if module is None:
            continue
        obj = module
        for attr in parts[cut:]:
            obj = getattr(obj, attr, None)
        return obj if isinstance(obj, type) else None
    return None


def _plain(value: Any, kind: type, what: str) -> Any:
    if type(value) is not kind:
        raise TypeError(f"{what} of a notebook object gave {type(value).__name__}, not {kind.__name__}")
    return value


def _reference(obj: Any) -> Any:
    """How a test's non-plain argument travels: a notebook object by handle, the test's own
    callables (lambdas, functions, bound methods) pickled by value."""
    if isinstance(obj, Remote):
        return obj.hid
    import cloudpickle

    return ["p", wire.b64text(cloudpickle.dumps(obj))]


def _send(value: Any) -> Any:
    return wire.encode(value, ref=_reference)


# ------------------------------------------------------------------------------------------
_protocol = None


def _write(message: dict) -> None:
    _protocol.write(json.dumps(message) + "\n")
    _protocol.flush()


def _ask(request: dict, args: tuple = ()) -> Any:
    _write({"rpc": request})
    line = sys.stdin.readline()
    if not line:
        raise KernelStopped("the grader closed the test runner")
    message = json.loads(line)
    if "stop" in message:
        raise KernelStopped(str(message["stop"]))
    reply = json.loads(message["reply"]) if message.get("reply") else {}
    if type(reply) is not dict:
        raise RemoteError("the notebook's kernel sent a malformed answer")
    if "raise" in reply:
        raise _exception(reply)
    if "ok" not in reply:
        raise RemoteError("the notebook's kernel sent no answer (was the grading module replaced?)")
    for index, state in (reply.get("after") or {}).items():
        if str(index).isdigit() and int(index) < len(args):
            _write_back(args[int(index)], wire.decode(state, handle=Remote))
    return wire.decode(reply["ok"], handle=Remote)


def _exception(reply: dict) -> BaseException:
    message = str(reply.get("message", ""))[:2000]
    for name in reply.get("builtin") or []:
        cls = getattr(builtins, str(name), None)
        if isinstance(cls, type) and issubclass(cls, Exception):
            with contextlib.suppress(Exception):
                return cls(message)
    return RemoteError(f"{str(reply.get('raise'))[:100]}: {message}")


def _write_back(original: Any, now: Any) -> None:
    """Show the test what the student's function did to an argument in place."""
    import numpy as np

    with contextlib.suppress(Exception):
        if type(original) is np.ndarray and type(now) is np.ndarray:
            if original.shape == now.shape:
                np.copyto(original, now, casting="unsafe")
        elif type(original) is list and type(now) is list:
            original[:] = now
        elif type(original) in (dict, set) and type(now) is type(original):
            original.clear()
            original.update(now)
        elif type(original).__module__.startswith("pandas") and type(now) is type(original):
            original._update_inplace(now)


# ------------------------------------------------------------------------------------------
class _Names(ast.NodeVisitor):
    """Names a cell reads, and names it binds anywhere (assignments, imports, defs, arguments)."""

    def __init__(self):
        self.loaded, self.bound = set(), set()

    def visit_Name(self, node):
        (self.loaded if isinstance(node.ctx, ast.Load) else self.bound).add(node.id)

    def visit_arg(self, node):
        self.bound.add(node.arg)

    def _def(self, node):
        self.bound.add(node.name)
        self.generic_visit(node)

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _def

    def visit_Import(self, node):
        for alias in node.names:
            self.bound.add((alias.asname or alias.name).split(".")[0])

    visit_ImportFrom = visit_Import

    def visit_ExceptHandler(self, node):
        if node.name:
            self.bound.add(node.name)
        self.generic_visit(node)


def _hidden_lines(source: str) -> set[int]:
    lines, inside = set(), False
    for number, line in enumerate(source.splitlines(), 1):
        if HIDDEN_BEGIN in line:
            inside = True
        if inside:
            lines.add(number)
        if HIDDEN_END in line:
            inside = False
    return lines


class Runner:
    """Runs test cells in one namespace; notebook names are fetched fresh for every cell."""

    def __init__(self):
        self.ns: dict[str, Any] = {"__name__": "__tradeoffs_tests__", "__builtins__": builtins}
        self.fetched: set[str] = set()

    def run(self, source: str, name: str) -> dict:
        filename = f"<test cell {name}>"
        out, err = io.StringIO(), io.StringIO()
        outcome: dict[str, Any] = {}
        try:
            tree = ast.parse(source, filename)
            names = _Names()
            names.visit(tree)
            own = {k for k in self.ns if k not in self.fetched}
            wanted = sorted(names.loaded - names.bound - own - set(dir(builtins)))
            for stale in self.fetched:
                self.ns.pop(stale, None)
            values = _ask({"op": "names", "names": wanted}) if wanted else {}
            self.ns.update(values)
            self.fetched = set(values)
            last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                exec(compile(tree, filename, "exec"), self.ns)
                if last is not None:
                    value = eval(compile(ast.Expression(last.value), filename, "eval"), self.ns)
                    if value is not None:
                        outcome["result"] = repr(value)[:10_000]
        except KernelStopped as exc:
            outcome["stopped"] = str(exc)
            outcome["error"] = {"ename": "NotGraded", "evalue": str(exc), "where": ""}
        except Exception as exc:  # the test failed (or the student's code raised)
            outcome["error"] = self._error(exc, filename, source)
        outcome["stdout"] = out.getvalue()[:MAX_CAPTURE]
        outcome["stderr"] = err.getvalue()[:MAX_CAPTURE]
        return outcome

    @staticmethod
    def _error(exc: BaseException, filename: str, source: str) -> dict:
        line = None
        for frame in traceback.extract_tb(exc.__traceback__):
            if frame.filename == filename:
                line = frame.lineno
        if line is None:
            where = "while reading this test cell"
        elif line in _hidden_lines(source):
            where = "in a hidden test of this cell"
        else:
            where = f"at line {line} of this test cell"
        return {"ename": type(exc).__name__, "evalue": str(exc)[:2000], "where": where}


def main() -> int:
    global _protocol
    _protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # stray prints of imported libraries never reach the protocol channel
    runner = Runner()
    while line := sys.stdin.readline():
        message = json.loads(line)
        _write({"done": runner.run(str(message["run"]), str(message.get("name", "test")))})
    return 0


if __name__ == "__main__":  # pragma: no cover - started by the grader
    sys.exit(main())


# ------------------------------------------------------------------------------------------
# The grader's side
# ------------------------------------------------------------------------------------------
class CheckerClient:
    """Start a checker and run test cells in it, answering its requests with ``ask_kernel``.

    Parameters
    ----------
    workdir : path
        An empty folder for the checker's working directory (nothing of the submission).
    env : dict
        Its whole environment (no secrets: see ``guarded._checker_environment``).
    """

    def __init__(self, workdir: str, env: dict[str, str]):
        import subprocess

        self.proc = subprocess.Popen([sys.executable, "-I", "-m", "tradeoffs.grading.checker"], cwd=workdir,
                                     env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     bufsize=1)

    def run(self, source: str, name: str, ask_kernel, deadline: float) -> dict:
        """Run one test cell; ``ask_kernel(request_text, seconds_left)`` returns the kernel's reply
        text, or raises :class:`KernelStopped` with the reason. Past ``deadline`` (monotonic) the
        checker is stopped and the outcome says so."""
        import select
        import time

        self.proc.stdin.write(json.dumps({"run": source, "name": name}) + "\n")
        self.proc.stdin.flush()
        while True:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.proc.stdout], [], [], max(left, 0))
            if not ready:
                self.close()
                return {"error": {"ename": "CellTimeoutError", "evalue": "the test ran past the grader's limit",
                                  "where": ""}, "timeout": True}
            line = self.proc.stdout.readline()
            if not line:
                return {"error": {"ename": "GraderError", "evalue": "the test runner stopped", "where": ""},
                        "runner_died": True}
            message = json.loads(line)
            if "done" in message:
                return message["done"]
            try:
                answer = {"reply": ask_kernel(json.dumps(message["rpc"]), deadline - time.monotonic())}
            except KernelStopped as exc:
                answer = {"stop": str(exc)}
            self.proc.stdin.write(json.dumps(answer) + "\n")
            self.proc.stdin.flush()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(Exception):
                stream.close()
