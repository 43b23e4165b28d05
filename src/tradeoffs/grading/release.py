"""Release: regenerate ``labs/`` from ``solutions/`` with nbgrader, and say which labs are stale.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from .config import GradingError, _course_config, _coursedir, _run_converter, course_labs, course_root


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
