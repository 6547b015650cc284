"""JWT verification against real keys made at test time, JWKS from a file and from a
local HTTP server that rotates keys and goes down."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
from aiohttp import web

from proxy.config.schema import JwtSpec
from proxy.identity.jwks import JwksFile, JwksUrl, parse_jwks
from proxy.identity.jwt import TokenRefused, Verifier, source_for
from tests.identity.keys import AUDIENCE, ISSUER, SigningKey, jwks

RSA = SigningKey.make("rsa-1", "RS256")
EC = SigningKey.make("ec-1", "ES256")
ED = SigningKey.make("ed-1", "EdDSA")


def spec(**over: Any) -> JwtSpec:
    base: dict[str, Any] = {"issuer": ISSUER, "audiences": [AUDIENCE], "jwks_file": "/x"}
    return JwtSpec.model_validate({**base, **over})


def file_verifier(tmp_path: Path, *keys: SigningKey, **over: Any) -> Verifier:
    path = tmp_path / "jwks.json"
    path.write_bytes(jwks(*keys))
    s = spec(jwks_file=str(path), **over)
    return Verifier(s, source_for(s))


async def refused(v: Verifier, token: str) -> str:
    with pytest.raises(TokenRefused) as info:
        await v.verify(token)
    return info.value.reason


@pytest.mark.parametrize("key", [RSA, EC, ED], ids=["RS256", "ES256", "EdDSA"])
async def test_each_key_type_verifies(tmp_path: Path, key: SigningKey) -> None:
    v = file_verifier(tmp_path, RSA, EC, ED)
    got = await v.verify(key.sign({"roles": ["support", "agent"], "tenant": "acme"}))
    assert got.tenant == "acme" and got.roles == {"support", "agent"}
    assert got.claims["sub"] == "user-1"


async def test_space_separated_roles_and_nested_claims(tmp_path: Path) -> None:
    v = file_verifier(tmp_path, RSA, roles_claim="realm.roles", tenant_claim="org.id")
    got = await v.verify(RSA.sign({"realm": {"roles": "read write"}, "org": {"id": "t1"}}))
    assert got.roles == {"read", "write"} and got.tenant == "t1"


async def test_refusals_say_why(tmp_path: Path) -> None:
    v = file_verifier(tmp_path, RSA, EC, clock_skew_s=5)
    now = int(time.time())
    assert await refused(v, RSA.sign(exp=now - 60)) == "token expired"
    assert await refused(v, RSA.sign(nbf=now + 600)) == "token not yet valid"
    assert await refused(v, RSA.sign(iss="https://evil.test")) == "wrong issuer"
    assert await refused(v, RSA.sign(aud="someone-else")) == "wrong audience"
    assert await refused(v, RSA.sign(kid="nowhere")) == "unknown key"
    assert await refused(v, RSA.sign(exp=None)) == "a required claim is missing"
    assert await refused(v, "not.a.token") == "malformed token"
    other = SigningKey.make("rsa-1", "RS256")  # same kid, another key: a forged signature
    assert await refused(v, other.sign()) == "bad signature"
    # An EC token naming the RSA key's kid: the key does not fit the algorithm.
    assert await refused(v, EC.sign(kid="rsa-1")) == "key does not fit the token's algorithm"


async def test_clock_skew_admits_a_token_just_expired(tmp_path: Path) -> None:
    v = file_verifier(tmp_path, RSA, clock_skew_s=60)
    await v.verify(RSA.sign(exp=int(time.time()) - 10))


def _b64(doc: dict[str, Any] | bytes) -> str:
    raw = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def test_alg_none_is_refused(tmp_path: Path) -> None:
    v = file_verifier(tmp_path, RSA)
    claims = {"iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 60, "roles": ["admin"]}
    token = f"{_b64({'alg': 'none', 'kid': 'rsa-1'})}.{_b64(claims)}."
    assert await refused(v, token) == "algorithm not allowed"


async def test_hmac_with_the_public_key_is_refused(tmp_path: Path) -> None:
    """The key-confusion forgery: HS256 keyed with the RSA public key's bytes."""
    v = file_verifier(tmp_path, RSA)
    from cryptography.hazmat.primitives import serialization

    pem = RSA.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    claims = {"iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 60}
    header = _b64({"alg": "HS256", "kid": "rsa-1", "typ": "JWT"})
    body = _b64(claims)
    import hashlib
    import hmac

    sig = hmac.new(pem, f"{header}.{body}".encode(), hashlib.sha256).digest()
    assert await refused(v, f"{header}.{body}.{_b64(sig)}") == "algorithm not allowed"


def test_rules_cannot_allow_none_or_hmac() -> None:
    for alg in ("none", "HS256"):
        with pytest.raises(ValueError):
            spec(algorithms=[alg])


def test_jwks_drops_symmetric_and_private_keys() -> None:
    doc = {"keys": [
        {"kty": "oct", "kid": "h", "k": _b64(b"secret")},
        {**RSA.jwk(), "kid": "enc", "use": "enc"},
        {**RSA.jwk(), "kid": "ok"},
    ]}
    keys = parse_jwks(json.dumps(doc).encode())
    assert [k.kid for k in keys.keys] == ["ok"]


async def test_cached_tokens_are_dropped_when_the_key_goes(tmp_path: Path) -> None:
    v = file_verifier(tmp_path, RSA, EC)
    token = RSA.sign()
    await v.verify(token)
    assert await v.verify(token) is await v.verify(token)  # the cache answers
    path = Path(v.spec.jwks_file or "")
    path.write_bytes(jwks(EC))
    os.utime(path, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    assert isinstance(v.source, JwksFile)
    v.source._checked = -1e9  # the next poll is due
    assert await refused(v, token) == "unknown key"


async def test_a_broken_jwks_file_keeps_the_keys(tmp_path: Path) -> None:
    v = file_verifier(tmp_path, RSA)
    await v.verify(RSA.sign())
    Path(v.spec.jwks_file or "").write_text("{half")
    assert isinstance(v.source, JwksFile)
    v.source._checked = -1e9
    await v.verify(RSA.sign(sub="other"))


class JwksServer:
    """A JWKS endpoint on 127.0.0.1 that can rotate keys and go down."""

    def __init__(self, *keys: SigningKey) -> None:
        self.keys = list(keys)
        self.down = False
        self.hits = 0
        self.app = web.Application()
        self.app.router.add_get("/jwks", self.serve)

    async def serve(self, req: web.Request) -> web.Response:
        self.hits += 1
        if self.down:
            return web.Response(status=503)
        return web.Response(body=jwks(*self.keys), content_type="application/json")


async def test_jwks_url_rotation_outage_and_refetch_bound(serve_app) -> None:
    server = JwksServer(RSA)
    base = await serve_app(server.app)
    s = spec(jwks_file=None, jwks_url=f"{base}/jwks", min_refetch_s=0.2, refresh_s=3600)
    v = Verifier(s, source_for(s))
    try:
        await v.verify(RSA.sign())
        assert server.hits == 1
        # Rotation: a token signed by a new key fetches the set again, once.
        new = SigningKey.make("rsa-2", "RS256")
        server.keys = [RSA, new]
        v.source._fetched = -1e9  # type: ignore[attr-defined]
        await v.verify(new.sign())
        assert server.hits == 2
        # Unknown kids cannot make the proxy hammer the issuer.
        for i in range(5):
            assert await refused(v, RSA.sign(kid=f"nope-{i}")) == "unknown key"
        assert server.hits == 2
        # Down: the keys we have are kept.
        server.down = True
        time.sleep(0.25)
        assert await refused(v, RSA.sign(kid="nope-x")) == "unknown key"
        assert server.hits == 3
        await v.verify(RSA.sign(sub="again"))
        await v.verify(new.sign(sub="again"))
    finally:
        await v.close()


async def test_jwks_url_down_from_the_start(serve_app) -> None:
    server = JwksServer(RSA)
    server.down = True
    base = await serve_app(server.app)
    s = spec(jwks_file=None, jwks_url=f"{base}/jwks")
    v = Verifier(s, source_for(s))
    try:
        assert await refused(v, RSA.sign()) == "signing keys unavailable"
    finally:
        await v.close()


def test_jwks_url_must_be_https_off_loopback() -> None:
    with pytest.raises(ValueError):
        spec(jwks_file=None, jwks_url="http://issuer.example/jwks")
    spec(jwks_file=None, jwks_url="https://issuer.example/jwks")
    assert isinstance(source_for(spec(jwks_file=None, jwks_url="http://127.0.0.1/j")), JwksUrl)


def test_pyjwt_is_what_signs_here() -> None:
    assert pyjwt.get_unverified_header(RSA.sign())["kid"] == "rsa-1"
