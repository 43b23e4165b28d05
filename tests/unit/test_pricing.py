"""Unit tests for tradeoffs.pricing: API prices against genai-prices, hardware and staff inputs with their
sources, machines at peak, and lab 1's what-if callback (which runs on the functions it is given)."""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone

import genai_prices
import numpy as np
import pandas as pd
import pytest

from tradeoffs import pricing as pr

WHEN = datetime(2026, 6, 1, tzinfo=timezone.utc)


# --------------------------------------------------------------------------------------------
# API prices: genai-prices is the only source
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("model,provider", [("gpt-4o-mini", "openai"), ("gpt-4o", "openai"),
                                            ("claude-haiku-4-5", "anthropic"), ("gemini-2.5-flash-lite", "google"),
                                            ("mistral-small-latest", "mistral"), ("llama-3.1-8b-instant", "groq")])
@pytest.mark.parametrize("i,o,c", [(1, 0, 0), (0, 1, 0), (1234, 567, 0), (5000, 10, 4000), (250_000, 2_000, 0)])
def test_cost_equals_genai_prices(model, provider, i, o, c):
    expected = genai_prices.calc_price(genai_prices.Usage(input_tokens=i, output_tokens=o, cache_read_tokens=c or None),
                                       model, provider_id=provider, genai_request_timestamp=WHEN).total_price
    assert pr.ApiModel(model, provider).cost(i, o, c, when=WHEN) == pytest.approx(float(expected), rel=1e-12, abs=0)


def test_gpt4o_mini_list_price():
    # OpenAI's published price for gpt-4o-mini: $0.15 per million input tokens, $0.60 per million output,
    # $0.075 per million cached input tokens (https://platform.openai.com/docs/pricing)
    rates = pr.ApiModel("gpt-4o-mini", "openai").rates(WHEN)
    assert rates == pytest.approx({"input_usd_per_mtok": 0.15, "output_usd_per_mtok": 0.60,
                                   "cached_input_usd_per_mtok": 0.075})


def test_cached_tokens_are_cheaper_and_bounded():
    m = pr.ApiModel("gpt-4o-mini", "openai")
    assert m.cost(1000, 100, cached_tokens=1000, when=WHEN) < m.cost(1000, 100, when=WHEN)
    with pytest.raises(ValueError, match="cannot exceed input_tokens"):
        m.cost(100, 10, cached_tokens=101)


@pytest.mark.parametrize("bad", [-1, 1.5, "10", None, True])
def test_cost_rejects_bad_token_counts(bad):
    with pytest.raises((TypeError, ValueError)):
        pr.ApiModel("gpt-4o-mini", "openai").cost(bad, 10)


def test_unknown_model_says_how_to_fix():
    with pytest.raises(LookupError, match="genai-prices .* no price for model 'gpt-17'.*Fix"):
        pr.ApiModel("gpt-17", "openai").cost(10, 10)
    with pytest.raises(ValueError, match="non-empty"):
        pr.ApiModel("", "openai")


def test_vectorised_costs_match_one_by_one():
    rng = np.random.default_rng(0)
    i = rng.integers(1, 3000, 200)
    o = rng.integers(1, 500, 200)
    m = pr.ApiModel("claude-haiku-4-5", "anthropic")
    loop = np.array([m.cost(int(a), int(b), when=WHEN) for a, b in zip(i, o)])
    assert np.allclose(m.costs(i, o, when=WHEN), loop, rtol=1e-12, atol=0)
    assert m.cost_per_request(i, o, when=WHEN) == pytest.approx(loop.mean())
    with pytest.raises(ValueError, match="same length"):
        m.costs([1, 2], [1])
    with pytest.raises(ValueError, match="whole numbers"):
        m.costs([1.5], [1])


def test_vectorised_costs_respect_tiered_prices():
    # Claude Sonnet 4.5 charges a higher rate for prompts above 200k tokens: not linear
    m = pr.ApiModel("claude-sonnet-4-5", "anthropic")
    i = np.array([1_000, 150_000, 250_000, 400_000])
    o = np.array([500, 500, 500, 500])
    loop = np.array([m.cost(int(a), int(b), when=WHEN) for a, b in zip(i, o)])
    assert np.allclose(m.costs(i, o, when=WHEN), loop, rtol=1e-12, atol=0)
    assert m.cost(250_000, 0, when=WHEN) / 250_000 > 1.5 * m.cost(1_000, 0, when=WHEN) / 1_000, "the tier applies"
    assert m._linear_rates(400_000, 500, WHEN) is None and m._linear_rates(10_000, 500, WHEN) is not None


def test_default_models_are_real_span_providers_and_are_ordered():
    models = pr.DEFAULT_API_MODELS
    assert len({m.provider for m in models}) >= 4
    per_request = [m.cost(108, 36, when=WHEN) for m in models]  # the trace's mean request
    assert all(p > 0 for p in per_request)
    assert per_request == sorted(per_request), "DEFAULT_API_MODELS is documented as cheapest first"
    assert per_request[-1] / per_request[0] > 20, "cheap to premium: more than an order of magnitude apart"
    assert any(m.model == "gpt-4o-mini" for m in models)  # the article's example


def test_price_snapshot_reports_the_installed_version():
    info = pr.price_snapshot()
    assert info["version"] == genai_prices.__version__
    assert info["source"] == "bundled snapshot"
    assert re.fullmatch(r"20\d\d-\d\d-\d\d", info["data_as_of"])
    assert info["providers"] > 10 and info["models"] > 100


def test_price_table_columns_and_values():
    t = pr.price_table(pr.DEFAULT_API_MODELS[:3], [100, 200], [10, 30], when=WHEN)
    assert list(t.index) == [m.name for m in pr.DEFAULT_API_MODELS[:3]]
    m = pr.DEFAULT_API_MODELS[2]
    assert t.loc[m.name, "usd_per_1k_requests"] == pytest.approx(1000 * (m.cost(100, 10, when=WHEN) + m.cost(200, 30, when=WHEN)) / 2)


# --------------------------------------------------------------------------------------------
# Hardware, machines at peak
# --------------------------------------------------------------------------------------------
def test_hardware_day_cost_and_electricity():
    own = pr.Hardware("box", usd_per_hour=0.5, power_kw=0.4, electricity_included=False)
    assert own.usd_per_day(0.10) == pytest.approx(0.5 * 24 + 0.4 * 24 * 0.10)
    rented = pr.Hardware("vm", usd_per_hour=0.5, power_kw=0.4, electricity_included=True)
    assert rented.usd_per_day(0.10) == pytest.approx(12.0)
    assert pr.cpu_vm(4).usd_per_hour == pytest.approx(2 * 0.08925)
    assert pr.GPU_L4_VM.usd_per_hour > pr.cpu_vm(4).usd_per_hour
    with pytest.raises(ValueError):
        pr.Hardware("x", usd_per_hour=-1)
    with pytest.raises(ValueError):
        pr.cpu_vm(0)


def test_defaults_carry_their_sources():
    src = open(pr.__file__).read()
    for url in ("aws.amazon.com/ec2/pricing", "eia.gov", "bls.gov/oes", "bls.gov/news.release/ecec", "nvidia.com"):
        assert url in src
    assert pr.FTE_USD_PER_YEAR == pytest.approx(pr.FTE_SALARY_USD_PER_YEAR / pr.WAGE_SHARE_OF_COMPENSATION)


@pytest.mark.parametrize("peak,thr,util,floor,expected", [
    (10.0, 4.0, 0.5, 1, 5), (10.0, 4.0, 1.0, 1, 3), (0.0, 1.0, 0.5, 2, 2), (3.0, 1.0, 1.0, 1, 3),
    (0.3, 0.1, 1.0, 0, 3),  # 0.3 / 0.1 is 2.9999999999999996 in floating point: still 3
    (3.0000001, 1.0, 1.0, 1, 4), (1e6, 7.0, 0.6, 2, math.ceil(1e6 / 4.2)),
])
def test_machines_needed(peak, thr, util, floor, expected):
    assert pr.machines_needed(peak, thr, util, floor) == expected


def test_machines_needed_arrays_and_refusals():
    out = pr.machines_needed(np.array([0.0, 1.0, 1.5, 2.0]), 1.0, 1.0, 1)
    assert out.tolist() == [1, 1, 2, 2]
    for kwargs in ({"throughput_rps": 0}, {"utilisation": 0}, {"utilisation": 1.2}, {"min_machines": -1}):
        args = {"peak_rps": 1.0, "throughput_rps": 1.0, "utilisation": 0.5, "min_machines": 1, **kwargs}
        with pytest.raises(ValueError):
            pr.machines_needed(**args)
    with pytest.raises(ValueError):
        pr.machines_needed(-1.0, 1.0)


def test_peak_to_mean():
    ts = pd.Series(pd.to_datetime(["2025-04-08T00:00:10Z"] * 3 + ["2025-04-08T00:02:10Z"], utc=True))
    # minutes 0, 1, 2 hold 3, 0, 1 requests: peak 3, mean 4/3
    assert pr.peak_to_mean(ts, "1min") == pytest.approx(3 / (4 / 3))
    assert pr.peak_to_mean(ts[:1], "1min") == 1.0
    with pytest.raises(ValueError):
        pr.peak_to_mean(pd.Series([], dtype="datetime64[ns, UTC]"))


# --------------------------------------------------------------------------------------------
# The what-if calculator's callback: it runs on the functions it is given
# --------------------------------------------------------------------------------------------
def _toy_day(volume, machine_usd_per_day, requests_per_machine_day, staff_usd_per_day, min_machines):
    m = max(min_machines, math.ceil(volume / requests_per_machine_day))
    total = m * machine_usd_per_day + staff_usd_per_day
    return {"machines": m, "total_usd": total, "staff_share": staff_usd_per_day / total if total else 0.0}


def test_what_if_feeds_the_sliders_to_the_functions_it_is_given():
    seen = {}

    def be(api_usd_per_request, machine_usd_per_day, requests_per_machine_day, staff_usd_per_day, min_machines):
        seen.update(api=api_usd_per_request, machine=machine_usd_per_day, per=requests_per_machine_day,
                    staff=staff_usd_per_day, floor=min_machines)
        return 50_000.0

    out = pr.what_if(monthly_volume=6_000_000, staff_usd_per_year=365_000.0, api_usd_per_1k=2.0,
                     machine_usd_per_hour=0.5, requests_per_machine_day=40_000.0, min_machines=2,
                     self_host_day=_toy_day, break_even=be)
    v = out["value"]
    assert list(out.columns) == ["value"]
    assert seen == pytest.approx(dict(api=0.002, machine=12.0, per=40_000.0, staff=1000.0, floor=2))
    assert v["requests/month"] == 6_000_000
    assert v["API, US$/month"] == pytest.approx(12_000.0)
    assert v["self-hosting machines"] == 5  # 200,000 requests/day over 40,000 per machine
    assert v["self-hosting, US$/month"] == pytest.approx(30 * (5 * 12 + 1000))
    assert v["staff share of self-hosting"] == pytest.approx(1000 / 1060, abs=5e-4)  # rounded for reading
    assert v["break-even, requests/month"] == pytest.approx(1_500_000.0)


def test_what_if_passes_an_infinite_break_even_through_and_refuses_bad_sliders():
    out = pr.what_if(0, 0.0, 0.0, 1.0, requests_per_machine_day=1000.0, min_machines=1, self_host_day=_toy_day,
                     break_even=lambda *args: math.inf)
    assert math.isinf(out.loc["break-even, requests/month", "value"])
    assert out.loc["API, US$/month", "value"] == 0.0
    for bad in (dict(monthly_volume=-1), dict(api_usd_per_1k=float("nan")), dict(machine_usd_per_hour="1")):
        args = {**dict(monthly_volume=1000, staff_usd_per_year=1.0, api_usd_per_1k=1.0, machine_usd_per_hour=1.0), **bad}
        with pytest.raises(ValueError, match=next(iter(bad))):
            pr.what_if(**args, requests_per_machine_day=1000.0, min_machines=1, self_host_day=_toy_day,
                       break_even=lambda *a: 1.0)


def test_the_answers_of_lab_1_are_not_in_the_library():
    # turning a throughput into a bill, a break-even and a staff share is the learner's graded work
    for gone in ("SelfHosting", "break_even_volume", "break_even_table", "cost_curves", "sensitivity",
                 "throughput_at_slo"):
        assert not hasattr(pr, gone), gone
