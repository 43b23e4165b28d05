"""The nightly batch job: the local engine embeds in order and agrees with the embedder; the Ray
Data engine (optional extra ``[scale]``) gives the same vectors, and is skipped where Ray is absent."""

from __future__ import annotations

import numpy as np
import pytest

from tradeoffs import batchjob

TEXTS = ["my parcel is late", "refund please", "I was charged twice for the March invoice",
         "cant log in again!! the 2FA code never arrives", "how do I export my VAT return?"]


@pytest.mark.models
def test_local_job_matches_encode_and_counts(embedder):
    result = batchjob.embed_job(TEXTS, batch_size=2, embedder=embedder)
    assert result.engine == "local" and result.items == 5 and result.batch_size == 2
    assert result.embeddings.shape == (5, embedder.dim)
    assert np.allclose(result.embeddings, embedder.encode(TEXTS), atol=1e-5)
    assert result.seconds > 0 and result.items_per_s == pytest.approx(5 / result.seconds)
    assert set(result.summary()) == {"engine", "items", "batch_size", "workers", "seconds", "items_per_s"}


@pytest.mark.parametrize("kwargs, match", [
    ({"texts": [], "batch_size": 2}, "texts"),
    ({"texts": ["ok", ""], "batch_size": 2}, "texts"),
    ({"texts": TEXTS, "batch_size": 0}, "batch_size"),
    ({"texts": TEXTS, "batch_size": 2, "engine": "spark"}, "engine"),
    ({"texts": TEXTS, "batch_size": 2, "workers": 0}, "workers"),
])
def test_bad_inputs_are_explained(kwargs, match):
    with pytest.raises(ValueError, match=match):
        batchjob.embed_job(**kwargs)


def test_ray_missing_says_how_to_install(monkeypatch):
    monkeypatch.setattr(batchjob, "ray_available", lambda: False)
    with pytest.raises(ImportError, match=r"\[scale\]"):
        batchjob.embed_job(TEXTS, batch_size=2, engine="ray")


@pytest.mark.models
@pytest.mark.slow
@pytest.mark.skipif(not batchjob.ray_available(), reason="Ray is an optional extra: pip install -e '.[scale]'")
def test_ray_job_matches_local(embedder):
    import ray

    try:
        result = batchjob.embed_job(TEXTS * 3, batch_size=4, engine="ray", workers=1, threads_per_worker=1)
    finally:
        ray.shutdown()
    assert result.engine == "ray" and result.items == 15
    assert np.allclose(result.embeddings, embedder.encode(TEXTS * 3), atol=1e-4)  # same order as the input
