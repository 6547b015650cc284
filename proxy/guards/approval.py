"""Human approval: late in the chain (after query safety and tenant scope, before secret
injection), so the call a person approves is the one the guards judged and the upstream
gets, and the approver never sees an injected secret. Wait mode holds the call open;
defer mode answers APPROVAL_PENDING with an id the caller retries with."""

from __future__ import annotations

import re
import time

from proxy.approval.decide import ApprovalPlan, judge_retry, needed, pinned_safe
from proxy.approval.model import (
    ApprovalRecord,
    Status,
    call_arguments,
    call_digest,
    caller_identity,
    masked_arguments,
)
from proxy.approval.service import Approvals, approvals_of
from proxy.config.schema import ApprovalSpec, Route, Rules
from proxy.guards.base import CallContext
from proxy.model.call import McpCall, SqlCall, ToolCall
from proxy.model.errors import ErrorCode
from proxy.model.verdict import ALLOW, Deny, Verdict
from proxy.services import Services

HEADER = "X-CallWarden-Approval"
_ID = re.compile(r"apr_[A-Za-z0-9_-]{1,64}\Z")


def _tools(call: ToolCall) -> tuple[str, ...]:
    if not isinstance(call, McpCall):
        return ()
    out = []
    for m in call.messages:
        if m.method == "tools/call" and isinstance(m.params, dict):
            name = m.params.get("name")
            out.append(name if isinstance(name, str) else "")
    return tuple(out)


def _deny(code: ErrorCode, reason: str, rec: ApprovalRecord | None) -> Deny:
    if rec is None:
        return Deny(code, reason)
    return Deny(code, reason, headers=((HEADER, rec.id),), data=(("approval_id", rec.id),))


class ApprovalGuard:
    name = "approval"

    def __init__(self, route: str, plan: ApprovalPlan, approvals: Approvals, audit: bool) -> None:
        self.route = route
        self.plan = plan
        self.approvals = approvals
        self.audit = audit

    def _needed(self, call: ToolCall, ctx: CallContext) -> ApprovalSpec | None:
        read_only = ctx.sql.decision.read_only if ctx.sql is not None else None
        if isinstance(call, SqlCall) and ctx.sql is None:
            read_only = None  # not judged: a write as far as `writes` is concerned
        return needed(self.plan, _tools(call), read_only)

    def would_hold(self, call: ToolCall, ctx: CallContext) -> str | None:
        """For dry runs (explain, replay): who would have to approve, never a hold."""
        spec = self._needed(call, ctx)
        if spec is None:
            return None
        return (
            f"needs approval by {', '.join(spec.approvers)} "
            f"({spec.mode} mode, expires after {spec.timeout_s:g}s)"
        )

    async def check(self, call: ToolCall, ctx: CallContext) -> Verdict:
        judged = ctx.sql.sql if ctx.sql is not None else None
        spec = self._needed(call, ctx)
        if spec is None:
            return ALLOW
        arguments = call_arguments(call, judged)
        digest = call_digest(call, arguments)
        store = self.approvals.store
        now = self.approvals.clock()
        given = call.request.headers.getall(HEADER, ())
        if len(given) > 1:
            return Deny(ErrorCode.APPROVAL_MISMATCH, f"{HEADER} sent more than once")
        rec: ApprovalRecord | None = None
        if given:
            if not _ID.match(given[0]):
                return Deny(ErrorCode.APPROVAL_MISMATCH, "malformed approval id")
            rec = await store.get(given[0])
            verdict = judge_retry(rec, self.route, digest, now)
            if verdict.code is None:
                return await self._through(rec, ctx)  # type: ignore[arg-type]
            if verdict.code is not ErrorCode.APPROVAL_PENDING or spec.mode == "defer":
                if verdict.code is ErrorCode.APPROVAL_EXPIRED and rec is not None:
                    rec = await self.approvals.decide(rec.id, Status.EXPIRED, None, None) or rec
                # A mismatch names someone else's approval: its id is not echoed back.
                mine = rec if verdict.code is not ErrorCode.APPROVAL_MISMATCH else None
                ctx.record.approval = mine
                return _deny(verdict.code, verdict.reason, mine)
        else:
            remembered = await store.remembered(digest, now)
            if remembered is not None:
                ctx.record.approval = remembered
                return ALLOW
            if self.audit:  # audit mode never holds a call: it says it would have
                return Deny(ErrorCode.APPROVAL_PENDING, "this call would need approval")
            rec = await self.approvals.create(
                route=self.route,
                tool=call.tool,
                method=call.request.method,
                caller=caller_identity(call),
                tenant=call.caller.tenant,
                digest=digest,
                arguments=masked_arguments(arguments),
                spec=spec,
            )
            if rec is None:
                return Deny(ErrorCode.RATE_LIMITED, "too many approvals pending", 60.0)
        assert rec is not None  # a pending retry names an existing record
        ctx.record.approval = rec
        if spec.mode == "defer":
            return _deny(
                ErrorCode.APPROVAL_PENDING,
                f"approval {rec.id} pending: retry with {HEADER} once a person approved",
                rec,
            )
        return await self._wait(rec, ctx)

    async def _wait(self, rec: ApprovalRecord, ctx: CallContext) -> Verdict:
        """Until a decision, the approval's expiry or the caller's budget, whichever first."""
        approvals = self.approvals
        limit = min(rec.expires - approvals.clock(), ctx.deadline.remaining())
        started = time.monotonic()
        got = await approvals.hold(rec, limit)
        ctx.record.approval = got
        if got is None:  # the proxy is shutting down: answer now; the approval stays
            ctx.record.approval = rec
            return _deny(
                ErrorCode.UPSTREAM_UNAVAILABLE,
                f"proxy shutting down: retry with approval {rec.id} (still pending)",
                rec,
            )
        ctx.record.warnings.append(f"held {time.monotonic() - started:.1f}s for approval")
        if got.status is Status.APPROVED:
            return await self._through(got, ctx)
        if got.status is Status.DENIED:
            return _deny(ErrorCode.APPROVAL_DENIED, f"approval {got.id} was denied", got)
        if got.status is Status.EXPIRED or approvals.clock() >= got.expires:
            got = await approvals.decide(got.id, Status.EXPIRED, None, None) or got
            ctx.record.approval = got
            return _deny(ErrorCode.APPROVAL_EXPIRED, f"approval {got.id} expired undecided", got)
        # The call's deadline (the caller's budget or the route's timeout) came first:
        # the approval stays pending; a retry that names it goes through once approved.
        deadline = ctx.deadline
        what = "request budget" if deadline.budget_bound else "route timeout"
        return _deny(deadline.timeout_code, f"{what} ran out waiting for approval {got.id}", got)

    async def _through(self, rec: ApprovalRecord, ctx: CallContext) -> Verdict:
        ctx.record.approval = rec
        if not await self.approvals.store.consume(rec.id, self.approvals.clock()):
            return _deny(ErrorCode.APPROVAL_MISMATCH, f"approval {rec.id} was already used", rec)
        return ALLOW


def _safe_tools(route: Route) -> frozenset[str]:
    if route.mcp is None or route.mcp.pins is None:
        return frozenset()
    from proxy.integrity.pins import PinError, load_pins

    try:
        pins = load_pins(route.mcp.pins)
    except (OSError, PinError):
        return frozenset()  # unreadable pins: nothing is known safe (the integrity guard says why)
    return frozenset(n for n, p in pins.tools.items() if pinned_safe(p.text.get("annotations")))


def build(route: Route, rules: Rules, services: Services) -> ApprovalGuard | None:
    tools: dict[str, ApprovalSpec] = {}
    if route.mcp is not None:
        tools = {n: t.approval for n, t in route.mcp.tools.items() if t.approval is not None}
    if route.approval is None and not tools:
        return None
    plan = ApprovalPlan(route.approval, tools, _safe_tools(route), route.kind == "mcp")
    approvals = approvals_of(services, rules)
    if services.secrets is not None:  # webhook URLs are references: resolvable, checked by /readyz
        hooks = [h.url for spec in (route.approval, *tools.values()) if spec for h in spec.notify]
        services.secrets.scope(f"approval:{route.name}", hooks)
    audit = route.guard_modes.get("approval", route.mode or rules.mode) == "audit"
    return ApprovalGuard(route.name, plan, approvals, audit)

