"""Unit tests for tradeoffs.ticket_features: the in-process embedding cache, the ticket split and
confusable intent pairs (a fake embedder keeps them fast and offline)."""

from __future__ import annotations

import numpy as np
import pytest

from tradeoffs import ticket_features as tf


class _FakeEmbedder:
    name = "fake"

    def __init__(self):
        self.calls = 0

    def encode(self, texts, progress=False):
        self.calls += 1
        return np.array([[len(t), t.count(" ")] for t in texts], dtype=np.float32)


def test_embed_texts_caches_in_process_and_keeps_row_order():
    emb = _FakeEmbedder()
    texts = ["a much longer ticket text", "short", "middle one"]
    first = tf.embed_texts(texts, emb)
    assert first[:, 0].tolist() == [25, 5, 10]
    second = tf.embed_texts(texts, emb)
    assert emb.calls == 1 and np.array_equal(first, second)
    second[0, 0] = -1  # callers get a copy, never the cached array
    assert tf.embed_texts(texts, emb)[0, 0] == 25
    tf.embed_texts(texts[::-1], emb)
    assert emb.calls == 2
    with pytest.raises(TypeError):
        tf.embed_texts([1, 2], emb)


def test_load_ticket_features_with_a_fake_embedder():
    from tradeoffs import data

    t = tf.load_ticket_features(_FakeEmbedder(), pool_size=80, test_size=40, seed=0)
    assert t.X.shape == (80, 2) and t.X_test.shape == (40, 2)
    assert t.intents == tuple(data.INTENTS)
    assert set(np.unique(t.y)) <= set(range(len(t.intents)))
    assert len(np.unique(t.y)) == len(t.intents)  # stratified: every intent present


def test_confusable_pairs_picks_the_most_confused_disjoint_pairs():
    y = np.repeat(np.arange(4), 10)
    p = np.zeros((40, 4))
    p[np.arange(40), y] = 0.7
    p[np.arange(40), [{0: 1, 1: 0, 2: 3, 3: 2}[c] for c in y]] = 0.3
    p[:10] = [0.6, 0.25, 0.15, 0.0]  # class 0 also doubts class 2 a little
    # 2<->3 carries 6.0 of confused probability, 0<->1 5.5, 0<->2 only 1.5; most confused first
    assert tf.confusable_pairs(y, p, n_pairs=2) == [(2, 3), (0, 1)]
    assert tf.confusable_pairs(y, p, n_pairs=1) == [(2, 3)]
    with pytest.raises(ValueError, match="n_pairs"):
        tf.confusable_pairs(y, p, n_pairs=3)
