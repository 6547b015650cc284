"""${vault:} against a loopback server implementing Vault's KV v2 read endpoint."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from proxy.config.schema import SecretsSpec
from proxy.model.errors import ErrorCode, ProxyError
from proxy.secrets import SecretStore
from proxy.secrets.vault import api_path

VAULT_TOKEN = "hvs.loopback-test-token-0123456789"


class FakeVault:
    """GET /v1/{mount}/data/{path}: {"data": {"data": {...}, "metadata": {...}}}."""

    def __init__(self) -> None:
        self.secrets: dict[str, dict[str, Any]] = {"secret/data/crm": {"token": "crm-v1"}}
        self.requests: list[str] = []
        self.down = False
        self.app = web.Application()
        self.app.router.add_get("/v1/{path:.+}", self.read)

    async def read(self, request: web.Request) -> web.Response:
        if self.down:
            raise web.HTTPServiceUnavailable()
        if request.headers.get("X-Vault-Token") != VAULT_TOKEN:
            return web.json_response({"errors": ["permission denied"]}, status=403)
        path = request.match_info["path"]
        self.requests.append(path)
        if path not in self.secrets:
            return web.json_response({"errors": []}, status=404)
        return web.json_response({"data": {"data": self.secrets[path],
                                           "metadata": {"version": 1}}})


@pytest.fixture
async def vault() -> AsyncIterator[tuple[FakeVault, str]]:
    fake = FakeVault()
    server = TestServer(fake.app, host="127.0.0.1", port=0)
    await server.start_server()
    yield fake, f"http://127.0.0.1:{server.port}"
    await server.close()


async def _store(address: str, tmp_path: Path, token: str = VAULT_TOKEN,
                 ttl: float = 300) -> SecretStore:
    (tmp_path / "vault-token").write_text(token + "\n")
    spec = SecretsSpec.model_validate({"vault": {
        "address": address, "token": f"${{file:{tmp_path / 'vault-token'}}}", "ttl_s": ttl}})
    store = SecretStore(spec, vault_timeout_s=2)
    await store.start()
    return store


@pytest.mark.parametrize(("target", "path"), [
    ("secret/crm", "secret/data/crm"), ("secret/data/crm", "secret/data/crm"),
    ("kv/team/app", "kv/data/team/app"), ("secret/data/data/x", "secret/data/data/x"),
])
def test_api_path(target: str, path: str) -> None:
    assert api_path(target) == path


async def test_read_cached_and_scoped(vault: tuple[FakeVault, str], tmp_path: Path) -> None:
    fake, address = vault
    store = await _store(address, tmp_path)
    try:
        route = store.scope("crm", ["Bearer ${vault:secret/data/crm#token}",
                                    "${vault:secret/crm#token}"])
        assert route.resolve_cached("Bearer ${vault:secret/data/crm#token}") is None
        results = await asyncio.gather(*[route.resolve("Bearer ${vault:secret/data/crm#token}")
                                          for _ in range(5)])
        assert results == ["Bearer crm-v1"] * 5
        assert await route.resolve("${vault:secret/crm#token}") == "crm-v1"
        assert fake.requests == ["secret/data/crm"]  # one read for all of them
        assert route.resolve_cached("${vault:secret/crm#token}") == "crm-v1"
        assert route.current_values() == frozenset({"crm-v1"})
        other = store.scope("other", [])
        with pytest.raises(ProxyError):
            other.resolve_cached("${vault:secret/crm#token}")
        with pytest.raises(ProxyError) as err:
            await route.resolve("${vault:secret/crm#missing}")
        assert "does not declare" in err.value.message
    finally:
        await store.close()


async def test_missing_field_and_path(vault: tuple[FakeVault, str], tmp_path: Path) -> None:
    _, address = vault
    store = await _store(address, tmp_path)
    try:
        with pytest.raises(ProxyError) as err:
            await store.resolve("${vault:secret/crm#nope}")
        assert (err.value.code, err.value.message) == (
            ErrorCode.INTERNAL_ERROR, "secret ${vault:secret/crm#nope} has no field 'nope'")
        with pytest.raises(ProxyError) as err:
            await store.resolve("${vault:secret/absent#token}")
        assert err.value.message == "secret ${vault:secret/absent#token} not found"
    finally:
        await store.close()


async def test_wrong_token_refused_without_leaking(vault: tuple[FakeVault, str],
                                                   tmp_path: Path) -> None:
    _, address = vault
    store = await _store(address, tmp_path, token="hvs.wrong-token-value-000000000")
    try:
        with pytest.raises(ProxyError) as err:
            await store.resolve("${vault:secret/crm#token}")
        assert err.value.message == "secret backend refused ${vault:secret/crm#token} (403)"
        assert "wrong-token" not in str(err.value)
    finally:
        await store.close()


async def test_background_refresh_follows_rotation(vault: tuple[FakeVault, str],
                                                   tmp_path: Path) -> None:
    fake, address = vault
    store = await _store(address, tmp_path, ttl=0.4)
    try:
        ref = "${vault:secret/crm#token}"
        assert await store.resolve(ref) == "crm-v1"
        fake.secrets["secret/data/crm"] = {"token": "crm-v2"}
        for _ in range(100):  # bounded: the refresher runs from 0.3 s
            if store.resolve_cached(ref) == "crm-v2":
                break
            await asyncio.sleep(0.05)
        assert store.resolve_cached(ref) == "crm-v2"  # refreshed without a caller waiting
        assert len(fake.requests) >= 2
    finally:
        await store.close()


async def test_backend_down(vault: tuple[FakeVault, str], tmp_path: Path,
                            caplog: pytest.LogCaptureFixture) -> None:
    """A blip serves the cached value until it expires; then a clear error, no value."""
    fake, address = vault
    store = await _store(address, tmp_path, ttl=0.4)
    caplog.set_level(logging.DEBUG)
    try:
        ref = "${vault:secret/crm#token}"
        assert await store.resolve(ref) == "crm-v1"
        fake.down = True
        assert store.resolve_cached(ref) == "crm-v1"
        for _ in range(100):
            if store.resolve_cached(ref) is None:
                break
            await asyncio.sleep(0.05)
        assert store.resolve_cached(ref) is None
        with pytest.raises(ProxyError) as err:
            await store.resolve(ref)
        assert err.value.code is ErrorCode.UPSTREAM_UNAVAILABLE
        assert err.value.message == "secret backend unavailable for ${vault:secret/crm#token}"
        assert "crm-v1" not in str(err.value) and err.value.__cause__ is None
        assert any("vault refresh failed" in r.getMessage() for r in caplog.records)
        for record in caplog.records:
            assert "crm-v1" not in record.getMessage() and VAULT_TOKEN not in record.getMessage()
    finally:
        await store.close()


async def test_unreachable_vault(tmp_path: Path) -> None:
    store = await _store("http://127.0.0.1:9", tmp_path)
    try:
        with pytest.raises(ProxyError) as err:
            await store.resolve("${vault:secret/crm#token}")
        assert err.value.code is ErrorCode.UPSTREAM_UNAVAILABLE
        assert await store.prefetch() == []  # nothing declared
        store.scope("crm", ["${vault:secret/crm#token}"])
        assert await store.prefetch() == [
            "secret backend unavailable for ${vault:secret/crm#token}"]
    finally:
        await store.close()
