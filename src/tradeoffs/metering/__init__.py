"""Meter every LLM call: who made it, for which feature, with which prompt, what it cost and how long it took.

The article's advice for the build-vs-buy decision is to *instrument every call from day one*: cost,
latency and feature attribution, so that the decision to switch is made with numbers. This module does
that around the official ``openai`` client, for OpenAI itself and for any OpenAI-compatible server
(the kit's own :mod:`tradeoffs.serve`, vLLM, SGLang, llama.cpp's server...).

* :class:`Ledger` — an SQLite file in WAL mode. One transaction per record; any number of threads
  and processes may write at once (SQLite serialises the writers; a busy timeout makes them wait, not
  fail); a process killed mid-run leaves every committed record readable. Records are validated
  before they are written, and malformed ones are refused with a :class:`LedgerRecordError` that says
  which field is wrong.
* :class:`MeteredClient` / :class:`AsyncMeteredClient` — drop-in wrappers: call
  ``metered.chat.completions.create(..., tenant=, feature=, template_id=)`` exactly like the openai
  client. Each attempt (retries included) becomes one ledger row with timestamp, tenant, feature,
  prompt template, model, endpoint, input/output/cached tokens (from ``usage``), latency, time to
  first token when streaming, status, error and cost.
* Queries over the ledger returning pandas: :func:`latency_by_feature` and :func:`budget_burndown`.
  Attributing the cost to tenants, features and templates is lab 1's graded work (the learner writes
  that query); the kit does not ship it.
* Replaying the kit's traffic trace through a client: :data:`SUPPORT_TEMPLATES`,
  :func:`trace_requests`, :func:`replay`.

Modules: :mod:`.ledger` (the SQLite ledger and record validation), :mod:`.client` (the metered
clients and their pricing), :mod:`.reports` (queries over the ledger), :mod:`.replay` (the trace).

Examples
--------
>>> import tempfile, os
>>> ledger = Ledger(os.path.join(tempfile.mkdtemp(), "calls.db"))
>>> _ = ledger.record(dict(tenant="acme", feature="summarise", template_id="summarise/v1",
...                        model="gpt-4o-mini", endpoint="https://api.openai.com/v1/",
...                        input_tokens=120, output_tokens=30, latency_s=0.8, cost_usd=3.6e-05))
>>> len(ledger), ledger.frame()["cost_usd"].sum()
(1, np.float64(3.6e-05))
"""

from __future__ import annotations

from .client import AsyncMeteredClient, AsyncMeteredStream, MeteredClient, MeteredStream
from .ledger import COLUMNS, REQUIRED, STATUSES, Ledger, LedgerError, LedgerRecordError, validate_record
from .replay import SUPPORT_TEMPLATES, ReplayResult, replay, support_messages, trace_requests
from .reports import budget_burndown, latency_by_feature

__all__ = [
    "LedgerRecordError", "LedgerError", "Ledger", "COLUMNS", "REQUIRED", "STATUSES", "validate_record",
    "MeteredClient", "AsyncMeteredClient", "MeteredStream", "AsyncMeteredStream",
    "latency_by_feature", "budget_burndown",
    "SUPPORT_TEMPLATES", "support_messages", "trace_requests", "replay", "ReplayResult",
]
