"""Where the signing keys come from: a JWKS file (reloaded when it changes) or a JWKS URL
(fetched, cached, refreshed in the background, kept when a fetch fails, fetched again on
an unknown `kid` at most once per `min_refetch_s`). Verification never waits on the
network except for the first fetch and the bounded unknown-kid refetch."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from jwt import PyJWK
from jwt.exceptions import PyJWKError

log = logging.getLogger("callwarden.identity")

ASYMMETRIC = {
    "RS256": ("RSA", None), "RS384": ("RSA", None), "RS512": ("RSA", None),
    "PS256": ("RSA", None), "PS384": ("RSA", None), "PS512": ("RSA", None),
    "ES256": ("EC", "P-256"), "ES384": ("EC", "P-384"), "ES512": ("EC", "P-521"),
    "EdDSA": ("OKP", None),
}
"""The algorithms a rules file may allow, with the key type (and curve) each needs.
SECURITY: no `none`, no HMAC: a JWKS publishes public keys, and an HS256 token
"signed" with one of them is the classic key-confusion forgery."""
MAX_KEYS = 64
MAX_JWKS_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class Key:
    kid: str | None
    kty: str
    crv: str | None
    alg: str | None
    """The JWK's own `alg`, when it names one: then only that algorithm may use it."""
    key: Any
    """The public key object (cryptography)."""

    def fits(self, alg: str) -> bool:
        kty, crv = ASYMMETRIC[alg]
        if self.kty != kty or (self.alg is not None and self.alg != alg):
            return False
        if kty == "EC":
            return self.crv == crv
        if kty == "OKP":
            return self.crv in ("Ed25519", "Ed448")
        return True


@dataclass(frozen=True, slots=True)
class KeySet:
    keys: tuple[Key, ...] = ()
    generation: int = 0

    def candidates(self, kid: str | None, alg: str) -> list[Key]:
        return [k for k in self.keys if (kid is None or k.kid == kid) and k.fits(alg)]

    def has_kid(self, kid: str | None) -> bool:
        return kid is None or any(k.kid == kid for k in self.keys)


_generation = 0


def parse_jwks(data: bytes) -> KeySet:
    """Public keys only; private members, symmetric (`oct`) keys and keys for other uses
    are left out. Raises ValueError on a document that is not a JWKS."""
    global _generation
    if len(data) > MAX_JWKS_BYTES:
        raise ValueError("JWKS too large")
    doc = json.loads(data)
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise ValueError("not a JWKS document (no 'keys' list)")
    keys: list[Key] = []
    for jwk in doc["keys"][:MAX_KEYS]:
        if not isinstance(jwk, dict) or jwk.get("kty") not in ("RSA", "EC", "OKP"):
            continue  # SECURITY: an `oct` key would let HMAC tokens verify
        if jwk.get("use", "sig") != "sig" or "d" in jwk:
            continue  # encryption keys; a private key published by mistake
        alg = jwk.get("alg")
        if alg is not None and alg not in ASYMMETRIC:
            continue
        try:
            public = PyJWK(jwk).key
        except (PyJWKError, ValueError, TypeError):
            continue
        kid = jwk.get("kid")
        keys.append(Key(kid if isinstance(kid, str) else None, jwk["kty"], jwk.get("crv"),
                        alg, public))
    _generation += 1
    return KeySet(tuple(keys), _generation)


class KeySource:
    """What the verifier asks: the current keys, and for more when a kid is unknown."""

    async def keys(self) -> KeySet:
        raise NotImplementedError

    async def refetch(self) -> KeySet | None:
        """New keys after an unknown kid, or None when not allowed now."""
        return None

    async def close(self) -> None:
        return None


@dataclass(slots=True)
class JwksFile(KeySource):
    path: str
    poll_s: float = 1.0
    _set: KeySet = field(default_factory=KeySet)
    _stamp: tuple[int, int, int] | None = None
    _checked: float = -1e9

    async def keys(self) -> KeySet:
        now = time.monotonic()
        if now - self._checked >= self.poll_s:
            self._checked = now
            self._reload()
        return self._set

    def _reload(self) -> None:
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
            if stamp == self._stamp:
                return
            with open(self.path, "rb") as f:
                self._set = parse_jwks(f.read(MAX_JWKS_BYTES + 1))
            self._stamp = stamp
        except (OSError, ValueError) as exc:
            # Keep the keys we have: a half-written file must not lock everyone out.
            log.warning("JWKS file %s not loaded (%s); keeping %d keys", self.path,
                        exc.__class__.__name__, len(self._set.keys))


@dataclass(slots=True)
class JwksUrl(KeySource):
    url: str
    refresh_s: float = 300.0
    min_refetch_s: float = 30.0
    timeout_s: float = 5.0
    _set: KeySet | None = None
    _fetched: float = -1e9
    """monotonic time of the last fetch attempt (success or failure)."""
    _task: asyncio.Task[None] | None = None
    _lock: asyncio.Lock | None = None
    _session: aiohttp.ClientSession | None = None
    fetches: int = 0

    async def keys(self) -> KeySet:
        if self._set is None:
            await self._fetch_once()
            if self._set is None:
                return KeySet()
        elif time.monotonic() - self._fetched >= self.refresh_s and (
                self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self._fetch_once())
        return self._set

    async def refetch(self) -> KeySet | None:
        if time.monotonic() - self._fetched < self.min_refetch_s:
            return None  # SECURITY: unknown kids cannot make us hammer the issuer
        await self._fetch_once()
        return self._set

    async def _fetch_once(self) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        started = time.monotonic()
        async with self._lock:
            if self._fetched >= started:
                return  # another call fetched while this one waited
            self._fetched = time.monotonic()
            self.fetches += 1
            try:
                if self._session is None or self._session.closed:
                    self._session = aiohttp.ClientSession(
                        timeout=aiohttp.ClientTimeout(total=self.timeout_s))
                async with self._session.get(self.url, allow_redirects=False) as resp:
                    if resp.status != 200:
                        raise ValueError(f"HTTP {resp.status}")
                    data = await resp.content.read(MAX_JWKS_BYTES + 1)
                self._set = parse_jwks(data)
            except (aiohttp.ClientError, TimeoutError, ValueError, OSError) as exc:
                have = len(self._set.keys) if self._set else 0
                log.warning("JWKS fetch from %s failed (%s); keeping %d keys", self.url,
                            exc.__class__.__name__, have)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._session is not None:
            await self._session.close()
