"""Helpers shared by the server tests (imported as ``serve_helpers``; pytest puts this folder on
sys.path)."""

from __future__ import annotations

import threading
import time

from tradeoffs import models
from tradeoffs.serve import free_port

CHAT = models.CHAT_MODEL_ID
EMBED = models.EMBEDDER_ID


class InProcessServer:
    """``create_app`` served by uvicorn on a thread of the test process, over an already-loaded model."""

    def __init__(self, chat, **options) -> None:
        import uvicorn

        from tradeoffs.serve import ServeConfig, create_app

        self.app = create_app(ServeConfig(embedder=False, **options), chat=chat)
        self.port = free_port()
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def scheduler(self):
        return self.app.state.tradeoffs.scheduler

    def __enter__(self) -> "InProcessServer":
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the in-process server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def wait_until(predicate, timeout: float = 60.0, every: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return predicate()
