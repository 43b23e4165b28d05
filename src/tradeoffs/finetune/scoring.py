"""Constrained answers: the log-likelihood of every label as the continuation of a prompt.

:func:`score_labels` scores all labels of a batch of prompts in **one** forward pass: each label's
tokens are packed after its prompt with a tree attention mask, and a key-value cache holds the prefix
every prompt shares (instructions, a static few-shot block). :func:`calibrate_scores` divides out the
prompt's own label prior (contextual calibration). :func:`next_token_logprobs` is the slow, obviously
correct reference the fast path is tested against.

Examples
--------
>>> predict_from_scores(np.array([[-3.0, -1.0], [-0.5, -2.0]]), ["a", "b"]).tolist()
['b', 'a']
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from .prompts import CONTENT_FREE, _check_labels, _model_device, _progress, label_text

def _causal_lm(model):
    """The transformers causal LM inside ``model`` (itself, or the base of a peft model)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if not hasattr(base, "model") or not hasattr(base.model, "layers"):
        raise TypeError(f"expected a decoder-only causal LM such as SmolLM2 (Llama architecture), got "
                        f"{type(base).__name__}")
    return base


def n_layers(model) -> int:
    """Number of decoder layers of a causal LM (or a peft model around one)."""
    return len(_causal_lm(model).model.layers)


def label_token_ids(tokenizer, labels: Sequence[str]) -> list[list[int]]:
    """Token ids of each label as the continuation of ``"Intent:"``, i.e. of ``" " + label_text(label)``.

    Examples
    --------
    >>> label_token_ids(chat.tokenizer, ["billing", "account_access"])      # doctest: +SKIP
    [[38971], [2051, 1687]]
    """
    out = []
    for lab in _check_labels(labels):
        ids = tokenizer(" " + label_text(lab), add_special_tokens=False)["input_ids"]
        if not ids:
            raise ValueError(f"label {lab!r} tokenizes to nothing")
        out.append(list(ids))
    return out


@dataclass
class _TreeBatch:
    """Prompts with every label continuation packed after them, as one right-padded batch.

    Row ``i`` holds ``prompt_i`` then, for each label ``j`` with more than one token, the label's tokens
    but its last (``branch j``). Branch tokens see the whole prompt and the earlier tokens of their own
    branch only, and take the positions that follow the prompt, so each branch computes exactly what a
    separate ``prompt + label_j`` sequence would. A shared prefix of ``prefix_len`` tokens (held in a
    key-value cache) is visible to every token.
    """

    input_ids: Any          # (B, T) long
    position_ids: Any       # (B, T) long
    mask: Any               # (B, 1, T, prefix_len + T) bool, True = may attend
    lengths: list[int]      # real tokens per row
    last: list[int]         # index of each prompt's last token
    branch_start: list[list[int]]  # per row, per label: where its branch starts (-1: single token)


def _tree_batch(prompts: Sequence[Sequence[int]], branches: Sequence[Sequence[int]], prefix_len: int,
                pad_id: int) -> _TreeBatch:
    import torch

    lengths = [len(p) + sum(len(b) for b in branches) for p in prompts]
    if min(len(p) for p in prompts) < 1:
        raise ValueError("every prompt needs at least one token after the shared prefix")
    B, T = len(prompts), max(lengths)
    ids = torch.full((B, T), pad_id, dtype=torch.long)
    pos = torch.zeros((B, T), dtype=torch.long)
    mask = torch.zeros((B, 1, T, prefix_len + T), dtype=torch.bool)
    mask[:, :, :, :prefix_len] = True
    starts: list[list[int]] = []
    for i, p in enumerate(prompts):
        q = len(p)
        ids[i, :q] = torch.as_tensor(list(p), dtype=torch.long)
        pos[i, :q] = prefix_len + torch.arange(q)
        mask[i, 0, :q, prefix_len:prefix_len + q] = torch.tril(torch.ones(q, q, dtype=torch.bool))
        offset, row_starts = q, []
        for b in branches:
            m = len(b)
            if m == 0:
                row_starts.append(-1)
                continue
            row_starts.append(offset)
            ids[i, offset:offset + m] = torch.as_tensor(list(b), dtype=torch.long)
            pos[i, offset:offset + m] = prefix_len + q + torch.arange(m)
            mask[i, 0, offset:offset + m, prefix_len:prefix_len + q] = True
            mask[i, 0, offset:offset + m, prefix_len + offset:prefix_len + offset + m] = torch.tril(
                torch.ones(m, m, dtype=torch.bool))
            offset += m
        for t in range(lengths[i], T):  # padding attends to itself only (no empty softmax rows)
            mask[i, 0, t, prefix_len + t] = True
        starts.append(row_starts)
    return _TreeBatch(ids, pos, mask, lengths, [len(p) - 1 for p in prompts], starts)


def _packed_batch(seqs: Sequence[Sequence[int]]) -> tuple[_TreeBatch, list[int]]:
    """Several sequences packed into **one** row, each attending to itself only (block-diagonal causal mask).

    Every token sees exactly what it would see in a padded batch (the same earlier tokens of its own
    sequence, at the same positions), so the outputs are the same, but no compute is spent on padding.
    Returns the batch and where each sequence starts in the row.
    """
    import torch

    lengths = [len(s) for s in seqs]
    if not seqs or min(lengths) < 1:
        raise ValueError("pack at least one sequence, each with at least one token")
    T = sum(lengths)
    starts = [int(x) for x in np.cumsum([0] + lengths[:-1])]
    ids = torch.as_tensor([int(t) for s in seqs for t in s], dtype=torch.long).unsqueeze(0)
    pos = torch.cat([torch.arange(n) for n in lengths]).unsqueeze(0)
    mask = torch.zeros((1, 1, T, T), dtype=torch.bool)
    for start, n in zip(starts, lengths):
        mask[0, 0, start:start + n, start:start + n] = torch.tril(torch.ones(n, n, dtype=torch.bool))
    return _TreeBatch(ids, pos, mask, [T], [T - 1], [[]]), starts


@contextlib.contextmanager
def _layer_range(model, start: int, stop: int, final_norm: bool):
    """Temporarily run only decoder layers ``[start, stop)`` (and the final norm or not)."""
    import torch

    inner = _causal_lm(model).model
    layers, norm = inner.layers, inner.norm
    if not 0 <= start <= stop <= len(layers):
        raise ValueError(f"layer range [{start}, {stop}) is outside the model's {len(layers)} layers")
    try:
        if (start, stop) != (0, len(layers)):
            inner.layers = torch.nn.ModuleList(list(layers)[start:stop])
        if not final_norm:
            inner.norm = torch.nn.Identity()
        yield inner
    finally:
        inner.layers = layers
        inner.norm = norm


def _hidden(model, batch: _TreeBatch, *, start: int = 0, stop: int | None = None, final_norm: bool = True,
            inputs_embeds=None, cache=None):
    """Hidden states of decoder layers ``[start, stop)`` for a tree batch."""
    device = _model_device(model)
    stop = n_layers(model) if stop is None else stop
    kwargs: dict[str, Any] = {"attention_mask": batch.mask.to(device), "position_ids": batch.position_ids.to(device)}
    if inputs_embeds is None:
        kwargs["input_ids"] = batch.input_ids.to(device)
    else:
        kwargs["inputs_embeds"] = inputs_embeds
    if cache is not None:
        kwargs.update(cache=cache, use_cache=True)
    else:
        kwargs["use_cache"] = False
    with _layer_range(model, start, stop, final_norm) as inner:
        return inner(**kwargs).last_hidden_state


def _label_scores(model, batch: _TreeBatch, hidden, label_ids: Sequence[Sequence[int]]):
    """Sum of log p(label tokens | prompt) per row and label, from the final hidden states."""
    import torch

    head = _causal_lm(model).get_output_embeddings()
    B = hidden.shape[0]
    rows, cols = [], []
    for i in range(B):
        rows.append(i)
        cols.append(batch.last[i])
    first = torch.log_softmax(head(hidden[rows, cols]).float(), dim=-1)  # (B, V)
    scores = torch.stack([first[:, ids[0]] for ids in label_ids], dim=1)  # (B, L)
    # later tokens of multi-token labels: predicted at the branch positions
    gather_rows, gather_cols, targets, where = [], [], [], []
    for i in range(B):
        for j, ids in enumerate(label_ids):
            s = batch.branch_start[i][j]
            for t in range(1, len(ids)):
                gather_rows.append(i)
                gather_cols.append(s + t - 1)
                targets.append(ids[t])
                where.append((i, j))
    if gather_rows:
        logp = torch.log_softmax(head(hidden[gather_rows, gather_cols]).float(), dim=-1)
        picked = logp[torch.arange(len(targets), device=logp.device), torch.as_tensor(targets, device=logp.device)]
        extra = torch.zeros_like(scores)
        flat = torch.as_tensor([i * scores.shape[1] + j for i, j in where])
        extra.view(-1).index_add_(0, flat.to(extra.device), picked.to(extra.dtype))
        scores = scores + extra
    return scores


def _common_prefix(seqs: Sequence[Sequence[int]]) -> int:
    first = seqs[0]
    n = min(len(s) for s in seqs)
    for s in seqs[1:]:
        k = 0
        while k < n and s[k] == first[k]:
            k += 1
        n = k
        if n == 0:
            break
    return n


def score_labels(model, tokenizer, prompts: Sequence[str], labels: Sequence[str], *, batch_size: int = 16,
                 prefix_cache: bool = True, min_prefix: int = 16, progress: bool = False) -> np.ndarray:
    """Log-likelihood of each label as the continuation of each prompt: ``sum_t log p(label_t | ...)``.

    Exact, and cheap: each batch is **one** forward pass (label continuations are packed after the prompt
    with a tree attention mask), and when every prompt starts with the same tokens (instructions, a static
    few-shot block) those are computed once and reused from a key-value cache.

    Parameters
    ----------
    model : transformers causal LM (or a peft model around one)
    tokenizer : its tokenizer
    prompts : sequence of str
        Fully formatted prompts ending with the answer prefix (e.g. :func:`chat_prompt`).
    labels : sequence of str
        Scored as ``" " + label_text(label)``.
    batch_size : int
    prefix_cache : bool
        Reuse the shared prefix (identical results, faster); off for single requests.
    min_prefix : int
        Shortest shared prefix worth caching, in tokens.

    Returns
    -------
    np.ndarray, shape ``(len(prompts), len(labels))``
        Summed log-probabilities (natural log); the arg-max over a row is the predicted label.

    Examples
    --------
    >>> s = score_labels(chat.model, chat.tokenizer, ["Ticket: refund me\\nIntent:"], ["refund", "delivery"])  # doctest: +SKIP
    >>> s.shape                                                                                            # doctest: +SKIP
    (1, 2)
    """
    import torch

    labels = _check_labels(labels)
    prompts = list(prompts)
    if not prompts:
        return np.zeros((0, len(labels)))
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    lab_ids = label_token_ids(tokenizer, labels)
    branches = [ids[:-1] for ids in lab_ids]
    enc = [list(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    if min(len(e) for e in enc) == 0:
        raise ValueError("a prompt is empty")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    P = min(_common_prefix(enc), min(len(e) for e in enc) - 1) if prefix_cache and len(enc) > 1 else 0
    P = P if P >= min_prefix else 0
    prefix = None
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            if P:
                from transformers import DynamicCache

                lm = _causal_lm(model)
                prefix = DynamicCache(config=lm.config)
                pb = _tree_batch([enc[0][:P]], [], 0, pad)
                _hidden(model, pb, cache=prefix)
            order = np.argsort([len(e) for e in enc], kind="stable")
            out = np.zeros((len(prompts), len(labels)))
            for start in _progress(range(0, len(enc), batch_size), progress, f"scoring {len(enc)} prompts"):
                idx = order[start:start + batch_size]
                batch = _tree_batch([enc[i][P:] for i in idx], branches, P, pad)
                cache = None
                if prefix is not None:
                    cache = copy.deepcopy(prefix)
                    cache.batch_repeat_interleave(len(idx))
                hidden = _hidden(model, batch, cache=cache)
                out[idx] = _label_scores(model, batch, hidden, lab_ids).cpu().numpy()
    finally:
        model.train(was_training)
    return out

def predict_from_scores(scores: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """The arg-max label of each row of a ``(n, L)`` score matrix.

    Examples
    --------
    >>> predict_from_scores(np.array([[-3.0, -1.0], [-0.5, -2.0]]), ["a", "b"]).tolist()
    ['b', 'a']
    """
    s = np.atleast_2d(np.asarray(scores, dtype=float))
    labels = _check_labels(labels)
    if s.shape[1] != len(labels):
        raise ValueError(f"scores have {s.shape[1]} columns but there are {len(labels)} labels")
    return np.asarray(labels, dtype=object)[np.argmax(s, axis=1)]


#: Inputs with no content, for contextual calibration (Zhao et al. 2021 use "N/A", "" and "[MASK]").

def calibrate_scores(scores: np.ndarray, content_free_scores: np.ndarray) -> np.ndarray:
    """Contextual calibration: divide each label's probability by its probability on content-free inputs.

    A small model prompted zero-shot often prefers one label whatever the ticket says. Scoring the same
    prompt with an empty ticket (:data:`CONTENT_FREE`) measures that prior; dividing it out (subtracting,
    in log space, after normalising over the labels) removes it. Source: T. Z. Zhao, E. Wallace, S. Feng,
    D. Klein, S. Singh, "Calibrate Before Use: Improving Few-Shot Performance of Language Models", ICML 2021,
    https://arxiv.org/abs/2102.09690.

    Parameters
    ----------
    scores : (n, L) array
        Label log-likelihoods (:func:`score_labels`) of the real prompts.
    content_free_scores : (m, L) array
        The same prompt template filled with content-free inputs.

    Returns
    -------
    (n, L) array of calibrated log-scores (the arg-max is the calibrated prediction).

    Examples
    --------
    >>> s = np.log([[0.7, 0.3], [0.9, 0.1]])
    >>> predict_from_scores(calibrate_scores(s, np.log([[0.8, 0.2]])), ["a", "b"]).tolist()
    ['b', 'a']
    """
    s = np.atleast_2d(np.asarray(scores, dtype=float))
    cf = np.atleast_2d(np.asarray(content_free_scores, dtype=float))
    if s.shape[1] != cf.shape[1] or cf.shape[0] < 1:
        raise ValueError(f"scores have {s.shape[1]} labels but content_free_scores has shape {cf.shape}")

    def log_softmax(x):
        x = x - x.max(axis=1, keepdims=True)
        return x - np.log(np.exp(x).sum(axis=1, keepdims=True))

    prior = np.log(np.exp(log_softmax(cf)).mean(axis=0))
    return log_softmax(s) - prior


def next_token_logprobs(model, ids: Sequence[int]) -> np.ndarray:
    """Log-probabilities (natural log) of every vocabulary token coming right after ``ids``.

    One plain forward pass with no caching or packing: the slow, obviously correct reference that
    :func:`score_labels` must agree with.

    Examples
    --------
    >>> lp = next_token_logprobs(chat.model, chat.tokenizer("Hello")["input_ids"])  # doctest: +SKIP
    >>> lp.shape, float(np.exp(lp).sum().round(3))                                   # doctest: +SKIP
    ((49152,), 1.0)
    """
    import torch

    ids = [int(i) for i in ids]
    if not ids:
        raise ValueError("ids is empty: a next-token distribution needs at least one token of context")
    device = _model_device(model)
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([ids], device=device), logits_to_keep=1).logits[0, -1]
    return torch.log_softmax(logits.float(), dim=-1).cpu().numpy()


def sequence_logprob(next_logprobs: Callable[[list[int]], np.ndarray], prompt_ids: Sequence[int],
                     continuation_ids: Sequence[int]) -> float:
    """``log p(continuation | prompt)`` by the chain rule, one call of ``next_logprobs`` per token.

    Parameters
    ----------
    next_logprobs : callable
        ``ids -> (V,) array`` of next-token log-probabilities (e.g. ``partial(next_token_logprobs, model)``).

    Examples
    --------
    >>> uniform = lambda ids: np.log(np.full(4, 0.25))
    >>> bool(np.isclose(sequence_logprob(uniform, [0], [1, 2]), 2 * np.log(0.25)))
    True
    """
    ids = [int(i) for i in prompt_ids]
    if not ids:
        raise ValueError("prompt_ids is empty")
    total = 0.0
    for tok in continuation_ids:
        total += float(np.asarray(next_logprobs(list(ids)))[int(tok)])
        ids.append(int(tok))
    return total


# ============================================================================================
# LoRA: configuration, trainable-parameter budget
