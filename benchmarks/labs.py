"""Wall-clock time of every lab's solution notebook, smoke and full size, on this machine.

Runs each lab's solution with papermill (``tradeoffs.runner.run_notebook``, the code ``tradeoffs run``
and the smoke tests use), one after another, and records the seconds, the load average when the run
started and the time it finished in ``benchmarks/results/labs.json``. Rows already in that file for
other labs or modes are kept (each with its own date), so a rerun of one lab updates its rows only.
The table in docs/benchmarks.md ("Every lab, smoke and full size") is rebuilt from the file and set
beside the limits: smoke at most 60 s, full within the registry's ``compute_minutes``.

Run it on an otherwise idle machine::

    python benchmarks/labs.py                      # every lab, smoke then full (about 15 min on 2 cores)
    python benchmarks/labs.py --modes smoke        # smoke only (about 4 min)
    python benchmarks/labs.py lab4_throughput_vs_latency --modes full
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import machine, table, update_section  # noqa: E402

from tradeoffs import course, runner  # noqa: E402
from tradeoffs.files import atomic_write  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "labs.json"
SMOKE_LIMIT_S = 60.0


def _load() -> list[dict]:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else []


def _save(rows: list[dict]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(RESULTS, json.dumps(rows, indent=1))


def measure(lab: str, mode: str, out_dir: Path) -> dict:
    """Run one lab's solution in ``mode`` and return its row."""
    load = os.getloadavg()[0]
    result = runner.run_notebook(course.solution_notebook(lab), out_dir / f"{lab}-{mode}.ipynb", mode=mode)
    print(result.line(), flush=True)
    return {"lab": lab, "mode": mode, "seconds": round(result.seconds, 1), "ok": result.ok, "note": "",
            "error": result.error, "load_at_start": round(load, 2), "machine": machine(),
            "finished": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def section(rows: list[dict]) -> str:
    """The docs/benchmarks.md section built from every stored row."""
    by = {(r["lab"], r["mode"]): r for r in rows}
    lines = []
    for lab in course.labs():
        smoke, full = by.get((lab.id, "smoke")), by.get((lab.id, "full"))

        def cell(r):
            if r is None:
                return "not measured"
            status = "" if r["ok"] else " FAILED"
            load = "load not recorded" if r["load_at_start"] is None else f"load {r['load_at_start']:g}"
            return f"{r['seconds']:.1f} s{status} ({load}, {r['finished']})"

        lines.append({"lab": lab.id, "smoke": cell(smoke),
                      "smoke <= 60 s": "-" if smoke is None else ("yes" if smoke["ok"] and smoke["seconds"] <= SMOKE_LIMIT_S else "NO"),
                      "full": cell(full),
                      "registry, at most": f"{lab.compute_minutes} min",
                      "full within it": "-" if full is None else
                      ("yes" if full["ok"] and full["seconds"] <= 60 * lab.compute_minutes else "NO")})
    notes = [f"- {r['lab']}, {r['mode']}: {r['note']}" for r in rows if r.get("note")]
    machines = sorted({r["machine"] for r in rows})
    return ("## Every lab, smoke and full size\n\n"
            "`python benchmarks/labs.py`: each lab's solution notebook run with papermill "
            "(`tradeoffs.runner.run_notebook`, `SEED=0`, `DEVICE=auto`), one after another, nothing else "
            "running; the load average is the 1-minute one when the run started. Smoke is what CI and the "
            "grader run (limit 60 s); full is what a learner runs (limit: the lab registry's "
            "`compute_minutes`, which each lab's intro states). Raw rows: `benchmarks/results/labs.json`.\n\n"
            + table(lines) + ("\n" + "\n".join(notes) + "\n" if notes else "")
            + "\nMachine: " + "; ".join(machines) + ".\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labs", nargs="*", help="lab ids (default: every registered lab)")
    parser.add_argument("--modes", nargs="+", default=["smoke", "full"], choices=["smoke", "full"])
    parser.add_argument("--no-write", action="store_true", help="print, do not write the results or the doc")
    parser.add_argument("--report-only", action="store_true", help="run nothing: rebuild the doc's section from "
                        "the stored rows (after a registry change)")
    args = parser.parse_args(argv)
    labs = args.labs or [lab.id for lab in course.labs()]
    rows = _load()
    with tempfile.TemporaryDirectory(prefix="lab-runs-") as out:
        for mode in [] if args.report_only else args.modes:
            for lab in labs:
                row = measure(lab, mode, Path(out))
                rows = [r for r in rows if (r["lab"], r["mode"]) != (lab, mode)] + [row]
                if not args.no_write:
                    _save(rows)
    body = section(rows)
    if args.no_write:
        print(body)
    else:
        update_section("full-runs", body)
    failed = [r for r in rows if not r["ok"]]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
