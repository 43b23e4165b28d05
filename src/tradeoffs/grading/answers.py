"""The student's side of grading: answer requests about the notebook's objects, inside its kernel.

The grader never runs a test cell in the student's kernel. Its test runner
(:mod:`tradeoffs.grading.checker`) asks this module, through the kernel, for the values of names
and for the results of calling the student's functions; everything returned is encoded by
:mod:`tradeoffs.grading.wire`. Nothing here is trusted: a submission may replace this module
entirely, and all it gains is the power to answer with plain values -- which is what an honest
answer does anyway. The test code (and so the expected values) never enters this process; only the
arguments of the calls do.

One request, one reply: the grader sends an empty silent execution whose user expression is
``answer(request)``.
"""

from __future__ import annotations

import json
import pickle
from typing import Any

from .wire import MAX_ITEMS, WireError, decode, encode

_objects: dict[int, Any] = {}


def lookup(hid: int) -> Any:
    """The object behind a handle given out earlier (pickled handles resolve through this)."""
    return _objects[hid]


def _ref(obj: Any) -> int:
    _objects[id(obj)] = obj  # kept alive so that the id stays valid while the notebook is graded
    return id(obj)


def _namespace() -> dict:
    from IPython import get_ipython

    shell = get_ipython()
    return shell.user_ns if shell is not None else {}


def _load(data: bytes) -> Any:
    return pickle.loads(data)  # a callable the test runner sent (cloudpickle); trusted direction


def _arg(value: Any) -> Any:
    return decode(value, handle=lambda hid, _name: lookup(hid), load=_load)


def _exception(exc: BaseException) -> dict:
    builtin = [c.__name__ for c in type(exc).__mro__ if c.__module__ == "builtins"]
    return {"raise": type(exc).__name__, "builtin": builtin, "message": str(exc)[:2000]}


def _mutable(value: Any) -> bool:
    kind = type(value)
    return kind in (list, dict, set) or kind.__module__.split(".")[0] in ("numpy", "pandas")


def _encode_or_handle(value: Any) -> Any:
    try:
        return encode(value, _ref)
    except WireError:  # too large or too deep to copy: the tests may still use parts of it
        return ["h", _ref(value), type(value).__qualname__]


def _call(request: dict) -> Any:
    target = lookup(int(request["h"]))
    args = [_arg(a) for a in request.get("args", [])]
    kwargs = {str(k): _arg(v) for k, v in request.get("kwargs", [])}
    result = target(*args, **kwargs)
    after = {}
    for i, (sent, value) in enumerate(zip(request.get("args", []), args)):
        if _mutable(value):
            now = encode(value, _ref)
            if now != sent:  # the function changed an argument in place: the test must see it
                after[str(i)] = now
    return result, after


def answer(request: str) -> str:
    """Answer one request (JSON) with one JSON reply: the grader reads it as a single user expression (the
    cheapest round trip a Jupyter kernel offers: no cell to run)."""
    try:
        req = json.loads(request)
        op, after = req["op"], {}
        if op == "names":
            ns = _namespace()
            pairs = [[name, _encode_or_handle(ns[name])] for name in req["names"] if name in ns]
            return json.dumps({"ok": ["d", pairs]})
        if op == "call":
            value, after = _call(req)
        else:
            target = lookup(int(req["h"]))
            if op == "getattr":
                value = getattr(target, str(req["name"]))
            elif op == "getitem":
                value = target[_arg(req["key"])]
            elif op == "len":
                value = len(target)
            elif op == "iter":
                value = []
                for item in target:
                    if len(value) >= MAX_ITEMS:
                        raise ValueError(f"more than {MAX_ITEMS:,} items to iterate over")
                    value.append(item)
            elif op == "contains":
                value = _arg(req["key"]) in target
                value = value if type(value) is bool else bool(value)
            elif op == "repr":
                value = repr(target)[:2000]
            else:
                raise ValueError(f"unknown request {op!r}")
        return json.dumps({"ok": encode(value, _ref), "after": after})
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # the student's code raised: the test decides what that means
        return json.dumps(_exception(exc))

