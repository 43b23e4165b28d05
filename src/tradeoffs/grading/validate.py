"""Validation: nbgrader's ``Validator`` API (``nbgrader validate`` exits 0 even when tests fail).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path

from .config import GradingError, _captured_nbgrader_log, _ensure_nbgrader_tools, load_config


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
