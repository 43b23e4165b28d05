"""Release, autograde, merge and validate: the kit's nbgrader pipeline.

The course directory is the repository: ``solutions/`` is nbgrader's source directory and ``labs/``
its release directory (see ``nbgrader_config.py`` and ``docs/instructor.md``).

* :func:`release` regenerates ``labs/`` from ``solutions/`` with nbgrader's ``GenerateAssignment``;
  :func:`stale_labs` says which released labs no longer match their solutions.
* :func:`grade` autogrades a folder of submissions (one sub-folder per student) in parallel worker
  processes. Each submission is graded in a throwaway nbgrader course of its own, its kernel runs in
  :mod:`tradeoffs.sandbox`, and the scores are merged into the course gradebook and a grades CSV as
  each student finishes, so a submission that crashes, hangs or floods output costs only its own
  grade (recorded, with the reason).
* :class:`GuardedExecute` is nbgrader's ``Execute`` preprocessor made robust: sandboxed kernel, a cell
  timeout that also stops kernels which ignore interrupts, partial grades when the kernel dies, an
  output cap, and a guard that restores ``numpy``/``math``/``builtins`` before every test cell and
  zeroes a test cell during which they were replaced.
* :func:`validate_notebook` wraps nbgrader's ``Validator`` (the ``nbgrader validate`` command exits 0
  even when tests fail, so CI must use the API).

Examples
--------
>>> from tradeoffs import grading
>>> grading.COURSE_ID
'production-ai-tradeoffs'
"""

from __future__ import annotations

import ast
import contextlib
import csv
import datetime as _dt
import io
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from . import sandbox
from . import course
from .execute import course_dir, repo_root

COURSE_ID = "production-ai-tradeoffs"
CONFIG_FILE = "nbgrader_config.py"
GRADES_CSV = "grades.csv"
GRADEBOOK = "gradebook.db"
CSV_FIELDS = ("student_id", "lab", "status", "score", "max_auto_score", "manual_points_pending",
              "max_score", "late_penalty", "reason", "flags", "restored_cells", "seconds", "feedback",
              "graded_at")
STATUSES = ("graded", "partial", "error", "missing")
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]*$")

log = logging.getLogger("tradeoffs.grading")


class GradingError(RuntimeError):
    """A grading step failed for a reason the instructor can fix; the message says how."""


# ============================================================================================
# The course
# ============================================================================================
def _default_root() -> Path:
    """The current directory when it is a course, else the kit's repository (``$TRADEOFFS_REPO`` overrides)."""
    return course_dir()


def course_root(root: str | os.PathLike | None = None) -> Path:
    """The course directory: ``root``, else the current directory if it is a course, else the kit's
    repository."""
    path = Path(root).resolve() if root is not None else _default_root()
    if not (path / CONFIG_FILE).exists():
        raise GradingError(f"{path} has no {CONFIG_FILE}; run this from the kit's repository "
                           f"or pass the course directory (e.g. --root /path/to/kit)")
    return path


def course_labs(root: str | os.PathLike | None = None) -> list[str]:
    """Registered labs (:mod:`tradeoffs.course`) with a solution notebook, in course order.

    A ``solutions/<lab>/<lab>.ipynb`` that the registry does not list is an error, not a lab that
    is released and graded but skipped by ``tradeoffs run`` and the tests.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> (tmp / "solutions" / "lab2_complexity_vs_maintainability").mkdir(parents=True)
    >>> _ = (tmp / "solutions" / "lab2_complexity_vs_maintainability" / "lab2_complexity_vs_maintainability.ipynb").write_text("{}")
    >>> course_labs(tmp)
    ['lab2_complexity_vs_maintainability']
    """
    base = Path(root).resolve() if root is not None else _default_root()
    found = {p.name for p in (base / "solutions").glob("*") if (p / f"{p.name}.ipynb").is_file()}
    try:
        registered = course.lab_ids(base)
    except ValueError as exc:
        raise GradingError(str(exc)) from None
    unknown = sorted(found - set(registered))
    if unknown:
        raise GradingError(f"solutions/ holds labs the registry does not list: {', '.join(unknown)}; add each to "
                           f"{base / course.COURSE_FILE} (fields: see tradeoffs.course.Lab)")
    return [lab for lab in registered if lab in found]


def load_config(root: str | os.PathLike | None = None):
    """Read the course's ``nbgrader_config.py`` into a traitlets ``Config``."""
    from traitlets.config.loader import PyFileConfigLoader

    root = course_root(root)
    return PyFileConfigLoader(CONFIG_FILE, path=str(root)).load_config()


def _course_config(root: Path, course: Path, db: Path, extra: dict[str, dict[str, Any]] | None = None):
    """The course's config pointed at a throwaway course directory ``course`` with gradebook ``db``."""
    from traitlets.config import Config

    cfg = load_config(root)
    over = Config()
    over.CourseDirectory.root = str(course)
    over.CourseDirectory.db_url = f"sqlite:///{db}"
    over.CourseDirectory.course_id = COURSE_ID
    over.CourseDirectory.source_directory = "source"
    over.CourseDirectory.release_directory = "release"
    for section, values in (extra or {}).items():
        for key, value in values.items():
            setattr(over[section], key, value)
    cfg.merge(over)
    return cfg


def _coursedir(cfg, assignment: str = "", student: str = "*"):
    from nbgrader.coursedir import CourseDirectory

    cd = CourseDirectory(config=cfg)
    cd.assignment_id = assignment
    cd.student_id = student
    return cd


@contextlib.contextmanager
def _captured_nbgrader_log() -> Iterable[io.StringIO]:
    """Collect what nbgrader logs (it logs through traitlets' logger) into a buffer."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("[%(levelname)s] %(message)s"))
    loggers = [logging.getLogger("traitlets"), logging.getLogger("NbGraderAPI")]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
    try:
        yield buffer
    finally:
        for lg in loggers:
            lg.removeHandler(handler)


def _ensure_nbgrader_tools() -> None:
    """Make nbgrader's gradebook creation work and fast.

    Every time nbgrader creates a gradebook it runs the ``alembic`` command by name (a fresh Python
    process: seconds) just to read the schema's head revision. That fails when the environment was
    not activated (``make grade`` does not activate it) and dominates the cost of a throwaway course.
    Put the environment's ``bin`` on ``PATH``, and answer the question once per process through
    alembic's own API (same answer: ``tests/grading/test_pipeline_internals.py`` checks it).
    """
    bindir = os.path.dirname(sys.executable)
    path = os.environ.get("PATH", "")
    if bindir not in path.split(os.pathsep):
        os.environ["PATH"] = bindir + (os.pathsep + path if path else "")
    import nbgrader.api as nbapi

    if getattr(nbapi.get_alembic_version, "_tradeoffs_cached", False):
        return
    original = nbapi.get_alembic_version
    head: list[str] = []

    def get_alembic_version() -> str:
        if not head:
            try:
                from alembic.config import Config as AlembicConfig
                from alembic.script import ScriptDirectory
                from nbgrader.dbutil import _temp_alembic_ini

                with _temp_alembic_ini("sqlite:////tmp/gradebook.db") as ini:
                    head.append(ScriptDirectory.from_config(AlembicConfig(ini)).get_current_head())
            except Exception:  # fall back to nbgrader's own way
                head.append(original())
        return head[0]

    get_alembic_version._tradeoffs_cached = True  # type: ignore[attr-defined]
    get_alembic_version._original = original  # type: ignore[attr-defined]
    nbapi.get_alembic_version = get_alembic_version


def _run_converter(converter) -> str:
    """Start an nbgrader converter; raise :class:`GradingError` with its log when it fails."""
    from nbgrader.converters.base import NbGraderException

    _ensure_nbgrader_tools()
    with _captured_nbgrader_log() as buffer:
        try:
            converter.start()
        except NbGraderException as exc:
            raise GradingError(f"nbgrader {type(converter).__name__} failed: {exc}\n{buffer.getvalue()}") from exc
    return buffer.getvalue()


# ============================================================================================
# Release: solutions/ -> labs/
# ============================================================================================
def _generate_assignment(root: Path, lab: str, course: Path, db: Path) -> Path:
    """Run ``GenerateAssignment`` for ``lab`` in the throwaway course ``course``; return its release dir."""
    from nbgrader.converters import GenerateAssignment

    source = root / "solutions" / lab
    if not (source / f"{lab}.ipynb").is_file():
        raise GradingError(f"{source / (lab + '.ipynb')} does not exist; the labs with solutions are "
                           f"{', '.join(course_labs(root)) or 'none yet'}")
    target = course / "source" / lab
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    cfg = _course_config(root, course, db)
    converter = GenerateAssignment(coursedir=_coursedir(cfg, lab), config=cfg)
    converter.force = True
    converter.create_assignment = True
    _run_converter(converter)
    return course / "release" / lab


@dataclass
class ReleaseResult:
    """One lab's release: where it went and whether anything changed."""

    lab: str
    path: Path
    changed: bool


def release(root: str | os.PathLike | None = None, labs: Sequence[str] | None = None) -> list[ReleaseResult]:
    """Regenerate ``labs/<lab>/`` from ``solutions/<lab>/`` with nbgrader (solutions, hidden tests
    and outputs stripped).

    Each lab is generated in a throwaway course first and then swapped into ``labs/`` with a rename,
    so a failing generation never leaves a half-written lab, and the course gradebook is not touched.

    Parameters
    ----------
    root : path, optional
        The course directory (default: the kit's repository).
    labs : list of str, optional
        Lab ids (default: every lab with a solution).

    Returns
    -------
    list of ReleaseResult

    Examples
    --------
    >>> results = release()  # doctest: +SKIP
    >>> [r.lab for r in results if r.changed]  # doctest: +SKIP
    ['lab1_build_vs_buy']
    """
    root = course_root(root)
    chosen = list(labs) if labs else course_labs(root)
    results = []
    with tempfile.TemporaryDirectory(prefix="tradeoffs-release-") as tmp:
        for lab in chosen:
            generated = _generate_assignment(root, lab, Path(tmp) / lab, Path(tmp) / f"{lab}.db")
            dest = root / "labs" / lab
            changed = _release_differences(generated, dest) != []
            if changed:
                staging = root / "labs" / f".{lab}.new"
                if staging.exists():
                    shutil.rmtree(staging)
                shutil.copytree(generated, staging)
                for path in staging.rglob("*"):
                    if path.is_file():
                        path.chmod(0o644)
                old = root / "labs" / f".{lab}.old"
                if dest.exists():
                    if old.exists():
                        shutil.rmtree(old)
                    os.replace(dest, old)
                os.replace(staging, dest)
                shutil.rmtree(old, ignore_errors=True)
            results.append(ReleaseResult(lab, dest, changed))
    return results


def _normalised(path: Path) -> Any:
    if path.suffix == ".ipynb":
        return json.loads(path.read_text(encoding="utf-8"))
    return path.read_bytes()


def _release_differences(generated: Path, released: Path) -> list[str]:
    """What differs between a freshly generated release and ``labs/<lab>`` (empty: up to date)."""
    if not released.is_dir():
        return [f"{released} does not exist"]
    ignore = {".ipynb_checkpoints", "__pycache__"}
    files_a = {p.relative_to(generated) for p in generated.rglob("*") if p.is_file()}
    files_b = {p.relative_to(released) for p in released.rglob("*")
               if p.is_file() and not ignore & set(p.relative_to(released).parts)}
    problems = [f"missing from labs/: {p}" for p in sorted(files_a - files_b)]
    problems += [f"not generated from solutions/: {p}" for p in sorted(files_b - files_a)]
    for rel in sorted(files_a & files_b):
        if _normalised(generated / rel) != _normalised(released / rel):
            problems.append(f"differs from a fresh release: {rel}")
    return problems


def stale_labs(root: str | os.PathLike | None = None) -> dict[str, list[str]]:
    """Labs whose ``labs/`` copy is out of date with ``solutions/`` (``make release`` fixes them).

    Also reports folders in ``labs/`` that have no solution at all.

    Returns
    -------
    dict
        ``{lab: [what differs, ...]}``; empty when everything is up to date.
    """
    root = course_root(root)
    stale: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory(prefix="tradeoffs-release-check-") as tmp:
        for lab in course_labs(root):
            generated = _generate_assignment(root, lab, Path(tmp) / lab, Path(tmp) / f"{lab}.db")
            problems = _release_differences(generated, root / "labs" / lab)
            if problems:
                stale[lab] = problems
    known = set(course_labs(root))
    for extra in sorted((root / "labs").glob("*")):
        if extra.is_dir() and not extra.name.startswith(".") and extra.name not in known:
            stale[extra.name] = [f"labs/{extra.name} has no solutions/{extra.name}/{extra.name}.ipynb"]
    return stale


# ============================================================================================
# Validation (nbgrader's Validator API)
# ============================================================================================
@dataclass
class ValidationReport:
    """What nbgrader's ``Validator`` found in one notebook.

    ``passed`` is True when every test cell passed and no locked cell changed.
    """

    notebook: Path
    passed: bool
    failed: list[dict] = field(default_factory=list)
    changed: list[dict] = field(default_factory=list)
    type_changed: list[dict] = field(default_factory=list)

    def summary(self) -> str:
        if self.passed:
            return f"{self.notebook.name}: all tests pass"
        parts = []
        if self.type_changed:
            parts.append(f"{len(self.type_changed)} cell(s) changed type")
        if self.changed:
            parts.append(f"{len(self.changed)} locked cell(s) edited")
        if self.failed:
            parts.append(f"{len(self.failed)} test cell(s) failed")
        return f"{self.notebook.name}: " + ", ".join(parts)


def validate_notebook(path: str | os.PathLike, root: str | os.PathLike | None = None,
                      timeout: int | None = None) -> ValidationReport:
    """Execute ``path`` and check its test cells with nbgrader's ``Validator``.

    Unlike ``nbgrader validate`` (which exits 0 even when tests fail) this returns a report whose
    ``passed`` attribute CI can assert on.

    Parameters
    ----------
    path : path
        A notebook: a solution, a released lab or a student's copy.
    root : path, optional
        Course directory whose ``nbgrader_config.py`` applies.
    timeout : int, optional
        Per-cell timeout in seconds (default: the config's).

    Examples
    --------
    >>> report = validate_notebook("solutions/lab1_build_vs_buy/lab1_build_vs_buy.ipynb")  # doctest: +SKIP
    >>> report.passed  # doctest: +SKIP
    True
    """
    from nbgrader.validator import Validator
    from traitlets.config import Config

    path = Path(path).resolve()
    if not path.is_file():
        raise GradingError(f"{path} does not exist")
    cfg = load_config(root)
    if timeout is not None:
        over = Config()
        over.Execute.timeout = int(timeout)
        cfg.merge(over)
    _ensure_nbgrader_tools()
    validator = Validator(config=cfg)
    validator.stream = io.StringIO()
    with _captured_nbgrader_log():
        results = validator.validate(str(path))
    return ValidationReport(
        notebook=path,
        passed=not results,
        failed=list(results.get("failed", [])),
        changed=list(results.get("changed", [])),
        type_changed=list(results.get("type_changed", [])),
    )


# ============================================================================================
# Restoring deleted cells
# ============================================================================================
def _grade_id(cell: dict) -> str | None:
    return (cell.get("metadata", {}).get("nbgrader") or {}).get("grade_id")


def restore_missing_cells(submitted, released) -> list[str]:
    """Put back, in place, every nbgrader cell of ``released`` missing from ``submitted``.

    A deleted test cell comes back (nbgrader's ``OverwriteCells`` then restores its full source,
    hidden tests included); a deleted answer cell comes back as the released stub. Each cell is
    inserted just before the next nbgrader cell (in the released order) that the submission still
    has, or at the end. nbgrader's own ``add_missing_cells`` raises ``KeyError`` when a test cell
    *and* the cell before it were both deleted; this does not.

    Parameters
    ----------
    submitted, released : nbformat.NotebookNode
        ``submitted`` is modified in place.

    Returns
    -------
    list of str
        The grade ids that were restored.

    Examples
    --------
    >>> import nbformat
    >>> def cell(gid):
    ...     c = nbformat.v4.new_code_cell("pass")
    ...     c.metadata["nbgrader"] = {"grade_id": gid}
    ...     return c
    >>> rel = nbformat.v4.new_notebook(cells=[cell("a"), cell("b"), cell("c")])
    >>> sub = nbformat.v4.new_notebook(cells=[cell("a"), cell("c")])
    >>> restore_missing_cells(sub, rel), [c.metadata.nbgrader.grade_id for c in sub.cells]
    (['b'], ['a', 'b', 'c'])
    """
    import copy

    import nbformat

    order = [gid for gid in map(_grade_id, released.cells) if gid]
    restored = []
    present = {gid for gid in map(_grade_id, submitted.cells) if gid}
    used_ids = {c.get("id") for c in submitted.cells}
    for position_in_release, cell in enumerate(c for c in released.cells if _grade_id(c)):
        gid = _grade_id(cell)
        if gid in present:
            continue
        new = copy.deepcopy(cell)
        if new.cell_type == "code":
            new.outputs, new.execution_count = [], None
        if new.get("id") in used_ids or "id" not in new:
            new["id"] = nbformat.v4.new_code_cell().id
        used_ids.add(new["id"])
        later = [g for g in order[position_in_release + 1:] if g in present]
        index = len(submitted.cells)
        if later:
            index = next(i for i, c in enumerate(submitted.cells) if _grade_id(c) == later[0])
        submitted.cells.insert(index, new)
        present.add(gid)
        restored.append(gid)
    return restored


# ============================================================================================
# The guarded, sandboxed Execute preprocessor
# ============================================================================================
GUARD_INSTALL = r'''
def __tradeoffs_install_guard():
    import builtins, math, sys, types
    import numpy, numpy.testing
    mod = types.ModuleType("_tradeoffs_guard")
    modules = {"builtins": builtins, "numpy": numpy, "numpy.testing": numpy.testing, "math": math}
    attrs = {
        "numpy": ["isclose", "allclose", "array_equal", "array_equiv", "asarray", "array", "all",
                  "any", "abs", "isnan", "isfinite", "sort", "unique", "mean", "percentile", "sum"],
        "numpy.testing": [n for n in dir(numpy.testing) if n.startswith("assert")],
        "math": ["isclose", "isnan", "isinf", "isfinite", "fabs"],
    }
    managed = {"get_ipython", "exit", "quit", "display", "input", "_", "__", "___", "__IPYTHON__",
               "copyright", "credits", "license", "help", "runfile", "dreload"}
    pristine = {}
    for name, value in vars(builtins).items():
        if name in managed or (name.startswith("_") and name not in ("__import__", "__build_class__")):
            continue
        pristine[("builtins", name)] = value
    for modname, names in attrs.items():
        for name in names:
            if hasattr(modules[modname], name):
                pristine[(modname, name)] = getattr(modules[modname], name)
    aliases = {"np": "numpy", "numpy": "numpy", "math": "math"}

    def ids():
        out = {}
        for key, mod_ in modules.items():
            out["sys.modules." + key] = id(sys.modules.get(key))
        for (modname, name) in pristine:
            out[modname + "." + name] = id(vars(modules[modname]).get(name))
        return out

    def restore(ns, referenced):
        changed = []
        for key, mod_ in modules.items():
            if sys.modules.get(key) is not mod_:
                sys.modules[key] = mod_
                changed.append("sys.modules." + key)
        for (modname, name), value in pristine.items():
            if vars(modules[modname]).get(name) is not value:
                setattr(modules[modname], name, value)
                changed.append(modname + "." + name)
        if ns.get("__builtins__") is not builtins:
            ns["__builtins__"] = builtins
            changed.append("__builtins__")
        hidden = {}
        for name in referenced:
            if name not in ns:
                continue
            if name in aliases and ns[name] is not modules[aliases[name]]:
                hidden[name] = ns[name]
                ns[name] = modules[aliases[name]]
            elif ("builtins", name) in pristine and ns[name] is not pristine[("builtins", name)]:
                hidden[name] = ns.pop(name)
        mod._hidden = hidden
        return changed, sorted(hidden)

    def unhide(ns):
        for name, value in mod._hidden.items():
            ns[name] = value
        mod._hidden = {}

    mod.ids, mod.restore, mod.unhide, mod._hidden = ids, restore, unhide, {}
    sys.modules["_tradeoffs_guard"] = mod
    return repr(ids())

_tradeoffs_guard_result = __tradeoffs_install_guard()
del __tradeoffs_install_guard
'''

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
    (:data:`tradeoffs.sandbox.DEFAULT_ENV_ALLOW`: no API keys, no tokens)."""
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
        for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS"):
            env[key] = str(threads)
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
    from . import models

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
        """A kernel manager whose kernel starts inside :mod:`tradeoffs.sandbox` and talks over
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

        * The kernel starts inside :mod:`tradeoffs.sandbox` (resource limits; where the OS allows,
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

        sandbox = Bool(True, help="Run the kernel in tradeoffs.sandbox.").tag(config=True)
        isolation = Unicode("auto", help="Sandbox level: auto, root, userns or limits.").tag(config=True)
        workdir = Unicode("", help="Kernel work directory (default: a fresh temporary one).").tag(config=True)
        hide = List(Unicode(), help="Paths invisible to student code.").tag(config=True)
        protect = List(Unicode(), help="Paths that must not be writable by student code.").tag(config=True)
        private = List(Unicode(), help="Folders hidden from student code except what the kernel needs "
                                       "(default: the grader's home).").tag(config=True)
        expose = List(Unicode(), help="Extra paths the kernel may read (Python and the kit always).").tag(config=True)
        cpu_seconds = Integer(900, help="CPU-time limit of the kernel.").tag(config=True)
        memory_mb = Integer(6144, help="Memory limit of the kernel (MiB).").tag(config=True)
        threads = Integer(0, help="Threads per kernel for BLAS/OpenMP (0: library default).").tag(config=True)
        uid = Integer(65534, help="Throwaway uid when grading as root.").tag(config=True)
        guard = Bool(True, help="Restore and check builtins/numpy around test cells, and count a test "
                                "cell's execute_result only when honest.").tag(config=True)
        interrupt_grace = Integer(10, help="Seconds a timed-out cell gets to stop after an interrupt.").tag(config=True)
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


# ============================================================================================
# Submissions
# ============================================================================================
@dataclass
class Submission:
    """One student's notebook for one lab, as found in the submissions folder."""

    student: str
    lab: str
    notebook: Path
    timestamp: str | None = None

    @property
    def directory(self) -> Path:
        return self.notebook.parent


def find_submissions(submissions_dir: str | os.PathLike, labs: Sequence[str]) -> tuple[list[Submission], list[str]]:
    """Find every ``(student, lab)`` notebook under ``submissions_dir``.

    Two layouts are recognised, per student folder:

    * ``<student>/<lab>/<lab>.ipynb`` -- nbgrader's ``submitted/`` layout (``nbgrader collect``,
      ``nbgrader zip_collect``), with an optional ``timestamp.txt`` beside the notebook;
    * ``<student>/<lab>.ipynb`` -- a flat folder per student, as many LMS exports give.

    Returns
    -------
    submissions : list of Submission
    problems : list of str
        Files and folders that were skipped, and why.
    """
    base = Path(submissions_dir)
    if not base.is_dir():
        raise GradingError(f"submissions folder {base} does not exist; it should contain one folder per "
                           f"student (see docs/instructor.md, 'Collect')")
    found, problems = [], []
    for student_dir in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
        student = student_dir.name
        for lab in labs:
            nested, flat = student_dir / lab / f"{lab}.ipynb", student_dir / f"{lab}.ipynb"
            notebook = nested if nested.is_file() else flat if flat.is_file() else None
            if notebook is None:
                continue
            if notebook.is_symlink():
                problems.append(f"{notebook}: a symbolic link, not a notebook; skipped")
                continue
            stamp = notebook.parent / "timestamp.txt"
            found.append(Submission(student, lab, notebook,
                                    stamp.read_text().strip() if stamp.is_file() else None))
        for item in sorted(student_dir.rglob("*.ipynb")):
            if ".ipynb_checkpoints" in item.parts:
                continue
            if not any(s.notebook == item for s in found if s.student == student):
                problems.append(f"{item}: not a lab notebook name ({', '.join(f'{l}.ipynb' for l in labs)}); skipped")
    if not found and not problems:
        problems.append(f"{base} contains no student folders with lab notebooks")
    return found, problems


# ============================================================================================
# Results
# ============================================================================================
@dataclass
class PartScore:
    """The score of one graded cell."""

    grade_id: str
    score: float | None
    max_score: float
    autograded: bool


@dataclass
class GradeResult:
    """The outcome of grading one student's lab."""

    student: str
    lab: str
    status: str
    score: float = 0.0
    max_auto_score: float = 0.0
    manual_points_pending: float = 0.0
    max_score: float = 0.0
    late_penalty: float = 0.0
    reason: str = ""
    flags: list[str] = field(default_factory=list)
    restored_cells: list[str] = field(default_factory=list)
    parts: list[PartScore] = field(default_factory=list)
    seconds: float = 0.0
    feedback: str = ""
    autograded: str = ""
    timestamp: str | None = None
    graded_at: str = ""
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def full_marks(self) -> bool:
        """Every autograded part scored its maximum."""
        return self.status == "graded" and self.max_auto_score > 0 and self.score >= self.max_auto_score - 1e-9

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> "GradeResult":
        data = json.loads(text)
        data["parts"] = [PartScore(**p) for p in data.get("parts", [])]
        return cls(**data)

    def csv_row(self) -> dict[str, str]:
        return {
            "student_id": self.student, "lab": self.lab, "status": self.status,
            "score": f"{self.score:g}", "max_auto_score": f"{self.max_auto_score:g}",
            "manual_points_pending": f"{self.manual_points_pending:g}", "max_score": f"{self.max_score:g}",
            "late_penalty": f"{self.late_penalty:g}", "reason": self.reason, "flags": "; ".join(self.flags),
            "restored_cells": " ".join(self.restored_cells), "seconds": f"{self.seconds:.1f}",
            "feedback": self.feedback, "graded_at": self.graded_at,
        }


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read_grades_csv(path: str | os.PathLike) -> list[dict[str, str]]:
    """Rows of a grades CSV written by :func:`grade` (empty when it does not exist)."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def write_grades_csv(path: str | os.PathLike, results: Iterable[GradeResult]) -> None:
    """Merge ``results`` into the CSV at ``path`` (one row per student and lab) atomically."""
    path = Path(path)
    rows = {(r["student_id"], r["lab"]): r for r in read_grades_csv(path)}
    for result in results:
        rows[(result.student, result.lab)] = result.csv_row()
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for key in sorted(rows):
        writer.writerow(rows[key])
    _atomic_write_text(path, out.getvalue())


# ============================================================================================
# The gradebook
# ============================================================================================
def _ensure_assignment(root: Path, lab: str, db: Path) -> None:
    """Make sure the course gradebook knows ``lab`` (its notebook and cells), as generated now."""
    with tempfile.TemporaryDirectory(prefix="tradeoffs-gb-") as tmp:
        _generate_assignment(root, lab, Path(tmp), db)


def merge_result(db: str | os.PathLike, result: GradeResult) -> None:
    """Write one student's autograded scores into the course gradebook.

    Manual scores already entered (formgrader) are kept; ``needs_manual_grade`` follows nbgrader's
    own rule. A submission that could not be graded gets zero on its autograded cells and is flagged.
    """
    from nbgrader.api import Gradebook, MissingEntry

    _ensure_nbgrader_tools()
    with warnings.catch_warnings(), Gradebook(f"sqlite:///{db}", COURSE_ID) as gb:
        warnings.simplefilter("ignore")  # SQLAlchemy chatter from inside nbgrader's gradebook
        gb.update_or_create_student(result.student)
        kwargs = {}
        if result.timestamp:
            from nbgrader.utils import parse_utc

            with contextlib.suppress(Exception):
                kwargs["timestamp"] = parse_utc(result.timestamp)
        submission = gb.update_or_create_submission(result.lab, result.student, **kwargs)
        scores = {p.grade_id: p for p in result.parts}
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                part = scores.get(grade.name)
                if part is not None:
                    grade.auto_score = part.score
                elif grade.cell.cell_type == "code":
                    grade.auto_score = 0.0  # not graded (crash before this cell, or unreadable)
                grade.needs_manual_grade = grade.manual_score is not None or grade.auto_score is None
            notebook.flagged = bool(result.flags) or result.status in ("error", "partial")
            with contextlib.suppress(MissingEntry, AttributeError):
                notebook.late_submission_penalty = result.late_penalty or None
        gb.db.commit()


# ============================================================================================
# The worker: one submission in one throwaway course
# ============================================================================================
@dataclass
class Job:
    """Everything a worker process needs to grade one submission."""

    index: int
    student: str
    lab: str
    notebook: str
    timestamp: str | None
    root: str
    template: str
    job_dir: str
    cell_timeout: int
    interrupt_grace: int
    cpu_seconds: int
    memory_mb: int
    threads: int
    isolation: str
    hide: list[str]
    protect: list[str]
    guard: bool = True

    @property
    def internal_id(self) -> str:
        """The student id inside the throwaway course (safe for paths and nbgrader's regexes)."""
        return f"s{self.index:04d}"


def run_job(job: Job) -> GradeResult:
    """Grade one submission (runs in a worker process; see :func:`grade`)."""
    import nbformat
    from nbgrader.api import Gradebook
    from nbgrader.converters import Autograde, GenerateFeedback

    start = time.perf_counter()
    root, template, job_dir = Path(job.root), Path(job.template), Path(job.job_dir)
    course = job_dir / "course"
    sid = job.internal_id
    result = GradeResult(student=job.student, lab=job.lab, status="error", timestamp=job.timestamp)
    shutil.copytree(template / "source", course / "source")
    shutil.copy2(template / GRADEBOOK, course / GRADEBOOK)
    submitted = course / "submitted" / sid / job.lab
    submitted.mkdir(parents=True)
    src = Path(job.notebook)
    skipped = _copy_submission(src, job.lab, submitted)
    if skipped:
        result.flags.append(f"files not copied: {', '.join(skipped)}")
    if job.timestamp:
        from nbgrader.utils import parse_utc

        try:
            parse_utc(job.timestamp)
            (submitted / "timestamp.txt").write_text(job.timestamp)
        except Exception:  # nbgrader would fail the whole submission on it
            (submitted / "timestamp.txt").unlink(missing_ok=True)
            result.timestamp = None
            result.flags.append(f"timestamp.txt unreadable, ignored: {job.timestamp[:60]!r}")
    target = submitted / f"{job.lab}.ipynb"
    try:
        nb = nbformat.read(target, as_version=4)
    except Exception as exc:  # not JSON, not a notebook
        result.reason = f"the notebook could not be read ({type(exc).__name__}: {str(exc)[:200]})"
        return _finish_failed(result, template, job.lab, start)
    released = nbformat.read(template / "release" / job.lab / f"{job.lab}.ipynb", as_version=4)
    result.restored_cells = restore_missing_cells(nb, released)
    nbformat.write(nb, target)

    report_path = job_dir / "execute.json"
    cfg = _course_config(root, course, course / GRADEBOOK, extra={
        "GuardedExecute": {
            "timeout": job.cell_timeout, "interrupt_grace": job.interrupt_grace,
            "cpu_seconds": job.cpu_seconds, "memory_mb": job.memory_mb, "threads": job.threads,
            "isolation": job.isolation, "workdir": str(job_dir / "run"), "report_path": str(report_path),
            "hide": job.hide, "protect": job.protect, "uid": 65534, "guard": job.guard,
            "expose": [str(root)],
        },
        "Autograde": {"autograde_preprocessors": autograde_preprocessors(), "create_student": True},
        "OverwriteCells": {"add_missing_cells": True},
    })
    coursedir = _coursedir(cfg, job.lab, sid)
    result.phases["prepare"] = time.perf_counter() - start
    try:
        autograde = Autograde(coursedir=coursedir, config=cfg)
        autograde.force = True
        autograde.create_student = True
        _run_converter(autograde)
    except GradingError as exc:
        result.reason = _short_reason(str(exc))
        return _finish_failed(result, template, job.lab, start)
    result.phases["autograde"] = time.perf_counter() - start - result.phases["prepare"]
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    result.phases.update({f"kernel_{k}": v for k, v in report.get("seconds", {}).items()})
    try:
        mark = time.perf_counter()
        feedback = GenerateFeedback(coursedir=_coursedir(cfg, job.lab, sid), config=cfg)
        feedback.force = True
        _run_converter(feedback)
        result.feedback = str(course / "feedback" / sid / job.lab / f"{job.lab}.html")
        result.phases["feedback"] = time.perf_counter() - mark
    except GradingError as exc:
        result.flags.append(f"feedback not generated: {_short_reason(str(exc))}")
    result.autograded = str(course / "autograded" / sid / job.lab / f"{job.lab}.ipynb")
    with Gradebook(f"sqlite:///{course / GRADEBOOK}", COURSE_ID) as gb:
        submission = gb.find_submission(job.lab, sid)
        for notebook in submission.notebooks:
            result.late_penalty += float(notebook.late_submission_penalty or 0)
            for grade in notebook.grades:
                autograded = grade.cell.cell_type == "code"
                result.parts.append(PartScore(grade.name, grade.auto_score, float(grade.max_score), autograded))
    _summarise(result)
    result.status = "partial" if report.get("kernel") == "stopped" else "graded"
    result.reason = report.get("reason", "")
    if report.get("timeouts"):
        result.flags.append(f"timed out: {', '.join(report['timeouts'])}")
    result.flags += [f"tampering {t}" for t in report.get("tampering", [])]
    if report.get("shadowed"):
        result.flags.append(f"shadowed names hidden during tests: {'; '.join(report['shadowed'])}")
    if report.get("truncated"):
        result.flags.append(f"output truncated: {', '.join(report['truncated'])}")
    if result.restored_cells:
        result.flags.append(f"restored deleted cells: {', '.join(result.restored_cells)}")
    result.seconds = time.perf_counter() - start
    return result


MAX_SUBMITTED_FILE = 50 << 20


def _copy_submission(notebook: Path, lab: str, dest: Path) -> list[str]:
    """Copy a submission into the throwaway course; return what was skipped and why.

    In nbgrader's layout (``<student>/<lab>/``) files beside the notebook come along (a student may
    submit a helper module); in a flat student folder only the notebook does. Symbolic links and
    files over 50 MiB never do.
    """
    skipped = []
    items = list(notebook.parent.iterdir()) if notebook.parent.name == lab else [notebook]
    for item in items:
        if item.name in (".ipynb_checkpoints", "__pycache__"):
            continue
        if item.is_symlink():
            skipped.append(f"{item.name} (symbolic link)")
        elif item.is_dir():
            shutil.copytree(item, dest / item.name, symlinks=True,
                            ignore=lambda d, names: [n for n in names if os.path.islink(os.path.join(d, n))])
        elif item.stat().st_size > MAX_SUBMITTED_FILE:
            skipped.append(f"{item.name} (larger than 50 MiB)")
        elif item.suffix != ".ipynb" or item == notebook:
            shutil.copy2(item, dest / item.name)
    return skipped


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b.*")


def _short_reason(text: str) -> str:
    """The most telling line of a log: the last exception raised, else the last error message."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    exceptions = [ln for ln in lines if _EXCEPTION_LINE.match(ln)]
    if exceptions:
        return exceptions[-1][:500]
    errors = [ln for ln in lines if ln.startswith("[ERROR]") and "Please see" not in ln]
    return (errors[-1] if errors else lines[-1] if lines else text)[:500]


def _template_parts(template: Path, lab: str) -> list[PartScore]:
    """Every graded cell of ``lab`` with no score (for submissions that could not be graded)."""
    from nbgrader.api import Gradebook

    parts = []
    with Gradebook(f"sqlite:///{template / GRADEBOOK}", COURSE_ID) as gb:
        for notebook in gb.find_assignment(lab).notebooks:
            for cell in notebook.grade_cells:
                autograded = cell.cell_type == "code"
                parts.append(PartScore(cell.name, 0.0 if autograded else None, float(cell.max_score), autograded))
    return parts


def _summarise(result: GradeResult) -> None:
    result.max_score = sum(p.max_score for p in result.parts)
    result.max_auto_score = sum(p.max_score for p in result.parts if p.autograded)
    result.score = sum(p.score or 0.0 for p in result.parts if p.autograded)
    result.manual_points_pending = sum(p.max_score for p in result.parts if not p.autograded and p.score is None)


def _finish_failed(result: GradeResult, template: Path, lab: str, start: float) -> GradeResult:
    result.status = "error"
    with contextlib.suppress(Exception):
        result.parts = _template_parts(template, lab)
    _summarise(result)
    result.seconds = time.perf_counter() - start
    return result


def _cpu_seconds(children: bool = False) -> float:
    """CPU time of this process (and, with ``children``, of every child it has reaped)."""
    import resource

    use = resource.getrusage(resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


def _grade_job_file(job_file: str) -> None:
    """Grade the job described in ``job_file``; write ``result.json`` beside it atomically."""
    job = Job(**json.loads(Path(job_file).read_text()))
    own, reaped = _cpu_seconds(), _cpu_seconds(children=True)
    try:
        result = run_job(job)
        # CPU seconds of grading, worker and kernel (as the kernel measured itself and its children;
        # else what the worker reaped): on a shared machine, the better estimate of the wall time an
        # idle one would need.
        kernel = result.phases.get("kernel_cpu", _cpu_seconds(children=True) - reaped)
        result.phases["cpu"] = _cpu_seconds() - own + kernel
    except BaseException as exc:  # record it; the parent turns a missing result into a zero anyway
        import traceback

        traceback.print_exc()
        result = _finish_failed(GradeResult(job.student, job.lab, "error", timestamp=job.timestamp,
                                            reason=f"grader error: {type(exc).__name__}: {exc}"[:500]),
                                Path(job.template), job.lab, time.perf_counter())
    _atomic_write_text(Path(job.job_dir) / "result.json", result.to_json())


def _worker_main() -> int:
    """A long-lived worker: read job files from stdin, one per line; answer ``done`` on stdout.

    Imports (nbgrader, nbconvert) cost seconds, so a worker grades many submissions; each one still
    runs in its own throwaway course with its own sandboxed kernel. The protocol channel is a private
    copy of stdout: anything else that prints goes to stderr (the worker's log).
    """
    import warnings

    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s [%(levelname)s] %(message)s", stream=sys.stderr)
    warnings.filterwarnings("ignore", module="nbgrader")  # SQLAlchemy chatter inside nbgrader's gradebook
    warnings.filterwarnings("ignore", message=".*not in session.*")
    while line := sys.stdin.readline():
        job_file = line.strip()
        if not job_file:
            continue
        sys.stderr.write(f"=== job {job_file}\n")
        _grade_job_file(job_file)
        protocol.write(f"done {job_file}\n")
    return 0


def _fast_imports() -> None:
    """jsonschema (imported by nbformat) compiles an RFC 3987 grammar at import when the optional
    ``rfc3987_syntax`` package is installed: seconds per process, for a URI format nbformat's schema
    never uses. Workers skip it."""
    sys.modules.setdefault("rfc3987_syntax", None)


# ============================================================================================
# The orchestrator
# ============================================================================================
@dataclass
class GradeSettings:
    """Knobs of :func:`grade`; the defaults suit the kit's labs on a 2-core laptop."""

    workers: int = 2
    cell_timeout: int | None = None  # default: the config's Execute.timeout
    job_timeout: int = 1200
    interrupt_grace: int = 10
    cpu_seconds: int = 900
    memory_mb: int = 6144
    isolation: str = "auto"
    guard: bool = True


def _preexec_worker() -> None:  # pragma: no cover - runs in the child
    """Die with the grader: a worker orphaned by Ctrl-C must not keep grading."""
    import ctypes

    with contextlib.suppress(Exception):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        proc.wait(timeout=10)


def grade(submissions_dir: str | os.PathLike, root: str | os.PathLike | None = None,
          labs: Sequence[str] | None = None, settings: GradeSettings | None = None,
          csv_path: str | os.PathLike | None = None, progress: bool = True,
          work_dir: str | os.PathLike | None = None) -> list[GradeResult]:
    """Autograde every submission under ``submissions_dir`` in parallel; return one result each.

    Each submission is graded by its own worker process in a throwaway nbgrader course (so nbgrader,
    which has no parallel autograde, never shares a gradebook between processes) with its kernel in
    :mod:`tradeoffs.sandbox`. As each one finishes, its scores are merged into the course gradebook
    (``gradebook.db``), its feedback is copied to ``feedback/<student>/<lab>/<lab>.html``, its graded
    notebook to ``autograded/<student>/<lab>/`` (nbgrader's layout: formgrader and
    ``nbgrader release_feedback`` work on them) and its row is written to the grades CSV -- all
    atomically, so results already written survive anything a later submission does.

    Parameters
    ----------
    submissions_dir : path
        One folder per student (see :func:`find_submissions`).
    root : path, optional
        The course directory (default: the kit's repository).
    labs : list of str, optional
        Only these labs (default: every lab with a solution).
    settings : GradeSettings, optional
    csv_path : path, optional
        Grades CSV (default: ``<root>/grades.csv``).
    progress : bool
        Show a progress bar.
    work_dir : path, optional
        Where throwaway courses go (default: a temporary directory, removed afterwards).

    Returns
    -------
    list of GradeResult
        Including ``status="missing"`` rows for labs a student did not submit that others did.
    """
    from tqdm.auto import tqdm

    settings = settings or GradeSettings()
    root = course_root(root)
    chosen = list(labs) if labs else course_labs(root)
    if not chosen:
        raise GradingError(f"no labs to grade: {root / 'solutions'} has no <lab>/<lab>.ipynb yet")
    submissions, problems = find_submissions(submissions_dir, chosen)
    for problem in problems:
        log.warning(problem)
    if not submissions:
        raise GradingError(f"no lab notebooks found under {submissions_dir}: " + "; ".join(problems))
    cfg = load_config(root)
    cell_timeout = settings.cell_timeout or int(cfg.Execute.get("timeout", 300))
    db = root / GRADEBOOK
    csv_path = Path(csv_path) if csv_path else root / GRADES_CSV
    isolation = sandbox.detect_isolation() if settings.isolation == "auto" else settings.isolation
    if isolation == "limits":
        log.warning("student code runs with resource limits only (no namespaces on this machine); "
                    "see docs/instructor.md, 'Untrusted code'")
    own_tmp = work_dir is None
    work = Path(tempfile.mkdtemp(prefix="tg-")) if own_tmp else Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    results: list[GradeResult] = []
    try:
        templates = {}
        for lab in sorted({s.lab for s in submissions}):
            templates[lab] = work / f"template-{lab}"
            _generate_assignment(root, lab, templates[lab], templates[lab] / GRADEBOOK)
            _ensure_assignment(root, lab, db)
        hide = _safe_hide([root / d for d in ("solutions", "submitted", "autograded", "feedback")]
                          + [db, csv_path, Path(submissions_dir).resolve(), work])
        threads = max(1, (os.cpu_count() or 2) // max(1, settings.workers))
        jobs = []
        for i, sub in enumerate(submissions):
            job_dir = work / f"j{i:04d}"
            job_dir.mkdir()
            jobs.append(Job(index=i, student=sub.student, lab=sub.lab, notebook=str(sub.notebook.resolve()),
                            timestamp=sub.timestamp, root=str(root), template=str(templates[sub.lab]),
                            job_dir=str(job_dir), cell_timeout=cell_timeout,
                            interrupt_grace=settings.interrupt_grace, cpu_seconds=settings.cpu_seconds,
                            memory_mb=settings.memory_mb, threads=threads, isolation=isolation,
                            hide=hide, protect=[str(db), str(root / "labs"), str(root / "solutions")],
                            guard=settings.guard))
        bar = tqdm(total=len(jobs), desc="grading", unit="notebook", disable=not progress)
        try:
            for result in _run_jobs(jobs, settings, templates, work):
                _publish(root, db, csv_path, result)
                results.append(result)
                bar.set_postfix_str(f"{result.student}/{result.lab}: {result.status} {result.score:g}", refresh=False)
                bar.update(1)
        finally:
            bar.close()
        missing = _missing_rows(submissions, chosen)
        if missing:
            write_grades_csv(csv_path, missing)
        results += missing
    finally:
        if own_tmp:
            shutil.rmtree(work, ignore_errors=True)
    return results


def _safe_hide(paths: Iterable[Path]) -> list[str]:
    """Paths to hide from student code, minus any that would hide Python or the kit themselves."""
    needed = sandbox.default_exposed_paths()
    out = []
    for path in paths:
        path = str(Path(path).resolve())
        if any(n == path or n.startswith(path.rstrip("/") + "/") for n in needed):
            log.warning("not hiding %s from student code: the kit or Python lives inside it", path)
            continue
        out.append(path)
    return out


def _missing_rows(submissions: list[Submission], labs: Sequence[str]) -> list[GradeResult]:
    students = sorted({s.student for s in submissions})
    submitted_labs = [lab for lab in labs if any(s.lab == lab for s in submissions)]
    have = {(s.student, s.lab) for s in submissions}
    stamp = _now()
    return [GradeResult(student, lab, "missing", reason="no notebook submitted", graded_at=stamp)
            for student in students for lab in submitted_labs if (student, lab) not in have]


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class _Worker:
    """One worker process and the job it is grading."""

    def __init__(self, work: Path, number: int):
        self.log_path = work / f"worker-{number}.log"
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "tradeoffs.grading", "_worker"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                     start_new_session=True, preexec_fn=_preexec_worker)
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.buffer = b""
        self.job: Job | None = None
        self.started = 0.0
        self.log_offset = 0

    def assign(self, job: Job) -> None:
        job_file = Path(job.job_dir) / "job.json"
        _atomic_write_text(job_file, json.dumps(asdict(job)))
        self.job, self.started = job, time.monotonic()
        self.log.flush()
        self.log_offset = self.log_path.stat().st_size
        self.proc.stdin.write(f"{job_file}\n".encode())
        self.proc.stdin.flush()

    def finished(self) -> bool:
        """True once the worker answered for its job (reads what is available, never blocks)."""
        with contextlib.suppress(BlockingIOError, TypeError):
            chunk = self.proc.stdout.read()
            if chunk:
                self.buffer += chunk
        if b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            return line.startswith(b"done ")
        return False

    def job_log(self) -> str:
        with contextlib.suppress(OSError):
            with open(self.log_path, "rb") as fh:
                fh.seek(self.log_offset)
                return fh.read()[-20000:].decode(errors="replace")
        return ""

    def stop(self, kill: bool = False) -> None:
        if kill:
            _kill_group(self.proc)
        else:
            with contextlib.suppress(Exception):
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                _kill_group(self.proc)
        self.log.close()


def _run_jobs(jobs: list[Job], settings: GradeSettings, templates: dict[str, Path], work: Path):
    """Grade jobs with up to ``settings.workers`` worker processes; yield results as they finish.

    A worker that dies or overruns ``settings.job_timeout`` is killed with everything it started
    (its kernel sandbox dies with it) and replaced; that job is recorded as a zero with the reason.
    """
    pending = list(jobs)
    workers: list[_Worker] = []
    spawned = 0
    try:
        while pending or any(w.job for w in workers):
            for worker in workers:
                if worker.job is None and pending:
                    worker.assign(pending.pop(0))
            while pending and len(workers) < max(1, settings.workers):
                spawned += 1
                worker = _Worker(work, spawned)
                worker.assign(pending.pop(0))
                workers.append(worker)
            time.sleep(0.05)
            for worker in list(workers):
                job = worker.job
                if job is None:
                    continue
                if worker.finished():
                    worker.job = None
                    yield _collect(job, None, False, settings, templates[job.lab], worker.started, "")
                    continue
                overdue = time.monotonic() - worker.started > settings.job_timeout
                dead = worker.proc.poll() is not None
                if overdue or dead:
                    code = worker.proc.poll()
                    worker.stop(kill=True)
                    workers.remove(worker)
                    yield _collect(job, code, overdue and not dead, settings, templates[job.lab],
                                   worker.started, worker.job_log())
    finally:
        for worker in workers:
            worker.stop(kill=any(w.job for w in workers))


def _collect(job: Job, returncode: int | None, overdue: bool, settings: GradeSettings,
             template: Path, started: float, log_text: str) -> GradeResult:
    result_file = Path(job.job_dir) / "result.json"
    if result_file.exists() and not overdue:
        result = GradeResult.from_json(result_file.read_text())
    else:
        tail = _short_reason(log_text) if log_text.strip() else "no log"
        if overdue:
            reason = (f"grading took longer than {settings.job_timeout} s and was stopped "
                      f"(an endless loop that ignores interrupts, or a very slow notebook)")
        else:
            reason = f"the grader process died (exit status {returncode}): {tail}"
        result = _finish_failed(GradeResult(job.student, job.lab, "error", timestamp=job.timestamp,
                                            reason=reason), template, job.lab, started)
    result.seconds = time.monotonic() - started
    result.graded_at = _now()
    return result


def _publish(root: Path, db: Path, csv_path: Path, result: GradeResult) -> None:
    """Copy feedback and the graded notebook into the course, merge into the gradebook, update the CSV.

    The folders are copied whole (nbgrader's ``release_feedback`` needs the ``timestamp.txt`` and
    ``submission_secret.txt`` that travel with the feedback) and swapped in with a rename.
    """
    feedback_dir = root / "feedback" / result.student / result.lab
    autograded_dir = root / "autograded" / result.student / result.lab
    html = f"{result.lab}.html"
    if result.feedback and Path(result.feedback).exists():
        _replace_dir(Path(result.feedback).parent, feedback_dir)
    else:
        feedback_dir.mkdir(parents=True, exist_ok=True)
        _atomic_write_text(feedback_dir / html, _failure_feedback_html(result))
    result.feedback = str((feedback_dir / html).relative_to(root))
    if result.autograded and Path(result.autograded).exists():
        _replace_dir(Path(result.autograded).parent, autograded_dir)
        result.autograded = str((autograded_dir / f"{result.lab}.ipynb").relative_to(root))
    merge_result(db, result)
    write_grades_csv(csv_path, [result])


def _replace_dir(src: Path, dest: Path) -> None:
    """Copy the folder ``src`` to ``dest``, replacing what was there, with a final rename."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.new-"))
    shutil.copytree(src, staging, dirs_exist_ok=True, symlinks=False)
    for path in [staging, *staging.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    old = None
    if dest.exists():
        old = dest.parent / f".{dest.name}.old-{os.getpid()}-{time.monotonic_ns()}"
        os.replace(dest, old)
    os.replace(staging, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _failure_feedback_html(result: GradeResult) -> str:
    import html

    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(result.lab)}</title></head>"
            f"<body><h1>{html.escape(result.lab)}: not graded</h1><p>Student: {html.escape(result.student)}</p>"
            f"<p>Your notebook could not be graded: {html.escape(result.reason or result.status)}.</p>"
            f"<p>Score: {result.score:g} / {result.max_score:g}. Ask your instructor to look at it.</p>"
            f"</body></html>\n")


if __name__ == "__main__":  # pragma: no cover - worker processes
    _fast_imports()
    if sys.argv[1:] == ["_worker"]:
        sys.exit(_worker_main())
    sys.stderr.write("usage: python -m tradeoffs.grading _worker  (internal: `tradeoffs grade` starts it)\n")
    sys.exit(2)
