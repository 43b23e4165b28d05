"""Run untrusted code (a student's notebook kernel) in a throwaway sandbox.

nbgrader executes a submission with the grader's own permissions. This module wraps the command
that starts the kernel so that, where the operating system allows it, the code runs

* with **resource limits** (CPU seconds, memory, file size, processes, open files), always;
* in its own **network namespace** (only a private loopback: no internet, no host services);
* in its own **PID namespace** (it cannot see or signal the grader or other students, and every
  process it starts dies with it, even a ``setsid`` daemon);
* in its own **mount namespace** whose root is an allow-list: the system's programs and libraries,
  Python and the kit read-only, the work directory writable, fresh size-limited ``/tmp`` and
  ``/dev/shm``. Nothing else of the machine exists inside (the course's ``.git`` and solutions,
  other submissions, gradebooks, the grader's home);
* under a **grader-owned PID 1** that reaps every process and, when the kernel exits, takes the
  whole namespace with it (whatever a process did to itself: ``setsid``, a cleared parent-death
  signal);
* as a **throwaway unprivileged user** (one uid per job) when the grader runs as root (containers,
  CI), or with every capability dropped inside an unprivileged user namespace otherwise.

Three isolation levels, chosen by :func:`detect_isolation` (probed once per process):

``"root"``
    the grader is root: namespaces + a throwaway uid per job. Strongest.
``"userns"``
    Linux with unprivileged user namespaces: namespaces, same uid, no capabilities.
``"limits"``
    anything else (macOS, locked-down kernels): resource limits only. Student code can then do
    whatever the grading account can; ``docs/instructor.md`` explains how to grade safely there.

The launcher runs as ``python -m tradeoffs.grading.sandbox SPEC.json -- ARGV...``; :meth:`SandboxSpec.command`
builds that command line. In the namespace levels it forks: the child becomes PID 1 of the new PID
namespace, builds the root, then forks the kernel (limits, identity, ``exec`` of ``ARGV``) and stays
as its init; the launcher stays in the host namespaces, waits, and exits with the kernel's status, so
a kernel manager can poll and signal it like any kernel process.

Examples
--------
>>> import sys, tempfile
>>> work = tempfile.mkdtemp()
>>> spec = SandboxSpec(workdir=work, isolation="limits", limits=Limits(cpu_seconds=30))
>>> import subprocess
>>> out = subprocess.run(spec.command([sys.executable, "-c", "print('hi')"], work + "/spec.json"),
...                      capture_output=True, text=True)
>>> out.stdout.strip()
'hi'
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Sequence

from ..files import atomic_write
# SETUP_FAILED and SYSTEM_PATHS are part of this module's interface (kernel managers and tests use them).
from .namespaces import (CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWUSER,  # noqa: F401
                         CLONE_NEWUTS, PR_SET_NO_NEW_PRIVS, PR_SET_PDEATHSIG, SETUP_FAILED, SYSTEM_PATHS,
                         build_root, drop_capabilities, libc_call, run_init, under, write_id_maps)

ISOLATION_LEVELS = ("root", "userns", "limits")

# Throwaway uids of grading jobs (root level): one per job, in a range no account uses (Debian
# allocates system and user accounts below 65536), so jobs cannot signal each other or share limits.
JOB_UID_BASE = 1_200_000
JOB_UID_COUNT = 100_000


def job_uid(index: int) -> int:
    """The throwaway uid of grading job ``index``.

    Examples
    --------
    >>> job_uid(0), job_uid(1)
    (1200000, 1200001)
    """
    return JOB_UID_BASE + index % JOB_UID_COUNT

# Environment variables the sandboxed process may inherit; everything else (API keys, tokens,
# credentials) is dropped. SandboxSpec.env adds to what survives.
DEFAULT_ENV_ALLOW = (
    r"^(PATH|LANG|LANGUAGE|LC_\w+|TZ|TERM|VIRTUAL_ENV|PYTHONPATH|PYTHONHASHSEED|NBGRADER_\w+|JPY_\w+|"
    r"TRADEOFFS_(CHAT_MODEL|EMBEDDER|DEVICE|REPO)|OMP_NUM_THREADS|MKL_NUM_THREADS|OPENBLAS_NUM_THREADS|"
    r"CUDA_VISIBLE_DEVICES|PYDEVD_\w+|MPLBACKEND)$"
)


class SandboxError(RuntimeError):
    """The sandbox could not be set up; the message says what failed and how to proceed."""


@dataclass(frozen=True)
class Limits:
    """Resource limits applied to the sandboxed process and everything it starts.

    Parameters
    ----------
    cpu_seconds : int
        CPU time (``RLIMIT_CPU``); past it the kernel gets ``SIGXCPU`` then ``SIGKILL``.
    memory_bytes : int
        Private writable memory (``RLIMIT_DATA``): allocations beyond it fail with ``MemoryError``.
    file_bytes : int
        Largest file it may write (``RLIMIT_FSIZE``).
    processes : int
        Processes and threads of its user (``RLIMIT_NPROC``; effective with a throwaway uid).
    open_files : int
        Open file descriptors (``RLIMIT_NOFILE``).
    tmpfs_bytes : int
        Size of the fresh ``/tmp`` and ``/dev/shm`` mounts (namespace levels only).

    Examples
    --------
    >>> Limits(cpu_seconds=60).cpu_seconds
    60
    """

    cpu_seconds: int = 900
    memory_bytes: int = 6 << 30
    file_bytes: int = 1 << 30
    processes: int = 1024
    open_files: int = 4096
    tmpfs_bytes: int = 512 << 20


@dataclass
class SandboxSpec:
    """Everything the launcher needs to build one sandbox.

    Parameters
    ----------
    workdir : str
        The process's working directory: the only writable place besides a fresh ``/tmp``.
    hide : list of str
        Directories and files that must be invisible inside (solutions, submissions, gradebooks,
        other jobs). Directories become empty; files read as empty.
    readonly_binds : list of [source, target]
        Paths made visible read-only at ``target`` (which must lie inside ``workdir``), e.g. the
        model cache when it sits in a home directory the throwaway user cannot enter.
    expose : list of str
        Paths shown read-only at their own path besides :data:`SYSTEM_PATHS`: the Python
        installation, the kit's ``src/`` and ``datasets/`` (see :func:`default_exposed_paths`).
        Everything else of the machine is absent inside the namespace levels.
    protect : list of str
        Paths that must end up unwritable; the launcher refuses to start when one is writable.
    limits : Limits
    isolation : {"auto", "root", "userns", "limits"}
        ``"auto"`` uses :func:`detect_isolation`.
    uid : int or None
        Throwaway uid (and gid) for the ``"root"`` level; default ``65534`` (nobody).
    env : dict
        Environment variables set for the sandboxed process.
    env_allow : str or None
        Regular expression naming the inherited variables that survive (default
        :data:`DEFAULT_ENV_ALLOW`: no API keys or tokens); ``None`` inherits everything.

    Examples
    --------
    >>> spec = SandboxSpec(workdir="/tmp/w", isolation="limits")
    >>> SandboxSpec.from_json(spec.to_json()).workdir
    '/tmp/w'
    """

    workdir: str
    hide: list[str] = field(default_factory=list)
    readonly_binds: list[list[str]] = field(default_factory=list)
    expose: list[str] = field(default_factory=list)
    protect: list[str] = field(default_factory=list)
    limits: Limits = field(default_factory=Limits)
    isolation: str = "auto"
    uid: int | None = None
    env: dict[str, str] = field(default_factory=dict)
    env_allow: str | None = DEFAULT_ENV_ALLOW

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> "SandboxSpec":
        data = json.loads(text)
        data["limits"] = Limits(**data.get("limits", {}))
        return cls(**data)

    def resolved_isolation(self) -> str:
        """The isolation level this spec will use (``"auto"`` resolved by probing)."""
        if self.isolation == "auto":
            return detect_isolation()
        if self.isolation not in ISOLATION_LEVELS:
            raise SandboxError(f"isolation must be 'auto' or one of {ISOLATION_LEVELS}, got {self.isolation!r}")
        return self.isolation

    def command(self, argv: Sequence[str], spec_path: str | os.PathLike) -> list[str]:
        """Write this spec to ``spec_path`` and return the command that runs ``argv`` inside.

        The spec file is written atomically and read once by the launcher before the sandbox is
        built, so it may live where the sandboxed code cannot see it.
        """
        spec = SandboxSpec(**{**asdict(self), "limits": self.limits})
        spec.isolation = self.resolved_isolation()
        atomic_write(Path(spec_path), spec.to_json(), mode=0o600)
        return [sys.executable, "-m", "tradeoffs.grading.sandbox", str(spec_path), "--", *map(str, argv)]


# --------------------------------------------------------------------------------------------
# Probing
# --------------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def detect_isolation() -> str:
    """Return the strongest isolation level that works on this machine.

    Probes by building a real sandbox around ``python -c`` (about 0.1 s); the answer is cached for
    the life of the process. ``TRADEOFFS_SANDBOX`` set to one of the levels overrides the probe
    (``limits`` is how to switch isolation off when debugging).

    Examples
    --------
    >>> detect_isolation() in ISOLATION_LEVELS
    True
    """
    forced = os.environ.get("TRADEOFFS_SANDBOX")
    if forced:
        if forced not in ISOLATION_LEVELS:
            raise SandboxError(f"TRADEOFFS_SANDBOX must be one of {ISOLATION_LEVELS}, got {forced!r}")
        return forced
    if not sys.platform.startswith("linux"):
        return "limits"
    candidates = ["root", "userns"] if os.geteuid() == 0 else ["userns"]
    for level in candidates:
        if probe(level):
            return level
    return "limits"


def describe_isolation(level: str) -> str:
    """One line for the instructor: what student code can and cannot do at ``level``.

    Examples
    --------
    >>> describe_isolation("limits").startswith("limits")
    True
    """
    return {
        "root": "root - namespaces (no network, own PIDs, allow-listed read-only files) and a throwaway uid "
                "per job",
        "userns": "userns - namespaces (no network, own PIDs, allow-listed read-only files), no capabilities, "
                  "your own uid",
        "limits": "limits - resource limits only: student code can read and change whatever this account can",
    }.get(level, level)


def probe(level: str) -> bool:
    """True when a sandbox at ``level`` can be built here and really isolates.

    The probe runs a tiny program inside that checks, without contacting anything, that its only
    network interface is a private loopback, that it runs under the sandbox's init in its own PID
    namespace, and that a file outside the allow-list (a stand-in for the gradebook) is not there.
    """
    with tempfile.TemporaryDirectory(prefix="tradeoffs-probe-") as tmp:
        work = Path(tmp) / "work"
        work.mkdir()
        protected = Path(tmp) / "protected.txt"
        protected.write_text("gradebook stand-in")
        spec = SandboxSpec(workdir=str(work), isolation=level, protect=[str(protected)],
                           expose=default_exposed_paths(), limits=Limits(cpu_seconds=30))
        check = (
            "import os, socket\n"
            f"assert not os.access({str(protected)!r}, os.W_OK), 'protected path writable'\n"
            f"assert not os.path.exists({str(protected)!r}), 'a path outside the allow-list is visible'\n"
            "assert os.getpid() == 2, 'not under the sandbox init in a PID namespace'\n"
            "assert [n for _, n in socket.if_nameindex()] == ['lo'], 'network interfaces visible'\n"
            "print('sandbox-ok')\n"
        )
        try:
            out = subprocess.run(spec.command([sys.executable, "-c", check], Path(tmp) / "spec.json"),
                                 capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            return False
        return out.returncode == 0 and "sandbox-ok" in out.stdout


# --------------------------------------------------------------------------------------------
# The launcher (runs as ``python -m tradeoffs.grading.sandbox``)
# --------------------------------------------------------------------------------------------
def apply_limits(limits: Limits) -> None:
    """Set the resource limits on the current process (inherited by everything it starts)."""
    import resource

    def cap(kind: int, value: int) -> None:
        soft, hard = resource.getrlimit(kind)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(kind, (value, value))

    cap(resource.RLIMIT_CPU, int(limits.cpu_seconds))
    cap(resource.RLIMIT_FSIZE, int(limits.file_bytes))
    cap(resource.RLIMIT_NOFILE, int(limits.open_files))
    cap(resource.RLIMIT_CORE, 0)
    if hasattr(resource, "RLIMIT_DATA"):
        cap(resource.RLIMIT_DATA, int(limits.memory_bytes))
    else:  # pragma: no cover - platforms without RLIMIT_DATA
        cap(resource.RLIMIT_AS, int(limits.memory_bytes))
    if hasattr(resource, "RLIMIT_NPROC"):
        cap(resource.RLIMIT_NPROC, int(limits.processes))


def _become_student(spec: SandboxSpec, level: str) -> None:
    """In the kernel's process, after the init forked it: limits, then identity, then exec."""
    apply_limits(spec.limits)
    if level == "root":
        uid = 65534 if spec.uid is None else int(spec.uid)
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    else:
        drop_capabilities()
    libc_call("prctl", PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    for path in spec.protect:  # once more, as the final identity
        if os.path.exists(path) and os.access(path, os.W_OK):
            raise SandboxError(f"{path} is writable by the sandboxed user")


def default_exposed_paths() -> list[str]:
    """The paths a Python kernel of this environment needs: interpreter, stdlib, venv, the kit's ``src/``.

    Examples
    --------
    >>> import sys, os
    >>> os.path.realpath(sys.base_prefix) in default_exposed_paths()
    True
    """
    import tradeoffs

    candidates = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
                  os.path.dirname(os.path.realpath(sys.executable)),
                  os.path.dirname(os.path.dirname(os.path.abspath(tradeoffs.__file__)))}
    # Python's own folders and its site-packages; never sys.path as such: it holds the current
    # directory (a course root with its .git and solutions) when the grader runs with `python -m`.
    import site
    import sysconfig

    candidates.update(v for k, v in sysconfig.get_paths().items() if k in ("stdlib", "platstdlib", "purelib", "platlib"))
    candidates.update(site.getsitepackages())
    real = sorted({os.path.realpath(p) for p in candidates if os.path.isdir(p)})
    return [p for p in real if not under(p, [q for q in real if q != p])]


def _environment(spec: SandboxSpec) -> dict[str, str]:
    import re

    if spec.env_allow is None:
        env = dict(os.environ)
    else:
        allowed = re.compile(spec.env_allow)
        env = {k: v for k, v in os.environ.items() if allowed.match(k)}
    env.update(spec.env)
    return env


def launch(spec: SandboxSpec, argv: Sequence[str]) -> int:
    """Build the sandbox described by ``spec`` and run ``argv`` in it; return its exit status.

    In the ``"limits"`` level this ``exec``\\ s ``argv`` directly and does not return.
    """
    if not argv:
        raise SandboxError("nothing to run: give the command after `--`")
    level = spec.resolved_isolation()
    env = _environment(spec)
    if sys.platform.startswith("linux"):
        # Die with whoever started us (a grading worker that is killed takes its kernel along).
        parent = os.getppid()
        libc_call("prctl", PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            raise SandboxError("the process that started the sandbox has already exited")
    if level == "limits":
        os.chdir(spec.workdir)
        for source, target in spec.readonly_binds:  # no mount namespace: links instead (not read-only)
            if not os.path.lexists(target):
                os.makedirs(os.path.dirname(target), exist_ok=True)
                os.symlink(source, target)
        apply_limits(spec.limits)
        os.execvpe(argv[0], list(argv), env)
    uid, gid = os.getuid(), os.getgid()
    flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
    if level == "userns":
        flags |= CLONE_NEWUSER
    libc_call("unshare", flags)
    if level == "userns":
        write_id_maps(uid, gid)
    # Open what must stay reachable before anything is hidden (in the new mount namespace: a bind
    # mount's source must belong to the namespace it is mounted in).
    fds = {"workdir": os.open(spec.workdir, os.O_PATH | os.O_DIRECTORY)}
    for i, (source, _) in enumerate(spec.readonly_binds):
        fds[f"bind{i}"] = os.open(source, os.O_PATH)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # PID 1 of the new namespace: build the sandbox, start the kernel, stay as its init
        os.close(err_r)
        try:
            build_root(spec, level, fds)
            for fd in fds.values():
                os.close(fd)
            kernel = os.fork()
            if kernel == 0:
                _become_student(spec, level)
                os.execvpe(argv[0], list(argv), env)
            os.close(err_w)
            os._exit(run_init(kernel))
        except BaseException as exc:  # report to the parent, never run unsandboxed
            os.write(err_w, f"{type(exc).__name__}: {exc}".encode()[:4000])
        os._exit(SETUP_FAILED)
    os.close(err_w)
    for fd in fds.values():
        os.close(fd)
    # The kernel manager signals our process group, which includes the child: do not double
    # deliver interrupts; pass on termination requests sent to us alone.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, lambda signum, _frame: _forward(pid, signum))
    message = b""
    while chunk := os.read(err_r, 4096):
        message += chunk
    os.close(err_r)
    if message:
        sys.stderr.write(f"tradeoffs.grading.sandbox: could not build the {level!r} sandbox: {message.decode()}\n")
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except ChildProcessError:
            return SETUP_FAILED
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _forward(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) < 2 or "--" not in argv:
        sys.stderr.write("usage: python -m tradeoffs.grading.sandbox SPEC.json -- COMMAND [ARGS...]\n")
        return 2
    split = argv.index("--")
    spec = SandboxSpec.from_json(Path(argv[0]).read_text())
    try:
        return launch(spec, argv[split + 1:])
    except (OSError, SandboxError) as exc:
        sys.stderr.write(f"tradeoffs.grading.sandbox: {exc}\n")
        return SETUP_FAILED


if __name__ == "__main__":  # pragma: no cover - exercised through subprocesses
    sys.exit(main())
