"""Time the grading pipeline and write the "Grading" section of docs/benchmarks.md.

For every lab that has a solution (plus the tiny fixture lab from tests/grading, as a floor), a class
of ``--students`` fake students all submit the solution notebook -- the slowest honest submission,
since every cell runs -- and the class is graded by ``tradeoffs.grading.grade`` twice: with one
worker process and with two. Reported per lab:

* seconds per submitted notebook (median over the class, one worker: worker start-up, throwaway
  course, sandboxed kernel, every cell, feedback HTML, merge);
* the wall time to grade the ``--students`` submissions with 1 and with 2 workers, and the speed-up;
* a projection for a class of 30 students with 2 workers.

The issue's targets: at most 30 s per submitted notebook on 2 cores, and 30 students x 6 labs in
under 45 minutes with 2 workers.

Usage::

    python benchmarks/grading.py                     # every lab, 4 students (about 15 minutes on 2 cores)
    python benchmarks/grading.py --students 2 --labs fixture_lab --no-write
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import machine, table, update_section  # noqa: E402

from tradeoffs import course, grading  # noqa: E402
from tradeoffs.grading import sandbox  # noqa: E402

FIXTURE = REPO / "tests" / "grading" / "fixtures" / "solutions"
RESULTS = Path(__file__).resolve().parent / "results" / "grading.json"
CLASS_SIZE, LAB_COUNT = 30, 6


def _course(tmp: Path, labs: list[str]) -> Path:
    course = tmp / "course"
    course.mkdir(parents=True)
    shutil.copy2(REPO / "nbgrader_config.py", course / "nbgrader_config.py")
    shutil.copy2(FIXTURE.parent / "course.toml", course / "course.toml")  # registers fixture_lab
    for lab in labs:
        source = (REPO / "solutions" / lab) if (REPO / "solutions" / lab).is_dir() else FIXTURE / lab
        shutil.copytree(source, course / "solutions" / lab)
    return course


def _submissions(course: Path, lab: str, students: int, folder: Path) -> Path:
    solution = course / "solutions" / lab / f"{lab}.ipynb"
    for i in range(students):
        target = folder / f"student{i:02d}" / lab
        target.mkdir(parents=True)
        shutil.copy2(solution, target / f"{lab}.ipynb")
    return folder


def _load() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def bench_lab(lab: str, students: int, tmp: Path) -> dict:
    course = _course(tmp / lab, [lab])
    grading.release(course)
    row = {"lab": lab}
    for workers in (1, 2):
        folder = _submissions(course, lab, students, tmp / lab / f"submitted-{workers}")
        load = _load()
        start = time.perf_counter()
        results = grading.grade(folder, root=course, settings=grading.GradeSettings(workers=workers),
                                csv_path=tmp / lab / f"grades-{workers}.csv", progress=False)
        wall = time.perf_counter() - start
        bad = [r for r in results if not r.full_marks]
        if bad:  # report it (the lab is probably being written), keep measuring
            failing = sorted({p.grade_id for r in bad for p in r.parts if p.autograded and p.score != p.max_score})
            row["note"] = f"solution scored {bad[0].score:g}/{bad[0].max_auto_score:g}: {', '.join(failing)}"
            print(f"warning: {lab}: {row['note']} ({bad[0].status} {bad[0].reason})", flush=True)
        row[f"wall_{workers}"] = wall
        row[f"load_{workers}"] = load
        if workers == 1:
            row["per_notebook"] = statistics.median(r.seconds for r in results)
            for phase in ("kernel_start", "kernel_cells", "feedback", "cpu"):
                row[phase] = statistics.median(r.phases.get(phase, float("nan")) for r in results)
    row["speedup"] = row["wall_1"] / row["wall_2"]
    row["class_of_30_min"] = CLASS_SIZE * row["wall_2"] / students / 60
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=4, help="submissions per lab (default 4)")
    parser.add_argument("--labs", nargs="*", help="lab ids (default: every lab with a solution, and fixture_lab)")
    parser.add_argument("--no-write", action="store_true", help="print the table, leave docs/benchmarks.md alone")
    args = parser.parse_args()
    grading.fast_imports()
    labs = args.labs or [*course.existing_labs(), "fixture_lab"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="tradeoffs-bench-grading-") as tmp:
        for lab in labs:
            print(f"grading {args.students} x {lab} with 1 and 2 workers ...", flush=True)
            rows.append(bench_lab(lab, args.students, Path(tmp)))
            print(json.dumps(rows[-1]), flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"machine": machine(), "isolation": sandbox.detect_isolation(),
                                   "students": args.students, "rows": rows}, indent=1))
    real = [r for r in rows if r["lab"] != "fixture_lab"]
    shown = [{"lab": r["lab"], "s / notebook (1 worker)": r["per_notebook"],
              "CPU s / notebook": r["cpu"],
              "of which: kernel start / cells / feedback (s)":
                  f"{r['kernel_start']:.1f} / {r['kernel_cells']:.1f} / {r['feedback']:.1f}",
              f"{args.students} notebooks, 1 worker (s)": r["wall_1"],
              f"{args.students} notebooks, 2 workers (s)": r["wall_2"], "speed-up": r["speedup"],
              "30 students, 2 workers (min)": r["class_of_30_min"],
              "load avg (1 / 2 workers)": f"{r['load_1']:.1f} / {r['load_2']:.1f}",
              "note": r.get("note", "")} for r in rows]
    projection = ""
    if real:
        per_lab = sum(r["class_of_30_min"] for r in real) / len(real)
        cpu = sum(r["cpu"] for r in real) / len(real)
        slowest = max(real, key=lambda r: r["cpu"])
        projection = (
            f"Projection for the whole course, {CLASS_SIZE} students x {LAB_COUNT} labs with 2 workers, at the "
            f"mean of the {len(real)} lab(s) measured: **{per_lab * LAB_COUNT:.0f} minutes** of wall time on this "
            f"shared machine; from CPU seconds (both cores busy, nothing else running) "
            f"**{CLASS_SIZE * LAB_COUNT * cpu / 2 / 60:.0f} minutes** (target: under 45). Most expensive lab: "
            f"{slowest['lab']}, {slowest['cpu']:.0f} CPU s and {slowest['per_notebook']:.0f} s wall per notebook "
            f"(target: at most 30 s).\n\n")
    body = (
        "## Grading\n\n"
        f"`python benchmarks/grading.py --students {args.students}`: each lab's solution notebook submitted by "
        f"{args.students} fake students and graded by `tradeoffs grade` with 1 and with 2 worker processes "
        "(throwaway nbgrader course per submission, sandboxed kernel, feedback HTML, gradebook merge). "
        "Seconds per notebook are the median over the class with one worker, from worker start to merged "
        "result; CPU seconds add up the worker and the kernel it ran (on a shared machine, the better "
        "estimate of the wall time an idle 2-core machine would need). `fixture_lab` is the tiny lab in "
        "tests/grading: the pipeline's own overhead.\n\n"
        f"Machine: {machine()}; sandbox level `{sandbox.detect_isolation()}`. The 2 cores are shared with "
        "other jobs: the load average at the start of each run is in the last column; on a busy machine "
        "absolute times are upper bounds and the 2-worker speed-up is what is left after the other jobs.\n\n"
        + table(shown, floatfmt="{:,.1f}") + "\n" + projection
    )
    print(body)
    if not args.no_write:
        print(f"wrote {update_section('grading', body)}")


if __name__ == "__main__":
    main()
