"""Faults and edges of the ledger: many processes creating the same new file at once, a lock held
by another process (never called damage), a really damaged file, and every report on an empty and
on a one-record ledger."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
import threading
import time

import pandas as pd
import pytest

from tradeoffs import metering
from tradeoffs.metering import Ledger, LedgerError

PROCESSES = 8
TRIALS = 60  # the code before the fix failed this test 3 runs out of 3 here (2 to 13 of 60 trials lost a process)


def _open_many(folder: str, trials: int, barrier, results) -> None:
    """One racer: for each trial, wait for the others, then open (create) that trial's ledger."""
    failures = []
    for trial in range(trials):
        try:
            barrier.wait(60)
        except Exception as exc:  # a broken barrier: another racer died
            failures.append(f"trial {trial}: barrier {type(exc).__name__}")
            break
        try:
            Ledger(f"{folder}/trial-{trial}.db").close()
        except Exception as exc:
            failures.append(f"trial {trial}: {type(exc).__name__}: {exc}")
    results.put(failures)


def test_concurrent_first_open_of_a_new_ledger_is_safe(tmp_path):
    """8 processes create the same missing ledger at the same instant, 60 times over: every open
    succeeds and the file is a sound, empty ledger."""
    ctx = mp.get_context("fork")
    barrier, results = ctx.Barrier(PROCESSES), ctx.Queue()
    workers = [ctx.Process(target=_open_many, args=(str(tmp_path), TRIALS, barrier, results))
               for _ in range(PROCESSES)]
    for w in workers:
        w.start()
    failures = []
    try:
        for _ in workers:
            failures += results.get(timeout=120)
    finally:
        for w in workers:
            w.join(30)
            if w.is_alive():
                w.kill()
    assert not failures, f"{len(failures)} opens failed, e.g. {failures[:3]}"
    for trial in (0, TRIALS - 1):
        with Ledger(tmp_path / f"trial-{trial}.db") as led:
            assert len(led) == 0 and led.integrity_check() == "ok"


def test_a_lock_held_past_the_timeout_is_reported_as_a_lock_not_damage(tmp_path):
    path = tmp_path / "held.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        t0 = time.monotonic()
        with pytest.raises(LedgerError) as info:
            Ledger(path, timeout=0.5)
        assert time.monotonic() - t0 < 15
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    message = str(info.value)
    assert "locked" in message and "timeout" in message, message
    assert "damaged" not in message, message


def test_a_lock_released_within_the_timeout_is_waited_for(tmp_path):
    path = tmp_path / "briefly-held.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")

    def release() -> None:
        time.sleep(0.3)
        holder.execute("ROLLBACK")

    thread = threading.Thread(target=release)
    thread.start()
    try:
        # (the file's other table is left alone; the ledger adds its own 'calls' table)
        with Ledger(path, timeout=30) as led:
            assert len(led) == 0
    finally:
        thread.join(10)
        holder.close()


def test_a_really_damaged_file_is_called_damaged(tmp_path):
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not an SQLite database, just bytes " * 100)
    with pytest.raises(LedgerError, match="damaged"):
        Ledger(path)


# ---------------------------------------------------------------------------------------------
# Reports on no data and on one record
# ---------------------------------------------------------------------------------------------
ONE = dict(tenant="acme", feature="summarise", template_id="summarise/v1", model="m",
           endpoint="http://127.0.0.1/v1", input_tokens=100, output_tokens=20, latency_s=0.5,
           cost_usd=0.001, ts="2026-05-10T12:00:00Z")

LATENCY_COLUMNS = ["calls", "errors", "error_rate", "p50_s", "p95_s", "ttft_p95_s"]
BURNDOWN_COLUMNS = ["budget_usd", "spent_usd", "daily_rate_usd", "projected_usd", "projected_vs_budget", "alert"]


@pytest.fixture
def empty(tmp_path):
    with Ledger(tmp_path / "empty.db") as led:
        yield led


@pytest.fixture
def one(tmp_path):
    with Ledger(tmp_path / "one.db") as led:
        led.record(ONE)
        yield led


@pytest.mark.parametrize("as_frame", [False, True], ids=["ledger", "frame"])
def test_latency_by_feature_on_no_data(empty, as_frame):
    source = empty.frame() if as_frame else empty
    table = metering.latency_by_feature(source)
    assert table.empty and list(table.columns) == LATENCY_COLUMNS and table.index.name == "feature"
    assert list(metering.latency_by_feature(source, q=0.9).columns)[4:] == ["p90_s", "ttft_p90_s"]


def test_latency_by_feature_on_one_record(one):
    table = metering.latency_by_feature(one)
    assert list(table.columns) == LATENCY_COLUMNS and list(table.index) == ["summarise"]
    row = table.loc["summarise"]
    assert row["calls"] == 1 and row["errors"] == 0 and row["p50_s"] == row["p95_s"] == 0.5
    assert pd.isna(row["ttft_p95_s"])  # not streamed


def test_latency_by_feature_on_one_failed_record(tmp_path):
    with Ledger(tmp_path / "failed.db") as led:
        led.record({**ONE, "status": "error", "error": "APITimeoutError: timed out"})
        row = metering.latency_by_feature(led).loc["summarise"]
    assert row["error_rate"] == 1.0 and pd.isna(row["p50_s"]) and pd.isna(row["p95_s"])


def test_budget_burndown_on_no_data(empty):
    table = metering.budget_burndown(empty, {"acme": 100.0}, now="2026-05-10")
    assert list(table.columns) == BURNDOWN_COLUMNS
    assert table.loc["acme", "spent_usd"] == 0.0 and not table.loc["acme", "alert"]
    table = metering.budget_burndown(empty, {}, now="2026-05-10")
    assert table.empty and list(table.columns) == BURNDOWN_COLUMNS and table.index.name == "tenant"
    # with no records there is no "latest record" to project from: it says so (not a KeyError)
    with pytest.raises(ValueError, match="empty: pass now="):
        metering.budget_burndown(empty, {"acme": 100.0})


def test_budget_burndown_on_one_record(one):
    table = metering.budget_burndown(one, {"acme": 100.0})
    assert list(table.columns) == BURNDOWN_COLUMNS and list(table.index) == ["acme"]
    assert table.loc["acme", "spent_usd"] == pytest.approx(0.001)

