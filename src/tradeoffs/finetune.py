"""Prompt engineering vs fine-tuning (Lab 5): prompts, label parsing, label likelihoods, LoRA, costs.

Everything Lab 5 needs to route support tickets to their intent with a real small LLM
(SmolLM2-135M-Instruct), once by *prompting* and once by *fine-tuning* with LoRA (``peft``), on the same
fixed test split:

* **Prompts** — :func:`build_prompt` writes one plain-text format for every rung of the prompting ladder
  (zero-shot, instructions with the label list, k-shot with random or retrieved examples) and for the
  fine-tuned model; :func:`chat_prompt` wraps it in the model's chat template with the answer prefix
  ``"Intent:"`` already written, so the model's next words are the label.
* **Free text** — :func:`generate_answers` lets the model answer in its own words; :func:`parse_label`
  maps any answer to a label or ``"unparsed"`` (robust to case, punctuation, markdown, negation).
* **Constrained answers** — :func:`score_labels` scores the log-likelihood of every label as the
  continuation of each prompt: one forward pass per batch of prompts (all label continuations are packed
  into the same sequence with a tree attention mask) and a key-value cache for the prefix every prompt
  shares (instructions, static few-shot examples). The classifier is the arg-max.
* **LoRA** — :class:`LoRAIntentClassifier` trains low-rank adapters with ``peft`` on ``prompt -> label``
  completions, loss on the label tokens only, and classifies by label likelihood. Adapters go on the
  top ``top_layers`` decoder layers; the frozen layers below them compute the same activations in every
  epoch and for every adapter, so :class:`StateCache` computes them once (the measured cost of doing so
  is still charged to each run's training time). :func:`lora_trainable_parameters` counts what a
  configuration trains; :func:`rank_for_budget` picks the largest rank within a parameter budget.
* **Investment curves** — :func:`cumulative_cost` and :func:`break_even_volume`: upfront cost plus cost
  per request, and the volume where two options cost the same.

Examples
--------
>>> print(build_prompt("my card was charged twice", labels=["billing", "delivery"],
...                    examples=[("where is my parcel", "delivery")]))
Intents: billing, delivery
<BLANKLINE>
Ticket: where is my parcel
Intent: delivery
<BLANKLINE>
Ticket: my card was charged twice
Intent:
>>> parse_label("**Intent:** Account_Access (not billing)", ["billing", "account_access"])
'account_access'
>>> break_even_volume(upfront_a=100.0, per_request_a=0.002, upfront_b=600.0, per_request_b=0.001)
500000.0
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import re
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

UNPARSED = "unparsed"
ANSWER_PREFIX = "Intent:"
DEFAULT_INSTRUCTIONS = "Classify the customer support ticket into exactly one intent."
DEFAULT_SYSTEM = "You route customer support tickets to the right team."
#: One line per intent, from the corpus's labelling guide (datasets/support_tickets/DATASHEET.md).
INTENT_DEFINITIONS = {
    "billing": "charges, invoices, payment methods, prices, plan changes about money",
    "refund": "wants money back",
    "delivery": "where or when something arrives, delivery problems, engineer visits",
    "account_access": "login, password, 2FA, locked or hijacked account, email change",
    "bug_report": "the product, app, website or device misbehaves",
    "cancellation": "wants to stop, close or not renew",
    "product_question": "how do I, does it, which plan: pre-sales or how-to",
    "complaint": "unhappy with service or staff, wants to be heard, no single concrete fix",
}
#: Other words a model uses for each intent in free text (normalised like the labels before matching).
DEFAULT_ALIASES = {
    "bill": "billing", "invoice": "billing", "payment": "billing", "charge": "billing",
    "refunds": "refund", "money back": "refund", "reimbursement": "refund",
    "shipping": "delivery", "shipment": "delivery", "deliveries": "delivery",
    "login": "account_access", "log in": "account_access", "password": "account_access",
    "account": "account_access", "sign in": "account_access",
    "bug": "bug_report", "bugs": "bug_report", "crash": "bug_report", "glitch": "bug_report",
    "technical issue": "bug_report",
    "cancel": "cancellation", "unsubscribe": "cancellation",
    "question": "product_question", "how to": "product_question",
    "complain": "complaint", "complaints": "complaint",
}
NEGATIONS = frozenset({"not", "no", "never"})
ATTENTION_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_MODULES = ("gate_proj", "up_proj", "down_proj")
ALL_LINEAR = ATTENTION_MODULES + MLP_MODULES
CLASSIFIER_FILE = "tradeoffs_classifier.json"


# ============================================================================================
# Labels and prompts
# ============================================================================================
def label_text(label: str) -> str:
    """How a label is written in prompts and answers: ``"account_access"`` -> ``"account access"``.

    Examples
    --------
    >>> label_text("bug_report")
    'bug report'
    """
    if not isinstance(label, str) or not label.strip():
        raise ValueError(f"a label must be a non-empty string, got {label!r}")
    return label.strip().replace("_", " ")


def clean_text(text: str) -> str:
    """Collapse every run of whitespace (newlines included) to one space and strip the ends.

    A ticket can then never start a line of its own in a prompt, so text such as
    ``"...\\nIntent: refund"`` inside a ticket cannot pose as an answer.

    Examples
    --------
    >>> clean_text("  two\\n\\nlines\\tand tabs ")
    'two lines and tabs'
    """
    if not isinstance(text, str):
        raise TypeError(f"expected a string, got {type(text).__name__}: {text!r}")
    return " ".join(text.split())


def _check_labels(labels: Sequence[str]) -> list[str]:
    labels = list(labels)
    if not labels:
        raise ValueError("labels is empty; pass the intents, e.g. tradeoffs.data.INTENTS")
    for lab in labels:
        label_text(lab)
    if len(set(labels)) != len(labels):
        raise ValueError(f"labels must be distinct, got {labels}")
    return labels


def build_prompt(text: str, *, labels: Sequence[str] | None = None,
                 examples: Iterable[tuple[str, str]] = (), instructions: str | None = None,
                 definitions: Mapping[str, str] | None = None) -> str:
    """Write one prompt in the kit's plain-text format.

    The format (each part only when given; a blank line separates blocks)::

        {instructions}
        Intents: billing, refund, ...            <- or one "- label: definition" line per label
        (blank line)
        Ticket: {example text}
        Intent: {example label}
        (blank line)
        Ticket: {text}
        Intent:

    Texts go through :func:`clean_text`; labels through :func:`label_text`.

    Parameters
    ----------
    text : str
        The ticket to classify (not empty).
    labels : sequence of str, optional
        The label list to show. Example labels must be in it when it is given.
    examples : iterable of (text, label)
        Few-shot examples, in the order they appear (put the most relevant last).
    instructions : str, optional
        A first line such as :data:`DEFAULT_INSTRUCTIONS`.
    definitions : mapping label -> str, optional
        Show ``- label: definition`` lines instead of the one-line label list (needs ``labels``).

    Examples
    --------
    >>> build_prompt("cant log in!!")
    'Ticket: cant log in!!\\nIntent:'
    """
    body = clean_text(text)
    if not body:
        raise ValueError("the ticket text is empty; nothing to classify")
    label_list = _check_labels(labels) if labels is not None else None
    if definitions is not None and label_list is None:
        raise ValueError("definitions need labels: pass labels=... too")
    header: list[str] = []
    if instructions is not None and clean_text(instructions):
        header.append(clean_text(instructions))
    if label_list is not None:
        if definitions is not None:
            missing = [lab for lab in label_list if lab not in definitions]
            if missing:
                raise ValueError(f"definitions has no entry for {missing}")
            header.append("Intents:")
            header += [f"- {label_text(lab)}: {clean_text(definitions[lab])}" for lab in label_list]
        else:
            header.append("Intents: " + ", ".join(label_text(lab) for lab in label_list))
    blocks = ["\n".join(header)] if header else []
    for item in examples:
        try:
            ex_text, ex_label = item
        except (TypeError, ValueError):
            raise ValueError(f"each example must be a (text, label) pair, got {item!r}") from None
        if label_list is not None and ex_label not in label_list:
            raise ValueError(f"example label {ex_label!r} is not one of the labels {label_list}")
        ex_body = clean_text(ex_text)
        if not ex_body:
            raise ValueError("an example's text is empty")
        blocks.append(f"Ticket: {ex_body}\n{ANSWER_PREFIX} {label_text(ex_label)}")
    blocks.append(f"Ticket: {body}\n{ANSWER_PREFIX}")
    return "\n\n".join(blocks)


def chat_prompt(tokenizer, prompt: str, system: str | None = DEFAULT_SYSTEM) -> str:
    """Wrap a :func:`build_prompt` prompt in the model's chat template, with ``"Intent:"`` pre-written.

    The user turn is the prompt without its last line; the assistant turn starts with ``"Intent:"``, so the
    model's next tokens are the answer (the same continuation, e.g. ``" billing"``, that the fine-tuned
    model and :func:`score_labels` use).

    Examples
    --------
    >>> chat = load_chat_model("cpu")                                       # doctest: +SKIP
    >>> chat_prompt(chat.tokenizer, build_prompt("refund pls")).endswith("assistant\\nIntent:")  # doctest: +SKIP
    True
    """
    suffix = "\n" + ANSWER_PREFIX
    if not prompt.endswith(suffix):
        raise ValueError(f"the prompt must end with a line {ANSWER_PREFIX!r}; build it with build_prompt()")
    messages = [] if system is None else [{"role": "system", "content": system}]
    messages.append({"role": "user", "content": prompt[: -len(suffix)]})
    head = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return head + ANSWER_PREFIX


def truncate_texts(tokenizer, texts: Sequence[str], max_tokens: int) -> list[str]:
    """Cut each (cleaned) text to its first ``max_tokens`` tokens; shorter texts are unchanged.

    Examples
    --------
    >>> truncate_texts(chat.tokenizer, ["a b c d e f"], 3)                    # doctest: +SKIP
    ['a b c']
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    out = []
    for text in texts:
        body = clean_text(text)
        ids = tokenizer(body, add_special_tokens=False)["input_ids"]
        out.append(body if len(ids) <= max_tokens else tokenizer.decode(ids[:max_tokens]).strip())
    return out


def count_tokens(tokenizer, prompts: Sequence[str]) -> np.ndarray:
    """Tokens in each (already formatted) prompt, as an int array.

    Examples
    --------
    >>> count_tokens(chat.tokenizer, ["Ticket: hi\\nIntent:"]).tolist()     # doctest: +SKIP
    [6]
    """
    return np.array([len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts], dtype=int)


# ============================================================================================
# Choosing few-shot examples
# ============================================================================================
def random_examples(n_pool: int, k: int, seed: int = 0) -> np.ndarray:
    """``k`` distinct random indices into a pool of ``n_pool`` labelled examples (a static prompt).

    Examples
    --------
    >>> random_examples(10, 3, seed=0).tolist()
    [5, 9, 6]
    """
    if k < 0 or k > n_pool:
        raise ValueError(f"cannot draw k={k} examples from a pool of {n_pool}")
    return np.random.default_rng(seed).choice(n_pool, size=k, replace=False)


def nearest_examples(query_embeddings: np.ndarray, pool_embeddings: np.ndarray, k: int) -> np.ndarray:
    """For each query, the indices of its ``k`` most similar pool rows (cosine), **least similar first**.

    The most similar example ends up last, right before the ticket, where a small model attends most.
    Rows need not be normalised. Ties go to the lower index.

    Returns
    -------
    np.ndarray of int, shape ``(n_queries, k)``

    Examples
    --------
    >>> pool = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]])
    >>> nearest_examples(np.array([[1.0, 0.1]]), pool, 2).tolist()
    [[2, 0]]
    """
    q = np.atleast_2d(np.asarray(query_embeddings, dtype=np.float64))
    p = np.atleast_2d(np.asarray(pool_embeddings, dtype=np.float64))
    if q.shape[1] != p.shape[1]:
        raise ValueError(f"queries have {q.shape[1]} dimensions but the pool has {p.shape[1]}")
    if not 0 <= k <= p.shape[0]:
        raise ValueError(f"k={k} must be between 0 and the pool size {p.shape[0]}")
    q = q / np.clip(np.linalg.norm(q, axis=1, keepdims=True), 1e-12, None)
    p = p / np.clip(np.linalg.norm(p, axis=1, keepdims=True), 1e-12, None)
    sims = q @ p.T
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return order[:, ::-1].copy()


# ============================================================================================
# Free-text answers and robust label parsing
# ============================================================================================
def _words(text: str) -> list[str]:
    text = text.lower().replace("n't", " not").replace("n\u2019t", " not")
    return re.sub(r"[^a-z0-9]+", " ", text).split()


def parse_label(output: str | None, labels: Sequence[str], aliases: Mapping[str, str] | None = None,
                unparsed: str = UNPARSED) -> str:
    """Map a model's free-text answer to one label, or ``unparsed``.

    Rules (the lab's graded parser implements exactly these):

    1. ``None`` or an answer with no words gives ``unparsed``.
    2. Normalise the answer: lower-case, ``n't`` -> `` not``, every character other than ``a-z0-9``
       becomes a space, split into words. Each label (and each alias) is normalised the same way, so
       ``"account_access"``, ``"Account-Access"`` and ``"account access"`` are one form.
    3. Walk the words left to right; at each position take the **longest** form that matches the words
       there. A match whose previous word is a negation (``not``, ``no``, ``never``) is skipped.
    4. Return the label of the first match; ``unparsed`` when nothing matches.

    Parameters
    ----------
    output : str or None
    labels : sequence of str
    aliases : mapping str -> label, optional
        Extra forms, e.g. ``{"cancel": "cancellation"}`` (:data:`DEFAULT_ALIASES`).

    Examples
    --------
    >>> labels = ["billing", "refund", "bug_report"]
    >>> parse_label("It's not billing, it's a REFUND.", labels)
    'refund'
    >>> parse_label("Bug-Report", labels), parse_label("no idea", labels)
    ('bug_report', 'unparsed')
    """
    labels = _check_labels(labels)
    if output is None:
        return unparsed
    if not isinstance(output, str):
        raise TypeError(f"output must be a string or None, got {type(output).__name__}: {output!r}")
    forms: dict[tuple[str, ...], str] = {}
    for alias, target in (aliases or {}).items():
        if target not in labels:
            raise ValueError(f"alias {alias!r} points at {target!r}, which is not one of {labels}")
        key = tuple(_words(alias))
        if key:
            forms[key] = target
    for lab in labels:  # a label's own name wins over an alias spelled the same
        forms[tuple(_words(lab))] = lab
    words = _words(output)
    by_length = sorted(forms, key=len, reverse=True)
    for i in range(len(words)):
        for form in by_length:
            if tuple(words[i:i + len(form)]) == form:
                if i == 0 or words[i - 1] not in NEGATIONS:
                    return forms[form]
                break  # the longest form here is negated: move on
    return unparsed


def parse_labels(outputs: Iterable[str | None], labels: Sequence[str],
                 aliases: Mapping[str, str] | None = None) -> list[str]:
    """:func:`parse_label` over many answers.

    Examples
    --------
    >>> parse_labels(["refund", "??"], ["refund"])
    ['refund', 'unparsed']
    """
    return [parse_label(o, labels, aliases) for o in outputs]


def generate_answers(model, tokenizer, prompts: Sequence[str], *, max_new_tokens: int = 12,
                     batch_size: int = 8, progress: bool = False) -> list[str]:
    """Greedy free-text answers to already formatted prompts (e.g. from :func:`chat_prompt`).

    Prompts are batched by length and padded on the left; the answers come back in input order,
    stripped, without special tokens.

    Examples
    --------
    >>> generate_answers(chat.model, chat.tokenizer, [chat_prompt(chat.tokenizer, build_prompt("refund?"))])  # doctest: +SKIP
    [' refund']
    """
    import torch

    if max_new_tokens < 1 or batch_size < 1:
        raise ValueError("max_new_tokens and batch_size must be >= 1")
    prompts = list(prompts)
    if not prompts:
        return []
    device = _model_device(model)
    lengths = count_tokens(tokenizer, prompts)
    order = np.argsort(lengths, kind="stable")
    answers: list[str] = [""] * len(prompts)
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    starts = range(0, len(prompts), batch_size)
    try:
        for start in _progress(starts, progress, f"generating {len(prompts)} answers"):
            idx = order[start:start + batch_size]
            batch = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True,
                              add_special_tokens=False).to(device)
            with torch.inference_mode():
                out = model.generate(**batch, max_new_tokens=int(max_new_tokens), do_sample=False,
                                     pad_token_id=pad)
            texts = tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
            for i, t in zip(idx, texts):
                answers[i] = t.strip()
    finally:
        tokenizer.padding_side = side
    return answers


# ============================================================================================
# Likelihood of each label (constrained answers)
# ============================================================================================
def _progress(iterable, show: bool, desc: str):
    if not show:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, leave=False)


def _model_device(model):
    return next(model.parameters()).device


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
        Fully formatted prompts ending with the answer prefix (:func:`chat_prompt` or :func:`build_prompt`).
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
    >>> s = score_labels(chat.model, chat.tokenizer, [build_prompt("refund me")], ["refund", "delivery"])  # doctest: +SKIP
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
CONTENT_FREE = ("N/A", "[MASK]", "none")


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
# ============================================================================================
def _layer_index(name: str) -> int | None:
    match = re.search(r"\.layers\.(\d+)\.", name)
    return int(match.group(1)) if match else None


def top_layer_indices(model, top_layers: int | None) -> list[int]:
    """Indices of the top ``top_layers`` decoder layers (all layers when None).

    Examples
    --------
    >>> top_layer_indices(chat.model, 4)                                    # doctest: +SKIP
    [26, 27, 28, 29]
    """
    total = n_layers(model)
    if top_layers is None:
        return list(range(total))
    if isinstance(top_layers, bool) or not isinstance(top_layers, (int, np.integer)) or not 1 <= top_layers <= total:
        raise ValueError(f"top_layers must be between 1 and {total} (or None for all), got {top_layers!r}")
    return list(range(total - int(top_layers), total))


def lora_trainable_parameters(model, r: int, target_modules: Sequence[str] = ATTENTION_MODULES,
                              layers: Sequence[int] | None = None) -> int:
    """How many parameters LoRA of rank ``r`` trains: ``r * (in + out)`` per adapted linear layer.

    A ``d_out x d_in`` weight gets ``A`` (``r x d_in``) and ``B`` (``d_out x r``). Adapted layers are the
    ``nn.Linear`` modules whose name ends with one of ``target_modules`` and, when ``layers`` is given,
    that sit in one of those decoder layers.

    Examples
    --------
    >>> lora_trainable_parameters(chat.model, 8, ["q_proj", "v_proj"])       # doctest: +SKIP
    460800
    """
    import torch

    if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or r < 1:
        raise ValueError(f"r must be a positive integer, got {r!r}")
    targets = tuple(target_modules)
    if not targets:
        raise ValueError("target_modules is empty; e.g. ('q_proj', 'v_proj')")
    keep = None if layers is None else set(int(i) for i in layers)
    total = 0
    found = False
    for name, module in _causal_lm(model).named_modules():
        if isinstance(module, torch.nn.Linear) and name.split(".")[-1] in targets:
            idx = _layer_index(name)
            if idx is None or (keep is not None and idx not in keep):
                continue
            found = True
            total += int(r) * (module.in_features + module.out_features)
    if not found:
        raise ValueError(f"no linear layer named {targets} in the selected layers; the model's projections "
                         f"are {sorted({n.split('.')[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)})}")
    return total


def rank_for_budget(model, budget: int, target_modules: Sequence[str] = ATTENTION_MODULES,
                    layers: Sequence[int] | None = None, ranks: Sequence[int] = (1, 2, 4, 8, 16, 32, 64)) -> int:
    """The largest rank in ``ranks`` whose trainable parameters fit in ``budget``.

    Raises
    ------
    ValueError
        When even the smallest rank is over budget.

    Examples
    --------
    >>> rank_for_budget(chat.model, 200_000, ["q_proj", "v_proj"])          # doctest: +SKIP
    2
    """
    fitting = [r for r in sorted(ranks) if lora_trainable_parameters(model, r, target_modules, layers) <= budget]
    if not fitting:
        raise ValueError(f"even rank {min(ranks)} needs "
                         f"{lora_trainable_parameters(model, min(ranks), target_modules, layers):,} parameters, "
                         f"over the budget of {budget:,}; adapt fewer modules or layers")
    return fitting[-1]


def lora_config(r: int = 8, alpha: int | None = None, dropout: float = 0.05,
                target_modules: Sequence[str] = ATTENTION_MODULES, layers: Sequence[int] | None = None):
    """A ``peft.LoraConfig`` for a causal LM (``alpha`` defaults to ``2 * r``).

    Examples
    --------
    >>> cfg = lora_config(4, layers=[28, 29]); cfg.r, cfg.lora_alpha, sorted(cfg.target_modules)[:2]
    (4, 8, ['k_proj', 'o_proj'])
    """
    from peft import LoraConfig, TaskType

    if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or r < 1:
        raise ValueError(f"r must be a positive integer, got {r!r}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    kwargs: dict[str, Any] = {}
    if layers is not None:
        kwargs.update(layers_to_transform=sorted(int(i) for i in layers), layers_pattern="layers")
    return LoraConfig(r=int(r), lora_alpha=int(alpha if alpha is not None else 2 * r), lora_dropout=float(dropout),
                      target_modules=list(target_modules), bias="none", task_type=TaskType.CAUSAL_LM, **kwargs)


# ============================================================================================
# Frozen activations, computed once
# ============================================================================================
class StateCache:
    """Hidden states entering the first adapted layer, for token sequences, computed once.

    Layers below the first adapter are frozen: for a given sequence their output is the same in every
    epoch and for every adapter trained on the same base model. The cache stores them (float32, on the CPU)
    with the seconds it took to compute each, so a run that reuses them can still be charged for them.

    The first model that uses the cache fixes its *fingerprint* (the frozen layers' weights); a model with
    different frozen weights is refused.
    """

    def __init__(self) -> None:
        self._states: dict[tuple, Any] = {}
        self._seconds: dict[tuple, float] = {}
        self._fingerprint: tuple | None = None

    def __len__(self) -> int:
        return len(self._states)

    @staticmethod
    def _fingerprint_of(model, split: int) -> tuple:
        import torch

        lm = _causal_lm(model)
        parts: list[float] = [float(lm.model.embed_tokens.weight[:8].double().sum())]
        for layer in list(lm.model.layers)[:split]:
            for p in layer.parameters():
                parts.append(float(p.detach().flatten()[:64].double().sum()))
        return (split, type(lm).__name__, int(lm.config.hidden_size), round(float(torch.tensor(parts).sum()), 6))

    def get(self, model, split: int, rows: Sequence[tuple[Sequence[int], Sequence[Sequence[int]]]], pad_id: int,
            batch_size: int = 16, progress: bool = False) -> tuple[list, float]:
        """States for each row ``(prompt_ids, branches)``; returns them and the seconds they cost."""
        import torch

        fp = self._fingerprint_of(model, split)
        if self._fingerprint is None:
            self._fingerprint = fp
        elif fp != self._fingerprint:
            raise ValueError("this StateCache was filled by a model with other frozen weights or another "
                             "number of frozen layers; use one StateCache per base model and top_layers")
        keys = [(tuple(p), tuple(tuple(b) for b in br)) for p, br in rows]
        todo = sorted({k for k in keys if k not in self._states}, key=lambda k: (k[1], len(k[0])))
        groups: dict[tuple, list] = {}
        for k in todo:  # rows with the same label branches share a batch layout
            groups.setdefault(k[1], []).append(k)
        chunks = [g[i:i + batch_size] for g in groups.values() for i in range(0, len(g), batch_size)]
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                for chunk in _progress(chunks, progress, f"frozen layers for {len(todo)} sequences"):
                    self._compute(chunk, model, split, pad_id)
        finally:
            model.train(was_training)
        return [self._states[k] for k in keys], float(sum(self._seconds[k] for k in keys))

    def _compute(self, chunk, model, split, pad_id):
        batch = _tree_batch([k[0] for k in chunk], [list(b) for b in chunk[0][1]], 0, pad_id)
        t0 = time.perf_counter()
        h = _hidden(model, batch, start=0, stop=split, final_norm=False)
        elapsed = time.perf_counter() - t0
        total = sum(batch.lengths)
        for row, k in enumerate(chunk):
            self._states[k] = h[row, :batch.lengths[row]].detach().float().cpu().clone()
            self._seconds[k] = elapsed * batch.lengths[row] / total


@contextlib.contextmanager
def _quiet_peft():
    """peft 0.21 calls a transformers method that transformers 5.24 marks deprecated; silence only that."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def _pad_states(states: Sequence, device, dtype):
    import torch

    T = max(s.shape[0] for s in states)
    H = states[0].shape[1]
    out = torch.zeros((len(states), T, H), dtype=dtype, device=device)
    for i, s in enumerate(states):
        out[i, :s.shape[0]] = s.to(device=device, dtype=dtype)
    return out


# ============================================================================================
# The LoRA classifier
# ============================================================================================
@dataclass
class TrainReport:
    """What one LoRA training run did and cost (seconds measured on this machine)."""

    n_examples: int
    epochs: float
    steps: int
    batch_size: int
    losses: list[float]
    loop_seconds: float            # optimiser steps over the adapted layers
    frozen_seconds: float          # computing (or the measured cost of the cached) frozen-layer states
    trainable_parameters: int
    total_parameters: int
    device: str

    @property
    def seconds(self) -> float:
        """Training time charged to this run: the loop plus the frozen-layer states it used."""
        return self.loop_seconds + self.frozen_seconds

    @property
    def examples_per_s(self) -> float:
        """Training examples processed per second (``examples x epochs / seconds``)."""
        return self.n_examples * self.epochs / max(self.seconds, 1e-12)

    @property
    def trainable_ratio(self) -> float:
        return self.trainable_parameters / self.total_parameters

    def as_row(self) -> dict[str, Any]:
        row = asdict(self)
        row.pop("losses")
        row.update(seconds=self.seconds, examples_per_s=self.examples_per_s, trainable_ratio=self.trainable_ratio,
                   first_loss=self.losses[0] if self.losses else float("nan"),
                   last_loss=float(np.mean(self.losses[-max(1, len(self.losses) // 5):])) if self.losses else float("nan"))
        return row


class LoRAIntentClassifier:
    """An intent classifier made by fine-tuning a causal LM with LoRA on ``prompt -> label`` completions.

    The prompt is the short fine-tuning format ``build_prompt(text)`` (``"Ticket: ...\\nIntent:"``: no
    instructions, no label list: the adapter learns them); the target is ``" " + label_text(label)`` and the
    loss covers the label tokens only. Prediction scores every label's likelihood, like the constrained
    prompting rung, so both are read the same way.

    Parameters
    ----------
    chat : tradeoffs.models.ChatModel
        Base model and tokenizer. Its model is never modified: the classifier trains a deep copy.
    labels : sequence of str
    r, alpha, dropout, target_modules : LoRA settings (see :func:`lora_config`).
    top_layers : int or None
        Adapt the top ``top_layers`` decoder layers (None: all). The frozen layers below are run once per
        sequence (:class:`StateCache`).
    lr, epochs, batch_size, min_steps : optimisation. Steps = ``max(min_steps, ceil(epochs * n / batch_size))``,
        AdamW, linear warm-up over the first 10% then linear decay to zero.
    max_text_tokens : int
        Tickets are cut to this many tokens.
    seed : int
    cache : StateCache, optional
        Share one between classifiers built on the same base model and ``top_layers`` (learning curves).

    Examples
    --------
    >>> clf = LoRAIntentClassifier(chat, ["billing", "refund"], epochs=2).fit(texts, y)   # doctest: +SKIP
    >>> clf.predict(["charged twice this month"])                                        # doctest: +SKIP
    array(['billing'], dtype=object)
    """

    def __init__(self, chat, labels: Sequence[str], *, r: int = 8, alpha: int | None = None, dropout: float = 0.05,
                 target_modules: Sequence[str] = ALL_LINEAR, top_layers: int | None = 4, lr: float = 5e-3,
                 epochs: float = 3.0, batch_size: int = 8, min_steps: int = 20, max_text_tokens: int = 128,
                 seed: int = 0, cache: StateCache | None = None) -> None:
        self.chat = chat
        self.labels = _check_labels(labels)
        self.r, self.alpha, self.dropout = r, alpha, dropout
        self.target_modules = tuple(target_modules)
        self.top_layers = top_layers
        self.lr, self.epochs, self.batch_size, self.min_steps = float(lr), float(epochs), int(batch_size), int(min_steps)
        self.max_text_tokens = int(max_text_tokens)
        self.seed = int(seed)
        self.cache = cache if cache is not None else StateCache()
        if self.lr <= 0 or self.epochs <= 0 or self.batch_size < 1 or self.min_steps < 0:
            raise ValueError("lr and epochs must be > 0, batch_size >= 1, min_steps >= 0")
        self.layers = top_layer_indices(chat.model, top_layers)
        self.split = self.layers[0]
        self.config = lora_config(r, alpha, dropout, self.target_modules, None if top_layers is None else self.layers)
        self.model = None
        self.merged = False
        self.train_report_: TrainReport | None = None

    # ---------------------------------------------------------------- prompts and tokens
    @property
    def tokenizer(self):
        return self.chat.tokenizer

    def prompts(self, texts: Sequence[str]) -> list[str]:
        """The fine-tuning prompt of each text (``build_prompt`` of the truncated text)."""
        return [build_prompt(t) for t in truncate_texts(self.tokenizer, texts, self.max_text_tokens)]

    def _ids(self, prompts: Sequence[str]) -> list[list[int]]:
        return [list(self.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]

    @property
    def _pad(self) -> int:
        tok = self.tokenizer
        return tok.pad_token_id if tok.pad_token_id is not None else 0

    def _require_model(self):
        if self.model is None:
            raise RuntimeError("this classifier has no adapter yet: call fit(texts, labels) or load(...) first")
        return self.model

    def _new_model(self):
        from peft import get_peft_model

        import torch

        torch.manual_seed(self.seed)
        with _quiet_peft():
            return get_peft_model(copy.deepcopy(self.chat.model), self.config)

    # ---------------------------------------------------------------- training
    def fit(self, texts: Sequence[str], labels: Sequence[str], progress: bool = False) -> "LoRAIntentClassifier":
        """Train a fresh adapter on ``texts`` with gold ``labels``; the report is in ``train_report_``."""
        import torch

        texts, labels = list(texts), list(labels)
        if len(texts) != len(labels) or not texts:
            raise ValueError(f"need as many labels as texts (at least one), got {len(texts)} and {len(labels)}")
        bad = sorted({lab for lab in labels if lab not in self.labels})
        if bad:
            raise ValueError(f"labels {bad} are not among the classifier's labels {self.labels}")
        self.model = self._new_model()
        self.merged = False
        model = self.model
        device = _model_device(model)
        lab_ids = dict(zip(self.labels, label_token_ids(self.tokenizer, self.labels)))
        prompt_ids = self._ids(self.prompts(texts))
        seqs = [p + lab_ids[y] for p, y in zip(prompt_ids, labels)]
        targets = [(len(p), lab_ids[y]) for p, y in zip(prompt_ids, labels)]
        states, frozen_seconds = self.cache.get(model, self.split, [(s, []) for s in seqs], self._pad,
                                                progress=progress)
        params = [p for p in model.parameters() if p.requires_grad]
        optimiser = torch.optim.AdamW(params, lr=self.lr, weight_decay=0.0)
        n = len(seqs)
        steps = max(self.min_steps, math.ceil(self.epochs * n / self.batch_size))
        warmup = max(1, steps // 10)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimiser, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup))))
        rng = np.random.default_rng(self.seed)
        head = _causal_lm(model).get_output_embeddings()
        dtype = next(head.parameters()).dtype
        losses: list[float] = []
        queue: list[int] = []
        model.train()
        t0 = time.perf_counter()
        for _ in _progress(range(steps), progress, f"LoRA on {n} examples"):
            if len(queue) < self.batch_size:
                perm = rng.permutation(n).tolist()
                queue += perm
            idx, queue = queue[:self.batch_size], queue[self.batch_size:]
            batch = _tree_batch([seqs[i] for i in idx], [], 0, self._pad)
            hidden = _hidden(model, batch, start=self.split, inputs_embeds=_pad_states([states[i] for i in idx], device, dtype))
            rows, cols, tgt = [], [], []
            for b, i in enumerate(idx):
                q, ids = targets[i]
                for t, tok in enumerate(ids):
                    rows.append(b)
                    cols.append(q - 1 + t)
                    tgt.append(tok)
            logits = head(hidden[rows, cols]).float()
            loss = torch.nn.functional.cross_entropy(logits, torch.as_tensor(tgt, device=logits.device))
            loss.backward()
            optimiser.step()
            schedule.step()
            optimiser.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        loop_seconds = time.perf_counter() - t0
        model.eval()
        trainable, total = model.get_nb_trainable_parameters()
        self.train_report_ = TrainReport(n_examples=n, epochs=steps * self.batch_size / n, steps=steps,
                                         batch_size=self.batch_size, losses=losses, loop_seconds=loop_seconds,
                                         frozen_seconds=frozen_seconds, trainable_parameters=int(trainable),
                                         total_parameters=int(total), device=str(device))
        return self

    # ---------------------------------------------------------------- prediction
    def decision_function(self, texts: Sequence[str], batch_size: int = 16, progress: bool = False) -> np.ndarray:
        """Label log-likelihoods ``(n, L)``, reusing the cached frozen-layer states (fast path)."""
        import torch

        model = self._require_model()
        texts = list(texts)
        if not texts:
            return np.zeros((0, len(self.labels)))
        lab_ids = label_token_ids(self.tokenizer, self.labels)
        branches = [ids[:-1] for ids in lab_ids]
        prompt_ids = self._ids(self.prompts(texts))
        states, _ = self.cache.get(model, self.split, [(p, branches) for p in prompt_ids], self._pad,
                                   progress=progress)
        device = _model_device(model)
        dtype = next(_causal_lm(model).get_output_embeddings().parameters()).dtype
        order = np.argsort([len(p) for p in prompt_ids], kind="stable")
        out = np.zeros((len(texts), len(self.labels)))
        model.eval()
        with torch.inference_mode():
            for start in _progress(range(0, len(texts), batch_size), progress, f"LoRA scoring {len(texts)}"):
                idx = order[start:start + batch_size]
                batch = _tree_batch([prompt_ids[i] for i in idx], branches, 0, self._pad)
                hidden = _hidden(model, batch, start=self.split,
                                 inputs_embeds=_pad_states([states[i] for i in idx], device, dtype))
                out[idx] = _label_scores(model, batch, hidden, lab_ids).cpu().numpy()
        return out

    def score_full(self, texts: Sequence[str], batch_size: int = 16, prefix_cache: bool = False) -> np.ndarray:
        """Label log-likelihoods through the whole model, no cached states (what one live request runs)."""
        return score_labels(self._require_model(), self.tokenizer, self.prompts(texts), self.labels,
                            batch_size=batch_size, prefix_cache=prefix_cache)

    def predict(self, texts: Sequence[str], full: bool = False) -> np.ndarray:
        """Predicted labels (object array); ``full=True`` runs :meth:`score_full` instead of the fast path."""
        scores = self.score_full(texts) if full else self.decision_function(texts)
        return predict_from_scores(scores, self.labels)

    # ---------------------------------------------------------------- size, save, load, merge
    def trainable_parameters(self) -> tuple[int, int]:
        """``(trainable, total)`` parameters of the adapted model (peft's count)."""
        model = self._require_model()
        if self.merged:
            total = sum(p.numel() for p in model.parameters())
            return 0, int(total)
        t, a = model.get_nb_trainable_parameters()
        return int(t), int(a)

    def save(self, path: str | os.PathLike) -> Path:
        """Save the adapter (peft format) and the classifier settings to a folder, atomically."""
        model = self._require_model()
        if self.merged:
            raise RuntimeError("the adapter was merged into the weights; save before merge()")
        from .models import atomic_directory

        path = Path(path)
        with atomic_directory(path) as tmp:
            model.save_pretrained(tmp)
            settings = {"labels": self.labels, "r": self.r, "alpha": self.alpha, "dropout": self.dropout,
                        "target_modules": list(self.target_modules), "top_layers": self.top_layers,
                        "max_text_tokens": self.max_text_tokens, "base_model": getattr(self.chat, "name", "")}
            (tmp / CLASSIFIER_FILE).write_text(json.dumps(settings, indent=2))
        return path

    @classmethod
    def load(cls, chat, path: str | os.PathLike, cache: StateCache | None = None) -> "LoRAIntentClassifier":
        """Rebuild a saved classifier on a copy of ``chat``'s base model."""
        from peft import PeftModel

        path = Path(path)
        settings_file = path / CLASSIFIER_FILE
        if not settings_file.exists():
            raise FileNotFoundError(f"{path} is not a saved LoRAIntentClassifier (no {CLASSIFIER_FILE}); "
                                    "save one with clf.save(path)")
        s = json.loads(settings_file.read_text())
        clf = cls(chat, s["labels"], r=s["r"], alpha=s["alpha"], dropout=s["dropout"],
                  target_modules=s["target_modules"], top_layers=s["top_layers"],
                  max_text_tokens=s["max_text_tokens"], cache=cache)
        with _quiet_peft():
            clf.model = PeftModel.from_pretrained(copy.deepcopy(chat.model), str(path))
        clf.model.eval()
        return clf

    def merge(self) -> "LoRAIntentClassifier":
        """Fold the adapter into the weights (``W + BA``): a plain model, no extra matmuls per request."""
        model = self._require_model()
        if not self.merged:
            self.model = model.merge_and_unload()
            self.model.eval()
            self.merged = True
        return self


def directory_size(path: str | os.PathLike) -> int:
    """Bytes of all files under ``path`` (a file's own size for a file).

    Examples
    --------
    >>> directory_size(tempfile.mkdtemp())
    0
    """
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


# ============================================================================================
# Evaluation
# ============================================================================================
def evaluate(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str], *, n_boot: int = 2000,
             level: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Accuracy (with a bootstrap interval), macro-F1 over ``labels`` and the share of ``unparsed`` answers.

    Predictions outside ``labels`` (``"unparsed"``) count as wrong.

    Examples
    --------
    >>> r = evaluate(["a", "b", "a", "b"], ["a", "b", "unparsed", "a"], ["a", "b"], n_boot=200)
    >>> r["accuracy"], r["unparsed"]
    (0.5, 0.25)
    """
    from sklearn.metrics import f1_score

    from .measure import bootstrap_ci

    y_true = np.asarray(list(y_true), dtype=object)
    y_pred = np.asarray(list(y_pred), dtype=object)
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError(f"y_true and y_pred must be non-empty and the same length, got {y_true.size} and {y_pred.size}")
    labels = _check_labels(labels)
    correct = (y_true == y_pred).astype(float)
    if correct.min() == correct.max():
        low = high = float(correct[0])
    else:
        low, high = bootstrap_ci(correct, stat=np.mean, level=level, n_boot=n_boot, seed=seed)
    return {"n": int(y_true.size), "accuracy": float(correct.mean()), "acc_low": low, "acc_high": high,
            "macro_f1": float(f1_score(list(y_true), list(y_pred), labels=labels, average="macro", zero_division=0)),
            "unparsed": float(np.mean([p not in labels for p in y_pred]))}


def paired_accuracy_diff(y_true: Sequence[str], pred_a: Sequence[str], pred_b: Sequence[str], *, n_boot: int = 2000,
                         level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """Accuracy of ``a`` minus accuracy of ``b`` on the same rows, with a paired bootstrap interval.

    Examples
    --------
    >>> d, lo, hi = paired_accuracy_diff(list("aaaa"), list("aaab"), list("abbb"), n_boot=200)
    >>> d
    0.5
    """
    from .measure import bootstrap_ci

    y = np.asarray(list(y_true), dtype=object)
    a = np.asarray(list(pred_a), dtype=object)
    b = np.asarray(list(pred_b), dtype=object)
    if not (y.shape == a.shape == b.shape) or y.size == 0:
        raise ValueError("y_true, pred_a and pred_b must be non-empty and the same length")
    delta = (a == y).astype(float) - (b == y).astype(float)
    if delta.min() == delta.max():
        return float(delta.mean()), float(delta[0]), float(delta[0])
    low, high = bootstrap_ci(delta, stat=np.mean, level=level, n_boot=n_boot, seed=seed)
    return float(delta.mean()), low, high


def time_requests(fn: Callable[[Any], Any], items: Sequence[Any], *, warmup: int = 1, device=None,
                  label: str = ""):
    """Time ``fn(item)`` once per item (a request each), after ``warmup`` untimed calls.

    Returns a :class:`tradeoffs.measure.Timing` (seconds per request, every sample kept).

    Examples
    --------
    >>> t = time_requests(lambda x: sum(range(x)), [1000, 2000, 3000])
    >>> t.n
    3
    """
    from .measure import time_fn

    items = list(items)
    if not items:
        raise ValueError("items is empty: time at least one request")
    for item in items[:warmup]:
        fn(item)
    position = iter(range(len(items)))
    return time_fn(lambda: fn(items[next(position)]), repeats=len(items), warmup=0, device=device, label=label,
                   max_repeats=len(items))


# ============================================================================================
# Investment curves
# ============================================================================================
def cumulative_cost(volumes, upfront_usd: float, usd_per_request: float) -> np.ndarray:
    """Total spend after each volume of requests: ``upfront + per_request x volume``.

    Examples
    --------
    >>> cumulative_cost([0, 1000], 50.0, 0.01).tolist()
    [50.0, 60.0]
    """
    v = np.asarray(volumes, dtype=float)
    for name, value in (("upfront_usd", upfront_usd), ("usd_per_request", usd_per_request)):
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if np.any(v < 0) or not np.all(np.isfinite(v)):
        raise ValueError("volumes must be finite and >= 0")
    return upfront_usd + usd_per_request * v


def break_even_volume(upfront_a: float, per_request_a: float, upfront_b: float, per_request_b: float) -> float:
    """The request volume from which option ``b`` is never more expensive than option ``a``.

    Costs are ``upfront + per_request x volume``. Returns ``0.0`` when ``b`` is no dearer from the start
    and never falls behind, ``inf`` when ``b`` ends up dearer for ever (it costs more per request, or the
    same per request with a higher upfront), else ``(upfront_b - upfront_a) / (per_request_a - per_request_b)``.

    Raises
    ------
    ValueError
        For a negative, NaN or infinite cost.

    Examples
    --------
    >>> round(break_even_volume(0.0, 0.003, 900.0, 0.0012))    # prompt: no upfront; LoRA: $900 upfront
    500000
    >>> break_even_volume(0.0, 0.001, 900.0, 0.002)
    inf
    """
    values = {"upfront_a": upfront_a, "per_request_a": per_request_a, "upfront_b": upfront_b,
              "per_request_b": per_request_b}
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                or not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if per_request_b > per_request_a:
        return math.inf
    if per_request_b == per_request_a:
        return 0.0 if upfront_b <= upfront_a else math.inf
    return float(max(0.0, (upfront_b - upfront_a) / (per_request_a - per_request_b)))


def compute_usd_per_request(seconds_per_request: float, usd_per_hour: float) -> float:
    """Machine cost of one request: measured seconds x the machine's hourly price / 3600.

    Examples
    --------
    >>> round(compute_usd_per_request(0.36, 0.1), 12)
    1e-05
    """
    if seconds_per_request < 0 or usd_per_hour < 0:
        raise ValueError("seconds_per_request and usd_per_hour must be >= 0")
    return seconds_per_request * usd_per_hour / 3600.0


@dataclass
class Option:
    """One way to build the classifier, in dollars: what it costs before the first request and per request.

    Examples
    --------
    >>> Option("prompt", upfront_usd=10.0, usd_per_request=0.001).cost([0, 1000]).tolist()
    [10.0, 11.0]
    """

    name: str
    upfront_usd: float
    usd_per_request: float
    accuracy: float = float("nan")
    notes: dict[str, float] = field(default_factory=dict)

    def cost(self, volumes) -> np.ndarray:
        return cumulative_cost(volumes, self.upfront_usd, self.usd_per_request)


__all__ = [
    "UNPARSED", "ANSWER_PREFIX", "DEFAULT_INSTRUCTIONS", "DEFAULT_SYSTEM", "INTENT_DEFINITIONS", "DEFAULT_ALIASES",
    "ATTENTION_MODULES", "MLP_MODULES", "ALL_LINEAR", "label_text", "clean_text", "build_prompt", "chat_prompt",
    "truncate_texts", "count_tokens", "random_examples", "nearest_examples", "parse_label", "parse_labels",
    "generate_answers", "label_token_ids", "score_labels", "predict_from_scores", "CONTENT_FREE", "calibrate_scores",
    "next_token_logprobs",
    "sequence_logprob", "n_layers", "top_layer_indices", "lora_trainable_parameters", "rank_for_budget",
    "lora_config", "StateCache", "TrainReport", "LoRAIntentClassifier", "directory_size", "evaluate",
    "paired_accuracy_diff", "time_requests", "cumulative_cost", "break_even_volume", "compute_usd_per_request",
    "Option",
]
