"""Write a benchmark's results into its own section of docs/benchmarks.md, atomically.

Each script owns one section, delimited by HTML comments, so scripts never overwrite each other:

    <!-- BEGIN models -->
    ...
    <!-- END models -->
"""

from __future__ import annotations

import os
import platform
import re
import tempfile
from datetime import datetime, timezone
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
HEADER = ("# Benchmarks\n\nMeasured numbers, each with the machine it came from. Regenerate a section "
          "with the script named in it; `make benchmarks` runs them all.\n")


def machine() -> str:
    """One line naming this machine: CPU model, cores, memory, GPU, torch."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            names = [line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")]
        if names:
            cpu = names[0]
    except OSError:
        pass
    try:
        import psutil

        mem = f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM"
    except ImportError:
        mem = "RAM unknown"
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{cpu}, {os.cpu_count()} cores, {mem}, {gpu}, Python {platform.python_version()}, "
            f"torch {torch.__version__}")


def settle(below: float = 1.0, timeout: float = 300.0, poll: float = 5.0) -> tuple[float, float, float]:
    """Wait (at most ``timeout`` s) until the 1-minute load average is under ``below``; return the load then.

    A benchmark started right after another job inherits that job's load average; waiting for it to
    fall keeps the record honest about whether the machine was idle when measuring began.
    """
    import time

    deadline = time.monotonic() + timeout
    while os.getloadavg()[0] >= below and time.monotonic() < deadline:
        time.sleep(poll)
    return os.getloadavg()


def table(rows: list[dict], columns: list[str] | None = None, floatfmt: str = "{:,.1f}") -> str:
    """A markdown table from a list of dicts."""
    if not rows:
        return "_no rows_\n"
    columns = columns or list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [floatfmt.format(v) if isinstance(v, float) else str(v) for v in (row.get(c, "") for c in columns)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def update_section(name: str, body: str, doc: Path = DOC) -> Path:
    """Replace (or append) the section ``name`` of docs/benchmarks.md with ``body``."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    block = f"<!-- BEGIN {name} -->\n{body.rstrip()}\n\n_Updated {stamp}._\n<!-- END {name} -->"
    text = doc.read_text() if doc.exists() else HEADER
    pattern = re.compile(rf"<!-- BEGIN {re.escape(name)} -->.*?<!-- END {re.escape(name)} -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=doc.parent, prefix=".benchmarks-", suffix=".md")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, doc)
    return doc
