"""Fixtures of the server tests: one real server (the kit's models, a subprocess) per test session,
plus a small in-process server for the tests that need a tiny queue or a single batch slot."""

from __future__ import annotations

import pytest
from serve_helpers import InProcessServer

from tradeoffs.serve import LocalServer


@pytest.fixture(scope="session")
def server():
    """The kit's server, batched, started once for the whole session (``tradeoffs serve`` in a
    subprocess). Yields the LocalServer; ``server.base_url`` is what the openai client wants."""
    srv = LocalServer(max_batch_size=8, max_wait_ms=20, max_queue=256, startup_timeout=300)
    with srv:
        yield srv


@pytest.fixture(scope="session")
def client(server):
    from openai import OpenAI

    with OpenAI(base_url=server.base_url, api_key="local", max_retries=0, timeout=300) as c:
        yield c


@pytest.fixture()
def aclient(server):
    from openai import AsyncOpenAI

    return AsyncOpenAI(base_url=server.base_url, api_key="local", max_retries=0, timeout=300)


@pytest.fixture()
def small_server(chat_model):
    """One batch slot and a queue of 2: the 429 and disconnect tests."""
    with InProcessServer(chat_model, max_batch_size=1, max_wait_ms=0, max_queue=2) as srv:
        yield srv
