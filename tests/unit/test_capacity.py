"""Sweeps, throughput intervals, roofline frames, service curves, the live-server replay and API prices: constructed
cases with known answers, properties, and bad inputs. The model-backed calls (embedder forward,
decode step, prefill, profile) run on CPU and are checked for behaviour, never for speed."""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pytest

from tradeoffs import capacity, measure, pricing
from tradeoffs.queueing import ServiceCurve


# --------------------------------------------------------------------------------------------
# Sweeps and timing tables
# --------------------------------------------------------------------------------------------
def test_sweep_times_every_batch_size_and_passes_b():
    seen = []

    def make(b):
        seen.append(b)
        return lambda: time.sleep(0.001 * b)

    df = capacity.sweep_batch_sizes(make, [1, 4], repeats=3, warmup=1, label="sleep")
    assert seen == [1, 4]
    assert list(df.columns) == ["label", "device", "batch_size", "call", "seconds"]
    assert df.groupby("batch_size").size().tolist() == [3, 3]
    assert (df["label"] == "sleep").all() and (df["device"] == "cpu").all()
    med = df.groupby("batch_size")["seconds"].median()
    assert med[4] > med[1]  # 4 ms of sleep takes longer than 1 ms


def test_budget_caps_repeats_for_slow_calls_but_keeps_a_minimum():
    df = capacity.sweep_batch_sizes(lambda b: (lambda: time.sleep(0.02 * b)), [1, 8], repeats=20,
                                    budget_s=0.2, min_repeats=3)
    n = df.groupby("batch_size").size()
    assert n[1] < 20 and n[8] == 3


def test_throughput_ci_known_answer_and_bounds():
    samples = pd.DataFrame({"batch_size": [2] * 5 + [8] * 3,
                            "seconds": [0.1, 0.2, 0.3, 0.4, 0.5, 0.4, 0.4, 0.4]})
    t = capacity.throughput_ci(samples, n_boot=200).set_index("batch_size")
    assert t.index.tolist() == [2, 8]
    assert t.loc[8, "items_per_s_low"] == pytest.approx(20.0) == t.loc[8, "items_per_s_high"]
    assert t.loc[2, "items_per_s_low"] <= 2 / 0.3 <= t.loc[2, "items_per_s_high"]


@pytest.mark.parametrize("bad, match", [
    (pd.DataFrame({"batch": [1], "seconds": [0.1]}), "batch_size"),
    (pd.DataFrame({"batch_size": [], "seconds": []}), "empty"),
    (pd.DataFrame({"batch_size": [1, 1], "seconds": [0.1, -1.0]}), "positive"),
])
def test_throughput_ci_rejects_bad_samples(bad, match):
    with pytest.raises(ValueError, match=match):
        capacity.throughput_ci(bad)


def test_library_holds_no_graded_answer():
    """Lab 4's graded parts (percentiles, the throughput table, the best batch size, the batching
    policy, capacity from a table, the cost rules) live in the learner's notebook, not here."""
    for name in ("timing_table", "best_batch_size", "realtime_cost_per_million", "batch_cost_per_million"):
        assert not hasattr(capacity, name), name


def test_groups_cover_every_item_once_per_round():
    items = list(range(10))
    for b in (1, 3, 4, 10, 16):
        groups = capacity._groups(items, b)
        assert all(len(g) == b for g in groups)
        flat = [x for g in groups for x in g]
        assert set(flat) == set(items) and len(groups) == -(-10 // b)


@pytest.mark.parametrize("sizes", [[], [0, 1], [1.5]])
def test_sweep_rejects_bad_batch_sizes(sizes):
    with pytest.raises(ValueError, match="batch_sizes"):
        capacity.sweep_batch_sizes(lambda b: (lambda: None), sizes)


def test_sync_error_agrees_on_cpu():
    out = capacity.sync_error(lambda: sum(range(20000)), "cpu", repeats=5, warmup=1)
    assert out["device"] == "cpu"
    assert 0.2 < out["ratio"] < 5  # no asynchronous queue on a CPU: same work, same clock


# --------------------------------------------------------------------------------------------
# Roofline and quantisation
# --------------------------------------------------------------------------------------------
def test_roofline_frame_matches_measure_and_flips_regime():
    table = pd.DataFrame({"batch_size": [1, 128], "items_per_s": [10.0, 200.0]})  # ridge at b = 100
    f = capacity.roofline_frame(table, n_params=1e8, bytes_per_param=4, bandwidth=20e9, peak_flops=1e12)
    r1 = measure.decode_roofline(1e8, 4, 1, 20e9, 1e12)
    assert f.loc[0, "bound"] == pytest.approx(r1.bound_tokens_per_s)
    assert f.loc[0, "fraction"] == pytest.approx(10.0 / 50.0)
    assert f["regime"].tolist() == ["memory-bound", "compute-bound"]


def test_quantisation_halves_bytes_doubles_memory_bound():
    q = capacity.quantisation_bounds(135_000_000, 10e9, 1e15).set_index("format")
    assert q.loc["bfloat16", "memory_bound"] == pytest.approx(2 * q.loc["float32", "memory_bound"])
    assert q.loc["int4", "memory_bound"] == pytest.approx(8 * q.loc["float32", "memory_bound"])
    assert q.loc["float32", "weight_mb"] == pytest.approx(540.0)
    assert (q["compute_bound"] == q["compute_bound"].iloc[0]).all()


# --------------------------------------------------------------------------------------------
# Service curves
# --------------------------------------------------------------------------------------------
def test_static_batch_curve_is_prefill_plus_decode():
    prefill = ServiceCurve([1, 4], [0.1, 0.3])
    step = ServiceCurve([1, 4], [0.02, 0.03])
    c = capacity.static_batch_curve(prefill, step, [1, 4], new_tokens=11)
    assert c.mean(1) == pytest.approx(0.1 + 10 * 0.02)
    assert c.mean(4) == pytest.approx(0.3 + 10 * 0.03)
    with pytest.raises(ValueError, match="new_tokens"):
        capacity.static_batch_curve(prefill, step, [1], new_tokens=0)


def test_roofline_curve_memory_then_compute_bound():
    c = capacity.roofline_curve(1e8, 2, 1e11, 1e13, [1, 10_000], overhead_s=0.001)
    assert c.mean(1) == pytest.approx(2e8 / 1e11 + 0.001)
    assert c.mean(10_000) == pytest.approx(2 * 1e8 * 10_000 / 1e13 + 0.001)
    half = capacity.roofline_curve(1e8, 2, 1e11, 1e13, [1, 2], efficiency=0.5)
    assert half.mean(1) == pytest.approx(2 * 2e8 / 1e11)
    with pytest.raises(ValueError, match="efficiency"):
        capacity.roofline_curve(1e8, 2, 1e11, 1e13, [1], efficiency=0)
    assert capacity.NVIDIA_L4.bandwidth == 300e9 and "nvidia.com" in capacity.NVIDIA_L4.source


# --------------------------------------------------------------------------------------------
# Costs
# --------------------------------------------------------------------------------------------
def test_server_calibration_hand_case_and_fallback():
    alone = pd.DataFrame({"latency": [1.2, 1.2], "ttft": [0.3, 0.3], "completion_tokens": [10, 10]})
    cal = capacity.server_calibration(alone, ServiceCurve.constant(0.05), ServiceCurve.constant(0.2))
    assert cal["prefill_factor"] == pytest.approx(1.5) and cal["step_factor"] == pytest.approx(2.0)
    assert cal["prefill"].mean(1) == pytest.approx(0.3) and cal["step"].mean(4) == pytest.approx(0.1)
    one = capacity.server_calibration(alone.assign(completion_tokens=1), ServiceCurve.constant(0.05),
                                      ServiceCurve.constant(0.2))
    assert one["step_factor"] == pytest.approx(one["prefill_factor"])
    with pytest.raises(ValueError, match="ttft"):
        capacity.server_calibration(alone.drop(columns="ttft"), ServiceCurve.constant(0.05), ServiceCurve.constant(0.2))


def test_replay_live_reproduces_a_naive_server_and_uses_server_speed():
    from tradeoffs import queueing as q

    step, pre = ServiceCurve.constant(0.1), ServiceCurve.constant(0.1)
    log = pd.DataFrame({"label": "naive", "offered_rate": 1.0, "start": [0.0, 0.1, 5.0], "ok": [True, True, False],
                        "latency": [0.5, 0.9, np.inf], "completion_tokens": [5, 5, 0]})
    live = pd.DataFrame({"label": ["naive"], "offered_rate": [1.0], "server_step_s": [np.nan],
                         "server_step_batch": [np.nan], "server_step_tokens": [np.nan]})
    v = capacity.replay_live(live, log, step, pre, {"naive": q.Continuous(1)}, context_tokens=100, max_tokens=5)
    assert v.loc[0, "errors"] == 1 and v.loc[0, "requests"] == 3
    assert v.loc[0, "predicted_p50_s"] == pytest.approx(0.5)      # 0.5, 0.9 and (alone) 0.5
    assert v.loc[0, "measured_p50_s"] == pytest.approx(0.9)
    # the server reported steps twice as slow as the curves: the replay runs at that speed
    slow = live.assign(server_step_s=0.2, server_step_batch=1.0, server_step_tokens=1.0)
    v2 = capacity.replay_live(slow, log, step, pre, {"naive": q.Continuous(1)}, context_tokens=100, max_tokens=5)
    assert v2.loc[0, "speed_vs_section_2"] == pytest.approx(2.0)
    assert v2.loc[0, "predicted_p50_s"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="policy"):
        capacity.replay_live(live, log, step, pre, {}, context_tokens=100, max_tokens=5)


def test_batch_vs_realtime_only_combines_the_functions_it_is_given():
    sweeps = {"a": pd.DataFrame({"offered_rate": [1.0, 2.0], "p99_s": [0.5, 3.0], "errors": [0, 0]})}
    calls = []

    def cap(table, slo):
        calls.append(("cap", slo))
        return 1.0 if slo < 3 else 2.0

    def rt(daily, peak, rate, usd):
        calls.append(("rt", daily, peak, rate, usd))
        return 7.0

    def job(rate, usd, daily, start):
        calls.append(("job", rate, usd, daily, start))
        return 3.0

    out = capacity.batch_vs_realtime(2.0, 4.0, 0.5, daily_requests=1000, peak_rps=0.1, sweeps=sweeps,
                                     job_items_per_s=9.0, startup_s=4.0, capacity_fn=cap, realtime_cost_fn=rt,
                                     batch_cost_fn=job)
    assert calls == [("cap", 4.0), ("rt", 2000, 0.2, 2.0, 0.5), ("job", 9.0, 0.5, 2000, 4.0)]
    assert out["usd_per_million"].tolist() == [7.0, 3.0]
    assert out["usd_per_day"].tolist() == pytest.approx([0.014, 0.006])
    with pytest.raises(ValueError, match="positive"):
        capacity.batch_vs_realtime(0.0, 4.0, 0.5, daily_requests=1000, peak_rps=0.1, sweeps=sweeps,
                                   job_items_per_s=9.0, startup_s=4.0, capacity_fn=cap, realtime_cost_fn=rt,
                                   batch_cost_fn=job)


def test_api_costs_match_pricing_and_batch_is_half_price():
    prompt = [100, 250, 100, 80]
    completion = [16, 40, 16, 300]
    models = [pricing.ApiModel("gpt-4o-mini", "openai"), pricing.ApiModel("claude-haiku-4-5", "anthropic")]
    t = pricing.api_costs_per_million(models, prompt, completion)
    for m in models:
        want = m.cost_per_request(prompt, completion) * 1e6
        assert t.loc[m.name, "sync_usd_per_million"] == pytest.approx(want, rel=1e-9)
        assert t.loc[m.name, "batch_discount"] == pytest.approx(0.5)  # OpenAI Batch API, Anthropic Message Batches


def test_api_costs_without_a_batch_price_are_nan():
    t = pricing.api_costs_per_million([("llama-3.1-8b-instant", "groq")], [100], [10])
    assert math.isnan(t["batch_usd_per_million"].iloc[0]) and t["sync_usd_per_million"].iloc[0] > 0
    assert not pricing.batch_price_available("llama-3.1-8b-instant", "groq")


def test_api_costs_bad_inputs():
    with pytest.raises(ValueError, match="same length"):
        pricing.api_costs_per_million([("gpt-4o-mini", "openai")], [1, 2], [1])
    with pytest.raises(LookupError, match="genai_prices list"):
        pricing.api_costs_per_million([("no-such-model-xyz", "openai")], [1], [1])


# --------------------------------------------------------------------------------------------
# The real models (CPU): behaviour, not speed
# --------------------------------------------------------------------------------------------
@pytest.mark.models
def test_embedder_calls_match_encode(embedder):
    texts = ["my parcel is late", "refund please, I was charged twice for the March invoice"]
    call = capacity.embedder_calls(embedder, texts)(3)
    pooled = call().numpy()
    ref = embedder.encode(texts + texts[:1])
    normed = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
    assert pooled.shape == (3, embedder.dim)
    assert np.allclose(normed, ref, atol=1e-5)
    with pytest.raises(ValueError, match="texts"):
        capacity.embedder_calls(embedder, [])


@pytest.mark.models
def test_decode_bench_step_keeps_context_and_matches_a_real_step(chat_model):
    import torch

    msgs = [{"role": "user", "content": "Where is my parcel?"}]
    bench = capacity.DecodeBench(chat_model, msgs)
    step = bench.step_call(3)
    first = step()
    second = step()
    assert first.shape[0] == 3
    assert torch.allclose(first, second)  # the cache was cropped back: same input, same context
    # every row of the copied batch equals the greedy next step of the prompt alone
    enc = chat_model.encode_chat([msgs])
    with torch.inference_mode():
        ids = torch.cat([enc["input_ids"], bench._next], dim=1)
        ref = chat_model.model(input_ids=ids).logits[:, -1]
    assert torch.allclose(first[:, -1], ref.expand(3, -1), atol=1e-3)
    prefill = bench.prefill_call([msgs, [{"role": "user", "content": "Refund my order 42"}]])(2)
    assert prefill().shape[0] == 2
    with pytest.raises(ValueError):
        bench.step_call(0)


@pytest.mark.models
def test_profile_call_accounts_for_the_wall_time(chat_model):
    bench = capacity.DecodeBench(chat_model, [{"role": "user", "content": "Hi"}])
    prof = capacity.profile_call(bench.step_call(1), repeats=2).set_index("category")
    parts = prof.drop(index="wall")
    assert parts["seconds"].sum() == pytest.approx(prof.loc["wall", "seconds"], rel=0.02)
    assert "matrix multiply (weights)" in parts.index
    assert parts.loc["matrix multiply (weights)", "share"] > 0.1  # a transformer is mostly matmuls
