"""A nightly batch job — embed every ticket of the day at the best batch size — run locally or on
Ray Data with the same call.

``engine="local"`` runs in this process with the kit's embedder. ``engine="ray"`` builds a Ray Data
pipeline (``from_items`` -> ``map_batches`` with a pool of embedder actors -> results in input
order). With ``ray.init()`` on a laptop the pipeline runs on local worker processes; with
``RAY_ADDRESS`` pointing at a cluster (or ``ray.init(address="auto")`` on a cluster node), the same
code spreads the batches over the cluster's machines — the scale-out path of a batch architecture.

Ray is an optional extra (``pip install -e '.[scale]'``, about 100 MB); :func:`ray_available` says
whether it is installed, and the kit never imports it otherwise.

Examples
--------
>>> result = embed_job(["refund please", "where is my parcel"], batch_size=2)   # doctest: +SKIP
>>> result.embeddings.shape, result.engine                                    # doctest: +SKIP
((2, 384), 'local')
"""

from __future__ import annotations

import importlib.util
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

__all__ = ["ENGINES", "ray_available", "BatchJobResult", "embed_job", "RayEmbedder"]

ENGINES = ("local", "ray")
SCALE_EXTRA = "pip install -e '.[scale]'"


def ray_available() -> bool:
    """True when Ray (with Ray Data) can be imported here; never imports it.

    Examples
    --------
    >>> isinstance(ray_available(), bool)
    True
    """
    return importlib.util.find_spec("ray") is not None


@dataclass
class BatchJobResult:
    """What one batch job did."""

    engine: str
    items: int
    batch_size: int
    seconds: float
    embeddings: np.ndarray = field(repr=False)
    workers: int = 1

    @property
    def items_per_s(self) -> float:
        return self.items / self.seconds if self.seconds > 0 else float("nan")

    def summary(self) -> dict[str, Any]:
        return {"engine": self.engine, "items": self.items, "batch_size": self.batch_size, "workers": self.workers,
                "seconds": self.seconds, "items_per_s": self.items_per_s}


class RayEmbedder:
    """A Ray Data actor: loads the embedder once, then embeds each batch it is given.

    Ray calls it with a batch ``{"id": array, "text": array}`` and expects arrays back.
    """

    def __init__(self, device: str = "cpu", threads: int | None = None) -> None:
        import torch

        from .models import load_embedder

        if threads:
            torch.set_num_threads(int(threads))
        self.embedder = load_embedder(device)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        texts = [str(t) for t in batch["text"]]
        vectors = self.embedder.encode(texts, batch_size=max(1, len(texts)))
        return {"id": np.asarray(batch["id"]), "embedding": vectors}


def _check(texts: Sequence[str], batch_size: int, engine: str, workers: int) -> list[str]:
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
    if isinstance(workers, bool) or int(workers) != workers or workers < 1:
        raise ValueError(f"workers must be a whole number >= 1, got {workers!r}")
    texts = list(texts)
    if not texts or not all(isinstance(t, str) and t for t in texts):
        raise ValueError("texts must be a non-empty list of non-empty strings")
    return texts


def embed_job(texts: Sequence[str], batch_size: int = 64, *, engine: str = "local", device: str = "cpu",
              workers: int = 1, embedder=None, threads_per_worker: int | None = None) -> BatchJobResult:
    """Embed ``texts`` in batches of ``batch_size`` and time the whole job.

    Parameters
    ----------
    texts : sequence of str
    batch_size : int
        Rows per model call (pick it from the lab's batch-size sweep).
    engine : {"local", "ray"}
        ``"ray"`` needs the ``[scale]`` extra; it uses the running Ray instance, or starts a local one.
    device : str
        Where the embedder runs (each Ray actor loads its own copy there).
    workers : int
        Ray actors (model replicas); ignored locally.
    embedder : tradeoffs.models.Embedder, optional
        An already-loaded embedder for the local engine (the job then excludes the load time).
    threads_per_worker : int, optional
        Torch threads in each Ray actor (default: torch's choice).

    Returns
    -------
    BatchJobResult
        ``embeddings`` in the order of ``texts``; ``seconds`` covers the whole pipeline (for Ray:
        actor start-up and model loads included, which a nightly job pays every night).
    """
    texts = _check(texts, batch_size, engine, workers)
    if engine == "local":
        from .models import load_embedder

        emb = embedder if embedder is not None else load_embedder(device)
        start = time.perf_counter()
        vectors = emb.encode(texts, batch_size=int(batch_size))
        return BatchJobResult("local", len(texts), int(batch_size), time.perf_counter() - start, vectors, 1)
    if not ray_available():
        raise ImportError(f"engine='ray' needs Ray Data, which is not installed. Fix: `{SCALE_EXTRA}` "
                          "(or use engine='local').")
    import ray

    if not ray.is_initialized():
        ray.init(ignore_reinit_error=True, include_dashboard=False, log_to_driver=False)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    start = time.perf_counter()
    ds = ray.data.from_items([{"id": i, "text": t} for i, t in enumerate(texts)])
    out = ds.map_batches(RayEmbedder, batch_size=int(batch_size), batch_format="numpy", concurrency=int(workers),
                         fn_constructor_kwargs={"device": device, "threads": threads_per_worker},
                         num_gpus=1 if device.startswith("cuda") else None)
    rows = out.take_all()
    seconds = time.perf_counter() - start
    rows.sort(key=lambda r: int(r["id"]))
    vectors = np.stack([np.asarray(r["embedding"], dtype=np.float32) for r in rows])
    return BatchJobResult("ray", len(texts), int(batch_size), seconds, vectors, int(workers))
