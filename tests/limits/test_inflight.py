"""Bulkhead: refuse at once beyond max_inflight, never queue."""

from __future__ import annotations

import asyncio

import pytest

from proxy.limits.inflight import Bulkhead


async def test_1000_concurrent_calls_against_64_slots() -> None:
    bulkhead = Bulkhead(64)
    release = asyncio.Event()
    peak = 0

    async def call() -> bool:
        nonlocal peak
        if not bulkhead.try_enter():
            return False
        try:
            peak = max(peak, bulkhead.inflight)
            await release.wait()
            return True
        finally:
            bulkhead.leave()

    tasks = [asyncio.create_task(call()) for _ in range(1000)]
    for _ in range(100):  # until every task has run up to its wait or refusal
        if bulkhead.inflight + bulkhead.refused == 1000:
            break
        await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*tasks)
    assert sum(results) == 64 and bulkhead.refused == 936
    assert peak == 64 and bulkhead.inflight == 0
    assert bulkhead.try_enter()  # slots come back


def test_leave_without_enter_is_a_bug() -> None:
    with pytest.raises(RuntimeError):
        Bulkhead(1).leave()
    with pytest.raises(ValueError):
        Bulkhead(0)
