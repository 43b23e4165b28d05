"""Generate ``trace.csv``: one day of LLM requests per tenant and feature, derived from the tickets.

Usage (from the repository root, after ``datasets/support_tickets/build.py``)::

    python datasets/traffic/make_trace.py                      # writes trace.csv + datasheet block
    python datasets/traffic/make_trace.py --out /tmp/t.csv     # same bytes, elsewhere
    python -m tradeoffs.data rebuild                           # tickets, trace, SHA256SUMS

The model of the day (every number below is a named constant in this file):

* **Volume and skew.** About ``BASE_REQUESTS`` ordinary requests on 2025-04-08 (a Tuesday, UTC),
  split across tenants by ``TENANT_SHARE`` (ParcelPoint carries over a third, FitLoop under a tenth)
  and across the three features by ``FEATURE_MIX`` per tenant.
* **Diurnal curve.** Each tenant's rate follows its own mix of Gaussian bumps over a night floor
  (``DIURNAL``): business hours for Ledgerly, evening peaks for the consumer apps. The expected count
  per minute is then multiplied by a Gamma(20, 1/20) factor per tenant and 5-minute block (real traffic
  is burstier than Poisson) and drawn from a Poisson distribution; arrival times are uniform within
  their minute at millisecond resolution.
* **Bursts.** Named events add requests on top (``BURSTS``): an incident that ramps up in five minutes
  and decays (its tickets drawn from matching intents, e.g. delivery and complaint tickets during the
  ParcelPoint tracking outage), and one batch job (Ledgerly's nightly digest) that submits one
  summarise request per second.
* **Prompt lengths are exact**: every request is built from one ticket of its tenant (uniformly drawn),
  wrapped in the feature's prompt (``PROMPTS``) and the chat template of the kit's chat model
  (SmolLM2-135M-Instruct), and counted with its tokenizer.
* **Completion lengths**: ``classify`` is exact (the tokens of the reference JSON answer plus the
  end-of-turn token); ``summarise`` and ``draft_reply`` are modelled, not generated: log-normal around
  a mean that grows with the ticket's length (``COMPLETION_MODEL``), clipped to a plausible range.

Everything random comes from one ``numpy.random.default_rng(SEED)`` consumed in a fixed order, and the
CSV is written with integer arithmetic only, so the same tickets give a byte-identical file.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from tradeoffs import data, files

HERE = Path(__file__).resolve().parent
OUT_FILE = HERE / "trace.csv"
DATASHEET = HERE / "DATASHEET.md"

SEED = 20250408
DAY = datetime(2025, 4, 8, tzinfo=timezone.utc)  # a Tuesday, after the tickets' 90 days
MINUTES = 24 * 60
BASE_REQUESTS = 20_000
OVERDISPERSION_SHAPE = 20.0  # Gamma(k, 1/k) multiplier per tenant and 5-minute block
BLOCK_MINUTES = 5

TENANT_SHARE = {"parcelpoint": 0.36, "northwind_energy": 0.24, "ledgerly": 0.18, "kitcube": 0.13,
                "fitloop": 0.09}
# (summarise, classify, draft_reply) share of each tenant's ordinary requests
FEATURE_MIX = {
    "northwind_energy": (0.20, 0.55, 0.25),
    "parcelpoint": (0.10, 0.65, 0.25),
    "ledgerly": (0.30, 0.40, 0.30),
    "kitcube": (0.15, 0.50, 0.35),
    "fitloop": (0.15, 0.45, 0.40),
}
# Night floor (relative to the peak) and Gaussian bumps (centre hour, width in hours, height).
DIURNAL = {
    "northwind_energy": (0.08, [(8.5, 1.5, 1.0), (13.0, 2.5, 0.6), (19.0, 1.8, 0.9)]),
    "parcelpoint": (0.05, [(10.0, 2.0, 1.0), (15.0, 2.5, 0.8), (20.0, 1.5, 0.3)]),
    "ledgerly": (0.03, [(10.0, 1.8, 1.0), (14.5, 2.0, 0.9)]),
    "kitcube": (0.06, [(12.5, 2.0, 0.5), (19.5, 2.0, 1.0)]),
    "fitloop": (0.10, [(7.0, 1.5, 0.6), (21.0, 2.0, 1.0)]),
}


@dataclass(frozen=True)
class Burst:
    """A named event that adds ``requests`` (expected) on top of a tenant's ordinary traffic."""

    name: str
    tenant: str
    start: str  # "HH:MM" UTC
    minutes: int
    requests: int
    features: tuple[float, float, float]  # (summarise, classify, draft_reply) shares
    intents: tuple[str, ...]  # the tickets it draws from; () = every intent
    kind: str = "incident"  # "incident" (ramp up, decay, Poisson) | "batch" (one request per second)


BURSTS = (
    Burst("ledgerly_nightly_digest", "ledgerly", "02:00", 15, 900, (1.0, 0.0, 0.0), (), kind="batch"),
    Burst("northwind_login_incident", "northwind_energy", "07:40", 50, 1000, (0.0, 0.6, 0.4),
          ("account_access", "bug_report")),
    Burst("parcelpoint_tracking_outage", "parcelpoint", "11:30", 75, 2000, (0.15, 0.55, 0.30),
          ("delivery", "complaint")),
    Burst("kitcube_delivery_delay", "kitcube", "17:00", 60, 800, (0.1, 0.5, 0.4),
          ("delivery", "complaint", "refund")),
    Burst("fitloop_firmware_update", "fitloop", "20:30", 60, 900, (0.1, 0.5, 0.4),
          ("bug_report", "product_question")),
)

PROMPTS = {
    "summarise": ("You summarise customer-support tickets for {company}'s agents. Write one or two plain "
                  "sentences: what the customer wants, and any order number, amount or date they give."),
    "classify": ("You triage customer-support tickets for {company}. Reply with JSON only: "
                 '{{"intent": one of {intents}, "priority": one of {priorities}}}.'),
    "draft_reply": ("You are a support agent at {company}. Draft a short, polite reply to the customer "
                    "below. Answer what they asked, say what happens next, and promise nothing you cannot "
                    "check."),
}
# (base tokens, tokens per ticket token, log-normal sigma, min, max)
COMPLETION_MODEL = {
    "summarise": (16.0, 0.22, 0.30, 8, 120),
    "draft_reply": (60.0, 0.45, 0.35, 20, 400),
}


# --------------------------------------------------------------------------------------------
# Token counts
# --------------------------------------------------------------------------------------------
def load_tokenizer(path: str | Path | None = None):
    """The chat model's tokenizer (from the kit's model cache unless ``path`` is given)."""
    from transformers import AutoTokenizer

    if path is None:
        from tradeoffs import models

        path = models.prepare_chat_model(progress=False)
    return AutoTokenizer.from_pretrained(path)


def system_prompt(feature: str, tenant: str) -> str:
    """The system message of a feature's prompt for one tenant."""
    return PROMPTS[feature].format(company=data.TENANT_NAMES[tenant], intents=", ".join(data.INTENTS),
                                   priorities=", ".join(data.PRIORITIES))


def classify_answer(intent: str, priority: str) -> str:
    """The reference completion of a classify request."""
    return f'{{"intent": "{intent}", "priority": "{priority}"}}'


def token_table(tickets, tokenizer) -> dict[str, np.ndarray]:
    """Per ticket: text tokens, prompt tokens for each feature, and the classify answer's tokens."""
    def count(texts):
        return np.array([len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]],
                        dtype=np.int64)

    out = {"text": count(tickets["text"])}
    for feature in data.FEATURES:
        prompts = [tokenizer.apply_chat_template(
            [{"role": "system", "content": system_prompt(feature, tenant)}, {"role": "user", "content": text}],
            add_generation_prompt=True, tokenize=False) for tenant, text in zip(tickets["tenant"], tickets["text"])]
        out[feature] = count(prompts)
    answers = [classify_answer(i, p) for i, p in zip(tickets["intent"], tickets["priority"])]
    out["classify_answer"] = count(answers) + 1  # + the end-of-turn token
    return out


# --------------------------------------------------------------------------------------------
# Arrivals
# --------------------------------------------------------------------------------------------
def diurnal_profile(tenant: str) -> np.ndarray:
    """Relative request rate per minute of the day (sums to 1)."""
    floor, bumps = DIURNAL[tenant]
    hours = (np.arange(MINUTES) + 0.5) / 60.0
    curve = np.full(MINUTES, floor)
    for centre, width, height in bumps:
        curve += height * np.exp(-0.5 * ((hours - centre) / width) ** 2)
    return curve / curve.sum()


def burst_profile(burst: Burst) -> np.ndarray:
    """Relative rate per minute of the day for an incident: 5-minute ramp up, then decay."""
    hh, mm = (int(x) for x in burst.start.split(":"))
    start = hh * 60 + mm
    m = np.arange(burst.minutes, dtype=float)
    shape = np.minimum(1.0, (m + 1) / 5.0) * np.exp(-m / (burst.minutes / 3.0))
    out = np.zeros(MINUTES)
    out[start:start + burst.minutes] = shape
    return out / out.sum()


def _poisson_arrivals(rng, expected_per_minute: np.ndarray) -> np.ndarray:
    """Arrival times (ms since midnight) for a per-minute expected count."""
    counts = rng.poisson(expected_per_minute)
    minutes = np.repeat(np.arange(MINUTES, dtype=np.int64), counts)
    return minutes * 60_000 + rng.integers(0, 60_000, size=minutes.size)


def _completion_tokens(rng, feature: str, idx: np.ndarray, tokens: dict[str, np.ndarray]) -> np.ndarray:
    if feature == "classify":
        return tokens["classify_answer"][idx]
    base, slope, sigma, lo, hi = COMPLETION_MODEL[feature]
    mean = base + slope * tokens["text"][idx]
    draw = mean * rng.lognormal(-0.5 * sigma**2, sigma, size=idx.size)  # log-normal with this mean
    return np.clip(np.rint(draw), lo, hi).astype(np.int64)


def make_trace(tickets, tokens: dict[str, np.ndarray], seed: int = SEED) -> list[tuple]:
    """All requests of the day as tuples (ms, tenant, feature, prompt, completion, ticket_id, burst).

    The random generator is consumed in a fixed order (tenants, then features, then bursts), so the
    result depends only on the tickets, the token counts and ``seed``.
    """
    rng = np.random.default_rng(seed)
    ids = tickets["ticket_id"].to_numpy()
    tenant_col = tickets["tenant"].to_numpy()
    intent_col = tickets["intent"].to_numpy()
    rows: list[tuple] = []

    def emit(times, tenant, feature, pool, burst_name):
        idx = pool[rng.integers(0, pool.size, size=times.size)]
        completion = _completion_tokens(rng, feature, idx, tokens)
        prompt = tokens[feature][idx]
        for t, i, p, c in zip(times.tolist(), idx.tolist(), prompt.tolist(), completion.tolist()):
            rows.append((t, tenant, feature, p, c, ids[i], burst_name))

    for tenant in data.TENANTS:
        pool = np.flatnonzero(tenant_col == tenant)
        if pool.size == 0:
            raise ValueError(f"no tickets for tenant {tenant!r}; build the ticket corpus first")
        profile = diurnal_profile(tenant)
        blocks = MINUTES // BLOCK_MINUTES
        wobble = np.repeat(rng.gamma(OVERDISPERSION_SHAPE, 1.0 / OVERDISPERSION_SHAPE, size=blocks), BLOCK_MINUTES)
        for feature, share in zip(data.FEATURES, FEATURE_MIX[tenant]):
            expected = BASE_REQUESTS * TENANT_SHARE[tenant] * share * profile * wobble
            emit(_poisson_arrivals(rng, expected), tenant, feature, pool, "")
    for burst in BURSTS:
        pool = np.flatnonzero((tenant_col == burst.tenant) &
                              (np.isin(intent_col, burst.intents) if burst.intents else True))
        if pool.size == 0:
            raise ValueError(f"burst {burst.name!r} has no {burst.tenant} tickets with intents {burst.intents}")
        if burst.kind == "batch":
            hh, mm = (int(x) for x in burst.start.split(":"))
            start_ms = (hh * 60 + mm) * 60_000
            times = start_ms + 1000 * np.arange(burst.requests, dtype=np.int64)
            feature = data.FEATURES[int(np.argmax(burst.features))]
            emit(times, burst.tenant, feature, pool, burst.name)
            continue
        profile = burst_profile(burst)
        for feature, share in zip(data.FEATURES, burst.features):
            if share > 0:
                emit(_poisson_arrivals(rng, burst.requests * share * profile), burst.tenant, feature, pool,
                     burst.name)
    rows.sort(key=lambda r: (r[0], r[1], r[2], r[5], r[6]))
    return rows


def _iso_ms(ms: int) -> str:
    t = DAY + timedelta(milliseconds=int(ms))
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def to_csv(rows: list[tuple]) -> str:
    """CSV text in ``data.TRACE_COLUMNS`` order (``\\n`` line ends)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(data.TRACE_COLUMNS)
    for k, (ms, tenant, feature, prompt, completion, tid, burst) in enumerate(rows, start=1):
        writer.writerow([f"req-{k:06d}", _iso_ms(ms), tenant, feature, prompt, completion, tid, burst])
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# Datasheet block
# --------------------------------------------------------------------------------------------
BEGIN_MARK = "<!-- BEGIN GENERATED: composition (datasets/traffic/make_trace.py) -->"
END_MARK = "<!-- END GENERATED: composition -->"


def composition_markdown(trace, tickets_sha256: str) -> str:
    """The generated block of the trace datasheet, computed from a loaded trace."""
    per_min = trace.set_index("timestamp").resample("1min").size()
    lines = [BEGIN_MARK, "",
             f"**{len(trace):,} requests** on {trace['timestamp'].min():%Y-%m-%d} (UTC), "
             f"{int(trace['prompt_tokens'].sum()):,} prompt tokens and "
             f"{int(trace['completion_tokens'].sum()):,} completion tokens. Busiest minute: "
             f"{int(per_min.max())} requests at {per_min.idxmax():%H:%M}; quietest: {int(per_min.min())}. "
             f"{int(trace['burst'].notna().sum()):,} requests belong to a named burst. Built from "
             f"`support_tickets/tickets.csv` with sha256 `{tickets_sha256[:16]}...`.", "",
             "| tenant | " + " | ".join(data.FEATURES) + " | total | share |",
             "|---|" + "---:|" * (len(data.FEATURES) + 2)]
    table = trace.groupby(["tenant", "feature"]).size().unstack(fill_value=0).reindex(
        index=list(data.TENANTS), columns=list(data.FEATURES), fill_value=0)
    for tenant, row in table.iterrows():
        lines.append(f"| {tenant} | " + " | ".join(f"{int(v):,}" for v in row) +
                     f" | {int(row.sum()):,} | {row.sum() / len(trace):.1%} |")
    lines += ["", "| feature | prompt tokens p50 | p90 | max | completion tokens p50 | p90 | max |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for feature in data.FEATURES:
        sub = trace[trace["feature"] == feature]
        p, c = sub["prompt_tokens"], sub["completion_tokens"]
        lines.append(f"| {feature} | {int(p.median())} | {int(p.quantile(0.9))} | {int(p.max())} | "
                     f"{int(c.median())} | {int(c.quantile(0.9))} | {int(c.max())} |")
    lines += ["", "| burst | tenant | start (UTC) | requests |", "|---|---|---|---:|"]
    for burst in BURSTS:
        n = int((trace["burst"] == burst.name).sum())
        lines.append(f"| {burst.name} | {burst.tenant} | {burst.start} | {n:,} |")
    lines += ["", END_MARK]
    return "\n".join(lines)


def update_datasheet(csv_path: Path, tickets_sha256: str, datasheet: Path = DATASHEET) -> bool:
    """Refresh the generated block of the datasheet; True when it changed."""
    if not datasheet.exists():
        return False
    text = datasheet.read_text(encoding="utf-8")
    if BEGIN_MARK not in text or END_MARK not in text:
        raise ValueError(f"{datasheet} has no generated block; add the lines\n{BEGIN_MARK}\n{END_MARK}")
    head, rest = text.split(BEGIN_MARK, 1)
    _, tail = rest.split(END_MARK, 1)
    new = head + composition_markdown(data.read_trace_csv(csv_path), tickets_sha256) + tail
    if new != text:
        files.atomic_write(datasheet, new)
    return new != text


def generate(tickets_csv: Path, tokenizer=None, seed: int = SEED) -> str:
    """The trace CSV text for a tickets file."""
    tickets = data.read_tickets_csv(tickets_csv).sort_values("ticket_id", kind="stable").reset_index(drop=True)
    tokenizer = tokenizer if tokenizer is not None else load_tokenizer()
    return to_csv(make_trace(tickets, token_table(tickets, tokenizer), seed))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=Path, default=HERE.parent / data.TICKETS_FILE)
    parser.add_argument("--out", type=Path, default=OUT_FILE)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--tokenizer", type=Path, default=None,
                        help="a tokenizer folder (default: the kit's chat model cache)")
    parser.add_argument("--no-datasheet", action="store_true", help="leave DATASHEET.md alone")
    args = parser.parse_args(argv)
    try:
        tokenizer = load_tokenizer(args.tokenizer)
    except Exception as exc:  # missing cache, unreadable folder
        print(f"error: could not load the chat model's tokenizer ({type(exc).__name__}: {exc}). "
              "Fix: run `tradeoffs models prepare` (or pass --tokenizer DIR).", file=sys.stderr)
        return 2
    try:
        text = generate(args.tickets, tokenizer, args.seed)
    except (data.DatasetError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = args.out
    changed = not out.exists() or out.read_text(encoding="utf-8") != text
    if changed:
        files.atomic_write(out, text)
    print(f"{'wrote' if changed else 'unchanged'} {out} ({text.count(chr(10)) - 1} requests)")
    if not args.no_datasheet and out.resolve() == OUT_FILE:
        if update_datasheet(out, data.sha256_file(args.tickets)):
            print(f"updated the composition block of {DATASHEET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
