"""Tenant scope for SQL calls: applies the rewrite the SQL decision carries (a tenant
predicate on every tenant-scoped table, the outer LIMIT of the row cap) to a statement
already known to be safe, and refuses writes that would cross tenants.

It draws its verdict from the decision alone, never from another guard's: a statement it
could not scope is refused here even when sql_safety only audits (issue 22 item 5)."""

from __future__ import annotations

from dataclasses import dataclass

from proxy.codecs.sql import with_sql
from proxy.config.schema import Route, Rules
from proxy.guards.base import CallContext
from proxy.guards.sql_safety import SQL_BLOCKED, SQL_KINDS, sql_decision, sql_engine
from proxy.model.call import SqlCall, ToolCall, evolve
from proxy.model.errors import ErrorCode
from proxy.model.verdict import ALLOW, Deny, Rewrite, Verdict
from proxy.services import Services
from proxy.sql.engine import SqlGuard
from proxy.sql.location import Where, where
from proxy.sql.rows import RowCapFilter

_NOTE = "tenant predicate / row cap"
_alloc = object.__new__
_set_call, _set_note = Rewrite.call.__set__, Rewrite.note.__set__  # type: ignore[attr-defined]


def _rewrite(call: ToolCall, note: str) -> Rewrite:
    """`Rewrite(call, note)` without the frozen `__init__` (made on every scoped call)."""
    verdict = _alloc(Rewrite)
    _set_call(verdict, call)
    _set_note(verdict, note)
    return verdict


@dataclass(frozen=True, slots=True)
class TenantScopeGuard:
    engine: SqlGuard
    where: Where | None
    """Where the SQL sits in an HTTP request; None on the wire (the text is the call)."""
    row_cap: RowCapFilter | None  # stateless: one serves every call of the route
    name: str = "tenant_scope"

    async def check(self, call: ToolCall, ctx: CallContext) -> Verdict:
        if not isinstance(call, SqlCall):
            return ALLOW
        memo = ctx.sql  # sql_safety judged this very call: its decision, without a call
        if memo is not None and memo.sql is call.sql and memo.tenant is call.caller.tenant:
            decision = memo.decision
        else:
            decision = sql_decision(self.engine, call, ctx)
        if decision.code is SQL_BLOCKED:
            if self.engine.policy.tenant_column is None:
                return ALLOW  # nothing to scope; sql_safety's verdict stands alone
            # SECURITY: the engine made no rewrite for a blocked statement. Whatever
            # sql_safety's mode, a tenant route never forwards a statement unscoped.
            return Deny(ErrorCode.TENANT_MISMATCH,
                        f"statement cannot be scoped to the tenant ({decision.reason})")
        if decision.code is not None:
            return Deny(decision.code, decision.reason)
        if self.row_cap is not None:
            ctx.response_filters.append(self.row_cap)
        kind, idempotent = decision.statement_kind, decision.read_only
        if not decision.rewritten:
            return Rewrite(evolve(call, statement_kind=kind, idempotent=idempotent))
        if self.where is None:
            call = evolve(call, sql=decision.sql, statement_kind=kind, idempotent=idempotent)
        else:
            call = with_sql(self.where, call, decision.sql, statement_kind=kind,
                            idempotent=idempotent)
        return _rewrite(call, _NOTE)


def build(route: Route, rules: Rules, services: Services) -> TenantScopeGuard | None:
    if route.kind not in SQL_KINDS or route.sql is None:
        return None
    spec = route.sql
    if route.kind == "postgres":  # rows stream straight back: only the rewrite's LIMIT
        return TenantScopeGuard(sql_engine(spec, services), None, None)
    cap = RowCapFilter(spec.max_rows, spec.on_excess) if spec.max_rows is not None else None
    return TenantScopeGuard(sql_engine(spec, services), where(spec.location), cap)

