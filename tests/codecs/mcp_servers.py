"""A scripted loopback MCP upstream for the shapes the SDK server does not produce on
demand: paginated and SSE tools/list answers with \\r\\n line endings, batches, a slow tool,
a server event stream (GET) and session end (DELETE). Records every request."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

TOOLS = [
    {"name": "get_weather", "inputSchema": {"type": "object"}},
    {"name": "delete_user", "inputSchema": {"type": "object"}},
    {
        "name": "add",
        "inputSchema": {"type": "object"},
        "annotations": {"readOnlyHint": True, "idempotentHint": True},
    },
    {"name": "slow", "inputSchema": {"type": "object"}},
]


class FakeMcp:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.sse = False
        """Answer POSTs as text/event-stream (a progress event, then the response)."""
        self.escaped = False
        """Spell the "tools" key as "\\u0074ools" (the same key to any JSON parser)."""
        self.repeated = False
        """Send the "tools" key twice: every tool first, then only those a guest may call."""
        self.hold: asyncio.Event | None = None
        """Keep an SSE answer's stream open after the response until this is set."""
        self.linger = 0.0
        """Seconds between an SSE answer's last event and the end of its body."""
        self.app = web.Application()
        self.app.router.add_route("*", "/mcp", self.handle)

    async def handle(self, req: web.Request) -> web.StreamResponse:
        body = await req.read()
        self.calls.append({"method": req.method, "headers": dict(req.headers), "body": body})
        if req.method == "DELETE":
            return web.Response(status=200)
        if req.method == "GET":
            return await self._events(req, [b'data: {"jsonrpc":"2.0","method":"ping","id":"s1"}'])
        doc = json.loads(body)
        items = doc if isinstance(doc, list) else [doc]
        answers = [self._answer(m) for m in items if "method" in m and "id" in m]
        if any(m.get("method") == "tools/call" and m["params"]["name"] == "slow" for m in items):
            await asyncio.sleep(0.5)
        if not answers:
            return web.Response(status=202)
        out = answers if isinstance(doc, list) else answers[0]
        text = json.dumps(out)
        if self.escaped:
            text = text.replace('"tools"', '"\\u0074ools"')
        if self.repeated:
            visible = [t for t in TOOLS if t["name"] != "delete_user"]
            all_tools = json.dumps(TOOLS)
            text = text.replace(all_tools, f'{all_tools}, "tools": {json.dumps(visible)}')
        if not self.sse:
            return web.Response(text=text, content_type="application/json")
        progress = b'event: message\r\ndata: {"jsonrpc":"2.0","method":"notifications/progress",'
        progress += b'"params":{"progressToken":1,"progress":1}}'
        data = b"event: message\r\nid: 7\r\ndata: " + text.encode()
        return await self._events(
            req, [progress, data], eol=b"\r\n", hold=self.hold, linger=self.linger
        )

    @staticmethod
    def _answer(m: dict[str, Any]) -> dict[str, Any]:
        if m["method"] == "tools/list":
            result: dict[str, Any] = {"tools": TOOLS, "nextCursor": "page-2"}
        elif m["method"] == "tools/call" and m["params"]["name"] == "add" \
                and m["params"].get("arguments", {}).get("fail") == "tool":
            result = {"content": [{"type": "text", "text": "boom"}], "isError": True}
        elif m["method"] == "tools/call" and m["params"]["name"] == "add" \
                and m["params"].get("arguments", {}).get("fail") == "rpc":
            return {"jsonrpc": "2.0", "id": m["id"], "error": {"code": -32603, "message": "x"}}
        else:
            result = {"echo": m.get("params")}
        return {"jsonrpc": "2.0", "id": m["id"], "result": result}

    @staticmethod
    async def _events(
        req: web.Request,
        events: list[bytes],
        eol: bytes = b"\n",
        hold: asyncio.Event | None = None,
        linger: float = 0.0,
    ) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(req)
        for ev in events:
            await resp.write(ev + eol + eol)
        if hold is not None:
            await hold.wait()
        if linger:
            await asyncio.sleep(linger)
        await resp.write_eof()
        return resp
