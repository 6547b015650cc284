"""RBAC per route: the caller's roles must meet the route's `access.roles`."""

from __future__ import annotations

from dataclasses import dataclass

from proxy.conditions.activation import NO_FACTS, Facts, evaluate
from proxy.conditions.cel import Condition
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
    when: Condition | None = None
    """`access.when`: CEL over request, identity and time (proxy/conditions/)."""
    facts: Facts = NO_FACTS
    name: str = "access"

    async def check(self, call: ToolCall, ctx: CallContext) -> Verdict:
        if roles_allow(self.roles, call.caller.roles):
            when = self.when
            if when is not None:
                out = evaluate(when, call, ctx.conditions_seen, self.facts)
                if not out.holds:
                    return Deny(ErrorCode.POLICY_DENY, when.denial(out))
            return ALLOW
        if not call.caller.roles:
            return Deny(
                ErrorCode.PERMISSION_DENIED, "no caller role given for a role-restricted route"
            )
        return Deny(ErrorCode.PERMISSION_DENIED, "caller role not allowed on this route")


def build(route: Route, rules: Rules, services: Services) -> AccessGuard | None:
    spec = route.access
    if spec.roles is None and spec.when is None:
        return None
    from proxy.conditions.activation import hidden_headers

    when = None
    if spec.when is not None:
        when = Condition.build(f"routes[{route.name}].access.when", spec.when, "access")
    roles = frozenset(spec.roles) if spec.roles is not None else frozenset({"*"})
    return AccessGuard(roles, when, Facts(hidden_headers=hidden_headers(rules)))
