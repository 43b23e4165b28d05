"""The real packaged models, on CPU: they load from the cache and produce real outputs."""

import numpy as np
import pytest

from tradeoffs import models

pytestmark = pytest.mark.models


def test_chat_model_answers_greedily(chat_model):
    reply = chat_model.generate([{"role": "user", "content": "What is the capital of France?"}],
                                max_new_tokens=16)
    assert len(reply) == 1 and "Paris" in reply[0]


def test_chat_model_is_the_packaged_one(chat_model):
    assert chat_model.name == models.CHAT_MODEL_NAME
    assert 130e6 < chat_model.model.num_parameters() < 140e6
    assert chat_model.tokenizer.padding_side == "left"
    assert chat_model.tokenizer.chat_template


def test_chat_batch_returns_one_reply_per_conversation(chat_model):
    convs = [[{"role": "user", "content": q}] for q in ("Say yes.", "Name a colour.", "Count to three.")]
    replies = chat_model.generate(convs, max_new_tokens=8)
    assert len(replies) == 3 and all(isinstance(r, str) and r for r in replies)


def test_chat_sampling_is_seeded(chat_model):
    conv = [{"role": "user", "content": "Write a word."}]
    a = chat_model.generate(conv, max_new_tokens=6, temperature=1.0, seed=3)
    b = chat_model.generate(conv, max_new_tokens=6, temperature=1.0, seed=3)
    assert a == b


@pytest.mark.parametrize("kwargs, match", [({"max_new_tokens": 0}, "max_new_tokens"),
                                           ({"temperature": -1}, "temperature")])
def test_chat_generate_rejects_bad_arguments(chat_model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        chat_model.generate([{"role": "user", "content": "hi"}], **kwargs)


def test_cached_load_does_not_convert_again(monkeypatch):
    assert models.chat_model_ready()
    monkeypatch.setattr(models, "_convert_gguf", lambda *a, **k: pytest.fail("cache hit must not convert"))
    chat = models.load_chat_model("cpu")
    assert chat.model.dtype.is_floating_point


def test_embedder_outputs_normalised_float32(embedder):
    vecs = embedder.encode(["I want my money back", "please refund the charge", "the app crashes on start"],
                           batch_size=2)
    assert vecs.shape == (3, 384) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    sims = vecs @ vecs.T
    assert sims[0, 1] > sims[0, 2], "paraphrases must be closer than unrelated sentences"


def test_embedder_batch_size_does_not_change_results(embedder):
    texts = [f"ticket number {i} about a late parcel" for i in range(10)]
    a = embedder.encode(texts, batch_size=1)
    b = embedder.encode(texts, batch_size=10)
    assert np.allclose(a, b, atol=1e-5)


def test_embedder_edge_cases(embedder):
    assert embedder.encode([]).shape == (0, 384)
    assert embedder.encode("one string").shape == (1, 384)
    with pytest.raises(TypeError, match="strings"):
        embedder.encode(["ok", 3])
    with pytest.raises(ValueError, match="batch_size"):
        embedder.encode(["x"], batch_size=0)
    assert embedder.count_tokens(["hello world"]) == [4]
