"""A local OpenAI-compatible server over the kit's chat model and embedder.

Labs 1 and 4 talk to it with the official ``openai`` client, exactly as they would to a paid API::

    from openai import OpenAI
    from tradeoffs.serve import LocalServer

    with LocalServer(max_batch_size=16, max_wait_ms=5) as base_url:
        client = OpenAI(base_url=base_url, api_key="local")      # any key works
        reply = client.chat.completions.create(
            model="smollm2-135m-instruct", max_tokens=32,
            messages=[{"role": "user", "content": "Where is my parcel?"}])
        print(reply.choices[0].message.content, reply.usage)

From a shell: ``tradeoffs serve --port 8000 --max-batch-size 16 --max-wait-ms 5``.

Modules: :mod:`.config` (:class:`ServeConfig`: every default, once), :mod:`.engine` (continuous
batching over the model), :mod:`.llama` (the model's forward over a packed row of tokens),
:mod:`.sampling` (sampling and streamed detokenization), :mod:`.scheduler` (bounded queue, admission policy, the engine thread),
:mod:`.protocol` (the request bodies), :mod:`.errors` (OpenAI-shaped errors), :mod:`.app` (HTTP routes),
:mod:`.metrics` (Prometheus), :mod:`.local` (:class:`LocalServer`), :mod:`.shutdown` (the bounded
stop on SIGTERM or Ctrl-C), :mod:`.vllm_peer` (vLLM's CPU build in its own pinned environment, the
production peer lab 4 and ``benchmarks/serving.py`` measure against). Importing this package is cheap:
torch and FastAPI load only when ``create_app`` or the engine is used.
"""

from __future__ import annotations

from typing import Any

from .config import GRACE_PERIOD_S, ServeConfig
from .local import LocalServer, ServerStartError, free_port

__all__ = ["ServeConfig", "GRACE_PERIOD_S", "LocalServer", "ServerStartError", "free_port", "create_app", "run_server",
           "BatchEngine", "Scheduler", "SamplingParams", "GenRequest"]

_LAZY = {
    "create_app": ".app", "run_server": ".app",
    "BatchEngine": ".engine", "SamplingParams": ".sampling", "GenRequest": ".engine",
    "Scheduler": ".scheduler", "QueueFull": ".scheduler",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'tradeoffs.serve' has no attribute {name!r}")
