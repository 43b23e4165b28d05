"""The model side of the server: continuous (iteration-level) batching over one causal LM.

How a step works
----------------
:class:`BatchEngine` keeps one **slot** per running request in a preallocated KV cache (one
``(slots, kv_heads, capacity, head_dim)`` tensor per layer for keys, one for values). Each call to
:meth:`BatchEngine.step` runs **one forward pass over a packed row of tokens**:

* one token for every request that is decoding, and
* a chunk of the prompt of every request that is still being prefilled (at most
  ``max_step_tokens`` tokens in all: *chunked prefill*, so a long prompt never stalls the
  decoders for long).

The big matrix multiplies (projections, MLP) therefore see all those tokens at once, which is what
makes batching pay on a CPU: prompt tokens and decode tokens share the same weight reads. Attention
is the only part that must keep requests apart; the step plan's :meth:`_StepPlan.attend` does it per
request, against that request's own slot, with no padding: decode tokens in one batched call, each
prompt chunk causally against its own cache. New tokens' keys and values are written into the slots
in place (no concatenation per step).

Between steps the scheduler may :meth:`~BatchEngine.admit` new requests into free slots and
:meth:`~BatchEngine.release` finished or cancelled ones, so a short request leaves as soon as its
last token is out and never waits for a longer neighbour — *continuous* batching rather than a
static batch that runs until its longest member finishes (Yu et al., "Orca: A Distributed Serving
System for Transformer-Based Generative Models", OSDI 2022,
https://www.usenix.org/conference/osdi22/presentation/yu). Chunked prefill mixed with decode is the
scheduling of Agrawal et al., "Sarathi-Serve", OSDI 2024, https://arxiv.org/abs/2403.02310.

The native step
---------------
Steps of up to :attr:`BatchEngine.native_rows` tokens (every decode step of a busy server, and
prompt chunks beside them) run in C instead (:mod:`.native`, built from ``decode.c`` at start-up
with the system's C compiler): the same computation, one parallel region per step. It is checked
against this module's PyTorch step when the engine starts (a prompt step and a decode step), and
where it cannot be built the PyTorch step runs (:attr:`BatchEngine.native` is ``None`` then, and
the log says why). Longer steps run the PyTorch step, whose matrix kernels are as fast there, except
in bfloat16, where prompt chunks are cut to fit (see below).

Prefix cache
------------
Requests that start with the same tokens (the chat template's system prompt, a shared instruction)
reuse the keys and values of that prefix: once two prompts share at least ``min_prefix_tokens``
leading tokens, that prefix's cache is kept (LRU, a few entries) and copied into the slot of every
later request that starts with it, which then prefills only the rest. Keys and values of a prefix do
not depend on what follows it (causal attention), so the result is the same computation.

Why results can differ (slightly) between a request alone and inside a batch
--------------------------------------------------------------------------------
Each request attends only to its own tokens, so nothing leaks between requests. Numerically,
though, the matrix kernels pick other blockings and summation orders for 1 row than for 100, so
logits differ in the last bits (about 1e-5), which flips a greedy choice only when the top two
tokens are nearly tied. This is *batch non-invariance*; lab 4 measures it and the tests pin the
tolerance. The native step is itself batch-invariant (each row's sums run in the same order
whatever the batch). In bfloat16 it and the PyTorch step differ by 1-2% of the logits' range, so
there the engine keeps every step native (:attr:`BatchEngine.step_tokens`) and a request's tokens
are the same alone and in any batch; in float32 a step longer than :attr:`BatchEngine.native_rows`
runs in PyTorch, where the two agree to about 1e-6.
"""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from .config import ServeConfig
from .llama import PackedLlama
from .native import NativeDecoder, NativeUnavailable
from .sampling import SamplingParams, TextStream, sample_token

__all__ = ["SamplingParams", "GenRequest", "BatchEngine", "TextStream", "sample_token", "estimate_cache_bytes"]

#: Most rows a step runs natively, by dtype (see :attr:`BatchEngine.native_rows`).
NATIVE_ROWS = {torch.bfloat16: 96, torch.float32: 24}

log = logging.getLogger("tradeoffs.serve")


@dataclass(eq=False)
class GenRequest:
    """One chat completion as the engine sees it.

    Attributes
    ----------
    prompt_ids : list of int
        The chat-templated prompt, tokenized.
    params : SamplingParams
    output_ids : list of int
        Generated tokens so far.
    cached : int
        Tokens of this request whose keys and values are in its slot.
    prefix_hit : int
        Prompt tokens taken from the prefix cache instead of computed.
    finish_reason : str or None
        ``"stop"`` (end-of-turn token or a stop string) or ``"length"`` (``max_tokens`` or the
        context window) once finished.
    """

    prompt_ids: list[int]
    params: SamplingParams
    tokenizer: Any = None
    output_ids: list[int] = field(default_factory=list)
    finish_reason: str | None = None
    cancelled: bool = False
    cached: int = 0
    prefix_hit: int = 0
    stream: TextStream | None = None
    generator: torch.Generator | None = None

    def __post_init__(self) -> None:
        if not self.prompt_ids:
            raise ValueError("prompt_ids is empty; a request needs at least one prompt token")
        if self.tokenizer is not None and self.stream is None:
            self.stream = TextStream(self.tokenizer, self.params.stop)
        if not self.params.greedy:
            self.generator = torch.Generator(device="cpu")
            if self.params.seed is not None:
                self.generator.manual_seed(int(self.params.seed) % 2**64)
            else:
                self.generator.seed()

    @property
    def prompt_tokens(self) -> int:
        return len(self.prompt_ids)

    @property
    def completion_tokens(self) -> int:
        return len(self.output_ids)

    @property
    def prefilling(self) -> bool:
        return self.cached < self.prompt_tokens

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None


class _StepPlan:
    """Where each packed token goes: built once per step, used by every layer's attention."""

    def __init__(self, engine: "BatchEngine", n_tokens: int) -> None:
        self.keys, self.values = engine._keys, engine._values
        self.n_tokens = n_tokens
        self.batch = 0  # slots [0, batch) are in use
        self.dec_slots: torch.Tensor | None = None  # slots that decode one token this step
        self.dec_pos: torch.Tensor | None = None  # cache column of their new token
        self.dec_mask: torch.Tensor | None = None  # (batch, 1, 1, width) which columns each slot sees
        self.dec_all = False  # every slot in [0, batch) decodes, in slot order
        self.width = 0
        self.segments: list[tuple[int, int, int, int, torch.Tensor | None]] = []  # slot, start, n, c0, mask
        self._dec_rows: torch.Tensor | None = None  # rows of a (slots * kv_heads * columns, dim) cache view

    def attend(self, layer: int, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """Write this layer's new keys/values into the slots, then attend per request.

        Decode tokens come first in the packed row (positions ``[0, n_dec)``, in slot order), then
        the prompt chunks.
        """
        sdpa = torch.nn.functional.scaled_dot_product_attention
        K, V = self.keys[layer], self.values[layer]
        k, v = key[0], value[0]  # (kv_heads, n_tokens, head_dim)
        heads, kv_heads, dim = query.shape[1], key.shape[1], query.shape[-1]
        rep = heads // kv_heads
        n_dec = 0 if self.dec_slots is None else int(self.dec_slots.numel())
        if n_dec:
            # One row copy per (slot, kv head) into the flattened cache: the same writes as
            # K[dec_slots, :, dec_pos] = ..., without advanced indexing's general (and, for a batch
            # of 16, ten times slower) path.
            if self._dec_rows is None:
                per_head = torch.arange(kv_heads, device=K.device)
                self._dec_rows = ((self.dec_slots[:, None] * kv_heads + per_head) * K.shape[2]
                                  + self.dec_pos[:, None]).reshape(-1)
            K.view(-1, dim).index_copy_(0, self._dec_rows, k[:, :n_dec].transpose(0, 1).reshape(-1, dim))
            V.view(-1, dim).index_copy_(0, self._dec_rows, v[:, :n_dec].transpose(0, 1).reshape(-1, dim))
        for slot, start, n, c0, _ in self.segments:
            K[slot, :, c0:c0 + n] = k[:, start:start + n]
            V[slot, :, c0:c0 + n] = v[:, start:start + n]
        dec_out = None
        if n_dec:
            q = query[0, :, :n_dec].transpose(0, 1)  # (n_dec, heads, dim)
            if not self.dec_all:
                full = q.new_zeros((self.batch, heads, dim))
                full[self.dec_slots] = q
                q = full
            # GQA without copying keys: the `rep` query heads of one kv head act as `rep` queries.
            q = q.reshape(self.batch, kv_heads, rep, dim)
            o = sdpa(q, K[:self.batch, :, :self.width], V[:self.batch, :, :self.width],
                     attn_mask=self.dec_mask)
            dec_out = o.reshape(self.batch, heads, dim)
            if not self.dec_all:
                dec_out = dec_out[self.dec_slots]
            if not self.segments:
                return dec_out.unsqueeze(0)
        out = query.new_empty((1, self.n_tokens, heads, dim))
        if dec_out is not None:
            out[0, :n_dec] = dec_out
        for slot, start, n, c0, mask in self.segments:
            q = query[:, :, start:start + n]
            o = sdpa(q, K[slot:slot + 1, :, :c0 + n], V[slot:slot + 1, :, :c0 + n], attn_mask=mask,
                     is_causal=mask is None, enable_gqa=True)
            out[0, start:start + n] = o[0].transpose(0, 1)
        return out


class BatchEngine:
    """Continuous batching with chunked prefill over a Hugging Face Llama-family causal LM.

    Parameters
    ----------
    model : transformers.PreTrainedModel
        A Llama-family causal LM (Llama, SmolLM2, Mistral, Qwen2), run by :class:`~.llama.PackedLlama`
        (q/k/v and gate/up weights fused in place; the model still works with ``generate()``). Its
        dtype is the engine's: keys and values are cached in it too.
    eos_token_ids : sequence of int
        Tokens that end a reply (finish reason ``"stop"``).
    context_length : int
        Prompt plus generated tokens may not exceed this.
    max_batch_size : int
        Slots in the KV cache: most requests running at once.
    max_step_tokens : int
        Most tokens in one forward pass (decode tokens + prompt chunks).
    prefix_cache : bool
        Reuse the keys and values of shared prompt prefixes.
    min_prefix_tokens : int
        Shortest shared prefix worth keeping.
    compile : bool
        Compile the per-token work with ``torch.compile`` (eager mode where that fails; see
        :attr:`compiled`).
    native : bool
        Run steps with the native (C) step where it builds and agrees with the PyTorch
        step (see :attr:`native`).

    Examples
    --------
    >>> from tradeoffs.models import load_chat_model                  # doctest: +SKIP
    >>> chat = load_chat_model("cpu")                                  # doctest: +SKIP
    >>> eng = BatchEngine.from_chat_model(chat, max_batch_size=4)      # doctest: +SKIP
    >>> ids = chat.encode_chat([{"role": "user", "content": "Hi"}])["input_ids"][0].tolist()  # doctest: +SKIP
    >>> r = GenRequest(ids, SamplingParams(max_tokens=8, temperature=0), chat.tokenizer)   # doctest: +SKIP
    >>> eng.admit([r])                                                 # doctest: +SKIP
    >>> while eng.running:                                             # doctest: +SKIP
    ...     emitted, done = eng.step()
    ...     eng.release(done)
    >>> r.stream.text                                                  # doctest: +SKIP
    'Hello! How can I help you today?'
    """

    def __init__(self, model: Any, eos_token_ids: Sequence[int], context_length: int, *,
                 max_batch_size: int = ServeConfig.max_batch_size, max_step_tokens: int = ServeConfig.max_step_tokens,
                 prefix_cache: bool = ServeConfig.prefix_cache, min_prefix_tokens: int = 16, prefix_entries: int = 8,
                 compile: bool = ServeConfig.compile, native: bool = ServeConfig.native) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if max_step_tokens < max_batch_size + 1:
            raise ValueError(f"max_step_tokens ({max_step_tokens}) must exceed max_batch_size ({max_batch_size}) "
                             "so prompts still progress while every slot decodes")
        cfg = model.config
        self.model = model
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        self.eos = set(int(t) for t in eos_token_ids)
        self.context_length = int(context_length)
        self.max_batch_size = int(max_batch_size)
        self.max_step_tokens = int(max_step_tokens)
        self.n_layers = int(cfg.num_hidden_layers)
        self.kv_heads = int(getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads)
        self.head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads)
        self.running: list[GenRequest] = []  # running[i] owns slot i
        self.capacity = 0
        self._keys: list[torch.Tensor] = []
        self._values: list[torch.Tensor] = []
        self.prefix_cache = bool(prefix_cache)
        self.min_prefix_tokens = int(min_prefix_tokens)
        self.prefix_entries = int(prefix_entries)
        self._prefixes: collections.OrderedDict[tuple, tuple[list, list]] = collections.OrderedDict()
        self._recent_prompts: collections.deque[tuple] = collections.deque(maxlen=8)
        self.stats = {"steps": 0, "step_tokens": 0, "prefix_tokens_reused": 0}
        self.net = PackedLlama(model, compile=compile)
        self.last_logits: torch.Tensor | None = None  # the latest step's logits (one row per emitted token)
        #: The native step, or None where it is off or unavailable (the PyTorch step runs).
        self.native: NativeDecoder | None = None
        #: Most rows (tokens) a step runs natively; larger steps (long prompt chunks) run the PyTorch step,
        #: whose oneDNN kernels were as fast or faster past about 100 rows in bfloat16 and 24 in float32 on
        #: the reference machine (``benchmarks/engine_step.py``, docs/benchmarks.md).
        self.native_rows = min(self.max_step_tokens, NATIVE_ROWS.get(self.dtype, 0))
        self.step_tokens = self.max_step_tokens  # see below
        if native:
            try:
                self.native = self._checked_native()
            except NativeUnavailable as exc:
                log.warning("the native step is unavailable (%s); the engine runs its PyTorch step, "
                            "the same computation, only slower", exc)
        #: Most tokens one step takes. In bfloat16 the native and PyTorch steps differ by 1-2% of the
        #: logits' range, so with the native step on, prompt chunks are cut to fit ``native_rows`` and
        #: every step runs natively: a request's tokens then do not depend on what runs beside it.
        if self.native is not None and self.dtype == torch.bfloat16:
            self.step_tokens = max(self.native_rows, self.max_batch_size + 1)

    #: How far the native step's logits may be from the PyTorch step's, as a fraction of the logits'
    #: range, for the start-up check. float32 agrees to ~1e-6 of the range; in bfloat16 each layer rounds
    #: some ten intermediate tensors to 8 bits, so another summation order flips last bits that 30 layers
    #: carry to 1-2% of the range (measured: 0.28-0.69 on ranges of 42-49). A broken build is off by
    #: about the whole range.
    NATIVE_TOLERANCE = 0.1

    def _checked_native(self) -> NativeDecoder:
        """Build the native step and check a prompt step and a decode step against the PyTorch step's."""
        native = NativeDecoder(self.net, self.context_length)
        prompt = list(range(1, 10))
        probe = GenRequest(prompt, SamplingParams(max_tokens=8, temperature=0))
        stats, recent = dict(self.stats), list(self._recent_prompts)  # the probe leaves no trace in them
        try:
            self.admit([probe])
            self.step()  # the prompt, by the PyTorch step (self.native is still None)
            want = [self.last_logits[0].clone()]
            self.step()  # one decode step
            want.append(self.last_logits[0].clone())
            # the same two steps natively (the prompt's keys and values are written again)
            n = len(prompt)
            got = [native(prompt, range(n), [0] * n, self._keys, self._values, [n - 1])[0],
                   native([probe.output_ids[0]], [n], [0], self._keys, self._values)[0]]
        finally:
            self.cancel_all()
            self.stats, self.last_logits = stats, None
            self._recent_prompts.clear()
            self._recent_prompts.extend(recent)
        for what, g, w in zip(("prompt", "decode"), got, want):
            span, diff = float(w.max() - w.min()), float((g - w).abs().max())
            if not diff <= self.NATIVE_TOLERANCE * span:
                raise NativeUnavailable(f"its logits differ from the PyTorch step's by {diff:.3g} on a {what} step "
                                        f"(allowed {self.NATIVE_TOLERANCE * span:.3g})")
        log.info("native step on (%s): logits within %.0f%% of the PyTorch step's range", self.dtype,
                 100 * self.NATIVE_TOLERANCE)
        return native

    @property
    def compiled(self) -> bool:
        """Whether the dense blocks run compiled (False: eager, by choice or because compiling failed)."""
        return self.net.compiled

    @classmethod
    def from_chat_model(cls, chat: Any, **options) -> "BatchEngine":
        """Build an engine from a :class:`tradeoffs.models.ChatModel` (options as in the constructor)."""
        tok = chat.tokenizer
        eos = {tok.eos_token_id}
        gen_eos = getattr(chat.model.generation_config, "eos_token_id", None)
        if gen_eos is not None:
            eos |= set(gen_eos if isinstance(gen_eos, (list, tuple)) else [gen_eos])
        return cls(chat.model, sorted(e for e in eos if e is not None), chat.context_length, **options)

    # ------------------------------------------------------------------ the KV cache
    @property
    def batch_size(self) -> int:
        return len(self.running)

    @property
    def free_slots(self) -> int:
        return self.max_batch_size - len(self.running)

    def _ensure_capacity(self, needed: int) -> None:
        if needed <= self.capacity:
            return
        new = min(max(needed, 2 * self.capacity, 128), self.context_length)
        new = min(-(-new // 64) * 64, max(self.context_length, needed))
        shape = (self.max_batch_size, self.kv_heads, new, self.head_dim)
        keys = [torch.zeros(shape, dtype=self.dtype, device=self.device) for _ in range(self.n_layers)]
        values = [torch.zeros(shape, dtype=self.dtype, device=self.device) for _ in range(self.n_layers)]
        if self.capacity:
            for i in range(self.n_layers):
                keys[i][:, :, :self.capacity] = self._keys[i]
                values[i][:, :, :self.capacity] = self._values[i]
        self._keys, self._values, self.capacity = keys, values, new

    def _shrink_if_idle(self) -> None:
        if not self.running and self.capacity > 1024:  # give back the memory a long request needed
            self._keys, self._values, self.capacity = [], [], 0

    # ------------------------------------------------------------------ admit / release
    @torch.inference_mode()
    def admit(self, requests: Sequence[GenRequest]) -> None:
        """Give each request a free slot; its prompt is prefilled by the next steps.

        Raises ValueError when there are more requests than free slots or a prompt does not fit.
        """
        requests = [r for r in requests if not r.cancelled]
        if len(requests) > self.free_slots:
            raise ValueError(f"{len(requests)} requests but only {self.free_slots} free slots")
        for r in requests:
            if r.prompt_tokens >= self.context_length:
                raise ValueError(f"prompt has {r.prompt_tokens} tokens; the context holds {self.context_length}")
        for r in requests:
            self.running.append(r)
            r.cached = 0

    @torch.inference_mode()
    def release(self, requests: Sequence[GenRequest]) -> None:
        """Free the slots of finished or cancelled requests (the last slot moves into each hole)."""
        for r in requests:
            try:
                i = next(j for j, x in enumerate(self.running) if x is r)
            except StopIteration:
                continue
            last = len(self.running) - 1
            if i != last:
                moved = self.running[last]
                n = moved.cached
                for K, V in zip(self._keys, self._values):
                    K[i, :, :n] = K[last, :, :n]
                    V[i, :, :n] = V[last, :, :n]
                self.running[i] = moved
            self.running.pop()
        self._shrink_if_idle()

    def cancel_all(self) -> list[GenRequest]:
        """Drop every running request (after an engine failure or on shutdown); returns them."""
        dropped, self.running = self.running, []
        self._shrink_if_idle()
        return dropped

    # ------------------------------------------------------------------ prefix cache
    def _reuse_prefix(self, slot: int, r: GenRequest) -> None:
        best = None
        for key in self._prefixes:
            n = len(key)
            if n < r.prompt_tokens and (best is None or n > len(best)) and tuple(r.prompt_ids[:n]) == key:
                best = key
        if best is None:
            return
        self._prefixes.move_to_end(best)
        ks, vs = self._prefixes[best]
        n = len(best)
        self._ensure_capacity(n)
        for K, V, k, v in zip(self._keys, self._values, ks, vs):
            K[slot, :, :n] = k
            V[slot, :, :n] = v
        r.cached = r.prefix_hit = n
        self.stats["prefix_tokens_reused"] += n

    def _remember_prefix(self, slot: int, r: GenRequest) -> None:
        """After a prompt is prefilled: keep the prefix it shares with a recent prompt."""
        prompt = tuple(r.prompt_ids)
        best = 0
        for other in self._recent_prompts:
            n = 0
            for a, b in zip(prompt, other):
                if a != b:
                    break
                n += 1
            best = max(best, n)
        self._recent_prompts.append(prompt)
        best = min(best, r.prompt_tokens - 1)
        if best < self.min_prefix_tokens or prompt[:best] in self._prefixes:
            return
        self._prefixes[prompt[:best]] = ([K[slot, :, :best].clone() for K in self._keys],
                                         [V[slot, :, :best].clone() for V in self._values])
        while len(self._prefixes) > self.prefix_entries:
            self._prefixes.popitem(last=False)

    # ------------------------------------------------------------------ one step
    @torch.inference_mode()
    def step(self) -> tuple[list[GenRequest], list[GenRequest]]:
        """One forward pass: a token for every decoding request, prompt chunks for the others.

        Returns
        -------
        (emitted, finished) : lists of GenRequest
            Requests that got a new token in this step, and those that finished on it. Finished
            requests keep their slot until :meth:`release`, so the caller can deliver first.
        """
        live = [r for r in self.running if not r.finished]
        if len(live) != len(self.running):
            self.release([r for r in self.running if r.finished])
        if not self.running:
            return [], []
        if self.prefix_cache:
            # Looked up when a prompt starts, not when it is admitted: requests admitted together
            # then reuse the prefix the first of them registered one step earlier.
            for slot, r in enumerate(self.running):
                if r.cached == 0:
                    self._reuse_prefix(slot, r)
        ids: list[int] = []
        pos: list[int] = []
        dec_slots, dec_tokens, dec_pos = [], [], []
        chunks: list[tuple[int, GenRequest, int, int]] = []  # slot, request, start, n
        for slot, r in enumerate(self.running):
            if not r.prefilling:
                dec_slots.append(slot)
                dec_tokens.append(len(ids))
                dec_pos.append(r.cached)
                ids.append(r.output_ids[-1])
                pos.append(r.cached)
        budget = max(self.step_tokens - len(ids), 1)
        for slot, r in enumerate(self.running):
            if r.prefilling and budget > 0:
                n = min(r.prompt_tokens - r.cached, budget)
                chunks.append((slot, r, len(ids), n))
                ids.extend(r.prompt_ids[r.cached:r.cached + n])
                pos.extend(range(r.cached, r.cached + n))
                budget -= n
        self._ensure_capacity(max(r.cached + 1 for r in self.running) + max((c[3] for c in chunks), default=0))
        # the packed positions whose logits we need: every decoding request's, and each prompt's last
        ending = [(r, start + n - 1) for _, r, start, n in chunks if r.cached + n == r.prompt_tokens]
        keep = dec_tokens + [at for _, at in ending]
        owners = [self.running[s] for s in dec_slots] + [r for r, _ in ending]
        if self.native is not None and len(ids) <= self.native_rows:
            slots = dec_slots + [slot for slot, _, _, n in chunks for _ in range(n)]
            logits = self.native(ids, pos, slots, self._keys, self._values, keep)
            return self._finish_step(logits, dec_slots, owners, chunks, len(ids))
        plan = _StepPlan(self, len(ids))
        plan.batch = len(self.running)
        if dec_slots:
            plan.dec_slots = torch.tensor(dec_slots, device=self.device)
            plan.dec_pos = torch.tensor(dec_pos, device=self.device)
            plan.dec_all = dec_slots == list(range(plan.batch))
            plan.width = max(dec_pos) + 1
            cols = torch.arange(plan.width, device=self.device)
            lengths = torch.zeros(plan.batch, dtype=torch.long, device=self.device)
            lengths[plan.dec_slots] = plan.dec_pos + 1
            lengths.clamp_(min=1)  # a slot that is not decoding sees column 0 only (its output is dropped)
            plan.dec_mask = (cols[None, :] < lengths[:, None])[:, None, None, :]
        for slot, r, start, n in chunks:
            c0 = r.cached
            mask = None
            if c0:
                rows = torch.arange(n, device=self.device)[:, None] + c0
                mask = torch.arange(c0 + n, device=self.device)[None, :] <= rows
            plan.segments.append((slot, start, n, c0, mask))
        as_tensor = lambda xs: torch.tensor(xs, dtype=torch.long, device=self.device)  # noqa: E731
        logits = self.net(as_tensor(ids), as_tensor(pos), plan.attend, as_tensor(keep))
        return self._finish_step(logits, dec_slots, owners, chunks, len(ids))

    def _finish_step(self, logits: torch.Tensor, dec_slots: list[int], owners: list[GenRequest],
                     chunks: list, n_tokens: int) -> tuple[list[GenRequest], list[GenRequest]]:
        """Advance every request by what the step computed, and pick each emitted request's token."""
        self.last_logits = logits
        self.stats["steps"] += 1
        self.stats["step_tokens"] += n_tokens
        for slot, r, start, n in chunks:
            r.cached += n
            if not r.prefilling and self.prefix_cache:
                self._remember_prefix(slot, r)
        for slot in dec_slots:
            self.running[slot].cached += 1
        tokens = self._sample(logits, owners)
        done = self._append(owners, tokens)
        return owners, done

    def _sample(self, logits: torch.Tensor, requests: Sequence[GenRequest]) -> list[int]:
        picks = logits.argmax(dim=-1).tolist()
        for i, r in enumerate(requests):
            if not r.params.greedy:
                picks[i] = sample_token(logits[i], r.params.temperature, r.params.top_p, r.generator)
        return picks

    def _append(self, requests: Sequence[GenRequest], tokens: Sequence[int]) -> list[GenRequest]:
        done = []
        for r, t in zip(requests, tokens):
            r.output_ids.append(int(t))
            if r.stream is not None and t not in self.eos:
                r.stream.push(int(t))
            if t in self.eos or (r.stream is not None and r.stream.stopped):
                r.finish_reason = "stop"
            elif r.completion_tokens >= r.params.max_tokens:
                r.finish_reason = "length"
            elif r.prompt_tokens + r.completion_tokens >= self.context_length:
                r.finish_reason = "length"
            if r.finish_reason:
                done.append(r)
        return done


def estimate_cache_bytes(config: Any, batch: int, columns: int, dtype_bytes: int = 4) -> int:
    """KV-cache size in bytes for ``batch`` rows of ``columns`` tokens (keys and values, all layers).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> cfg = SimpleNamespace(num_hidden_layers=30, num_key_value_heads=3, head_dim=64,
    ...                       hidden_size=576, num_attention_heads=9)
    >>> estimate_cache_bytes(cfg, batch=1, columns=1000)
    46080000
    """
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    kv = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    return int(2 * config.num_hidden_layers * batch * kv * head_dim * columns * dtype_bytes)

