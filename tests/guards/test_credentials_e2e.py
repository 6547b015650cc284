"""Credentials at the edge, end to end: plaintext refused (production) or warned
(development), secrets injected from env, a rotated file and a loopback Vault, scoped
to their route, masked in responses; and no secret in any log line, metric or error."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from aiohttp import web

from tests.credentials.fakes import github
from tests.secrets.test_vault import VAULT_TOKEN, FakeVault

GITHUB = github()  # a valid CRC32 tail: a checksum-failing ghp_ is a look-alike
ENV_SECRET = "env-Secret-9f8e7d6c5b4a"
FILE_V1, FILE_V2 = "file-Secret-v1-1a2b3c4d5e", "file-Secret-v2-6f7a8b9c0d"
VAULT_V1 = "vault-Secret-crm-0011223344"


def route(url: str, name: str, **extra) -> dict:
    return {"name": name, "match": {"path_prefix": f"/{name}"}, "upstream": url, **extra}


async def test_a_repeated_key_cannot_hide_a_credential(upstream, write_rules, start_proxy):
    """The scan reads the last copy of a key; an upstream may read the first."""
    up, url = upstream
    px = await start_proxy(write_rules([route(url, "api")]))
    body = f'{{"token": "{GITHUB}", "token": "none"}}'.encode()
    hdrs = {"Content-Type": "application/json"}
    async with px.session.post(px.url + "/api/x", data=body, headers=hdrs) as r:
        assert (r.status, r.headers["X-CallWarden-Error-Code"]) == (400, "TOOL_BAD_REQUEST")
        assert GITHUB not in await r.text()
    async with px.session.post(px.url + "/api/x", data=b'{"token": "none"}', headers=hdrs) as r:
        assert r.status == 200
    assert len(up.calls) == 1


@pytest.mark.parametrize("encode", [
    lambda doc: json.dumps(doc).encode(),
    lambda doc: json.dumps(doc).replace("ghp_", "\\u0067hp_").encode(),  # escaped prefix
    lambda doc: json.dumps(doc).encode("utf-16"),  # the stdlib parser reads UTF-16 too
    lambda doc: json.dumps({"n": 1, "nested": [doc]}).encode(),
])
async def test_a_credential_is_found_however_the_json_spells_it(
    upstream, write_rules, start_proxy, encode
):
    """The raw-text prefilter (`Detector.json_clean`) must never call a body clean whose
    document holds a credential: escapes and other encodings take the full scan."""
    up, url = upstream
    px = await start_proxy(write_rules([route(url, "api")]))
    hdrs = {"Content-Type": "application/json"}
    for doc in ({"note": GITHUB}, {"dbPassword": "Zq8-rT5v-Lm3x-Np7w"}):
        async with px.session.post(px.url + "/api/x", data=encode(doc), headers=hdrs) as r:
            assert (r.status, r.headers["X-CallWarden-Error-Code"]) == (403, "POLICY_DENY")
    async with px.session.post(px.url + "/api/x", data=encode({"note": "hello"}),
                               headers=hdrs) as r:
        assert r.status == 200
    assert len(up.calls) == 1


async def test_plaintext_blocked_in_production_warned_in_development(
    upstream, write_rules, start_proxy
):
    up, url = upstream
    prod = await start_proxy(write_rules([route(url, "api")], name="prod.yaml"))
    dev = await start_proxy(
        write_rules([route(url, "api")], name="dev.yaml", environment="development")
    )
    cases = [
        ({"headers": {"Authorization": f"Bearer {GITHUB}"}}, "header Authorization"),
        ({"params": {"api_key": GITHUB}}, "query api_key"),
        ({"json": {"config": {"password": "Tr0ub4dor&3-horse-Battery"}}}, "json /config/password"),
    ]
    for kwargs, location in cases:
        async with prod.session.post(prod.url + "/api/x", **kwargs) as r:
            body = await r.json()
            assert (r.status, body["error"]["code"]) == (403, "POLICY_DENY")
            assert location in body["error"]["message"]
            assert GITHUB not in await r.text()
        async with dev.session.post(dev.url + "/api/x", **kwargs) as r:
            assert r.status == 200
    assert not [c for c in up.calls if "prod" in c["path"]]
    assert (
        prod.metric(
            "callwarden_credential_findings_total",
            route="api",
            kind="github_token",
            action="blocked",
        )
        == 2
    )
    assert (
        dev.metric(
            "callwarden_credential_findings_total",
            route="api",
            kind="github_token",
            action="warned",
        )
        == 2
    )
    # references and look-alikes pass
    async with prod.session.post(
        prod.url + "/api/x",
        json={"token": "${env:X}", "id": "3f2b8c1e-4d5a-4b6c-8d7e-9f0a1b2c3d4e"},
    ) as r:
        assert r.status == 200


@pytest.fixture
async def vault(serve_app):
    fake = FakeVault()
    fake.secrets["secret/data/crm"] = {"token": VAULT_V1}
    return fake, await serve_app(fake.app)


async def test_injection_scoping_rotation_masking_and_no_leaks(
    upstream, vault, serve_app, write_rules, start_proxy, tmp_path, monkeypatch, caplog
):
    _up, url = upstream
    _, vault_url = vault
    monkeypatch.setenv("CW_E2E_ENV_SECRET", ENV_SECRET)
    token_file = tmp_path / "vault-token"
    token_file.write_text(VAULT_TOKEN)
    secret_file = tmp_path / "api-key"
    secret_file.write_text(FILE_V1)
    echo = web.Application()

    async def leak(req: web.Request) -> web.StreamResponse:
        # an upstream that echoes the credential it was given, in JSON and as SSE
        auth = req.headers.get("Authorization", "")
        if req.path.endswith("/sse"):
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(req)
            for part in (f"data: {auth[:10]}", f"{auth[10:]}\n\n", f"data: {GITHUB}\n\n"):
                await resp.write(part.encode())
                await asyncio.sleep(0.05)
            await resp.write_eof()
            return resp
        return web.json_response({"you_sent": auth, "key": req.headers.get("X-Api-Key")})

    echo.router.add_route("*", "/{t:.*}", leak)
    echo_url = await serve_app(echo)
    rules = write_rules(
        [
            route(
                url,
                "envapi",
                credentials={"inject": {"Authorization": "Bearer ${env:CW_E2E_ENV_SECRET}"}},
            ),
            route(
                url,
                "fileapi",
                credentials={
                    "inject": {"X-Api-Key": f"${{file:{secret_file}}}"},
                    "inject_query": {"key": f"${{file:{secret_file}}}"},
                },
            ),
            route(
                url,
                "vaultapi",
                credentials={"inject": {"Authorization": "Bearer ${vault:secret/data/crm#token}"}},
            ),
            route(
                echo_url,
                "leaky",
                credentials={
                    "inject": {"Authorization": "Bearer ${vault:secret/data/crm#token}"},
                    "mask_responses": True,
                },
            ),
            route(url, "plain"),
        ],
        secrets={
            "vault": {"address": vault_url, "token": f"${{file:{token_file}}}"},
            "file_poll_s": 0.05,
        },
    )
    caplog.set_level(logging.DEBUG)
    px = await start_proxy(rules)
    async with px.session.get(px.url + "/envapi/x") as r:
        assert (await r.json())["headers"]["Authorization"] == f"Bearer {ENV_SECRET}"
    async with px.session.get(
        px.url + "/vaultapi/x", headers={"Authorization": "Bearer ${env:MINE}"}
    ) as r:
        # the caller's own (reference) header is replaced by the injected one
        assert (await r.json())["headers"]["Authorization"] == f"Bearer {VAULT_V1}"
    async with px.session.get(px.url + "/fileapi/x?key=${env:K}&q=1") as r:
        got = await r.json()
        assert got["headers"]["X-Api-Key"] == FILE_V1 and f"key={FILE_V1}" in got["path"]
    secret_file.write_text(FILE_V2)  # rotation, as a Kubernetes Secret volume does
    await asyncio.sleep(0.2)
    async with px.session.get(px.url + "/fileapi/x") as r:
        assert (await r.json())["headers"]["X-Api-Key"] == FILE_V2
    async with px.session.get(px.url + "/plain/x") as r:  # scoping: nothing injected
        assert "Authorization" not in (await r.json())["headers"]
    async with px.session.get(px.url + "/leaky/x") as r:
        text = await r.text()
        assert VAULT_V1 not in text and "[REDACTED]" in text
    async with px.session.get(px.url + "/leaky/sse") as r:
        text = await r.text()
        assert VAULT_V1 not in text and GITHUB not in text and text.count("[REDACTED]") == 2
    assert px.metric("callwarden_secrets_masked_total", route="leaky") >= 3
    # a refusal that quotes where a credential was, never the credential
    async with px.session.post(px.url + "/plain/x", json={"password": VAULT_V1 + "Zz9!"}) as r:
        body = await r.text()
        assert r.status == 403 and VAULT_V1 not in body
    async with px.session.get(px.admin + "/metrics") as r:
        metrics = await r.text()
    async with px.session.get(px.admin + "/rules") as r:
        rules_view = await r.text()
    everything = "\n".join([caplog.text, metrics, rules_view])
    for secret in (ENV_SECRET, FILE_V1, FILE_V2, VAULT_V1, VAULT_TOKEN, GITHUB):
        assert secret not in everything


async def test_flagged_headers_are_never_remembered_as_clean(upstream, write_rules, start_proxy):
    _up, url = upstream
    px = await start_proxy(write_rules([route(url, "api")]))
    for _ in range(3):
        async with px.session.get(px.url + "/api/x", headers={"X-Note": "hello"}) as r:
            assert r.status == 200
        async with px.session.get(
            px.url + "/api/x", headers={"X-Note": "hello", "X-Api-Key": GITHUB}
        ) as r:
            assert r.status == 403
