"""Retry policy: backoff shape, what may be retried, and the budget that stops storms."""

from __future__ import annotations

import random
from email.utils import formatdate

import pytest

from proxy.config.schema import RetrySpec
from proxy.upstream.retry import (
    EwmaLatency,
    RetryBudget,
    backoff_s,
    next_delay_s,
    retry_after_from_header,
    retry_refusal,
    retryable_status,
)


class Clock:
    def __init__(self, t: float = 500.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


SPEC = RetrySpec(max=2, backoff_ms=100, max_backoff_ms=1000)


@pytest.mark.parametrize(("attempt", "cap_s"), [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0),
                                                (40, 1.0)])
def test_backoff_bounds_and_full_jitter(attempt: int, cap_s: float) -> None:
    rng = random.Random(attempt)
    samples = [backoff_s(attempt, SPEC, rng) for _ in range(4000)]
    assert all(0 <= s <= cap_s for s in samples)
    assert max(samples) > 0.95 * cap_s  # the whole range is used ...
    quarters = [sum(q * cap_s / 4 <= s < (q + 1) * cap_s / 4 for s in samples) for q in range(4)]
    assert all(900 <= n <= 1100 for n in quarters)  # ... evenly (uniform, not clustered)


def test_upstream_retry_after_wins_when_longer() -> None:
    rng = random.Random(1)
    assert next_delay_s(1, SPEC, rng, retry_after_s=3.0) == 3.0
    assert next_delay_s(1, SPEC, rng) <= 0.1


@pytest.mark.parametrize(
    ("status", "ok"),
    [(429, True), (502, True), (503, True), (504, True), (500, False), (501, False),
     (400, False), (404, False), (409, False), (200, False)],
)
def test_retryable_status(status: int, ok: bool) -> None:
    assert retryable_status(status) is ok


NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        (formatdate(NOW + 30, usegmt=True), 30.0),
        (formatdate(NOW - 30, usegmt=True), 0.0),
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
        (None, None),
        ("\u0661\u0662", None),  # non-ASCII digits
    ],
)
def test_retry_after_from_header(value: str | None, seconds: float | None) -> None:
    assert retry_after_from_header(value, now=lambda: NOW) == seconds


def test_budget_caps_amplification_during_an_outage() -> None:
    clock = Clock()
    spec = RetrySpec(max=3, budget_ratio=0.2, min_retries_per_s=1)
    budget = RetryBudget(spec, now=clock)
    sent = retries = 0
    for _ in range(3000):  # 100 req/s for 30 s, every attempt fails
        clock.t += 0.01
        budget.record_request()
        sent += 1
        for attempt in range(1, spec.max + 1):
            if retry_refusal(attempt, spec, True, True, 10.0, 0.05, budget) is not None:
                break
            budget.record_retry()
            retries += 1
    # Without the budget: 3 retries each, 4x the load. With it: about 1.2x.
    assert retries <= 0.2 * sent + spec.min_retries_per_s * budget.window_s
    assert (sent + retries) / sent < 1.25


def test_budget_floor_lets_quiet_routes_retry() -> None:
    clock = Clock()
    spec = RetrySpec(max=3, budget_ratio=0.2, min_retries_per_s=3)
    budget = RetryBudget(spec, now=clock)
    allowed = 0
    for _ in range(10):  # one request a second: 20% alone would allow 2 retries
        clock.t += 1
        budget.record_request()
        for _ in range(3):
            if budget.can_retry():
                budget.record_retry()
                allowed += 1
    assert allowed == 30  # the floor: 3/s over the 10 s window


def test_budget_recovers_after_the_window() -> None:
    clock = Clock()
    budget = RetryBudget(RetrySpec(budget_ratio=0.2, min_retries_per_s=0.1), now=clock)
    budget.record_retry()
    assert not budget.can_retry()
    clock.t += budget.window_s + 1
    assert budget.can_retry()


@pytest.mark.parametrize(
    ("case", "attempt", "idempotent", "replayable", "remaining", "latency", "delay", "why"),
    [
        ("first retry of a GET", 1, True, True, 5.0, 0.2, 0.1, None),
        ("last allowed attempt", 2, True, True, 5.0, 0.2, 0.1, None),
        ("attempts used up", 3, True, True, 5.0, 0.2, 0.1, "attempts"),
        ("POST never", 1, False, True, 5.0, 0.2, 0.1, "not_idempotent"),
        ("streamed body", 1, True, False, 5.0, 0.2, 0.1, "body_streamed"),
        ("deadline too short", 1, True, True, 0.25, 0.2, 0.1, "deadline"),
        ("deadline exactly enough", 1, True, True, 0.5, 0.25, 0.25, None),
        ("deadline spent", 1, True, True, 0.0, 0.0, 0.0, "deadline"),
        ("no latency seen yet", 1, True, True, 0.05, 0.0, 0.0, None),
    ],
)
def test_should_retry_table(
    case: str, attempt: int, idempotent: bool, replayable: bool, remaining: float,
    latency: float, delay: float, why: str | None,
) -> None:
    budget = RetryBudget(SPEC, now=Clock())
    args = (attempt, SPEC, idempotent, replayable, remaining, latency, budget, delay)
    assert retry_refusal(*args) == why, case
    assert (retry_refusal(*args) is None) is (why is None)


def test_should_retry_budget_exhausted_and_retries_disabled() -> None:
    clock = Clock()
    spec = RetrySpec(max=2, budget_ratio=0.0, min_retries_per_s=0.1)
    budget = RetryBudget(spec, now=clock)
    assert retry_refusal(1, spec, True, True, 5.0, 0.1, budget) is None
    budget.record_retry()
    assert retry_refusal(1, spec, True, True, 5.0, 0.1, budget) == "budget"
    assert retry_refusal(1, RetrySpec(), True, True, 5.0, 0.1, budget) == "attempts"


def test_ewma_latency() -> None:
    ewma = EwmaLatency(alpha=0.5)
    assert ewma.value == 0.0
    for sample, expected in [(1.0, 1.0), (3.0, 2.0), (2.0, 2.0), (float("nan"), 2.0),
                             (-1.0, 2.0), (0.0, 1.0)]:
        ewma.observe(sample)
        assert ewma.value == pytest.approx(expected)
    assert ewma.samples == 4
    with pytest.raises(ValueError):
        EwmaLatency(alpha=0)
