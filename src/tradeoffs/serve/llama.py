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
else is overhead to cut. :class:`PackedLlama` cuts it three ways, the same ones vLLM uses:

* **fused projections** — q, k and v are one matrix, gate and up another: 4 matrix multiplies per
  layer instead of 7, each larger (the original modules' weights become views into the fused ones,
  so no memory is duplicated and ``model.generate()`` still works);
* **no framework plumbing per step** — no mask building, no cache objects, no keyword dispatch:
  this file's few tensor operations per layer are all there is;
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


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Root-mean-square norm, computed in float32 (as transformers does) and returned in x's dtype."""
    x32 = x.float()
    x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    return weight * x32.to(x.dtype)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding of (heads, n, dim) vectors; cos and sin are (n, dim)."""
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


def _qkv(x, ln, eps, w_qkv, b_qkv, cos, sin, heads: int, kv_heads: int, head_dim: int):
    """Norm, fused q/k/v projection and rotary embedding: (n, hidden) -> q (1, heads, n, dim), k, v."""
    h = _rms_norm(x, ln, eps)
    qkv = torch.nn.functional.linear(h, w_qkv, b_qkv)
    qkv = qkv.view(qkv.shape[0], heads + 2 * kv_heads, head_dim).transpose(0, 1)  # (heads+2kv, n, dim)
    q, k, v = qkv.split([heads, kv_heads, kv_heads], dim=0)
    return _rotate(q, cos, sin).unsqueeze(0), _rotate(k, cos, sin).unsqueeze(0), v.unsqueeze(0)


def _out_and_mlp(x, attn, w_o, b_o, ln, eps, w_gu, b_gu, w_down, b_down):
    """Attention output projection, residual, norm, SwiGLU MLP, residual: (n, hidden) -> (n, hidden)."""
    F = torch.nn.functional
    x = x + F.linear(attn, w_o, b_o)
    gate, up = F.linear(_rms_norm(x, ln, eps), w_gu, b_gu).chunk(2, dim=-1)
    return x + F.linear(F.silu(gate) * up, w_down, b_down)


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


class PackedLlama:
    """A Llama-family causal LM's forward over one packed row of tokens (several requests at once).

    Parameters
    ----------
    model : transformers.PreTrainedModel
        Llama-style (see :func:`supports`); its q/k/v and gate/up weights are fused in place.
    compile : bool
        Compile the dense blocks with ``torch.compile`` (falls back to eager mode on failure).

    Examples
    --------
    >>> net = PackedLlama(chat.model, compile=False)                                   # doctest: +SKIP
    >>> logits = net(ids, positions, attend, keep)   # (len(keep), vocab) float32     # doctest: +SKIP
    """

    def __init__(self, model: Any, compile: bool = False) -> None:
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
        n = ids.shape[0]
        for i, L in enumerate(self.layers):
            q, k, v = self.qkv_fn(x, L.ln1, L.eps1, L.w_qkv, L.b_qkv, cos, sin, self.heads, self.kv_heads,
                                  self.head_dim)
            attn = attend(i, q, k, v).reshape(n, self.heads * self.head_dim)
            x = self.mlp_fn(x, attn, L.w_o, L.b_o, L.ln2, L.eps2, L.w_gu, L.b_gu, L.w_down, L.b_down)
        h = _rms_norm(x[keep], self.norm, self.norm_eps)
        return torch.nn.functional.linear(h, self.lm_head, self.lm_bias).float()
