"""A running server's own service curves, for the simulator: lab 4's what-ifs on each server.

Section 2 of lab 4 times the model inside the notebook and section 6 scales those curves to the live
server. This module measures the curves on the server itself, from the outside, with the same load
generator the notebook uses (:func:`tradeoffs.loadtest.closed_loop`): a few short closed loops at
increasing concurrency, one request or two per client.

* :func:`curves_from_closed_loops` turns the per-request outcomes of those runs into the two
  :class:`tradeoffs.queueing.ServiceCurve` s that ``queueing.Continuous`` needs: seconds per decode step
  by batch size, and seconds per prefill by the number of prompts admitted together.
* :func:`measure_server_curves` runs the closed loops against a server and returns the outcomes with
  the curves (:class:`ServerCurves`).

Examples
--------
>>> frame = pd.DataFrame({"clients": [1, 2, 2], "latency": [1.1, 1.5, 1.7], "ttft": [0.2, 0.3, 0.3],
...                       "completion_tokens": [10, 10, 10]})
>>> step, prefill = curves_from_closed_loops(frame)
>>> round(step.mean(1), 3), round(step.mean(2), 3), round(prefill.mean(1), 3), round(prefill.mean(4), 3)
(0.1, 0.144, 0.2, 0.8)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from . import loadtest
from .queueing import ServiceCurve

__all__ = ["ServerCurves", "curves_from_closed_loops", "measure_server_curves"]

COLUMNS = ("clients", "latency", "ttft", "completion_tokens")


def curves_from_closed_loops(frame: pd.DataFrame) -> tuple[ServiceCurve, ServiceCurve]:
    """The (decode step, prefill) curves of a server, from closed loops run at several concurrencies.

    * **Decode step at batch c**: the median over the requests of the run with ``c`` clients of
      ``(latency - ttft) / (completion_tokens - 1)``, the time per token after the first. Requests of
      one token have no such time and are left out. With ``c`` clients sending back to back, about
      ``c`` requests decode together, and a step also carries its share of the prefills of requests
      admitted meanwhile (as it does on the live server).
    * **Prefill at batch 1**: the median time to first token of the 1-client run (HTTP, tokenisation
      and the prompt's forward pass). Prefill of ``b`` prompts admitted together is **modelled** as
      ``b`` times that: on a CPU a prefill is compute-bound, so prompts read together take about as
      long as read one after the other. That part is a model, not a measurement.

    Parameters
    ----------
    frame : DataFrame
        One row per request (e.g. :func:`tradeoffs.loadtest.outcomes_frame` of each run, with the run's
        number of clients added): ``clients`` (int >= 1), ``latency`` and ``ttft`` (seconds, positive,
        ``ttft <= latency``) and ``completion_tokens`` (>= 1). It must hold a 1-client run and at least
        two concurrencies.

    Returns
    -------
    (step, prefill) : ServiceCurve, ServiceCurve
        Seconds per decode step at each measured concurrency, and seconds per prefill at the same batch
        sizes (``b x`` the 1-client time to first token).

    Raises
    ------
    ValueError
        When a column is missing, a value is missing, not finite or not positive, ``ttft`` exceeds
        ``latency``, there is no 1-client run or only one concurrency, or a concurrency has no
        request longer than one token.

    Examples
    --------
    >>> frame = pd.DataFrame({"clients": [1, 4, 4], "latency": [0.9, 1.6, 1.8], "ttft": [0.1, 0.4, 0.2],
    ...                       "completion_tokens": [9, 9, 1]})
    >>> step, prefill = curves_from_closed_loops(frame)
    >>> step.batch_sizes.tolist(), step.seconds.round(3).tolist(), prefill.seconds.round(3).tolist()
    ([1.0, 4.0], [0.1, 0.15], [0.1, 0.4])
    """
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"frame must be a pandas DataFrame of requests, got {type(frame).__name__}")
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks column(s) {missing}; it needs one row per request with {list(COLUMNS)} "
                         f"(loadtest.outcomes_frame of each run, plus the run's number of clients); "
                         f"it has {list(frame.columns)}")
    if frame.empty:
        raise ValueError("frame has no requests: run closed loops at a few concurrencies first")
    values = frame[list(COLUMNS)].apply(pd.to_numeric, errors="coerce").astype(float)
    bad = values.columns[(~np.isfinite(values) | (values <= 0)).any()].tolist()
    if bad:
        raise ValueError(f"column(s) {bad} hold missing, infinite or non-positive values; keep only requests that "
                         f"succeeded (ok == True) and check the run's clients, seconds and token counts")
    if (values["clients"] != values["clients"].round()).any():
        raise ValueError(f"clients must be whole numbers of clients, got {sorted(values['clients'].unique())}")
    if (values["completion_tokens"] != values["completion_tokens"].round()).any():
        raise ValueError("completion_tokens must be whole numbers of tokens")
    if (values["ttft"] > values["latency"]).any():
        raise ValueError("a request's ttft exceeds its latency: the first token cannot come after the last; "
                         "check that both columns are seconds from the same send time")
    concurrencies = sorted(int(c) for c in values["clients"].unique())
    if 1 not in concurrencies:
        raise ValueError(f"frame has no 1-client run (concurrencies {concurrencies}): the prefill is read from "
                         f"requests sent alone; add clients=1")
    if len(concurrencies) < 2:
        raise ValueError("frame holds one concurrency only: a curve needs at least two (e.g. clients 1 and 4)")
    longer = values[values["completion_tokens"] > 1]
    per_token = (longer["latency"] - longer["ttft"]) / (longer["completion_tokens"] - 1)
    steps = []
    for c in concurrencies:
        times = per_token[longer["clients"] == c]
        if times.empty:
            raise ValueError(f"the {c}-client run has no request longer than one token, so no decode step: "
                             f"raise max_tokens (at least 2) or use prompts whose answers are longer")
        steps.append(float(times.median()))
    if min(steps) <= 0:
        raise ValueError("a decode step came out as 0 s (latency == ttft on every request of a run): "
                         "the timings are too coarse; use longer completions")
    prefill_1 = float(values.loc[values["clients"] == 1, "ttft"].median())
    step = ServiceCurve(concurrencies, steps)
    prefill = ServiceCurve(concurrencies, [c * prefill_1 for c in concurrencies])
    return step, prefill


@dataclass(frozen=True)
class ServerCurves:
    """What :func:`measure_server_curves` measured on one server.

    Attributes
    ----------
    outcomes : DataFrame
        One row per request (:func:`tradeoffs.loadtest.outcomes_frame`), with its run's ``clients``.
    step, prefill : ServiceCurve
        Seconds per decode step and per prefill by batch size (:func:`curves_from_closed_loops`).
    """

    outcomes: pd.DataFrame
    step: ServiceCurve
    prefill: ServiceCurve

    def table(self) -> pd.DataFrame:
        """The curves' points: one row per concurrency, ``step_s`` and ``prefill_s``.

        Examples
        --------
        >>> t = ServerCurves(pd.DataFrame(), ServiceCurve([1, 2], [0.1, 0.12]), ServiceCurve([1, 2], [0.2, 0.4])).table()
        >>> t.to_dict("index")
        {1: {'step_s': 0.1, 'prefill_s': 0.2}, 2: {'step_s': 0.12, 'prefill_s': 0.4}}
        """
        return pd.DataFrame({"step_s": self.step.seconds, "prefill_s": self.prefill.seconds},
                            index=pd.Index(self.step.batch_sizes.astype(int), name="clients"))


def measure_server_curves(base_url: str, model: str, prompts: Sequence[Any], *,
                          concurrencies: Sequence[int] = (1, 4, 16), per_client: int = 1, max_tokens: int = 16,
                          timeout: float = 300.0) -> ServerCurves:
    """Measure a running server's decode-step and prefill curves with short closed loops.

    At each concurrency ``c``, :func:`tradeoffs.loadtest.closed_loop` runs ``c`` clients that send
    ``per_client`` requests each, back to back; the outcomes go to :func:`curves_from_closed_loops`.
    Keep the runs short (a few concurrencies, one or two requests per client) and the concurrencies at
    or below the server's batch limit: above it, requests queue and the run measures the largest batch.
    Warm the server up first (its first request is slow).

    Parameters
    ----------
    base_url : str
        The server's OpenAI-compatible base URL (``.../v1``).
    model : str
        Model id sent in every request.
    prompts : sequence
        Requests to send (strings, chat messages or request dicts, as ``closed_loop`` takes them).
    concurrencies : sequence of int
        Numbers of clients, one closed loop each; must include 1 and at least one other.
    per_client : int
        Requests each client sends in each run.
    max_tokens : int
        Completion cap of a request (at least 2: a decode step needs a second token).
    timeout : float
        Seconds before a request counts as failed.

    Returns
    -------
    ServerCurves
        The outcomes (with ``clients``) and the two curves.

    Raises
    ------
    ValueError
        On concurrencies without 1 or with fewer than two distinct values, ``per_client < 1`` or
        ``max_tokens < 2``.
    RuntimeError
        When a request fails (its status is in the message).

    Examples
    --------
    >>> from tradeoffs.serve import LocalServer
    >>> with LocalServer(max_batch_size=8) as url:                                # doctest: +SKIP
    ...     curves = measure_server_curves(url, "HuggingFaceTB/SmolLM2-135M-Instruct", ["Say hi"],
    ...                                    concurrencies=(1, 4), max_tokens=8)
    >>> curves.table()                                                            # doctest: +SKIP
    """
    levels = sorted({int(c) for c in concurrencies})
    if 1 not in levels or len(levels) < 2 or levels[0] < 1:
        raise ValueError(f"concurrencies must include 1 and at least one more number of clients >= 1, "
                         f"e.g. (1, 4, 16); got {list(concurrencies)}")
    if per_client < 1:
        raise ValueError(f"per_client must be >= 1 request per client, got {per_client}")
    if max_tokens < 2:
        raise ValueError(f"max_tokens must be >= 2 (a decode step is the time between tokens), got {max_tokens}")
    if not prompts:
        raise ValueError("prompts is empty: give at least one request to send")
    frames = []
    for c in levels:
        outs, _ = loadtest.run(loadtest.closed_loop(base_url, model, list(prompts), clients=c, per_client=per_client,
                                                    max_tokens=max_tokens, timeout=timeout))
        frame = loadtest.outcomes_frame(outs).assign(clients=c)
        if not frame["ok"].all():
            raise RuntimeError(f"{int((~frame['ok']).sum())} of {len(frame)} requests failed at {c} clients "
                               f"(status {sorted(set(frame.loc[~frame['ok'], 'status']))}); check the server's log")
        frames.append(frame)
    outcomes = pd.concat(frames, ignore_index=True)
    step, prefill = curves_from_closed_loops(outcomes)
    return ServerCurves(outcomes, step, prefill)
