"""Calibration mechanisms: top-label confidence, the Brier score, and logits <-> probabilities.

Lab 6's learner writes the calibration measures that drive the lab (the reliability bins, the
expected calibration error, the validation NLL and the temperature fit); this module holds only the
mechanisms around them. Temperature scaling itself is Guo, Pleiss, Sun & Weinberger, "On Calibration
of Modern Neural Networks", ICML 2017, https://arxiv.org/abs/1706.04599.

Conventions. ``proba`` is either an ``(n, k)`` array of class probabilities (rows sum to 1) or, for a
binary task, an ``(n,)`` array of P(class 1). The *confidence* of a prediction is its top-label
probability; ``correct`` says whether the top label was right.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._checks import EPS, _check_labels, _check_logits, _check_proba, _check_temperature


def top_label(y_true: Any, proba: Any) -> tuple[np.ndarray, np.ndarray]:
    """Confidence (top-label probability) and correctness of each prediction.

    Ties between classes go to the lowest class index (``np.argmax``).

    Returns
    -------
    confidence : np.ndarray of float, shape (n,)
    correct : np.ndarray of bool, shape (n,)

    Examples
    --------
    >>> conf, ok = top_label([0, 1, 1], [[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]])
    >>> conf.tolist(), ok.tolist()
    ([0.9, 0.7, 0.6], [True, True, False])
    """
    P = _check_proba(proba)
    y = _check_labels(y_true, P.shape[0], P.shape[1])
    return P.max(axis=1), P.argmax(axis=1) == y


def brier_score(y_true: Any, proba: Any) -> float:
    """Brier score (lower is better).

    For a binary ``(n,)`` input: ``mean((p - y)^2)``, as scikit-learn's ``brier_score_loss``. For an
    ``(n, k)`` input: Brier's original multi-class score ``mean(sum_k (p_k - 1[y = k])^2)``, which is
    twice the binary score when ``k = 2`` (Brier, Monthly Weather Review 78(1), 1950).

    Examples
    --------
    >>> brier_score([1, 0], [0.8, 0.4])
    0.1
    >>> round(brier_score([1, 0], [[0.2, 0.8], [0.6, 0.4]]), 12)
    0.2
    """
    binary = np.ndim(proba) == 1
    P = _check_proba(proba)
    y = _check_labels(y_true, P.shape[0], P.shape[1])
    onehot = np.eye(P.shape[1])[y]
    if binary:
        return float(np.mean((P[:, 1] - onehot[:, 1]) ** 2))
    return float(np.mean(np.sum((P - onehot) ** 2, axis=1)))


def proba_to_logits(proba: Any) -> np.ndarray:
    """Logits that reproduce ``proba`` under softmax (log-probabilities; for ``(n,)`` input, log-odds).

    Use it on models that only expose ``predict_proba``: ``softmax(log p) = p``, so temperature scaling
    of these logits is the same as temperature scaling of the model's own scores up to a per-row
    constant. Probabilities are clipped at 1e-12 first, so logits stay finite.

    Examples
    --------
    >>> z = proba_to_logits([[0.2, 0.8]])
    >>> np.allclose(scale_logits(z), [[0.2, 0.8]])
    True
    >>> proba_to_logits([0.5, 0.9]).round(4).tolist()
    [0.0, 2.1972]
    """
    if np.ndim(proba) == 1:
        p = np.clip(_check_proba(proba)[:, 1], EPS, 1 - EPS)
        return np.log(p) - np.log1p(-p)
    return np.log(np.clip(_check_proba(proba), EPS, 1.0))


def scale_logits(logits: Any, temperature: float = 1.0) -> np.ndarray:
    """Probabilities from logits divided by a temperature: ``softmax(z / T)`` (``sigmoid(z / T)`` for 1-D).

    ``T > 1`` softens (less confident), ``T < 1`` sharpens; the top label never changes.

    Examples
    --------
    >>> scale_logits([[2.0, 0.0]], 1.0).round(4).tolist()
    [[0.8808, 0.1192]]
    >>> scale_logits([[2.0, 0.0]], 2.0).round(4).tolist()
    [[0.7311, 0.2689]]
    >>> scale_logits([0.0, 4.0], 2.0).round(4).tolist()
    [0.5, 0.8808]
    """
    z = _check_logits(logits) / _check_temperature(temperature)
    if z.ndim == 1:
        return np.exp(-np.logaddexp(0.0, -z))
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
