"""Plain values across the wall between a student's kernel and the grader's test runner.

Test cells run in :mod:`tradeoffs.grading.checker`, a fresh interpreter the submission never
touches; the student's functions and variables stay in the student's kernel
(:mod:`tradeoffs.grading.answers`). What crosses between them is JSON built by :func:`encode` and
rebuilt by :func:`decode`, which makes only *exact* builtin, NumPy and pandas types: a float
subclass that claims to equal everything, an object with ``__array_function__`` or an ``__eq__``
that always says yes arrives as a handle (:class:`Handle`) that refuses to be compared, never as a
value. The decoder never unpickles what the kernel sends.

Examples
--------
>>> import numpy as np
>>> data = encode({"p99": 1.5, "rows": np.arange(3)}, ref=id)
>>> out = decode(data)
>>> type(out["p99"]) is float, out["rows"].tolist()
(True, [0, 1, 2])
"""

from __future__ import annotations

import base64
import math
from typing import Any, Callable

MAX_ITEMS = 1_000_000  # elements of one container or array
MAX_DEPTH = 40
_NUMPY_KINDS = "biufcmMUS?"


class WireError(ValueError):
    """A value could not be encoded or decoded (too deep, too large, or not well-formed)."""


class Handle:
    """A reference to an object that lives in the other process and is not a plain value.

    Comparisons, truth tests and hashing are refused: a test can only compare plain values, so an
    object built to equal anything fails instead of passing.
    """

    __slots__ = ("hid", "type_name")

    def __init__(self, hid: int, type_name: str):
        self.hid, self.type_name = hid, type_name

    def _refuse(self, *_args):
        raise TypeError(f"this is a {self.type_name} object from the notebook, not a plain value "
                        f"(a number, string, list, dict, tuple, NumPy array or pandas table): tests "
                        f"compare plain values only")

    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __bool__ = __hash__ = _refuse
    __float__ = __int__ = __index__ = __array__ = _refuse

    def __repr__(self) -> str:
        return f"<{self.type_name} object from the notebook>"


def b64text(data: bytes) -> str:
    """Bytes as base64 text (how bytes, arrays and pickled callables travel)."""
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    if not isinstance(text, str):
        raise WireError("bytes must be base64 text")
    return base64.b64decode(text.encode("ascii"), validate=True)


def encode(obj: Any, ref: Callable[[Any], Any], depth: int = 0) -> Any:
    """JSON-ready form of ``obj``; what is not a plain value becomes ``["h", ref(obj), type name]``.

    ``ref`` decides what a reference is: the kernel registers the object and returns its id. When
    ``ref`` returns a list, that list is the encoding (the checker pickles its own callables, see
    :mod:`tradeoffs.grading.checker`).
    """
    if depth > MAX_DEPTH:
        raise WireError(f"nested more than {MAX_DEPTH} levels deep")
    t = type(obj)
    if obj is None or t is bool or t is str:
        return obj
    if t is int:
        return ["i", str(obj)]
    if t is float:
        return ["f", repr(obj)]
    if t is complex:
        return ["c", repr(obj.real), repr(obj.imag)]
    if t is bytes:
        return ["b", b64text(obj)]
    if t in (list, tuple, set, frozenset):
        if len(obj) > MAX_ITEMS:
            raise WireError(f"a {t.__name__} of more than {MAX_ITEMS:,} items")
        tag = {list: "l", tuple: "t", set: "s", frozenset: "z"}[t]
        return [tag, [encode(v, ref, depth + 1) for v in obj]]
    if t is dict:
        if len(obj) > MAX_ITEMS:
            raise WireError(f"a dict of more than {MAX_ITEMS:,} items")
        return ["d", [[encode(k, ref, depth + 1), encode(v, ref, depth + 1)] for k, v in obj.items()]]
    if t is range:
        return ["r", obj.start, obj.stop, obj.step]
    if t is slice:
        return ["sl", [encode(v, ref, depth + 1) for v in (obj.start, obj.stop, obj.step)]]
    module = getattr(t, "__module__", "") or ""
    if module.startswith("numpy"):
        out = _encode_numpy(obj, ref, depth)
        if out is not None:
            return out
    if module.startswith("pandas"):
        out = _encode_pandas(obj, ref, depth)
        if out is not None:
            return out
    if t.__name__ == "module" and t.__module__ == "builtins":
        return ["m", obj.__name__]
    out = ref(obj)
    if type(out) is list:  # the caller encoded it itself (the checker pickles its own callables)
        return out
    return ["h", out, f"{module}.{t.__qualname__}" if module not in ("builtins", "") else t.__qualname__]


def _encode_numpy(obj: Any, ref, depth: int) -> Any:
    import numpy as np

    t = type(obj)
    if t is np.ndarray:
        if obj.size > MAX_ITEMS:
            raise WireError(f"an array of more than {MAX_ITEMS:,} elements")
        if obj.dtype.kind in _NUMPY_KINDS and obj.dtype.fields is None:
            return ["nd", obj.dtype.str, list(obj.shape), b64text(np.ascontiguousarray(obj).tobytes())]
        if obj.dtype.kind == "O":
            return ["no", list(obj.shape), [encode(v, ref, depth + 1) for v in obj.ravel().tolist()]]
        return None
    if isinstance(obj, np.generic) and t.__module__ == "numpy" and obj.dtype.kind in _NUMPY_KINDS:
        return ["ns", obj.dtype.str, b64text(np.asarray(obj).tobytes())]
    return None


def _encode_pandas(obj: Any, ref, depth: int) -> Any:
    import pandas as pd

    t = type(obj)
    if t is pd.DataFrame:
        columns = [[encode(c, ref, depth + 1), _encode_column(obj.iloc[:, i], ref, depth)]
                   for i, c in enumerate(obj.columns)]
        return ["df", _encode_index(obj.index, ref, depth), columns, _encode_index(obj.columns, ref, depth)]
    if t is pd.Series:
        return ["sr", encode(obj.name, ref, depth + 1), _encode_index(obj.index, ref, depth),
                _encode_column(obj, ref, depth)]
    if isinstance(obj, pd.Index) and t.__module__.startswith("pandas"):
        return ["ix", _encode_index(obj, ref, depth)]
    if t is pd.Timestamp:
        return ["ts", obj.isoformat()]
    return None


def _encode_column(values_of, ref, depth: int) -> Any:
    """[dtype name, values] of a Series or an Index."""
    import numpy as np

    values = values_of.to_numpy()
    if values.dtype.kind not in _NUMPY_KINDS:
        values = np.asarray(values, dtype=object)
    return [str(values_of.dtype), encode(values, ref, depth + 1)]


def _encode_index(index, ref, depth: int) -> Any:
    import pandas as pd

    if isinstance(index, pd.MultiIndex):
        return ["multi", [encode(n, ref, depth + 1) for n in index.names],
                [_encode_column(index.get_level_values(i), ref, depth) for i in range(index.nlevels)]]
    return ["single", encode(index.name, ref, depth + 1), _encode_column(index, ref, depth)]


# ------------------------------------------------------------------------------------------
def decode(data: Any, handle: Callable[[int, str], Any] = Handle, load: Callable[[bytes], Any] | None = None,
           depth: int = 0) -> Any:
    """Rebuild a value from :func:`encode`'s form using exact types only.

    ``handle(id, type_name)`` makes what a handle becomes (default: a :class:`Handle`); ``load``
    unpickles a callable the checker sent and is given only on the kernel's side (``None``: refused).
    """
    if depth > MAX_DEPTH:
        raise WireError(f"nested more than {MAX_DEPTH} levels deep")
    if data is None or type(data) is bool or type(data) is str:
        return data
    if type(data) is not list or not data or type(data[0]) is not str:
        raise WireError(f"not a wire value: {str(data)[:80]!r}")
    tag, rest = data[0], data[1:]
    sub = (lambda v: decode(v, handle, load, depth + 1))
    if tag == "i":
        return int(rest[0])
    if tag == "f":
        return float(rest[0])
    if tag == "c":
        return complex(float(rest[0]), float(rest[1]))
    if tag == "b":
        return _unb64(rest[0])
    if tag in ("l", "t", "s", "z"):
        items = _items(rest[0])
        kind = {"l": list, "t": tuple, "s": set, "z": frozenset}[tag]
        return kind(sub(v) for v in items)
    if tag == "d":
        return {sub(k): sub(v) for k, v in _items(rest[0])}
    if tag == "r":
        return range(*(int(v) for v in rest[:3]))
    if tag == "sl":
        return slice(*(sub(v) for v in _items(rest[0])[:3]))
    if tag == "m":
        import importlib

        return importlib.import_module(str(rest[0]))
    if tag == "h":
        return handle(int(rest[0]), str(rest[1])[:200])
    if tag == "p":
        if load is None:
            raise WireError("the test runner does not accept pickled objects")
        return load(_unb64(rest[0]))
    if tag in ("nd", "no", "ns"):
        return _decode_numpy(tag, rest, sub)
    if tag in ("df", "sr", "ix", "ts"):
        return _decode_pandas(tag, rest, sub)
    raise WireError(f"unknown wire tag {tag!r}")


def _items(value: Any) -> list:
    if type(value) is not list:
        raise WireError("a container must be a JSON list")
    if len(value) > MAX_ITEMS:
        raise WireError(f"more than {MAX_ITEMS:,} items")
    return value


def _dtype(text: Any):
    import numpy as np

    dt = np.dtype(str(text))
    if dt.kind not in _NUMPY_KINDS or dt.fields is not None or dt.hasobject:
        raise WireError(f"dtype {text!r} is not a plain NumPy dtype")
    return dt


def _decode_numpy(tag: str, rest: list, sub) -> Any:
    import numpy as np

    if tag == "nd":
        dt, shape = _dtype(rest[0]), tuple(int(n) for n in _items(rest[1]))
        if math.prod(shape) > MAX_ITEMS:
            raise WireError(f"an array of more than {MAX_ITEMS:,} elements")
        raw = _unb64(rest[2])
        if len(raw) != math.prod(shape) * dt.itemsize:
            raise WireError("array bytes do not match its shape")
        return np.frombuffer(raw, dtype=dt).reshape(shape).copy()
    if tag == "no":
        shape = tuple(int(n) for n in _items(rest[0]))
        values = [sub(v) for v in _items(rest[1])]
        if len(values) != math.prod(shape):
            raise WireError("object array values do not match its shape")
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out.reshape(shape)
    dt = _dtype(rest[0])
    raw = _unb64(rest[1])
    if len(raw) != dt.itemsize:
        raise WireError("scalar bytes do not match its dtype")
    return np.frombuffer(raw, dtype=dt)[0]


def _decode_values(data: Any, sub):
    import numpy as np
    import pandas as pd

    dtype, values = str(data[0]), sub(data[1])
    if type(values) is not np.ndarray:
        raise WireError("column values must be an array")
    if dtype in ("category", "string", "boolean", "Int64", "Float64") or dtype.startswith("datetime64[ns,"):
        with_type = pd.array(values, dtype=dtype) if dtype != "category" else pd.Categorical(values)
        return with_type
    return values


def _decode_index(data: Any, sub):
    import pandas as pd

    data = _items(data)
    if data and data[0] == "multi":
        names, levels = [sub(n) for n in _items(data[1])], [_decode_values(v, sub) for v in _items(data[2])]
        return pd.MultiIndex.from_arrays(levels, names=names)
    if not data or data[0] != "single":
        raise WireError("an index must be 'single' or 'multi'")
    return pd.Index(_decode_values(data[2], sub), name=sub(data[1]), tupleize_cols=False)


def _decode_pandas(tag: str, rest: list, sub) -> Any:
    import pandas as pd

    if tag == "ts":
        return pd.Timestamp(str(rest[0]))
    if tag == "ix":
        return _decode_index(rest[0], sub)
    if tag == "sr":
        return pd.Series(_decode_values(rest[2], sub), index=_decode_index(rest[1], sub), name=sub(rest[0]),
                         copy=False)
    index = _decode_index(rest[0], sub)
    columns = _items(rest[1])
    frame = pd.DataFrame({i: _decode_values(col, sub) for i, (_, col) in enumerate(columns)}, index=index)
    frame.columns = _decode_index(rest[2], sub) if len(rest) > 2 else pd.Index([sub(c) for c, _ in columns])
    return frame
