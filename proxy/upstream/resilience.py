"""Per-route breaker, retry and retry-budget state, asked by `Upstream.send` (the one seam
that talks to backends) around every attempt.

The decisions are the engines' pure functions (breaker.py, retry.py); this module only
picks the right state for a call (route, MCP tool, tenant), keeps it across rules reloads
(`ReloadCache`) and reports metrics. Per-call state lives in `ctx.resilience`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from proxy.config.schema import BreakerSpec, Limits, PartialLimits, RetrySpec
from proxy.model.errors import ErrorCode, ProxyError
from proxy.upstream.breaker import STATE_GAUGE, Breaker, BreakerKey, BreakerTable, Outcome, State
from proxy.upstream.retry import (
    EwmaLatency,
    RetryBudget,
    next_delay_s,
    retry_after_from_header,
    retry_refusal,
    retryable_status,
)

if TYPE_CHECKING:
    from proxy.codecs.http import OutboundRequest
    from proxy.guards.base import CallContext

MAX_TRACKED = 1024
"""Non-closed breakers remembered for the route's gauge (bounded: tenants are input)."""


def classify(status: int) -> Outcome:
    """Pure: an upstream status as a breaker outcome. The caller's own 4xx is never a
    failure of the backend (it answered); 429 counts only where `failure_on` says so."""
    if status >= 500:
        return "5xx"
    if status == 429:
        return "429"
    if status >= 400:
        return "client_4xx"
    return "success"


@dataclass(slots=True)
class Policy:
    """Breakers, retry rule, retry budget and observed latency of a route or of one tool."""

    breakers: BreakerTable | None
    retry: RetrySpec
    budget: RetryBudget
    latency: EwmaLatency


@dataclass(slots=True)
class CallResilience:
    policy: Policy
    breaker: Breaker | None
    probe: bool = False
    """The breaker admitted the current attempt as a half-open probe."""
    pending: bool = False
    """The head said success; the breaker hears it once the body is through (`settle`)."""


class RouteResilience:
    """One per route (kept across reloads while its specs are unchanged)."""

    def __init__(
        self,
        route: str,
        limits: Limits,
        tools: Mapping[str, PartialLimits] | None = None,
        *,
        metrics: Any = None,
        now: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.route = route
        self._now = now
        self._rng = rng or random.Random()
        self._not_closed: dict[tuple[str, BreakerKey], State] = {}
        self._gauge = self._transitions = self._retries = None
        if metrics is not None:
            self._gauge = metrics.breaker_state.labels(route)
            self._transitions = metrics.breaker_transitions
            self._retries = metrics.retries.labels(route)
            if limits.breaker is not None or any(t.breaker for t in (tools or {}).values()):
                self._gauge.set(0)
        self.default = self._policy("", limits.breaker, limits.retries)
        self.tools: dict[str, Policy] = {}
        for name, tl in (tools or {}).items():
            if tl.breaker is None and tl.retries is None:
                continue  # shares the route's policy
            self.tools[name] = Policy(
                self.default.breakers if tl.breaker is None else self._table(name, tl.breaker),
                tl.retries or limits.retries,
                self.default.budget if tl.retries is None else RetryBudget(tl.retries, now),
                EwmaLatency(),
            )

    def _policy(self, tool: str, breaker: BreakerSpec | None, retry: RetrySpec) -> Policy:
        table = None if breaker is None else self._table(tool, breaker)
        return Policy(table, retry, RetryBudget(retry, self._now), EwmaLatency())

    def _table(self, tool: str, spec: BreakerSpec) -> BreakerTable:
        def moved(key: BreakerKey, old: State, new: State) -> None:
            self._on_transition(tool, key, new)

        return BreakerTable(spec, self._now, on_transition=moved)

    def _on_transition(self, tool: str, key: BreakerKey, new: State) -> None:
        if self._transitions is not None:
            self._transitions.labels(self.route, str(new)).inc()
        tracked = self._not_closed
        k = (tool, key)
        tracked.pop(k, None)
        if new is not State.CLOSED:
            tracked[k] = new
            if len(tracked) > MAX_TRACKED:
                del tracked[next(iter(tracked))]
        if self._gauge is not None:
            # The route's worst breaker: one open tenant breaker shows as open.
            self._gauge.set(max((STATE_GAUGE[s] for s in tracked.values()), default=0))

    # -- the seam's questions, in the order Upstream.send asks them ----------------------

    def before_attempt(self, ctx: CallContext) -> None:
        """Raises CIRCUIT_OPEN (503, Retry-After = time left open) instead of calling."""
        state = ctx.resilience
        first = state is None
        if state is None:
            tool = ctx.record.tool
            policy = self.tools.get(tool, self.default) if tool else self.default
            breaker = (
                None if policy.breakers is None
                else policy.breakers.get(self.route, ctx.record.tenant)
            )
            state = ctx.resilience = CallResilience(policy, breaker)
        if state.breaker is not None:
            decision = state.breaker.before_call()
            state.probe = decision.probe
            if not decision.allowed:
                raise ProxyError(
                    ErrorCode.CIRCUIT_OPEN,
                    "circuit breaker open: the upstream is failing, not called",
                    retry_after_s=max(decision.retry_after_s, 0.0),
                )
        if first:
            state.policy.budget.record_request()

    def classify(self, status: int) -> Outcome:
        return classify(status)

    def record_outcome(self, ctx: CallContext, outcome: Outcome, seconds: float) -> None:
        state = ctx.resilience
        assert state is not None
        if outcome != "connect":  # a refused connection says nothing about latency
            state.policy.latency.observe(seconds)
        if state.breaker is not None:
            if outcome == "success":
                state.pending = True  # a body that breaks later is this call's outcome
            else:
                state.breaker.record(outcome)

    def settle(self, ctx: CallContext, failure: Outcome | None = None) -> None:
        """The exchange is over: a success the head announced is recorded now, or the
        failure that came after the head instead (a reset or a stall mid-body)."""
        state: CallResilience | None = ctx.resilience
        if state is not None and state.pending:
            state.pending = False
            if state.breaker is not None:
                state.breaker.record(failure or "success")

    def abandon(self, ctx: CallContext) -> None:
        """The attempt was cut by the caller (its budget, or it hung up): the backend is
        not to blame, so the breaker hears no outcome (one caller's short budget must not
        open the circuit for every caller) and a probe's slot is freed."""
        state: CallResilience | None = ctx.resilience
        if state is not None and state.breaker is not None:
            state.breaker.abandon(state.probe)

    def retry_delay(
        self,
        ctx: CallContext,
        out: OutboundRequest,
        attempt: int,
        status: int | None,
        retry_after_header: str | None,
    ) -> float | None:
        """Seconds to wait before the next attempt, or None: do not retry. `attempt` is the
        number of retries made so far (0 after the first attempt failed); `status` is None
        for a connection failure."""
        state = ctx.resilience
        assert state is not None
        if status is not None and not retryable_status(status):
            return None
        if state.breaker is not None and state.breaker.state is State.OPEN:
            ctx.retry_refused = "breaker"
            return None
        upstream_wait = retry_after_from_header(retry_after_header) if status else None
        made = attempt + 1
        spec = state.policy.retry
        delay = next_delay_s(made, spec, self._rng, upstream_wait)
        reason = retry_refusal(
            made,
            spec,
            ctx.idempotent,
            out.replayable,
            ctx.deadline.remaining(),
            state.policy.latency.value,
            state.policy.budget,
            delay,
        )
        if reason is not None:
            ctx.retry_refused = reason
            return None
        return delay

    def count_retry(self, ctx: CallContext) -> None:
        """A retry is about to start: spend from the budget, count it."""
        assert ctx.resilience is not None
        ctx.resilience.policy.budget.record_retry()
        if self._retries is not None:
            self._retries.inc()


def build_resilience(
    route: str,
    limits: Limits,
    tools: Mapping[str, PartialLimits],
    metrics: Any,
    cache: ReloadCache,
) -> RouteResilience:
    """The route's resilience, reused from the last load when every spec it depends on is
    unchanged (open breakers stay open and budgets stay spent across a reload)."""
    key = (
        "resilience",
        route,
        limits.breaker.model_dump_json() if limits.breaker else "",
        limits.retries.model_dump_json(),
        tuple(sorted((n, t.model_dump_json()) for n, t in tools.items())),
    )
    return cache.get(key, lambda: RouteResilience(route, limits, tools, metrics=metrics))


class ReloadCache:
    """Runtime state (limiters, bulkheads, breakers, budgets) carried across rules reloads.

    Keys are hashable tuples naming the owner and the spec the object was built from
    (e.g. ("rate", route, tool, spec JSON)): an unchanged spec finds its old object, a
    changed one builds fresh. `compile_rules` calls `begin()`, builders call `get()`, and
    on success `end()` forgets what the new rules no longer use and closes it. A failed
    compile never calls `end()`, so the rules still in force keep all their state.
    Held by `Services` (`cache_of(services)`), so separate proxies in one process (tests)
    never share state."""

    def __init__(self) -> None:
        self._items: dict[Hashable, Any] = {}
        self._used: set[Hashable] = set()
        self._closing: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._items)

    def begin(self) -> None:
        self._used = set()

    def get(self, key: Hashable, build: Callable[[], Any]) -> Any:
        self._used.add(key)
        obj = self._items.get(key)
        if obj is None:
            obj = self._items[key] = build()
        return obj

    def end(self) -> list[Any]:
        """Drop entries unused since begin(); returns them (async `close()` scheduled)."""
        dropped = [v for k, v in self._items.items() if k not in self._used]
        self._items = {k: v for k, v in self._items.items() if k in self._used}
        self._close(dropped)
        return dropped

    def _close(self, objs: Iterable[Any]) -> None:
        closers = [c for c in (getattr(o, "close", None) for o in objs) if c is not None]
        if not closers:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (validate / explain): nothing was ever connected
        for close in closers:
            task = loop.create_task(close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        """Close everything (process shutdown): Redis clients of cluster limiters."""
        objs, self._items = list(self._items.values()), {}
        for obj in objs:
            close = getattr(obj, "close", None)
            if close is not None:
                await close()


def cache_of(services: Any) -> ReloadCache:
    """The ReloadCache held by a `compile.Services` (created on first use)."""
    cache = services.extra.get("reload_cache")
    if cache is None:
        cache = services.extra["reload_cache"] = ReloadCache()
    return cache
