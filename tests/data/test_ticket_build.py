"""datasets/support_tickets/build.py on small synthetic raw folders: validation errors, stable ids,
deterministic timestamps and splits, exact CSV round trip, --check and --strict."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from tradeoffs import data

VOCAB = ("meter parcel invoice box strap charge login app refund driver locker tariff recipe sync "
         "battery payroll seat voucher bill reading engineer label customs spoiled allergy firmware "
         "premium export password code screen week order account plan size slot morning evening").split()


def _text(rng, k: int) -> str:
    return f"ticket {k}: " + " ".join(rng.choice(VOCAB, size=int(rng.integers(6, 11))))


def _records(n_per_tenant=40, seed=0, tenants=data.TENANTS):
    rng = np.random.default_rng(seed)
    out, k = {t: [] for t in tenants}, 0
    for tenant in tenants:
        for _ in range(n_per_tenant):
            intent = data.INTENTS[k % len(data.INTENTS)]
            stakes = k % 10 == 0
            second = data.INTENTS[(k + 3) % 8] if k % 7 == 0 else None
            out[tenant].append({
                "tenant": tenant, "channel": data.CHANNELS[k % 3], "customer_tier": data.CUSTOMER_TIERS[k % 3],
                "intent": intent, "secondary_intent": second, "ambiguous": second is not None and k % 2 == 0,
                "priority": "urgent" if stakes else "normal", "high_stakes": stakes,
                "high_stakes_reason": "safety" if stakes else None, "text": _text(rng, k)})
            k += 1
    return out


def _write(raw, records):
    raw.mkdir(parents=True, exist_ok=True)
    for tenant, recs in records.items():
        (raw / f"{tenant}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs),
                                             encoding="utf-8")


def _build(build_mod, raw, out, **kw):
    messages = []
    code = build_mod.build(raw, out, datasheet=None, log=lambda m, file=None: messages.append(m), **kw)
    return code, "\n".join(messages)


@pytest.fixture()
def raw(tmp_path):
    path = tmp_path / "raw"
    _write(path, _records())
    return path


def test_build_writes_a_loadable_deterministic_csv(build_mod, raw, tmp_path):
    out = tmp_path / "tickets.csv"
    code, log = _build(build_mod, raw, out)
    assert code == 0 and "200 tickets" in log
    first = out.read_bytes()
    assert _build(build_mod, raw, out)[0] == 0 and out.read_bytes() == first  # idempotent
    df = data.read_tickets_csv(out)
    assert tuple(df.columns) == data.TICKET_COLUMNS and len(df) == 200
    assert str(df["created_at"].dtype) == "datetime64[ns, UTC]"
    assert df["ambiguous"].dtype == bool and df["high_stakes"].dtype == bool
    assert df["created_at"].is_monotonic_increasing
    assert df["ticket_id"].str.fullmatch(r"(NWE|PPT|LDG|KCB|FTL)-[0-9a-f]{8}").all()


def test_text_round_trips_exactly(build_mod, tmp_path):
    recs = _records(n_per_tenant=8)
    tricky = ['he said "no", then hung up', "line one\nline two", "  padded  ", "NA", "null", "£120, €3 😡",
              "a,b,c", "trailing comma,"]
    for rec, text in zip(recs["kitcube"], tricky):
        rec["text"] = text
    _write(tmp_path / "raw", recs)
    _build(build_mod, tmp_path / "raw", tmp_path / "t.csv")
    df = data.read_tickets_csv(tmp_path / "t.csv")
    got = set(df.loc[df["tenant"] == "kitcube", "text"])
    assert got == {t.strip() for t in tricky}
    assert df["text"].notna().all()


def test_ids_and_times_are_stable_when_tickets_are_added(build_mod, tmp_path):
    small, big = _records(n_per_tenant=20, seed=1), _records(n_per_tenant=20, seed=1)
    for tenant in data.TENANTS:  # append more tickets and shuffle the file order
        big[tenant] = list(reversed(big[tenant] + _records(n_per_tenant=10, seed=2)[tenant]))
    _write(tmp_path / "a", small)
    _write(tmp_path / "b", big)
    _build(build_mod, tmp_path / "a", tmp_path / "a.csv")
    _build(build_mod, tmp_path / "b", tmp_path / "b.csv")
    a = data.read_tickets_csv(tmp_path / "a.csv").set_index("ticket_id")
    b = data.read_tickets_csv(tmp_path / "b.csv").set_index("ticket_id")
    assert set(a.index) <= set(b.index) and len(b) == 150
    pd.testing.assert_series_equal(a["created_at"], b.loc[a.index, "created_at"])
    assert (a["text"] == b.loc[a.index, "text"]).all()


def test_split_is_stratified_by_intent(build_mod, raw, tmp_path):
    _build(build_mod, raw, tmp_path / "t.csv")
    df = data.read_tickets_csv(tmp_path / "t.csv")
    n_test, n_val = build_mod.split_sizes(len(df))
    assert (df["split"] == "test").sum() == n_test and (df["split"] == "validation").sum() == n_val
    for intent, group in df.groupby("intent"):
        for split, total in (("test", n_test), ("validation", n_val)):
            expected = len(group) * total / len(df)
            assert abs((group["split"] == split).sum() - expected) < 1, (intent, split)


def test_split_sizes_policy(build_mod):
    assert build_mod.split_sizes(1250) == (313, 188)
    assert build_mod.split_sizes(1200) == (300, 180)
    assert build_mod.split_sizes(1000)[0] == 300  # the floor of 300 test tickets
    assert build_mod.split_sizes(200)[0] == 80    # capped at 40% for tiny corpora


def test_timestamps_follow_weekday_and_channel_patterns(build_mod):
    days = Counter()
    hours = {c: Counter() for c in data.CHANNELS}
    for k in range(3000):
        channel = data.CHANNELS[k % 3]
        t = build_mod.timestamp_for(f"X-{k:08x}", channel)
        assert build_mod.START <= t < build_mod.START + pd.Timedelta(days=build_mod.DAYS)
        days[t.weekday()] += 1
        hours[channel][t.hour] += 1
    assert days[0] > 1.8 * days[6]  # Monday busier than Sunday
    chat_day = sum(hours["chat"][h] for h in range(8, 18))
    assert chat_day > 0.6 * sum(hours["chat"].values())
    evening = lambda c: sum(hours[c][h] for h in range(18, 23)) / sum(hours[c].values())
    assert evening("web_form") > evening("chat")
    assert build_mod.timestamp_for("X-1", "chat") == build_mod.timestamp_for("X-1", "chat")


def _errors(build_mod, tmp_path, mutate, tenant="kitcube", line=1):
    recs = _records(n_per_tenant=3)
    mutate(recs[tenant][line - 1])
    _write(tmp_path / "raw", recs)
    with pytest.raises(build_mod.BuildError) as info:
        build_mod.read_raw(tmp_path / "raw")
    return str(info.value)


@pytest.mark.parametrize("mutate,expected", [
    (lambda r: r.update(intent="refunds"), "intent is 'refunds', expected one of"),
    (lambda r: r.pop("priority"), "missing key(s) ['priority']"),
    (lambda r: r.update(sentiment="angry"), "unexpected key(s) ['sentiment']"),
    (lambda r: r.update(ambiguous=True, secondary_intent=None), "ambiguous is true but secondary_intent is null"),
    (lambda r: r.update(secondary_intent=r["intent"]), "secondary_intent repeats the intent"),
    (lambda r: r.update(high_stakes=True, high_stakes_reason=None), "high_stakes is true, so high_stakes_reason"),
    (lambda r: r.update(high_stakes=False, high_stakes_reason="safety"), "high_stakes is false but"),
    (lambda r: r.update(ambiguous="true"), "ambiguous must be JSON true or false"),
    (lambda r: r.update(tenant="fitloop"), "tenant is 'fitloop' but the record is in kitcube.jsonl"),
    (lambda r: r.update(text="   "), "text must be a non-empty string"),
    (lambda r: r.update(channel="phone"), "channel is 'phone'"),
])
def test_invalid_records_are_reported_with_file_and_line(build_mod, tmp_path, mutate, expected):
    msg = _errors(build_mod, tmp_path, mutate, line=2)
    assert "raw/kitcube.jsonl:2:" in msg and expected in msg


def test_every_problem_is_reported_at_once(build_mod, tmp_path):
    recs = _records(n_per_tenant=3)
    recs["ledgerly"][0]["intent"] = "nope"
    recs["fitloop"][2]["priority"] = "p1"
    recs["kitcube"][1]["text"] = recs["kitcube"][0]["text"].upper()  # duplicate up to case
    _write(tmp_path / "raw", recs)
    (tmp_path / "raw" / "parcelpoint.jsonl").write_text('{"tenant": "parcelpoint",\n', encoding="utf-8")
    (tmp_path / "raw" / "acme.jsonl").write_text("", encoding="utf-8")
    with pytest.raises(build_mod.BuildError) as info:
        build_mod.read_raw(tmp_path / "raw")
    msg = str(info.value)
    assert msg.startswith("5 problem(s)")
    for part in ("raw/ledgerly.jsonl:1: intent is 'nope'", "raw/fitloop.jsonl:3: priority is 'p1'",
                 "raw/kitcube.jsonl:2: same text as raw/kitcube.jsonl:1", "raw/parcelpoint.jsonl:1: not valid JSON",
                 "raw/acme.jsonl: file name is not a tenant id"):
        assert part in msg


def test_empty_raw_folder(build_mod, tmp_path):
    (tmp_path / "raw").mkdir()
    with pytest.raises(build_mod.BuildError, match="no raw ticket files"):
        build_mod.read_raw(tmp_path / "raw")


def test_cli_exit_codes(build_mod, raw, tmp_path, capsys):
    out = tmp_path / "t.csv"
    assert build_mod.main(["--raw", str(raw), "--out", str(out), "--check"]) == 1  # missing = stale
    assert build_mod.main(["--raw", str(raw), "--out", str(out), "--strict"]) == 1  # 200 < 1,200 tickets
    assert not out.exists()
    assert "quality bar missed: 200 tickets" in capsys.readouterr().err
    assert build_mod.main(["--raw", str(raw), "--out", str(out)]) == 0 and out.exists()
    assert build_mod.main(["--raw", str(raw), "--out", str(out), "--check"]) == 0
    (raw / "kitcube.jsonl").write_text("{oops\n", encoding="utf-8")
    assert build_mod.main(["--raw", str(raw), "--out", str(out)]) == 2
    assert "raw/kitcube.jsonl:1: not valid JSON" in capsys.readouterr().err


def test_quality_report_flags_shared_word_sequences(build_mod, tmp_path):
    recs = _records(n_per_tenant=5)
    shared = "I have been waiting for over two weeks and nobody has answered a single one of my emails"
    recs["kitcube"][0]["text"] = "Hello. " + shared + " so please help."
    recs["fitloop"][3]["text"] = shared.upper() + "!!!"
    _write(tmp_path / "raw", recs)
    code, log = _build(build_mod, tmp_path / "raw", tmp_path / "t.csv")
    assert code == 0 and "pairs sharing 12 words: 1" in log
    assert "share 12 words" in log and "raw/kitcube.jsonl:1" in log and "raw/fitloop.jsonl:4" in log


def test_shared_word_sequences_helper():
    a = "the quick brown fox jumps over the lazy dog while the cat sleeps on the mat"
    b = "Yesterday THE quick brown fox, jumps over the lazy dog; while the cat sleeps!"
    assert data.shared_word_sequences([a, b], n=12) == [
        (0, 1, "the quick brown fox jumps over the lazy dog while the cat")]
    assert data.shared_word_sequences([a, b], n=14) == []  # they share exactly 13 words
    assert data.shared_word_sequences([a, a, "x"], n=3)[0][:2] == (0, 1)
    with pytest.raises(ValueError):
        data.shared_word_sequences([a], n=0)
