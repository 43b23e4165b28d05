"""First-order what-if calculators for the 90-minute workshop (``notebooks/workshop_90_minutes.ipynb``).

The workshop visits all six trade-offs in one sitting, so its calculators are deliberately rough:
machines are billed by the hour as fractions, reviewers as a flat hourly rate, no peaks, no minimum
fleet. Each lab then does the real thing with functions the learner writes (whole machines, a minimum
fleet, peak load, the cost-optimal threshold). Both functions here are the callbacks of
:func:`tradeoffs.whatif.calculator` in the workshop notebook.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

HOURS_PER_MONTH = 730.0  # 8,760 hours a year / 12


def _check_non_negative(**values: Any) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                or not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def api_vs_self_host(monthly_requests: float, staff_usd_per_year: float, api_usd_per_1k: float,
                     machine_usd_per_hour: float, *, requests_per_machine_hour: float) -> pd.DataFrame:
    """A month of the API against a month of self-hosting, to first order.

    Self-hosting keeps at least one machine on all month and adds machine-hours in proportion to the
    volume (``monthly_requests / requests_per_machine_hour``), plus the staff who run it.

    Parameters
    ----------
    monthly_requests : float
        Requests per month.
    staff_usd_per_year : float
        Fully loaded cost of the people who run the self-hosted service.
    api_usd_per_1k : float
        What the API charges for 1,000 requests of your mix.
    machine_usd_per_hour : float
        Rent of one serving machine.
    requests_per_machine_hour : float
        What one machine serves per hour (measured in the workshop).

    Returns
    -------
    DataFrame
        One ``US$/month`` column: the API, self-hosting, and self-hosting's machine and staff parts.

    Examples
    --------
    >>> api_vs_self_host(1_000_000, 120_000, 0.5, 1.0, requests_per_machine_hour=1_000)
                               US$/month
    API                            500.0
    self-hosting                 11000.0
    of which machines             1000.0
    of which staff               10000.0
    """
    _check_non_negative(monthly_requests=monthly_requests, staff_usd_per_year=staff_usd_per_year,
                        api_usd_per_1k=api_usd_per_1k, machine_usd_per_hour=machine_usd_per_hour)
    if not requests_per_machine_hour > 0:
        raise ValueError(f"requests_per_machine_hour must be > 0 (measure it first), got {requests_per_machine_hour!r}")
    machine_hours = max(HOURS_PER_MONTH, monthly_requests / requests_per_machine_hour)
    machines = machine_hours * machine_usd_per_hour
    staff = staff_usd_per_year / 12.0
    rows = {"API": monthly_requests / 1000.0 * api_usd_per_1k, "self-hosting": machines + staff,
            "of which machines": machines, "of which staff": staff}
    return pd.DataFrame({"US$/month": pd.Series(rows).round(2)})


def review_load(threshold: float, reviewers: float, reviews_per_hour: float, error_usd: float = 0.0, *,
                confidence: Any, correct: Any, tickets_per_day: float, hours_per_day: float = 8.0) -> pd.DataFrame:
    """What a confidence threshold asks of the review team, per day, to first order.

    Tickets whose model confidence is below ``threshold`` go to a person; the rest are automated. The
    shares come from a labelled sample (``confidence`` and ``correct``), scaled to ``tickets_per_day``.

    Parameters
    ----------
    threshold : float
        Confidence below which a ticket is reviewed, in [0, 1].
    reviewers : float
        People reviewing.
    reviews_per_hour : float
        Tickets one reviewer handles per hour.
    error_usd : float
        What one wrong automated answer costs (refunds, escalations, churn): an assumption to vary.
    confidence, correct : array-like
        Model confidence and whether the model was right, for a labelled sample.
    tickets_per_day : float
        Daily volume.
    hours_per_day : float
        Review hours per reviewer per day.

    Returns
    -------
    DataFrame
        One ``per day`` column: tickets automated, wrong automated answers and what they cost, tickets
        to review, review capacity and the backlog that grows when the queue exceeds it.

    Examples
    --------
    >>> review_load(0.5, 1, 10, 4.0, confidence=[0.2, 0.6, 0.9, 0.95], correct=[0, 1, 1, 0], tickets_per_day=100)
                                         per day
    tickets automated                       75.0
    wrong automated answers                 25.0
    cost of wrong answers, US$             100.0
    tickets to review                       25.0
    review capacity                         80.0
    backlog growth                           0.0
    """
    _check_non_negative(reviewers=reviewers, reviews_per_hour=reviews_per_hour, error_usd=error_usd,
                        tickets_per_day=tickets_per_day, hours_per_day=hours_per_day)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
    confidence = np.asarray(confidence, dtype=float)
    correct = np.asarray(correct, dtype=bool)
    if confidence.ndim != 1 or confidence.shape != correct.shape or confidence.size == 0:
        raise ValueError(f"confidence and correct must be two non-empty 1-D arrays of the same length, got "
                         f"shapes {confidence.shape} and {correct.shape}")
    automated = confidence >= threshold
    to_review = tickets_per_day * float(np.mean(~automated))
    capacity = reviewers * reviews_per_hour * hours_per_day
    wrong = tickets_per_day * float(np.mean(automated & ~correct))
    rows = {"tickets automated": tickets_per_day * float(np.mean(automated)),
            "wrong automated answers": wrong, "cost of wrong answers, US$": wrong * error_usd,
            "tickets to review": to_review, "review capacity": capacity,
            "backlog growth": max(0.0, to_review - capacity)}
    return pd.DataFrame({"per day": pd.Series(rows).round(1)})
