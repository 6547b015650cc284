"""One record per statement seen on a postgres route, for metrics and the access log
(the wire-protocol twin of an HTTP call's record)."""

from __future__ import annotations

from dataclasses import dataclass

from proxy.model.errors import ErrorCode


@dataclass(frozen=True, slots=True)
class StatementRecord:
    route: str
    tenant: str | None
    role: str | None
    message: str
    """query (simple Q), parse (extended P), function (F) or connect."""
    statement_kind: str | None
    outcome: str
    """allowed | denied | error (the server refused) | timeout."""
    error_code: ErrorCode | None
    reason: str
    """Why it was refused (empty when allowed); never SQL text or a secret."""
    rewritten: bool
    inspect_s: float
    """Time spent in the SQL guard."""
    duration_s: float
    """From forwarding to the server's ReadyForQuery; 0 for refusals."""
    guard: str = ""
    """The guard that refused (empty: the wire's own checks, or allowed)."""
    would_deny: tuple[tuple[str, str, str], ...] = ()
    """(guard, code, reason) of guards in audit mode that would have refused."""
