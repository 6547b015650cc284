"""Resolving secret references, and scoping them to the routes that declare them.

`SecretStore` owns the backends (env read at call time, files with rotation, Vault with
a TTL cache). Routes never use it directly: `store.scope(route, templates)` hands each
route a `RouteSecrets` that refuses every reference the route's rules do not name, so a
secret can never be sent to a destination its rule does not name.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable

from proxy.config.refs import SecretRef, Template, has_refs, parse_template
from proxy.config.schema import SecretsSpec
from proxy.model.errors import ErrorCode, ProxyError
from proxy.secrets.files import FileSecrets
from proxy.secrets.secret import Secret
from proxy.secrets.vault import VaultSecrets, api_path

log = logging.getLogger("callwarden.secrets")


def _template(template: Template | str) -> Template:
    return parse_template(template) if isinstance(template, str) else template


def refs_of(templates: Iterable[Template | str]) -> frozenset[SecretRef]:
    return frozenset(p for t in templates for p in _template(t) if isinstance(p, SecretRef))


class SecretStore:
    def __init__(self, spec: SecretsSpec, *, clock: Callable[[], float] = time.monotonic,
                 vault_timeout_s: float = 5.0) -> None:
        self._files = FileSecrets(spec.file_poll_s, clock)
        self._vault: VaultSecrets | None = None
        self._declared: set[SecretRef] = set()
        if spec.vault is not None:
            token = parse_template(spec.vault.token)
            if any(isinstance(p, SecretRef) and p.scheme == "vault" for p in token):
                raise ValueError("secrets.vault.token cannot itself be a ${vault:} reference")
            self._vault = VaultSecrets(spec.vault, lambda: self._resolve(token),
                                       timeout_s=vault_timeout_s, clock=clock)

    @property
    def files(self) -> FileSecrets:
        return self._files

    @property
    def vault(self) -> VaultSecrets | None:
        return self._vault

    async def start(self) -> None:
        if self._vault is not None:
            await self._vault.start()

    async def close(self) -> None:
        if self._vault is not None:
            await self._vault.close()

    # -- one reference -----------------------------------------------------------------
    def cached(self, ref: SecretRef) -> Secret | None:
        """Without waiting: env and files are read now (cheap), Vault only from cache."""
        if ref.scheme == "env":
            value = os.environ.get(ref.target)
            return None if value is None else Secret(value)
        if ref.scheme == "file":
            return self._files.get(ref.target)
        return self._vault.cached(ref) if self._vault is not None else None

    async def get(self, ref: SecretRef) -> Secret:
        if ref.scheme == "env":
            value = os.environ.get(ref.target)
            if value is None:
                raise ProxyError(ErrorCode.INTERNAL_ERROR, f"secret {ref} is not set")
            return Secret(value)
        if ref.scheme == "file":
            return self._files.get(ref.target)
        if self._vault is None:
            raise ProxyError(ErrorCode.INTERNAL_ERROR, f"secret {ref}: no secrets.vault configured")
        return await self._vault.get(ref)

    # -- templates ---------------------------------------------------------------------
    async def _resolve(self, template: Template) -> str:
        parts = [p if isinstance(p, str) else (await self.get(p)).reveal() for p in template]
        return "".join(parts)

    async def resolve(self, template: Template | str) -> str:
        """The template with every reference replaced (unscoped: for the store's own
        needs and tests; routes go through `scope`)."""
        return await self._resolve(_template(template))

    def resolve_cached(self, template: Template | str) -> str | None:
        parts: list[str] = []
        for p in _template(template):
            if isinstance(p, str):
                parts.append(p)
                continue
            try:
                value = self.cached(p)
            except ProxyError:
                return None
            if value is None:
                return None
            parts.append(value.reveal())
        return "".join(parts)

    def scope(self, route: str, templates: Iterable[Template | str]) -> RouteSecrets:
        refs = refs_of(templates)
        for ref in refs:
            if ref.scheme == "vault":
                api_path(ref.target)  # ValueError now, at load, not on the first call
        self._declared |= refs
        return RouteSecrets(self, route, refs)

    async def prefetch(self) -> list[str]:
        """Resolve every declared reference once (warm caches at start, readiness);
        returns problems (reference and reason, never a value)."""
        problems = []
        for ref in sorted(self._declared, key=str):
            try:
                await self.get(ref)
            except ProxyError as exc:
                problems.append(exc.message)
        return problems


class RouteSecrets:
    """The references one route's rules name, and nothing else."""

    __slots__ = ("_refs", "_store", "route")

    def __init__(self, store: SecretStore, route: str, refs: frozenset[SecretRef]) -> None:
        self._store = store
        self.route = route
        self._refs = refs

    @property
    def refs(self) -> frozenset[SecretRef]:
        return self._refs

    def _check(self, template: Template | str) -> Template:
        template = _template(template)
        for p in template:
            # SECURITY: a reference another route declared is never resolved here.
            if isinstance(p, SecretRef) and p not in self._refs:
                raise ProxyError(ErrorCode.INTERNAL_ERROR,
                                 f"route '{self.route}' does not declare {p}")
        return template

    async def resolve(self, template: Template | str) -> str:
        return await self._store._resolve(self._check(template))

    def resolve_cached(self, template: Template | str) -> str | None:
        """Hot path: the value when every reference is at hand, else None (then await
        `resolve`)."""
        template = self._check(template)
        return self._store.resolve_cached(template) if has_refs(template) else "".join(
            p for p in template if isinstance(p, str))

    def current_values(self) -> frozenset[str]:
        """Values of this route's secrets known now, for response masking."""
        out = set()
        for ref in self._refs:
            try:
                value = self._store.cached(ref)
            except ProxyError:
                continue
            if value is not None:
                out.add(value.reveal())
        return frozenset(out)
