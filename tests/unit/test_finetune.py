"""Unit tests of tradeoffs.finetune.

Most tests run on a tiny random Llama with a word-level toy tokenizer (no downloads, no cached model,
seconds on a laptop): the chat template, example choice, exact label likelihoods (the packed, prefix-cached
pass against the chain rule), LoRA training (loss falls, only adapter weights move, packed batches train
exactly like padded ones, save/reload/merge keep the predictions), evaluation and cost helpers. The lab's
graded parts (prompt format, label parser, LoRA parameter count, paired comparison, investment curves) are
not in the package and are not tested here: their reference answers and tests live in the solution notebook. tests/models/test_finetune_model.py repeats the key checks on the
real SmolLM2-135M-Instruct, with one adapter trained once.
"""

from __future__ import annotations

import math
import re
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
def _prompt(text, labels=None, instructions=None):
    """The lab's plain-text prompt, written out by hand (the format is the learner's Part 1)."""
    header = ([instructions] if instructions else []) + (["Intents: " + ", ".join(map(ft.label_text, labels))] if labels else [])
    return ("\n".join(header) + "\n\n" if header else "") + f"Ticket: {text}\nIntent:"


def test_label_text_definitions_and_fine_tuning_prompt():
    assert ft.label_text("account_access") == "account access"
    with pytest.raises(ValueError):
        ft.label_text("  ")
    line = ft.definitions_text(LABELS)
    assert line.startswith("Definitions: billing = ") and "\n" not in line and line.count(" = ") == len(LABELS)
    with pytest.raises(ValueError, match="weather"):
        ft.definitions_text(["weather"])
    assert ft.fine_tuning_prompt("  cant\nlog in ") == "Ticket: cant log in\nIntent:"
    with pytest.raises(ValueError, match="empty"):
        ft.fine_tuning_prompt(" \n ")
    with pytest.raises(TypeError):
        ft.fine_tuning_prompt(None)


def test_chat_prompt_prefills_the_answer():
    tok = _toy_tokenizer()
    text = ft.chat_prompt(tok, _prompt("cant log in", labels=LABELS), system="S")
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
    prompts = [ft.chat_prompt(tok, _prompt(t, labels=LABELS, instructions=ft.DEFAULT_INSTRUCTIONS))
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
    prompts = [ft.chat_prompt(tiny.tokenizer, _prompt(t)) for t in ["cant log in", "where is my parcel please"]]
    out = ft.generate_answers(tiny.model, tiny.tokenizer, prompts, max_new_tokens=3, batch_size=1)
    batched = ft.generate_answers(tiny.model, tiny.tokenizer, prompts[::-1], max_new_tokens=3, batch_size=2)
    assert len(out) == 2 and all(isinstance(o, str) for o in out)
    assert out == batched[::-1], "answers come back in input order, whatever the batching"
    assert ft.generate_answers(tiny.model, tiny.tokenizer, []) == []


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
            assert int(re.search(r"\.layers\.(\d+)\.", name).group(1)) in adapted
        elif "lora_A" not in name:
            base_name = name.replace("base_model.model.", "").replace(".base_layer", "")
            if not torch.equal(value, before[base_name]):
                changed_other.append(name)
    assert changed_lora > 0 and not changed_other, changed_other
    trainable, total = clf.trainable_parameters()
    assert trainable == report.trainable_parameters > 0
    assert 0 < report.trainable_ratio < 1 and report.examples_per_s > 0 and report.steps >= 10


def test_lora_config_and_top_layers():
    chat = _tiny_chat()
    assert ft.top_layer_indices(chat.model, 2) == [2, 3] and ft.top_layer_indices(chat.model, None) == [0, 1, 2, 3]
    with pytest.raises(ValueError):
        ft.top_layer_indices(chat.model, 9)
    cfg = ft.lora_config(4, layers=[2, 3])
    assert cfg.r == 4 and cfg.lora_alpha == 8 and cfg.layers_to_transform == [2, 3]
    with pytest.raises(ValueError):
        ft.lora_config(0)


def test_packed_batch_is_block_diagonal():
    from tradeoffs.finetune.scoring import _packed_batch

    batch, starts = _packed_batch([[5, 6, 7], [8, 9]])
    assert starts == [0, 3] and batch.input_ids.tolist() == [[5, 6, 7, 8, 9]]
    assert batch.position_ids.tolist() == [[0, 1, 2, 0, 1]], "positions restart for every packed sequence"
    mask = batch.mask[0, 0].int().tolist()
    assert mask == [[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 1, 1]]
    with pytest.raises(ValueError):
        _packed_batch([[1], []])


def test_packed_training_equals_padded_training():
    """Packing a batch into one row changes no loss and no gradient: the same adapter comes out (no dropout)."""
    chat = _tiny_chat()
    cache = ft.StateCache()
    packed = _fit_tiny(chat, cache=cache, dropout=0.0, pack=True)
    padded = _fit_tiny(chat, cache=cache, dropout=0.0, pack=False)
    assert packed.train_report_.losses == pytest.approx(padded.train_report_.losses, abs=1e-5)
    a, b = packed.model.state_dict(), padded.model.state_dict()
    for name in a:
        if "lora_" in name:
            torch.testing.assert_close(a[name], b[name], atol=1e-5, rtol=1e-4)
    texts = [t for t, _ in TRAIN]
    np.testing.assert_allclose(packed.decision_function(texts), padded.decision_function(texts), atol=1e-4)


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
def test_evaluate():
    y = ["a", "b", "a", "b", "a"]
    r = ft.evaluate(y, ["a", "b", "unparsed", "a", "a"], ["a", "b"], n_boot=300)
    assert r["accuracy"] == 0.6 and r["unparsed"] == 0.2 and r["n"] == 5
    assert r["acc_low"] <= 0.6 <= r["acc_high"]
    assert 0 < r["macro_f1"] < 1
    perfect = ft.evaluate(y, y, ["a", "b"])
    assert perfect["accuracy"] == perfect["acc_low"] == perfect["acc_high"] == perfect["macro_f1"] == 1.0
    with pytest.raises(ValueError):
        ft.evaluate([], [], ["a"])


def test_time_requests_calls_each_item_once():
    seen = []
    t = ft.time_requests(seen.append, [1, 2, 3], warmup=1)
    assert t.n == 3 and seen == [1, 1, 2, 3]


def test_compute_usd_per_request():
    assert ft.compute_usd_per_request(3600, 2.0) == 2.0
    with pytest.raises(ValueError):
        ft.compute_usd_per_request(-1, 1)
