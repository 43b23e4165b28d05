"""Prompt engineering vs fine-tuning (Lab 5): the mechanisms, split by responsibility.

Everything Lab 5 needs to route support tickets to their intent with a real small LLM
(SmolLM2-135M-Instruct), once by *prompting* it and once by *fine-tuning* it with LoRA (``peft``), on the
same fixed test split. The lab's graded parts (the prompt format, the label parser, the LoRA parameter
count, the paired comparison, the investment curves) are the learner's; this package holds what runs them:

* :mod:`.prompts` — constants (instructions, label definitions, aliases), :func:`chat_prompt` (the model's
  chat template with the answer prefix ``"Intent:"`` already written), truncation and token counts,
  few-shot example choice (:func:`random_examples`, :func:`nearest_examples`), free-text answers
  (:func:`generate_answers`).
* :mod:`.scoring` — constrained answers: :func:`score_labels` scores the log-likelihood of every label as
  the continuation of each prompt, all labels of a batch of prompts in one forward pass (tree attention
  mask) with the shared prefix in a key-value cache; :func:`calibrate_scores`; the slow reference
  :func:`next_token_logprobs`.
* :mod:`.lora` — :class:`LoRAIntentClassifier` (adapters on the top decoder layers, frozen activations
  cached by :class:`StateCache`, packed training batches), :func:`lora_config`, save/load/merge.
* :mod:`.evaluation` — :func:`evaluate` (accuracy with a bootstrap interval, macro-F1, unparsed share),
  :func:`time_requests`, :func:`compute_usd_per_request`.

``from tradeoffs import finetune as ft`` keeps working: every public name is re-exported here.

Examples
--------
>>> from tradeoffs import finetune as ft
>>> ft.label_text("bug_report"), ft.fine_tuning_prompt("refund  pls")
('bug report', 'Ticket: refund pls\\nIntent:')
"""

from .evaluation import compute_usd_per_request, evaluate, time_requests
from .lora import (ALL_LINEAR, ATTENTION_MODULES, CLASSIFIER_FILE, MLP_MODULES, LoRAIntentClassifier, StateCache,
                   TrainReport, directory_size, fine_tuning_prompt, lora_config, top_layer_indices)
from .prompts import (ANSWER_PREFIX, CONTENT_FREE, DEFAULT_ALIASES, DEFAULT_INSTRUCTIONS, DEFAULT_SYSTEM,
                      INTENT_DEFINITIONS, UNPARSED, chat_prompt, count_tokens, definitions_text, generate_answers,
                      label_text, nearest_examples, random_examples, truncate_texts)
from .scoring import (calibrate_scores, label_token_ids, n_layers, next_token_logprobs, predict_from_scores,
                      score_labels, sequence_logprob)

__all__ = [
    "UNPARSED", "ANSWER_PREFIX", "DEFAULT_INSTRUCTIONS", "DEFAULT_SYSTEM", "INTENT_DEFINITIONS", "DEFAULT_ALIASES",
    "CONTENT_FREE", "label_text", "definitions_text", "chat_prompt", "truncate_texts", "count_tokens",
    "random_examples", "nearest_examples", "generate_answers", "label_token_ids", "score_labels",
    "predict_from_scores", "calibrate_scores", "next_token_logprobs", "sequence_logprob", "n_layers",
    "ATTENTION_MODULES", "MLP_MODULES", "ALL_LINEAR", "CLASSIFIER_FILE", "fine_tuning_prompt", "top_layer_indices",
    "lora_config", "StateCache", "TrainReport", "LoRAIntentClassifier", "directory_size", "evaluate",
    "time_requests", "compute_usd_per_request",
]
