"""What one call leaves behind for telemetry: filled in as the call goes, read once in
the pipeline's `finally` by metrics, the access log and the decision log."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class CallRecord:
    start: float
    """time.monotonic() at accept."""
    trace_id: str = ""
    span: Any = None
    """The OpenTelemetry span of this call, when tracing is on."""
    route: str = ""
    kind: str = ""
    method: str = ""
    path: str = ""
    tenant: str | None = None
    roles: str = ""
    tool: str | None = None
    tool_name: str | None = None
    """The tool as the caller named it, for the logs (`tool` is the metric label: tools
    the rules do not name are "other" there); only a name that passes a plain grammar."""
    outcome: str = "ok"
    """ok (answered by the upstream), denied (refused by policy), error."""
    error_code: str = ""
    reason: str = ""
    guard: str = ""
    """The guard that denied (or would have, in audit mode)."""
    status: int = 0
    upstream_s: float = 0.0
    retries: int = 0
    budget_ms: int | None = None
    phase: str | None = None
    would_deny: list[tuple[str, str, str]] = field(default_factory=list)
    """(guard, code, reason) that audit mode let through."""
    warnings: list[str] = field(default_factory=list)
    rewritten: bool = False
    findings: list[tuple[str, str]] = field(default_factory=list)
    """Plaintext credentials seen: (kind, action) with action blocked or warned."""
    sql_s: float | None = None
    """Time in the SQL guard (parse, judge, rewrite)."""
    masked: int = 0
    """Secrets masked in the response."""
    filter_refusals: list[tuple[str, str]] = field(default_factory=list)
    """(filter, reason): a response filter could not run, so the answer was refused."""
    approval: Any = None
    """proxy.approval.model.ApprovalRecord this call was held on or went through with."""
    decision_input: dict | None = None
    """What the decision log records for replay (masked, capped); None when off."""
