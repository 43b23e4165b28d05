"""Find the kit's notebooks and execute them headlessly with papermill.

Used by ``tradeoffs run`` / ``make run`` (every lab's solution at full size) and by the test suite
(every notebook at smoke size).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from . import course


def repo_root() -> Path:
    """The course repository: ``$TRADEOFFS_REPO`` or the checkout this package is installed from."""
    env = os.environ.get("TRADEOFFS_REPO")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "solutions").is_dir() and (parent / "pyproject.toml").exists():
            return parent
    return Path.cwd()


def course_dir(root: str | os.PathLike | None = None) -> Path:
    """The course directory: ``root``, else the current directory when it is a course (it has
    ``nbgrader_config.py``, as nbgrader itself expects), else the kit's repository."""
    if root is not None:
        return Path(root).resolve()
    cwd = Path.cwd()
    return cwd if (cwd / "nbgrader_config.py").is_file() else repo_root()


def existing_labs(root: Path | None = None) -> list[str]:
    """Registered lab ids (:mod:`tradeoffs.course`) whose solution notebook exists, in course order."""
    root = root or repo_root()
    return [lab for lab in course.lab_ids(root) if (root / "solutions" / lab / f"{lab}.ipynb").exists()]


def solution_notebook(lab: str, root: Path | None = None) -> Path:
    root = root or repo_root()
    course.get(lab, root)  # a clear error for an unknown lab
    path = root / "solutions" / lab / f"{lab}.ipynb"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist yet; `tradeoffs run --list` shows the labs that do")
    return path


def concept_notebooks(root: Path | None = None) -> list[Path]:
    root = root or repo_root()
    return sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@dataclass
class RunResult:
    notebook: Path
    output: Path
    ok: bool
    seconds: float
    error: str = ""

    def line(self) -> str:
        status = "ok    " if self.ok else "FAILED"
        extra = f"  {self.error}" if self.error else ""
        return f"{status} {self.notebook.stem:<38} {self.seconds:7.1f} s  -> {self.output}{extra}"


def run_notebook(path: Path, output: Path, mode: str = "full", seed: int = 0, device: str = "auto",
                 timeout: int | None = None, progress: bool = False) -> RunResult:
    """Execute one notebook with papermill, in its own folder, with the given parameters.

    Returns a :class:`RunResult`; a failing cell gives ``ok=False`` and the error's last line.
    """
    import papermill as pm

    path = Path(path).resolve()
    output = Path(output).resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        pm.execute_notebook(
            str(path), str(output), parameters={"MODE": mode, "SEED": seed, "DEVICE": device},
            cwd=str(path.parent), kernel_name="python3", progress_bar=progress,
            execution_timeout=timeout, log_output=False,
        )
        return RunResult(path, output, True, time.perf_counter() - start)
    except Exception as exc:  # papermill raises PapermillExecutionError and friends
        message = str(exc).strip().splitlines()
        return RunResult(path, output, False, time.perf_counter() - start, message[-1] if message else repr(exc))
