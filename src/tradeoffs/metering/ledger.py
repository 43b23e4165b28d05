"""The ledger: an append-only SQLite file of LLM calls, safe for concurrent writers, with validated records.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import sqlite3
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

SCHEMA_VERSION = 1
STATUSES = ("ok", "error", "cancelled")

# column -> (SQL type and constraint, meaning)
COLUMNS: dict[str, tuple[str, str]] = {
    "ts": ("TEXT NOT NULL", "when the call started, ISO 8601 UTC"),
    "tenant": ("TEXT NOT NULL", "the customer the call was made for"),
    "feature": ("TEXT NOT NULL", "the product feature that made it"),
    "template_id": ("TEXT NOT NULL", "the prompt template (and version) used"),
    "model": ("TEXT NOT NULL", "the model that answered (the response's model when known)"),
    "endpoint": ("TEXT NOT NULL", "the API base URL"),
    "input_tokens": ("INTEGER CHECK (input_tokens IS NULL OR input_tokens >= 0)", "usage.prompt_tokens"),
    "output_tokens": ("INTEGER CHECK (output_tokens IS NULL OR output_tokens >= 0)", "usage.completion_tokens"),
    "cached_tokens": ("INTEGER CHECK (cached_tokens IS NULL OR cached_tokens >= 0)",
                      "usage.prompt_tokens_details.cached_tokens"),
    "latency_s": ("REAL NOT NULL CHECK (latency_s >= 0)", "request start to last byte, seconds"),
    "ttft_s": ("REAL CHECK (ttft_s IS NULL OR ttft_s >= 0)", "time to first token (streaming only), seconds"),
    "stream": ("INTEGER NOT NULL CHECK (stream IN (0, 1))", "streamed or not"),
    "status": ("TEXT NOT NULL CHECK (status IN ('ok', 'error', 'cancelled'))", "ok, error or cancelled"),
    "error": ("TEXT", "error type and message"),
    "http_status": ("INTEGER", "HTTP status of a failed call"),
    "attempt": ("INTEGER NOT NULL CHECK (attempt >= 1)", "1 for the first try, 2 for the first retry..."),
    "request_id": ("TEXT", "the caller's id for the logical request (shared by its retries)"),
    "tag": ("TEXT", "a free label: experiment, run, batch job"),
    "cost_usd": ("REAL CHECK (cost_usd IS NULL OR cost_usd >= 0)", "US dollars (NULL: no price known)"),
    "priced_as": ("TEXT", "the price list used, e.g. genai-prices 0.2.3 openai/gpt-4o-mini"),
}
REQUIRED = ("tenant", "feature", "template_id", "model", "endpoint", "latency_s")
_TEXT = ("tenant", "feature", "template_id", "model", "endpoint")
_OPTIONAL_TEXT = ("error", "request_id", "tag", "priced_as")
_TOKENS = ("input_tokens", "output_tokens", "cached_tokens")
_MAX_TEXT = 4096


class LedgerRecordError(ValueError):
    """A record was refused before it reached the ledger; the message names the field and the fix."""


class LedgerError(RuntimeError):
    """The ledger file cannot be opened or written."""


def _busy(exc: BaseException) -> bool:
    """True for SQLite's "database is locked" / "busy" errors: another connection holds a lock."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED (and their extended codes)
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def _iso(ts: Any) -> str:
    if isinstance(ts, pd.Timestamp):
        ts = ts.to_pydatetime()
    if isinstance(ts, str):
        try:
            ts = datetime.fromisoformat(ts.replace("Z", "+00:00"))
        except ValueError as exc:
            raise LedgerRecordError(f"ts={ts!r} is not an ISO 8601 time; pass a datetime or e.g. "
                                    "'2026-05-18T09:30:00+00:00'") from exc
    if not isinstance(ts, datetime):
        raise LedgerRecordError(f"ts must be a datetime or an ISO 8601 string, got {type(ts).__name__}")
    if ts.tzinfo is None:
        raise LedgerRecordError(f"ts={ts!r} has no time zone; pass an aware datetime, e.g. datetime.now(timezone.utc)")
    return ts.astimezone(timezone.utc).isoformat(timespec="microseconds")


def _number(name: str, value: Any, allow_none: bool) -> float | None:
    if value is None:
        if allow_none:
            return None
        raise LedgerRecordError(f"{name} is required (a number >= 0)")
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise LedgerRecordError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise LedgerRecordError(f"{name} must be finite and >= 0, got {value!r}")
    return value


def validate_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """Check one ledger record and return it normalised (all columns present, ``ts`` in ISO UTC).

    Rules: ``tenant``, ``feature``, ``template_id``, ``model``, ``endpoint`` are non-empty strings;
    ``latency_s`` is a finite number >= 0; token counts are whole numbers >= 0 or None, and cached
    tokens never exceed input tokens; ``ttft_s`` is at most ``latency_s``; ``status`` is one of
    ``ok``/``error``/``cancelled``, and an error carries a message; ``attempt`` >= 1; ``cost_usd`` is
    None or a finite number >= 0; unknown fields are refused (a typo would otherwise be lost silently).

    Raises
    ------
    LedgerRecordError
        Naming the first field that is wrong.

    Examples
    --------
    >>> r = validate_record(dict(tenant="a", feature="f", template_id="t", model="m",
    ...                          endpoint="http://x/v1", latency_s=0.1, ts="2026-01-01T00:00:00Z"))
    >>> r["ts"], r["status"], r["attempt"]
    ('2026-01-01T00:00:00.000000+00:00', 'ok', 1)
    >>> validate_record(dict(r, input_tokens=-5))
    Traceback (most recent call last):
    ...
    tradeoffs.metering.ledger.LedgerRecordError: input_tokens must be a whole number >= 0 or None, got -5
    """
    if not isinstance(record, Mapping):
        raise LedgerRecordError(f"a record is a mapping of column -> value, got {type(record).__name__}")
    unknown = sorted(set(record) - set(COLUMNS))
    if unknown:
        raise LedgerRecordError(f"unknown field(s) {unknown}; the ledger's columns are {list(COLUMNS)}")
    missing = [k for k in REQUIRED if record.get(k) is None]
    if missing:
        raise LedgerRecordError(f"missing required field(s) {missing}; every call needs {list(REQUIRED)}")
    out: dict[str, Any] = {}
    out["ts"] = _iso(record.get("ts") if record.get("ts") is not None else datetime.now(timezone.utc))
    for name in _TEXT:
        value = record[name]
        if not isinstance(value, str) or not value.strip():
            raise LedgerRecordError(f"{name} must be a non-empty string, got {value!r}")
        if len(value) > _MAX_TEXT:
            raise LedgerRecordError(f"{name} is {len(value)} characters long; the limit is {_MAX_TEXT}")
        out[name] = value
    for name in _OPTIONAL_TEXT:
        value = record.get(name)
        if value is not None and not isinstance(value, str):
            raise LedgerRecordError(f"{name} must be a string or None, got {type(value).__name__}")
        out[name] = value[:_MAX_TEXT] if isinstance(value, str) else None
    for name in _TOKENS:
        value = record.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0):
            raise LedgerRecordError(f"{name} must be a whole number >= 0 or None, got {value!r}")
        out[name] = None if value is None else int(value)
    if out["cached_tokens"] is not None and out["cached_tokens"] > (out["input_tokens"] or 0):
        raise LedgerRecordError(f"cached_tokens ({out['cached_tokens']}) cannot exceed input_tokens "
                                f"({out['input_tokens']}): cached tokens are part of the prompt")
    out["latency_s"] = _number("latency_s", record["latency_s"], allow_none=False)
    out["ttft_s"] = _number("ttft_s", record.get("ttft_s"), allow_none=True)
    if out["ttft_s"] is not None and out["ttft_s"] > out["latency_s"] + 1e-9:
        raise LedgerRecordError(f"ttft_s ({out['ttft_s']}) cannot exceed latency_s ({out['latency_s']})")
    out["cost_usd"] = _number("cost_usd", record.get("cost_usd"), allow_none=True)
    stream = record.get("stream", False)
    if not isinstance(stream, (bool, np.bool_)) and stream not in (0, 1):
        raise LedgerRecordError(f"stream must be True or False, got {stream!r}")
    out["stream"] = int(bool(stream))
    status = record.get("status", "ok")
    if status not in STATUSES:
        raise LedgerRecordError(f"status must be one of {STATUSES}, got {status!r}")
    out["status"] = status
    if status == "error" and not out["error"]:
        raise LedgerRecordError("a record with status='error' needs an error message (field 'error')")
    http = record.get("http_status")
    if http is not None and (isinstance(http, bool) or not isinstance(http, (int, np.integer)) or not 100 <= http <= 599):
        raise LedgerRecordError(f"http_status must be an HTTP status code (100-599) or None, got {http!r}")
    out["http_status"] = None if http is None else int(http)
    attempt = record.get("attempt", 1)
    if isinstance(attempt, bool) or not isinstance(attempt, (int, np.integer)) or attempt < 1:
        raise LedgerRecordError(f"attempt must be a whole number >= 1, got {attempt!r}")
    out["attempt"] = int(attempt)
    return out


# =============================================================================================
# The ledger
# =============================================================================================
@contextlib.contextmanager
def _committed(conn: sqlite3.Connection):
    """The open transaction of ``conn`` commits when the block ends; any error rolls it back (best
    effort) and propagates."""
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise


class Ledger:
    """An append-only SQLite ledger of LLM calls, safe for concurrent writers.

    Parameters
    ----------
    path : str or Path
        The database file (created with its folder if missing). ``":memory:"`` is refused: every
        thread opens its own connection, and each would see a different, empty database.
    synchronous : {"FULL", "NORMAL"}
        SQLite's durability setting. ``"FULL"`` (default) also survives a power cut or OS crash;
        ``"NORMAL"`` survives a killed *process* (all the acceptance tests need) and writes faster.
    timeout : float
        Seconds a writer waits for another writer's lock before giving up.

    Notes
    -----
    WAL mode lets readers read while one writer writes; writers take turns. Each record is one
    ``BEGIN IMMEDIATE ... COMMIT`` transaction, so a crash loses at most the record being written, never
    a committed one, and never leaves half a record. Connections are per thread and per process (a
    forked child opens its own).

    Examples
    --------
    >>> import tempfile, os
    >>> with Ledger(os.path.join(tempfile.mkdtemp(), "l.db")) as led:
    ...     _ = led.record(dict(tenant="a", feature="classify", template_id="classify/v1", model="m",
    ...                         endpoint="http://localhost/v1", latency_s=0.2, input_tokens=10, output_tokens=2))
    ...     led.frame()[["tenant", "input_tokens", "status"]].values.tolist()
    [['a', 10, 'ok']]
    """

    def __init__(self, path: str | Path, *, synchronous: str = "FULL", timeout: float = 60.0) -> None:
        if str(path) == ":memory:" or not str(path).strip():
            raise LedgerError("Ledger needs a file path (':memory:' is per connection); e.g. Ledger('calls.db')")
        if synchronous.upper() not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be 'FULL' or 'NORMAL', got {synchronous!r}")
        self.path = Path(path).expanduser().resolve()
        self.synchronous = synchronous.upper()
        self.timeout = float(timeout)
        self._lock = threading.Lock()
        self._reset_connections()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LedgerError(f"cannot create the folder {self.path.parent} for the ledger: {exc}") from exc
        self._init_schema()

    # ---- connections --------------------------------------------------------------------
    def _reset_connections(self) -> None:
        self._pid = os.getpid()
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []

    def _conn(self) -> sqlite3.Connection:
        if self._pid != os.getpid():  # forked: the parent's connections must not be used here
            with self._lock:
                if self._pid != os.getpid():
                    self._reset_connections()
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(str(self.path), timeout=self.timeout, isolation_level=None,
                                       check_same_thread=False)
                conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
                conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            except sqlite3.Error as exc:
                raise self._open_error(exc) from exc
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def _open_error(self, exc: sqlite3.Error) -> LedgerError:
        """Say what went wrong, in words that match the cause: a lock held too long is not damage."""
        if _busy(exc):
            return LedgerError(f"could not open the ledger {self.path} within {self.timeout:g} s: another "
                               f"process kept it locked ({exc}). Fix: wait for that process, or raise "
                               "Ledger(timeout=...)")
        if isinstance(exc, sqlite3.OperationalError):  # cannot open the file, disk I/O, read-only...
            return LedgerError(f"cannot open the ledger {self.path}: {exc}. Fix: check the path and its "
                               "permissions, or pass another path")
        if isinstance(exc, sqlite3.DatabaseError):  # not a database, malformed: the file itself is bad
            return LedgerError(f"{self.path} is not a usable SQLite ledger ({exc}). Fix: pass another path, "
                               "or move the damaged file away")
        return LedgerError(f"cannot open the ledger {self.path}: {exc}. Fix: check the path and its "
                           "permissions, or pass another path")

    def _init_schema(self) -> None:
        """Create (or check) the table, retrying while other processes hold the file.

        Several processes creating the same new file at once race for the lock that switches it to
        WAL mode; SQLite answers some of them "database is locked" at once, without waiting the busy
        timeout (it would risk a deadlock). Those attempts are retried with a growing pause until
        ``timeout`` seconds have passed.
        """
        deadline = time.monotonic() + self.timeout
        pause = 0.002
        while True:
            try:
                self._init_schema_once()
                return
            except sqlite3.Error as exc:
                conn = getattr(self._local, "conn", None)
                if conn is not None and conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                if not _busy(exc) or time.monotonic() + pause > deadline:
                    raise self._open_error(exc) from exc
            time.sleep(pause * (0.5 + random.random()))  # jitter: the racers do not retry in step
            pause = min(2 * pause, 0.1)

    def _init_schema_once(self) -> None:
        conn = self._conn()
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise LedgerError(f"{self.path} could not switch to WAL mode (got {mode!r}); "
                              "use a local disk, not a network share")
        columns = ",\n  ".join(f"{name} {sql}" for name, (sql, _) in COLUMNS.items())
        conn.execute("BEGIN IMMEDIATE")
        with _committed(conn):
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            conn.execute(f"CREATE TABLE IF NOT EXISTS calls (\n  id INTEGER PRIMARY KEY AUTOINCREMENT,\n  {columns}\n)")
            have = [r[1] for r in conn.execute("PRAGMA table_info(calls)")]
            if have[1:] != list(COLUMNS):
                raise LedgerError(f"{self.path} holds a 'calls' table with other columns ({have}); "
                                  "it is not a tradeoffs ledger. Fix: pass another path")
            conn.execute("CREATE INDEX IF NOT EXISTS calls_tenant_feature ON calls (tenant, feature)")
            conn.execute("CREATE INDEX IF NOT EXISTS calls_ts ON calls (ts)")
            if version == 0:
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            elif version != SCHEMA_VERSION:
                raise LedgerError(f"{self.path} has ledger schema {version}; this kit writes schema "
                                  f"{SCHEMA_VERSION}. Fix: start a new ledger file")

    # ---- writing ------------------------------------------------------------------------
    def record(self, record: Mapping[str, Any]) -> int:
        """Validate one record and append it in its own transaction; return its row id.

        Raises :class:`LedgerRecordError` for a malformed record (nothing is written).
        """
        return self.record_many([record])[0]

    def record_many(self, records: Iterable[Mapping[str, Any]]) -> list[int]:
        """Append several records in ONE transaction: all of them or none. Returns their row ids."""
        rows = [validate_record(r) for r in records]
        if not rows:
            return []
        names = list(COLUMNS)
        sql = f"INSERT INTO calls ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise LedgerError(f"could not lock {self.path} for writing within {self.timeout:.0f} s ({exc}); "
                              "another process holds it. Fix: raise Ledger(timeout=...)") from exc
        with _committed(conn):
            ids = [conn.execute(sql, [row[n] for n in names]).lastrowid for row in rows]
        return [int(i) for i in ids]

    # ---- reading ------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._conn().execute("SELECT COUNT(*) FROM calls").fetchone()[0])

    def frame(self, tag: str | None = None) -> pd.DataFrame:
        """All records (or those with ``tag``) as a DataFrame, oldest first; ``ts`` as UTC datetimes."""
        conn = self._conn()
        if tag is None:
            df = pd.read_sql_query("SELECT * FROM calls ORDER BY id", conn)
        else:
            df = pd.read_sql_query("SELECT * FROM calls WHERE tag = ? ORDER BY id", conn, params=(tag,))
        return _typed(df)

    def integrity_check(self) -> str:
        """SQLite's own consistency check of the file ('ok' when sound)."""
        return str(self._conn().execute("PRAGMA integrity_check").fetchone()[0])

    # ---- lifecycle ----------------------------------------------------------------------
    def close(self) -> None:
        """Close every connection this process opened (further use reopens one)."""
        with self._lock:
            if self._pid == os.getpid():
                for conn in self._conns:
                    try:
                        conn.close()
                    except sqlite3.Error:
                        pass
            self._reset_connections()

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:  # picklable for multiprocessing: reopen in the child
        return {"path": self.path, "synchronous": self.synchronous, "timeout": self.timeout}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path, self.synchronous, self.timeout = state["path"], state["synchronous"], state["timeout"]
        self._lock = threading.Lock()
        self._reset_connections()

    def __repr__(self) -> str:
        return f"Ledger({str(self.path)!r})"


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df["ts"] = pd.to_datetime(df["ts"], utc=True, format="ISO8601")
    df["stream"] = df["stream"].astype(bool)
    for col in _TOKENS + ("http_status",):
        df[col] = df[col].astype("Int64")
    for col in ("latency_s", "ttft_s", "cost_usd"):
        df[col] = df[col].astype(float)
    return df
