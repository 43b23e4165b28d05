"""The dynamic batching scheduler: a bounded queue in front of one engine thread.

HTTP handlers run on the asyncio event loop; the model runs on one dedicated thread (the *engine
thread*), so a long matrix multiply never blocks the server from accepting, validating or
rejecting requests. The two sides meet in :class:`Scheduler`:

* :meth:`Scheduler.submit` puts a request in the waiting queue, or raises :class:`QueueFull` when
  ``max_queue`` requests already wait (the handler turns that into HTTP 429 + ``Retry-After``;
  nothing is ever dropped silently).
* The engine thread admits waiting requests into the running batch when a slot is free and either
  enough requests wait to fill the free slots or the oldest one has waited ``max_wait_ms``. Then it
  runs one decode step for the whole batch, hands each request its new text, and releases the ones
  that finished. New requests join between decode steps (iteration-level batching), so nobody waits
  for a longer neighbour to finish.
* :meth:`Ticket.cancel` (client disconnected) removes a waiting request at once, or frees a running
  request's batch row before the next decode step.
* Stopping: :meth:`Scheduler.drain` refuses new requests and fails the waiting ones at once with
  :class:`ShuttingDown` (HTTP 503 + ``Retry-After``) while the running ones go on;
  :meth:`Scheduler.abort` then ends those still running with the same error (their grace period
  is over); :meth:`Scheduler.stop` ends the engine thread.

``max_batch_size=1`` is the naive real-time server: one request at a time, start to finish.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from .config import ServeConfig
from .engine import BatchEngine, GenRequest
from .metrics import ServerMetrics

__all__ = ["Scheduler", "Ticket", "QueueFull", "EngineStopped", "ShuttingDown"]

log = logging.getLogger("tradeoffs.serve")


class QueueFull(RuntimeError):
    """The waiting queue holds ``max_queue`` requests; retry after ``retry_after`` seconds."""

    def __init__(self, depth: int, retry_after: int) -> None:
        super().__init__(
            f"the server is at capacity: {depth} requests are already waiting. Retry after "
            f"{retry_after} s, lower your request rate, or start the server with a larger --max-queue."
        )
        self.depth = depth
        self.retry_after = retry_after


class EngineStopped(RuntimeError):
    """The scheduler was stopped before the request finished."""


class ShuttingDown(EngineStopped):
    """The server is stopping: this request was refused or ended early; retrying it elsewhere, or
    once the server is back, is safe (HTTP 503 with ``Retry-After``)."""

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


_POST_LOCK = threading.Lock()  # a ticket's final event is posted once, whoever posts first wins


@dataclass(eq=False)
class Ticket:
    """A submitted request's handle on the event-loop side.

    Events arrive on :attr:`events` as tuples: ``("text", str)`` for streamed text,
    ``("done", GenRequest)`` once, or ``("error", Exception)``.
    """

    request: GenRequest
    loop: asyncio.AbstractEventLoop
    stream: bool
    arrival: float = field(default_factory=time.perf_counter)
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    admitted_at: float | None = None
    first_token_at: float | None = None
    finished_at: float | None = None
    max_batch: int = 0  # most requests decoded together with this one
    _scheduler: "Scheduler | None" = None

    closed: bool = False

    def cancel(self) -> None:
        """Withdraw the request (client went away): frees its queue place or batch row."""
        if self._scheduler is not None and not self.closed and not self.request.cancelled:
            self._scheduler.cancel(self)

    def _post(self, event: tuple) -> bool:
        """Deliver an event to the handler; after the final one (done or error) nothing more is
        delivered. Returns whether it was delivered."""
        with _POST_LOCK:
            if self.closed:
                return False
            if event[0] in ("done", "error"):
                self.closed = True
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, event)
        except RuntimeError:  # the event loop is closed: nobody is listening any more
            pass
        return True


class _Job:
    """A function to run on the engine thread, with the asyncio future its handler awaits."""

    def __init__(self, fn: Callable[[], Any], loop: asyncio.AbstractEventLoop) -> None:
        self.fn, self.loop = fn, loop
        self.future: asyncio.Future = loop.create_future()

    def run(self) -> None:
        try:
            result = self.fn()
        except BaseException as exc:  # delivered to the awaiting handler
            self._settle(_set_exception, exc)
        else:
            self._settle(_set_result, result)

    def fail(self, exc: BaseException) -> None:
        self._settle(_set_exception, exc)

    def _settle(self, how: Callable, value: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(how, self.future, value)
        except RuntimeError:  # the event loop is closed
            pass


class Scheduler:
    """Bounded queue + admission policy + the engine thread.

    Parameters
    ----------
    engine : BatchEngine
        Its ``max_batch_size`` (slots) bounds the running batch; 1 = the naive one-at-a-time server.
    max_wait_ms : float
        Longest a waiting request waits for companions before it is admitted anyway.
    max_queue : int
        Most requests that may wait; past it :meth:`submit` raises :class:`QueueFull`.
    metrics : ServerMetrics, optional
    model_id : str
        Label of the token counters.
    threads : int, optional
        Torch intra-op threads of the engine thread, set when it starts (``None``: torch's setting).

    Examples
    --------
    >>> sched = Scheduler(engine, max_wait_ms=10, max_queue=64)                      # doctest: +SKIP
    >>> sched.start()                                                               # doctest: +SKIP
    >>> ticket = sched.submit(request, loop=asyncio.get_running_loop(), stream=False) # doctest: +SKIP
    >>> kind, payload = await ticket.events.get()                                   # doctest: +SKIP
    """

    def __init__(self, engine: BatchEngine, *, max_wait_ms: float = ServeConfig.max_wait_ms,
                 max_queue: int = ServeConfig.max_queue,
                 metrics: ServerMetrics | None = None, model_id: str = "model", threads: int | None = None) -> None:
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        if max_queue < 1:
            raise ValueError(f"max_queue must be >= 1, got {max_queue}")
        self.engine = engine
        self.max_batch_size = engine.max_batch_size
        self.max_wait = float(max_wait_ms) / 1000.0
        self.max_queue = int(max_queue)
        self.metrics = metrics or ServerMetrics()
        self.metrics.max_batch_size.set(self.max_batch_size)
        self.metrics.max_queue.set(self.max_queue)
        self.model_id = model_id
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.threads = threads
        self._waiting: collections.deque[Ticket] = collections.deque()
        self._tickets: dict[int, Ticket] = {}  # id(GenRequest) -> Ticket, for running requests
        self._jobs: collections.deque[_Job] = collections.deque()
        self._current_job: _Job | None = None
        self._cancelled: list[Ticket] = []
        self._cond = threading.Condition()
        self._stopping = False
        self._draining = False
        self._stop_error: EngineStopped | None = None
        self._thread: threading.Thread | None = None
        self._latency_ewma = 1.0

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the engine thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping = self._draining = False
        self._stop_error = None
        self._thread = threading.Thread(target=self._run, name="tradeoffs-engine", daemon=True)
        self._thread.start()

    def drain(self, retry_after: int = 1) -> int:
        """Begin a shutdown: refuse new requests and fail every waiting one at once with
        :class:`ShuttingDown`; requests already running go on. Returns how many were failed."""
        error = ShuttingDown("the server is shutting down and did not start this request; retry it in a "
                             "moment (it is safe to retry: nothing was generated)", retry_after)
        with self._cond:
            self._draining = True
            waiting, jobs = list(self._waiting), list(self._jobs)
            self._waiting.clear()
            self._jobs.clear()
            self.metrics.queue_depth.set(0)
            self._cond.notify_all()
        for t in waiting:
            t._post(("error", error))
        for job in jobs:
            job.fail(error)
        return len(waiting) + len(jobs)

    def abort(self, message: str, retry_after: int = 1) -> int:
        """End the shutdown's grace: every request still waiting or running gets
        :class:`ShuttingDown` with ``message`` now, and the engine thread stops after its current
        step. Returns how many requests were ended."""
        error = ShuttingDown(message, retry_after)
        with self._cond:
            self._draining = self._stopping = True
            self._stop_error = error
            self._cond.notify_all()
        return self._fail_pending(error)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the engine thread (waiting at most ``timeout`` s for its current step); requests
        still waiting or running get an :class:`EngineStopped` error."""
        with self._cond:
            self._draining = self._stopping = True
            if self._stop_error is None:
                self._stop_error = ShuttingDown("the server is shutting down; retry against a running server")
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        self._fail_pending(self._stop_error)

    def _fail_pending(self, error: EngineStopped) -> int:
        with self._cond:
            # list() of a dict is atomic under the GIL, even while the engine thread edits it
            pending = list(self._waiting) + list(self._tickets.values())
            jobs = list(self._jobs) + ([self._current_job] if self._current_job is not None else [])
            self._waiting.clear()
            self._jobs.clear()
            if not self.alive or threading.current_thread() is self._thread:  # no step is running
                self._tickets.clear()
        failed = sum(t._post(("error", error)) for t in pending)
        for job in jobs:
            job.fail(error)
        return failed

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def draining(self) -> bool:
        """True once a shutdown began: no new requests are taken."""
        return self._draining

    @property
    def in_flight(self) -> int:
        """Requests waiting or running, and embedding jobs not yet finished."""
        return (len(self._waiting) + len(self._tickets) + len(self._jobs)
                + (self._current_job is not None))

    @property
    def queue_depth(self) -> int:
        return len(self._waiting)

    @property
    def running(self) -> int:
        return self.engine.batch_size

    # ------------------------------------------------------------------ event-loop side
    def submit(self, request: GenRequest, loop: asyncio.AbstractEventLoop, stream: bool = False) -> Ticket:
        """Queue a request. Raises :class:`QueueFull` past ``max_queue`` waiting requests."""
        ticket = Ticket(request=request, loop=loop, stream=stream, _scheduler=self)
        with self._cond:
            self._admit_or_raise(len(self._waiting))
            self._waiting.append(ticket)
            self.metrics.queue_depth.set(len(self._waiting))
            self._cond.notify_all()
        return ticket

    def _admit_or_raise(self, queued: int) -> None:
        """Refuse new work (holding ``_cond``): a draining server, a stopped engine, or a full queue."""
        if self._draining:
            raise ShuttingDown("the server is shutting down and takes no new requests; retry it in a "
                               "moment (against another replica, or once the server is back)")
        if self._stopping or not self.alive:
            raise EngineStopped("the engine is not running; restart the server")
        if queued >= self.max_queue:
            self.metrics.rejected.inc()
            raise QueueFull(queued, self.retry_after())

    def retry_after(self) -> int:
        """Seconds a rejected client should wait: about one recent request latency per full batch
        queued ahead of it, at least 1."""
        batches_ahead = max(1.0, len(self._waiting) / self.max_batch_size)
        return max(1, math.ceil(self._latency_ewma * min(batches_ahead, 4.0)))

    def cancel(self, ticket: Ticket) -> None:
        with self._cond:
            try:
                self._waiting.remove(ticket)
                self.metrics.queue_depth.set(len(self._waiting))
                removed = True
            except ValueError:
                removed = False
            ticket.request.cancelled = True
            if not removed:
                self._cancelled.append(ticket)
            self._cond.notify_all()
        self.metrics.cancelled.inc()

    def run_job(self, fn: Callable[[], Any], loop: asyncio.AbstractEventLoop) -> asyncio.Future:
        """Run ``fn`` on the engine thread between decode steps; returns an asyncio future."""
        job = _Job(fn, loop)
        with self._cond:
            self._admit_or_raise(len(self._jobs))
            self._jobs.append(job)
            self._cond.notify_all()
        return job.future

    # ------------------------------------------------------------------ engine thread
    def _run(self) -> None:
        import torch

        torch.set_grad_enabled(False)
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        try:
            while True:
                try:
                    if not self._iteration():
                        return
                except Exception as exc:  # a bug or an out-of-memory: fail the batch, keep serving
                    log.exception("engine step failed; failing the running batch")
                    self._fail_running(exc)
        finally:  # stopping: nobody may be left waiting for an answer (e.g. one admitted just now)
            self._fail_pending(self._stop_error or EngineStopped("the engine stopped; restart the server"))

    def _iteration(self) -> bool:
        with self._cond:
            while True:
                if self._stopping:
                    return False
                if self._cancelled:
                    break
                if self._jobs:
                    break
                admit_now, wait_for = self._admission(time.perf_counter())
                if admit_now or self.engine.running:
                    break
                self._cond.wait(timeout=wait_for)
            cancelled, self._cancelled = self._cancelled, []
            jobs = list(self._jobs)
            self._jobs.clear()
            admit = self._take(time.perf_counter())
        if cancelled:
            self._drop([t.request for t in cancelled])
        for job in jobs:
            self._current_job = job
            try:
                job.run()
            finally:
                self._current_job = None
        if admit:
            self._admit(admit)
        if self.engine.running:
            self._step()
        return True

    def _admission(self, now: float) -> tuple[bool, float | None]:
        """Whether to admit waiting requests now; else how long to sleep (None = until notified)."""
        free = self.engine.free_slots
        if free <= 0 or not self._waiting:
            return False, None
        waited = now - self._waiting[0].arrival
        if len(self._waiting) >= free or waited >= self.max_wait:
            return True, 0.0
        return False, self.max_wait - waited

    def _take(self, now: float) -> list[Ticket]:
        admit_now, _ = self._admission(now)
        if not admit_now:
            return []
        free = self.engine.free_slots
        taken = [self._waiting.popleft() for _ in range(min(free, len(self._waiting)))]
        self.metrics.queue_depth.set(len(self._waiting))
        return taken

    def _admit(self, tickets: Sequence[Ticket]) -> None:
        tickets = [t for t in tickets if not t.request.cancelled]  # cancelled while being taken
        if not tickets:
            return
        now = time.perf_counter()
        for t in tickets:
            t.admitted_at = now
            self.metrics.queue_seconds.observe(now - t.arrival)
            self._tickets[id(t.request)] = t
        try:
            self.engine.admit([t.request for t in tickets])
        except Exception as exc:  # e.g. a prompt the engine cannot hold: fail these, keep serving
            for t in tickets:
                self._tickets.pop(id(t.request), None)
                t._post(("error", exc))
            log.exception("could not admit %d requests", len(tickets))
            return
        self.metrics.admitted_batch.observe(len(tickets))
        self.metrics.prompt_tokens.labels(self.model_id).inc(sum(t.request.prompt_tokens for t in tickets))

    def _step(self) -> None:
        t0 = time.perf_counter()
        batch = self.engine.batch_size
        before = dict(self.engine.stats)
        emitted, done = self.engine.step()
        self.metrics.step_seconds.observe(time.perf_counter() - t0)
        self.metrics.batch_size_hist.observe(batch)
        self.metrics.step_tokens.observe(self.engine.stats["step_tokens"] - before["step_tokens"])
        reused = self.engine.stats["prefix_tokens_reused"] - before["prefix_tokens_reused"]
        if reused:
            self.metrics.prefix_tokens.inc(reused)
        self._deliver(emitted, done, batch)

    def _deliver(self, emitted: Sequence[GenRequest], done: Sequence[GenRequest], batch: int) -> None:
        now = time.perf_counter()
        self.metrics.completion_tokens.labels(self.model_id).inc(len(emitted))
        for r in emitted:
            t = self._tickets.get(id(r))
            if t is None:
                continue
            t.max_batch = max(t.max_batch, batch)
            if t.first_token_at is None:
                t.first_token_at = now
                self.metrics.ttft_seconds.observe(now - t.arrival)
            if t.stream and r.stream is not None:
                piece = r.stream.take(final=r.finished)
                if piece:
                    t._post(("text", piece))
        for r in done:
            t = self._tickets.pop(id(r), None)
            if t is None:
                continue
            t.finished_at = now
            latency = now - t.arrival
            self._latency_ewma = 0.8 * self._latency_ewma + 0.2 * latency
            self.metrics.latency_seconds.labels("chat").observe(latency)
            t._post(("done", r))
        if done:
            self.engine.release(done)
        self.metrics.running.set(self.engine.batch_size)

    def _drop(self, requests: Sequence[GenRequest]) -> None:
        for r in requests:
            self._tickets.pop(id(r), None)
        self.engine.release(requests)
        self.metrics.running.set(self.engine.batch_size)

    def _fail_running(self, exc: Exception) -> None:
        dropped = self.engine.cancel_all()
        for r in dropped:
            t = self._tickets.pop(id(r), None)
            if t is not None:
                t._post(("error", exc))
        self.metrics.running.set(0)


def _set_result(fut: asyncio.Future, value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


def _set_exception(fut: asyncio.Future, exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)
