"""Linux plumbing of :mod:`tradeoffs.grading.sandbox`: namespaces, the allow-listed root, the init.

Everything here runs in the sandbox launcher (``python -m tradeoffs.grading.sandbox``), between
``unshare`` and the ``exec`` of the kernel: :func:`build_root` assembles a new root from an empty
tmpfs (only :data:`SYSTEM_PATHS`, the spec's ``expose`` paths, the work directory, fresh ``/tmp`` and
``/dev/shm``, a few devices) and ``pivot_root``\\ s into it; :func:`run_init` is the grader-owned
PID 1 that reaps every process and takes the namespace down with the kernel.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from .sandbox import SandboxSpec

# Linux constants (from <sched.h>, <sys/mount.h>, <sys/prctl.h>, <linux/capability.h>)
CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
PR_SET_PDEATHSIG = 1
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "arm64": 41}  # no libc wrapper: the raw syscall
MNT_DETACH = 2
CAP_LAST_CAP_FALLBACK = 40
SETUP_FAILED = 125  # exit status of the launcher when the sandbox could not be built

_libc = None


def libc_call(name: str, *args) -> int:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    result = getattr(_libc, name)(*args)
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"{name}{tuple(a.decode() if isinstance(a, bytes) else a for a in args)}: "
                           f"{os.strerror(err)}")
    return result


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = (lambda s: s.encode() if s is not None else None)
    libc_call("mount", enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data))


def under(path: str, roots: Sequence[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def _fresh_tmpfs(path: str, size: int, readonly: bool = False) -> None:
    _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, f"size={max(size, 4096)},mode=1777")
    if readonly:
        _mount(None, path, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, f"size={max(size, 4096)}")


def _bind_fd(fd: int, target: str, readonly: bool, device: bool = False) -> None:
    source = f"/proc/self/fd/{fd}"
    _mount(source, target, None, MS_BIND | MS_REC)
    flags = MS_REMOUNT | MS_BIND | MS_NOSUID | (MS_RDONLY if readonly else 0) | (0 if device else MS_NODEV)
    _mount(None, target, None, flags)


def _ensure_mountpoint(target: str, is_dir: bool) -> None:
    """Create ``target`` (inside a fresh tmpfs or the workdir) so something can be mounted on it."""
    if os.path.exists(target):
        return
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if is_dir:
        os.mkdir(target)
    else:
        open(target, "a").close()


def _loopback_up() -> None:
    import fcntl
    import socket
    import struct

    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = fcntl.ioctl(s.fileno(), siocgifflags, struct.pack("16sH14x", b"lo", 0))
        flags = struct.unpack("16sH14x", ifreq)[1]
        fcntl.ioctl(s.fileno(), siocsifflags, struct.pack("16sH14x", b"lo", flags | iff_up))


def drop_capabilities() -> None:
    """Empty the bounding set so that the exec'd program (uid 0 in the namespace) has no capabilities."""
    try:
        last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except OSError:
        last = CAP_LAST_CAP_FALLBACK
    for cap in range(last + 1):
        try:
            libc_call("prctl", PR_CAPBSET_DROP, cap, 0, 0, 0)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise


# What every sandbox shows besides the spec's own paths: the system's programs and libraries,
# configuration (no secrets there that another user may read), the CPU description, a few devices.
SYSTEM_PATHS = ("/usr", "/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin", "/etc",
                "/sys/devices/system/cpu")
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
NEW_ROOT = "/tmp"  # where the new root is assembled (a fresh tmpfs; then pivot_root into it)


def _open_sources(spec: "SandboxSpec") -> tuple[list[tuple[str, int]], list[tuple[str, str]]]:
    """Open (``O_PATH``) everything the new root will show, before anything is mounted over it.

    Returns ``(path, fd)`` pairs for the read-only views and ``(path, link target)`` pairs for
    symbolic links among :data:`SYSTEM_PATHS` (``/bin -> usr/bin`` on merged-/usr systems).
    """
    wanted, links = set(), []
    for path in SYSTEM_PATHS:
        if os.path.islink(path):
            links.append((path, os.readlink(path)))
        elif os.path.exists(path):
            wanted.add(path)
    wanted |= {os.path.realpath(p) for p in spec.expose if os.path.exists(p)}
    # a path inside another exposed path comes along with it
    top = sorted(p for p in wanted if not under(p, [q for q in wanted if q != p]))
    return [(p, os.open(p, os.O_PATH)) for p in top + [d for d in DEVICES if os.path.exists(d)]], links


def _mkdirs(path: str) -> None:
    os.makedirs(path, mode=0o755, exist_ok=True)


def build_root(spec: "SandboxSpec", level: str, fds: dict[str, int]) -> None:
    """Inside the new namespaces (we are PID 1): build an allow-listed root, network, limits.

    The new root is an empty tmpfs showing only :data:`SYSTEM_PATHS`, ``spec.expose`` (Python, the
    kit) read-only, a fresh ``/tmp``, ``/dev/shm``, ``/proc`` and a few devices, and the work
    directory writable. Nothing else of the machine exists inside: not the course's ``.git`` or
    solutions, not other submissions, not the grader's home.
    """
    libc_call("prctl", PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    workdir = os.path.realpath(spec.workdir)
    sources, links = _open_sources(spec)
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("tmpfs", NEW_ROOT, "tmpfs", MS_NOSUID | MS_NODEV, "size=1048576,mode=755")
    new = NEW_ROOT
    for sub in ("tmp", "dev/shm"):  # first, so that exposed paths under /tmp land inside them
        _mkdirs(new + "/" + sub)
        _fresh_tmpfs(new + "/" + sub, spec.limits.tmpfs_bytes)
    for path, target in links:
        os.symlink(target, new + path)
    for path, fd in sources:
        is_dir = os.path.isdir(f"/proc/self/fd/{fd}")
        _ensure_mountpoint(new + path, is_dir)
        _bind_fd(fd, new + path, readonly=True, device=path in DEVICES)
        os.close(fd)
    _ensure_mountpoint(new + workdir, is_dir=True)
    _bind_fd(fds["workdir"], new + workdir, readonly=False)
    uid = (65534 if spec.uid is None else int(spec.uid)) if level == "root" else None
    if uid is not None:  # before the read-only binds land inside it
        _chown_tree(new + workdir, uid)
    for i, (_, target) in enumerate(spec.readonly_binds):
        target = new + os.path.join(workdir, os.path.relpath(os.path.realpath(target), workdir))
        is_dir = os.path.isdir(f"/proc/self/fd/{fds[f'bind{i}']}")
        _ensure_mountpoint(target, is_dir)
        _bind_fd(fds[f"bind{i}"], target, readonly=True)
    _hide(spec.hide, new, keep=[workdir])
    _mkdirs(new + "/proc")
    _mkdirs(new + "/.old")
    os.chdir(new)
    import platform

    if platform.machine() not in SYS_PIVOT_ROOT:
        raise RuntimeError(f"pivot_root's system call number on {platform.machine()} is not known; "
                           f"grade on x86-64 or arm64, or with TRADEOFFS_SANDBOX=limits")
    libc_call("syscall", ctypes.c_long(SYS_PIVOT_ROOT[platform.machine()]), b".", b".old")
    os.chdir("/")
    libc_call("umount2", b"/.old", MNT_DETACH)
    os.rmdir("/.old")
    _mount(None, "/", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, "size=1048576")
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)  # only our own processes
    _loopback_up()
    for path in spec.protect:
        if os.path.exists(path) and os.access(path, os.W_OK):
            raise RuntimeError(f"{path} is still writable inside the sandbox")
    os.chdir(workdir)


def _hide(paths: Sequence[str], new: str, keep: Sequence[str]) -> None:
    """Hide paths that lie inside an exposed folder: a directory becomes empty, a file empty.

    A path that holds one of ``keep`` (the work directory) is left alone: only the way to it exists.
    """
    for path in paths:
        path = os.path.realpath(path)
        inside = new + path
        if not os.path.lexists(inside) or any(under(k, [path]) for k in keep):
            continue
        if os.path.isdir(inside):
            _fresh_tmpfs(inside, 4096)
            _mount(None, inside, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, "size=4096")
        else:
            _mount("/dev/null", inside, None, MS_BIND)
            _mount(None, inside, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)


def run_init(child: int) -> int:
    """PID 1 of the sandbox, owned by the grader: reap every process; when the kernel exits, exit
    with its status, and the kernel of the machine then kills whatever is left in the namespace
    (a ``setsid`` daemon, a process that cleared its parent-death signal). A termination request
    kills everything at once."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # interrupts are for the kernel (same process group)

    def stop(_signum, _frame):
        with contextlib.suppress(OSError):
            os.kill(-1, signal.SIGKILL)  # every process of the namespace except this one
        os._exit(128 + signal.SIGTERM)

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, stop)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return SETUP_FAILED
        except InterruptedError:
            continue
        if pid == child:
            return 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def _chown_tree(root: str, uid: int) -> None:
    """Give the work directory (which the grader filled) to the throwaway user."""
    os.chown(root, uid, uid, follow_symlinks=False)
    for base, dirs, files in os.walk(root):
        for name in dirs + files:
            os.chown(os.path.join(base, name), uid, uid, follow_symlinks=False)


def write_id_maps(uid: int, gid: int) -> None:
    Path("/proc/self/setgroups").write_text("deny")
    Path("/proc/self/uid_map").write_text(f"0 {uid} 1")
    Path("/proc/self/gid_map").write_text(f"0 {gid} 1")
