"""Typed, frozen approval records and the canonical digest that binds an approval to one
exact call (an agent cannot get a harmless call approved and send another)."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from proxy.credentials.mask import masker_for
from proxy.model.call import GraphCall, McpCall, SqlCall, ToolCall

MAX_DISPLAY_CHARS = 4096
"""Masked arguments shown to approvers are cut here (the digest covers all of them)."""


class Status(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class ApprovalRecord:
    id: str
    route: str
    tool: str | None
    method: str
    caller: str
    """The caller's identity as the proxy knows it (see `caller_identity`)."""
    tenant: str | None
    digest: str
    arguments: str
    """Masked, for display only: never compared."""
    approvers: tuple[str, ...]
    created: float
    """Wall-clock seconds (time.time): records cross processes through Redis."""
    expires: float
    remember_s: float = 0.0
    status: Status = Status.PENDING
    decided_by: str | None = None
    decided_at: float | None = None
    comment: str | None = None
    used: bool = False
    """A defer-mode approval lets its call through once."""

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "status": str(self.status), "approvers": list(self.approvers)}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ApprovalRecord:
        return cls(**{**doc, "status": Status(doc["status"]), "approvers": tuple(doc["approvers"])})


def new_id() -> str:
    """Unguessable: knowing an id is what lets a defer-mode caller retry."""
    return "apr_" + secrets.token_urlsafe(18)


def caller_identity(call: ToolCall) -> str:
    """The verified token's subject (`sub`) when the caller presented one, else tenant
    and roles (what header identity knows)."""
    claims = call.caller.claims
    subject = claims.get("sub") if claims is not None else None
    if isinstance(subject, str) and subject:
        return subject
    roles = ",".join(sorted(call.caller.roles)) or "-"
    return f"{call.caller.tenant or '-'}/{roles}"


def _canonical(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def call_arguments(call: ToolCall, judged_sql: str | None = None) -> Any:
    """What the approver approves: the SQL text as judged, the JSON-RPC params, the
    graph statements, or the HTTP path, query and body."""
    if isinstance(call, SqlCall):
        return {"sql": judged_sql if judged_sql is not None else call.sql, "params": call.params}
    if isinstance(call, McpCall):
        return [{"method": m.method, "params": m.params} for m in call.messages if m.method]
    if isinstance(call, GraphCall):
        return [{"text": s.text, "parameters": s.parameters} for s in call.statements]
    req = call.request
    body: Any
    if call.json is not None:
        body = call.json
    elif req.body is not None:
        try:
            body = req.body.decode("utf-8")
        except UnicodeDecodeError:
            body = {"sha256": hashlib.sha256(req.body).hexdigest()}
    else:
        body = None
    return {"path": req.path, "query": req.query_string, "body": body}


def call_digest(call: ToolCall, arguments: Any) -> str:
    """sha256 over canonical JSON of method, route, tool, tenant, caller and arguments.
    SECURITY: any changed byte of what is sent changes the digest."""
    doc = {
        "method": call.request.method,
        "route": call.route,
        "tool": call.tool,
        "tenant": call.caller.tenant,
        "caller": caller_identity(call),
        "arguments": arguments,
    }
    try:
        raw = _canonical(doc)
    except (TypeError, ValueError):  # NaN and the like: digest the repr, never skip
        raw = repr(doc).encode()
    return "sha256:" + hashlib.sha256(raw).hexdigest()


_SECRET_KEY = re.compile(r"pass(word|wd)?|secret|token|api[-_]?key|auth|credential|private", re.I)


def _mask_keys(value: Any, depth: int = 0) -> Any:
    """Values under secret-looking keys are hidden whatever they look like."""
    if depth > 32:
        return "[...]"
    if isinstance(value, dict):
        return {
            k: "[REDACTED]"
            if isinstance(k, str) and _SECRET_KEY.search(k)
            else _mask_keys(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_mask_keys(v, depth + 1) for v in value]
    return value


def masked_arguments(arguments: Any) -> str:
    """Arguments as approvers see them: values under secret-looking keys and known token
    formats masked, cut to a display size."""
    try:
        text = json.dumps(_mask_keys(arguments), sort_keys=True, ensure_ascii=False, indent=1)
    except (TypeError, ValueError):
        text = repr(arguments)
    masked, _ = masker_for(frozenset()).mask_text(text)
    if len(masked) > MAX_DISPLAY_CHARS:
        masked = masked[:MAX_DISPLAY_CHARS] + " ...[cut]"
    return masked
