"""LoRA fine-tuning: adapters with ``peft``, frozen activations computed once, the classifier.

:class:`LoRAIntentClassifier` trains low-rank adapters on ``prompt -> label`` completions (loss on the
label tokens only) and classifies by label likelihood, like the constrained prompting rung. Adapters go on
the top ``top_layers`` decoder layers; the frozen layers below compute the same activations in every epoch
and for every adapter, so :class:`StateCache` computes them once (their measured cost is still charged to
each run's training time). Each optimiser step packs its batch into one row with a block-diagonal
attention mask, so no compute is spent on padding.

Examples
--------
>>> cfg = lora_config(4, layers=[28, 29]); cfg.r, cfg.lora_alpha
(4, 8)
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .prompts import ANSWER_PREFIX, _check_labels, _clean, _model_device, _progress, truncate_texts
from .scoring import (_causal_lm, _hidden, _label_scores, _packed_batch, _tree_batch, label_token_ids, n_layers,
                      predict_from_scores, score_labels)

ATTENTION_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_MODULES = ("gate_proj", "up_proj", "down_proj")
ALL_LINEAR = ATTENTION_MODULES + MLP_MODULES
CLASSIFIER_FILE = "tradeoffs_classifier.json"


def fine_tuning_prompt(text: str) -> str:
    """The fine-tuned model's short prompt: ``"Ticket: {text}\\nIntent:"`` (no instructions, no labels).

    Examples
    --------
    >>> fine_tuning_prompt("cant  log in")
    'Ticket: cant log in\\nIntent:'
    """
    body = _clean(text)
    if not body:
        raise ValueError("the ticket text is empty; nothing to classify")
    return f"Ticket: {body}\n{ANSWER_PREFIX}"


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



class LoRAIntentClassifier:
    """An intent classifier made by fine-tuning a causal LM with LoRA on ``prompt -> label`` completions.

    The prompt is the short fine-tuning format :func:`fine_tuning_prompt` (``"Ticket: ...\\nIntent:"``: no
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
    pack : bool
        Pack each training batch into one row with a block-diagonal attention mask (default) instead of
        padding every example to the longest: the same loss and gradients (up to float rounding and the
        dropout draw), without the compute spent on padding.

    Examples
    --------
    >>> clf = LoRAIntentClassifier(chat, ["billing", "refund"], epochs=2).fit(texts, y)   # doctest: +SKIP
    >>> clf.predict(["charged twice this month"])                                        # doctest: +SKIP
    array(['billing'], dtype=object)
    """

    def __init__(self, chat, labels: Sequence[str], *, r: int = 8, alpha: int | None = None, dropout: float = 0.05,
                 target_modules: Sequence[str] = ALL_LINEAR, top_layers: int | None = 4, lr: float = 5e-3,
                 epochs: float = 3.0, batch_size: int = 8, min_steps: int = 20, max_text_tokens: int = 128,
                 seed: int = 0, cache: StateCache | None = None, pack: bool = True) -> None:
        self.chat = chat
        self.labels = _check_labels(labels)
        self.r, self.alpha, self.dropout = r, alpha, dropout
        self.target_modules = tuple(target_modules)
        self.top_layers = top_layers
        self.lr, self.epochs, self.batch_size, self.min_steps = float(lr), float(epochs), int(batch_size), int(min_steps)
        self.max_text_tokens = int(max_text_tokens)
        self.seed = int(seed)
        self.pack = bool(pack)
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
        """The fine-tuning prompt of each text (:func:`fine_tuning_prompt` of the truncated text)."""
        return [fine_tuning_prompt(t) for t in truncate_texts(self.tokenizer, texts, self.max_text_tokens)]

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
            rows, cols, tgt = [], [], []
            if self.pack:   # one row, block-diagonal mask: no compute on padding
                batch, starts = _packed_batch([seqs[i] for i in idx])
                embeds = torch.cat([states[i] for i in idx]).unsqueeze(0).to(device=device, dtype=dtype)
            else:           # one row per example, right-padded
                batch, starts = _tree_batch([seqs[i] for i in idx], [], 0, self._pad), [0] * len(idx)
                embeds = _pad_states([states[i] for i in idx], device, dtype)
            hidden = _hidden(model, batch, start=self.split, inputs_embeds=embeds)
            for b, i in enumerate(idx):
                q, ids = targets[i]
                for t, tok in enumerate(ids):
                    rows.append(0 if self.pack else b)
                    cols.append(starts[b] + q - 1 + t)
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
        from ..files import atomic_directory

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
