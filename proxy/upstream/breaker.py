"""Circuit breakers: stop calling a backend that is failing, probe it after a pause.

closed --(N consecutive failures, or failure_ratio over window_s with min_calls)--> open
open --(reset_after_s)--> half_open --(half_open_probes successes)--> closed
half_open --(any failure)--> open

Only outcomes named in `failure_on` count as failures; the caller's own 4xx never does
(the backend answered). Time comes from an injected clock, so tests drive it exactly.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from proxy.config.schema import BreakerSpec

Outcome = Literal["success", "connect", "timeout", "5xx", "429", "client_4xx"]
BUCKETS = 10
"""Slices of the ratio window: memory and cost per call stay constant."""


class State(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


STATE_GAUGE = {State.CLOSED: 0, State.HALF_OPEN: 1, State.OPEN: 2}
"""Values for the `breaker_state` gauge (Envoy-like: 0 closed, 1 half-open, 2 open)."""

Transition = Callable[[State, State], None]


@dataclass(frozen=True, slots=True)
class BreakerDecision:
    allowed: bool
    state: State
    retry_after_s: float = 0.0
    """Refused: seconds until the breaker lets a probe through."""
    probe: bool = False


class Breaker:
    def __init__(self, spec: BreakerSpec, now: Callable[[], float] = time.monotonic) -> None:
        self.spec = spec
        self._now = now
        self._state = State.CLOSED
        self._callbacks: list[Transition] = []
        self._consecutive = 0
        self._open_until = 0.0
        self._probes_out = 0
        self._probes_ok = 0
        self._probe_at = 0.0
        self._width = spec.window_s / BUCKETS
        self._epochs = [-1] * BUCKETS
        self._calls = [0] * BUCKETS
        self._fails = [0] * BUCKETS
        self.last_used = now()

    def on_transition(self, callback: Transition) -> None:
        """Called as callback(old, new) on every state change (metrics, logs)."""
        self._callbacks.append(callback)

    @property
    def state(self) -> State:
        if self._state is State.OPEN and self._now() >= self._open_until:
            self._move(State.HALF_OPEN)
        return self._state

    def before_call(self) -> BreakerDecision:
        """Ask before calling upstream; refused means CIRCUIT_OPEN with Retry-After."""
        now = self._now()
        self.last_used = now
        state = self.state
        if state is State.CLOSED:
            return BreakerDecision(True, state)
        if state is State.OPEN:
            return BreakerDecision(False, state, self._open_until - now)
        if self._probes_out > self._probes_ok and now - self._probe_at > self.spec.reset_after_s:
            # Probes whose outcome never came back (cancelled calls) must not wedge it.
            self._probes_out = self._probes_ok
        if self._probes_out < self.spec.half_open_probes:
            self._probes_out += 1
            self._probe_at = now
            return BreakerDecision(True, state, probe=True)
        return BreakerDecision(False, state, min(1.0, self.spec.reset_after_s))

    def abandon(self, probe: bool) -> None:
        """An admitted call ended without saying anything about the backend (the caller's
        own budget ran out, or the caller went away): no outcome, but a probe's slot is
        handed back so the next caller can probe at once."""
        if probe and self.state is State.HALF_OPEN and self._probes_out > self._probes_ok:
            self._probes_out -= 1

    def record(self, outcome: Outcome) -> None:
        """Report how an admitted call ended."""
        now = self._now()
        self.last_used = now
        failed = outcome in self.spec.failure_on
        state = self.state
        if state is State.OPEN:
            return  # a call admitted before the breaker opened: old news
        if state is State.HALF_OPEN:
            if failed:
                self._trip(now)
            else:
                self._probes_ok += 1
                if self._probes_ok >= self.spec.half_open_probes:
                    self._move(State.CLOSED)
            return
        self._consecutive = self._consecutive + 1 if failed else 0
        calls, fails = self._count(now, failed)
        ratio = self.spec.failure_ratio
        if self._consecutive >= self.spec.failures or (
            ratio is not None and calls >= self.spec.min_calls and fails >= ratio * calls
        ):
            self._trip(now)

    def _count(self, now: float, failed: bool) -> tuple[int, int]:
        epoch = int(now // self._width)
        slot = epoch % BUCKETS
        if self._epochs[slot] != epoch:
            self._epochs[slot], self._calls[slot], self._fails[slot] = epoch, 0, 0
        self._calls[slot] += 1
        self._fails[slot] += failed
        live = [i for i in range(BUCKETS) if self._epochs[i] > epoch - BUCKETS]
        return sum(self._calls[i] for i in live), sum(self._fails[i] for i in live)

    def _trip(self, now: float) -> None:
        self._open_until = now + self.spec.reset_after_s
        self._move(State.OPEN)

    def _move(self, new: State) -> None:
        old, self._state = self._state, new
        self._consecutive = self._probes_out = self._probes_ok = 0
        if new is State.CLOSED:
            self._epochs = [-1] * BUCKETS
        if old is not new:
            for callback in self._callbacks:
                callback(old, new)


BreakerKey = tuple[str, str | None]


class BreakerTable:
    """One breaker per route, or per (route, tenant) when `per_tenant`.

    Tenant breakers are capped at `max_tenants`: the least recently used closed one is
    evicted first (it holds little worth keeping); an open one goes only when the nearest
    `scan` entries are all open, which takes a flood of failing tenants."""

    def __init__(
        self,
        spec: BreakerSpec,
        now: Callable[[], float] = time.monotonic,
        max_tenants: int = 1000,
        on_transition: Callable[[BreakerKey, State, State], None] | None = None,
        scan: int = 64,
    ) -> None:
        self.spec = spec
        self.max_tenants = max_tenants
        self.evicted_open = 0
        self._now = now
        self._on_transition = on_transition
        self._scan = scan
        self._table: OrderedDict[BreakerKey, Breaker] = OrderedDict()

    def __len__(self) -> int:
        return len(self._table)

    def get(self, route: str, tenant: str | None = None) -> Breaker:
        key: BreakerKey = (route, tenant if self.spec.per_tenant else None)
        breaker = self._table.get(key)
        if breaker is not None:
            self._table.move_to_end(key)
            return breaker
        breaker = Breaker(self.spec, self._now)
        if self._on_transition is not None:
            hook = self._on_transition
            breaker.on_transition(lambda old, new: hook(key, old, new))
        self._table[key] = breaker
        if len(self._table) > self.max_tenants:
            self._evict()
        return breaker

    def _evict(self) -> None:
        for i, (key, breaker) in enumerate(self._table.items()):
            if i >= self._scan:
                break
            if breaker.state is State.CLOSED:
                del self._table[key]
                return
        self._table.popitem(last=False)
        self.evicted_open += 1
