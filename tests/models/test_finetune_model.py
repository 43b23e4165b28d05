"""tradeoffs.finetune on the real SmolLM2-135M-Instruct, briefly.

One LoRA adapter is trained once for the module (6 steps on 16 tickets, adapters on the top 2 layers)
and shared by every test that needs it (two more, of 3 steps, check that packed training batches give the
padded ones' losses); the base model is the session's ``chat_model`` fixture, which
the classifier never modifies (it trains a deep copy).
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch

from intent_examples import LABELS, TRAIN
from tradeoffs import finetune as ft

pytestmark = pytest.mark.models


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: on a 2-core machine shared with other jobs, two threads spin-wait on each other
    (measured here: the module takes ~15 s with one thread and ~75 s with two while other jobs run)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def base_state(chat_model):
    return {k: v.clone() for k, v in chat_model.model.state_dict().items()}


@pytest.fixture(scope="module")
def trained(chat_model, base_state):
    texts, labels = zip(*TRAIN)
    clf = ft.LoRAIntentClassifier(chat_model, LABELS, r=4, top_layers=2, lr=5e-3, epochs=2, batch_size=8,
                                  min_steps=6, max_text_tokens=32, seed=0)
    return clf.fit(list(texts), list(labels))


def test_real_model_scores_equal_chain_rule(chat_model):
    tok = chat_model.tokenizer
    labels = ["billing", "account_access", "product_question"]    # single- and multi-token labels
    header = "Intents: " + ", ".join(ft.label_text(lab) for lab in labels)
    prompts = [f"{header}\n\nTicket: {t}\nIntent:" for t in ["cant log in again!!", "charged twice in March"]]
    scores = ft.score_labels(chat_model.model, tok, prompts, labels, min_prefix=4)
    nxt = partial(ft.next_token_logprobs, chat_model.model)
    lab_ids = ft.label_token_ids(tok, labels)
    assert any(len(ids) > 1 for ids in lab_ids)
    for i, p in enumerate(prompts):
        ids = tok(p, add_special_tokens=False)["input_ids"]
        for j, lab in enumerate(lab_ids):
            assert scores[i, j] == pytest.approx(ft.sequence_logprob(nxt, ids, lab), abs=1e-3)


def test_real_model_lora_lowers_loss_and_leaves_the_base_model_alone(trained, chat_model, base_state):
    losses = trained.train_report_.losses
    assert np.mean(losses[-2:]) < np.mean(losses[:2]), losses
    assert trained.train_report_.trainable_ratio < 0.01
    adapted = [m for name, m in chat_model.model.named_modules() if isinstance(m, torch.nn.Linear)
               and name.split(".")[-1] in ft.ALL_LINEAR and any(f".layers.{i}." in name for i in trained.layers)]
    assert trained.trainable_parameters()[0] == 4 * sum(m.in_features + m.out_features for m in adapted)
    for k, v in chat_model.model.state_dict().items():
        assert torch.equal(v, base_state[k]), f"fitting changed the shared base model: {k}"


def test_real_model_adapter_is_small_and_reloads_to_the_same_scores(trained, chat_model, tmp_path):
    path = trained.save(tmp_path / "adapter")
    base_bytes = sum(p.numel() * p.element_size() for p in chat_model.model.parameters())
    assert 0 < ft.directory_size(path) < 0.05 * base_bytes
    reloaded = ft.LoRAIntentClassifier.load(chat_model, path, cache=trained.cache)
    sample = [t for t, _ in TRAIN[:3]]
    fast = trained.decision_function(sample)
    np.testing.assert_allclose(reloaded.decision_function(sample), fast, atol=1e-4)
    np.testing.assert_allclose(trained.score_full(sample[:1]), fast[:1], atol=1e-3)


def test_real_model_packed_training_equals_padded(chat_model, trained):
    """Packing each batch into one row (block-diagonal mask) gives the padded batches' losses (no dropout)."""
    texts, labels = zip(*TRAIN)
    runs = {pack: ft.LoRAIntentClassifier(chat_model, LABELS, r=4, top_layers=2, lr=5e-3, epochs=1, batch_size=8,
                                          min_steps=3, max_text_tokens=32, seed=0, dropout=0.0, cache=trained.cache,
                                          pack=pack).fit(list(texts), list(labels))
            for pack in (True, False)}
    assert runs[True].train_report_.losses == pytest.approx(runs[False].train_report_.losses, abs=1e-4)
    sample = [t for t, _ in TRAIN[:4]]
    np.testing.assert_allclose(runs[True].decision_function(sample), runs[False].decision_function(sample), atol=1e-3)
