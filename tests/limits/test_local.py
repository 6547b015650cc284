"""Per-pod limiter: exact counts per key, both windows, headers, waiting, bounded memory."""

from __future__ import annotations

import asyncio
import random
import tracemalloc

import pytest

from proxy.config.schema import RateSpec
from proxy.limits.local import RateLimiter, rate_key


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def take(lim: RateLimiter, key: tuple[str, ...], n: int) -> int:
    return sum(lim.try_acquire(key).allowed for _ in range(n))


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("route", ("crm",)),
        ("tenant", ("t1",)),
        ("tool", ("get_weather",)),
        ("role", ("admin,viewer",)),
        (["tenant", "tool"], ("t1", "get_weather")),
        (["tool", "tenant"], ("get_weather", "t1")),
    ],
)
def test_rate_key(key: object, expected: tuple[str, ...]) -> None:
    spec = RateSpec(per_second=1, key=key)  # type: ignore[arg-type]
    assert rate_key(spec, "crm", "t1", "get_weather", ["viewer", "admin", "viewer"]) == expected


def test_rate_key_missing_parts_share_one_bucket() -> None:
    spec = RateSpec(per_second=1, key=["tenant", "tool", "role"])
    assert rate_key(spec, "crm", None, None) == ("", "", "")


def test_exact_counts_per_key() -> None:
    clock = Clock()
    lim = RateLimiter(RateSpec(per_second=5, key="tenant"), now=clock)
    assert take(lim, ("a",), 20) == 5
    assert take(lim, ("b",), 20) == 5  # another tenant has its own bucket
    clock.t += 0.2  # one permit drips back (5/s)
    assert take(lim, ("a",), 20) == 1
    clock.t += 10
    assert take(lim, ("a",), 20) == 5  # burst never grows past the limit


def test_per_minute_binds_after_per_second_and_headers() -> None:
    clock = Clock(0.0)
    lim = RateLimiter(RateSpec(per_second=10, per_minute=12), now=clock)
    first = [lim.try_acquire(("k",)) for _ in range(11)]
    assert [d.allowed for d in first] == [True] * 10 + [False]
    assert [d.remaining for d in first[:3]] == [9, 8, 7]
    assert dict(first[10].headers()) == {
        "Retry-After": "1", "RateLimit-Limit": "10", "RateLimit-Remaining": "0",
        "RateLimit-Reset": "1",
    }
    clock.t = 1.0
    assert take(lim, ("k",), 5) == 2  # the minute window had 12
    d = lim.try_acquire(("k",))
    # 12 permits at 5 s each: the next frees at 65 s from the first, i.e. 4 s after t=1.
    assert not d.allowed
    assert d.retry_after_s == pytest.approx(4.0)
    assert dict(d.headers()) == {
        "Retry-After": "4", "RateLimit-Limit": "12", "RateLimit-Remaining": "0",
        "RateLimit-Reset": "59",
    }


def test_allowed_headers_have_no_retry_after() -> None:
    lim = RateLimiter(RateSpec(per_minute=30), now=Clock())
    d = lim.try_acquire(("x",))
    assert dict(d.headers()) == {
        "RateLimit-Limit": "30", "RateLimit-Remaining": "29", "RateLimit-Reset": "2",
    }


async def test_acquire_waits_in_order_up_to_max_wait() -> None:
    clock = Clock()  # frozen: the reservations, not the sleeps, decide
    lim = RateLimiter(RateSpec(per_second=100), now=clock)
    assert take(lim, ("k",), 100) == 100
    got = await asyncio.gather(*(lim.acquire(("k",), max_wait_s=0.05) for _ in range(7)))
    assert [d.allowed for d in got] == [True] * 5 + [False] * 2
    assert [round(d.wait_s, 3) for d in got[:5]] == [0.01, 0.02, 0.03, 0.04, 0.05]
    assert got[5].retry_after_s == pytest.approx(0.06)


async def test_acquire_without_wait_is_try_acquire() -> None:
    lim = RateLimiter(RateSpec(per_second=1), now=Clock())
    assert (await lim.acquire(("k",))).allowed
    assert not (await lim.acquire(("k",), max_wait_s=-5)).allowed


def test_table_bounded_under_100k_random_tenants() -> None:
    clock = Clock()
    spec = RateSpec(per_minute=10, key="tenant")
    lim = RateLimiter(spec, max_keys=10_000, now=clock)
    rng = random.Random(4)
    for _ in range(100_000):
        assert lim.try_acquire(rate_key(spec, "r", f"{rng.getrandbits(64):x}", None)).allowed
    assert len(lim) == 10_000
    assert lim.evicted_live == 90_000


def test_memory_flat_once_the_table_is_full() -> None:
    # tracemalloc costs ~50x per allocation, so a smaller table shows the same shape.
    spec = RateSpec(per_minute=10, key="tenant")
    lim = RateLimiter(spec, max_keys=1_000, now=Clock())
    rng = random.Random(5)
    tracemalloc.start()
    try:
        for _ in range(2_000):
            lim.try_acquire(rate_key(spec, "r", f"{rng.getrandbits(64):x}", None))
        full = tracemalloc.get_traced_memory()[0]
        for _ in range(18_000):
            lim.try_acquire(rate_key(spec, "r", f"{rng.getrandbits(64):x}", None))
        later = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(lim) == 1_000
    # 18k more keys; an unbounded table would hold ~3 MB more.
    assert later - full < 32 * 1024


def test_busy_key_survives_a_flood_of_new_keys() -> None:
    clock = Clock()
    lim = RateLimiter(RateSpec(per_minute=3, key="tenant"), max_keys=100, now=clock)
    assert take(lim, ("hot",), 3) == 3
    for i in range(5_000):
        lim.try_acquire((f"flood{i}",))
        if i % 50 == 0:
            assert not lim.try_acquire(("hot",)).allowed  # eviction must not refill it
    assert len(lim) == 100
