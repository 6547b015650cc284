"""`${vault:mount/path#key}`: HashiCorp Vault KV version 2, read over HTTP.

Path forms: the first segment is the KV v2 mount. `${vault:secret/crm#token}` and
`${vault:secret/data/crm#token}` both read `GET /v1/secret/data/crm` (the API path that
Vault's own docs show is accepted as is). A secret whose path really starts with `data/`
is written `secret/data/data/...`.

One read fetches every field of a path; it is cached for `ttl_s` and refreshed in the
background from 3/4 of the TTL, so calls never wait on Vault while it is healthy. While a
refresh fails the cached value is served until it expires; after that a call fails with
UPSTREAM_UNAVAILABLE naming the reference, never the value or the token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from proxy.config.refs import SecretRef
from proxy.config.schema import VaultSpec
from proxy.model.errors import ErrorCode, ProxyError
from proxy.secrets.secret import Secret

log = logging.getLogger("callwarden.secrets")
REFRESH_AT = 0.75
RETRY_S = 1.0


def api_path(target: str) -> str:
    """`secret/crm` or `secret/data/crm` -> `secret/data/crm`."""
    mount, sep, rest = target.strip("/").partition("/")
    if not sep or not rest:
        raise ValueError(f"vault reference '{target}' needs mount/path")
    if rest.startswith("data/"):
        return f"{mount}/{rest}"
    return f"{mount}/data/{rest}"


@dataclass(slots=True)
class _Entry:
    fields: dict[str, Secret]
    fetched: float
    expires: float


class VaultSecrets:
    def __init__(self, spec: VaultSpec, token: Callable[[], Awaitable[str]], *,
                 timeout_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._spec = spec
        self._address = spec.address.rstrip("/")
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._clock = clock
        self._cache: dict[str, _Entry] = {}
        self._inflight: dict[str, asyncio.Future[_Entry]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._refresher: asyncio.Task[None] | None = None
        self.reads = 0
        """HTTP reads made (tests: cache hits and background refreshes)."""

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
            self._refresher = asyncio.create_task(self._refresh_loop(), name="vault-refresh")

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def cached(self, ref: SecretRef) -> Secret | None:
        entry = self._cache.get(api_path(ref.target))
        if entry is None or self._clock() >= entry.expires:
            return None
        return entry.fields.get(ref.key)

    async def get(self, ref: SecretRef) -> Secret:
        path = api_path(ref.target)
        entry = self._cache.get(path)
        if entry is None or self._clock() >= entry.expires:
            try:
                entry = await self._fetch_once(path)
            except ProxyError as exc:
                raise _naming(exc, ref) from None
        value = entry.fields.get(ref.key)
        if value is None:
            raise ProxyError(ErrorCode.INTERNAL_ERROR, f"secret {ref} has no field '{ref.key}'")
        return value

    async def _fetch_once(self, path: str) -> _Entry:
        """Concurrent misses on one path (and the refresh loop) share one request; its
        errors say `{ref}` where each waiter names its own reference."""
        pending = self._inflight.get(path)
        if pending is None:
            pending = asyncio.ensure_future(self._fetch(path))
            self._inflight[path] = pending
            pending.add_done_callback(lambda _: self._inflight.pop(path, None))
        return await asyncio.shield(pending)

    async def _fetch(self, path: str) -> _Entry:
        ref = "{ref}"  # filled in per waiter by _naming
        if self._session is None:
            raise ProxyError(ErrorCode.INTERNAL_ERROR, "secret store is not started")
        headers = {"X-Vault-Token": await self._token()}
        if self._spec.namespace:
            headers["X-Vault-Namespace"] = self._spec.namespace
        try:
            async with self._session.get(f"{self._address}/v1/{path}", headers=headers) as resp:
                self.reads += 1
                status = resp.status
                body: Any = await resp.json(content_type=None) if status == 200 else None
        except (TimeoutError, aiohttp.ClientError, ValueError):
            raise ProxyError(
                ErrorCode.UPSTREAM_UNAVAILABLE, f"secret backend unavailable for {ref}"
            ) from None
        if status in (401, 403):
            raise ProxyError(ErrorCode.INTERNAL_ERROR, f"secret backend refused {ref} ({status})")
        if status == 404:
            raise ProxyError(ErrorCode.INTERNAL_ERROR, f"secret {ref} not found")
        data = body.get("data") if isinstance(body, dict) else None
        fields = data.get("data") if isinstance(data, dict) else None
        if status != 200 or not isinstance(fields, dict):
            raise ProxyError(
                ErrorCode.UPSTREAM_UNAVAILABLE, f"secret backend unavailable for {ref}"
            )
        now = self._clock()
        entry = _Entry({k: Secret(_text(v)) for k, v in fields.items()}, now,
                       now + self._spec.ttl_s)
        self._cache[path] = entry
        return entry

    async def _refresh_loop(self) -> None:
        """Re-read each cached path from 3/4 of its TTL; on failure retry soon, keep the
        old value until it expires (a Vault blip must not fail calls)."""
        ttl = self._spec.ttl_s
        while True:
            now = self._clock()
            wait = ttl * REFRESH_AT
            for path, entry in list(self._cache.items()):
                due = entry.fetched + ttl * REFRESH_AT
                if now >= due:
                    try:
                        await self._fetch_once(path)
                    except ProxyError as exc:
                        ref = SecretRef("vault", path, "*")
                        log.warning("vault refresh failed for %s: %s", path,
                                    _naming(exc, ref).message)
                        wait = min(wait, max(0.05, min(RETRY_S, ttl / 4)))
                        continue
                    due = self._clock() + ttl * REFRESH_AT
                wait = min(wait, max(0.05, due - self._clock()))
            await asyncio.sleep(wait)


def _naming(exc: ProxyError, ref: SecretRef) -> ProxyError:
    return ProxyError(exc.code, exc.message.replace("{ref}", str(ref)))


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))
