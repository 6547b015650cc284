"""`kind: mcp` routes end to end: the official SDK server behind the proxy and the SDK's own
client connected through it (2026-07-28 stateless JSON and 2025 sessions with SSE), plus a
scripted upstream for batches, pagination, SSE framing, timeouts and the transport."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from multidict import CIMultiDict, CIMultiDictProxy

from proxy.model.call import Caller, Request
from proxy.model.errors import ERROR_TABLE, ErrorCode
from proxy.model.verdict import Deny
from tests.codecs.mcp_servers import TOOLS, FakeMcp
from tests.guards.kit import rpc
from tests.mcp.sdk_server import RunningServer, start_server

TOOLS_RULES = {
    "default": "deny",
    "tools": {
        "get_weather": {"roles": ["*"]},
        "add": {"roles": ["*"]},
        "run_sql": {
            "roles": ["analyst"],
            "sql": {
                "argument": "query",
                "dialect": "postgres",
                "read_only": True,
                "max_rows": 100,
                "tenant": {"column": "tenant_id", "tables": ["orders"]},
            },
        },
        "lookup_customer": {"roles": ["analyst"], "tenant_argument": "tenant_id"},
        "slow": {"roles": ["*"], "limits": {"timeout_ms": 100}},
        "get_forecast": {"roles": ["*"], "idempotent": True},
    },
    "methods": {"resources/read": ["admin"]},
}
JSON_SSE = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def mcp_route(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": "tools",
        "kind": "mcp",
        "match": {"path_prefix": "/mcp"},
        "upstream": url,
        "mcp": TOOLS_RULES,
        **extra,
    }


def call(name: str, args: dict[str, Any], id: Any = 1) -> dict[str, Any]:
    return rpc("tools/call", {"name": name, "arguments": args}, id)


@pytest.fixture(scope="module")
def sdk_server() -> Iterator[RunningServer]:
    server = start_server()
    yield server
    server.stop()


@pytest.fixture
async def fake(serve_app) -> tuple[FakeMcp, str]:
    up = FakeMcp()
    return up, await serve_app(up.app) + "/mcp"


async def post(px: Any, body: Any, role: str = "analyst", **headers: str) -> tuple[int, Any, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    hdrs = {**JSON_SSE, "X-Caller-Role": role, "X-Tenant-ID": "acme", **headers}
    async with px.session.post(px.url + "/mcp", data=data, headers=hdrs) as r:
        raw = await r.read()
        return r.status, r.headers, json.loads(raw) if raw else None


# -- the official SDK, client and server ------------------------------------------------


async def sdk_session(url: str, mode: str, role: str) -> dict[str, Any]:
    """Drive the SDK client through the proxy; return what it saw."""
    seen: dict[str, Any] = {"errors": {}}
    headers = {"X-Caller-Role": role, "X-Tenant-ID": "acme"}
    async with asyncio.timeout(30):
        async with (
            httpx2.AsyncClient(headers=headers) as hc,
            Client(streamable_http_client(url, http_client=hc), mode=mode) as client,
        ):
            seen["version"] = client.protocol_version
            seen["tools"] = [t.name for t in (await client.list_tools()).tools]
            seen["add"] = (await client.call_tool("add", {"a": 2, "b": 3})).structured_content
            weather = await client.call_tool("get_weather", {"city": "Oslo"})
            seen["weather"] = weather.content[0].text  # type: ignore[union-attr]
            attempts = {
                "run_sql": {"query": "select * from orders"},
                "lookup_customer": {"customer_id": "c1"},
                "delete_user": {"user_id": 1},
                "run_sql_write": {"query": "delete from orders"},
                "lookup_other": {"customer_id": "c1", "tenant_id": "globex"},
            }
            for key, args in attempts.items():
                tool = {"run_sql_write": "run_sql", "lookup_other": "lookup_customer"}.get(key, key)
                try:
                    res = await client.call_tool(tool, args)
                    seen[key] = res.content[0].text  # type: ignore[union-attr]
                except MCPError as exc:
                    seen["errors"][key] = exc.error
    return seen


@pytest.mark.parametrize(("mode", "version"), [("legacy", "2025-11-25"), ("auto", "2026-07-28")])
async def test_sdk_client_through_proxy(
    sdk_server, write_rules, start_proxy, mode: str, version: str
) -> None:
    px = await start_proxy(write_rules([mcp_route(sdk_server.url)]))
    seen = await sdk_session(px.url + "/mcp", mode, "analyst")
    assert seen["version"] == version  # legacy works only if Mcp-Session-Id round-trips
    assert seen["tools"] == ["get_weather", "run_sql", "lookup_customer", "add"]
    assert seen["add"] == {"result": 5}
    assert seen["weather"] == "sunny in Oslo"
    # SQL argument judged and rewritten by the SQL guard; the tool echoes what it got
    assert seen["run_sql"] == (
        "select * from (SELECT * FROM orders WHERE tenant_id = 'acme') AS orders LIMIT 100"
    )
    assert json.loads(seen["lookup_customer"]) == {"customer_id": "c1", "tenant_id": "acme"}
    expected = {
        "delete_user": ErrorCode.POLICY_DENY,
        "run_sql_write": ErrorCode.SQL_BLOCKED,
        "lookup_other": ErrorCode.TENANT_MISMATCH,
    }
    assert set(seen["errors"]) == set(expected)
    for key, code in expected.items():
        err = seen["errors"][key]
        assert err.code == ERROR_TABLE[code].jsonrpc_code
        assert err.data["error_code"] == code and err.data["retryable"] is False
    # recorded once the stream's last byte left, even when the client hung up right after
    ok = {"route": "tools", "tool": "add", "outcome": "ok"}
    assert await px.metric_eventually("callwarden_mcp_tool_calls_total", 1, **ok) == 1
    denied = {"route": "tools", "tool": "other", "outcome": "denied"}
    assert px.metric("callwarden_mcp_tool_calls_total", **denied) == 1  # delete_user: bounded
    assert px.metric("callwarden_mcp_tool_duration_seconds_count", route="tools", tool="run_sql")


async def test_sdk_roles_change_visible_and_callable_tools(sdk_server, write_rules, start_proxy):
    px = await start_proxy(write_rules([mcp_route(sdk_server.url)]))
    seen = await sdk_session(px.url + "/mcp", "auto", "guest")
    assert seen["tools"] == ["get_weather", "add"]
    assert seen["errors"]["run_sql"].data["error_code"] == "PERMISSION_DENIED"
    assert seen["errors"]["lookup_customer"].data["error_code"] == "PERMISSION_DENIED"


async def test_sdk_session_sse_and_delete_raw(sdk_server, write_rules, start_proxy):
    """2025 transport by hand: SSE answers streamed through, the session id carried."""
    px = await start_proxy(write_rules([mcp_route(sdk_server.url)]))
    init = rpc(
        "initialize",
        {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    )
    hdrs = {**JSON_SSE, "X-Caller-Role": "guest"}
    url = px.url + "/mcp"
    async with px.session.post(url, data=json.dumps(init), headers=hdrs) as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/event-stream")
        sid = r.headers["Mcp-Session-Id"]
        assert b'"serverInfo"' in await r.read()
    hdrs = {**hdrs, "Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-06-18"}
    note = json.dumps(rpc("notifications/initialized", id=None))
    async with px.session.post(url, data=note, headers=hdrs) as r:
        assert r.status == 202
    async with px.session.post(url, data=json.dumps(rpc("tools/list", {}, 2)), headers=hdrs) as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        text = (await r.read()).decode()
    data = json.loads(next(ln[6:] for ln in text.splitlines() if ln.startswith("data: ")))
    assert [t["name"] for t in data["result"]["tools"]] == ["get_weather", "add"]
    async with px.session.delete(url, headers=hdrs) as r:
        assert r.status == 200
    async with px.session.post(url, data=json.dumps(rpc("ping", id=3)), headers=hdrs) as r:
        assert r.status == 404  # the session really ended upstream


# -- scripted upstream --------------------------------------------------------------------


async def guest_lists_tools(start_proxy, write_rules, url: str) -> bytes:
    """The raw answer to a guest's tools/list through a proxy in front of `url`."""
    px = await start_proxy(write_rules([mcp_route(url)]))
    hdrs = {**JSON_SSE, "X-Caller-Role": "guest"}
    async with px.session.post(
        px.url + "/mcp", data=json.dumps(rpc("tools/list")), headers=hdrs
    ) as r:
        return await r.read()


@pytest.mark.parametrize("escaped", [False, True])
@pytest.mark.parametrize("sse", [False, True])
async def test_tools_list_filtered_cursor_kept(
    fake, write_rules, start_proxy, sse: bool, escaped: bool
):
    up, url = fake
    up.sse, up.escaped = sse, escaped  # escaped: a server spelling the key "\u0074ools"
    raw = await guest_lists_tools(start_proxy, write_rules, url)
    if sse:
        events = raw.split(b"\r\n\r\n")
        # the progress event passes byte for byte, the answer keeps its fields and \r\n
        assert events[0].startswith(b'event: message\r\ndata: {"jsonrpc":"2.0","method":"notif')
        assert events[1].startswith(b"event: message\r\nid: 7\r\ndata: ")
        msg = json.loads(events[1].split(b"data: ", 1)[1])
    else:
        msg = json.loads(raw)
    assert [t["name"] for t in msg["result"]["tools"]] == ["get_weather", "add", "slow"]
    assert msg["result"]["nextCursor"] == "page-2"


@pytest.mark.parametrize("sse", [False, True])
async def test_tools_list_with_a_repeated_key_is_re_encoded(
    fake, write_rules, start_proxy, sse: bool
):
    """SECURITY: the filter reads the last "tools" (nothing to hide there); forwarded as
    sent, a client that keeps the first copy would list delete_user."""
    up, url = fake
    up.sse, up.repeated = sse, True
    raw = await guest_lists_tools(start_proxy, write_rules, url)
    assert b"delete_user" not in raw
    text = raw.split(b"data: ")[-1] if sse else raw
    msg = json.loads(text)
    assert [t["name"] for t in msg["result"]["tools"]] == ["get_weather", "add", "slow"]
    assert len(up.calls) == 1


async def test_header_smuggling_and_transport_errors(fake, write_rules, start_proxy):
    up, url = fake
    px = await start_proxy(write_rules([mcp_route(url, limits={"max_inspect_bytes": 4096})]))
    body = call("add", {"a": 1, "b": 2})
    v2026 = {"MCP-Protocol-Version": "2026-07-28"}
    # SEP-2243: a missing or disagreeing standard header is HTTP 400 with -32020.
    for headers in (
        {"Mcp-Method": "tools/call", "Mcp-Name": "delete_user"},
        {"Mcp-Method": "tools/list"},
        {**v2026},
        {**v2026, "Mcp-Method": "tools/call"},
        {**v2026, "Mcp-Method": "TOOLS/CALL", "Mcp-Name": "add"},
    ):
        got, resp_headers, doc = await post(px, body, **headers)
        assert got == 400, headers
        assert resp_headers["X-CallWarden-Error-Code"] == "HEADER_MISMATCH"
        assert doc["id"] == 1 and doc["error"]["code"] == -32020
    cases: list[tuple[Any, dict[str, str], int]] = [
        (b'{"jsonrpc": "2.0", "id": 1, "method": ', {}, 400),
        (b"[]", {}, 400),
        (b'{"jsonrpc":"2.0","id":1,"method":"tools/call","method":"x"}', {}, 400),
        (json.dumps(call("add", {"pad": "x" * 5000})).encode(), {}, 413),
    ]
    for data, headers, status in cases:
        got, resp_headers, doc = await post(px, data, **headers)
        assert got == status, (data[:40], headers)
        assert resp_headers["X-CallWarden-Error-Code"] == "TOOL_BAD_REQUEST"
        assert doc["jsonrpc"] == "2.0" and doc["id"] is None
        assert doc["error"]["data"]["error_code"] == "TOOL_BAD_REQUEST"
    # a duplicated routing header is refused too
    hdrs = CIMultiDict({**JSON_SSE, "X-Caller-Role": "guest"})
    hdrs.add("Mcp-Name", "add")
    hdrs.add("Mcp-Name", "delete_user")
    async with px.session.post(px.url + "/mcp", data=json.dumps(body), headers=hdrs) as r:
        assert r.status == 400
    assert up.calls == []
    # matching headers pass (surrounding whitespace is not part of a field value)
    status, _, doc = await post(px, body, **{"Mcp-Method": "tools/call", "Mcp-Name": "add"})
    assert status == 200 and doc["result"]["echo"]["name"] == "add"
    status, _, doc = await post(
        px, body, **{**v2026, "Mcp-Method": "tools/call", "Mcp-Name": "  add "}
    )
    assert status == 200 and doc["result"]["echo"]["name"] == "add"


async def test_batches_judged_element_by_element(fake, write_rules, start_proxy):
    up, url = fake
    px = await start_proxy(write_rules([mcp_route(url)]))
    batch = [call("add", {"a": 1}, 1), call("delete_user", {}, 2), rpc("notifications/x", id=None)]
    status, headers, doc = await post(px, batch)
    assert status == 200 and headers["X-CallWarden-Error-Code"] == "POLICY_DENY"
    assert [(m["id"], m["error"]["data"]["error_code"]) for m in doc] == [
        (1, "TOOL_BAD_REQUEST"),
        (2, "POLICY_DENY"),
    ]
    assert up.calls == []  # nothing of a refused batch is sent
    # an allowed batch goes up whole: tenant pinned in one element, tools/list filtered
    batch = [call("lookup_customer", {"customer_id": "c1"}, "a"), rpc("tools/list", id="b")]
    status, _, doc = await post(px, batch, role="guest,analyst")
    sent = json.loads(up.calls[-1]["body"])
    assert sent[0]["params"]["arguments"] == {"customer_id": "c1", "tenant_id": "acme"}
    assert doc[0]["result"]["echo"]["arguments"]["tenant_id"] == "acme"
    assert [t["name"] for t in doc[1]["result"]["tools"]] == ["get_weather", "add", "slow"]


async def test_original_bytes_notifications_and_client_responses(fake, write_rules, start_proxy):
    up, url = fake
    px = await start_proxy(write_rules([mcp_route(url)]))
    odd = b'{ "jsonrpc" : "2.0", "id" : 9,\n "method" : "tools/call",  "params" : {"name": "add"} }'
    status, _, _ = await post(px, odd)
    assert status == 200 and up.calls[-1]["body"] == odd  # forwarded untouched
    for msg in (
        rpc("notifications/cancelled", {"requestId": 1}, id=None),
        {"jsonrpc": "2.0", "id": "s1", "result": {}},
    ):
        status, _, _doc = await post(px, msg, role="nobody")
        assert status == 202 and json.loads(up.calls[-1]["body"]) == msg


async def test_get_stream_and_delete_pass(fake, write_rules, start_proxy):
    up, url = fake
    px = await start_proxy(write_rules([mcp_route(url)]))
    hdrs = {"Accept": "text/event-stream", "Mcp-Session-Id": "s-1", "X-Caller-Role": "x"}
    async with px.session.get(px.url + "/mcp", headers=hdrs) as r:
        assert r.headers["Content-Type"] == "text/event-stream"
        assert await r.read() == b'data: {"jsonrpc":"2.0","method":"ping","id":"s1"}\n\n'
    async with px.session.delete(px.url + "/mcp", headers=hdrs) as r:
        assert r.status == 200
    assert [(c["method"], c["headers"]["Mcp-Session-Id"]) for c in up.calls] == [
        ("GET", "s-1"),
        ("DELETE", "s-1"),
    ]


async def test_refusals_are_jsonrpc_with_the_request_id(fake, write_rules, start_proxy):
    _up, url = fake
    px = await start_proxy(write_rules([mcp_route(url, access={"roles": ["analyst", "guest"]})]))
    cases = [
        (call("slow", {}, "t1"), "guest", "TOOL_TIMEOUT", True),  # per-tool timeout: 100 ms
        (rpc("resources/read", {"uri": "file:///x"}, 7), "guest", "PERMISSION_DENIED", False),
        (call("add", {}, 8), "intruder", "PERMISSION_DENIED", False),  # route-level access
        (call("no_such_tool", {}, 9), "guest", "POLICY_DENY", False),
        (rpc("tools/call", {"arguments": {}}, 10), "guest", "INVALID_PARAMS", False),
    ]
    for body, role, code, retryable in cases:
        status, headers, doc = await post(px, body, role=role)
        assert status == 200, code
        assert doc["id"] == body["id"] and doc["error"]["code"] == ERROR_TABLE[code].jsonrpc_code
        assert doc["error"]["data"]["error_code"] == code == headers["X-CallWarden-Error-Code"]
        assert doc["error"]["data"]["retryable"] is retryable
    assert px.metric("callwarden_mcp_tool_calls_total", route="tools", tool="slow", outcome="error")


def decode(px: Any, body: dict[str, Any]) -> Any:
    route = px.state.compiled.routes["tools"]
    headers = CIMultiDictProxy(CIMultiDict({"Content-Type": "application/json"}))
    req = Request("POST", "/", headers=headers, body=json.dumps(body).encode())
    return route.codec.decode(route, req, Caller("acme", frozenset({"guest"}), "t"))


async def test_idempotent_from_rules_and_annotations(fake, write_rules, start_proxy):
    _up, url = fake
    px = await start_proxy(write_rules([mcp_route(url)]))
    assert not decode(px, call("add", {})).idempotent  # annotations not seen yet
    assert decode(px, call("get_forecast", {})).idempotent  # rules say so
    await post(px, rpc("tools/list"), role="guest")  # the filter learns the annotations
    assert decode(px, call("add", {})).idempotent
    assert not decode(px, call("get_weather", {})).idempotent
    assert decode(px, rpc("tools/list")).idempotent
    assert not decode(px, [call("add", {}), call("get_weather", {}, 2)]).idempotent


class StubIntegrity:
    """Stands in for proxy.integrity's IntegrityMonitor: hides and refuses `get_weather`."""

    def __init__(self) -> None:
        self.listed: list[list[str]] = []

    def filter_tools(self, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        self.listed.append([t["name"] for t in tools])
        return [t for t in tools if t["name"] != "get_weather"]

    def check_call(self, tool_name: str, arguments: Any) -> Deny | None:
        if tool_name == "get_weather":
            return Deny(ErrorCode.POLICY_DENY, "tool definition changed since it was pinned")
        return None


async def test_integrity_hook(fake, write_rules, start_proxy):
    _up, url = fake
    px = await start_proxy(write_rules([mcp_route(url)]))
    stub = StubIntegrity()
    px.state.compiled.routes["tools"].extra["integrity"] = stub  # before the first call
    _, _, doc = await post(px, rpc("tools/list"), role="guest")
    assert [t["name"] for t in doc["result"]["tools"]] == ["add", "slow"]
    assert stub.listed == [["get_weather", "delete_user", "add", "slow"]]
    _, _, doc = await post(px, call("get_weather", {}), role="guest")
    assert doc["error"]["data"]["error_code"] == "POLICY_DENY"
    assert "pinned" in doc["error"]["message"]


async def test_audit_mode_lists_and_forwards_everything(fake, write_rules, start_proxy):
    _, url = fake
    px = await start_proxy(write_rules([mcp_route(url, guard_modes={"mcp_policy": "audit"})]))
    status, _, msg = await post(px, rpc("tools/list"), role="guest")
    assert status == 200
    assert [t["name"] for t in msg["result"]["tools"]] == [t["name"] for t in TOOLS]
    status, headers, msg = await post(px, call("delete_user", {"id": 1}), role="guest")
    assert "error" not in msg and "X-CallWarden-Error-Code" not in headers
    assert px.metric(
        "callwarden_audit_would_deny_total",
        route="tools", guard="mcp_policy", error_code="POLICY_DENY",
    ) == 1


async def test_sse_answer_settles_into_one_response_or_streams(fake, write_rules, start_proxy):
    """A stream whose answer arrived and whose end follows at once goes to the caller as
    one response; one kept open after its answer still reaches the caller, streamed."""
    up, url = fake
    up.sse, up.linger = True, 0.005  # the end a moment behind the answer (SETTLE_S: 0.05)
    px = await start_proxy(write_rules([mcp_route(url)]))
    hdrs = {**JSON_SSE, "X-Caller-Role": "analyst", "X-Tenant-ID": "acme"}
    body = json.dumps(call("add", {"a": 1})).encode()
    async with px.session.post(px.url + "/mcp", data=body, headers=hdrs) as r:
        assert r.headers.get("Transfer-Encoding") is None and r.content_length
        raw = await r.read()
    assert raw.count(b"data: ") == 2 and b'"echo"' in raw

    up.hold = asyncio.Event()
    async with px.session.post(px.url + "/mcp", data=body, headers=hdrs) as r:
        assert r.headers.get("Transfer-Encoding") == "chunked"
        first = b""
        while b'"echo"' not in first:  # the answer, while the upstream still holds on
            first += await r.content.readany()
        assert not r.content.at_eof()
        up.hold.set()
        assert first + await r.read() == raw


@pytest.mark.parametrize("sse", [False, True], ids=["json", "sse"])
async def test_tool_failures_are_upstream_errors(fake, write_rules, start_proxy, sse):
    """A tool result with isError, or a JSON-RPC error from the server, passes unchanged
    but counts as upstream_error (the SLO alerts and the tool error ratio read it)."""
    up, url = fake
    up.sse = sse
    px = await start_proxy(write_rules([mcp_route(url)]))
    outcomes = []
    hdrs = {**JSON_SSE, "X-Caller-Role": "analyst", "X-Tenant-ID": "acme"}
    for args in ({"a": 1}, {"fail": "tool"}, {"fail": "rpc"}):
        async with px.session.post(px.url + "/mcp", json=call("add", args), headers=hdrs) as r:
            assert r.status == 200
            raw = (await r.read()).decode()
        answer = [ln[5:] for ln in raw.splitlines() if ln.startswith("data:")][-1] if sse else raw
        body = json.loads(answer)
        outcomes.append("error" in body or body["result"].get("isError") is True)
    assert outcomes == [False, True, True]  # passed on as the server sent them
    labels = {"route": "tools", "tool": "add"}
    await px.metric_eventually("callwarden_mcp_tool_calls_total", 2, outcome="upstream_error",
                               **labels)
    assert px.metric("callwarden_mcp_tool_calls_total", outcome="ok", **labels) == 1
    assert px.metric("callwarden_requests_total", route="tools", kind="mcp",
                     outcome="upstream_error", error_code="") == 2


async def test_a_denied_tool_is_logged_by_its_name(fake, write_rules, start_proxy, caplog):
    """Metrics keep "other" for tools the rules do not name (bounded labels); the access
    log says which tool was refused, when its name is a plain one and not a token."""
    import logging

    _up, url = fake
    caplog.set_level(logging.INFO, logger="callwarden.access")
    px = await start_proxy(write_rules([mcp_route(url)]))
    from tests.credentials.fakes import github

    for name in ("drop_everything", github(), "bad name!"):
        status, _, body = await post(px, call(name, {}))
        assert status == 200 and body["error"]["data"]["error_code"] == "POLICY_DENY"
    for _ in range(100):
        lines = [json.loads(r.getMessage()) for r in caplog.records
                 if r.name == "callwarden.access"]
        if len(lines) == 3:
            break
        await asyncio.sleep(0.02)
    assert [ln["tool"] for ln in lines] == ["drop_everything", "other", "other"]
    assert px.metric("callwarden_mcp_tool_calls_total", route="tools", tool="other",
                     outcome="denied") == 3
