"""Support-ticket intents as sentence embeddings, for Lab 3's second data set.

:func:`load_ticket_features` embeds the kit's support tickets (``tradeoffs.data.load_tickets``) with
MiniLM (cached in this process only, never on disk) and splits them into a training pool and a clean
test set; :func:`confusable_pairs` says which intents a model mixes up (annotators confuse what
models confuse), to build realistic class-conditional noise.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import numpy as np

from .noise import SeedLike, _check_labels, _check_proba, _rng

_EMBED_CACHE: dict[tuple[str, int, str], np.ndarray] = {}


class _torch_threads_for_load:
    """Run torch with one intra-op thread while the machine is oversubscribed, then restore.

    When the 1-minute load average already reaches the core count (a shared CI box, or nbgrader
    grading two notebooks at once on two cores), extra torch threads only fight for the same cores:
    measured on the kit's 2-core reference machine at load ~11, MiniLM embedded 200 tickets in 14 s
    with one thread and 27-37 s with two. On an idle machine nothing changes.
    """

    def __enter__(self):
        import os

        import torch

        self.before = torch.get_num_threads()
        try:
            busy = os.getloadavg()[0] >= (os.cpu_count() or 1)
        except OSError:  # getloadavg is not available everywhere (Windows)
            busy = False
        if busy and self.before > 1:
            torch.set_num_threads(1)
        return self

    def __exit__(self, *exc):
        import torch

        torch.set_num_threads(self.before)
        return False


def embed_texts(texts: Sequence[str], embedder=None, *, progress: bool = False) -> np.ndarray:
    """MiniLM embeddings of ``texts``, cached in this process (never on disk).

    The second call with the same texts and embedder returns at once, so a notebook can rebuild its
    features freely. Pass an :class:`tradeoffs.models.Embedder`; by default one is loaded on the CPU.

    Examples
    --------
    >>> embed_texts(["refund please", "where is my parcel"]).shape   # doctest: +SKIP
    (2, 384)
    """
    import hashlib

    texts = list(texts)
    if not all(isinstance(t, str) for t in texts):
        raise TypeError("embed_texts takes a sequence of strings")
    if embedder is None:
        from .models import load_embedder

        embedder = load_embedder("cpu")
    digest = hashlib.sha256("\x1f".join(texts).encode("utf-8")).hexdigest()
    key = (str(getattr(embedder, "name", "embedder")), len(texts), digest)
    if key not in _EMBED_CACHE:
        with _torch_threads_for_load():
            _EMBED_CACHE[key] = embedder.encode(texts, progress=progress)
    return _EMBED_CACHE[key].copy()


class TicketFeatures(NamedTuple):
    """Support-ticket intents as MiniLM embeddings: a training pool and a clean test set."""

    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    intents: tuple[str, ...]


def _stratified_take(labels: np.ndarray, size: int | None, rng: np.random.Generator) -> np.ndarray:
    idx = np.arange(labels.size)
    if size is None or size >= labels.size:
        return idx
    from sklearn.model_selection import train_test_split

    taken, _ = train_test_split(idx, train_size=int(size), stratify=labels,
                                random_state=int(rng.integers(2**31 - 1)))
    return np.sort(taken)


def load_ticket_features(embedder=None, *, pool_size: int | None = None, test_size: int | None = None,
                         seed: SeedLike = 0, progress: bool = False) -> TicketFeatures:
    """The kit's support tickets (``tradeoffs.data.load_tickets``) embedded with MiniLM.

    The training pool is the ``train`` and ``validation`` splits, the test set the ``test`` split;
    labels are indices into ``tradeoffs.data.INTENTS``. ``pool_size`` / ``test_size`` take a
    stratified subsample (smoke runs). Embeddings are cached in this process only.

    Examples
    --------
    >>> t = load_ticket_features(pool_size=80, test_size=40)      # doctest: +SKIP
    >>> t.X.shape, len(t.intents)                                   # doctest: +SKIP
    ((80, 384), 8)
    """
    from . import data

    if not hasattr(data, "load_tickets"):
        raise RuntimeError("tradeoffs.data.load_tickets is not available in this version of the kit; "
                           "update the kit (git pull && make install) to get the support-ticket data set")
    intents = tuple(data.INTENTS)
    frame = data.load_tickets()
    code = {name: i for i, name in enumerate(intents)}
    labels = frame["intent"].map(code)
    if labels.isna().any():
        raise ValueError(f"tickets carry intents outside INTENTS: {sorted(set(frame['intent'][labels.isna()]))}")
    labels = labels.to_numpy(np.int64)
    rng = _rng(seed)
    is_test = (frame["split"] == "test").to_numpy()
    pool_rows = np.flatnonzero(~is_test)[_stratified_take(labels[~is_test], pool_size, rng)]
    test_rows = np.flatnonzero(is_test)[_stratified_take(labels[is_test], test_size, rng)]
    texts = frame["text"].tolist()
    vectors = embed_texts([texts[i] for i in np.r_[pool_rows, test_rows]], embedder, progress=progress)
    return TicketFeatures(vectors[: pool_rows.size], labels[pool_rows], vectors[pool_rows.size:],
                          labels[test_rows], intents)


def confusable_pairs(y: Any, proba: Any, n_pairs: int = 2) -> list[tuple[int, int]]:
    """The ``n_pairs`` disjoint class pairs a model confuses most (out-of-fold confusion, both ways).

    Use it to build realistic class-conditional noise where no one has said which classes are
    confusable: annotators confuse what models confuse.

    Examples
    --------
    >>> y = np.array([0, 0, 1, 1, 2, 2])
    >>> p = np.array([[.6, .4, 0], [.9, .1, 0], [.45, .55, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1]])
    >>> confusable_pairs(y, p, n_pairs=1)
    [(0, 1)]
    """
    labels, k = _check_labels(y)
    p = _check_proba(proba, labels.size, k)
    k = p.shape[1]
    if not isinstance(n_pairs, (int, np.integer)) or not 1 <= n_pairs <= k // 2:
        raise ValueError(f"n_pairs must be an integer in [1, {k // 2}] for {k} classes, got {n_pairs!r}")
    mass = np.zeros((k, k))
    np.add.at(mass, labels, p)
    both = mass + mass.T
    np.fill_diagonal(both, -np.inf)
    chosen: list[tuple[int, int]] = []
    used: set[int] = set()
    for flat in np.argsort(-both, axis=None, kind="stable"):
        a, b = divmod(int(flat), k)
        if a < b and a not in used and b not in used:
            chosen.append((a, b))
            used.update((a, b))
            if len(chosen) == n_pairs:
                break
    return chosen
