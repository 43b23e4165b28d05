"""A bounded, graceful stop for the kit's server: what SIGTERM and Ctrl-C do.

:class:`GracefulServer` is uvicorn's server with a different ending. On the first SIGTERM or SIGINT
(Ctrl-C), within about 0.1 s:

1. the listening socket closes: new connections are refused;
2. every queued request (admitted by nobody yet) gets HTTP 503 with ``Retry-After`` in OpenAI's
   error shape (``code: "server_shutting_down"``), and so does any request that arrives on a
   connection that was already open; idle keep-alive connections are closed;
3. the requests already running keep going for up to ``grace_period`` seconds (default
   :data:`~tradeoffs.serve.config.GRACE_PERIOD_S`);
4. when the grace period ends, each request still running gets the same retryable 503 (a stream
   gets an error event and then ``[DONE]``), and the process exits, about a second later at most.

A second SIGTERM or SIGINT skips what is left of the grace period: step 4 happens at once. An
expected shutdown logs one line per step and no traceback; the exit status is 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from types import FrameType

import uvicorn

from .config import GRACE_PERIOD_S
from .scheduler import Scheduler

__all__ = ["GracefulServer", "GRACE_PERIOD_S"]

log = logging.getLogger("tradeoffs.serve")

FLUSH_S = 0.5  # after the grace period: time for handlers to write the errors they were just given
TICK_S = 0.05


class GracefulServer(uvicorn.Server):
    """uvicorn's server with a bounded shutdown (see the module's description).

    Parameters
    ----------
    config : uvicorn.Config
    scheduler : Scheduler
        The app's scheduler (``app.state.tradeoffs.scheduler``): drained at the first signal,
        aborted when the grace period ends.
    grace_period : float
        Seconds the running requests get to finish after the first signal (0: none).

    Examples
    --------
    >>> import uvicorn                                                            # doctest: +SKIP
    >>> app = create_app()                                                        # doctest: +SKIP
    >>> config = uvicorn.Config(app, port=8000)                                   # doctest: +SKIP
    >>> GracefulServer(config, app.state.tradeoffs.scheduler, grace_period=10).run()  # doctest: +SKIP
    """

    def __init__(self, config: uvicorn.Config, scheduler: Scheduler, *, grace_period: float = GRACE_PERIOD_S) -> None:
        if not grace_period >= 0:
            raise ValueError(f"grace_period must be >= 0 seconds, got {grace_period!r}")
        super().__init__(config)
        self.scheduler = scheduler
        self.grace_period = float(grace_period)
        self.signals_received = 0

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Signal handler: only sets flags (it may interrupt code holding the scheduler's lock).
        The first signal starts the graceful stop, the next one ends it now. Unlike uvicorn, the
        signal is not raised again once the server has stopped: the stop was expected, and the
        process exits normally (no KeyboardInterrupt traceback)."""
        self.signals_received += 1
        if self.should_exit:
            self.force_exit = True
        else:
            self.should_exit = True

    def _busy(self) -> bool:
        return bool(self.server_state.tasks or self.server_state.connections)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        start = time.monotonic()
        for server in self.servers:
            server.close()  # new connections are refused from here on
        for sock in sockets or []:
            sock.close()
        rejected = self.scheduler.drain()
        for connection in list(self.server_state.connections):
            connection.shutdown()  # idle keep-alive connections close; busy ones close after their response
        running = self.scheduler.in_flight
        log.info("shutting down: refused new connections, rejected %d queued request(s) with 503; "
                 "%d request(s) in flight get up to %g s", rejected, running, self.grace_period)

        deadline = start + self.grace_period
        while self._busy() and not self.force_exit and time.monotonic() < deadline:
            await asyncio.sleep(TICK_S)
        if self._busy():
            why = "a second signal" if self.force_exit else f"the {self.grace_period:g} s grace period ended"
            ended = self.scheduler.abort(f"the server is shutting down and {why} before this request "
                                         "finished; retry it (against another replica, or once the "
                                         "server is back)")
            log.warning("shutting down: %s; %d request(s) still running got a 503", why, ended)
            flush_until = time.monotonic() + FLUSH_S
            while self._busy() and time.monotonic() < flush_until:
                await asyncio.sleep(TICK_S / 5)
        for connection in list(self.server_state.connections):  # e.g. a client that stopped reading
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.abort()
        self.scheduler.stop(timeout=FLUSH_S)
        await self.lifespan.shutdown()  # quick now (the engine has stopped); skipping it logs a traceback
        for server in self.servers:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(server.wait_closed(), FLUSH_S)
        log.info("stopped %.1f s after the signal", time.monotonic() - start)
