"""Query safety for SQL calls: judged on the AST by the route's SqlGuard (one per route,
built once; verdicts cached by query digest). This guard only refuses; the rewrite the
same decision carries is applied by tenant_scope, after safety is known."""

from __future__ import annotations

import time
from dataclasses import dataclass

from proxy.conditions.activation import CREDENTIAL_HEADERS, Facts, evaluate, hidden_headers
from proxy.conditions.cel import Condition
from proxy.config.schema import Route, Rules, SqlSpec
from proxy.guards.base import CallContext, SqlJudgement
from proxy.model.call import SqlCall, ToolCall
from proxy.model.errors import ErrorCode
from proxy.model.verdict import ALLOW, Deny, Verdict
from proxy.services import Services
from proxy.sql.engine import SqlDecision, SqlGuard
from proxy.sql.policy import SqlPolicy
from proxy.sql.scope import TableScope

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
class SqlScope:
    """A route's (or MCP tool's) `sql.allow_tables` and `sql.when`, judged on an allowed
    statement's kind and tables."""

    tables: TableScope | None
    when: Condition | None
    hidden: frozenset[str] = CREDENTIAL_HEADERS

    @classmethod
    def build(cls, spec: SqlSpec, rule: str, hidden: frozenset[str]) -> SqlScope | None:
        when = Condition.build(f"{rule}.when", spec.when, "sql") if spec.when else None
        tables = TableScope.from_spec(spec.allow_tables)
        return None if when is None and tables is None else cls(tables, when, hidden)

    def judge(self, call: ToolCall, decision: SqlDecision, ctx: CallContext,
              facts: Facts | None = None) -> Deny | None:
        if self.tables is not None:
            refusal = self.tables.refusal(call.caller.roles, call.caller.tenant,
                                          decision.tables)
            if refusal is not None:
                return Deny(ErrorCode.PERMISSION_DENIED, refusal)
        when = self.when
        if when is not None:
            base = facts or Facts(hidden_headers=self.hidden)
            facts = Facts(base.tool_name, base.tool_arguments, base.tool_annotations,
                          decision.statement_kind, decision.tables, decision.columns,
                          self.hidden)
            out = evaluate(when, call, ctx.conditions_seen, facts)
            if not out.holds:
                return Deny(ErrorCode.POLICY_DENY, when.denial(out))
        return None


@dataclass(frozen=True, slots=True)
class SqlSafetyGuard:
    engine: SqlGuard
    scope: SqlScope | None = None
    name: str = "sql_safety"

    async def check(self, call: ToolCall, ctx: CallContext) -> Verdict:
        if not isinstance(call, SqlCall):
            return ALLOW  # a request of the SQL API that carries no SQL (result polling)
        decision = sql_decision(self.engine, call, ctx)
        if decision.code is SQL_BLOCKED:
            return Deny(decision.code, decision.reason)
        if self.scope is not None and decision.code is None:
            denied = self.scope.judge(call, decision, ctx)
            if denied is not None:
                return denied
        return ALLOW


def sql_engine(spec: SqlSpec, services: Services) -> SqlGuard:
    """One engine per policy, shared by the guards of a route and kept across reloads
    while the policy is unchanged (its verdict cache stays warm)."""
    policy = SqlPolicy.from_spec(spec)
    return services.extra.setdefault(("sql_engine", policy), SqlGuard(policy))


def build(route: Route, rules: Rules, services: Services) -> SqlSafetyGuard | None:
    if route.kind not in SQL_KINDS or route.sql is None:
        return None
    scope = SqlScope.build(route.sql, f"routes[{route.name}].sql", hidden_headers(rules))
    return SqlSafetyGuard(sql_engine(route.sql, services), scope)

