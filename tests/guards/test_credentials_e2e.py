"""Credentials at the edge, end to end: plaintext refused (production) or warned
(development), secrets injected from env, a rotated file and a loopback Vault, scoped
to their route, masked in responses; and no secret in any log line, metric or error."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from typing import Any

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


# -- issue 21 (3): checks a suffix turned off; paths, multipart and XML bodies -------------
STRONG = "Zq8rT5vLm3xNp7wK2c"


def _basic(user_pass: str) -> str:
    return "Basic " + base64.b64encode(user_pass.encode()).decode()


def _multipart(fields: list[tuple[str, str, str]]) -> tuple[bytes, str]:
    """(name, content type or "", value) parts, written by hand as a client would."""
    boundary = "----cw" + "7d1f0a"
    out = []
    for name, ctype, value in fields:
        head = f'Content-Disposition: form-data; name="{name}"'
        if ctype:
            head += f'; filename="{name}.txt"\r\nContent-Type: {ctype}'
        out.append(f"--{boundary}\r\n{head}\r\n\r\n{value}\r\n")
    body = "".join(out) + f"--{boundary}--\r\n"
    return body.encode(), f"multipart/form-data; boundary={boundary}"


REFUSED = [
    ({"headers": {"Authorization": f"Bearer {STRONG} example"}}, "header Authorization"),
    ({"headers": {"Authorization": f"Bearer {STRONG} ${{env:X}}"}}, "header Authorization"),
    ({"headers": {"Authorization": f"Bearer {GITHUB} xxxx"}}, "header Authorization"),
    ({"headers": {"X-Api-Key": f"{STRONG} fake"}}, "header X-Api-Key"),
    ({"headers": {"Authorization": _basic(f"deploy:{STRONG} example")}}, "header Authorization"),
    ({"headers": {"Authorization": _basic(f"x:{GITHUB}")}}, "(github_token)"),
    ({"headers": {"X-Upstream-Auth": _basic(f"svc:{STRONG}")}}, "(basic_auth)"),
    ({"path": f"/api/hooks/{GITHUB}/run"}, "path (github_token)"),
    ({"path": "/api/hooks/%67hp_" + GITHUB[4:]}, "path (github_token)"),
    ({"path": f"/api/login/password={STRONG}"}, "path (secret_key_value)"),
    ({"multipart": [("title", "", "hi"), ("password", "", STRONG)]}, "multipart password"),
    ({"multipart": [("notes", "text/plain", f"token is {GITHUB}")]}, "github_token"),
    ({"multipart": [("cfg", "application/json", json.dumps({"api_key": STRONG}))]},
     "multipart cfg/api_key"),
    ({"xml": f"<config><user>ops</user><password>{STRONG}</password></config>"},
     "xml password"),
    ({"xml": f'<cred name="ops" secret="{STRONG}"/>'}, "xml secret"),
    ({"xml": f"<r><note>{GITHUB}</note></r>"}, "github_token"),
]
PASSED = [
    {"headers": {"Authorization": "Bearer ${env:CRM_TOKEN}"}},
    {"headers": {"Authorization": "Bearer <token> example"}},
    {"headers": {"Authorization": _basic("user:${env:PW}")}},
    {"path": "/api/users/42/orders/6f1c2a9e-8f0b-4c1e-9a55-3f2b7d9e0c11"},
    {"path": "/api/docs/ghp_notes.md"},
    {"multipart": [("title", "", "hello"), ("file", "image/png", "\x89PNG....")]},
    {"xml": "<config><password>${env:DB_PASSWORD}</password><name>ops</name></config>"},
]


async def _send(px: Any, case: dict[str, Any]) -> Any:
    path = case.get("path", "/api/x")
    if "multipart" in case:
        body, ctype = _multipart(case["multipart"])
        return px.session.post(px.url + path, data=body, headers={"Content-Type": ctype})
    if "xml" in case:
        return px.session.post(px.url + path, data=case["xml"].encode(),
                               headers={"Content-Type": "application/xml"})
    return px.session.post(px.url + path, headers=case.get("headers", {}))


@pytest.mark.parametrize(("case", "where"), REFUSED)
async def test_credentials_behind_suffixes_in_paths_multipart_and_xml_are_refused(
    upstream, write_rules, start_proxy, case: dict[str, Any], where: str
):
    """Each case passed the old code: a placeholder word or reference beside a real
    token switched the whole header off; paths, multipart and XML were not read."""
    up, url = upstream
    px = await start_proxy(write_rules([route(url, "api")]))
    async with await _send(px, case) as r:
        text = await r.text()
        body = json.loads(text)
        assert (r.status, body["error"]["code"]) == (403, "POLICY_DENY"), case
        assert where in body["error"]["message"], (where, body)
        assert STRONG not in text and GITHUB not in text
    assert up.calls == []


async def test_references_and_placeholders_beside_them_still_pass(
    upstream, write_rules, start_proxy
):
    up, url = upstream
    px = await start_proxy(write_rules([route(url, "api")]))
    for case in PASSED:
        async with await _send(px, case) as r:
            assert r.status == 200, (case, await r.text())
    assert len(up.calls) == len(PASSED)


# -- issue 29 (1): protocol fields are not secrets by name --------------------------------
async def test_mcp_progress_tokens_pass_and_credentials_in_them_do_not(
    serve_app, write_rules, start_proxy
):
    """The old key rule refused `_meta.progressToken: "progress-1"` as secret_key_value
    on the production default; a real token in the same field is still refused."""
    from tests.codecs.mcp_servers import FakeMcp

    up = FakeMcp()
    url = await serve_app(up.app) + "/mcp"
    mcp = {"name": "tools", "kind": "mcp", "match": {"path_prefix": "/mcp"}, "upstream": url,
           "mcp": {"default": "allow"}}
    px = await start_proxy(write_rules([mcp]))
    hdrs = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}

    def call(token: str, cursor: str) -> bytes:
        return json.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
            "name": "get_weather", "arguments": {"city": "Oslo", "pageToken": cursor},
            "_meta": {"progressToken": token}}}).encode()

    for token in ("progress-1", "abc123def", "upload-progress-42"):
        async with px.session.post(px.url + "/mcp", data=call(token, "Q1VSU09SOjE3"),
                                   headers=hdrs) as r:
            assert r.status == 200, await r.text()
            assert "error" not in await r.json()
    async with px.session.post(px.url + "/mcp", data=call(GITHUB, "x"), headers=hdrs) as r:
        text = await r.text()
        assert "/params/_meta/progressToken (github_token)" in text and GITHUB not in text
    assert len(up.calls) == 3
