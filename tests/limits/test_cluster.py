"""Cluster limiter on a real redis-server: one limit across instances and processes,
the same decisions as the local limiter, and Redis dying, hanging and coming back."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from proxy.config.schema import RateSpec, RedisSpec
from proxy.limits.cluster import ClusterRateLimiter, redis_key
from proxy.limits.local import RateLimiter
from tests.redis_fixture import RedisServer, fresh_redis, redis_server, redis_url  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def prefix() -> str:
    return uuid.uuid4().hex  # the session's Redis is shared between tests


async def test_one_limit_across_two_instances(redis_url: str) -> None:  # noqa: F811
    clock = Clock()
    spec, rs, p = RateSpec(per_second=5, key="tenant"), RedisSpec(url=redis_url), prefix()
    a = ClusterRateLimiter(spec, rs, p, server_time=clock)
    b = ClusterRateLimiter(spec, rs, p, server_time=clock)
    try:
        got = []
        for i in range(12):
            got.append(await (a if i % 2 else b).acquire(("t1",)))
        assert sum(d.allowed for d in got) == 5
        assert [d.remaining for d in got[:5]] == [4, 3, 2, 1, 0]
        assert not any(d.degraded for d in got)
        assert (await a.acquire(("t2",))).allowed  # other tenant, other bucket
        clock.t += 0.2
        assert (await b.acquire(("t1",))).allowed
        assert not (await a.acquire(("t1",))).allowed
    finally:
        await a.close()
        await b.close()


async def test_same_decisions_as_local_limiter(redis_url: str) -> None:  # noqa: F811
    clock = Clock()
    spec = RateSpec(per_second=4, per_minute=30)
    cluster = ClusterRateLimiter(spec, RedisSpec(url=redis_url), prefix(), server_time=clock)
    local = RateLimiter(spec, now=clock)
    rng = random.Random(7)
    try:
        for _ in range(200):
            clock.t += rng.expovariate(2.0)
            wait = rng.choice([0.0, 0.0, 0.3])
            c, lo = await cluster.acquire(("k",), wait), local._take(("k",), wait)
            assert (c.allowed, c.limit, c.remaining) == (lo.allowed, lo.limit, lo.remaining)
            assert c.retry_after_s == pytest.approx(lo.retry_after_s, abs=1e-6)
            assert c.reset_s == pytest.approx(lo.reset_s, abs=1e-6)
            assert c.wait_s == pytest.approx(lo.wait_s, abs=1e-6)
            assert c.headers() == lo.headers()
    finally:
        await cluster.close()


CHILD = """
import asyncio, json, sys
from proxy.config.schema import RateSpec, RedisSpec
from proxy.limits.cluster import ClusterRateLimiter

async def main():
    lim = ClusterRateLimiter(RateSpec(per_minute=10), RedisSpec(url=sys.argv[1]), sys.argv[2])
    await lim.acquire(("warm-up",))
    print("ready", flush=True)
    sys.stdin.readline()
    allowed = degraded = 0
    for _ in range(20):
        d = await lim.acquire(("shared",))
        allowed += d.allowed
        degraded += d.degraded
    await lim.close()
    print(json.dumps({"allowed": allowed, "degraded": degraded}), flush=True)

asyncio.run(main())
"""


async def test_one_limit_across_two_processes(redis_url: str) -> None:  # noqa: F811
    # Redis TIME is the clock here; 10/min frees one permit per 6 s, far longer than this.
    p = prefix()
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, redis_url, p], cwd=ROOT, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )
    lim = ClusterRateLimiter(RateSpec(per_minute=10), RedisSpec(url=redis_url), p)
    try:
        assert child.stdout is not None and child.stdin is not None
        assert (await asyncio.to_thread(child.stdout.readline)).strip() == "ready"
        child.stdin.write("go\n")
        child.stdin.flush()
        mine = [await lim.acquire(("shared",)) for _ in range(20)]
        theirs = json.loads(await asyncio.to_thread(child.stdout.readline))
        assert child.wait(30) == 0
    finally:
        if child.poll() is None:
            child.kill()
        await lim.close()
    assert theirs["degraded"] == 0 and not any(d.degraded for d in mine)
    assert theirs["allowed"] + sum(d.allowed for d in mine) == 10


@pytest.mark.parametrize("on_error", ["allow", "deny"])
async def test_redis_killed_mid_test_and_back(
    fresh_redis: RedisServer,  # noqa: F811
    on_error: str,
) -> None:
    clock, server_clock = Clock(), Clock(5000.0)
    spec = RateSpec(per_second=3, on_store_error=on_error)  # type: ignore[arg-type]
    lim = ClusterRateLimiter(
        spec, RedisSpec(url=fresh_redis.url), prefix(), now=clock, server_time=server_clock
    )
    try:
        assert (await lim.acquire(("k",))).allowed
        fresh_redis.kill()
        down = [await lim.acquire(("k",)) for _ in range(5)]
        assert all(d.degraded for d in down) and not lim.healthy
        assert lim.store_errors == 1  # in the cool-down, Redis is not tried again
        if on_error == "allow":  # per-pod fallback with the same limit
            assert [d.allowed for d in down] == [True] * 3 + [False] * 2
        else:
            assert not any(d.allowed for d in down)
            assert dict(down[0].headers())["Retry-After"] == "1"
        fresh_redis.start()
        assert (await lim.acquire(("k",))).degraded  # cool-down not over yet
        clock.t += 1.5
        back = [await lim.acquire(("k",)) for _ in range(4)]
        assert lim.healthy and not any(d.degraded for d in back)
        assert [d.allowed for d in back] == [True] * 3 + [False]  # the restart lost state
    finally:
        await lim.close()


async def test_hung_redis_does_not_stall_calls(fresh_redis: RedisServer) -> None:  # noqa: F811
    spec = RateSpec(per_second=100)
    lim = ClusterRateLimiter(spec, RedisSpec(url=fresh_redis.url, timeout_ms=50), prefix())
    try:
        assert not (await lim.acquire(("k",))).degraded
        fresh_redis.freeze()
        # Bounded only so a regression fails instead of hanging; the store timeout is 50 ms.
        d = await asyncio.wait_for(lim.acquire(("k",)), 10)
        assert d.degraded and d.allowed
    finally:
        fresh_redis.thaw()
        await lim.close()


async def test_saturated_pool_degrades_that_call_only(redis_url: str) -> None:  # noqa: F811
    spec = RateSpec(per_second=100)
    lim = ClusterRateLimiter(spec, RedisSpec(url=redis_url), prefix(), max_connections=1)
    try:
        await lim._gate.acquire()  # another call holds the only connection
        d = await lim.acquire(("k",))
        assert d.degraded and d.allowed and lim.busy == 1
        assert lim.healthy  # Redis was never asked, so it is not marked down
        lim._gate.release()
        assert not (await lim.acquire(("k",))).degraded
    finally:
        await lim.close()


def test_redis_key_is_unambiguous_and_bounded() -> None:
    assert redis_key("p", ("a|b", "c")) != redis_key("p", ("a", "b|c"))
    assert len(redis_key("p", ("x" * 10_000,))) < 100
