"""The workshop's first-order what-if callbacks."""

import pytest

from tradeoffs import workshop


def test_api_cost_is_linear_and_self_hosting_has_a_floor():
    small = workshop.api_vs_self_host(1_000, 0, 1.0, 2.0, requests_per_machine_hour=100)["US$/month"]
    big = workshop.api_vs_self_host(10_000_000, 0, 1.0, 2.0, requests_per_machine_hour=100)["US$/month"]
    assert small["API"] == 1.0 and big["API"] == 10_000.0
    assert small["of which machines"] == workshop.HOURS_PER_MONTH * 2.0  # one machine all month at least
    assert big["of which machines"] == 10_000_000 / 100 * 2.0
    assert big["self-hosting"] == big["of which machines"] + big["of which staff"]


def test_staff_is_a_twelfth_of_the_year():
    out = workshop.api_vs_self_host(0, 120_000, 1.0, 0.0, requests_per_machine_hour=1)["US$/month"]
    assert out["of which staff"] == 10_000.0


@pytest.mark.parametrize("kwargs, message", [
    ({"monthly_requests": -1}, "monthly_requests"),
    ({"api_usd_per_1k": float("nan")}, "api_usd_per_1k"),
    ({"requests_per_machine_hour": 0}, "measure it first"),
])
def test_api_vs_self_host_rejects_bad_input(kwargs, message):
    args = {"monthly_requests": 1, "staff_usd_per_year": 1, "api_usd_per_1k": 1, "machine_usd_per_hour": 1,
            "requests_per_machine_hour": 1, **kwargs}
    with pytest.raises(ValueError, match=message):
        workshop.api_vs_self_host(**args)


def test_a_higher_threshold_reviews_more_and_automates_fewer_errors():
    confidence = [0.1, 0.4, 0.6, 0.8, 0.99]
    correct = [0, 0, 1, 0, 1]
    low = workshop.review_load(0.0, 1, 1, confidence=confidence, correct=correct, tickets_per_day=100)["per day"]
    high = workshop.review_load(0.7, 1, 1, confidence=confidence, correct=correct, tickets_per_day=100)["per day"]
    assert low["tickets to review"] == 0 and low["wrong automated answers"] == 60
    assert high["tickets to review"] == 60 and high["wrong automated answers"] == 20
    assert high["backlog growth"] == 60 - 8 and low["backlog growth"] == 0
    assert low["cost of wrong answers, US$"] == 0, "no error cost given: the errors cost nothing"


def test_wrong_automated_answers_are_priced_at_the_error_cost():
    confidence, correct = [0.1, 0.4, 0.6, 0.8, 0.99], [0, 0, 1, 0, 1]
    day = workshop.review_load(0.5, 1, 1, 12.5, confidence=confidence, correct=correct, tickets_per_day=100)["per day"]
    assert day["wrong automated answers"] == 20 and day["cost of wrong answers, US$"] == 20 * 12.5


@pytest.mark.parametrize("kwargs, message", [
    ({"threshold": 1.5}, "threshold"),
    ({"confidence": [0.5], "correct": [1, 0]}, "same length"),
    ({"reviewers": -1}, "reviewers"),
    ({"error_usd": -2.0}, "error_usd"),
])
def test_review_load_rejects_bad_input(kwargs, message):
    args = {"threshold": 0.5, "reviewers": 1, "reviews_per_hour": 1, "confidence": [0.5], "correct": [1],
            "tickets_per_day": 1, **kwargs}
    with pytest.raises(ValueError, match=message):
        workshop.review_load(**args)
