"""RBAC per route: the caller's roles must meet the route's `access.roles`."""

from __future__ import annotations

from dataclasses import dataclass

from proxy.config.schema import Route, Rules
from proxy.guards.base import CallContext
from proxy.model.call import ToolCall
from proxy.model.errors import ErrorCode
from proxy.model.verdict import ALLOW, Deny, Verdict
from proxy.services import Services


def roles_allow(allowed: frozenset[str], roles: frozenset[str]) -> bool:
    """Pure: `*` admits any caller, even one without a role header."""
    return "*" in allowed or not allowed.isdisjoint(roles)


@dataclass(frozen=True, slots=True)
class AccessGuard:
    roles: frozenset[str]
    name: str = "access"

    async def check(self, call: ToolCall, ctx: CallContext) -> Verdict:
        if roles_allow(self.roles, call.caller.roles):
            return ALLOW
        if not call.caller.roles:
            return Deny(
                ErrorCode.PERMISSION_DENIED, "no caller role given for a role-restricted route"
            )
        return Deny(ErrorCode.PERMISSION_DENIED, "caller role not allowed on this route")


def build(route: Route, rules: Rules, services: Services) -> AccessGuard | None:
    if route.access.roles is None:
        return None
    return AccessGuard(frozenset(route.access.roles))
