"""Query safety for SQL calls: judged on the AST by the route's SqlGuard (one per route,
built once; verdicts cached by query digest). This guard only refuses; the rewrite the
same decision carries is applied by tenant_scope, after safety is known."""

from __future__ import annotations

import time
from dataclasses import dataclass

from proxy.compile import GUARD_BUILDERS, Services
from proxy.config.schema import Route, Rules, SqlSpec
from proxy.guards.base import CallContext, SqlJudgement
from proxy.model.call import SqlCall, ToolCall
from proxy.model.errors import ErrorCode
from proxy.model.verdict import ALLOW, Deny, Verdict
from proxy.sql.engine import SqlDecision, SqlGuard
from proxy.sql.policy import SqlPolicy

SQL_BLOCKED = ErrorCode.SQL_BLOCKED  # an enum member read costs ~80 ns: once per call here
_judgement = tuple.__new__  # a NamedTuple without its Python __new__ (every SQL call)
SQL_KINDS = frozenset({"sql", "postgres"})
"""Route kinds whose calls carry SQL (postgres: statements seen by the wire listener)."""


def sql_decision(guard: SqlGuard, call: SqlCall, ctx: CallContext) -> SqlDecision:
    """The engine's decision on this call's text, judged once per call: a later guard
    reuses it only for the very text and tenant it was made for."""
    memo = ctx.sql
    tenant = call.caller.tenant
    if memo is not None and memo.sql == call.sql and memo.tenant == tenant:
        return memo.decision
    if ctx.sql_catalog is not None:
        guard = guard.with_user_functions(ctx.sql_catalog)
    t0 = time.perf_counter()
    decision = guard.judge(call.sql, tenant)
    ctx.record.sql_s = time.perf_counter() - t0
    ctx.sql = _judgement(SqlJudgement, (call.sql, tenant, decision))
    return decision


@dataclass(frozen=True, slots=True)
class SqlSafetyGuard:
    engine: SqlGuard
    name: str = "sql_safety"

    async def check(self, call: ToolCall, ctx: CallContext) -> Verdict:
        if not isinstance(call, SqlCall):
            return ALLOW  # a request of the SQL API that carries no SQL (result polling)
        decision = sql_decision(self.engine, call, ctx)
        if decision.code is SQL_BLOCKED:
            return Deny(decision.code, decision.reason)
        return ALLOW


def sql_engine(spec: SqlSpec, services: Services) -> SqlGuard:
    """One engine per policy, shared by the guards of a route and kept across reloads
    while the policy is unchanged (its verdict cache stays warm)."""
    policy = SqlPolicy.from_spec(spec)
    return services.extra.setdefault(("sql_engine", policy), SqlGuard(policy))


def build(route: Route, rules: Rules, services: Services) -> SqlSafetyGuard | None:
    if route.kind not in SQL_KINDS or route.sql is None:
        return None
    return SqlSafetyGuard(sql_engine(route.sql, services))


GUARD_BUILDERS["sql_safety"] = build
