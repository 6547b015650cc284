"""JWT verification with PyJWT (on `cryptography`): maintained, already a dependency
through cryptography, and it checks exp/nbf/iss/aud with leeway itself. The algorithm
allowlist and the key-type match are ours, decided before PyJWT sees the token.

A verified token is remembered by its exact text until it expires (bounded): a cached
check is a dict lookup and a clock read; the set is emptied when the keys change, so a
key withdrawn from the JWKS stops admitting tokens signed by it.

SECURITY: the token and the claims never reach a log line, a metric or an error reason.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import jwt
from jwt import exceptions as jx

from proxy.config.schema import JwtSpec
from proxy.identity.jwks import ASYMMETRIC, JwksFile, JwksUrl, KeySet, KeySource

MAX_TOKEN = 16 * 1024
MAX_CANDIDATES = 8
"""Keys tried for a token without a `kid` (a JWKS with a few keys per algorithm)."""


class TokenRefused(Exception):
    """Why a token is not accepted (the reason is safe to show the caller)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Verified:
    tenant: str | None
    roles: frozenset[str]
    claims: MappingProxyType[str, Any]
    expires: float
    """`exp` (epoch seconds), or +inf for a token without one (only if not required)."""


def _reasons() -> list[tuple[type[Exception], str]]:
    return [
        (jx.ExpiredSignatureError, "token expired"),
        (jx.ImmatureSignatureError, "token not yet valid"),
        (jx.InvalidAudienceError, "wrong audience"),
        (jx.InvalidIssuerError, "wrong issuer"),
        (jx.InvalidSignatureError, "bad signature"),
        (jx.MissingRequiredClaimError, "a required claim is missing"),
        (jx.InvalidAlgorithmError, "algorithm not allowed"),
        (jx.DecodeError, "malformed token"),
    ]


_REASONS = _reasons()


def _reason(exc: Exception) -> str:
    for cls, text in _REASONS:
        if isinstance(exc, cls):
            return text
    return "invalid token"


def claim_at(claims: Any, path: str) -> Any:
    for step in path.split("."):
        if not isinstance(claims, dict):
            return None
        claims = claims.get(step)
    return claims


def roles_of(value: Any) -> frozenset[str]:
    """A list of names, or a space-separated string (OAuth `scope`)."""
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return frozenset(v for v in value if v)
    raise TokenRefused("the roles claim is not a list of names or a string")


class Verifier:
    def __init__(self, spec: JwtSpec, source: KeySource) -> None:
        self.spec = spec
        self.source = source
        self.algorithms = frozenset(spec.algorithms)
        self.audiences = list(spec.audiences)
        self.require = sorted({"iss", "aud", *spec.require})
        prefix = spec.scheme.lower() + " " if spec.scheme else ""
        self._prefix = prefix
        self._cache: dict[str, Verified] = {}
        self._generation = -1

    def token_from(self, value: str) -> str:
        if self._prefix:
            if value[: len(self._prefix)].lower() != self._prefix:
                raise TokenRefused(f"{self.spec.header} is not a {self.spec.scheme} token")
            value = value[len(self._prefix):]
        token = value.strip()
        if not token or len(token) > MAX_TOKEN:
            raise TokenRefused("malformed token")
        return token

    async def verify(self, token: str) -> Verified:
        keys = await self.source.keys()
        if keys.generation != self._generation:
            self._cache.clear()  # SECURITY: a rotated-out key admits nothing cached
            self._generation = keys.generation
        hit = self._cache.get(token)
        now = time.time()
        if hit is not None and now < hit.expires + self.spec.clock_skew_s:
            return hit
        verified = await self._verify(token, keys, now)
        cache = self._cache
        if len(cache) >= self.spec.cache_size:
            del cache[next(iter(cache))]  # oldest first
        cache[token] = verified
        return verified

    async def _verify(self, token: str, keys: KeySet, now: float) -> Verified:
        try:
            header = jwt.get_unverified_header(token)
        except jx.PyJWTError:
            raise TokenRefused("malformed token") from None
        alg = header.get("alg")
        # SECURITY: the allowlist is ours and asymmetric only; `none` and HS* never pass.
        if not isinstance(alg, str) or alg not in self.algorithms or alg not in ASYMMETRIC:
            raise TokenRefused("algorithm not allowed")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise TokenRefused("malformed token")
        candidates = keys.candidates(kid, alg)
        if (not candidates and not keys.has_kid(kid)) or not keys.keys:
            fresh = await self.source.refetch()
            if fresh is not None:
                keys = fresh
                candidates = keys.candidates(kid, alg)
        if not candidates:
            if not keys.keys:
                raise TokenRefused("signing keys unavailable")
            raise TokenRefused("unknown key" if not keys.has_kid(kid) else
                               "key does not fit the token's algorithm")
        last: Exception | None = None
        for key in candidates[:MAX_CANDIDATES]:
            try:
                claims = jwt.decode(
                    token, key.key, algorithms=[alg], audience=self.audiences,
                    issuer=self.spec.issuer, leeway=self.spec.clock_skew_s,
                    options={"require": self.require, "verify_signature": True},
                )
            except jx.InvalidSignatureError as exc:
                last = exc  # another key without a kid may fit
                continue
            except jx.PyJWTError as exc:
                raise TokenRefused(_reason(exc)) from None
            return self._identity(claims)
        raise TokenRefused(_reason(last) if last else "bad signature")

    def _identity(self, claims: dict[str, Any]) -> Verified:
        tenant = None
        if self.spec.tenant_claim is not None:
            value = claim_at(claims, self.spec.tenant_claim)
            if value is not None and not isinstance(value, str):
                raise TokenRefused("the tenant claim is not a string")
            tenant = value or None
        roles = roles_of(claim_at(claims, self.spec.roles_claim))
        exp = claims.get("exp")
        expires = float(exp) if isinstance(exp, (int, float)) else float("inf")
        return Verified(tenant, roles, MappingProxyType(claims), expires)

    async def close(self) -> None:
        await self.source.close()


def source_for(spec: JwtSpec) -> KeySource:
    if spec.jwks_file is not None:
        return JwksFile(spec.jwks_file)
    assert spec.jwks_url is not None
    return JwksUrl(spec.jwks_url, spec.refresh_s, spec.min_refetch_s, spec.fetch_timeout_s)
