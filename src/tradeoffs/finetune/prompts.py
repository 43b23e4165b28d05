"""Prompts for the prompting ladder: constants, the chat template, truncation, few-shot example choice,
and free-text generation.

The prompt *format* itself (instructions, label list, few-shot blocks, the ticket) is written by the
learner in Lab 5 (Part 1); this module holds what wraps and feeds it: :func:`chat_prompt` puts a prompt
that ends with the line ``"Intent:"`` into the model's chat template with the answer already begun,
:func:`nearest_examples` and :func:`random_examples` choose few-shot examples, :func:`generate_answers`
lets the model answer in its own words.

Examples
--------
>>> label_text("account_access")
'account access'
>>> random_examples(10, 3, seed=0).tolist()
[5, 9, 6]
"""

from __future__ import annotations

from typing import Mapping, Sequence

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
#: Inputs with no content, for contextual calibration (Zhao et al. 2021 use "N/A", "" and "[MASK]").
CONTENT_FREE = ("N/A", "[MASK]", "none")


# ============================================================================================
# Labels and texts
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



def _clean(text: str) -> str:
    """Every run of whitespace (newlines included) becomes one space; the ends are stripped."""
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




def definitions_text(labels: Sequence[str], definitions: Mapping[str, str] = INTENT_DEFINITIONS) -> str:
    """One line that defines each label, to append to the instructions of a prompt.

    Examples
    --------
    >>> definitions_text(["refund", "bug_report"])
    'Definitions: refund = wants money back; bug report = the product, app, website or device misbehaves.'
    """
    labels = _check_labels(labels)
    missing = [lab for lab in labels if lab not in definitions]
    if missing:
        raise ValueError(f"definitions has no entry for {missing}")
    return "Definitions: " + "; ".join(f"{label_text(lab)} = {_clean(definitions[lab])}" for lab in labels) + "."


def chat_prompt(tokenizer, prompt: str, system: str | None = DEFAULT_SYSTEM) -> str:
    """Wrap a plain-text prompt in the model's chat template, with ``"Intent:"`` pre-written.

    The user turn is the prompt without its last line; the assistant turn starts with ``"Intent:"``, so the
    model's next tokens are the answer (the same continuation, e.g. ``" billing"``, that the fine-tuned
    model and :func:`score_labels` use).

    Examples
    --------
    >>> chat = load_chat_model("cpu")                                       # doctest: +SKIP
    >>> chat_prompt(chat.tokenizer, "Ticket: refund pls\\nIntent:").endswith("assistant\\nIntent:")  # doctest: +SKIP
    True
    """
    suffix = "\n" + ANSWER_PREFIX
    if not prompt.endswith(suffix):
        raise ValueError(f"the prompt must end with a line {ANSWER_PREFIX!r} (the prompt format of Lab 5, Part 1)")
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
        body = _clean(text)
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
# Free-text answers
# ============================================================================================
def generate_answers(model, tokenizer, prompts: Sequence[str], *, max_new_tokens: int = 12,
                     batch_size: int = 8, progress: bool = False) -> list[str]:
    """Greedy free-text answers to already formatted prompts (e.g. from :func:`chat_prompt`).

    Prompts are batched by length and padded on the left; the answers come back in input order,
    stripped, without special tokens.

    Examples
    --------
    >>> generate_answers(chat.model, chat.tokenizer, [chat_prompt(chat.tokenizer, "Ticket: refund?\\nIntent:")])  # doctest: +SKIP
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


def _progress(iterable, show: bool, desc: str):
    if not show:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, leave=False)


def _model_device(model):
    return next(model.parameters()).device
