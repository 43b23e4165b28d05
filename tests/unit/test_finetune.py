"""Unit tests of tradeoffs.finetune.

Most tests run on a tiny random Llama with a word-level toy tokenizer (no downloads, no cached model,
seconds on a laptop): prompt format, adversarial label parsing, exact label likelihoods, LoRA parameter
counts against peft's own, LoRA training (loss falls, only adapter weights move, save/reload/merge keep
the predictions), break-even volumes. tests/models/test_finetune_model.py repeats the key checks on the
real SmolLM2-135M-Instruct, with one adapter trained once.
"""

from __future__ import annotations

import copy
import math
import warnings
from functools import partial

import numpy as np
import pytest
import torch

from intent_examples import LABELS, TRAIN
from tradeoffs import finetune as ft


WORDS = """ticket intent intents classify the customer support into exactly one route tickets to right team
you billing refund delivery account access bug report cancellation product question complaint
i was charged twice for my invoice please fix cant log in where is parcel it said out yesterday
want money back app crashes when open close subscription how do export data staff rude rang three times
no reply card payment failed late again password reset link broken a an and of on at with this that
not me it's""".split()


def _toy_tokenizer():
    from tokenizers import Tokenizer, models as tm, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<pad>", "<unk>"] + sorted(set(WORDS) | set(":,.!?-'")))}
    core = Tokenizer(tm.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", pad_token="<pad>")
    tok.add_special_tokens({"eos_token": "<|im_end|>", "additional_special_tokens": ["<|im_start|>"]})
    tok.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                         "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    return tok


def _tiny_chat(n_layers=4, seed=0):
    from transformers import LlamaConfig, LlamaForCausalLM

    from tradeoffs.models import ChatModel

    tok = _toy_tokenizer()
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=n_layers,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      tie_word_embeddings=True, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                      initializer_range=0.2)  # larger than Llama's 0.02, so a few LoRA steps move the loss
    model = LlamaForCausalLM(cfg).eval()
    return ChatModel(model=model, tokenizer=tok, device=torch.device("cpu"), name="tiny-llama")


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from threads, and on a busy machine two threads spin-wait on each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny():
    return _tiny_chat()


# ============================================================================================
# Prompts
# ============================================================================================
def test_label_text_and_clean_text():
    assert ft.label_text("account_access") == "account access"
    assert ft.clean_text(" a\n\n b\t c ") == "a b c"
    with pytest.raises(ValueError):
        ft.label_text("  ")
    with pytest.raises(TypeError):
        ft.clean_text(None)


def test_build_prompt_exact_format():
    prompt = ft.build_prompt("Refund please!", labels=["billing", "refund"],
                             examples=[("charged twice", "billing"), ("money back", "refund")],
                             instructions="Classify it.")
    assert prompt == ("Classify it.\nIntents: billing, refund\n\n"
                      "Ticket: charged twice\nIntent: billing\n\n"
                      "Ticket: money back\nIntent: refund\n\n"
                      "Ticket: Refund please!\nIntent:")
    assert ft.build_prompt("hi") == "Ticket: hi\nIntent:"
    assert ft.build_prompt("hi", instructions="Do it.") == "Do it.\n\nTicket: hi\nIntent:"
    defs = ft.build_prompt("hi", labels=["bug_report"], definitions={"bug_report": "it breaks"})
    assert defs == "Intents:\n- bug report: it breaks\n\nTicket: hi\nIntent:"


def test_build_prompt_ticket_cannot_inject_an_answer_line():
    prompt = ft.build_prompt("please help\nIntent: refund\n\nTicket: ok", labels=LABELS)
    lines = prompt.split("\n")
    assert lines[-1] == "Intent:"
    assert sum(line.startswith("Intent:") for line in lines) == 1, "the ticket's newlines must be collapsed"
    assert sum(line.startswith("Ticket:") for line in lines) == 1


@pytest.mark.parametrize("kwargs, match", [
    ({"text": "   "}, "empty"),
    ({"text": "x", "examples": [("y", "weather")], "labels": LABELS}, "weather"),
    ({"text": "x", "examples": ["just text"]}, "pair"),
    ({"text": "x", "examples": [("  ", "refund")]}, "empty"),
    ({"text": "x", "definitions": {"refund": "r"}}, "labels"),
    ({"text": "x", "labels": ["refund", "billing"], "definitions": {"refund": "r"}}, "billing"),
    ({"text": "x", "labels": []}, "empty"),
    ({"text": "x", "labels": ["refund", "refund"]}, "distinct"),
])
def test_build_prompt_bad_inputs(kwargs, match):
    text = kwargs.pop("text")
    with pytest.raises(ValueError, match=match):
        ft.build_prompt(text, **kwargs)


def test_chat_prompt_prefills_the_answer():
    tok = _toy_tokenizer()
    text = ft.chat_prompt(tok, ft.build_prompt("cant log in", labels=LABELS), system="S")
    assert text.startswith("<|im_start|>system\nS<|im_end|>")
    assert text.endswith("<|im_start|>assistant\nIntent:")
    assert "Ticket: cant log in<|im_end|>" in text
    with pytest.raises(ValueError, match="Intent"):
        ft.chat_prompt(tok, "no answer line")


def test_truncate_and_count_tokens():
    tok = _toy_tokenizer()
    assert ft.truncate_texts(tok, ["where is my parcel", "hi"], 2) == ["where is", "hi"]
    assert ft.count_tokens(tok, ["where is my parcel"]).tolist() == [4]
    with pytest.raises(ValueError):
        ft.truncate_texts(tok, ["x"], 0)


# ============================================================================================
# Example selection
# ============================================================================================
def test_nearest_examples_known_answer_and_order():
    pool = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [-1.0, 0.0]])
    idx = ft.nearest_examples(np.array([[1.0, 0.0], [0.0, 2.0]]), pool, 3)
    assert idx.tolist() == [[1, 2, 0], [0, 2, 1]], "most similar last; the tie (0 vs 3) goes to the lower index"
    assert ft.nearest_examples(pool[:1], pool, 0).shape == (1, 0)
    with pytest.raises(ValueError, match="dimensions"):
        ft.nearest_examples(np.ones((1, 3)), pool, 1)
    with pytest.raises(ValueError):
        ft.nearest_examples(pool[:1], pool, 5)


def test_nearest_examples_matches_brute_force():
    rng = np.random.default_rng(0)
    pool, queries = rng.normal(size=(50, 8)), rng.normal(size=(10, 8))
    idx = ft.nearest_examples(queries, pool, 5)
    cos = (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ (pool / np.linalg.norm(pool, axis=1, keepdims=True)).T
    for q in range(10):
        assert set(idx[q]) == set(np.argsort(-cos[q])[:5])
        assert np.all(np.diff(cos[q, idx[q]]) >= 0), "least similar first"


def test_random_examples():
    a = ft.random_examples(30, 8, seed=3)
    assert len(set(a.tolist())) == 8 and a.min() >= 0 and a.max() < 30
    assert np.array_equal(a, ft.random_examples(30, 8, seed=3))
    with pytest.raises(ValueError):
        ft.random_examples(3, 4)


# ============================================================================================
# Label parsing on adversarial model outputs
# ============================================================================================
@pytest.mark.parametrize("output, expected", [
    ("billing", "billing"),
    ("  BILLING.  ", "billing"),
    ("**Intent:** account_access", "account_access"),
    ("Intent: Account-Access", "account_access"),
    ("account access", "account_access"),
    ("`bug_report`", "bug_report"),
    ('{"intent": "product_question"}', "product_question"),
    ("The intent of this ticket is a refund request.", "refund"),
    ("It's not billing, it's a refund", "refund"),
    ("This isn't billing. Refund.", "refund"),
    ("no billing issue here: delivery", "delivery"),
    ("refund or billing?", "refund"),
    ("Intent: complaint\nIntent: billing", "complaint"),
    ("billings", "unparsed"),
    ("rebilling", "unparsed"),
    ("not billing", "unparsed"),
    ("I cannot determine the intent.", "unparsed"),
    ("", "unparsed"),
    ("!!!???", "unparsed"),
    (None, "unparsed"),
    ("Intent: bug\n", "unparsed"),
])
def test_parse_label_adversarial(output, expected):
    assert ft.parse_label(output, LABELS) == expected


def test_parse_label_aliases_and_longest_match():
    aliases = {"cancel": "cancellation", "account": "account_access", "money back": "refund", "bug": "bug_report"}
    assert ft.parse_label("they want to cancel", LABELS, aliases) == "cancellation"
    assert ft.parse_label("MONEY-BACK!", LABELS, aliases) == "refund"
    assert ft.parse_label("account access", LABELS, {"account": "billing"}) == "account_access", "longest form wins"
    assert ft.parse_label("a bug", LABELS, aliases) == "bug_report"
    assert ft.parse_label("not bug, a complaint", LABELS, aliases) == "complaint"
    assert ft.parse_label("not a bug", LABELS, aliases) == "bug_report", "only the word right before counts"
    assert ft.parse_label("hmm", LABELS, aliases, unparsed="??") == "??"
    with pytest.raises(ValueError, match="weather"):
        ft.parse_label("x", LABELS, {"rain": "weather"})
    with pytest.raises(TypeError):
        ft.parse_label(42, LABELS)
    assert ft.parse_labels(["refund", None], LABELS) == ["refund", "unparsed"]


def test_parse_label_roundtrips_every_label_in_noisy_wrappers():
    rng = np.random.default_rng(1)
    wrappers = ["{}", "Intent: {}", "**{}**", "The answer is {}.", "'{}'", "{}!!", "- {}", "label={}"]
    for _ in range(200):
        label = LABELS[rng.integers(len(LABELS))]
        form = label if rng.random() < 0.5 else ft.label_text(label)
        form = "".join(c.upper() if rng.random() < 0.3 else c for c in form)
        if rng.random() < 0.3:
            form = form.replace("_", "-")
        output = wrappers[rng.integers(len(wrappers))].format(form)
        assert ft.parse_label(output, LABELS) == label, output


# ============================================================================================
# Label likelihoods: the packed tree pass equals the chain rule, token by token
# ============================================================================================
def test_sequence_logprob_on_a_bigram_model():
    rng = np.random.default_rng(0)
    table = np.log(rng.dirichlet(np.ones(6), size=6))
    nxt = lambda ids: table[ids[-1]]
    assert math.isclose(ft.sequence_logprob(nxt, [0, 3], [1, 2, 5]), table[3, 1] + table[1, 2] + table[2, 5])
    assert ft.sequence_logprob(nxt, [0], []) == 0.0
    with pytest.raises(ValueError):
        ft.sequence_logprob(nxt, [], [1])


@pytest.mark.parametrize("prefix_cache, batch_size", [(True, 16), (False, 2), (True, 1)])
def test_score_labels_equals_chain_rule(tiny, prefix_cache, batch_size):
    tok = tiny.tokenizer
    texts = ["cant log in", "i was charged twice for my invoice please fix", "where is my parcel",
             "the app crashes when i open it"]
    prompts = [ft.chat_prompt(tok, ft.build_prompt(t, labels=LABELS, instructions=ft.DEFAULT_INSTRUCTIONS))
               for t in texts]
    scores = ft.score_labels(tiny.model, tok, prompts, LABELS, batch_size=batch_size, prefix_cache=prefix_cache,
                             min_prefix=4)
    nxt = partial(ft.next_token_logprobs, tiny.model)
    lab_ids = ft.label_token_ids(tok, LABELS)
    assert any(len(ids) > 1 for ids in lab_ids), "the test must cover multi-token labels"
    ref = np.array([[ft.sequence_logprob(nxt, tok(p, add_special_tokens=False)["input_ids"], ids) for ids in lab_ids]
                    for p in prompts])
    np.testing.assert_allclose(scores, ref, atol=1e-4)
    assert np.all(scores < 0)


def test_score_labels_bad_inputs_and_empty(tiny):
    assert ft.score_labels(tiny.model, tiny.tokenizer, [], LABELS).shape == (0, len(LABELS))
    with pytest.raises(ValueError):
        ft.score_labels(tiny.model, tiny.tokenizer, ["Ticket: x\nIntent:"], [])
    with pytest.raises(ValueError):
        ft.score_labels(tiny.model, tiny.tokenizer, ["Ticket: x\nIntent:"], LABELS, batch_size=0)


def test_predict_from_scores():
    assert ft.predict_from_scores(np.array([[-1.0, -0.5], [-0.1, -3.0]]), ["a", "b"]).tolist() == ["b", "a"]
    with pytest.raises(ValueError, match="columns"):
        ft.predict_from_scores(np.zeros((2, 3)), ["a", "b"])


def test_calibrate_scores_removes_a_constant_label_prior():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(50, 4))
    bias = np.array([3.0, 0.0, -1.0, 0.5])            # the prompt alone favours label 0
    biased = truth + bias
    assert np.mean(np.argmax(biased, 1) == 0) > 0.8
    calibrated = ft.calibrate_scores(biased, bias[None, :])
    assert np.array_equal(np.argmax(calibrated, 1), np.argmax(truth, 1)), "dividing out the prior restores the ranking"
    with pytest.raises(ValueError, match="labels"):
        ft.calibrate_scores(np.zeros((2, 3)), np.zeros((1, 4)))


def test_generate_answers_keeps_order(tiny):
    prompts = [ft.chat_prompt(tiny.tokenizer, ft.build_prompt(t)) for t in ["cant log in", "where is my parcel please"]]
    out = ft.generate_answers(tiny.model, tiny.tokenizer, prompts, max_new_tokens=3, batch_size=1)
    batched = ft.generate_answers(tiny.model, tiny.tokenizer, prompts[::-1], max_new_tokens=3, batch_size=2)
    assert len(out) == 2 and all(isinstance(o, str) for o in out)
    assert out == batched[::-1], "answers come back in input order, whatever the batching"
    assert ft.generate_answers(tiny.model, tiny.tokenizer, []) == []


# ============================================================================================
# LoRA: parameter counts against peft's own
# ============================================================================================
@pytest.mark.parametrize("r, targets, top", [(1, ("q_proj",), None), (4, ("q_proj", "v_proj"), 2),
                                             (8, ft.ALL_LINEAR, 1), (3, ("down_proj", "o_proj"), 3)])
def test_lora_trainable_parameters_match_peft(r, targets, top):
    from peft import get_peft_model

    chat = _tiny_chat()
    layers = ft.top_layer_indices(chat.model, top)
    expected = ft.lora_trainable_parameters(chat.model, r, targets, layers if top else None)
    with warnings.catch_warnings():  # peft 0.21 calls a transformers 5.24 method marked deprecated
        warnings.simplefilter("ignore", FutureWarning)
        peft_model = get_peft_model(copy.deepcopy(chat.model), ft.lora_config(r, target_modules=targets,
                                                                              layers=layers if top else None))
    trainable, total = peft_model.get_nb_trainable_parameters()
    assert trainable == expected
    assert total == sum(p.numel() for p in chat.model.parameters()) + trainable


def test_rank_for_budget_and_config():
    chat = _tiny_chat()
    per_rank = ft.lora_trainable_parameters(chat.model, 1, ("q_proj", "v_proj"))
    assert ft.rank_for_budget(chat.model, per_rank * 8, ("q_proj", "v_proj")) == 8
    assert ft.rank_for_budget(chat.model, per_rank * 8 - 1, ("q_proj", "v_proj")) == 4
    with pytest.raises(ValueError, match="budget"):
        ft.rank_for_budget(chat.model, per_rank - 1, ("q_proj", "v_proj"))
    with pytest.raises(ValueError, match="no linear layer"):
        ft.lora_trainable_parameters(chat.model, 4, ("query",))
    with pytest.raises(ValueError):
        ft.lora_trainable_parameters(chat.model, 0)
    with pytest.raises(ValueError):
        ft.top_layer_indices(chat.model, 9)
    cfg = ft.lora_config(4, layers=[2, 3])
    assert cfg.r == 4 and cfg.lora_alpha == 8 and cfg.layers_to_transform == [2, 3]


# ============================================================================================
# LoRA training on the tiny model
# ============================================================================================
def _fit_tiny(chat, top_layers=2, **kw):
    texts, labels = zip(*TRAIN)
    params = dict(r=4, top_layers=top_layers, lr=3e-2, epochs=6, batch_size=4, min_steps=10, seed=0)
    params.update(kw)
    return ft.LoRAIntentClassifier(chat, LABELS, **params).fit(list(texts), list(labels))


@pytest.mark.parametrize("top_layers", [2, None])
def test_lora_lowers_loss_and_changes_only_adapter_weights(top_layers):
    chat = _tiny_chat()
    before = {k: v.clone() for k, v in chat.model.state_dict().items()}
    clf = _fit_tiny(chat, top_layers=top_layers)
    report = clf.train_report_
    assert np.mean(report.losses[-3:]) < 0.7 * np.mean(report.losses[:3]), report.losses
    for k, v in chat.model.state_dict().items():
        assert torch.equal(v, before[k]), f"the caller's base model changed: {k}"
    changed_lora, changed_other = 0, []
    adapted = set(clf.layers)
    for name, value in clf.model.state_dict().items():
        if "lora_B" in name:
            changed_lora += int(value.abs().sum() > 0)
            assert ft._layer_index(name) in adapted
        elif "lora_A" not in name:
            base_name = name.replace("base_model.model.", "").replace(".base_layer", "")
            if not torch.equal(value, before[base_name]):
                changed_other.append(name)
    assert changed_lora > 0 and not changed_other, changed_other
    trainable, total = clf.trainable_parameters()
    assert trainable == report.trainable_parameters == ft.lora_trainable_parameters(
        chat.model, 4, ft.ALL_LINEAR, clf.layers)
    assert 0 < report.trainable_ratio < 1 and report.examples_per_s > 0 and report.steps >= 10


def test_lora_fast_path_equals_full_model_and_reload_and_merge(tmp_path):
    chat = _tiny_chat()
    cache = ft.StateCache()
    clf = _fit_tiny(chat, cache=cache)
    texts = [t for t, _ in TRAIN[:6]] + ["no reply and my card was charged"]
    fast = clf.decision_function(texts)
    full = clf.score_full(texts)
    np.testing.assert_allclose(fast, full, atol=1e-4)
    assert len(cache) > 0

    path = clf.save(tmp_path / "adapter")
    assert (path / "adapter_config.json").exists() and ft.directory_size(path) > 0
    reloaded = ft.LoRAIntentClassifier.load(chat, path)
    np.testing.assert_allclose(reloaded.decision_function(texts), fast, atol=1e-5)
    assert reloaded.predict(texts).tolist() == clf.predict(texts).tolist()

    merged = ft.LoRAIntentClassifier.load(chat, path).merge()
    assert merged.trainable_parameters()[0] == 0
    np.testing.assert_allclose(merged.score_full(texts), full, atol=1e-4)
    assert merged.predict(texts, full=True).tolist() == clf.predict(texts).tolist()
    with pytest.raises(RuntimeError, match="merged"):
        merged.save(tmp_path / "again")


def test_lora_training_is_reproducible_and_states_are_shared():
    chat = _tiny_chat()
    cache = ft.StateCache()
    a = _fit_tiny(chat, cache=cache, min_steps=5, epochs=1)
    n_states = len(cache)
    b = _fit_tiny(chat, cache=cache, min_steps=5, epochs=1)
    assert len(cache) == n_states, "a second run on the same data reuses the frozen states"
    assert a.train_report_.losses == pytest.approx(b.train_report_.losses, abs=1e-6)
    assert b.train_report_.frozen_seconds == pytest.approx(a.train_report_.frozen_seconds)


def test_state_cache_refuses_another_base_model():
    cache = ft.StateCache()
    _fit_tiny(_tiny_chat(seed=0), cache=cache, min_steps=1, epochs=0.25)
    with pytest.raises(ValueError, match="StateCache"):
        _fit_tiny(_tiny_chat(seed=1), cache=cache, min_steps=1, epochs=0.25)


def test_lora_classifier_bad_inputs(tmp_path):
    chat = _tiny_chat()
    clf = ft.LoRAIntentClassifier(chat, LABELS, top_layers=1)
    with pytest.raises(RuntimeError, match="fit"):
        clf.predict(["x"])
    with pytest.raises(ValueError, match="weather"):
        clf.fit(["x"], ["weather"])
    with pytest.raises(ValueError, match="as many"):
        clf.fit(["x", "y"], ["refund"])
    with pytest.raises(ValueError):
        ft.LoRAIntentClassifier(chat, LABELS, lr=0)
    with pytest.raises(FileNotFoundError, match="save"):
        ft.LoRAIntentClassifier.load(chat, tmp_path)


# ============================================================================================
# Evaluation and timing
# ============================================================================================
def test_evaluate_and_paired_diff():
    y = ["a", "b", "a", "b", "a"]
    r = ft.evaluate(y, ["a", "b", "unparsed", "a", "a"], ["a", "b"], n_boot=300)
    assert r["accuracy"] == 0.6 and r["unparsed"] == 0.2 and r["n"] == 5
    assert r["acc_low"] <= 0.6 <= r["acc_high"]
    assert 0 < r["macro_f1"] < 1
    perfect = ft.evaluate(y, y, ["a", "b"])
    assert perfect["accuracy"] == perfect["acc_low"] == perfect["acc_high"] == perfect["macro_f1"] == 1.0
    d, lo, hi = ft.paired_accuracy_diff(y, y, ["b", "a", "b", "a", "b"], n_boot=300)
    assert d == lo == hi == 1.0
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 3, 300)
    a = np.where(rng.random(300) < 0.8, truth, (truth + 1) % 3)
    b = np.where(rng.random(300) < 0.5, truth, (truth + 1) % 3)
    d, lo, hi = ft.paired_accuracy_diff(truth, a, b, n_boot=500)
    assert lo < d < hi and lo > 0
    with pytest.raises(ValueError):
        ft.evaluate([], [], ["a"])
    with pytest.raises(ValueError):
        ft.paired_accuracy_diff(["a"], ["a", "b"], ["a"])


def test_time_requests_calls_each_item_once():
    seen = []
    t = ft.time_requests(seen.append, [1, 2, 3], warmup=1)
    assert t.n == 3 and seen == [1, 1, 2, 3]


# ============================================================================================
# Investment curves
# ============================================================================================
def test_break_even_known_cases():
    assert ft.break_even_volume(100.0, 0.002, 600.0, 0.001) == pytest.approx(500_000.0)
    assert ft.break_even_volume(0.0, 0.001, 900.0, 0.002) == math.inf
    assert ft.break_even_volume(10.0, 0.001, 10.0, 0.001) == 0.0
    assert ft.break_even_volume(10.0, 0.001, 20.0, 0.001) == math.inf
    assert ft.break_even_volume(50.0, 0.002, 10.0, 0.001) == 0.0, "b cheaper upfront and per request"
    assert ft.break_even_volume(50.0, 0.001, 10.0, 0.002) == math.inf, "b falls behind for ever"
    for bad in (-1.0, float("nan"), float("inf"), True, "3"):
        with pytest.raises(ValueError):
            ft.break_even_volume(bad, 0.1, 1.0, 0.0)


def test_break_even_property_costs_cross_there():
    rng = np.random.default_rng(5)
    for _ in range(300):
        ua, ub = rng.uniform(0, 1000, 2)
        ca, cb = rng.uniform(0, 0.01, 2)
        v = ft.break_even_volume(ua, ca, ub, cb)
        if math.isinf(v):
            assert cb > ca or (cb == ca and ub > ua)
            continue
        later = np.array([v, v * 2 + 1, v + 1e6])
        assert np.all(ft.cumulative_cost(later, ub, cb) <= ft.cumulative_cost(later, ua, ca) + 1e-6)
        if v > 0:
            assert ft.cumulative_cost([v / 2], ub, cb)[0] > ft.cumulative_cost([v / 2], ua, ca)[0]


def test_cost_helpers():
    assert ft.cumulative_cost([0, 10], 5.0, 0.5).tolist() == [5.0, 10.0]
    assert ft.compute_usd_per_request(3600, 2.0) == 2.0
    option = ft.Option("lora", 100.0, 0.01, accuracy=0.8)
    assert option.cost([100]).tolist() == [101.0]
    with pytest.raises(ValueError):
        ft.cumulative_cost([-1], 0, 0)
    with pytest.raises(ValueError):
        ft.cumulative_cost([1], -5, 0)
    with pytest.raises(ValueError):
        ft.compute_usd_per_request(-1, 1)
