"""Held-open answers (2026-07-28 `subscriptions/listen`, SEP-2575) pass message by message,
masked per message, and outlive the call deadline; as chunked newline-delimited JSON and as
SSE. End to end: a raw loopback upstream that holds the answer open, the proxy, aiohttp."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from aiohttp import web

SECRET = "sk-live-held-open-0123456789abcdef"
LISTEN = {
    "jsonrpc": "2.0",
    "id": "listen-1",
    "method": "subscriptions/listen",
    "params": {"notifications": {"toolsListChanged": True}},
}
HEADERS = {
    "Accept": "application/json, text/event-stream",
    "Content-Type": "application/json",
    "MCP-Protocol-Version": "2026-07-28",
    "Mcp-Method": "subscriptions/listen",
}
TIMEOUT_MS = 200


def _note(method: str, **params: Any) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "method": method, "params": params}).encode()


class Holder:
    """Answers subscriptions/listen with an acknowledgement, then (when told) a message
    echoing the credential it was sent, then, after the deadline, a last one."""

    def __init__(self, form: str) -> None:
        self.form = form
        self.go = asyncio.Event()
        self.app = web.Application()
        self.app.router.add_post("/mcp", self.handle)

    def frame(self, message: bytes) -> bytes:
        return b"data: " + message + b"\n\n" if self.form == "sse" else message + b"\n"

    async def handle(self, req: web.Request) -> web.StreamResponse:
        await req.read()
        ctype = "text/event-stream" if self.form == "sse" else "application/json"
        resp = web.StreamResponse(headers={"Content-Type": ctype})
        resp.enable_chunked_encoding()
        await resp.prepare(req)
        await resp.write(self.frame(_note("notifications/subscriptions/acknowledged")))
        await self.go.wait()
        auth = req.headers.get("Authorization", "")
        await resp.write(self.frame(_note("notifications/tools/list_changed", echo=auth)))
        await asyncio.sleep(3 * TIMEOUT_MS / 1000)  # past the route's deadline
        await resp.write(self.frame(_note("notifications/prompts/list_changed")))
        await resp.write_eof()
        return resp


async def _next_message(r: Any, form: str) -> dict[str, Any]:
    async with asyncio.timeout(2):
        if form == "sse":
            event = b""
            while not event.endswith(b"\n\n"):
                line = await r.content.readline()
                assert line, "stream ended"
                event += line
            return json.loads(event.decode().split("data: ", 1)[1])
        line = await r.content.readline()
        assert line.endswith(b"\n"), "stream ended"
        return json.loads(line)


@pytest.mark.parametrize("form", ["ndjson", "sse"])
@pytest.mark.parametrize("mask", [True, False])
async def test_listen_stream_passes_message_by_message(
    serve_app, write_rules, start_proxy, monkeypatch, form: str, mask: bool
) -> None:
    monkeypatch.setenv("CW_HELD_OPEN", SECRET)
    up = Holder(form)
    url = await serve_app(up.app) + "/mcp"
    route: dict[str, Any] = {
        "name": "subs",
        "kind": "mcp",
        "match": {"path_prefix": "/mcp"},
        "upstream": url,
        "mcp": {"default": "allow"},
        "limits": {"timeout_ms": TIMEOUT_MS},
        "credentials": {
            "inject": {"Authorization": "Bearer ${env:CW_HELD_OPEN}"},
            "mask_responses": mask,
        },
    }
    px = await start_proxy(write_rules([route]))
    async with px.session.post(px.url + "/mcp", json=LISTEN, headers=HEADERS) as r:
        assert r.status == 200
        # the acknowledgement arrives while the upstream still holds the stream open
        first = await _next_message(r, form)
        assert first["method"] == "notifications/subscriptions/acknowledged"
        up.go.set()
        second = await _next_message(r, form)
        assert second["method"] == "notifications/tools/list_changed"
        echo = second["params"]["echo"]
        assert echo == ("Bearer [REDACTED]" if mask else f"Bearer {SECRET}")
        # the stream outlives the call deadline
        third = await _next_message(r, form)
        assert third["method"] == "notifications/prompts/list_changed"
        assert await r.content.read() == b""
    assert px.metric("callwarden_timeouts_total", route="subs", phase="route") == 0


async def test_a_tools_call_answer_is_still_cut_by_the_deadline(
    serve_app, write_rules, start_proxy
) -> None:
    """Only held-open requests lift the deadline: a slow tools/call answer is still cut."""
    up = Holder("sse")
    url = await serve_app(up.app) + "/mcp"
    route = {
        "name": "subs",
        "kind": "mcp",
        "match": {"path_prefix": "/mcp"},
        "upstream": url,
        "mcp": {"default": "allow"},
        "limits": {"timeout_ms": TIMEOUT_MS},
    }
    px = await start_proxy(write_rules([route]))
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "x"}}
    hdrs = {**HEADERS, "Mcp-Method": "tools/call", "Mcp-Name": "x"}
    async with asyncio.timeout(5):
        async with px.session.post(px.url + "/mcp", json=call, headers=hdrs) as r:
            with pytest.raises(aiohttp.ClientPayloadError):
                await r.read()  # the head went out with the first event; the rest is cut
    assert await px.metric_eventually(
        "callwarden_timeouts_total", 1, route="subs", phase="route"
    ) == 1
