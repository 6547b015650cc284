"""The pure GCRA step: same admissions as aiolimiter's leaky bucket, plus exact
Retry-After / RateLimit-* values."""

from __future__ import annotations

import random

import pytest
from aiolimiter import AsyncLimiter

from proxy.config.schema import RateSpec
from proxy.limits.gcra import RateDecision, Window, decide, windows_for


class FakeLoop:
    """Just enough of an event loop for AsyncLimiter.has_capacity: its clock."""

    def __init__(self) -> None:
        self.t = 0.0

    def time(self) -> float:
        return self.t

    def is_closed(self) -> bool:
        return False


@pytest.mark.parametrize(("rate", "period"), [(10, 1.0), (3, 1.0), (100, 60.0), (7, 60.0)])
def test_admits_exactly_what_aiolimiter_admits(rate: float, period: float) -> None:
    loop = FakeLoop()
    lim = AsyncLimiter(rate, period)
    lim._event_loop = loop  # type: ignore[attr-defined]  # drive its clock
    window = Window.of(rate, period)
    tats = (0.0,)
    rng = random.Random(rate * 1000 + period)
    agree = admitted = 0
    for _ in range(3000):
        loop.t += rng.expovariate(rate / period * 1.5)  # offered 1.5x the rate
        theirs = lim.has_capacity()
        if theirs:
            lim._level += 1  # what AsyncLimiter.acquire does once it has capacity
        decision, new = decide(tats, (window,), loop.t)
        if new is not None:
            tats = new
        agree += decision.allowed == theirs
        admitted += theirs
    assert agree == 3000
    assert 0 < admitted < 3000


def test_windows_for_both_and_fractional() -> None:
    spec = RateSpec(per_second=0.5, per_minute=100)
    assert windows_for(spec) == (Window.of(0.5, 1.0), Window.of(100, 60.0))
    assert [(w.burst, w.interval_s) for w in windows_for(spec)] == [(1.0, 2.0), (100.0, 0.6)]
    assert [w.limit for w in windows_for(spec)] == [1, 100]


def test_refusal_spends_nothing_and_says_when() -> None:
    windows = windows_for(RateSpec(per_second=2))
    tats = (0.0,)
    got = []
    for _ in range(3):
        d, new = decide(tats, windows, 10.0)
        tats = new or tats
        got.append(d)
    assert [d.allowed for d in got] == [True, True, False]
    assert [d.remaining for d in got] == [1, 0, 0]
    assert got[2].retry_after_s == pytest.approx(0.5)
    assert got[2].reset_s == pytest.approx(1.0)
    assert tats == (11.0,)


def test_reservation_within_max_wait() -> None:
    windows = windows_for(RateSpec(per_second=4))
    tats = (14.0,)  # drained at now=13: next slot at 13.25
    d, new = decide(tats, windows, 13.0, max_wait_s=0.3)
    assert d.allowed and d.wait_s == pytest.approx(0.25)
    assert new == (pytest.approx(14.25),)
    d2, new2 = decide(tats, windows, 13.0, max_wait_s=0.2)
    assert not d2.allowed and new2 is None


@pytest.mark.parametrize(
    ("decision", "expected"),
    [
        (RateDecision(True, 0.0, 10, 7, 0.3), {"RateLimit-Limit": "10",
         "RateLimit-Remaining": "7", "RateLimit-Reset": "1"}),
        (RateDecision(False, 0.1, 10, 0, 1.0), {"Retry-After": "1", "RateLimit-Limit": "10",
         "RateLimit-Remaining": "0", "RateLimit-Reset": "1"}),
        (RateDecision(False, 4.0000000001, 12, 0, 59.0), {"Retry-After": "4",
         "RateLimit-Limit": "12", "RateLimit-Remaining": "0", "RateLimit-Reset": "59"}),
        (RateDecision(False, 4.2, 12, 0, 0.0), {"Retry-After": "5", "RateLimit-Limit": "12",
         "RateLimit-Remaining": "0", "RateLimit-Reset": "0"}),
    ],
)
def test_headers(decision: RateDecision, expected: dict[str, str]) -> None:
    assert dict(decision.headers()) == expected
