"""Pure decisions: does a call need approval, may a retry go through, may this approver
decide. No I/O here: the guard and the admin API act on what these return."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from proxy.approval.model import ApprovalRecord, Status
from proxy.config.schema import ApprovalSpec
from proxy.model.errors import ErrorCode


@dataclass(frozen=True, slots=True)
class ApprovalPlan:
    """One route's approval rules, compiled at load."""

    route: ApprovalSpec | None
    tools: Mapping[str, ApprovalSpec]
    safe_tools: frozenset[str] = frozenset()
    """MCP tools whose pinned annotations say readOnlyHint or destructiveHint: false."""
    mcp: bool = False


def pinned_safe(annotations: Any) -> bool:
    """MCP's defaults: destructiveHint is true unless the tool is read-only or says false.
    SECURITY: only reviewed (pinned) annotations count; a server's live claim does not."""
    if not isinstance(annotations, Mapping):
        return False
    return annotations.get("readOnlyHint") is True or annotations.get("destructiveHint") is False


def _applies(
    spec: ApprovalSpec, tool: str | None, read_only: bool | None, plan: ApprovalPlan
) -> bool:
    if spec.when == "always":
        return True
    if spec.when == "writes":
        return read_only is not True  # unknown is a write: fail closed
    return tool is None or tool not in plan.safe_tools  # destructive


def needed(
    plan: ApprovalPlan, tools: tuple[str, ...], read_only: bool | None
) -> ApprovalSpec | None:
    """The rule that holds this call, or None. MCP: only tools/call messages are held
    (a tool's own rule first, then the route's); other routes: the route's rule."""
    if plan.mcp:
        for tool in tools:
            spec = plan.tools.get(tool)
            if spec is not None and _applies(spec, tool, read_only, plan):
                return spec
        if plan.route is not None:
            for tool in tools:
                if _applies(plan.route, tool, read_only, plan):
                    return plan.route
        return None
    if plan.route is not None and _applies(plan.route, None, read_only, plan):
        return plan.route
    return None


@dataclass(frozen=True, slots=True)
class RetryVerdict:
    code: ErrorCode | None
    """None: the call may go through on this approval."""
    reason: str


def judge_retry(rec: ApprovalRecord | None, route: str, digest: str, now: float) -> RetryVerdict:
    """A call that names an approval id: through only if that id approved this exact call
    on this route and was not used yet (or is within remember_s)."""
    mismatch = ErrorCode.APPROVAL_MISMATCH
    if rec is None:
        return RetryVerdict(mismatch, "unknown approval id")
    if rec.route != route:
        return RetryVerdict(mismatch, "the approval id belongs to another route")
    if rec.digest != digest:
        return RetryVerdict(mismatch, "the call differs from the one submitted for approval")
    if rec.status is Status.DENIED:
        return RetryVerdict(ErrorCode.APPROVAL_DENIED, f"approval {rec.id} was denied")
    if rec.status is Status.EXPIRED or (rec.status is Status.PENDING and now >= rec.expires):
        return RetryVerdict(ErrorCode.APPROVAL_EXPIRED, f"approval {rec.id} expired undecided")
    if rec.status is Status.PENDING:
        return RetryVerdict(ErrorCode.APPROVAL_PENDING, f"approval {rec.id} is still pending")
    if rec.used and not remembered(rec, now):
        return RetryVerdict(mismatch, f"approval {rec.id} was already used")
    return RetryVerdict(None, "approved")


def remembered(rec: ApprovalRecord, now: float) -> bool:
    """An approved digest lets the same call through again within remember_s."""
    return (
        rec.status is Status.APPROVED
        and rec.decided_at is not None
        and rec.remember_s > 0
        and now < rec.decided_at + rec.remember_s
    )


def judge_decision(
    rec: ApprovalRecord | None, approver: str, roles: frozenset[str], now: float
) -> str | None:
    """Why this approver may not decide this approval, or None."""
    if rec is None:
        return "no such approval"
    if rec.status is not Status.PENDING:
        return f"already {rec.status}"
    if now >= rec.expires:
        return "expired"
    if not roles.intersection(rec.approvers):
        return "not an approver for this call"
    if approver == rec.caller:  # SECURITY: nobody approves their own call
        return "an approver cannot decide their own call"
    return None
