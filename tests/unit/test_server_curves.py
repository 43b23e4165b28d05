"""tradeoffs.server_curves: a server's decode-step and prefill curves from closed loops at several
concurrencies (the pure part; tests/serve/test_server_curves.py measures the kit's real server)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tradeoffs.queueing import ServiceCurve
from tradeoffs.server_curves import ServerCurves, curves_from_closed_loops, measure_server_curves


def _frame():
    # 1 client: steps 0.8/8 = 0.1 and 1.0/8 = 0.125 -> median 0.1125; ttft 0.2 and 0.3 -> 0.25
    # 4 clients: steps 1.6/8 = 0.2, 2.0/8 = 0.25, 2.4/8 = 0.3; a one-token request is left out
    return pd.DataFrame({
        "clients": [1, 1, 4, 4, 4, 4],
        "latency": [1.0, 1.3, 2.0, 2.4, 2.8, 0.5],
        "ttft": [0.2, 0.3, 0.4, 0.4, 0.4, 0.5],
        "completion_tokens": [9, 9, 9, 9, 9, 1],
        "ok": True,
    })


def test_exact_curves_on_a_tiny_frame():
    step, prefill = curves_from_closed_loops(_frame())
    assert isinstance(step, ServiceCurve) and isinstance(prefill, ServiceCurve)
    assert step.batch_sizes.tolist() == [1.0, 4.0] and prefill.batch_sizes.tolist() == [1.0, 4.0]
    assert step.seconds.tolist() == pytest.approx([0.1125, 0.25])
    assert prefill.seconds.tolist() == pytest.approx([0.25, 1.0])      # b x the 1-client median TTFT
    assert prefill.mean(8) == pytest.approx(2.0)                          # the model extends linearly
    assert step.mean(2) == pytest.approx(0.1125 + (0.25 - 0.1125) / 3)


def test_rows_in_any_order_and_three_concurrencies():
    f = pd.concat([_frame(), pd.DataFrame({"clients": [2, 2], "latency": [1.2, 1.4], "ttft": [0.2, 0.2],
                                           "completion_tokens": [5, 5]})], ignore_index=True)
    step, prefill = curves_from_closed_loops(f.iloc[::-1])
    assert step.batch_sizes.tolist() == [1.0, 2.0, 4.0]
    assert step.seconds.tolist() == pytest.approx([0.1125, 0.275, 0.25])
    assert prefill.seconds.tolist() == pytest.approx([0.25, 0.5, 1.0])


def test_the_frame_is_not_modified():
    f = _frame()
    before = f.copy()
    curves_from_closed_loops(f)
    pd.testing.assert_frame_equal(f, before)


@pytest.mark.parametrize("column", ["clients", "latency", "ttft", "completion_tokens"])
def test_a_missing_column_is_named(column):
    with pytest.raises(ValueError, match=column):
        curves_from_closed_loops(_frame().drop(columns=column))


def test_no_one_client_run():
    f = _frame()
    f["clients"] = f["clients"].replace(1, 2)
    with pytest.raises(ValueError, match="1-client"):
        curves_from_closed_loops(f)


def test_one_concurrency_only():
    with pytest.raises(ValueError, match="at least two"):
        curves_from_closed_loops(_frame()[lambda d: d["clients"] == 1])


@pytest.mark.parametrize("column, value", [("latency", 0.0), ("latency", -1.0), ("ttft", 0.0), ("ttft", np.nan),
                                           ("latency", np.inf), ("completion_tokens", 0), ("clients", 0)])
def test_non_positive_or_missing_values(column, value):
    f = _frame().astype({column: float})
    f.loc[2, column] = value
    with pytest.raises(ValueError, match=column):
        curves_from_closed_loops(f)


def test_ttft_after_latency():
    f = _frame()
    f.loc[0, "ttft"] = 2.0
    with pytest.raises(ValueError, match="ttft exceeds"):
        curves_from_closed_loops(f)


def test_fractional_clients_or_tokens():
    f = _frame().astype({"clients": float, "completion_tokens": float})
    f.loc[0, "clients"] = 1.5
    with pytest.raises(ValueError, match="whole"):
        curves_from_closed_loops(f)
    f = _frame().astype({"completion_tokens": float})
    f.loc[0, "completion_tokens"] = 8.5
    with pytest.raises(ValueError, match="whole"):
        curves_from_closed_loops(f)


def test_a_run_with_only_one_token_answers():
    f = _frame()
    f.loc[f["clients"] == 4, "completion_tokens"] = 1
    with pytest.raises(ValueError, match="4-client run has no request longer than one token"):
        curves_from_closed_loops(f)


def test_empty_frame_and_not_a_frame():
    with pytest.raises(ValueError, match="no requests"):
        curves_from_closed_loops(_frame().iloc[:0])
    with pytest.raises(ValueError, match="DataFrame"):
        curves_from_closed_loops(_frame().to_dict("list"))


def test_zero_decode_time():
    f = _frame()
    f["latency"] = f["ttft"]
    with pytest.raises(ValueError, match="0 s"):
        curves_from_closed_loops(f)


@pytest.mark.parametrize("kwargs, match", [({"concurrencies": (2, 4)}, "include 1"),
                                            ({"concurrencies": (1,)}, "include 1"),
                                            ({"concurrencies": (0, 1, 2)}, "include 1"),
                                            ({"per_client": 0}, "per_client"),
                                            ({"max_tokens": 1}, "max_tokens")])
def test_measure_rejects_bad_settings_before_sending(kwargs, match):
    with pytest.raises(ValueError, match=match):
        measure_server_curves("http://127.0.0.1:9/v1", "m", ["hi"], **kwargs)


def test_measure_rejects_no_prompts():
    with pytest.raises(ValueError, match="prompts is empty"):
        measure_server_curves("http://127.0.0.1:9/v1", "m", [])


def test_table_lists_the_points():
    sc = ServerCurves(pd.DataFrame(), ServiceCurve([1, 4], [0.1, 0.2]), ServiceCurve([1, 4], [0.3, 1.2]))
    t = sc.table()
    assert t.index.tolist() == [1, 4] and t.index.name == "clients"
    assert t["step_s"].tolist() == [0.1, 0.2] and t["prefill_s"].tolist() == [0.3, 1.2]
