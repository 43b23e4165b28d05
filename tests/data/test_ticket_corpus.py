"""The shipped support-ticket corpus: the documented API, the fixed split, and the quality bars."""

from __future__ import annotations

import pandas as pd
import pytest

from tradeoffs import data

DTYPES = {
    "ticket_id": "str", "tenant": "str", "channel": "str", "customer_tier": "str",
    "created_at": "datetime64[ns, UTC]", "text": "str", "intent": "str", "secondary_intent": "str",
    "ambiguous": "bool", "priority": "str", "high_stakes": "bool", "high_stakes_reason": "str", "split": "str",
}


def test_api_names():
    assert data.INTENTS == ("billing", "refund", "delivery", "account_access", "bug_report", "cancellation",
                            "product_question", "complaint")
    assert data.PRIORITIES == ("low", "normal", "high", "urgent")
    assert data.SPLITS == ("train", "validation", "test")
    assert set(data.TENANT_NAMES) == set(data.TENANTS) and len(data.TENANTS) == 5


def test_columns_and_dtypes(tickets):
    assert tuple(tickets.columns) == data.TICKET_COLUMNS
    assert {c: str(t) for c, t in tickets.dtypes.items()} == DTYPES
    assert tickets["ticket_id"].is_unique
    assert tickets["created_at"].is_monotonic_increasing
    assert tickets["text"].str.strip().str.len().gt(0).all()


def test_label_vocabularies(tickets):
    for column, allowed in (("tenant", data.TENANTS), ("channel", data.CHANNELS),
                            ("customer_tier", data.CUSTOMER_TIERS), ("intent", data.INTENTS),
                            ("priority", data.PRIORITIES), ("split", data.SPLITS)):
        assert set(tickets[column]) == set(allowed), column  # every value used, nothing else
    assert set(tickets["secondary_intent"].dropna()) <= set(data.INTENTS)
    assert set(tickets["high_stakes_reason"].dropna()) == set(data.HIGH_STAKES_REASONS)


def test_label_consistency(tickets):
    amb = tickets[tickets["ambiguous"]]
    assert amb["secondary_intent"].notna().all()
    assert (tickets["secondary_intent"] != tickets["intent"]).all()
    assert (tickets["high_stakes"] == tickets["high_stakes_reason"].notna()).all()


def test_at_least_1200_tickets(tickets):
    assert len(tickets) >= 1200, f"only {len(tickets)} tickets"


def test_every_intent_has_at_least_60_tickets(tickets):
    counts = tickets["intent"].value_counts()
    assert counts.min() >= 60, counts.to_dict()


def test_flag_rates_are_plausible(tickets):
    """The writers' brief asked for about 12% ambiguous and about 10% high-stakes tickets."""
    assert 0.05 <= tickets["ambiguous"].mean() <= 0.25
    assert 0.05 <= tickets["high_stakes"].mean() <= 0.20
    urgent = tickets[tickets["priority"] == "urgent"]
    assert urgent["high_stakes"].mean() > tickets["high_stakes"].mean()  # urgent is mostly high-stakes


def test_split_sizes(tickets):
    sizes = tickets["split"].value_counts()
    assert sizes["test"] >= 300
    assert abs(sizes["validation"] / len(tickets) - 0.15) <= 0.01
    assert sizes["train"] > sizes["test"] > sizes["validation"]


def test_split_filter(tickets):
    parts = {s: data.load_tickets(s) for s in data.SPLITS}
    assert sum(len(p) for p in parts.values()) == len(tickets)
    for name, part in parts.items():
        assert set(part["split"]) == {name} and part.index.equals(pd.RangeIndex(len(part)))
    assert not set(parts["train"]["ticket_id"]) & set(parts["test"]["ticket_id"])
    with pytest.raises(ValueError, match="split must be one of"):
        data.load_tickets("dev")


def test_split_is_stratified_by_intent(tickets):
    n = len(tickets)
    totals = tickets["split"].value_counts()
    for intent, group in tickets.groupby("intent"):
        for split in ("test", "validation"):
            expected = len(group) * totals[split] / n
            assert abs((group["split"] == split).sum() - expected) < 1, (intent, split)


def test_splits_are_spread_over_tenants(tickets):
    share = pd.crosstab(tickets["tenant"], tickets["split"], normalize="index")["test"]
    overall = (tickets["split"] == "test").mean()
    assert (share - overall).abs().max() < 0.05, share.to_dict()


def test_no_two_tickets_share_a_12_word_sequence(tickets):
    shared = data.shared_word_sequences(tickets["text"].tolist(), n=12)
    detail = [f"{tickets['ticket_id'][i]} / {tickets['ticket_id'][j]}: {seq!r}" for i, j, seq in shared[:10]]
    assert not shared, f"{len(shared)} pairs share 12 words, e.g. " + "; ".join(detail)


def test_timestamps_cover_90_days_with_quiet_weekends(tickets):
    t = tickets["created_at"]
    assert t.min() >= pd.Timestamp("2025-01-06", tz="UTC") and t.max() < pd.Timestamp("2025-04-06", tz="UTC")
    per_day = t.dt.floor("D").value_counts()
    weekend = per_day[per_day.index.dayofweek >= 5].mean()
    weekday = per_day[per_day.index.dayofweek < 5].mean()
    assert weekend < 0.8 * weekday
    chat_hours = t[tickets["channel"] == "chat"].dt.hour
    assert chat_hours.between(7, 19).mean() > 0.7


def test_shipped_csv_is_exactly_what_the_build_produces(build_mod, root, tmp_path):
    """tickets.csv is up to date with raw/*.jsonl, and the build is deterministic."""
    out = tmp_path / "tickets.csv"
    code = build_mod.build(root / "support_tickets" / "raw", out, datasheet=None, log=lambda *a, **k: None)
    assert code == 0
    assert out.read_bytes() == (root / data.TICKETS_FILE).read_bytes(), (
        "tickets.csv is stale: run `python -m tradeoffs.data rebuild`")


def test_datasheet_composition_is_current(build_mod, root, tickets):
    sheet = (root / "support_tickets" / "DATASHEET.md").read_text(encoding="utf-8")
    assert build_mod.composition_markdown(tickets) in sheet, "run `python -m tradeoffs.data rebuild`"
    assert "written for this course" in sheet
    for heading in ("## Motivation", "## Composition", "## Collection process", "## Preprocessing and labelling",
                    "## Known issues and noise", "## Uses", "## Distribution, licence and maintenance"):
        assert heading in sheet
