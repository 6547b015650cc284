"""What a guard answers. Verdicts, not exceptions, pass between guards: the pipeline
alone decides what a Deny means (refuse, or in audit mode log and carry on)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from proxy.model.errors import ErrorCode


@dataclass(frozen=True, slots=True)
class Allow:
    pass


@dataclass(frozen=True, slots=True)
class Rewrite:
    call: Any
    """The call to continue with (a ToolCall of the same kind)."""
    note: str = ""
    """What changed in what is sent; empty when only annotations changed (idempotency)."""


@dataclass(frozen=True, slots=True)
class Deny:
    code: ErrorCode
    reason: str
    """Shown to the caller and logged: never a secret or a whole body."""
    retry_after_s: float | None = None
    headers: tuple[tuple[str, str], ...] = ()
    data: tuple[tuple[str, str], ...] = ()
    """More fields for the error body (HTTP) or JSON-RPC `data`, e.g. an approval id."""


Verdict = Allow | Rewrite | Deny
ALLOW = Allow()
