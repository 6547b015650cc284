"""Tenant scope for SQL calls: applies the rewrite the SQL decision carries (a tenant
predicate on every tenant-scoped table, the outer LIMIT of the row cap) to a statement
already known to be safe, and refuses writes that would cross tenants."""

from __future__ import annotations

from dataclasses import dataclass

from proxy.codecs.sql import RowCapFilter, with_sql
from proxy.compile import GUARD_BUILDERS, Services
from proxy.config.schema import Route, Rules
from proxy.guards.base import CallContext
from proxy.guards.sql_safety import sql_decision, sql_engine
from proxy.model.call import SqlCall, ToolCall, evolve
from proxy.model.errors import ErrorCode
from proxy.model.verdict import ALLOW, Deny, Rewrite, Verdict
from proxy.sql.engine import SqlGuard
from proxy.sql.location import Where, where


@dataclass(frozen=True, slots=True)
class TenantScopeGuard:
    engine: SqlGuard
    where: Where
    row_cap: RowCapFilter | None  # stateless: one serves every call of the route
    name: str = "tenant_scope"

    async def check(self, call: ToolCall, ctx: CallContext) -> Verdict:
        if not isinstance(call, SqlCall):
            return ALLOW
        decision = sql_decision(self.engine, call, ctx)
        if decision.code is ErrorCode.SQL_BLOCKED:
            return ALLOW  # only reached in audit mode of sql_safety: nothing to scope
        if decision.code is not None:
            return Deny(decision.code, decision.reason)
        if self.row_cap is not None:
            ctx.response_filters.append(self.row_cap)
        kind, idempotent = decision.statement_kind, decision.read_only
        if not decision.rewritten:
            return Rewrite(evolve(call, statement_kind=kind, idempotent=idempotent))
        call = with_sql(self.where, call, decision.sql, statement_kind=kind, idempotent=idempotent)
        return Rewrite(call, "tenant predicate / row cap")


def build(route: Route, rules: Rules, services: Services) -> TenantScopeGuard | None:
    if route.kind != "sql" or route.sql is None:
        return None
    spec = route.sql
    cap = RowCapFilter(spec.max_rows, spec.on_excess) if spec.max_rows is not None else None
    return TenantScopeGuard(sql_engine(spec, services), where(spec.location), cap)


GUARD_BUILDERS["tenant_scope"] = build
