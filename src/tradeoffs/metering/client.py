"""The metered clients: drop-in wrappers of the ``openai`` client that write one ledger row per attempt,
priced with ``genai-prices``.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

from .ledger import Ledger


class _Pricer:
    """Turns (model, usage, time) into (cost, price list name) — or (None, None) when no price is known."""

    def __init__(self, price_as: Any, endpoint: str) -> None:
        from .. import pricing

        self.endpoint = endpoint
        self.price_as = price_as
        self._api = pricing.ApiModel
        self._misses: set[str] = set()
        if price_as is not None and not isinstance(price_as, pricing.ApiModel) and not callable(price_as):
            raise TypeError("price_as must be None (look the model up in genai-prices), a "
                            "tradeoffs.pricing.ApiModel (price every call as that model), or a callable "
                            f"(input_tokens, output_tokens, cached_tokens) -> US dollars; got {price_as!r}")

    def __call__(self, model: str, i: int | None, o: int | None, c: int | None,
                 when: datetime) -> tuple[float | None, str | None]:
        if i is None or o is None:
            return None, None
        c = c or 0
        from .. import pricing

        if isinstance(self.price_as, pricing.ApiModel):
            return self.price_as.cost(i, o, c, when=when), f"genai-prices {_gp_version()} {self.price_as.name}"
        if callable(self.price_as):
            name = getattr(self.price_as, "__name__", type(self.price_as).__name__)
            return float(self.price_as(i, o, c)), name
        if model in self._misses:
            return None, None
        import genai_prices as gp

        try:
            usage = gp.Usage(input_tokens=i, output_tokens=o, cache_read_tokens=c or None)
            calc = gp.calc_price(usage, model, provider_api_url=self.endpoint, genai_request_timestamp=when)
        except LookupError:
            self._misses.add(model)  # a local model: no public price; record the call unpriced
            return None, None
        return float(calc.total_price), f"genai-prices {gp.__version__} {calc.provider.id}/{calc.model.id}"


def _gp_version() -> str:
    import genai_prices

    return genai_prices.__version__


# =============================================================================================
# The metered clients
# =============================================================================================
_RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


def _check_tags(tenant: Any, feature: Any, template_id: Any) -> None:
    for name, value in (("tenant", tenant), ("feature", feature), ("template_id", template_id)):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{name} must be a non-empty string (every call is attributed), got {value!r}")


def _usage_counts(usage: Any) -> tuple[int | None, int | None, int | None]:
    if usage is None:
        return None, None, None
    i = getattr(usage, "prompt_tokens", None)
    o = getattr(usage, "completion_tokens", None)
    details = getattr(usage, "prompt_tokens_details", None)
    c = getattr(details, "cached_tokens", None) if details is not None else None
    return i, o, c


def _error_fields(exc: BaseException) -> tuple[str, int | None, bool, float | None]:
    """(message, http status, retryable?, server-suggested wait in seconds)."""
    import openai

    message = f"{type(exc).__name__}: {getattr(exc, 'message', None) or exc}"
    if isinstance(exc, openai.APIStatusError):
        status = int(exc.status_code)
        wait = None
        try:
            header = exc.response.headers.get("retry-after")
            wait = float(header) if header is not None else None
        except (AttributeError, TypeError, ValueError):
            wait = None
        return message, status, status in _RETRY_STATUS, wait
    if isinstance(exc, openai.APIConnectionError):  # includes timeouts
        return message, None, True, None
    return message, None, False, None


class _Meter:
    """What the sync and async clients share: tags, pricing, record building, retry policy."""

    def __init__(self, client: Any, ledger: Ledger | str | Path, price_as: Any, max_retries: int,
                 backoff_s: float, max_backoff_s: float, tag: str | None) -> None:
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be a whole number >= 0, got {max_retries!r}")
        if backoff_s < 0 or max_backoff_s < 0:
            raise ValueError("backoff_s and max_backoff_s must be >= 0")
        # Retries happen here, one ledger row per attempt; the openai client must not retry silently.
        self.client = client.with_options(max_retries=0)
        self.ledger = ledger if isinstance(ledger, Ledger) else Ledger(ledger)
        self.endpoint = str(client.base_url)
        self.pricer = _Pricer(price_as, self.endpoint)
        self.max_retries = max_retries
        self.backoff_s = float(backoff_s)
        self.max_backoff_s = float(max_backoff_s)
        self.tag = tag

    def base(self, kwargs: dict, tenant: str, feature: str, template_id: str, request_id: str | None,
             tag: str | None, attempt: int, started: datetime) -> dict:
        return {"ts": started, "tenant": tenant, "feature": feature, "template_id": template_id,
                "model": str(kwargs.get("model") or "unknown"), "endpoint": self.endpoint,
                "stream": bool(kwargs.get("stream")), "attempt": attempt, "request_id": request_id,
                "tag": tag if tag is not None else self.tag}

    def finish(self, row: dict, *, latency: float, usage: Any = None, model: str | None = None,
               status: str = "ok", error: str | None = None, http_status: int | None = None,
               ttft: float | None = None) -> dict:
        i, o, c = _usage_counts(usage)
        if model:
            row["model"] = str(model)
        row.update(input_tokens=i, output_tokens=o, cached_tokens=c, latency_s=max(0.0, latency),
                   ttft_s=ttft, status=status, error=error, http_status=http_status)
        if status == "error" and i is None:
            cost, priced = 0.0, "not billed (failed call)"
        else:
            cost, priced = self.pricer(row["model"], i, o, c, row["ts"])
        row.update(cost_usd=cost, priced_as=priced)
        return row

    def wait(self, attempt: int, suggested: float | None) -> float:
        delay = self.backoff_s * 2 ** (attempt - 1)
        if suggested is not None:
            delay = max(delay, suggested)
        return min(delay, self.max_backoff_s)

    @staticmethod
    def prepare(kwargs: dict) -> dict:
        kwargs = dict(kwargs)
        if kwargs.get("stream"):
            options = dict(kwargs.get("stream_options") or {})
            options.setdefault("include_usage", True)  # the final chunk then carries usage
            kwargs["stream_options"] = options
        return kwargs


class MeteredClient:
    """The official ``openai.OpenAI`` client, with every chat completion recorded in a :class:`Ledger`.

    Parameters
    ----------
    client : openai.OpenAI
        Pointed at OpenAI or at any OpenAI-compatible server (``base_url``).
    ledger : Ledger or path
    price_as : None, tradeoffs.pricing.ApiModel or callable
        ``None``: look the answering model up in ``genai-prices`` by endpoint and model name (calls
        to a local model have no public price and are recorded with ``cost_usd`` NULL).
        An :class:`~tradeoffs.pricing.ApiModel`: price every call as if that API model had served it
        (shadow pricing: what this traffic would cost on the API). A callable
        ``(input_tokens, output_tokens, cached_tokens) -> dollars``: your own price.
    max_retries : int
        Retries after a retryable failure (HTTP 408/409/429/5xx, connection errors, timeouts), with
        exponential backoff from ``backoff_s`` (or the server's ``Retry-After``), capped at
        ``max_backoff_s``. Every attempt is its own ledger row (``attempt`` = 1, 2, ...), so retries
        show up in the attribution. The wrapped client's own retries are switched off.
    tag : str, optional
        Default ``tag`` for every row (an experiment or job name).

    Examples
    --------
    >>> import httpx, openai, tempfile, os
    >>> def fake(request):
    ...     return httpx.Response(200, json={"id": "x", "object": "chat.completion", "created": 0, "model": "m",
    ...         "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hi"}}],
    ...         "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}})
    >>> client = openai.OpenAI(base_url="http://fake/v1", api_key="-",
    ...                        http_client=httpx.Client(transport=httpx.MockTransport(fake)))
    >>> metered = MeteredClient(client, os.path.join(tempfile.mkdtemp(), "l.db"),
    ...                         price_as=lambda i, o, c: 1e-6 * (i + 4 * o))
    >>> reply = metered.chat.completions.create(model="m", messages=[{"role": "user", "content": "hello"}],
    ...                                         tenant="acme", feature="chat", template_id="chat/v1")
    >>> reply.choices[0].message.content
    'hi'
    >>> metered.ledger.frame()[["tenant", "input_tokens", "output_tokens", "cost_usd"]].values.tolist()
    [['acme', 12, 3, 2.4e-05]]
    """

    def __init__(self, client: Any, ledger: Ledger | str | Path, *, price_as: Any = None, max_retries: int = 2,
                 backoff_s: float = 0.25, max_backoff_s: float = 8.0, tag: str | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        import openai

        if not isinstance(client, openai.OpenAI):
            raise TypeError(f"client must be an openai.OpenAI (for async code use AsyncMeteredClient), "
                            f"got {type(client).__name__}")
        self._m = _Meter(client, ledger, price_as, max_retries, backoff_s, max_backoff_s, tag)
        self._sleep = sleep
        self.chat = SimpleNamespace(completions=SimpleNamespace(create=self.create))

    @property
    def ledger(self) -> Ledger:
        return self._m.ledger

    @property
    def endpoint(self) -> str:
        return self._m.endpoint

    def create(self, *, tenant: str, feature: str, template_id: str, request_id: str | None = None,
               tag: str | None = None, **kwargs: Any) -> Any:
        """``client.chat.completions.create(**kwargs)``, metered. Streams return a :class:`MeteredStream`."""
        _check_tags(tenant, feature, template_id)
        kwargs = self._m.prepare(kwargs)
        attempt = 1
        while True:
            started = datetime.now(timezone.utc)
            row = self._m.base(kwargs, tenant, feature, template_id, request_id, tag, attempt, started)
            t0 = time.perf_counter()
            try:
                response = self._m.client.chat.completions.create(**kwargs)
            except Exception as exc:
                message, status, retryable, suggested = _error_fields(exc)
                self._m.ledger.record(self._m.finish(row, latency=time.perf_counter() - t0, status="error",
                                                     error=message, http_status=status))
                if not retryable or attempt > self._m.max_retries:
                    raise
                self._sleep(self._m.wait(attempt, suggested))
                attempt += 1
                continue
            except BaseException:
                self._m.ledger.record(self._m.finish(row, latency=time.perf_counter() - t0, status="cancelled",
                                                     error="interrupted"))
                raise
            if kwargs.get("stream"):
                return MeteredStream(response, self._m, row, t0)
            self._m.ledger.record(self._m.finish(row, latency=time.perf_counter() - t0, usage=response.usage,
                                                 model=getattr(response, "model", None)))
            return response


class _StreamState:
    def __init__(self, meter: _Meter, row: dict, t0: float) -> None:
        self.meter, self.row, self.t0 = meter, row, t0
        self.usage = None
        self.model: str | None = None
        self.ttft: float | None = None
        self.parts: list[str] = []
        self.done = False

    def see(self, chunk: Any) -> None:
        if getattr(chunk, "usage", None) is not None:
            self.usage = chunk.usage
        if getattr(chunk, "model", None):
            self.model = chunk.model
        for choice in getattr(chunk, "choices", None) or []:
            delta = getattr(choice, "delta", None)
            content = getattr(delta, "content", None) if delta is not None else None
            if content:
                if self.ttft is None:
                    self.ttft = time.perf_counter() - self.t0
                if getattr(choice, "index", 0) == 0:
                    self.parts.append(content)

    def row_for(self, status: str, exc: BaseException | None) -> dict | None:
        if self.done:
            return None
        self.done = True
        message, http = (None, None)
        if exc is not None:
            message, http, _, _ = _error_fields(exc)
        elif status == "cancelled":
            message = "stream closed before its end"
        return self.meter.finish(self.row, latency=time.perf_counter() - self.t0, usage=self.usage, model=self.model,
                                 status=status, error=message, http_status=http, ttft=self.ttft)


class _StreamView:
    """What the sync and async metered streams both show of their :class:`_StreamState`."""

    _state: _StreamState

    @property
    def text(self) -> str:
        """The text received so far (choice 0)."""
        return "".join(self._state.parts)

    @property
    def usage(self) -> Any:
        """The token ``usage`` the stream reported (None until a chunk carries it)."""
        return self._state.usage

    @property
    def ttft_s(self) -> float | None:
        """Seconds from the request to the first content token (None until it arrives)."""
        return self._state.ttft


class MeteredStream(_StreamView):
    """A streamed chat completion that records itself when it ends, fails or is closed early.

    Iterate it like the openai ``Stream``. ``ttft_s`` is the time from sending the request to the
    first chunk that carries text. Closing it early (``close()``, leaving a ``with`` block, breaking
    out and dropping it) records the call as ``cancelled``.
    """

    def __init__(self, stream: Any, meter: _Meter, row: dict, t0: float) -> None:
        self._stream = stream
        self._it = iter(stream)
        self._state = _StreamState(meter, row, t0)

    def __iter__(self) -> "MeteredStream":
        return self

    def __next__(self) -> Any:
        try:
            chunk = next(self._it)
        except StopIteration:
            self._record("ok", None)
            raise
        except Exception as exc:
            self._record("error", exc)
            raise
        self._state.see(chunk)
        return chunk

    def _record(self, status: str, exc: BaseException | None) -> None:
        row = self._state.row_for(status, exc)
        if row is not None:
            self._state.meter.ledger.record(row)

    def close(self) -> None:
        if not self._state.done:
            try:
                self._stream.close()
            finally:
                self._record("cancelled", None)

    def __enter__(self) -> "MeteredStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:  # dropped without being finished or closed
        try:
            if not self._state.done:
                self.close()
        except Exception:
            pass


class AsyncMeteredClient:
    """:class:`MeteredClient` for ``openai.AsyncOpenAI``: ``await metered.chat.completions.create(...)``.

    Ledger writes run in a worker thread so they never block the event loop.

    Examples
    --------
    >>> import asyncio, httpx, openai, tempfile, os
    >>> async def fake(request):
    ...     return httpx.Response(200, json={"id": "x", "object": "chat.completion", "created": 0, "model": "m",
    ...         "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hi"}}],
    ...         "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}})
    >>> client = openai.AsyncOpenAI(base_url="http://fake/v1", api_key="-",
    ...                             http_client=httpx.AsyncClient(transport=httpx.MockTransport(fake)))
    >>> metered = AsyncMeteredClient(client, os.path.join(tempfile.mkdtemp(), "l.db"))
    >>> async def main():
    ...     calls = [metered.chat.completions.create(model="m", messages=[], tenant=t, feature="f", template_id="f/v1")
    ...              for t in ("a", "b", "c")]
    ...     return await asyncio.gather(*calls)
    >>> len(asyncio.run(main())), sorted(metered.ledger.frame()["tenant"])
    (3, ['a', 'b', 'c'])
    """

    def __init__(self, client: Any, ledger: Ledger | str | Path, *, price_as: Any = None, max_retries: int = 2,
                 backoff_s: float = 0.25, max_backoff_s: float = 8.0, tag: str | None = None) -> None:
        import openai

        if not isinstance(client, openai.AsyncOpenAI):
            raise TypeError(f"client must be an openai.AsyncOpenAI (for sync code use MeteredClient), "
                            f"got {type(client).__name__}")
        self._m = _Meter(client, ledger, price_as, max_retries, backoff_s, max_backoff_s, tag)
        self.chat = SimpleNamespace(completions=SimpleNamespace(create=self.create))

    @property
    def ledger(self) -> Ledger:
        return self._m.ledger

    @property
    def endpoint(self) -> str:
        return self._m.endpoint

    async def _write(self, row: dict) -> None:
        await asyncio.to_thread(self._m.ledger.record, row)

    async def create(self, *, tenant: str, feature: str, template_id: str, request_id: str | None = None,
                     tag: str | None = None, **kwargs: Any) -> Any:
        """``await client.chat.completions.create(**kwargs)``, metered; streams give an :class:`AsyncMeteredStream`."""
        _check_tags(tenant, feature, template_id)
        kwargs = self._m.prepare(kwargs)
        attempt = 1
        while True:
            started = datetime.now(timezone.utc)
            row = self._m.base(kwargs, tenant, feature, template_id, request_id, tag, attempt, started)
            t0 = time.perf_counter()
            try:
                response = await self._m.client.chat.completions.create(**kwargs)
            except Exception as exc:
                message, status, retryable, suggested = _error_fields(exc)
                await self._write(self._m.finish(row, latency=time.perf_counter() - t0, status="error",
                                                 error=message, http_status=status))
                if not retryable or attempt > self._m.max_retries:
                    raise
                await asyncio.sleep(self._m.wait(attempt, suggested))
                attempt += 1
                continue
            except BaseException:  # asyncio.CancelledError, KeyboardInterrupt
                self._m.ledger.record(self._m.finish(row, latency=time.perf_counter() - t0, status="cancelled",
                                                     error="interrupted"))
                raise
            if kwargs.get("stream"):
                return AsyncMeteredStream(response, self._m, row, t0)
            await self._write(self._m.finish(row, latency=time.perf_counter() - t0, usage=response.usage,
                                             model=getattr(response, "model", None)))
            return response


class AsyncMeteredStream(_StreamView):
    """The async twin of :class:`MeteredStream` (``async for chunk in stream``; ``await stream.aclose()``)."""

    def __init__(self, stream: Any, meter: _Meter, row: dict, t0: float) -> None:
        self._stream = stream
        self._it = stream.__aiter__()
        self._state = _StreamState(meter, row, t0)

    def __aiter__(self) -> "AsyncMeteredStream":
        return self

    async def __anext__(self) -> Any:
        try:
            chunk = await self._it.__anext__()
        except StopAsyncIteration:
            await self._record("ok", None)
            raise
        except Exception as exc:
            await self._record("error", exc)
            raise
        self._state.see(chunk)
        return chunk

    async def _record(self, status: str, exc: BaseException | None) -> None:
        row = self._state.row_for(status, exc)
        if row is not None:
            await asyncio.to_thread(self._state.meter.ledger.record, row)

    async def aclose(self) -> None:
        if not self._state.done:
            try:
                await self._stream.close()
            finally:
                await self._record("cancelled", None)

    async def __aenter__(self) -> "AsyncMeteredStream":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()
