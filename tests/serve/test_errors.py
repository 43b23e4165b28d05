"""Bad input gets an OpenAI-shaped error with the right status, and the server keeps serving;
a full queue answers 429 with Retry-After; a client that leaves frees its batch slot."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import pytest

from serve_helpers import CHAT, EMBED, wait_until

pytestmark = pytest.mark.models

GOOD = {"model": CHAT, "messages": [{"role": "user", "content": "Say OK."}], "max_tokens": 1}
LONG_TEXT = "hello " * 9000  # ~9,000 tokens: longer than the 8,192-token context


def _post(url: str, path: str, body, *, raw: bytes | None = None, timeout: float = 120) -> httpx.Response:
    content = raw if raw is not None else json.dumps(body).encode()
    return httpx.post(f"{url}{path}", content=content, headers={"content-type": "application/json"},
                      timeout=timeout)


def _chat(**changes) -> dict:
    body = json.loads(json.dumps(GOOD))
    for key, value in changes.items():
        if value is _DROP:
            body.pop(key, None)
        else:
            body[key] = value
    return body


_DROP = object()

BAD_CHAT = {
    # name: (body or raw bytes, expected status, expected param or None, expected code or None)
    "malformed_json": (b'{"model": "smollm2-135m-instruct", "messages": [', 400, None, "invalid_json"),
    "not_an_object": (b"[1, 2, 3]", 400, None, None),
    "empty_body": (b"", 400, None, "invalid_json"),
    "missing_messages": (_chat(messages=_DROP), 400, "messages", "missing_required_parameter"),
    "missing_model": (_chat(model=_DROP), 400, "model", "missing_required_parameter"),
    "empty_messages": (_chat(messages=[]), 400, "messages", "invalid_value"),
    "messages_not_a_list": (_chat(messages="hi"), 400, "messages", "invalid_type"),
    "message_without_content": (_chat(messages=[{"role": "user"}]), 400, "messages.0.content", None),
    "content_wrong_type": (_chat(messages=[{"role": "user", "content": 5}]), 400, "messages.0.content", None),
    "unknown_role": (_chat(messages=[{"role": "wizard", "content": "hi"}]), 400, "messages.0.role", None),
    "unknown_model": (_chat(model="gpt-17"), 404, "model", "model_not_found"),
    "embedder_as_chat_model": (_chat(model=EMBED), 404, "model", "model_not_found"),
    "prompt_longer_than_context": (_chat(messages=[{"role": "user", "content": LONG_TEXT}]), 400, "messages",
                                   "context_length_exceeded"),
    "negative_max_tokens": (_chat(max_tokens=-5), 400, "max_tokens", None),
    "zero_max_tokens": (_chat(max_tokens=0), 400, "max_tokens", None),
    "huge_max_tokens": (_chat(max_tokens=10**9), 400, "max_tokens", "context_length_exceeded"),
    "max_tokens_as_string": (_chat(max_tokens="10"), 400, "max_tokens", "invalid_type"),
    "max_tokens_as_float": (_chat(max_tokens=2.5), 400, "max_tokens", "invalid_type"),
    "temperature_as_string": (_chat(temperature="hot"), 400, "temperature", None),
    "temperature_too_high": (_chat(temperature=5), 400, "temperature", "invalid_value"),
    "top_p_zero": (_chat(top_p=0), 400, "top_p", "invalid_value"),
    "stream_as_string": (_chat(stream="yes"), 400, "stream", "invalid_type"),
    "stop_wrong_type": (_chat(stop=7), 400, "stop", None),
    "too_many_stops": (_chat(stop=["a", "b", "c", "d", "e"]), 400, "stop", "invalid_value"),
    "n_two": (_chat(n=2), 400, "n", "invalid_value"),
    "seed_as_string": (_chat(seed="42"), 400, "seed", "invalid_type"),
}

BAD_EMBED = {
    "unknown_model": ({"model": "text-embedding-3-small", "input": "hi"}, 404, "model", "model_not_found"),
    "missing_input": ({"model": EMBED}, 400, "input", "missing_required_parameter"),
    "empty_list": ({"model": EMBED, "input": []}, 400, "input", "invalid_value"),
    "empty_string": ({"model": EMBED, "input": ""}, 400, "input", "invalid_value"),
    "token_ids": ({"model": EMBED, "input": [1, 2, 3]}, 400, "input", "invalid_value"),
    "wrong_type": ({"model": EMBED, "input": 42}, 400, "input", None),
    "too_long": ({"model": EMBED, "input": "word " * 400}, 400, "input", "context_length_exceeded"),
    "wrong_dimensions": ({"model": EMBED, "input": "hi", "dimensions": 12}, 400, "dimensions", "invalid_value"),
}


def _check_error(resp: httpx.Response, status: int, param, code) -> dict:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert isinstance(err["message"], str) and len(err["message"]) > 20
    assert err["type"] == "invalid_request_error"
    if param is not None:
        assert err["param"] == param, err
    if code is not None:
        assert err["code"] == code, err
    return err


def _still_serving(url: str) -> None:
    ok = _post(url, "/v1/chat/completions", GOOD)
    assert ok.status_code == 200, ok.text
    assert ok.json()["usage"]["completion_tokens"] == 1


@pytest.mark.parametrize("case", sorted(BAD_CHAT))
def test_bad_chat_request_gets_openai_error_and_server_keeps_serving(server, case):
    body, status, param, code = BAD_CHAT[case]
    resp = _post(server.url, "/v1/chat/completions", body, raw=body if isinstance(body, bytes) else None)
    _check_error(resp, status, param, code)
    _still_serving(server.url)


@pytest.mark.parametrize("case", sorted(BAD_EMBED))
def test_bad_embedding_request_gets_openai_error(server, case):
    body, status, param, code = BAD_EMBED[case]
    _check_error(_post(server.url, "/v1/embeddings", body), status, param, code)
    assert _post(server.url, "/v1/embeddings", {"model": EMBED, "input": "ok"}).status_code == 200


def test_official_client_raises_typed_errors(client):
    import openai

    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="gpt-17", messages=GOOD["messages"], max_tokens=1)
    assert err.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=CHAT, messages=GOOD["messages"], max_tokens=-1)
    assert err.value.body["param"] == "max_tokens"


def test_oversized_body_gets_413(server):
    big = json.dumps(_chat(messages=[{"role": "user", "content": "x" * (3 * 1024 * 1024)}])).encode()
    _check_error(_post(server.url, "/v1/chat/completions", None, raw=big), 413, None, "request_too_large")
    _still_serving(server.url)


def test_unknown_route_and_method_are_openai_shaped(server):
    resp = httpx.get(f"{server.url}/v1/nothing-here")
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found"
    resp = httpx.get(f"{server.url}/v1/chat/completions")
    assert resp.status_code == 405 and "error" in resp.json()


def test_queue_bound_answers_429_with_retry_after(small_server):
    """One batch slot, two queue places: of 8 simultaneous requests, some must be refused, never dropped."""
    body = {"model": CHAT, "messages": [{"role": "user", "content": "Count to twenty."}], "max_tokens": 24}

    async def burst():
        async with httpx.AsyncClient(timeout=300) as c:
            return await asyncio.gather(*(c.post(f"{small_server.base_url}/chat/completions", json=body)
                                          for _ in range(8)))

    replies = asyncio.run(burst())
    codes = sorted(r.status_code for r in replies)
    assert set(codes) == {200, 429}, codes
    assert codes.count(200) >= 3  # the running one + two queued
    for r in replies:
        if r.status_code == 429:
            assert int(r.headers["retry-after"]) >= 1
            err = r.json()["error"]
            assert err["type"] == "rate_limit_error" and err["code"] == "rate_limit_exceeded"
        else:
            assert r.json()["usage"]["completion_tokens"] >= 1
    metrics = httpx.get(f"{small_server.url}/metrics").text
    rejected = [line for line in metrics.splitlines() if line.startswith("tradeoffs_rejected_requests_total")]
    assert float(rejected[0].split()[-1]) == codes.count(429)
    assert httpx.post(f"{small_server.base_url}/chat/completions", json=GOOD, timeout=120).status_code == 200


def test_official_client_surfaces_429(small_server):
    import openai

    client = openai.OpenAI(base_url=small_server.base_url, api_key="local", max_retries=0, timeout=300)
    body = dict(model=CHAT, messages=[{"role": "user", "content": "Count to twenty."}], max_tokens=24)
    errors, threads = [], []

    def call():
        try:
            client.chat.completions.create(**body)
        except openai.RateLimitError as exc:
            errors.append(exc)

    for _ in range(6):
        threads.append(threading.Thread(target=call))
        threads[-1].start()
    for t in threads:
        t.join(300)
    assert errors and all(e.status_code == 429 for e in errors)
    assert errors[0].response.headers["retry-after"].isdigit()


@pytest.mark.parametrize("stream", [True, False])
def test_client_disconnect_frees_its_batch_slot(small_server, stream):
    """A 400-token request whose client leaves stops generating; the slot serves the next request."""
    sched = small_server.scheduler
    body = {"model": CHAT, "messages": [{"role": "user", "content": "Write a very long story about a dragon."}],
            "max_tokens": 400, "temperature": 0, "stream": stream}
    if stream:
        with httpx.Client(timeout=120) as c, c.stream("POST", f"{small_server.base_url}/chat/completions",
                                                      json=body) as resp:
            lines = resp.iter_lines()
            assert next(line for line in lines if line.startswith("data:"))
            assert wait_until(lambda: sched.running == 1, timeout=60)
        # leaving the `with` closes the connection mid-stream
    else:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{small_server.base_url}/chat/completions", json=body, timeout=httpx.Timeout(120, read=2.0))
    assert wait_until(lambda: sched.running == 0 and sched.queue_depth == 0, timeout=60), "the slot was never freed"
    metrics = httpx.get(f"{small_server.url}/metrics").text
    tokens = [line for line in metrics.splitlines() if line.startswith("tradeoffs_completion_tokens_total")]
    assert float(tokens[0].split()[-1]) < 400, "the abandoned request kept generating to the end"
    cancelled = [line for line in metrics.splitlines() if line.startswith("tradeoffs_cancelled_requests_total")]
    assert float(cancelled[0].split()[-1]) == 1
    start = time.monotonic()
    ok = httpx.post(f"{small_server.base_url}/chat/completions", json=GOOD, timeout=120)
    assert ok.status_code == 200 and time.monotonic() - start < 120
