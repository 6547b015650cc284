"""Pure approval decisions."""

from __future__ import annotations

from dataclasses import replace

from proxy.approval.decide import (
    ApprovalPlan,
    judge_decision,
    judge_retry,
    needed,
    pinned_safe,
)
from proxy.approval.model import ApprovalRecord, Status
from proxy.config.schema import ApprovalSpec
from proxy.model.errors import ErrorCode

ALWAYS = ApprovalSpec(approvers=["on-call"])
WRITES = ApprovalSpec(approvers=["dba"], when="writes")
DESTRUCTIVE = ApprovalSpec(approvers=["on-call"], when="destructive")

REC = ApprovalRecord(
    id="apr_x",
    route="billing",
    tool=None,
    method="POST",
    caller="acme/agent",
    tenant="acme",
    digest="sha256:a",
    arguments="{}",
    approvers=("on-call",),
    created=100.0,
    expires=200.0,
)


def test_needed_route_and_tools():
    assert needed(ApprovalPlan(ALWAYS, {}), (), None) is ALWAYS
    assert needed(ApprovalPlan(None, {}), (), None) is None
    assert needed(ApprovalPlan(WRITES, {}), (), True) is None  # a read
    assert needed(ApprovalPlan(WRITES, {}), (), False) is WRITES
    assert needed(ApprovalPlan(WRITES, {}), (), None) is WRITES  # unknown: a write
    mcp = ApprovalPlan(None, {"delete": ALWAYS}, mcp=True)
    assert needed(mcp, ("get",), None) is None
    assert needed(mcp, ("get", "delete"), None) is ALWAYS  # batch: any held tool holds it
    assert needed(ApprovalPlan(ALWAYS, {}, mcp=True), (), None) is None  # tools/list etc.
    plan = ApprovalPlan(DESTRUCTIVE, {}, frozenset({"add"}), mcp=True)
    assert needed(plan, ("add",), None) is None
    assert needed(plan, ("delete_user",), None) is DESTRUCTIVE


def test_pinned_safe_follows_mcp_defaults():
    assert pinned_safe({"readOnlyHint": True})
    assert pinned_safe({"destructiveHint": False})
    assert not pinned_safe({})  # destructiveHint defaults to true
    assert not pinned_safe({"readOnlyHint": False, "destructiveHint": True})
    assert not pinned_safe(None)


def test_judge_retry():
    ok = replace(REC, status=Status.APPROVED, decided_at=150.0)
    assert judge_retry(ok, "billing", "sha256:a", 160).code is None
    assert judge_retry(None, "billing", "sha256:a", 160).code is ErrorCode.APPROVAL_MISMATCH
    assert judge_retry(ok, "payroll", "sha256:a", 160).code is ErrorCode.APPROVAL_MISMATCH
    assert judge_retry(ok, "billing", "sha256:b", 160).code is ErrorCode.APPROVAL_MISMATCH
    assert judge_retry(REC, "billing", "sha256:a", 160).code is ErrorCode.APPROVAL_PENDING
    assert judge_retry(REC, "billing", "sha256:a", 200).code is ErrorCode.APPROVAL_EXPIRED
    denied = replace(REC, status=Status.DENIED)
    assert judge_retry(denied, "billing", "sha256:a", 160).code is ErrorCode.APPROVAL_DENIED
    used = replace(ok, used=True)
    assert judge_retry(used, "billing", "sha256:a", 160).code is ErrorCode.APPROVAL_MISMATCH
    kept = replace(used, remember_s=30)
    assert judge_retry(kept, "billing", "sha256:a", 170).code is None
    assert judge_retry(kept, "billing", "sha256:a", 181).code is ErrorCode.APPROVAL_MISMATCH


def test_judge_decision():
    on_call = frozenset({"on-call"})
    assert judge_decision(REC, "bob", on_call, 150) is None
    assert judge_decision(None, "bob", on_call, 150) == "no such approval"
    assert "approver" in (judge_decision(REC, "bob", frozenset({"dev"}), 150) or "")
    assert "own call" in (judge_decision(REC, "acme/agent", on_call, 150) or "")
    assert judge_decision(REC, "bob", on_call, 200) == "expired"
    assert judge_decision(replace(REC, status=Status.DENIED), "bob", on_call, 150)
