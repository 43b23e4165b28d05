"""Drift: a reproducible shifted test set built from real text, and a monitoring run that alarms on a
statistic the caller supplies.

:func:`inject_typos` types real tickets in a hurry (a covariate shift for text models).
:func:`simulate_monitoring` draws days of traffic from normal, then shifted, items and asks an alarm
rule -- Lab 6's learner writes it -- whether each day's share sent to review, and each day's error
rate among audited automated items, has left its baseline (the rule is the learner's; a p-chart is the
classic choice: Montgomery, *Introduction to Statistical Quality Control*, ch. 7).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from ._checks import _check_confidence, _check_correct, _check_unit


_KEY_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_NEIGHBOURS = {ch: "".join(row[j] for j in (i - 1, i + 1) if 0 <= j < len(row))
               for row in _KEY_ROWS for i, ch in enumerate(row)}
TYPO_OPERATIONS = ("delete", "duplicate", "swap", "neighbour")


def inject_typos(texts: Sequence[str] | str, rate: float, seed: int = 0) -> list[str]:
    """Real text with typing errors: each letter, with probability ``rate``, is deleted, doubled,
    swapped with the next letter, or replaced by a neighbouring key on a QWERTY keyboard (one of the
    four, equally likely; case is kept). Digits, spaces and punctuation are left alone.

    A reproducible covariate shift for text models: the same tickets, typed in a hurry.

    Examples
    --------
    >>> inject_typos(["where is my parcel"], 0.0)
    ['where is my parcel']
    >>> inject_typos("where is my parcel", 0.3, seed=1) != ["where is my parcel"]
    True
    """
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    if not all(isinstance(t, str) for t in texts):
        raise TypeError("inject_typos takes a string or a sequence of strings")
    r = _check_unit(rate, "rate")
    rng = np.random.default_rng(seed)
    out = []
    for text in texts:
        chars = list(text)
        result: list[str] = []
        i = 0
        while i < len(chars):
            ch = chars[i]
            if ch.isalpha() and rng.random() < r:
                op = TYPO_OPERATIONS[int(rng.integers(len(TYPO_OPERATIONS)))]
                if op == "delete":
                    i += 1
                    continue
                if op == "duplicate":
                    result += [ch, ch]
                elif op == "swap" and i + 1 < len(chars) and chars[i + 1].isalpha():
                    result += [chars[i + 1], ch]
                    i += 2
                    continue
                elif op == "neighbour" and ch.lower() in _NEIGHBOURS:
                    nb = _NEIGHBOURS[ch.lower()]
                    new = nb[int(rng.integers(len(nb)))]
                    result.append(new.upper() if ch.isupper() else new)
                else:
                    result.append(ch)
            else:
                result.append(ch)
            i += 1
        out.append("".join(result))
    return out


MONITOR_CHARTS = ("flag rate", "audit error rate")


def simulate_monitoring(normal: tuple[Any, Any], shifted: tuple[Any, Any], threshold: float,
                        alarm: Callable[..., Any], *, baseline: tuple[Any, Any], days: int = 14,
                        shift_day: int = 7, per_day: int = 400, audit_share: float = 0.10,
                        seed: int = 0) -> pd.DataFrame:
    """Run a monitoring rule over days of traffic that shifts on ``shift_day``.

    Every day, ``per_day`` items are drawn (with replacement) from the ``normal`` items before
    ``shift_day`` and from the ``shifted`` items from then on. An item is sent to review when its
    confidence is below ``threshold``; of the automated ones, a random ``audit_share`` gets a human
    label. Two daily statistics are watched against their value on the ``baseline`` (validation) items:

    * ``"flag rate"`` -- items sent to review / items that day (needs no labels);
    * ``"audit error rate"`` -- wrong decisions among the audited automated items / items audited.

    The caller's rule decides the alarms: ``alarm(baseline_rate, counts, totals)`` receives the
    baseline rate (a float) and the daily counts and totals (1-D integer arrays, one entry per day)
    and returns one boolean per day.

    Parameters
    ----------
    normal, shifted, baseline : (confidence, correct)
        Confidence (float array) and correctness (bool array) of the items each phase is drawn from;
        ``baseline`` sets the rates the alarm compares with.
    threshold : float
        Review when confidence < threshold.
    alarm : callable
        ``alarm(baseline_rate, counts, totals) -> array of bool`` (e.g. a p-chart).
    days, shift_day, per_day : int
    audit_share : float
        Share of automated items audited each day (at least one item is audited).
    seed : int

    Returns
    -------
    pandas.DataFrame
        One row per (chart, day): ``chart``, ``day``, ``shifted`` (day >= shift_day), ``count``,
        ``total``, ``rate`` (count / total), ``baseline`` and ``alarm`` (the rule's answer).

    Examples
    --------
    >>> conf = np.linspace(0.5, 1.0, 100); ok = conf > 0.6
    >>> def above(baseline, counts, totals):      # a toy rule: alarm when the rate doubles
    ...     return np.asarray(counts) / np.asarray(totals) > 2 * baseline
    >>> log = simulate_monitoring((conf, ok), (conf - 0.3, ok), 0.7, above, baseline=(conf, ok),
    ...                           days=4, shift_day=2, per_day=200)
    >>> log.loc[log["chart"] == "flag rate", "alarm"].tolist()
    [False, False, True, True]
    """
    if not callable(alarm):
        raise TypeError("alarm must be a function alarm(baseline_rate, counts, totals) -> array of bool")
    phases = []
    for name, pair in (("normal", normal), ("shifted", shifted), ("baseline", baseline)):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(f"{name} must be a (confidence, correct) pair")
        conf = _check_confidence(pair[0], f"{name} confidence")
        phases.append((conf, _check_correct(pair[1], conf.size)))
    (c0, ok0), (c1, ok1), (cb, okb) = phases
    for name, value in (("days", days), ("per_day", per_day)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if isinstance(shift_day, bool) or not isinstance(shift_day, (int, np.integer)) or not 0 <= shift_day <= days:
        raise ValueError(f"shift_day must be an integer in [0, days={days}], got {shift_day!r}")
    share = _check_unit(audit_share, "audit_share")
    t = float(threshold)

    flag_base = float(np.mean(cb < t))
    auto_b = cb >= t
    audit_base = float(np.mean(~okb[auto_b])) if auto_b.any() else 0.0
    rng = np.random.default_rng(seed)
    flagged, audited, audit_errors = [], [], []
    for day in range(int(days)):
        conf, ok = (c0, ok0) if day < shift_day else (c1, ok1)
        idx = rng.integers(0, conf.size, int(per_day))
        flag = conf[idx] < t
        auto = idx[~flag]
        sample = auto[rng.random(auto.size) < share]
        if sample.size == 0 and auto.size:
            sample = auto[:1]
        flagged.append(int(flag.sum()))
        audited.append(int(sample.size))
        audit_errors.append(int((~ok[sample]).sum()))

    frames = []
    for chart, base, counts, totals in (("flag rate", flag_base, flagged, [int(per_day)] * int(days)),
                                        ("audit error rate", audit_base, audit_errors, audited)):
        counts_a, totals_a = np.asarray(counts, dtype=np.int64), np.asarray(totals, dtype=np.int64)
        usable = totals_a > 0
        fired = np.zeros(int(days), dtype=bool)
        if usable.any():
            answer = np.asarray(alarm(base, counts_a[usable], totals_a[usable]))
            if answer.shape != (int(usable.sum()),):
                raise ValueError(f"alarm returned shape {answer.shape} for {int(usable.sum())} days of the "
                                 f"{chart!r} chart: return one True/False per day")
            fired[usable] = answer.astype(bool)
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = np.where(usable, counts_a / np.maximum(totals_a, 1), np.nan)
        frames.append(pd.DataFrame({"chart": chart, "day": np.arange(int(days)),
                                    "shifted": np.arange(int(days)) >= shift_day, "count": counts_a,
                                    "total": totals_a, "rate": rate, "baseline": base, "alarm": fired}))
    return pd.concat(frames, ignore_index=True)
