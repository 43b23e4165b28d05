"""Lab 5 (prompting vs fine-tuning): submissions for the real-grader harness in tests/grading/test_real_labs.py.

``LIBRARY_ANSWERS`` answers every answer cell with the closest function that is left in ``tradeoffs``:
the fine-tuned model's short prompt for the prompt builder, a substring match on ``ft.label_text`` for the
parser, peft's own count (through ``ft.lora_config``) for the LoRA budget, ``ft.evaluate`` twice for the
paired comparison, and ``ft.compute_usd_per_request`` with the crossing formula for the investment curves.
It must earn at most 10% of the autograded points (it earns Part 3's edge cell, 5 of 80: peft counts
``lm_head`` when asked to, which the part excludes, and ``largest_rank`` built on it is right).

``PARTIAL`` is a label parser that is right on the core rules but ignores negations (Part 2's edge cases).
"""

LIBRARY_ANSWERS: dict[str, str] = {
    "q1_few_shot_prompt": '''
from tradeoffs import finetune as ft


def few_shot_prompt(text, examples=(), labels=None, instructions=None):
    return ft.fine_tuning_prompt(text)
''',
    "q2_parse_intent": '''
from tradeoffs import finetune as ft


def parse_intent(output, labels, aliases=None):
    if output is None:
        return ft.UNPARSED
    for label in labels:
        if ft.label_text(label) in output.lower():
            return label
    return ft.UNPARSED
''',
    "q3_lora_budget": '''
import copy
import warnings

from peft import get_peft_model
from tradeoffs import finetune as ft


def lora_param_count(model, r, target_modules, layers=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adapted = get_peft_model(copy.deepcopy(model), ft.lora_config(1, target_modules=list(target_modules),
                                                                      layers=None if layers is None else list(layers)))
    return r * adapted.get_nb_trainable_parameters()[0]


def largest_rank(model, budget, target_modules, layers=None, ranks=(1, 2, 4, 8, 16, 32, 64)):
    unit = lora_param_count(model, 1, target_modules, layers)
    fits = [r for r in ranks if r * unit <= budget]
    if not fits:
        raise ValueError("no rank fits")
    return max(fits)
''',
    "q4_paired_comparison": '''
from tradeoffs import finetune as ft


def paired_comparison(y_true, pred_a, pred_b, n_boot=2000, seed=0, level=0.95):
    labels = sorted(set(y_true))
    a = ft.evaluate(y_true, pred_a, labels, n_boot=n_boot, level=level, seed=seed)
    b = ft.evaluate(y_true, pred_b, labels, n_boot=n_boot, level=level, seed=seed)
    return {"n": a["n"], "diff": a["accuracy"] - b["accuracy"], "low": a["acc_low"] - b["acc_high"],
            "high": a["acc_high"] - b["acc_low"]}
''',
    "q5_investment": '''
import numpy as np
from tradeoffs import finetune as ft


def cost_curve(volumes, upfront, per_request):
    return upfront + np.asarray(volumes, dtype=float) * ft.compute_usd_per_request(3600 * per_request, 1.0)


def break_even(upfront_a, per_request_a, upfront_b, per_request_b):
    return float((upfront_b - upfront_a) / (per_request_a - per_request_b))
''',
}

PARTIAL_PART = "q2"
PARTIAL: dict[str, str] = {
    "q2_parse_intent": '''
def parse_intent(output, labels, aliases=None):
    """Right on the core rules (normalising, longest form first, whole words, aliases) but blind to negations."""
    import re

    def words(s):
        return re.sub(r"[^a-z0-9]+", " ", s.lower()).split()

    if output is None:
        return "unparsed"
    forms = {tuple(words(a)): label for a, label in (aliases or {}).items() if words(a)}
    forms.update({tuple(words(label)): label for label in labels})
    ws = words(output)
    for i in range(len(ws)):
        for form in sorted(forms, key=len, reverse=True):
            if tuple(ws[i:i + len(form)]) == form:
                return forms[form]
    return "unparsed"
''',
}
