"""The OpenAI-compatible HTTP layer: FastAPI routes, request validation and OpenAI-shaped errors.

Endpoints
---------
``GET /v1/models``, ``GET /v1/models/{id}``
    The chat model and the embedder.
``POST /v1/chat/completions``
    Non-streaming or ``stream=true`` (server-sent events). Supports ``max_tokens`` (or
    ``max_completion_tokens``), ``temperature``, ``top_p``, ``stop``, ``seed``, ``n=1`` and
    ``stream_options.include_usage``.
``POST /v1/embeddings``
    ``input`` as a string or a list of strings; ``encoding_format`` ``float`` or ``base64``.
``GET /health``
    200 once the models are loaded and the engine thread runs, else 503. The JSON body also says
    how the server runs: batching limits, ``dtype`` (``float32`` or ``bfloat16``), ``compiled``,
    ``native`` (whether decode steps run the native step).
``GET /metrics``
    Prometheus text: queue depth, running requests, batch sizes, latencies, tokens.

Every chat and embedding response carries ``usage`` with token counts from the model's own
tokenizer. In a stream, exactly one chunk carries ``usage``: the extra final chunk when the client
asks for ``stream_options={"include_usage": true}`` (OpenAI's behaviour), otherwise the chunk that
carries ``finish_reason``.

Every error has OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, and a status
that says whose fault it was: 400 bad request, 404 unknown model or route, 413 body too large,
429 queue full (with ``Retry-After``), 500/503 server side. A bad request never stops the server.

Stopping (SIGTERM or Ctrl-C) is bounded by a grace period (``--grace-period``, default
:data:`~tradeoffs.serve.config.GRACE_PERIOD_S` seconds; see :mod:`.shutdown`): new connections are
refused, queued requests get a retryable 503 with ``Retry-After`` at once, running ones may finish
within the grace period and then get the same 503 (a stream: an error event, then the end); a
second signal ends it at once.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
import uuid
import dataclasses
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__, models
from ..threads import default_threads
from .config import ServeConfig, resolve_dtype
from .engine import BatchEngine, GenRequest, SamplingParams
from .errors import APIError, admission_errors, engine_error, validation_error
from .metrics import CONTENT_TYPE_LATEST, ServerMetrics
from .protocol import MAX_EMBED_INPUTS, MAX_STOP, ChatRequest, EmbeddingRequest
from .scheduler import EngineStopped, Scheduler

__all__ = ["create_app", "run_server", "APIError", "ServeConfig"]

log = logging.getLogger("tradeoffs.serve")



# --------------------------------------------------------------------------------------------
# The app
# --------------------------------------------------------------------------------------------
class _State:
    """Everything the routes share: models, scheduler, metrics, limits."""

    def __init__(self, chat, embedder, scheduler: Scheduler, metrics: ServerMetrics, *,
                 max_body_bytes: int, default_max_tokens: int) -> None:
        self.chat, self.embedder, self.scheduler, self.metrics = chat, embedder, scheduler, metrics
        self.max_body_bytes = max_body_bytes
        self.default_max_tokens = default_max_tokens
        self.chat_id = models.CHAT_MODEL_ID if chat.name == models.CHAT_MODEL_NAME else chat.name
        self.chat_aliases = {self.chat_id.lower(), chat.name.lower()}
        self.embed_id = None
        self.embed_aliases: set[str] = set()
        if embedder is not None:
            self.embed_id = models.EMBEDDER_ID if embedder.name == models.EMBEDDER_NAME else embedder.name
            self.embed_aliases = {self.embed_id.lower(), embedder.name.lower()}
        self.created = int(time.time())
        self.fingerprint = f"tradeoffs-{__version__}-b{scheduler.max_batch_size}"

    def model_cards(self) -> list[dict]:
        ids = [self.chat_id] + ([self.embed_id] if self.embed_id else [])
        return [{"id": i, "object": "model", "created": self.created, "owned_by": "tradeoffs"} for i in ids]


def create_app(config: ServeConfig | None = None, *, chat=None, embedder=None, **overrides: Any) -> FastAPI:
    """Build the FastAPI app over the kit's chat model and embedder.

    Parameters
    ----------
    config : ServeConfig, optional
        The batching policy, limits and device (default: ``ServeConfig()``); ``overrides`` replace
        single fields (``create_app(max_batch_size=8)``). ``config.embedder=False`` serves chat only:
        ``/v1/embeddings`` answers 404, and start-up skips loading MiniLM (seconds on a CPU).
    chat : tradeoffs.models.ChatModel, optional
        Loaded with :func:`tradeoffs.models.load_chat_model` on ``config.device`` when omitted.
    embedder : tradeoffs.models.Embedder, optional
        Loaded with :func:`tradeoffs.models.load_embedder` when omitted and ``config.embedder``.

    Returns
    -------
    fastapi.FastAPI
        The scheduler's engine thread starts with the app (lifespan) and stops with it.

    Examples
    --------
    >>> import uvicorn                                                  # doctest: +SKIP
    >>> uvicorn.run(create_app(max_batch_size=8), port=8000)             # doctest: +SKIP
    """
    config = dataclasses.replace(config or ServeConfig(), **overrides)
    device = config.device
    if chat is None:
        import torch

        dtype = resolve_dtype(config.dtype, models.pick_device(device).type)
        chat = models.load_chat_model(device, dtype=getattr(torch, dtype))
    if embedder is None and config.embedder:
        embedder = models.load_embedder(device)
    metrics = ServerMetrics()
    engine = BatchEngine.from_chat_model(chat, max_batch_size=config.max_batch_size,
                                         max_step_tokens=config.max_step_tokens, prefix_cache=config.prefix_cache,
                                         compile=config.compile, native=config.native)
    chat_id = models.CHAT_MODEL_ID if chat.name == models.CHAT_MODEL_NAME else chat.name
    scheduler = Scheduler(engine, max_wait_ms=config.max_wait_ms, max_queue=config.max_queue, metrics=metrics,
                          model_id=chat_id, threads=int(config.threads or default_threads()))
    state = _State(chat, embedder, scheduler, metrics, max_body_bytes=config.max_body_bytes,
                   default_max_tokens=config.default_max_tokens)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        scheduler.start()
        try:
            yield
        finally:
            # the engine thread finishes its current step if it can (a graceful stop already waited)
            scheduler.stop(timeout=0.0 if scheduler.draining else 2.0)

    app = FastAPI(title="tradeoffs local OpenAI-compatible server", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    app.state.tradeoffs = state

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError):
        _count(state, request, exc.status)
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        msg = (f"Unknown route {request.method} {request.url.path}. The server offers GET /v1/models, "
               "POST /v1/chat/completions, POST /v1/embeddings, GET /health and GET /metrics."
               if exc.status_code in (404, 405) else str(exc.detail))
        return APIError(exc.status_code, msg, code=kind).response()

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unhandled error")
        _count(state, request, 500)
        return APIError(500, f"The server failed on this request ({type(exc).__name__}: {exc}). It is "
                        "still running; if this repeats, check the server log.", type="server_error").response()

    @app.get("/health")
    async def health():
        ok = scheduler.alive and not scheduler.draining
        status = "ok" if ok else "shutting down" if scheduler.draining else "engine stopped"
        body = {"status": status, "model": state.chat_id,
                "embedder": state.embed_id, "max_batch_size": scheduler.max_batch_size,
                "max_wait_ms": scheduler.max_wait * 1000, "max_queue": scheduler.max_queue,
                "max_step_tokens": scheduler.engine.max_step_tokens, "prefix_cache": scheduler.engine.prefix_cache,
                "queue_depth": scheduler.queue_depth, "running": scheduler.running,
                "context_length": chat.context_length, "torch_threads": scheduler.threads,
                "dtype": str(scheduler.engine.dtype).removeprefix("torch."), "compiled": scheduler.engine.compiled,
                "native": scheduler.engine.native is not None}
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics")
    async def metrics_endpoint():
        metrics.queue_depth.set(scheduler.queue_depth)
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    async def list_models():
        return {"object": "list", "data": state.model_cards()}

    @app.get("/v1/models/{model_id:path}")
    async def get_model(model_id: str):
        for card in state.model_cards():
            if card["id"].lower() == model_id.lower():
                return card
        raise _unknown_model(state, model_id, "model")

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        req = await _parse_body(request, ChatRequest, state.max_body_bytes)
        gen = _build_generation(state, req)
        loop = asyncio.get_running_loop()
        with admission_errors():
            ticket = scheduler.submit(gen, loop, stream=bool(req.stream))
        rid = f"chatcmpl-{uuid.uuid4().hex}"
        if req.stream:
            include_usage = bool(req.stream_options and req.stream_options.include_usage)
            _count(state, request, 200)
            return StreamingResponse(_sse(state, ticket, rid, include_usage), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        result = await _wait_unless_disconnected(request, ticket)
        if result is None:  # the client left; its batch slot is already free
            _count(state, request, 499)
            return Response(status_code=499)
        _count(state, request, 200)
        return JSONResponse(_completion_body(state, ticket, rid, result), headers=_timing_headers(ticket))

    @app.post("/v1/embeddings")
    async def embeddings(request: Request):
        if embedder is None:
            raise APIError(404, "This server was started without the embedder (--no-embedder); start it "
                           "without that flag to serve embeddings.", param="model",
                           code="model_not_found")
        req = await _parse_body(request, EmbeddingRequest, state.max_body_bytes)
        texts = _check_embedding_request(state, req)
        t0 = time.perf_counter()
        with admission_errors():
            fut = scheduler.run_job(lambda: embedder.encode(texts, batch_size=32), asyncio.get_running_loop())
        try:
            vectors = await fut
        except EngineStopped as exc:
            raise engine_error(exc) from None
        metrics.embed_batch.observe(len(texts))
        metrics.latency_seconds.labels("embeddings").observe(time.perf_counter() - t0)
        n_tokens = sum(embedder.count_tokens(texts))
        metrics.prompt_tokens.labels(state.embed_id).inc(n_tokens)
        data = [{"object": "embedding", "index": i, "embedding": _encode_vector(v, req.encoding_format)}
                for i, v in enumerate(vectors)]
        _count(state, request, 200)
        return {"object": "list", "data": data, "model": state.embed_id,
                "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens}}

    return app


# --------------------------------------------------------------------------------------------
# Helpers of the routes
# --------------------------------------------------------------------------------------------
def _count(state: _State, request: Request, status: int) -> None:
    path = request.url.path
    endpoint = path if path in ("/v1/chat/completions", "/v1/embeddings") else "other"
    state.metrics.requests.labels(endpoint, str(status)).inc()


async def _parse_body(request: Request, schema: type[BaseModel], limit: int) -> Any:
    """Read the body (at most ``limit`` bytes) and validate it against ``schema``, as an OpenAI-style error."""
    body = await _read_body(request, limit)
    try:
        return schema.model_validate_json(body)
    except ValidationError as exc:
        raise validation_error(exc) from None


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise APIError(413, f"The request body is {int(declared)} bytes; this server accepts at most {limit} "
                       "bytes (start it with a larger --max-body-bytes).", code="request_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise APIError(413, f"The request body exceeds {limit} bytes; this server accepts at most {limit} "
                           "bytes (start it with a larger --max-body-bytes).", code="request_too_large")
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body.strip():
        raise APIError(400, "The request body is empty. Send a JSON object.", code="invalid_json")
    return body


def _unknown_model(state: _State, name: str, param: str) -> APIError:
    offered = ", ".join(c["id"] for c in state.model_cards())
    return APIError(404, f"The model '{name}' does not exist on this server. Available models: {offered}.",
                    param=param, code="model_not_found")


def _build_generation(state: _State, req: ChatRequest) -> GenRequest:
    """Validate the request's values and turn it into an engine request."""
    if req.model.lower() not in state.chat_aliases:
        if req.model.lower() in state.embed_aliases:
            raise APIError(404, f"'{req.model}' is an embedding model, not a chat model; use "
                           f"'{state.chat_id}' with /v1/chat/completions.", param="model", code="model_not_found")
        raise _unknown_model(state, req.model, "model")
    if not req.messages:
        raise APIError(400, "'messages' must contain at least one message, e.g. "
                       '[{"role": "user", "content": "Hello"}].', param="messages", code="invalid_value")
    if req.n is not None and req.n != 1:
        raise APIError(400, f"This server generates one choice per request; got n={req.n}. Send n=1 "
                       "(or several requests).", param="n", code="invalid_value")
    if req.logprobs:
        raise APIError(400, "logprobs are not supported by this server.", param="logprobs", code="unsupported_value")
    for name in ("presence_penalty", "frequency_penalty"):
        value = getattr(req, name)
        if value not in (None, 0, 0.0):
            raise APIError(400, f"{name} is not supported by this server (send 0 or leave it out).",
                           param=name, code="unsupported_value")
    temperature = 1.0 if req.temperature is None else float(req.temperature)
    if not 0 <= temperature <= 2:
        raise APIError(400, f"Invalid 'temperature': {temperature}. Expected a value between 0 and 2.",
                       param="temperature", code="invalid_value")
    top_p = 1.0 if req.top_p is None else float(req.top_p)
    if not 0 < top_p <= 1:
        raise APIError(400, f"Invalid 'top_p': {top_p}. Expected a value greater than 0 and at most 1.",
                       param="top_p", code="invalid_value")
    stop = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
    if len(stop) > MAX_STOP:
        raise APIError(400, f"'stop' may hold at most {MAX_STOP} strings; got {len(stop)}.", param="stop",
                       code="invalid_value")
    if req.seed is not None and not -2**63 <= req.seed < 2**63:
        raise APIError(400, "'seed' must fit in a signed 64-bit integer.", param="seed", code="invalid_value")
    chat = state.chat
    try:
        text = chat.tokenizer.apply_chat_template(
            [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in req.messages],
            add_generation_prompt=True, tokenize=False)
    except Exception as exc:  # a template that refuses this conversation
        raise APIError(400, f"The chat template rejected these messages: {exc}", param="messages",
                       code="invalid_value") from None
    prompt_ids = chat.tokenizer(text, add_special_tokens=False)["input_ids"]
    ctx = chat.context_length
    if len(prompt_ids) >= ctx:
        raise APIError(400, f"This model's maximum context length is {ctx} tokens. However, your messages "
                       f"resulted in {len(prompt_ids)} tokens. Please reduce the length of the messages.",
                       param="messages", code="context_length_exceeded")
    param = "max_completion_tokens" if req.max_completion_tokens is not None else "max_tokens"
    max_tokens = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
    if max_tokens is None:
        max_tokens = min(state.default_max_tokens, ctx - len(prompt_ids))
    if max_tokens < 1:
        raise APIError(400, f"Invalid '{param}': integer below minimum value. Expected a value >= 1, but got "
                       f"{max_tokens} instead.", param=param, code="integer_below_min_value")
    if len(prompt_ids) + max_tokens > ctx:
        raise APIError(400, f"This model's maximum context length is {ctx} tokens. However, you requested "
                       f"{len(prompt_ids) + max_tokens} tokens ({len(prompt_ids)} in the messages, {max_tokens} "
                       f"in the completion). Please reduce the length of the messages or {param}.",
                       param=param, code="context_length_exceeded")
    params = SamplingParams(max_tokens=int(max_tokens), temperature=temperature, top_p=top_p,
                            seed=req.seed, stop=stop)
    return GenRequest(prompt_ids=list(prompt_ids), params=params, tokenizer=chat.tokenizer)


async def _wait_unless_disconnected(request: Request, ticket) -> GenRequest | None:
    """Wait for the final event; if the client leaves first, cancel the request (freeing its queue
    place or batch row) and return None."""

    async def disconnected() -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                return

    watcher = asyncio.ensure_future(disconnected())
    getter = asyncio.ensure_future(_final_event(ticket))
    answered = False
    try:
        done, _ = await asyncio.wait({watcher, getter}, return_when=asyncio.FIRST_COMPLETED)
        if getter in done:
            answered = True
            return getter.result()
        return None
    finally:
        if not answered:  # client gone or handler cancelled: free the slot
            ticket.cancel()
        for task in (watcher, getter):
            task.cancel()


async def _final_event(ticket) -> GenRequest:
    while True:
        kind, payload = await ticket.events.get()
        if kind == "done":
            return payload
        if kind == "error":
            raise engine_error(payload)


def _usage(r: GenRequest) -> dict:
    return {"prompt_tokens": r.prompt_tokens, "completion_tokens": r.completion_tokens,
            "total_tokens": r.prompt_tokens + r.completion_tokens}


def _completion_body(state: _State, ticket, rid: str, r: GenRequest) -> dict:
    text = r.stream.text if r.stream is not None else ""
    return {
        "id": rid, "object": "chat.completion", "created": int(time.time()), "model": state.chat_id,
        "system_fingerprint": state.fingerprint,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "logprobs": None, "finish_reason": r.finish_reason}],
        "usage": _usage(r),
    }


def _timing_headers(ticket) -> dict:
    def ms(a, b):
        return f"{1000 * (b - a):.1f}" if a is not None and b is not None else ""

    return {"x-queue-wait-ms": ms(ticket.arrival, ticket.admitted_at),
            "x-time-to-first-token-ms": ms(ticket.arrival, ticket.first_token_at),
            "x-latency-ms": ms(ticket.arrival, ticket.finished_at), "x-batch-size": str(ticket.max_batch)}


async def _sse(state: _State, ticket, rid: str, include_usage: bool):
    """Server-sent events in OpenAI's chunk format; cancels the request if the client goes away."""
    created = int(time.time())

    def chunk(delta: dict, finish: str | None = None, usage: dict | None = None, choices: bool = True) -> str:
        body: dict[str, Any] = {"id": rid, "object": "chat.completion.chunk", "created": created,
                                "model": state.chat_id, "system_fingerprint": state.fingerprint,
                                "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                             "finish_reason": finish}] if choices else []}
        if usage is not None:
            body["usage"] = usage
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    finished = False
    try:
        yield chunk({"role": "assistant", "content": ""})
        while True:
            kind, payload = await ticket.events.get()
            if kind == "text":
                yield chunk({"content": payload})
            elif kind == "done":
                finished = True
                usage = _usage(payload)
                yield chunk({}, finish=payload.finish_reason, usage=None if include_usage else usage)
                if include_usage:
                    yield chunk({}, usage=usage, choices=False)
                break
            else:
                finished = True
                err = engine_error(payload)
                yield f"data: {json.dumps(err.body())}\n\n"
                break
        yield "data: [DONE]\n\n"
    finally:
        if not finished:
            ticket.cancel()


def _check_embedding_request(state: _State, req: EmbeddingRequest) -> list[str]:
    if req.model.lower() not in state.embed_aliases:
        if req.model.lower() in state.chat_aliases:
            raise APIError(404, f"'{req.model}' is a chat model; use '{state.embed_id}' with /v1/embeddings.",
                           param="model", code="model_not_found")
        raise _unknown_model(state, req.model, "model")
    texts = [req.input] if isinstance(req.input, str) else list(req.input)
    if not texts:
        raise APIError(400, "'input' must not be empty: send a string or a list of strings.", param="input",
                       code="invalid_value")
    if not all(isinstance(t, str) for t in texts):
        raise APIError(400, "Token-id inputs are not supported by this server; send the text as strings.",
                       param="input", code="invalid_value")
    if len(texts) > MAX_EMBED_INPUTS:
        raise APIError(400, f"'input' may hold at most {MAX_EMBED_INPUTS} strings; got {len(texts)}.",
                       param="input", code="invalid_value")
    if any(not t for t in texts):
        raise APIError(400, "'input' cannot contain an empty string.", param="input", code="invalid_value")
    dim = state.embedder.dim
    if req.dimensions is not None and req.dimensions != dim:
        raise APIError(400, f"This embedder returns {dim}-dimensional vectors; 'dimensions' must be {dim} or "
                       "left out.", param="dimensions", code="invalid_value")
    limit = state.embedder.max_length
    lengths = [len(ids) for ids in state.embedder.tokenizer(texts)["input_ids"]]
    too_long = [i for i, n in enumerate(lengths) if n > limit]
    if too_long:
        i = too_long[0]
        raise APIError(400, f"This model's maximum context length is {limit} tokens, but input[{i}] has "
                       f"{lengths[i]} tokens. Shorten or split the text.", param="input",
                       code="context_length_exceeded")
    return texts


def _encode_vector(v: np.ndarray, fmt: str):
    if fmt == "base64":
        return base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode("ascii")
    return [float(x) for x in v]


def run_server(config: ServeConfig | None = None) -> None:
    """Load the models and serve until stopped (what ``tradeoffs serve`` runs).

    The models load on one thread; the engine thread, the only one that computes afterwards, runs
    with ``config.threads`` (default: :func:`default_threads`). Had loading used several, this thread
    would keep an idle OpenMP team, and libgomp, seeing more threads than cores, would put the engine's
    workers to sleep after every operation (measured: 51 instead of 31 ms per single-stream step in
    bfloat16 on 2 cores). Run through ``tradeoffs serve``, the OpenMP environment defaults to
    :data:`tradeoffs.threads.SERVE_ENV` (set the variables before starting to override).
    SIGTERM or Ctrl-C stops it within ``config.grace_period`` seconds (and about one more); a second
    signal at once (see :class:`~tradeoffs.serve.shutdown.GracefulServer`).
    """
    import torch
    import uvicorn

    from .shutdown import GracefulServer

    config = config or ServeConfig()
    threads = int(config.threads or default_threads())
    torch.set_num_threads(1)
    logging.basicConfig(level=getattr(logging, config.log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(config)
    log.info("serving %s on http://%s:%d/v1 (max_batch_size=%d, max_wait_ms=%g, max_queue=%d, threads=%d)",
             app.state.tradeoffs.chat_id, config.host, config.port, config.max_batch_size, config.max_wait_ms,
             config.max_queue, threads)
    server_config = uvicorn.Config(app, host=config.host, port=config.port, log_level=config.log_level,
                                   access_log=False, timeout_keep_alive=30)
    GracefulServer(server_config, app.state.tradeoffs.scheduler, grace_period=config.grace_period).run()
