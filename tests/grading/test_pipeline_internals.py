"""Small pieces of the pipeline that are easy to get subtly wrong."""

from __future__ import annotations

import nbgrader.api

from tradeoffs import grading
from tradeoffs.grading import config, guarded, results, worker


def test_cached_alembic_head_matches_nbgraders_own_answer():
    config._ensure_nbgrader_tools()
    fast = nbgrader.api.get_alembic_version
    assert getattr(fast, "_tradeoffs_cached", False)
    assert fast() == fast._original()  # the original runs the `alembic` command


def test_grades_csv_merges_rows_atomically(tmp_path):
    path = tmp_path / "grades.csv"
    a = grading.GradeResult("ada", "lab", "graded", score=90, max_auto_score=90, max_score=100)
    b = grading.GradeResult("bob", "lab", "error", reason="could not be read, sorry")
    grading.write_grades_csv(path, [a])
    grading.write_grades_csv(path, [b])
    a.score = 60
    grading.write_grades_csv(path, [a])
    rows = grading.read_grades_csv(path)
    assert [(r["student_id"], r["score"], r["status"]) for r in rows] == [("ada", "60", "graded"), ("bob", "0", "error")]
    assert rows[1]["reason"] == "could not be read, sorry"
    assert list(rows[0]) == list(grading.CSV_FIELDS)
    assert [p.name for p in tmp_path.iterdir()] == ["grades.csv"]  # no temporary files left


def test_short_reason_picks_the_exception():
    log = ("[INFO] Converting\nTraceback (most recent call last):\n  File x\n"
           "nbformat.reader.NotJSONError: Notebook does not appear to be JSON\n"
           "[ERROR] Please see the the above traceback for details")
    assert worker._short_reason(log).startswith("nbformat.reader.NotJSONError")


def test_result_round_trips_through_json():
    r = grading.GradeResult("ada", "lab", "partial", parts=[grading.PartScore("q1", 3.0, 5.0, True)],
                            flags=["timed out: q2"])
    assert grading.GradeResult.from_json(r.to_json()) == r


def test_merge_keeps_manual_scores_and_flags_problems(tmp_path, fixture_course):
    from nbgrader.api import Gradebook

    db = tmp_path / "gradebook.db"
    results._ensure_assignment(fixture_course, "fixture_lab", db)
    parts = [grading.PartScore(t, 30.0, 30.0, True) for t in ("q1_tests", "q2_tests", "q3_tests")]
    result = grading.GradeResult("ada", "fixture_lab", "graded", parts=parts + [
        grading.PartScore("memo", None, 10.0, False)])
    grading.merge_result(db, result)
    with Gradebook(f"sqlite:///{db}", grading.COURSE_ID) as gb:
        memo = gb.find_grade("memo", "fixture_lab", "fixture_lab", "ada")
        assert memo.needs_manual_grade
        memo.manual_score = 7.0
        gb.db.commit()
    result.parts[0] = grading.PartScore("q1_tests", 0.0, 30.0, True)
    result.status, result.flags = "partial", ["timed out: q1_mean_cost"]
    grading.merge_result(db, result)  # graded again, later
    with Gradebook(f"sqlite:///{db}", grading.COURSE_ID) as gb:
        sub = gb.find_submission("fixture_lab", "ada")
        assert sub.score == 67.0  # 0 + 30 + 30 autograded, 7 by hand
        assert gb.find_grade("memo", "fixture_lab", "fixture_lab", "ada").manual_score == 7.0
        assert gb.find_submission_notebook("fixture_lab", "fixture_lab", "ada").flagged


def test_kernel_environment_limits_threads_and_keeps_idle_threads_asleep(tmp_path):
    """Kernels share the cores with the other workers: one thread each when asked, and OpenMP threads
    that sleep instead of spinning while they wait (spinning on a busy CPU made a lab 5x slower)."""
    env = guarded._kernel_environment(tmp_path, tmp_path / "cache", threads=1)
    assert env["OMP_WAIT_POLICY"] == "PASSIVE"
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS"):
        assert env[key] == "1", key
    assert env["HOME"] == str(tmp_path) and env["HF_HUB_OFFLINE"] == "1"
    unlimited = guarded._kernel_environment(tmp_path, tmp_path / "cache", threads=None)
    assert "OMP_NUM_THREADS" not in unlimited and unlimited["OMP_WAIT_POLICY"] == "PASSIVE"
