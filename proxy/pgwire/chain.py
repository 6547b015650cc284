"""Wire statements through the route's guard chain: the same `run_guards` an HTTP call
runs (proxy/pipeline.py), so every mode, guard_mode, metric and future guard applies to
the PostgreSQL listener as well. The wire only adds what it alone knows (statements.py).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from proxy.compile import CALLER_GUARDS, CompiledRoute
from proxy.guards.base import CallContext
from proxy.model.call import Caller, Request, SqlCall, ToolCall
from proxy.model.deadline import make_deadline
from proxy.model.errors import ErrorCode, ProxyError
from proxy.model.record import CallRecord
from proxy.pgwire.statements import Outcome, sqlstate_of
from proxy.pipeline import run_guards
from proxy.sql.pg.userfns import UserFunctions

WIRE_REQUEST = Request("QUERY", "")
"""Wire calls have no HTTP request; guards that read one see an empty one."""


@dataclass(frozen=True, slots=True)
class Judged:
    outcome: Outcome
    on_done: tuple[Callable[[], None], ...] = ()
    """Run when the statement's replies end (a concurrency slot, ...)."""


def wire_caller(tenant: str | None, role: str | None, client: str) -> Caller:
    roles = frozenset([role]) if role else frozenset()
    return Caller(tenant, roles, f"{random.getrandbits(128) or 1:032x}", client)


def _context(route: CompiledRoute, environment: str, message: str) -> CallContext:
    rec = CallRecord(start=time.monotonic(), method=message)
    rec.route, rec.kind = route.name, route.kind
    deadline = make_deadline(rec.start, route.timeout_s, None, None)
    return CallContext(deadline, rec, environment)


async def _run(route: CompiledRoute, call: ToolCall, ctx: CallContext, sql: str,
               only_caller: bool) -> tuple[Outcome, ToolCall | None]:
    rec = ctx.record
    chain = tuple(g for g in route.chain if g.name in CALLER_GUARDS) if only_caller else None
    try:
        out = await run_guards(route, call, ctx, chain)
    except ProxyError as err:
        kind = ctx.sql.decision.statement_kind if ctx.sql is not None else None
        return Outcome(err.code, err.message, sql, False, kind,
                       sqlstate_of(err.code, err.message, kind), rec.guard,
                       tuple(rec.would_deny)), None
    except Exception:  # SECURITY: a failing guard refuses (fail closed)
        return Outcome(ErrorCode.INTERNAL_ERROR, "a guard failed", sql), None
    return Outcome(None, sql=sql, would_deny=tuple(rec.would_deny)), out


async def judge_caller(route: CompiledRoute, caller: Caller, environment: str) -> Outcome:
    """The route's caller guards (identity, access) on a connection, in their modes."""
    call = ToolCall(route.name, route.kind, caller, WIRE_REQUEST)
    ctx = _context(route, environment, "connect")
    outcome, _ = await _run(route, call, ctx, "", only_caller=True)
    for done in ctx.on_done:
        done()
    return outcome


async def judge_statement(route: CompiledRoute, caller: Caller, sql: str, environment: str,
                          message: str, functions: UserFunctions | None = None) -> Judged:
    """One statement through the route's whole chain; the Outcome says what to send.
    `functions`: the upstream's user-function table, when the listener read it."""
    call = SqlCall(route.name, route.kind, caller, WIRE_REQUEST, sql=sql)
    ctx = _context(route, environment, message)
    ctx.sql_catalog = functions
    outcome, out = await _run(route, call, ctx, sql, only_caller=False)
    if out is None:
        for done in ctx.on_done:
            done()
        return Judged(outcome)
    assert isinstance(out, SqlCall)
    kind = out.statement_kind or (ctx.sql.decision.statement_kind if ctx.sql else None)
    return Judged(Outcome(None, sql=out.sql, rewritten=out.sql != sql, statement_kind=kind,
                          would_deny=outcome.would_deny), tuple(ctx.on_done))
