"""Lab 5 (prompting vs fine-tuning): submissions for the real-grader harness in tests/grading/test_real_labs.py.

``LIBRARY_ANSWERS`` answers every answer cell with the closest function that is left in ``tradeoffs``:
the fine-tuned model's short prompt for the prompt builder, a substring match on ``ft.label_text`` for the
parser, peft's own count (through ``ft.lora_config``) for the LoRA budget, ``measure.bootstrap_ci`` of the
per-ticket differences for the paired comparison (its interval is the part's; the share of resamples in
which ``a`` is not better is not in the package), and ``ft.compute_usd_per_request`` with the crossing
formula for the investment curves. It must earn at most 10% of the autograded points (it earns Part 3's
edge cell, 5 of 80: peft counts ``lm_head`` when asked to, which the part excludes, and ``largest_rank``
built on it is right).

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
    # The closest: the package's percentile bootstrap of one statistic (measure.bootstrap_ci, which
    # ft.evaluate uses) of the per-ticket differences. It draws the resamples exactly as the part states,
    # so the interval is right; it does not give the share of resamples in which a is not better, which
    # can only be read off the interval.
    "q4_paired_comparison": '''
from tradeoffs import measure


def paired_comparison(y_true, pred_a, pred_b, n_boot=2000, seed=0, level=0.95):
    y, a, b = (np.asarray(list(v), dtype=object) for v in (y_true, pred_a, pred_b))
    if not (len(y) == len(a) == len(b)) or len(y) == 0:
        raise ValueError("y_true, pred_a and pred_b must be non-empty and the same length")
    right_a, right_b = a == y, b == y
    d = right_a.astype(float) - right_b.astype(float)
    low, high = measure.bootstrap_ci(d, np.mean, level=level, n_boot=n_boot, seed=seed)
    diff = float(d.mean())
    return {"n": len(d), "diff": diff, "a_only": int(np.sum(right_a & ~right_b)),
            "b_only": int(np.sum(right_b & ~right_a)), "low": min(low, diff), "high": max(high, diff),
            "p_not_better": 0.0 if low > 0 else 1.0 if high <= 0 else 0.5}
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
