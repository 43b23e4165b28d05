"""Unit tests for tradeoffs.pricing: API prices against genai-prices, the self-hosting cost model,
machines at peak, and the break-even volume (exact on constructed cases, properties on random ones)."""

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
# Hardware, machines, throughput at an SLO
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


def test_throughput_at_slo():
    cap = pd.DataFrame({"throughput_rps": [1.0, 2.0, 2.6, 2.4], "p95_s": [0.4, 0.8, 1.6, 1.2]})
    assert pr.throughput_at_slo(cap, 1.0) == 2.0
    assert pr.throughput_at_slo(cap, 1.3) == 2.4  # the best *meeting the SLO*, not the overall best
    assert pr.throughput_at_slo(cap, 10) == 2.6
    with pytest.raises(ValueError, match="one machine cannot serve"):
        pr.throughput_at_slo(cap, 0.1)
    with pytest.raises(ValueError, match="column"):
        pr.throughput_at_slo(cap.rename(columns={"p95_s": "p99"}), 1.0)


def test_peak_to_mean():
    ts = pd.Series(pd.to_datetime(["2025-04-08T00:00:10Z"] * 3 + ["2025-04-08T00:02:10Z"], utc=True))
    # minutes 0, 1, 2 hold 3, 0, 1 requests: peak 3, mean 4/3
    assert pr.peak_to_mean(ts, "1min") == pytest.approx(3 / (4 / 3))
    assert pr.peak_to_mean(ts[:1], "1min") == 1.0
    with pytest.raises(ValueError):
        pr.peak_to_mean(pd.Series([], dtype="datetime64[ns, UTC]"))


# --------------------------------------------------------------------------------------------
# Self-hosting costs
# --------------------------------------------------------------------------------------------
def _host(**kw):
    base = dict(hardware=pr.Hardware("vm", usd_per_hour=1.0), throughput_rps=2.0, utilisation=0.5,
                peak_to_mean=2.0, min_machines=2, staff_fte=1.0, fte_usd_per_year=365_000.0)
    base.update(kw)
    return pr.SelfHosting(**base)


def test_selfhost_constructed_case():
    h = _host()
    # one machine takes 2 req/s x 0.5 x 86,400 s / 2 = 43,200 requests per day; staff $1,000/day
    assert h.requests_per_machine_day == pytest.approx(43_200)
    assert h.staff_usd_per_day == pytest.approx(1000)
    assert h.machines([0, 86_400, 86_401, 432_000]).tolist() == [2, 2, 3, 10]
    assert h.cost_per_day(432_000) == pytest.approx(10 * 24 + 1000)
    assert h.staff_share(432_000) == pytest.approx(1000 / 1240)
    assert h.cost_per_1k(432_000) == pytest.approx(1000 * 1240 / 432_000)
    assert np.isinf(h.cost_per_1k(0))


def test_breakdown_adds_up():
    h = _host(hardware=pr.Hardware("own", usd_per_hour=0.3, power_kw=0.5, electricity_included=False))
    b = h.breakdown(np.geomspace(1e3, 1e7, 13))
    assert np.allclose(b["hardware_usd"] + b["electricity_usd"] + b["staff_usd"], b["total_usd"])
    assert np.allclose(b["electricity_usd"], b["machines"] * 0.5 * 24 * h.electricity_usd_per_kwh)
    assert ((b["staff_share"] > 0) & (b["staff_share"] <= 1)).all()


def test_costs_monotone_in_volume():
    rng = np.random.default_rng(1)
    v = np.sort(rng.uniform(0, 5e7, 500))
    for _ in range(20):
        h = _host(throughput_rps=rng.uniform(0.5, 50), utilisation=rng.uniform(0.2, 1), staff_fte=rng.uniform(0, 3))
        assert np.all(np.diff(h.cost_per_day(v)) >= 0)
        assert np.all(np.diff(h.machines(v)) >= 0)
        assert np.all(np.diff(h.staff_share(v)) <= 1e-15)


@pytest.mark.parametrize("kwargs", [{"throughput_rps": 0}, {"utilisation": 0}, {"utilisation": 2}, {"peak_to_mean": 0.5},
                                    {"staff_fte": -1}, {"min_machines": 0}, {"min_machines": 1.5},
                                    {"throughput_rps": float("nan")}])
def test_selfhost_refuses_bad_parameters(kwargs):
    with pytest.raises(ValueError):
        _host(**kwargs)
    with pytest.raises(TypeError):
        pr.SelfHosting(hardware="a GPU", throughput_rps=1.0)


def test_volume_must_be_valid():
    with pytest.raises(ValueError):
        _host().cost_per_day(-5)
    with pytest.raises(ValueError):
        _host().machines(float("inf"))


# --------------------------------------------------------------------------------------------
# Break-even
# --------------------------------------------------------------------------------------------
def test_break_even_constructed_cases():
    h = _host()  # 43,200 req/machine-day, machine $24/day, staff $1,000/day, min 2 machines
    # API at $0.03/request: 2 machines ($1,048) are reached at 34,933 requests (< 86,400): cross there
    assert pr.break_even_volume(0.03, h) == pytest.approx(1048 / 0.03)
    # API at $0.001/request: a * per-machine-day = $43.2 > $24, gap closes at m >= 1000 / 19.2 = 52.08 -> m = 53
    expected = (53 * 24 + 1000) / 0.001
    assert pr.break_even_volume(0.001, h) == pytest.approx(expected)
    assert 52 * 43_200 < expected <= 53 * 43_200
    # API cheaper per request than a machine's marginal cost: never
    assert pr.break_even_volume(24 / 43_200 * 0.999, h) == math.inf
    assert pr.break_even_volume(0.0, h) == math.inf
    # a cap on the volume searched
    assert pr.break_even_volume(0.001, h, max_volume=1e6) == math.inf


def test_break_even_refuses_bad_input():
    with pytest.raises(ValueError):
        pr.break_even_volume(-1e-5, _host())
    with pytest.raises(ValueError):
        pr.break_even_volume(float("nan"), _host())
    with pytest.raises(TypeError):
        pr.break_even_volume(1e-4, "host")


def _random_host(rng):
    return pr.SelfHosting(
        hardware=pr.Hardware("vm", usd_per_hour=float(rng.uniform(0.05, 4.0))),
        throughput_rps=float(rng.uniform(0.2, 60)), utilisation=float(rng.uniform(0.2, 1.0)),
        peak_to_mean=float(rng.uniform(1, 8)), min_machines=int(rng.integers(1, 4)),
        staff_fte=float(rng.uniform(0, 2)), fte_usd_per_year=float(rng.uniform(8e4, 3e5)))


def test_break_even_is_the_first_volume_where_self_hosting_wins():
    rng = np.random.default_rng(42)
    checked = 0
    for _ in range(300):
        h = _random_host(rng)
        api = float(10 ** rng.uniform(-6, -2))
        v = pr.break_even_volume(api, h)
        if not math.isfinite(v):
            # then no volume up to the cap is cheaper to self-host: check a wide grid
            grid = np.geomspace(1, 1e11, 2000)
            assert np.all(h.cost_per_day(grid) > api * grid - 1e-9)
            continue
        checked += 1
        assert h.cost_per_day(v) <= api * v * (1 + 1e-9) + 1e-9, "at the break-even, self-hosting is not dearer"
        below = v * (1 - 1e-7)
        if below > 0:
            assert h.cost_per_day(below) > api * below, "just below it, the API is still cheaper"
        grid = np.linspace(0, v, 4001)[:-1]  # brute force: no earlier volume where self-hosting wins
        assert np.all(h.cost_per_day(grid) > api * grid)
    assert checked > 100


def test_break_even_monotone_in_staff_cost_and_other_parameters():
    rng = np.random.default_rng(7)
    for _ in range(100):
        h = _random_host(rng)
        api = float(10 ** rng.uniform(-5, -2.5))
        staff = [pr.break_even_volume(api, h.with_(staff_fte=s)) for s in np.linspace(0, 3, 9)]
        salary = [pr.break_even_volume(api, h.with_(fte_usd_per_year=s)) for s in np.linspace(5e4, 4e5, 9)]
        faster = [pr.break_even_volume(api, h.with_(throughput_rps=h.throughput_rps * k)) for k in (0.5, 1, 2, 4)]
        dearer_api = [pr.break_even_volume(api * k, h) for k in (0.5, 1, 2, 4)]
        assert all(a <= b for a, b in zip(staff, staff[1:])), "more staff never lowers the break-even"
        assert all(a <= b for a, b in zip(salary, salary[1:]))
        assert all(a >= b for a, b in zip(faster, faster[1:])), "faster machines never raise it"
        assert all(a >= b for a, b in zip(dearer_api, dearer_api[1:])), "a dearer API never raises it"


def test_break_even_table_and_cost_curves():
    h = _host()
    table = pr.break_even_table({"dear": 0.03, "cheap": 1e-6}, h)
    assert table.loc["dear", "break_even_requests_per_day"] == pytest.approx(1048 / 0.03)
    assert table.loc["dear", "machines_there"] == 2
    assert table.loc["dear", "staff_share_there"] == pytest.approx(1000 / 1048)
    assert np.isinf(table.loc["cheap", "break_even_requests_per_day"])
    curves = pr.cost_curves([1e3, 1e5], {"dear": 0.03}, {"host": h})
    api = curves[curves.option == "dear"].set_index("volume")["usd_per_day"]
    assert api.loc[1e5] == pytest.approx(3000)
    assert set(curves["kind"]) == {"api", "self-hosted"}


def test_sensitivity_grid():
    h = _host()
    s = pr.sensitivity(0.001, h, staff_fte=[0.5, 1.0, 2.0], utilisation=[0.25, 0.5])
    assert len(s) == 6 and set(s.columns) == {"staff_fte", "utilisation", "break_even_requests_per_day"}
    for _, part in s.groupby("utilisation"):
        assert part.sort_values("staff_fte")["break_even_requests_per_day"].is_monotonic_increasing
    with pytest.raises(ValueError, match="not a numeric SelfHosting parameter"):
        pr.sensitivity(0.001, h, gpus=[1, 2])
    with pytest.raises(ValueError):
        pr.sensitivity(0.001, h)
