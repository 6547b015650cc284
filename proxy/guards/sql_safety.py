"""Query safety for SQL calls: judged on the AST by the route's SqlGuard (one per route,
built once; verdicts cached by query digest). This guard only refuses; the rewrite the
same decision carries is applied by tenant_scope, after safety is known."""

from __future__ import annotations

import time
from dataclasses import dataclass

from proxy.compile import GUARD_BUILDERS, Services
from proxy.config.schema import Route, Rules, SqlSpec
from proxy.guards.base import CallContext
from proxy.model.call import SqlCall, ToolCall
from proxy.model.errors import ErrorCode
from proxy.model.verdict import ALLOW, Deny, Verdict
from proxy.sql.engine import SqlDecision, SqlGuard
from proxy.sql.policy import SqlPolicy

DECISION = "sql_decision"
"""ctx.scratch key: the SqlDecision for tenant_scope."""


def sql_decision(guard: SqlGuard, call: SqlCall, ctx: CallContext) -> SqlDecision:
    decision = ctx.scratch.get(DECISION)
    if decision is None:
        t0 = time.perf_counter()
        decision = guard.judge(call.sql, call.caller.tenant)
        ctx.record.sql_s = time.perf_counter() - t0
        ctx.scratch[DECISION] = decision
    return decision


@dataclass(frozen=True, slots=True)
class SqlSafetyGuard:
    engine: SqlGuard
    name: str = "sql_safety"

    async def check(self, call: ToolCall, ctx: CallContext) -> Verdict:
        if not isinstance(call, SqlCall):
            return ALLOW  # a request of the SQL API that carries no SQL (result polling)
        decision = sql_decision(self.engine, call, ctx)
        if decision.code is ErrorCode.SQL_BLOCKED:
            return Deny(decision.code, decision.reason)
        return ALLOW


def sql_engine(spec: SqlSpec, services: Services) -> SqlGuard:
    """One engine per policy, shared by the guards of a route and kept across reloads
    while the policy is unchanged (its verdict cache stays warm)."""
    policy = SqlPolicy.from_spec(spec)
    return services.extra.setdefault(("sql_engine", policy), SqlGuard(policy))


def build(route: Route, rules: Rules, services: Services) -> SqlSafetyGuard | None:
    if route.kind != "sql" or route.sql is None:
        return None
    return SqlSafetyGuard(sql_engine(route.sql, services))


GUARD_BUILDERS["sql_safety"] = build
