"""Rate limits and concurrency caps (bulkheads) per route and per MCP tool.

After access, so refused callers spend no quota. Bulkheads are checked first (a slot is
free to take and give back); a slot is released through `ctx.on_done` when the call ends,
whatever the outcome. Over a limit: RATE_LIMITED (429) with Retry-After from the bucket
and RateLimit-* headers; allowed calls carry RateLimit-* too. `wait_ms` waits for
capacity up to min(wait_ms, deadline remaining).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from proxy.config.schema import RateSpec, Route, Rules
from proxy.guards.base import CallContext
from proxy.limits.cluster import ClusterRateLimiter
from proxy.limits.gcra import RateDecision
from proxy.limits.inflight import Bulkhead
from proxy.limits.local import RateLimiter, rate_key
from proxy.mcp.policy import McpPolicy
from proxy.model.call import McpCall, ToolCall
from proxy.model.errors import ErrorCode
from proxy.model.verdict import ALLOW, Deny, Verdict
from proxy.services import Services
from proxy.upstream.resilience import ReloadCache, cache_of

if TYPE_CHECKING:
    from proxy.guards.base import Guard

CONCURRENCY_RETRY_S = 1.0
"""Retry-After for a concurrency refusal: slots free as calls end, no bucket to read."""


@dataclass(frozen=True, slots=True)
class Limit:
    """The rate limit and/or concurrency cap of a route, or of one MCP tool on it."""

    scope: str
    """'route' or "tool 'name'", for the refusal message."""
    spec: RateSpec | None
    rate: RateLimiter | ClusterRateLimiter | None
    bulkhead: Bulkhead | None


def rate_denial(limit: Limit, decision: RateDecision) -> Deny:
    return Deny(
        ErrorCode.RATE_LIMITED,
        f"rate limit exceeded for this {limit.scope}",
        retry_after_s=decision.retry_after_s,
        headers=decision.headers(),
    )


def concurrency_denial(limit: Limit, bulkhead: Bulkhead) -> Deny:
    return Deny(
        ErrorCode.RATE_LIMITED,
        f"concurrency limit reached for this {limit.scope} "
        f"({bulkhead.max_inflight} calls in flight)",
        retry_after_s=CONCURRENCY_RETRY_S,
    )


@dataclass(frozen=True, slots=True)
class RateLimitGuard:
    route: str
    limit: Limit | None
    tools: Mapping[str, Limit]
    name: str = "ratelimit"

    def limits_for(self, call: ToolCall) -> tuple[Limit, ...]:
        tool = self.tools.get(call.tool) if call.tool and isinstance(call, McpCall) else None
        return tuple(x for x in (self.limit, tool) if x is not None)

    async def check(self, call: ToolCall, ctx: CallContext) -> Verdict:
        limits = self.limits_for(call)
        for limit in limits:
            if limit.bulkhead is not None:
                if not limit.bulkhead.try_enter():
                    return concurrency_denial(limit, limit.bulkhead)
                # Released by the pipeline when the call ends, even if a later step refuses.
                ctx.on_done.append(limit.bulkhead.leave)
        best: RateDecision | None = None
        for limit in limits:
            if limit.rate is None or limit.spec is None:
                continue
            caller = call.caller
            key = rate_key(limit.spec, self.route, caller.tenant, call.tool, caller.roles)
            wait_s = min(limit.spec.wait_ms / 1000, ctx.deadline.remaining())
            decision = await limit.rate.acquire(key, wait_s)
            if not decision.allowed:
                return rate_denial(limit, decision)
            if best is None or decision.remaining < best.remaining:
                best = decision
        if best is not None:
            ctx.response_headers.extend(best.headers())
        return ALLOW


def make_limit(
    scope: str,
    route: str,
    tool: str,
    rate: RateSpec | None,
    max_inflight: int | None,
    rules: Rules,
    cache: ReloadCache,
) -> Limit | None:
    """Limiter and bulkhead from the cache: an unchanged spec keeps its buckets and slots
    across reloads."""
    if rate is None and max_inflight is None:
        return None
    limiter = None
    if rate is not None:
        cluster = rate.scope == "cluster" and rules.redis is not None
        redis_json = rules.redis.model_dump_json() if cluster and rules.redis else ""
        key = ("rate", route, tool, rate.model_dump_json(), redis_json)
        if cluster:
            redis = rules.redis
            assert redis is not None
            prefix = f"{route}:{tool}" if tool else route
            limiter = cache.get(key, lambda: ClusterRateLimiter(rate, redis, prefix))
        else:
            limiter = cache.get(key, lambda: RateLimiter(rate))
    bulkhead = None
    if max_inflight is not None:
        bulkhead = cache.get(
            ("inflight", route, tool, max_inflight), lambda: Bulkhead(max_inflight)
        )
    return Limit(scope, rate, limiter, bulkhead)


def build(route: Route, rules: Rules, services: Services) -> Guard | None:
    cache = cache_of(services)
    lim = route.limits
    limit = make_limit("route", route.name, "", lim.rate, lim.max_inflight, rules, cache)
    tools: dict[str, Limit] = {}
    if route.mcp is not None:
        policy = McpPolicy.from_spec(route.mcp)
        for name in route.mcp.tools:
            tl = policy.tool_limits(name)
            if tl is None:
                continue
            tool_limit = make_limit(
                f"tool '{name}'", route.name, name, tl.rate, tl.max_inflight, rules, cache
            )
            if tool_limit is not None:
                tools[name] = tool_limit
    if limit is None and not tools:
        return None
    return RateLimitGuard(route.name, limit, MappingProxyType(tools))

