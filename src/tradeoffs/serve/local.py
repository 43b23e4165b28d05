"""Start the kit's server from a notebook or a test, and always stop it.

The server runs in a **subprocess** (its own Python, its own torch threads), exactly as a separate
inference service would; the notebook talks to it over HTTP with the official ``openai`` client.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Sequence

from ..threads import SERVE_ENV
from .config import GRACE_PERIOD_S, ServeConfig

__all__ = ["LocalServer", "ServerStartError", "free_port", "GRACE_PERIOD_S"]



class ServerStartError(RuntimeError):
    """The server process exited or did not become healthy in time; the message holds its log."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now.

    Examples
    --------
    >>> 0 < free_port() < 65536
    True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the server gets SIGTERM if the process that started it dies (a killed kernel or test
    run must not leave a server holding the CPU). Other systems rely on :meth:`LocalServer.stop`
    and the ``atexit`` hook."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class LocalServer:
    """Context manager: the kit's OpenAI-compatible server on a free local port.

    Entering starts ``tradeoffs serve`` in a subprocess, waits until ``GET /health`` answers 200 and
    returns the ``base_url`` to give the ``openai`` client. Leaving (normally, on an exception or
    on ``KeyboardInterrupt``) stops the process: SIGTERM (the server's bounded graceful stop: see
    :mod:`tradeoffs.serve.shutdown`), then SIGKILL if it is still there after ``stop_timeout``. When
    the server fails to start, :class:`ServerStartError` carries the end of its log.

    Parameters
    ----------
    config : ServeConfig, optional
        The server's configuration (default: ``ServeConfig(log_level="warning")``).
    **fields
        Any :class:`~tradeoffs.serve.config.ServeConfig` field, replacing the config's value: the
        batching policy (``max_batch_size``, ``max_wait_ms``, ``max_queue``), ``threads``,
        ``grace_period`` (seconds running requests get when the server stops; queued ones are
        refused at once with a retryable 503), ``embedder=False`` (chat only: ``/v1/embeddings``
        answers 404 and the server starts seconds sooner), ...
    port : int, optional
        Default: a free port.
    startup_timeout : float
        Seconds to wait for ``/health``.
    stop_timeout : float, optional
        Seconds to wait after SIGTERM before SIGKILL (default: ``grace_period`` + 5).
    extra_args : sequence of str
        More ``tradeoffs serve`` options, e.g. ``["--max-body-bytes", "4096"]``.
    env : dict, optional
        Extra environment variables for the server process.

    Attributes
    ----------
    base_url : str
        ``http://host:port/v1``, what ``openai.OpenAI(base_url=...)`` wants.
    url : str
        ``http://host:port`` (``/health`` and ``/metrics`` live here).
    log_path : pathlib.Path
        The server's combined stdout and stderr.

    Examples
    --------
    >>> from openai import OpenAI
    >>> with LocalServer(max_batch_size=8) as base_url:                    # doctest: +SKIP
    ...     client = OpenAI(base_url=base_url, api_key="local")
    ...     reply = client.chat.completions.create(
    ...         model="smollm2-135m-instruct", max_tokens=16,
    ...         messages=[{"role": "user", "content": "Say hi"}])
    """

    def __init__(self, config: ServeConfig | None = None, *, port: int | None = None, startup_timeout: float = 180.0,
                 stop_timeout: float | None = None, extra_args: Sequence[str] = (), env: dict | None = None,
                 **fields: Any) -> None:
        base = config or ServeConfig(log_level="warning")
        self.config = dataclasses.replace(base, **fields)  # a bad value raises ValueError naming the flag
        self.host, self.port = self.config.host, port
        self.startup_timeout = float(startup_timeout)
        self.stop_timeout = float(stop_timeout) if stop_timeout is not None else self.config.grace_period + 5.0
        self.extra_args = list(extra_args)
        self.env = dict(env or {})
        self.process: subprocess.Popen | None = None
        self.log_path: Path | None = None
        self._log_file = None

    # ------------------------------------------------------------------ urls
    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the server has not been started; use `with LocalServer() as base_url:`")
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def command(self) -> list[str]:
        """The command line that starts the server: ``tradeoffs serve`` with every field of :attr:`config`."""
        config = dataclasses.replace(self.config, port=self.port if self.port is not None else self.config.port)
        return [sys.executable, "-m", "tradeoffs.cli", "serve", *config.cli_args(), *self.extra_args]

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> str:
        """Start the server and wait until it is healthy; returns :attr:`base_url`."""
        if self.running:
            return self.base_url
        pick_port = self.port is None
        for attempt in range(3):
            try:
                self._launch()
                self._wait_healthy()
                break
            except ServerStartError as exc:
                self.stop()
                # another process took the free port between our check and the server's bind
                if pick_port and attempt < 2 and "address already in use" in str(exc).lower():
                    self.port = None
                    continue
                raise
            except BaseException:  # includes KeyboardInterrupt while waiting: never leave a server behind
                self.stop()
                raise
        atexit.register(self.stop)
        return self.base_url

    def _launch(self) -> None:
        if self.port is None:
            self.port = free_port(self.host)
        fd, path = tempfile.mkstemp(prefix=f"tradeoffs-serve-{self.port}-", suffix=".log")
        os.close(fd)
        self.log_path = Path(path)
        self._log_file = open(self.log_path, "wb")
        env = {**SERVE_ENV, **os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        self.process = subprocess.Popen(self.command(), stdout=self._log_file, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, env=env, start_new_session=True,
                                        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise ServerStartError(f"the server exited with code {code} before it was ready.\n"
                                       f"--- server log ({self.log_path}) ---\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.25)
        raise ServerStartError(f"the server did not answer {self.url}/health within {self.startup_timeout:.0f} s.\n"
                               f"--- server log ({self.log_path}) ---\n{self.log_tail()}")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL). Safe to call twice."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait(5)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)

    def log_tail(self, n_chars: int = 4000) -> str:
        """The last characters of the server's log."""
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        if self._log_file is not None:
            self._log_file.flush()
        text = self.log_path.read_text(errors="replace")
        return text[-n_chars:] or "(empty log)"

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        where = self.url if self.port is not None else "no port yet"
        policy = {k: getattr(self.config, k) for k in ("max_batch_size", "max_wait_ms", "max_queue")}
        return f"LocalServer({where}, {state}, {policy})"
