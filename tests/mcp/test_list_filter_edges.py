"""tools/list hiding fails closed (issue 21 item 6): whatever shape a server gives its
answer (content type in any case or none that fits, a compressed body, a string id for a
numeric request id, tools listed in a notification before the answer), the caller either
sees only the tools it may call or gets a refusal; never the hidden tool. And a tools/call
sent as a notification is judged like a call. End to end: raw loopback upstream, proxy,
aiohttp client."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest
from aiohttp import web

HIDDEN = "delete_user"
TOOLS = [
    {"name": "get_weather", "inputSchema": {"type": "object"}},
    {"name": HIDDEN, "inputSchema": {"type": "object"}},
]
RULES = {
    "default": "deny",
    "tools": {"get_weather": {"roles": ["*"]}, HIDDEN: {"roles": ["admin"]}},
}
LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def _answer(id: Any = 1) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": id, "result": {"tools": TOOLS}}).encode()


def _sse(*docs: bytes) -> bytes:
    return b"".join(b"event: message\r\ndata: " + d + b"\r\n\r\n" for d in docs)


NOTE = json.dumps(
    {"jsonrpc": "2.0", "method": "notifications/message", "params": {"tools": TOOLS}}
).encode()

# (name, response headers, body, refused)
SHAPES: list[tuple[str, dict[str, str], bytes, bool]] = [
    ("json-cased", {"Content-Type": "Application/JSON; charset=UTF-8"}, _answer(), False),
    ("json-as-text", {"Content-Type": "text/plain"}, _answer(), False),
    ("json-untyped", {"Content-Type": "application/octet-stream"}, _answer(), False),
    ("sse-cased", {"Content-Type": "Text/Event-Stream"}, _sse(_answer()), False),
    ("string-id", {"Content-Type": "application/json"}, _answer("1"), False),
    ("sse-string-id", {"Content-Type": "text/event-stream"}, _sse(_answer("1")), False),
    (
        "gzip",
        {"Content-Type": "application/json", "Content-Encoding": "gzip"},
        gzip.compress(_answer()),
        False,
    ),
    ("notification-first", {"Content-Type": "text/event-stream"}, _sse(NOTE, _answer()), False),
    (
        "unknown-coding",
        {"Content-Type": "application/json", "Content-Encoding": "x-squeeze"},
        _answer(),
        True,
    ),
    ("sse-labelled-json", {"Content-Type": "application/json"}, _sse(_answer()), True),
    ("truncated", {"Content-Type": "application/json"}, _answer()[:-3], True),
    ("not-utf8", {"Content-Type": "application/json"}, _answer()[:-2] + b"\xff}}", True),
]


class Scripted:
    """Answers every POST with the configured raw response; records the bodies."""

    def __init__(self) -> None:
        self.shape: tuple[dict[str, str], bytes] = ({}, b"")
        self.bodies: list[bytes] = []
        self.app = web.Application()
        self.app.router.add_post("/mcp", self.handle)

    async def handle(self, req: web.Request) -> web.StreamResponse:
        self.bodies.append(await req.read())
        headers, body = self.shape
        resp = web.StreamResponse(headers=headers)
        resp.enable_chunked_encoding()
        await resp.prepare(req)
        await resp.write(body)
        await resp.write_eof()
        return resp


@pytest.fixture
async def proxied(serve_app, write_rules, start_proxy) -> tuple[Scripted, Any]:
    up = Scripted()
    url = await serve_app(up.app) + "/mcp"
    route = {"name": "tools", "kind": "mcp", "match": {"path_prefix": "/mcp"}, "upstream": url}
    px = await start_proxy(write_rules([{**route, "mcp": RULES}]))
    return up, px


@pytest.mark.parametrize(("name", "headers", "body", "refused"), SHAPES, ids=[s[0] for s in SHAPES])
async def test_hidden_tools_never_reach_the_caller(
    proxied, name: str, headers: dict[str, str], body: bytes, refused: bool
) -> None:
    up, px = proxied
    up.shape = (headers, body)
    hdrs = {**HEADERS, "X-Caller-Role": "guest"}
    async with px.session.post(px.url + "/mcp", json=LIST, headers=hdrs) as r:
        raw = await r.read()
        status, code = r.status, r.headers.get("X-CallWarden-Error-Code")
        encoding = r.headers.get("Content-Encoding")
    assert HIDDEN.encode() not in raw, name
    if refused:
        # a JSON-RPC error answering the request (MCP routes render refusals so)
        assert (status, code) == (200, "UPSTREAM_UNAVAILABLE"), name
        assert json.loads(raw)["error"]["data"]["error_code"] == "UPSTREAM_UNAVAILABLE"
        reason = "encoding" if name == "unknown-coding" else "unreadable"
        assert (
            await px.metric_eventually(
                "callwarden_filter_refusals_total",
                1,
                route="tools",
                filter="tools_list",
                reason=reason,
            )
            == 1
        ), name
        return
    assert status == 200 and code is None, name
    assert encoding is None  # decoded to be filtered, sent as identity
    text = raw.decode()
    docs = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
    docs = docs or [json.loads(text)]
    listed = [t["name"] for d in docs for t in (d.get("result") or d.get("params"))["tools"]]
    assert set(listed) == {"get_weather"}, name


async def test_an_admin_sees_every_tool_unchanged(proxied) -> None:
    """The filter changes nothing for a caller who may call everything (byte for byte)."""
    up, px = proxied
    for headers, body in ((SHAPES[4][1], SHAPES[4][2]), (SHAPES[7][1], SHAPES[7][2])):
        up.shape = (headers, body)
        hdrs = {**HEADERS, "X-Caller-Role": "admin"}
        async with px.session.post(px.url + "/mcp", json=LIST, headers=hdrs) as r:
            assert r.status == 200 and await r.read() == body


async def test_a_tools_call_notification_is_judged_like_a_call(proxied) -> None:
    up, px = proxied
    up.shape = ({"Content-Type": "application/json"}, b"")
    note = {"jsonrpc": "2.0", "method": "tools/call", "params": {"name": HIDDEN, "arguments": {}}}
    hdrs = {**HEADERS, "X-Caller-Role": "guest"}
    async with px.session.post(px.url + "/mcp", json=note, headers=hdrs) as r:
        assert r.status == 403 and r.headers["X-CallWarden-Error-Code"] == "PERMISSION_DENIED"
    assert up.bodies == []
    allowed = {**note, "params": {"name": "get_weather", "arguments": {}}}
    async with px.session.post(px.url + "/mcp", json=allowed, headers=hdrs) as r:
        assert r.status == 200
    assert [json.loads(b) for b in up.bodies] == [allowed]
