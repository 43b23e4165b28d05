"""Execute the kit's notebooks headlessly with papermill, with the notebook's own parameters.

Used by ``tradeoffs run`` / ``make run`` (every lab's solution at full size), by the test suite (every
notebook at smoke size) and by the benchmarks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path


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
