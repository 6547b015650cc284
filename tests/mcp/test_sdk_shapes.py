"""The real bytes of the official `mcp` SDK (2.x) through a tiny recording forwarder:
our JSON-RPC parser, routing-header check, SSE parser and tools/list filter must handle
what the SDK client sends and the SDK server answers, in both protocol eras
(2025-11-25 initialize handshake with SSE + Mcp-Session-Id; 2026-07-28 stateless JSON
with Mcp-Method / Mcp-Name headers). The forwarder filters tools/list and refuses denied
tools/call with our JSON-RPC error, so the SDK client is the judge of both shapes.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import pytest
from aiohttp import ClientSession, web
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client

from proxy.config.schema import McpSpec
from proxy.mcp.jsonrpc import check_routing_headers, error_response, kind, parse_body
from proxy.mcp.policy import McpPolicy
from proxy.mcp.sse import SseParser
from proxy.mcp.tools_list import McpRuntime, ToolsListFilter
from proxy.model.errors import ERROR_TABLE, ErrorCode, ProxyError

sys.path.insert(0, str(Path(__file__).parent))
from tests.mcp.sdk_server import RunningServer, start_server

POLICY = McpPolicy.from_spec(
    McpSpec.model_validate(
        {
            "default": "deny",
            "tools": {
                "get_weather": {"roles": ["*"]},
                "add": {"roles": ["*"]},
                "run_sql": {"roles": ["analyst"]},
            },
        }
    )
)
_HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}
_RESP_DROP = _HOP | {"date", "server", "content-encoding"}


@dataclass
class Exchange:
    method: str
    headers: list[tuple[str, str]]
    body: bytes
    status: int = 0
    response_headers: dict[str, str] = field(default_factory=dict)
    response: bytes = b""
    """Upstream bytes, before any filtering."""


class Forwarder:
    """Records every exchange; filters tools/list and refuses tools the policy denies."""

    def __init__(self, upstream: str, session: ClientSession) -> None:
        self.upstream = upstream
        self.session = session
        self.log: list[Exchange] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        ex = Exchange(
            request.method,
            [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers],
            body,
        )
        self.log.append(ex)
        roles = frozenset(
            r.strip() for r in request.headers.get("X-Caller-Role", "").split(",") if r
        )
        list_ids: set[object] = set()
        if body:
            messages, _ = parse_body(body)
            check_routing_headers(request.headers, messages)
            for m in messages:
                if m.method == "tools/list":
                    list_ids.add(m.id)
                if m.method == "tools/call":
                    ok, code, reason = POLICY.tool_decision(m.params.get("name"), roles)
                    if not ok:
                        assert code is not None
                        err = error_response(m.id, ProxyError(code, reason), "tools", "trace-1")
                        return web.json_response(err)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        async with self.session.request(
            request.method, self.upstream, data=body or None, headers=headers
        ) as up:
            ex.status = up.status
            ex.response_headers = dict(up.headers)
            out_headers = {k: v for k, v in up.headers.items() if k.lower() not in _RESP_DROP}
            resp = web.StreamResponse(status=up.status, headers=out_headers)
            await resp.prepare(request)
            is_sse = up.headers.get("Content-Type", "").startswith("text/event-stream")
            parser = SseParser()
            chunks: list[bytes] = []
            async for chunk in up.content.iter_any():
                ex.response += chunk
                if not is_sse:
                    chunks.append(chunk)
                    continue
                for ev in parser.feed(chunk):
                    await resp.write(self._filter_event(ev, list_ids, roles))
            if is_sse:
                events, rest = parser.finish()
                for ev in events:
                    await resp.write(self._filter_event(ev, list_ids, roles))
                await resp.write(rest)
            elif chunks:
                await resp.write(self._filter_json(b"".join(chunks), list_ids, roles))
            await resp.write_eof()
            return resp

    @staticmethod
    def _filter_json(raw: bytes, list_ids: set[object], roles: frozenset[str]) -> bytes:
        msg = json.loads(raw)
        if isinstance(msg, dict) and msg.get("id") in list_ids:
            return ToolsListFilter(McpRuntime(POLICY), roles).body(raw, "application/json")
        return raw

    def _filter_event(self, ev, list_ids: set[object], roles: frozenset[str]) -> bytes:  # type: ignore[no-untyped-def]
        if ev.data is None:
            return ev.raw
        new = self._filter_json(ev.data.encode(), list_ids, roles)
        return ev.raw if new == ev.data.encode() else ev.with_data(new.decode()).raw


@pytest.fixture(scope="module")
def sdk_server() -> Iterator[RunningServer]:
    server = start_server()
    yield server
    server.stop()


@pytest.fixture
async def forwarder(sdk_server: RunningServer) -> AsyncIterator[tuple[str, Forwarder]]:
    session = ClientSession(auto_decompress=False)
    fwd = Forwarder(sdk_server.url, session)
    app = web.Application()
    app.router.add_route("*", "/mcp", fwd.handle)
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/mcp", fwd
    await runner.cleanup()
    await session.close()


async def _session(url: str, mode: str, roles: str, fwd: Forwarder) -> dict[str, object]:
    """Drive the SDK client through the forwarder; return what it saw."""
    out: dict[str, object] = {}
    async with asyncio.timeout(30):
        async with (
            httpx2.AsyncClient(headers={"X-Caller-Role": roles, "X-Tenant-ID": "acme"}) as hc,
            Client(streamable_http_client(url, http_client=hc), mode=mode) as client,
        ):
            out["version"] = client.protocol_version
            out["tools"] = [t.name for t in (await client.list_tools()).tools]
            out["add"] = (await client.call_tool("add", {"a": 2, "b": 3})).structured_content
            try:
                await client.call_tool("delete_user", {"user_id": 1})
            except MCPError as exc:
                out["denied"] = exc.error
    return out


@pytest.mark.parametrize(
    ("mode", "version", "content_type"),
    [("legacy", "2025-11-25", "text/event-stream"), ("auto", "2026-07-28", "application/json")],
)
async def test_sdk_through_forwarder(
    forwarder: tuple[str, Forwarder], mode: str, version: str, content_type: str
) -> None:
    url, fwd = forwarder
    seen = await _session(url, mode, "analyst", fwd)
    assert seen["version"] == version
    # tools/list filtered: delete_user and lookup_customer hidden, run_sql visible to analysts
    assert seen["tools"] == ["get_weather", "run_sql", "add"]
    assert seen["add"] == {"result": 5}
    # the denied call reached the SDK client as our JSON-RPC error, data intact
    denied = seen["denied"]
    assert denied.code == ERROR_TABLE[ErrorCode.POLICY_DENY].jsonrpc_code  # type: ignore[attr-defined]
    assert denied.data["error_code"] == "POLICY_DENY"  # type: ignore[attr-defined]

    posts = [ex for ex in fwd.log if ex.method == "POST"]
    kinds = {kind(m) for ex in posts for m in parse_body(ex.body)[0]}
    assert "request" in kinds
    # every upstream answer parses: JSON bodies whole, SSE event by event, byte-faithfully
    answered = [ex for ex in posts if ex.response]
    assert answered
    for ex in answered:
        assert ex.response_headers["Content-Type"].startswith(content_type)
        if content_type == "text/event-stream":
            parser = SseParser()
            events = []
            for i in range(len(ex.response)):  # one byte at a time, the worst split
                events += parser.feed(ex.response[i : i + 1])
            last, rest = parser.finish()
            events += last
            assert b"".join(e.raw for e in events) + rest == ex.response
            datas = [e.data for e in events if e.data is not None]
        else:
            datas = [ex.response.decode()]
        for data in datas:
            (msg,), _ = parse_body(data.encode())
            assert kind(msg) == "response"

    if mode == "legacy":
        assert "notification" in kinds  # notifications/initialized
        session_ids = {v for ex in fwd.log for k, v in ex.headers if k.lower() == "mcp-session-id"}
        assert len(session_ids) == 1  # one session, carried on every later request
        assert {ex.method for ex in fwd.log} >= {"POST", "DELETE"}
    else:
        call = next(ex for ex in posts if b'"tools/call"' in ex.body)
        hdrs = {k.lower(): v for k, v in call.headers}
        assert hdrs["mcp-method"] == "tools/call" and hdrs["mcp-name"] == "add"
        assert hdrs["mcp-protocol-version"] == "2026-07-28"


async def test_role_changes_visible_tools(forwarder: tuple[str, Forwarder]) -> None:
    url, fwd = forwarder
    seen = await _session(url, "auto", "guest", fwd)
    assert seen["tools"] == ["get_weather", "add"]


async def test_header_smuggling_refused(forwarder: tuple[str, Forwarder]) -> None:
    """Replay the SDK's own tools/call with a different Mcp-Name: refused before upstream."""
    url, fwd = forwarder
    await _session(url, "auto", "analyst", fwd)
    call = next(ex for ex in fwd.log if b'"name":"add"' in ex.body)
    messages, _ = parse_body(call.body)
    headers = {k: v for k, v in call.headers}
    check_routing_headers(_ci(headers), messages)  # the real request passes
    for name_key in [k for k in headers if k.lower() == "mcp-name"]:
        headers[name_key] = "delete_user"
    with pytest.raises(ProxyError) as info:
        check_routing_headers(_ci(headers), messages)
    assert info.value.code is ErrorCode.HEADER_MISMATCH


def _ci(headers: dict[str, str]):  # type: ignore[no-untyped-def]
    from multidict import CIMultiDict, CIMultiDictProxy

    return CIMultiDictProxy(CIMultiDict(headers))
