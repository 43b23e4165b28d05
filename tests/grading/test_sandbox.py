"""tradeoffs.grading.sandbox: limits always; network, PID and mount isolation where the OS allows it."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tradeoffs.grading import sandbox

LEVEL = sandbox.detect_isolation()
REPO = Path(__file__).resolve().parents[2]


def _unshare_works() -> bool:
    """Whether this machine gives namespaces, asked of the system's own tool (not of our probe)."""
    import shutil

    if shutil.which("unshare") is None:
        return False
    flags = ["--net", "--pid", "--fork", "--mount"] + ([] if __import__("os").geteuid() == 0 else ["--user"])
    return subprocess.run(["unshare", *flags, "true"], capture_output=True).returncode == 0


NAMESPACES = _unshare_works()
needs_namespaces = pytest.mark.skipif(not NAMESPACES, reason="unshare fails here: this OS gives no namespaces")


def test_the_grader_uses_namespaces_wherever_the_system_gives_them():
    """Isolation never degrades silently: where `unshare` works, the probe must find a namespace level."""
    if not NAMESPACES:
        pytest.skip("unshare fails here: limits only is the honest answer")
    sandbox.detect_isolation.cache_clear()
    assert sandbox.detect_isolation() in ("root", "userns"), \
        "unshare works on this machine but the sandbox probe says 'limits': grading would run unisolated"


def _run(tmp_path: Path, code: str, isolation: str = LEVEL, **spec_kwargs) -> subprocess.CompletedProcess:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    spec = sandbox.SandboxSpec(workdir=str(work), isolation=isolation, expose=sandbox.default_exposed_paths(),
                               **spec_kwargs)
    cmd = spec.command([sys.executable, "-c", code], tmp_path / "spec.json")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def _value(out: subprocess.CompletedProcess):
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("isolation", sorted({"limits", LEVEL}))
def test_resource_limits_apply(tmp_path, isolation):
    limits = sandbox.Limits(cpu_seconds=37, memory_bytes=3 << 30, file_bytes=5 << 20, open_files=256)
    out = _run(tmp_path, "import resource, json, os; print(json.dumps([resource.getrlimit(resource.RLIMIT_CPU)[0], "
                         "resource.getrlimit(resource.RLIMIT_DATA)[0], resource.getrlimit(resource.RLIMIT_FSIZE)[0], "
                         "resource.getrlimit(resource.RLIMIT_NOFILE)[0], os.getcwd()]))",
               isolation=isolation, limits=limits)
    assert _value(out) == [37, 3 << 30, 5 << 20, 256, str(tmp_path / "work")]


def test_cpu_limit_stops_a_busy_loop(tmp_path):
    start = time.monotonic()
    out = _run(tmp_path, "while True: pass", limits=sandbox.Limits(cpu_seconds=1))
    assert out.returncode != 0
    assert time.monotonic() - start < 60


def test_file_size_limit(tmp_path):
    out = _run(tmp_path, "open('big', 'wb').write(b'x' * (2 << 20))", limits=sandbox.Limits(file_bytes=1 << 20))
    assert out.returncode != 0


def test_environment_is_an_allow_list(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "grader-secret")
    monkeypatch.setenv("LANG", "C.UTF-8")
    out = _run(tmp_path, "import os, json; print(json.dumps([os.environ.get(k) for k in "
                         "('TRADEOFFS_PROBE', 'AWS_SECRET_ACCESS_KEY', 'LANG')]))",
               env={"TRADEOFFS_PROBE": "yes"})
    assert _value(out) == ["yes", None, "C.UTF-8"]


@needs_namespaces
def test_no_network_but_a_private_loopback(tmp_path):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    code = (  # nothing here contacts any address but loopback
        "import json, socket\n"
        "res = {'interfaces': [n for _, n in socket.if_nameindex()]}\n"
        "try:\n"
        f"    socket.create_connection(('127.0.0.1', {port}), timeout=2); res['host'] = 'reached'\n"
        "except OSError as e:\n"
        "    res['host'] = 'blocked'\n"
        "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
        "c = socket.create_connection(s.getsockname(), timeout=2); res['loopback'] = 'works'\n"
        "print(json.dumps(res))\n")
    try:
        assert _value(_run(tmp_path, code)) == {"interfaces": ["lo"], "host": "blocked", "loopback": "works"}
    finally:
        server.close()


@needs_namespaces
def test_filesystem_is_read_only_except_workdir_and_hidden_paths_vanish(tmp_path):
    secret_dir = tmp_path / "solutions"
    secret_dir.mkdir()
    (secret_dir / "answers.txt").write_text("42")
    gradebook = tmp_path / "gradebook.db"
    gradebook.write_text("grades")
    code = (  # hidden: gone (under /tmp, which is fresh inside) or empty (elsewhere)
        "import json, os\n"
        f"d, f = {str(secret_dir)!r}, {str(gradebook)!r}\n"
        "res = {'hidden_dir': os.listdir(d) if os.path.exists(d) else [],\n"
        "       'hidden_file': open(f).read() if os.path.exists(f) else ''}\n"
        "open('mine.txt', 'w').write('ok'); res['workdir'] = 'writable'\n"
        f"res['gradebook_writable'] = os.access({str(gradebook)!r}, os.W_OK)\n"
        f"res['kit_writable'] = os.access({str(Path(sandbox.__file__).parent)!r}, os.W_OK)\n"
        "print(json.dumps(res))\n")
    out = _run(tmp_path, code, hide=[str(secret_dir), str(gradebook)], protect=[str(gradebook)])
    assert _value(out) == {"hidden_dir": [], "hidden_file": "", "workdir": "writable",
                           "gradebook_writable": False, "kit_writable": False}
    assert (secret_dir / "answers.txt").read_text() == "42" and gradebook.read_text() == "grades"


def test_readonly_bind_is_at_least_visible_at_every_level(tmp_path):
    source = tmp_path / "models"
    source.mkdir()
    (source / "weights.bin").write_text("w")
    target = tmp_path / "work" / "cache" / "models"
    code = f"import json; print(json.dumps(open({str(target / 'weights.bin')!r}).read()))"
    assert _value(_run(tmp_path, code, isolation="limits", readonly_binds=[[str(source), str(target)]])) == "w"


@needs_namespaces
def test_readonly_bind_is_visible_and_read_only(tmp_path):
    source = tmp_path / "models"
    source.mkdir()
    (source / "weights.bin").write_text("w")
    target = tmp_path / "work" / "cache" / "models"
    code = ("import json, os\n"
            f"print(json.dumps([open({str(target / 'weights.bin')!r}).read(), os.access({str(target)!r}, os.W_OK)]))")
    assert _value(_run(tmp_path, code, readonly_binds=[[str(source), str(target)]])) == ["w", False]


@needs_namespaces
def test_every_process_dies_with_the_sandbox(tmp_path):
    marker = f"sandbox-daemon-{time.time_ns()}"
    code = ("import subprocess, sys\n"
            f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)  # {marker}'], "
            "start_new_session=True)\nprint('[0]')")
    _value(_run(tmp_path, code))
    time.sleep(0.5)
    assert marker not in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout


@needs_namespaces
def test_setup_failure_refuses_to_run_unsandboxed(tmp_path):
    writable = tmp_path / "work"
    out = _run(tmp_path, "print('ran')", protect=[str(writable)])
    assert out.returncode == sandbox.SETUP_FAILED
    assert "ran" not in out.stdout and "still writable" in out.stderr


@needs_namespaces
def test_the_kernel_sees_an_allow_list_only(tmp_path):
    """The kit's src/ and Python are there; its .git, solutions/, the grader's home and the rest are not."""
    home = Path.home()
    code = ("import json, os\n"
            f"repo, home = {str(REPO)!r}, {str(home)!r}\n"
            "print(json.dumps({'root': sorted(os.listdir('/')), 'uid': os.getuid(),\n"
            "  'git': os.path.exists(repo + '/.git'), 'solutions': os.path.exists(repo + '/solutions'),\n"
            "  'src': os.path.isdir(repo + '/src/tradeoffs'),\n"
            "  'home': sorted(os.listdir(home)) if os.path.isdir(home) else None}))")
    seen = _value(_run(tmp_path, code, uid=sandbox.job_uid(7)))
    assert seen["git"] is False and seen["solutions"] is False and seen["src"] is True
    assert seen["uid"] == (sandbox.job_uid(7) if LEVEL == "root" else 0)
    system = {Path(p).parts[1] for p in sandbox.SYSTEM_PATHS} | {"tmp", "dev", "proc"}
    exposed = {Path(p).parts[1] for p in sandbox.default_exposed_paths()} | {Path(str(tmp_path)).parts[1]}
    assert set(seen["root"]) <= system | exposed, f"outside the allow-list: {set(seen['root']) - system - exposed}"
    if seen["home"] is not None:  # only the way to Python or the kit, if they live in the home
        needed = {Path(p).relative_to(home).parts[0] for p in sandbox.default_exposed_paths()
                  if Path(p).is_relative_to(home) and Path(p) != home}
        assert set(seen["home"]) <= needed, f"the grader's home leaks: {sorted(set(seen['home']) - needed)}"


@needs_namespaces
def test_python_and_data_under_tmp_stay_visible(tmp_path):
    """Clean clones and scratch courses live under /tmp: the fresh /tmp must not hide what is exposed."""
    venv_like = tmp_path / "clone" / ".venv"
    venv_like.mkdir(parents=True)
    (venv_like / "marker.txt").write_text("here")
    code = f"import json; print(json.dumps(open({str(venv_like / 'marker.txt')!r}).read()))"
    out = _run(tmp_path, code)  # default_exposed_paths() + the folder
    work = tmp_path / "work"
    spec = sandbox.SandboxSpec(workdir=str(work), isolation=LEVEL,
                               expose=sandbox.default_exposed_paths() + [str(venv_like)])
    out = subprocess.run(spec.command([sys.executable, "-c", code], tmp_path / "spec2.json"),
                         capture_output=True, text=True, timeout=120)
    assert _value(out) == "here"


@needs_namespaces
def test_an_orphan_that_escapes_its_parent_dies_with_the_sandbox(tmp_path):
    """setsid + a cleared parent-death signal + double fork: the sandbox's init still takes it down."""
    marker = f"sandbox-orphan-{time.time_ns()}"
    code = ("import ctypes, os, subprocess, sys\n"
            "if os.fork() == 0:\n"
            "    os.setsid()\n"
            "    ctypes.CDLL(None).prctl(1, 0, 0, 0, 0)\n"
            f"    os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(300)  # {marker}'])\n"
            "print('[0]')\n")
    _value(_run(tmp_path, code))
    time.sleep(0.5)
    assert marker not in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout


def test_unknown_isolation_level_is_explained(tmp_path):
    spec = sandbox.SandboxSpec(workdir=str(tmp_path), isolation="docker")
    with pytest.raises(sandbox.SandboxError, match="isolation must be"):
        spec.command(["true"], tmp_path / "spec.json")


@needs_namespaces
def test_killing_the_launcher_kills_everything_inside(tmp_path):
    """A grading worker that is killed must take its kernel (and the kernel's children) along."""
    import os
    import signal

    work = tmp_path / "work"
    work.mkdir()
    marker = f"launcher-killed-{time.time_ns()}"
    spec = sandbox.SandboxSpec(workdir=str(work), isolation=LEVEL, expose=sandbox.default_exposed_paths())
    code = (f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', "
            f"'import time; time.sleep(120)  # {marker}-child']); time.sleep(120)  # {marker}")
    proc = subprocess.Popen(spec.command([sys.executable, "-c", code], tmp_path / "spec.json"))
    time.sleep(3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(1)
    assert marker not in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
