"""Verified identity through a running proxy: roles and tenant from the token, headers
that disagree refused, the token kept from the upstream and from the logs."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from proxy.config.load import RulesError, load_rules
from tests.identity.keys import AUDIENCE, ISSUER, SigningKey, jwks

KEY = SigningKey.make("k1", "ES256")


def jwt_rules(tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "jwks.json"
    path.write_bytes(jwks(KEY))
    return {"jwt": {"issuer": ISSUER, "audiences": [AUDIENCE], "jwks_file": str(path)}}


def bearer(**claims: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY.sign(claims)}"}


async def start(tmp_path, write_rules, start_proxy, up_url: str, **route: Any):
    routes = [
        {"name": "crm", "match": {"path_prefix": "/crm"}, "upstream": up_url,
         "access": {"roles": ["support"]}, "tenant": {"forward_header": "X-Tenant-ID"},
         **route},
        {"name": "open", "match": {"path_prefix": "/open"}, "upstream": up_url,
         "identity": "optional"},
        {"name": "side", "match": {"path_prefix": "/side"}, "upstream": up_url,
         "identity": "headers", "access": {"roles": ["agent"]}},
    ]
    return await start_proxy(write_rules(routes, identity=jwt_rules(tmp_path)))


async def test_roles_and_tenant_come_from_the_token(tmp_path, write_rules, start_proxy,
                                                    upstream, caplog) -> None:
    up, url = upstream
    p = await start(tmp_path, write_rules, start_proxy, url)
    caplog.set_level(logging.DEBUG)
    h = bearer(roles=["support"], tenant="acme")
    async with p.session.get(f"{p.url}/crm/x", headers=h) as r:
        assert r.status == 200, await r.text()
    seen = up.calls[-1]["headers"]
    assert seen["X-Tenant-ID"] == "acme"
    # SECURITY: the token stays with the proxy and out of every log line.
    assert "Authorization" not in seen
    token = h["Authorization"].split()[1]
    assert token not in caplog.text
    # A header that repeats the token is fine.
    h2 = {**h, "X-Tenant-ID": "acme", "X-Caller-Role": "support"}
    async with p.session.get(f"{p.url}/crm/x", headers=h2) as r:
        assert r.status == 200


@pytest.mark.parametrize(
    ("claims", "extra", "code", "reason"),
    [
        ({"roles": ["support"], "tenant": "acme"}, {"X-Tenant-ID": "other"}, "TENANT_MISMATCH",
         "differs from the verified token"),
        ({"roles": ["viewer"], "tenant": "acme"}, {"X-Caller-Role": "support"},
         "PERMISSION_DENIED", "does not grant"),
        ({"roles": ["viewer"], "tenant": "acme"}, {}, "PERMISSION_DENIED", "role not allowed"),
        ({"roles": ["support"], "tenant": "acme", "exp": 1}, {}, "AUTH_FAILED", "expired"),
        ({"roles": ["support"], "tenant": "acme", "aud": "x"}, {}, "AUTH_FAILED",
         "wrong audience"),
    ],
)
async def test_refusals(tmp_path, write_rules, start_proxy, upstream, claims, extra, code,
                        reason) -> None:
    up, url = upstream
    p = await start(tmp_path, write_rules, start_proxy, url)
    async with p.session.get(f"{p.url}/crm/x", headers={**bearer(**claims), **extra}) as r:
        body = await r.json()
    assert body["error"]["code"] == code and reason in body["error"]["message"], body
    assert up.calls == []


async def test_missing_token_and_header_identity(tmp_path, write_rules, start_proxy,
                                                 upstream) -> None:
    _up, url = upstream
    p = await start(tmp_path, write_rules, start_proxy, url)
    # Headers alone no longer make an admin.
    h = {"X-Caller-Role": "support", "X-Tenant-ID": "acme"}
    async with p.session.get(f"{p.url}/crm/x", headers=h) as r:
        body = await r.json()
    assert r.status == 401 and "missing identity token" in body["error"]["message"]
    # optional: anonymous without a token, but an anonymous caller names no tenant.
    async with p.session.get(f"{p.url}/open/x") as r:
        assert r.status == 200
    async with p.session.get(f"{p.url}/open/x", headers={"X-Tenant-ID": "acme"}) as r:
        assert r.status == 401
    async with p.session.get(f"{p.url}/open/x", headers=bearer(tenant="acme")) as r:
        assert r.status == 200
    # headers: the sidecar's trust in X-Caller-Role stays where a route keeps it, and its
    # Authorization header is the tool's (scanned, forwarded), not an identity token.
    async with p.session.get(f"{p.url}/side/x", headers={"X-Caller-Role": "agent"}) as r:
        assert r.status == 200
    async with p.session.get(f"{p.url}/side/x",
                             headers={"X-Caller-Role": "agent", **bearer()}) as r:
        assert r.status == 403  # a JWT in a tool's header is a plaintext credential


async def test_forward_token_when_the_route_asks(tmp_path, write_rules, start_proxy,
                                                 upstream) -> None:
    up, url = upstream
    p = await start(tmp_path, write_rules, start_proxy, url,
                    credentials={"forward_token": True})
    h = bearer(roles=["support"], tenant="acme")
    async with p.session.get(f"{p.url}/crm/x", headers=h) as r:
        assert r.status == 200
    assert up.calls[-1]["headers"]["Authorization"] == h["Authorization"]


def test_required_needs_jwt_and_postgres_must_opt_out(tmp_path, write_rules) -> None:
    path = write_rules([{"name": "a", "match": {"path_prefix": "/a"},
                         "upstream": "http://127.0.0.1:1", "identity": "required"}])
    with pytest.raises(RulesError, match=r"routes\[0\].identity"):
        load_rules(path)
    path = write_rules([{"name": "pg", "kind": "postgres", "listen": "127.0.0.1:0",
                         "upstream": "127.0.0.1:5432", "sql": {}}],
                       identity=jwt_rules(tmp_path))
    with pytest.raises(RulesError, match="identity: headers"):
        load_rules(path)


async def test_jwks_url_through_the_proxy(write_rules, start_proxy, upstream,
                                          serve_app) -> None:
    from tests.identity.test_jwt import JwksServer

    _, url = upstream
    server = JwksServer(KEY)
    jwks_url = await serve_app(server.app) + "/jwks"
    route = {"name": "crm", "match": {"path_prefix": "/crm"}, "upstream": url}
    ident = {"jwt": {"issuer": ISSUER, "audiences": [AUDIENCE], "jwks_url": jwks_url,
                     "min_refetch_s": 0.1, "algorithms": ["ES256", "RS256"]}}
    p = await start_proxy(write_rules([route], identity=ident))
    async with p.session.get(f"{p.url}/crm/x", headers=bearer()) as r:
        assert r.status == 200
    new = SigningKey.make("k2", "RS256")
    server.keys = [KEY, new]
    await asyncio.sleep(0.15)
    token = new.sign({"roles": ["a"]})
    async with p.session.get(f"{p.url}/crm/x",
                             headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.status == 200, await r.text()
    server.down = True
    async with p.session.get(f"{p.url}/crm/x", headers=bearer(sub="x")) as r:
        assert r.status == 200  # keys kept while the issuer is down
    assert server.hits == 2
