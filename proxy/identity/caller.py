"""Who is calling, on a route that verifies tokens: roles and tenant from the verified
token; a role or tenant header may only repeat what the token says."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from proxy.config.schema import Identity
from proxy.guards.identity import identity_problem
from proxy.identity.jwt import TokenRefused, Verifier
from proxy.model.errors import ErrorCode, ProxyError


@dataclass(frozen=True, slots=True)
class CallerIdentity:
    tenant: str | None
    roles: frozenset[str]
    roles_text: str
    """The roles as recorded (sorted, comma separated)."""
    claims: Mapping[str, Any] | None
    """None: anonymous (an `optional` route called without a token)."""


ANONYMOUS = CallerIdentity(None, frozenset(), "", None)


def _refuse(code: ErrorCode, reason: str) -> ProxyError:
    return ProxyError(code, reason)


async def resolve(
    verifier: Verifier,
    mode: str,
    headers: Mapping[str, str],
    ident: Identity,
    header_tenant: str | None,
    header_roles: frozenset[str],
) -> CallerIdentity:
    """The caller's verified identity, or the refusal. `headers`: a multidict (getall)."""
    name = verifier.spec.header
    values = headers.getall(name, ()) if name in headers else ()  # type: ignore[attr-defined]
    if len(values) > 1:
        raise _refuse(ErrorCode.AUTH_FAILED, f"{name} sent more than once")
    if not values:
        if mode == "required":
            raise _refuse(ErrorCode.AUTH_FAILED, f"missing identity token ({name})")
        if header_tenant or header_roles:
            # SECURITY: an anonymous caller cannot name itself a tenant or a role.
            raise _refuse(ErrorCode.AUTH_FAILED, f"{ident.tenant_header} and "
                          f"{ident.role_header} need a verified identity token on this route")
        return ANONYMOUS
    try:
        verified = await verifier.verify(verifier.token_from(values[0]))
    except TokenRefused as refused:
        raise _refuse(ErrorCode.AUTH_FAILED, f"identity token refused: {refused.reason}") \
            from None
    roles_text = ",".join(sorted(verified.roles))
    problem = identity_problem(verified.tenant, roles_text, "the tenant claim", "the roles claim")
    if problem is not None:
        raise _refuse(ErrorCode.AUTH_FAILED, f"identity token refused: {problem}")
    if header_tenant and header_tenant != verified.tenant:
        raise _refuse(ErrorCode.TENANT_MISMATCH,
                      f"{ident.tenant_header} differs from the verified token's tenant")
    if header_roles and not header_roles <= verified.roles:
        raise _refuse(ErrorCode.PERMISSION_DENIED,
                      f"{ident.role_header} names a role the verified token does not grant")
    return CallerIdentity(verified.tenant, verified.roles, roles_text, verified.claims)
