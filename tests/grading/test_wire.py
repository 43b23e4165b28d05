"""tradeoffs.grading.wire: only plain values cross from a student's kernel to the test runner."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest

from tradeoffs.grading import wire


def _roundtrip(value):
    return wire.decode(json.loads(json.dumps(wire.encode(value, ref=id))))


@pytest.mark.parametrize("value", [
    None, True, 0, -7, 2 ** 80, 1.5, float("inf"), 3 + 4j, "text", b"\x00\xff", [1, "a"], (1, (2, 3)),
    {"a": [1.0], 2: None}, {1, 2}, frozenset({"x"}), range(2, 9, 3), slice(1, None),
])
def test_builtin_values_come_back_equal_and_of_the_exact_type(value):
    out = _roundtrip(value)
    assert type(out) is type(value) and out == value


def test_nan_survives():
    assert np.isnan(_roundtrip(float("nan")))


@pytest.mark.parametrize("value", [np.arange(6).reshape(2, 3), np.array([0.5, np.nan]), np.array(["a", "bb"]),
                                   np.array([True, False]), np.array([1, "x", None], dtype=object),
                                   np.array(["2024-01-01"], dtype="datetime64[D]")])
def test_arrays_keep_dtype_shape_and_values(value):
    out = _roundtrip(value)
    assert type(out) is np.ndarray and out.dtype == value.dtype and out.shape == value.shape
    assert np.array_equal(out, value, equal_nan=value.dtype.kind == "f")


def test_numpy_scalars_keep_their_type():
    for value in (np.int64(3), np.float32(0.25), np.bool_(True)):
        out = _roundtrip(value)
        assert type(out) is type(value) and out == value


def test_pandas_tables_come_back_equal():
    frame = pd.DataFrame({"model": ["a", "b"], "acc": [0.9, 0.8], "n": [1, 2]}, index=pd.Index([4, 5], name="k"))
    assert _roundtrip(frame).equals(frame)
    grouped = frame.groupby(["model", "n"]).sum()
    assert _roundtrip(grouped).equals(grouped) and _roundtrip(grouped).index.names == ["model", "n"]
    series = pd.Series([1.0, 2.0], index=["x", "y"], name="s")
    assert _roundtrip(series).equals(series) and _roundtrip(series).name == "s"


def test_subclasses_and_unknown_objects_become_handles_that_refuse_comparison():
    class AlwaysEqual(float):
        def __eq__(self, other):
            return True

        __hash__ = float.__hash__

    for value in (AlwaysEqual(1.0), object(), lambda: 1):
        out = _roundtrip(value)
        assert isinstance(out, wire.Handle)
        for compare in (lambda h: h == 1.0, lambda h: h != 1.0, lambda h: h < 1, lambda h: bool(h),
                        lambda h: float(h), lambda h: hash(h), lambda h: np.asarray(h) == 1):
            with pytest.raises(TypeError, match="not a plain value"):
                compare(out)


def test_a_subclass_inside_a_container_is_still_a_handle():
    class Sneaky(list):
        pass

    out = _roundtrip({"rows": Sneaky([1])})
    assert isinstance(out["rows"], wire.Handle)


def test_the_test_side_never_unpickles():
    evil = ["p", wire.b64text(pickle.dumps(print))]
    with pytest.raises(wire.WireError, match="does not accept pickled"):
        wire.decode(evil)


@pytest.mark.parametrize("bad", [
    {"not": "a list"}, [], [7], ["zz", 1], ["nd", "O", [1], ""], ["nd", "<f8", [3], wire.b64text(b"\x00" * 8)],
    ["nd", [("a", "<f8")], [1], ""], ["l", "not a list"], ["ns", "<f8", wire.b64text(b"\x00")],
])
def test_malformed_data_is_refused_with_a_wire_error(bad):
    with pytest.raises((wire.WireError, ValueError, TypeError)):
        wire.decode(bad)


def test_limits_on_size_and_depth():
    deep = []
    for _ in range(wire.MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(wire.WireError, match="levels deep"):
        wire.encode(deep, ref=id)
    with pytest.raises(wire.WireError, match="elements"):
        wire.decode(["nd", "<f8", [wire.MAX_ITEMS + 1], ""])
