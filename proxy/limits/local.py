"""Per-pod rate limiter: one GCRA bucket per key in a bounded LRU table.

Why not one aiolimiter AsyncLimiter per key: its public API cannot say when the next
permit frees or how many are left (Retry-After, RateLimit-*), it reads the event loop's
clock (no sync check outside a loop, no injected clock for exact tests), two windows
cannot be checked before spending from either, and each instance carries a waiter heap
and timers, ~10x the memory of the two floats a key needs here. The algorithm is the
same leaky bucket (see gcra.py and its equivalence test).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from proxy.config.schema import RateSpec
from proxy.limits.gcra import RateDecision, decide, windows_for

RateKeyTuple = tuple[str, ...]


def rate_key(
    spec: RateSpec,
    route: str,
    tenant: str | None,
    tool: str | None,
    roles: Iterable[str] = (),
) -> RateKeyTuple:
    """The bucket a call spends from, in the order `key` lists its parts.

    Missing values become "" (all anonymous callers share one bucket, which is the safe
    side). Roles are sorted so "a,b" and "b,a" are one caller."""
    parts = (spec.key,) if isinstance(spec.key, str) else tuple(spec.key)
    values = {
        "route": route,
        "tenant": tenant or "",
        "tool": tool or "",
        "role": ",".join(sorted(set(roles))),
    }
    return tuple(values[p] for p in parts)


class RateLimiter:
    """Both windows of `spec` per key; at most `max_keys` buckets are kept.

    Buckets past their TAT are full, i.e. the same as absent, so evicting them loses
    nothing; a live bucket evicted by a flood of new keys (`evicted_live`, worth a
    metric) only hands its key one fresh burst."""

    def __init__(
        self,
        spec: RateSpec,
        max_keys: int = 10_000,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec = spec
        self.windows = windows_for(spec)
        self.max_keys = max_keys
        self.evicted_live = 0
        self._now = now
        self._table: OrderedDict[RateKeyTuple, tuple[float, ...]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._table)

    def try_acquire(self, key: RateKeyTuple) -> RateDecision:
        """Take one permit now or refuse (sync: the hot path has no await here)."""
        return self._take(key, 0.0)

    async def acquire(self, key: RateKeyTuple, max_wait_s: float = 0.0) -> RateDecision:
        """Take one permit, waiting up to `max_wait_s` (the caller passes min(wait_ms,
        deadline remaining)). The slot is reserved before sleeping, so waiters are served
        in arrival order; a waiter cancelled while asleep has spent its permit."""
        decision = self._take(key, max(0.0, max_wait_s))
        if decision.allowed and decision.wait_s > 0:
            await asyncio.sleep(decision.wait_s)
        return decision

    def _take(self, key: RateKeyTuple, max_wait_s: float) -> RateDecision:
        now = self._now()
        table = self._table
        tats = table.get(key)
        if tats is None:
            tats = (now,) * len(self.windows)
        decision, new = decide(tats, self.windows, now, max_wait_s)
        if new is None:
            if key in table:  # a key kept busy stays: eviction must not refill it
                table.move_to_end(key)
        else:
            table[key] = new
            table.move_to_end(key)
            if len(table) > self.max_keys:
                self._evict(now)
        return decision

    def _evict(self, now: float) -> None:
        while len(self._table) > self.max_keys:
            _, tats = self._table.popitem(last=False)
            if max(tats) > now:
                self.evicted_live += 1
