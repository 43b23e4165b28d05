"""Build ``tickets.csv`` from the hand-written tickets in ``raw/<tenant>.jsonl``.

Usage (from the repository root)::

    python datasets/support_tickets/build.py            # validate, build, update the datasheet
    python datasets/support_tickets/build.py --check    # validate; exit 1 if tickets.csv is stale
    python -m tradeoffs.data rebuild                    # this, then the trace, then SHA256SUMS

What it does, deterministically (same raw files -> byte-identical output):

1. **Validate** every record: exactly the ten keys of the writers' schema, every label in its
   vocabulary, ``ambiguous`` implies a ``secondary_intent``, ``high_stakes`` iff a
   ``high_stakes_reason``, the tenant matches the file name, no empty or duplicate texts. All errors
   are reported together, each as ``raw/<file>.jsonl:<line>: <what is wrong>``.
2. **Assign stable ids**: ``<tenant code>-<first 8 hex digits of sha256(tenant, text)>``. A ticket
   keeps its id as long as its text is unchanged, whatever is added or reordered around it.
3. **Assign timestamps** over 90 days (2025-01-06 to 2025-04-05, UTC) from a generator seeded by the
   ticket id: fewer tickets at weekends, and an hour-of-day profile per channel (chat in business
   hours, web forms in the evening, email spread out).
4. **Split** into train / validation / test, stratified by intent (quotas by largest remainder), and
   within each intent spread evenly across tenants and the ambiguous flag; the order inside those
   groups comes from a seeded hash of the id. Test is 25% but at least 300 tickets; validation 15%.
5. **Check the quality bars** (>= 1,200 tickets, >= 60 per intent, test >= 300, no two tickets
   sharing a 12-word sequence) and print them; ``--strict`` turns a miss into an error.
6. **Write** ``tickets.csv`` atomically (temp file + rename) and refresh the generated composition
   block of ``DATASHEET.md``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import math
import re
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from tradeoffs import data, files

HERE = Path(__file__).resolve().parent
RAW_DIR = HERE / "raw"
OUT_FILE = HERE / "tickets.csv"
DATASHEET = HERE / "DATASHEET.md"

SEED = 20250106
START = datetime(2025, 1, 6, tzinfo=timezone.utc)  # a Monday
DAYS = 90
TEST_FRACTION = 0.25
MIN_TEST = 300
VALIDATION_FRACTION = 0.15
MIN_TICKETS = 1200
MIN_PER_INTENT = 60
NGRAM = 12
MAX_TEXT_CHARS = 4000

TENANT_CODES = {"northwind_energy": "NWE", "parcelpoint": "PPT", "ledgerly": "LDG", "kitcube": "KCB",
                "fitloop": "FTL"}
RAW_KEYS = ("tenant", "channel", "customer_tier", "intent", "secondary_intent", "ambiguous", "priority",
            "high_stakes", "high_stakes_reason", "text")

# Relative ticket volume by weekday (Mon..Sun): Monday backlog, quiet weekends.
WEEKDAY_WEIGHTS = np.array([1.30, 1.15, 1.05, 1.00, 0.95, 0.55, 0.50])
# Relative volume by hour of day (UTC, 0..23) for each channel.
HOUR_WEIGHTS = {
    "chat": np.array([0.2, 0.1, 0.1, 0.1, 0.1, 0.2, 0.5, 1.2, 2.5, 3.6, 4.0, 3.8,
                      3.2, 3.4, 3.7, 3.6, 3.3, 2.8, 2.0, 1.5, 1.2, 0.9, 0.6, 0.4]),
    "email": np.array([0.6, 0.4, 0.3, 0.3, 0.3, 0.5, 1.0, 1.8, 2.6, 3.0, 2.9, 2.6,
                       2.4, 2.5, 2.4, 2.3, 2.1, 1.9, 1.8, 1.8, 1.7, 1.5, 1.2, 0.9]),
    "web_form": np.array([0.5, 0.3, 0.2, 0.2, 0.2, 0.3, 0.6, 1.0, 1.5, 1.8, 1.9, 1.9,
                          2.0, 1.9, 1.8, 1.8, 1.9, 2.1, 2.6, 3.0, 3.2, 2.9, 2.0, 1.0]),
}

BEGIN_MARK = "<!-- BEGIN GENERATED: composition (datasets/support_tickets/build.py) -->"
END_MARK = "<!-- END GENERATED: composition -->"


class BuildError(ValueError):
    """The raw tickets do not pass validation; the message lists every problem."""


@dataclass
class Record:
    """One validated raw ticket and where it came from."""

    source: str  # "raw/kitcube.jsonl:17"
    fields: dict


# --------------------------------------------------------------------------------------------
# 1. Read and validate
# --------------------------------------------------------------------------------------------
def _check_record(obj, stem: str) -> list[str]:
    """Every problem with one parsed JSON value, as short sentences."""
    if not isinstance(obj, dict):
        return [f"expected a JSON object, got {type(obj).__name__}"]
    problems = []
    missing = [k for k in RAW_KEYS if k not in obj]
    extra = sorted(set(obj) - set(RAW_KEYS))
    if missing:
        problems.append(f"missing key(s) {missing}")
    if extra:
        problems.append(f"unexpected key(s) {extra}; the schema has exactly {list(RAW_KEYS)}")
    if missing:
        return problems
    for key, allowed in (("tenant", data.TENANTS), ("channel", data.CHANNELS),
                         ("customer_tier", data.CUSTOMER_TIERS), ("intent", data.INTENTS),
                         ("priority", data.PRIORITIES)):
        if obj[key] not in allowed:
            problems.append(f"{key} is {obj[key]!r}, expected one of {list(allowed)}")
    if obj["tenant"] in data.TENANTS and obj["tenant"] != stem:
        problems.append(f"tenant is {obj['tenant']!r} but the record is in {stem}.jsonl "
                        f"(each tenant's tickets go in raw/<tenant>.jsonl)")
    for key in ("ambiguous", "high_stakes"):
        if not isinstance(obj[key], bool):
            problems.append(f"{key} must be JSON true or false, got {obj[key]!r}")
    second = obj["secondary_intent"]
    if second is not None:
        if second not in data.INTENTS:
            problems.append(f"secondary_intent is {second!r}, expected null or one of {list(data.INTENTS)}")
        elif second == obj["intent"]:
            problems.append(f"secondary_intent repeats the intent {second!r}; use null")
    if obj["ambiguous"] is True and second is None:
        problems.append("ambiguous is true but secondary_intent is null; name the second intent that fits")
    reason = obj["high_stakes_reason"]
    if obj["high_stakes"] is True and reason not in data.HIGH_STAKES_REASONS:
        problems.append(f"high_stakes is true, so high_stakes_reason must be one of "
                        f"{list(data.HIGH_STAKES_REASONS)}, got {reason!r}")
    if obj["high_stakes"] is False and reason is not None:
        problems.append(f"high_stakes is false but high_stakes_reason is {reason!r}; use null or set high_stakes")
    text = obj["text"]
    if not isinstance(text, str) or not text.strip():
        problems.append(f"text must be a non-empty string, got {text!r}")
    elif len(text) > MAX_TEXT_CHARS:
        problems.append(f"text has {len(text)} characters, more than {MAX_TEXT_CHARS}")
    elif re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", text):
        problems.append("text contains control characters")
    return problems


def read_raw(raw_dir: Path = RAW_DIR) -> list[Record]:
    """Parse and validate every ``raw/*.jsonl`` file (sorted by name).

    Raises
    ------
    BuildError
        Listing every problem as ``raw/<file>:<line>: <problem>``.
    """
    raw_dir = Path(raw_dir)
    files = sorted(raw_dir.glob("*.jsonl"))
    if not files:
        raise BuildError(f"no raw ticket files in {raw_dir}; expected raw/<tenant>.jsonl for tenants "
                         f"{list(data.TENANTS)}")
    errors: list[str] = []
    records: list[Record] = []
    for path in files:
        if path.stem not in data.TENANTS:
            errors.append(f"raw/{path.name}: file name is not a tenant id; expected one of "
                          f"{[t + '.jsonl' for t in data.TENANTS]}")
            continue
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            where = f"raw/{path.name}:{lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                errors.append(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})")
                continue
            problems = _check_record(obj, path.stem)
            errors.extend(f"{where}: {p}" for p in problems)
            if not problems:
                obj = dict(obj)
                obj["text"] = obj["text"].strip()
                records.append(Record(source=where, fields=obj))
    seen: dict[tuple[str, str], str] = {}
    for rec in records:
        key = (rec.fields["tenant"], " ".join(rec.fields["text"].lower().split()))
        if key in seen:
            errors.append(f"{rec.source}: same text as {seen[key]}; remove one of them")
        else:
            seen[key] = rec.source
    if errors:
        shown = "\n  ".join(errors[:60])
        more = f"\n  ... and {len(errors) - 60} more" if len(errors) > 60 else ""
        raise BuildError(f"{len(errors)} problem(s) in {raw_dir}:\n  {shown}{more}\n"
                         "Fix the records above, then run the build again.")
    return records


# --------------------------------------------------------------------------------------------
# 2-4. Ids, timestamps, split
# --------------------------------------------------------------------------------------------
def ticket_id(tenant: str, text: str) -> str:
    """Stable id from the tenant and the (stripped) text.

    Examples
    --------
    >>> ticket_id("kitcube", "where is my box")
    'KCB-9d35157a'
    """
    digest = hashlib.sha256(f"{tenant}\x1f{text.strip()}".encode("utf-8")).hexdigest()
    return f"{TENANT_CODES[tenant]}-{digest[:8]}"


def _rng_for(tid: str, purpose: str, seed: int) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}:{purpose}:{tid}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


def timestamp_for(tid: str, channel: str, seed: int = SEED) -> datetime:
    """A reproducible arrival time for one ticket, drawn from the weekday and hour profiles."""
    rng = _rng_for(tid, "created_at", seed)
    day_w = np.array([WEEKDAY_WEIGHTS[(START + timedelta(days=d)).weekday()] for d in range(DAYS)])
    day = int(rng.choice(DAYS, p=day_w / day_w.sum()))
    hours = HOUR_WEIGHTS[channel]
    hour = int(rng.choice(24, p=hours / hours.sum()))
    second = int(rng.integers(0, 3600))
    return START + timedelta(days=day, hours=hour, seconds=second)


def _largest_remainder(sizes: dict[str, int], total: int) -> dict[str, int]:
    n = sum(sizes.values())
    exact = {k: v * total / n for k, v in sizes.items()}
    quota = {k: math.floor(x) for k, x in exact.items()}
    order = sorted(sizes, key=lambda k: (-(exact[k] - quota[k]), list(sizes).index(k)))
    for k in order[: total - sum(quota.values())]:
        quota[k] += 1
    return quota


def split_sizes(n: int) -> tuple[int, int]:
    """(test, validation) sizes for a corpus of ``n`` tickets: test 25% but >= 300 (<= 40%), val 15%."""
    test = min(max(math.ceil(TEST_FRACTION * n), MIN_TEST), math.floor(0.4 * n))
    return test, round(VALIDATION_FRACTION * n)


def _interleave(n: int, quotas: dict[str, int]) -> list[str]:
    """Spread quota labels evenly over n positions (each label close to its share at every prefix)."""
    counts = dict.fromkeys(quotas, 0)
    out = []
    for i in range(n):
        label = max(quotas, key=lambda k: ((i + 1) * quotas[k] / n - counts[k], -list(quotas).index(k)))
        counts[label] += 1
        out.append(label)
    return out


def assign_splits(rows: list[dict], seed: int = SEED) -> None:
    """Set ``row["split"]`` for every row: stratified by intent, spread over tenant and ambiguity."""
    by_intent: dict[str, list[dict]] = {i: [] for i in data.INTENTS}
    for row in rows:
        by_intent[row["intent"]].append(row)
    sizes = {i: len(v) for i, v in by_intent.items() if v}
    n_test, n_val = split_sizes(len(rows))
    test_q = _largest_remainder(sizes, n_test)
    val_q = _largest_remainder(sizes, n_val)
    for intent, group in by_intent.items():
        if not group:
            continue
        group.sort(key=lambda r: (r["tenant"], r["ambiguous"], r["high_stakes"],
                                  hashlib.sha256(f"{seed}:split:{r['ticket_id']}".encode()).hexdigest()))
        quotas = {"test": test_q[intent], "validation": val_q[intent],
                  "train": len(group) - test_q[intent] - val_q[intent]}
        for row, label in zip(group, _interleave(len(group), quotas)):
            row["split"] = label


def build_rows(records: list[Record], seed: int = SEED) -> list[dict]:
    """Turn validated records into output rows (ids, timestamps, splits), sorted by time then id."""
    rows, ids = [], {}
    for rec in records:
        f = rec.fields
        tid = ticket_id(f["tenant"], f["text"])
        if tid in ids:
            raise BuildError(f"{rec.source} and {ids[tid]} hash to the same id {tid}; change a word in one")
        ids[tid] = rec.source
        rows.append({**f, "ticket_id": tid, "created_at": timestamp_for(tid, f["channel"], seed)})
    assign_splits(rows, seed)
    rows.sort(key=lambda r: (r["created_at"], r["ticket_id"]))
    return rows


# --------------------------------------------------------------------------------------------
# 5. Quality bars
# --------------------------------------------------------------------------------------------
def quality_report(rows: list[dict]) -> tuple[list[str], list[str]]:
    """(summary lines, missed bars) for the built rows."""
    n = len(rows)
    intents = Counter(r["intent"] for r in rows)
    splits = Counter(r["split"] for r in rows)
    missed = []
    if n < MIN_TICKETS:
        missed.append(f"{n} tickets, the bar is >= {MIN_TICKETS}")
    for intent in data.INTENTS:
        if intents[intent] < MIN_PER_INTENT:
            missed.append(f"intent {intent!r} has {intents[intent]} tickets, the bar is >= {MIN_PER_INTENT}")
    if splits["test"] < MIN_TEST:
        missed.append(f"test split has {splits['test']} tickets, the bar is >= {MIN_TEST}")
    shared = data.shared_word_sequences([r["text"] for r in rows], n=NGRAM)
    for i, j, seq in shared[:40]:
        missed.append(f"{rows[i]['ticket_id']} ({rows[i]['_source']}) and {rows[j]['ticket_id']} "
                      f"({rows[j]['_source']}) share {NGRAM} words: {seq!r}")
    if len(shared) > 40:
        missed.append(f"... and {len(shared) - 40} more pairs sharing {NGRAM} words")
    summary = [f"{n} tickets: " + ", ".join(f"{s} {splits[s]}" for s in data.SPLITS),
               "per intent: " + ", ".join(f"{i} {intents[i]}" for i in data.INTENTS),
               f"ambiguous {sum(r['ambiguous'] for r in rows)}, high_stakes {sum(r['high_stakes'] for r in rows)}, "
               f"pairs sharing {NGRAM} words: {len(shared)}"]
    return summary, missed


# --------------------------------------------------------------------------------------------
# 6. Write
# --------------------------------------------------------------------------------------------
def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def to_csv(rows: list[dict]) -> str:
    """The CSV text (UTF-8, ``\\n`` line ends, minimal quoting, columns in ``data.TICKET_COLUMNS`` order)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(data.TICKET_COLUMNS)
    for row in rows:
        writer.writerow([_fmt(row[c]) for c in data.TICKET_COLUMNS])
    return buf.getvalue()


def composition_markdown(df) -> str:
    """The generated composition block of the datasheet, computed from a loaded tickets frame."""
    lines = [BEGIN_MARK, "",
             f"**{len(df):,} tickets** from {df['tenant'].nunique()} tenants, "
             f"{df['created_at'].min():%Y-%m-%d} to {df['created_at'].max():%Y-%m-%d} (UTC). "
             f"Ambiguous: {int(df['ambiguous'].sum())} ({df['ambiguous'].mean():.1%}); "
             f"high-stakes: {int(df['high_stakes'].sum())} ({df['high_stakes'].mean():.1%}).", "",
             "| intent | " + " | ".join(data.SPLITS) + " | total | share |",
             "|---|" + "---:|" * (len(data.SPLITS) + 2)]
    table = df.groupby(["intent", "split"]).size().unstack(fill_value=0).reindex(
        index=list(data.INTENTS), columns=list(data.SPLITS), fill_value=0)
    for intent, row in table.iterrows():
        lines.append(f"| {intent} | " + " | ".join(str(int(v)) for v in row) +
                     f" | {int(row.sum())} | {row.sum() / len(df):.1%} |")
    lines.append("| **total** | " + " | ".join(str(int(v)) for v in table.sum()) + f" | {len(df)} | 100% |")
    lines += ["", "| tenant | tickets | email | chat | web_form | free | standard | premium |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for tenant in data.TENANTS:
        sub = df[df["tenant"] == tenant]
        ch = sub["channel"].value_counts()
        ti = sub["customer_tier"].value_counts()
        lines.append(f"| {tenant} | {len(sub)} | " + " | ".join(str(int(ch.get(c, 0))) for c in data.CHANNELS)
                     + " | " + " | ".join(str(int(ti.get(t, 0))) for t in data.CUSTOMER_TIERS) + " |")
    pri = df["priority"].value_counts()
    reasons = df["high_stakes_reason"].value_counts()
    words = df["text"].map(lambda t: len(t.split()))
    lines += ["", "Priority: " + ", ".join(f"{p} {int(pri.get(p, 0))}" for p in data.PRIORITIES) + ". "
              "High-stakes reasons: " + ", ".join(f"{r} {int(reasons.get(r, 0))}" for r in data.HIGH_STAKES_REASONS)
              + ". Length in words: median " + f"{int(words.median())}, min {int(words.min())}, "
              f"max {int(words.max())}.", "", END_MARK]
    return "\n".join(lines)


def update_datasheet(csv_path: Path = OUT_FILE, datasheet: Path = DATASHEET) -> bool:
    """Replace the generated block of the datasheet with the composition of ``csv_path``.

    Returns True when the datasheet changed.
    """
    if not datasheet.exists():
        return False
    text = datasheet.read_text(encoding="utf-8")
    if BEGIN_MARK not in text or END_MARK not in text:
        raise BuildError(f"{datasheet} has no generated block; add the lines\n{BEGIN_MARK}\n{END_MARK}")
    block = composition_markdown(data.read_tickets_csv(csv_path))
    head, rest = text.split(BEGIN_MARK, 1)
    _, tail = rest.split(END_MARK, 1)
    new = head + block + tail
    if new != text:
        files.atomic_write(datasheet, new)
    return new != text


def build(raw_dir: Path = RAW_DIR, out: Path = OUT_FILE, seed: int = SEED, strict: bool = False,
          check: bool = False, datasheet: Path | None = DATASHEET, log=print) -> int:
    """Run the whole build; returns the process exit code (0 = ok)."""
    records = read_raw(raw_dir)
    rows = build_rows(records, seed)
    by_id = {ticket_id(r.fields["tenant"], r.fields["text"]): r.source for r in records}
    for row in rows:
        row["_source"] = by_id[row["ticket_id"]]
    summary, missed = quality_report(rows)
    for line in summary:
        log(line)
    for line in missed:
        log(f"quality bar missed: {line}", file=sys.stderr)
    text = to_csv(rows)
    out = Path(out)
    if check:
        current = out.read_text(encoding="utf-8") if out.exists() else None
        if current != text:
            log(f"{out} is out of date with {raw_dir}; run `python {Path(__file__).name}` "
                "or `python -m tradeoffs.data rebuild`", file=sys.stderr)
            return 1
        log(f"{out} is up to date")
        return 1 if (strict and missed) else 0
    if strict and missed:
        log(f"--strict: {len(missed)} quality bar(s) missed; {out} not written", file=sys.stderr)
        return 1
    changed = not out.exists() or out.read_text(encoding="utf-8") != text
    if changed:
        files.atomic_write(out, text)
    log(f"{'wrote' if changed else 'unchanged'} {out} ({len(rows)} rows)")
    if datasheet is not None and update_datasheet(out, Path(datasheet)):
        log(f"updated the composition block of {datasheet}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--raw", type=Path, default=RAW_DIR, help="folder of <tenant>.jsonl files")
    parser.add_argument("--out", type=Path, default=OUT_FILE, help="CSV to write")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--strict", action="store_true", help="fail when a quality bar is missed")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if --out is stale")
    parser.add_argument("--no-datasheet", action="store_true", help="leave DATASHEET.md alone")
    args = parser.parse_args(argv)

    def log(msg, file=sys.stdout):
        print(msg, file=file, flush=True)

    try:
        # The datasheet describes the shipped file only: refresh it when building that file.
        sheet = DATASHEET if not args.no_datasheet and args.out.resolve() == OUT_FILE else None
        return build(args.raw, args.out, args.seed, strict=args.strict, check=args.check,
                     datasheet=sheet, log=log)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
