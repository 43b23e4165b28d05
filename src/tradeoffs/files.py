"""Files written so that nothing is ever half-written, and their checksums.

Every writer here works the same way: write into a temporary name beside the target, then rename it
over the target (atomic on one filesystem), and delete the temporary on any error. A reader sees the
old file or the new one, never a mix; a crash leaves at most a temporary whose name carries the pid
of the process that wrote it (``.<name>.tmp-<pid>-...``), so a later run can tell a dead writer's
debris from a live one's work (:func:`tradeoffs.models.prepare_chat_model` sweeps its cache so).
Imports nothing of the kit.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


def temp_prefix(name: str) -> str:
    """The prefix of a temporary beside ``name``: hidden, and tagged with this process's pid.

    >>> temp_prefix("grades.csv").startswith(".grades.csv.tmp-")
    True
    """
    return f".{name}.tmp-{os.getpid()}-"


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks.

    Examples
    --------
    >>> p = Path(tempfile.mkdtemp()) / "x.txt"
    >>> _ = p.write_text("abc")
    >>> sha256_file(p)[:16]
    'ba7816bf8f01cfea'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: int = 0o644) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without error it replaces ``path``
    (with permissions ``mode``), otherwise it is deleted and ``path`` is left as it was.

    Examples
    --------
    >>> target = Path(tempfile.mkdtemp()) / "figure.txt"
    >>> with atomic_file(target) as tmp:
    ...     _ = tmp.write_text("done")
    >>> target.read_text()
    'done'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path.name), suffix=path.suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, mode)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write(path: str | os.PathLike, content: str | bytes, mode: int = 0o644) -> Path:
    """Write ``content`` (text as UTF-8, newlines untranslated) to ``path`` all at once; return the path.

    Examples
    --------
    >>> target = Path(tempfile.mkdtemp()) / "sub" / "grades.csv"
    >>> atomic_write(target, "a,b\\n").read_text()
    'a,b\\n'
    """
    with atomic_file(path, mode) as tmp:
        if isinstance(content, bytes):
            tmp.write_bytes(content)
        else:
            with open(tmp, "w", encoding="utf-8", newline="") as fh:
                fh.write(content)
    return Path(path)


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike) -> Iterator[Path]:
    """Write a folder all at once: yield an empty temporary folder beside ``target``; when the block
    ends without error it replaces ``target`` (an old one is removed), otherwise it is deleted and
    ``target`` is left as it was.

    Examples
    --------
    >>> root = Path(tempfile.mkdtemp())
    >>> with atomic_directory(root / "adapter") as tmp:
    ...     _ = (tmp / "weights.bin").write_bytes(b"0")
    >>> sorted(p.name for p in (root / "adapter").iterdir())
    ['weights.bin']
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=temp_prefix(target.name)))
    try:
        yield tmp
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
