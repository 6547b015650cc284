"""Who is calling: a tenant route refuses calls that do not say which tenant they are for,
before any other guard (or the upstream) reads a tenant that is not there.

The tenant and role header values also reach logs, metrics labels and the upstream, so
every call's values are held to a grammar first (`identity_problem`, run by the pipeline
on every route before anything records them): a value that breaks it is refused, and
only values that pass are ever written anywhere.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from proxy.config.schema import Route, Rules
from proxy.credentials.mask import Masker
from proxy.guards.base import CallContext
from proxy.model.call import ToolCall
from proxy.model.errors import ErrorCode
from proxy.model.verdict import ALLOW, Deny, Verdict
from proxy.services import Services

TENANT_GRAMMAR = "1-128 of A-Z a-z 0-9 . _ : @ -"
_TENANT = re.compile(r"[A-Za-z0-9._:@-]{1,128}\Z")
ROLES_GRAMMAR = "names of 1-128 of A-Z a-z 0-9 . _ : @ -, comma separated, 1024 at most"
_ROLES_CHARS = re.compile(r"[A-Za-z0-9._:@, \t-]{0,1024}\Z")
_ROLE = re.compile(r"[A-Za-z0-9._:@-]{0,128}\Z")


def _tenant_ok(value: str) -> bool:
    return _TENANT.match(value) is not None


def _roles_ok(value: str) -> bool:
    """Comma-separated names (blank around commas allowed): the charset in one match,
    then each name; linear, where one regex for the whole list would backtrack."""
    if _ROLES_CHARS.match(value) is None:
        return False
    return all(_ROLE.match(p.strip(" \t")) for p in value.split(","))


_FORMATS = Masker((), formats=True)
INVALID = "[INVALID]"
"""Recorded in place of a value that breaks its grammar."""
BAD_TENANT, BAD_ROLES = 1, 2
_VERDICTS: dict[tuple[str | None, str | None], int] = {}
"""Verdicts on (tenant, roles) pairs seen (a bounded set per deployment): one lookup per
call, and the credential-format check once per distinct pair."""
_VERDICTS_MAX = 4096


def _acceptable(value: str, grammar: Callable[[str], bool]) -> bool:
    # SECURITY: the grammar keeps log lines and labels well-formed and bounded; a value
    # in the charset that is a known token format (a GitHub token, a JWT) is a
    # credential sent in the wrong header, and must not be written as an identity.
    return grammar(value) and not _FORMATS.spans(value)


def verdict(tenant: str | None, roles: str | None) -> int:
    """0, or BAD_TENANT | BAD_ROLES for the values that break their grammar (an absent or
    empty value breaks none: tenant routes refuse a missing tenant later)."""
    key = (tenant, roles)
    v = _VERDICTS.get(key)
    if v is None:
        v = (BAD_TENANT if tenant and not _acceptable(tenant, _tenant_ok) else 0) | (
            BAD_ROLES if roles and not _acceptable(roles, _roles_ok) else 0
        )
        if len(tenant or "") + len(roles or "") <= 2048:
            if len(_VERDICTS) >= _VERDICTS_MAX:
                _VERDICTS.clear()
            _VERDICTS[key] = v
    return v


def identity_problem(
    tenant: str | None, roles: str | None, tenant_header: str, role_header: str
) -> str | None:
    """Why these tenant / role header values cannot be accepted (never quoting them), or
    None."""
    v = verdict(tenant, roles)
    if not v:
        return None
    if v & BAD_TENANT:
        return f"{tenant_header} is not a valid tenant id ({TENANT_GRAMMAR})"
    return f"{role_header} is not a valid role list ({ROLES_GRAMMAR})"


def loggable_identity(tenant: str | None, roles: str | None) -> tuple[str | None, str]:
    """(tenant, roles) as they may be recorded: a value that breaks its grammar becomes
    a fixed marker. For callers that cannot refuse at the source (a wire protocol's
    startup already accepted)."""
    v = verdict(tenant, roles)
    return (INVALID if v & BAD_TENANT else tenant), (INVALID if v & BAD_ROLES else roles or "")


@dataclass(frozen=True, slots=True)
class IdentityGuard:
    tenant_header: str
    name: str = "identity"

    async def check(self, call: ToolCall, ctx: CallContext) -> Verdict:
        if not call.caller.tenant:
            return Deny(ErrorCode.AUTH_FAILED, f"missing {self.tenant_header} on a tenant route")
        return ALLOW


def route_needs_tenant(route: Route) -> bool:
    if route.tenant is not None:
        return route.tenant.required
    if route.sql is not None and route.sql.tenant is not None:
        return True
    return route.graph is not None and route.graph.tenant is not None


def build(route: Route, rules: Rules, services: Services) -> IdentityGuard | None:
    if not route_needs_tenant(route):
        return None
    if route.kind == "postgres":  # the wire names its tenant in the startup packet
        param = route.tenant.startup_parameter if route.tenant else None
        return IdentityGuard(f"tenant (startup parameter {param or 'options'})")
    return IdentityGuard(rules.identity.tenant_header)
