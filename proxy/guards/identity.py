"""Who is calling: a tenant route refuses calls that do not say which tenant they are for,
before any other guard (or the upstream) reads a tenant that is not there."""

from __future__ import annotations

from dataclasses import dataclass

from proxy.guards.base import CallContext
from proxy.model.call import ToolCall
from proxy.model.errors import ErrorCode
from proxy.model.verdict import ALLOW, Deny, Verdict


@dataclass(frozen=True, slots=True)
class IdentityGuard:
    tenant_header: str
    name: str = "identity"

    async def check(self, call: ToolCall, ctx: CallContext) -> Verdict:
        if not call.caller.tenant:
            return Deny(ErrorCode.AUTH_FAILED, f"missing {self.tenant_header} on a tenant route")
        return ALLOW
