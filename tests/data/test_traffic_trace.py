"""The shipped one-day traffic trace: API, shape of the day (diurnal, bursts, skew), link to the tickets,
and byte-for-byte reproducibility of make_trace.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tradeoffs import data

DTYPES = {"request_id": "str", "timestamp": "datetime64[ns, UTC]", "tenant": "str", "feature": "str",
          "prompt_tokens": "int64", "completion_tokens": "int64", "ticket_id": "str", "burst": "str"}


def test_columns_dtypes_and_order(trace):
    assert tuple(trace.columns) == data.TRACE_COLUMNS
    assert {c: str(t) for c, t in trace.dtypes.items()} == DTYPES
    assert trace["timestamp"].is_monotonic_increasing
    assert (trace["request_id"] == [f"req-{k:06d}" for k in range(1, len(trace) + 1)]).all()
    assert (trace["timestamp"].dt.normalize() == pd.Timestamp("2025-04-08", tz="UTC")).all()
    assert (trace["prompt_tokens"] > 0).all() and (trace["completion_tokens"] > 0).all()


def test_every_tenant_and_feature_appears(trace):
    table = pd.crosstab(trace["tenant"], trace["feature"])
    assert set(table.index) == set(data.TENANTS) and set(table.columns) == set(data.FEATURES)
    assert (table.to_numpy() >= 100).all()


def test_requests_come_from_the_tenants_own_tickets(trace, tickets):
    owner = tickets.set_index("ticket_id")["tenant"]
    assert trace["ticket_id"].isin(owner.index).all()
    assert (owner.loc[trace["ticket_id"]].to_numpy() == trace["tenant"].to_numpy()).all()


def test_token_counts_are_a_function_of_ticket_and_feature(trace):
    """Prompt lengths are exact token counts, so one ticket + one feature always gives one length."""
    per = trace.groupby(["ticket_id", "feature"])["prompt_tokens"].nunique()
    assert (per == 1).all()
    classify = trace[trace["feature"] == "classify"].groupby("ticket_id")["completion_tokens"].nunique()
    assert (classify == 1).all()
    longer = trace.groupby("feature")["completion_tokens"].median()
    assert longer["draft_reply"] > longer["summarise"] > longer["classify"]


def test_prompts_grow_with_ticket_length(trace, tickets):
    words = tickets.set_index("ticket_id")["text"].str.split().str.len()
    sub = trace[trace["feature"] == "summarise"].drop_duplicates("ticket_id")
    corr = np.corrcoef(words.loc[sub["ticket_id"]], sub["prompt_tokens"])[0, 1]
    assert corr > 0.9


def test_diurnal_curve(trace):
    ordinary = trace[trace["burst"].isna()]
    per_hour = ordinary.groupby(ordinary["timestamp"].dt.hour).size().reindex(range(24), fill_value=0)
    assert per_hour[2:6].mean() < 0.25 * per_hour[9:12].mean()
    assert per_hour.idxmax() in range(7, 22)


def test_per_tenant_skew(trace):
    share = trace["tenant"].value_counts(normalize=True)
    assert share.idxmax() == "parcelpoint" and share.max() > 0.3
    assert share.min() < 0.15 and share.max() / share.min() > 2.5


def test_bursts_stand_out(trace, trace_mod):
    for burst in trace_mod.BURSTS:
        rows = trace[trace["burst"] == burst.name]
        assert len(rows) > 0.8 * burst.requests and set(rows["tenant"]) == {burst.tenant}
        start = pd.Timestamp(f"2025-04-08 {burst.start}", tz="UTC")
        window = slice(start, start + pd.Timedelta(minutes=burst.minutes))
        tenant = trace[trace["tenant"] == burst.tenant].set_index("timestamp")
        inside = len(tenant.loc[window]) / burst.minutes
        before = len(tenant.loc[start - pd.Timedelta(hours=1):start]) / 60
        assert inside > 2 * before, (burst.name, inside, before)
        assert rows["timestamp"].min() >= start
        if burst.intents:
            intents = data.load_tickets().set_index("ticket_id").loc[rows["ticket_id"], "intent"]
            assert set(intents) <= set(burst.intents)


def test_batch_job_is_evenly_spaced(trace):
    batch = trace[trace["burst"] == "ledgerly_nightly_digest"]
    gaps = batch["timestamp"].diff().dropna()
    assert len(batch) == 900 and (gaps == pd.Timedelta(seconds=1)).all()
    assert set(batch["feature"]) == {"summarise"}


def test_generation_is_deterministic_given_tokens(trace_mod, tickets):
    """Same tickets, token table and seed give the same rows; another seed gives other rows."""
    tickets = tickets.sort_values("ticket_id").reset_index(drop=True)
    n = len(tickets)
    rng = np.random.default_rng(0)
    tokens = {"text": rng.integers(5, 200, n), "classify_answer": rng.integers(12, 18, n),
              **{f: rng.integers(50, 300, n) for f in data.FEATURES}}
    a = trace_mod.make_trace(tickets, tokens, seed=1)
    assert a == trace_mod.make_trace(tickets, tokens, seed=1)
    assert a != trace_mod.make_trace(tickets, tokens, seed=2)
    assert trace_mod.to_csv(a).startswith(",".join(data.TRACE_COLUMNS) + "\n")


def test_datasheet_composition_is_current(trace_mod, trace, root):
    sheet = (root / "traffic" / "DATASHEET.md").read_text(encoding="utf-8")
    block = trace_mod.composition_markdown(trace, data.sha256_file(root / data.TICKETS_FILE))
    assert block in sheet, "run `python -m tradeoffs.data rebuild`"


@pytest.mark.models
def test_trace_is_reproduced_byte_for_byte(trace_mod, root):
    """make_trace.py, run again on the shipped tickets, writes exactly the shipped trace.csv."""
    text = trace_mod.generate(root / data.TICKETS_FILE, trace_mod.load_tokenizer())
    shipped = (root / data.TRACE_FILE).read_text(encoding="utf-8")
    assert text == shipped, "trace.csv is stale or make_trace.py changed: run `python -m tradeoffs.data rebuild`"


def test_metering_replays_the_same_prompts_the_trace_counted(trace_mod):
    """tradeoffs.metering replays the trace with its own copy of the prompts; if they drift apart, the
    trace's prompt_tokens no longer describe what is sent. Change both, then rebuild the trace."""
    metering = pytest.importorskip("tradeoffs.metering")
    for feature in data.FEATURES:
        assert metering.SUPPORT_TEMPLATES[f"{feature}/v1"] == (feature, trace_mod.PROMPTS[feature])
