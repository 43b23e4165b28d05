"""The model's forward pass over a packed row of tokens, written out: what one engine step computes.

A decoder-only transformer of the Llama family (Llama, SmolLM2, Mistral, Qwen2) does, for each of
its layers::

    h = rms_norm(x);  q, k, v = h @ W_qkv;  rotate q and k by position
    x = x + attention(q, k, v) @ W_o
    h = rms_norm(x);  gate, up = h @ W_gate_up
    x = x + (silu(gate) * up) @ W_down

and then ``logits = rms_norm(x) @ W_embed.T`` for the tokens whose next token is wanted.

At batch 1 a CPU spends a decode step **reading the weights** (every weight once per step: 270 MB
for SmolLM2-135M in bfloat16), so the step can only be as fast as memory delivers them; everything
else is overhead to cut. :class:`PackedLlama` cuts it in the ways vLLM does:

* **fused projections** — q, k and v are one matrix, gate and up another: 4 matrix multiplies per
  layer instead of 7, each larger (the original modules' weights become views into the fused ones,
  so no memory is duplicated and ``model.generate()`` still works);
* **no framework plumbing per step** — no mask building, no cache objects, no keyword dispatch:
  this file's few tensor operations per layer are all there is;
* **weights laid out once for the matrix library** — in bfloat16, where oneDNN is available, every
  projection's weight is reordered at start-up into oneDNN's blocked layout (what vLLM-CPU and
  ``torch.compile``'s freezing do too), so a step does not pay for it on each call. Measured on a
  2-core Xeon (AMX/AVX-512 bf16) the layers' matrix multiplies took 0.6-0.75x the time of plain
  ``torch.nn.functional.linear`` on the same weights, with identical results. The copy costs as much
  memory again as the weights (270 MB for SmolLM2-135M); the model's own parameters stay as they
  were. Where the oneDNN ops are missing or disagree, the plain call is used (:attr:`PackedLlama.prepacked`
  tells which). In float32 the plain call is kept: MKL's packed format was no faster there at batch 1.
* **optionally, compiled dense blocks** — with ``compile=True``, the work around attention (norms,
  projections, rotary embedding, MLP) is compiled by ``torch.compile`` once (one graph for a single
  token, one for any other count, so a new batch size never recompiles) and shared by every layer.
  Where compilation is unavailable or fails, the same functions run eagerly (a warning says so;
  :attr:`PackedLlama.compiled` tells which). It is off by default: measured on a 2-core CPU, the
  compiled blocks were no faster than eager ones (the matrix multiplies, which dominate, are the
  same library calls either way) and cost seconds at start-up.

Attention stays outside: it is what keeps requests apart, and the engine's step plan does it
(``attend(layer, q, k, v)``).
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import torch

__all__ = ["PackedLlama", "supports"]

log = logging.getLogger("tradeoffs.serve")

Attend = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def supports(model: Any) -> str | None:
    """``None`` when :class:`PackedLlama` can run ``model``, else the reason it cannot.

    Examples
    --------
    >>> supports(object())
    'the model has no Llama-style decoder layers (model.model.layers[i].self_attn.q_proj, .mlp.gate_proj)'
    """
    try:
        layer = model.model.layers[0]
        layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj, layer.self_attn.o_proj
        layer.mlp.gate_proj, layer.mlp.up_proj, layer.mlp.down_proj
        model.model.embed_tokens, model.model.norm, model.model.rotary_emb, model.lm_head
    except (AttributeError, IndexError, TypeError):
        return ("the model has no Llama-style decoder layers "
                "(model.model.layers[i].self_attn.q_proj, .mlp.gate_proj)")
    act = getattr(model.config, "hidden_act", "silu")
    if act != "silu":
        return f"the model's MLP uses {act!r}; the engine implements 'silu' (SwiGLU) only"
    if hasattr(layer.self_attn, "q_norm"):
        return "the model normalises queries and keys per head (Qwen3-style), which the engine does not implement"
    return None


def _fuse(linears: list[torch.nn.Linear]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Concatenate the weights (and biases) of ``linears`` along the output dimension; each module's
    parameters become views into the fused tensors, so the model keeps working unchanged."""
    weight = torch.cat([m.weight.detach() for m in linears], dim=0).contiguous()
    has_bias = [m.bias is not None for m in linears]
    bias = None
    if any(has_bias):
        bias = torch.cat([m.bias.detach() if m.bias is not None else weight.new_zeros(m.out_features)
                          for m in linears]).contiguous()
    start = 0
    for m in linears:
        n = m.out_features
        m.weight.data = weight[start:start + n]
        if m.bias is not None:
            m.bias.data = bias[start:start + n]
        start += n
    return weight, bias


_PACK_HINT = 16  # the row count oneDNN tunes a packed layout for; any other count still works
Linear = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


def _prepack(weight: torch.Tensor) -> torch.Tensor:
    """``weight`` reordered once into oneDNN's blocked layout (an opaque copy, for :func:`_packed_linear`)."""
    return torch.ops.mkldnn._reorder_linear_weight(weight.detach(), _PACK_HINT)


def _packed_linear(x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``x @ W.T + bias`` with a weight from :func:`_prepack`."""
    return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")


def _can_prepack(dtype: torch.dtype) -> bool:
    """Whether oneDNN's prepacked linear runs here for ``dtype`` and agrees with plain torch."""
    if dtype != torch.bfloat16 or not torch.backends.mkldnn.is_available():
        return False
    try:
        if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return False
        gen = torch.Generator().manual_seed(0)
        w = torch.randn(48, 32, generator=gen).to(dtype)
        b = torch.randn(48, generator=gen).to(dtype)
        with torch.inference_mode():
            packed = _prepack(w)
            for n in (1, 5):
                x = torch.randn(n, 32, generator=gen).to(dtype)
                got, want = _packed_linear(x, packed, b), torch.nn.functional.linear(x, w, b)
                if got.shape != want.shape or not torch.allclose(got.float(), want.float(), atol=0.05, rtol=0.02):
                    raise RuntimeError(f"max diff {(got.float() - want.float()).abs().max():.3g}")
    except Exception as exc:  # op missing from this build, unsupported CPU, a oneDNN bug...
        log.info("oneDNN prepacked weights unavailable (%s: %s); plain matrix multiplies instead",
                 type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
        return False
    return True


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Root-mean-square norm, computed in float32 and rounded to x's dtype before the weight multiply,
    as transformers does (torch's fused kernel does the float32 part in one call).

    Rounding after the multiply instead (the fused kernel on bfloat16 input, one op fewer) moves
    bfloat16 logits enough to flip near-tie greedy choices between a request alone and in a batch.
    """
    if x.dtype == torch.float32:
        return torch.nn.functional.rms_norm(x, weight.shape, weight, eps)
    return weight * torch.nn.functional.rms_norm(x.float(), weight.shape, eps=eps).to(x.dtype)


def _signed_sin(sin: torch.Tensor) -> torch.Tensor:
    """``sin`` with its first half negated, what :func:`_rotate` takes (made once per step, not per layer)."""
    half = sin.shape[-1] // 2
    return torch.cat((-sin[..., :half], sin[..., half:]), dim=-1)


def _rotate(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding of (heads, n, dim) vectors; cos and signed_sin (:func:`_signed_sin`) are (n, dim).

    Same numbers as transformers' ``x * cos + cat(-x2, x1) * sin``: rolling x by half a vector gives
    ``cat(x2, x1)``, and the sign sits in ``signed_sin`` instead, so one op replaces four per call.
    """
    return x * cos + x.roll(x.shape[-1] // 2, dims=-1) * signed_sin


def _qkv(x, ln, eps, w_qkv, b_qkv, cos, sin, heads: int, kv_heads: int, head_dim: int,
         linear: Linear = torch.nn.functional.linear):
    """Norm, fused q/k/v projection and rotary embedding: (n, hidden) -> q (1, heads, n, dim), k, v.

    ``sin`` is the signed one (:func:`_signed_sin`)."""
    qkv = linear(_rms_norm(x, ln, eps), w_qkv, b_qkv)
    qkv = qkv.view(qkv.shape[0], heads + 2 * kv_heads, head_dim).transpose(0, 1)  # (heads+2kv, n, dim)
    qk = _rotate(qkv[:heads + kv_heads], cos, sin)  # q and k rotated together: one set of ops, not two
    return qk[:heads].unsqueeze(0), qk[heads:].unsqueeze(0), qkv[heads + kv_heads:].unsqueeze(0)


def _out_and_mlp(x, attn, w_o, b_o, ln, eps, w_gu, b_gu, w_down, b_down,
                 linear: Linear = torch.nn.functional.linear):
    """Attention output projection, residual, norm, SwiGLU MLP, residual: (n, hidden) -> (n, hidden)."""
    x = x + linear(attn, w_o, b_o)
    gate, up = linear(_rms_norm(x, ln, eps), w_gu, b_gu).chunk(2, dim=-1)
    return x + linear(torch.nn.functional.silu(gate) * up, w_down, b_down)


class _Layer:
    """One decoder layer's weights, fused."""

    def __init__(self, layer: Any) -> None:
        attn, mlp = layer.self_attn, layer.mlp
        self.ln1, self.eps1 = layer.input_layernorm.weight, layer.input_layernorm.variance_epsilon
        self.ln2, self.eps2 = layer.post_attention_layernorm.weight, layer.post_attention_layernorm.variance_epsilon
        self.w_qkv, self.b_qkv = _fuse([attn.q_proj, attn.k_proj, attn.v_proj])
        self.w_o, self.b_o = attn.o_proj.weight, attn.o_proj.bias
        self.w_gu, self.b_gu = _fuse([mlp.gate_proj, mlp.up_proj])
        self.w_down, self.b_down = mlp.down_proj.weight, mlp.down_proj.bias

    def weights(self, prepack: bool) -> tuple:
        """The four projections' (weight, bias) pairs as the forward uses them, prepacked or not."""
        pack = _prepack if prepack else (lambda w: w)
        return tuple((pack(w), b) for w, b in ((self.w_qkv, self.b_qkv), (self.w_o, self.b_o),
                                                (self.w_gu, self.b_gu), (self.w_down, self.b_down)))


class PackedLlama:
    """A Llama-family causal LM's forward over one packed row of tokens (several requests at once).

    Parameters
    ----------
    model : transformers.PreTrainedModel
        Llama-style (see :func:`supports`); its q/k/v and gate/up weights are fused in place.
    compile : bool
        Compile the dense blocks with ``torch.compile`` (falls back to eager mode on failure).
    prepack : bool or None
        Reorder the weights once for oneDNN (see the module notes); ``None``: where it runs and
        helps (bfloat16 with oneDNN, eager mode). :attr:`prepacked` tells what was done.

    Examples
    --------
    >>> net = PackedLlama(chat.model, compile=False)                                   # doctest: +SKIP
    >>> logits = net(ids, positions, attend, keep)   # (len(keep), vocab) float32     # doctest: +SKIP
    """

    def __init__(self, model: Any, compile: bool = False, prepack: bool | None = None) -> None:
        problem = supports(model)
        if problem:
            raise ValueError(f"the serving engine cannot run this model: {problem}")
        cfg, inner = model.config, model.model
        self.heads = int(cfg.num_attention_heads)
        self.kv_heads = int(getattr(cfg, "num_key_value_heads", None) or self.heads)
        self.head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // self.heads)
        self.embed = inner.embed_tokens.weight
        self.norm, self.norm_eps = inner.norm.weight, inner.norm.variance_epsilon
        self.lm_head, self.lm_bias = model.lm_head.weight, getattr(model.lm_head, "bias", None)
        self.rotary = inner.rotary_emb
        self.layers = [_Layer(layer) for layer in inner.layers]
        self.qkv_fn, self.mlp_fn = _qkv, _out_and_mlp
        self.compiled = False
        if compile:
            self._compile()
        # The compiled blocks call plain linear (the compiler plans its own layouts); eager mode
        # reads oneDNN-packed copies where they run.
        dtype = self.embed.dtype
        self.prepacked = (not self.compiled and (prepack or prepack is None) and self.embed.device.type == "cpu"
                          and _can_prepack(dtype))
        if prepack and not self.prepacked:
            log.warning("prepacked weights requested but unavailable here (%s, %s); plain matrix multiplies",
                        dtype, "compiled blocks" if self.compiled else "oneDNN check failed")
        self.linear: Linear = _packed_linear if self.prepacked else torch.nn.functional.linear
        with torch.inference_mode():
            self._weights = [L.weights(self.prepacked) for L in self.layers]
            self._head = _prepack(self.lm_head) if self.prepacked else self.lm_head

    def _compile(self) -> None:
        """Swap in compiled versions of the dense blocks, after checking they run and agree."""
        try:
            import torch._dynamo

            torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
            qkv_fn = torch.compile(_qkv, dynamic=True)
            mlp_fn = torch.compile(_out_and_mlp, dynamic=True)
            self._check(qkv_fn, mlp_fn)
        except Exception as exc:  # no compiler toolchain, an unsupported op, a torch bug...
            log.warning("torch.compile is unavailable here (%s: %s); the engine runs in eager mode, "
                        "which gives the same results, only slower per step", type(exc).__name__,
                        str(exc).splitlines()[0] if str(exc) else "")
            return
        self.qkv_fn, self.mlp_fn, self.compiled = qkv_fn, mlp_fn, True

    @torch.inference_mode()
    def _check(self, qkv_fn: Callable, mlp_fn: Callable) -> None:
        """Run the compiled blocks once per shape class (1 token, several) against the eager ones."""
        layer = self.layers[0]
        for n in (1, 3):
            x = torch.randn(n, self.embed.shape[1], dtype=self.embed.dtype, device=self.embed.device)
            pos = torch.arange(n, device=x.device)[None]
            cos, sin = (t[0] for t in self.rotary(x, pos))
            args = (x, layer.ln1, layer.eps1, layer.w_qkv, layer.b_qkv, cos, sin, self.heads, self.kv_heads,
                    self.head_dim)
            got, want = qkv_fn(*args), _qkv(*args)
            attn = want[0][0].transpose(0, 1).reshape(n, -1)
            m_args = (x, attn, layer.w_o, layer.b_o, layer.ln2, layer.eps2, layer.w_gu, layer.b_gu, layer.w_down,
                      layer.b_down)
            tol = 0.1 if x.dtype == torch.bfloat16 else 1e-3
            for a, b in zip((*got, mlp_fn(*m_args)), (*want, _out_and_mlp(*m_args))):
                if not torch.allclose(a.float(), b.float(), atol=tol, rtol=tol):
                    raise RuntimeError(f"compiled block disagrees with eager (max diff "
                                       f"{(a.float() - b.float()).abs().max():.3g})")

    @torch.inference_mode()
    def __call__(self, ids: torch.Tensor, positions: torch.Tensor, attend: Attend,
                 keep: torch.Tensor) -> torch.Tensor:
        """Logits (float32, one row per index in ``keep``) for a packed row of token ids.

        Parameters
        ----------
        ids, positions : (n,) long tensors
            The packed tokens and each one's position in its own request.
        attend : callable
            ``attend(layer, q, k, v) -> (1, n, heads, head_dim)``: stores k and v, attends per request.
        keep : (m,) long tensor
            Packed positions whose next-token logits are wanted.
        """
        x = self.embed[ids]
        cos, sin = (t[0] for t in self.rotary(x, positions[None]))
        sin = _signed_sin(sin)
        n = ids.shape[0]
        extra = {} if self.compiled else {"linear": self.linear}
        for i, (L, (qkv, o, gu, down)) in enumerate(zip(self.layers, self._weights)):
            q, k, v = self.qkv_fn(x, L.ln1, L.eps1, *qkv, cos, sin, self.heads, self.kv_heads, self.head_dim,
                                  **extra)
            attn = attend(i, q, k, v).reshape(n, self.heads * self.head_dim)
            x = self.mlp_fn(x, attn, *o, L.ln2, L.eps2, *gu, *down, **extra)
        h = _rms_norm(x[keep], self.norm, self.norm_eps)
        return self.linear(h, self._head, self.lm_bias).float()
