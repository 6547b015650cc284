"""A real loopback HTTP upstream for tests: echoes, fails, hangs and streams on command."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from tests.credentials.fakes import rnd

LEAKED_TOKEN = "ghp_" + rnd(36)
"""A fake GitHub token in the GitHub format, sent by `/sse-once?leak`."""


class UpstreamApp:
    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.sse_sent = 0
        self.fail_next = 0
        """Answer the next N calls with 503."""
        self.fail_retry_after: str | None = None
        """Retry-After sent with those 503s, when set."""
        self.held = 0
        """Calls waiting in /hold for `release` to be set."""
        self.release = asyncio.Event()
        self.app = web.Application(client_max_size=1 << 30)
        r = self.app.router
        r.add_route("*", "/status/{code}", self.status)
        r.add_get("/slow", self.slow)
        r.add_get("/hold", self.hold)
        r.add_route("*", "/sse", self.sse)
        r.add_route("*", "/sse-once", self.sse_once)
        r.add_get("/big", self.big)
        r.add_get("/broken", self.broken)
        r.add_get("/broken-small", self.broken_small)
        r.add_post("/upload", self.upload)
        r.add_get("/chunked-json", self.chunked_json)
        r.add_route("*", "/{tail:.*}", self.echo)

    def _seen(self, req: web.Request, body: bytes | None = None) -> None:
        self.calls.append(
            {"method": req.method, "path": req.raw_path, "headers": dict(req.headers), "body": body}
        )

    async def echo(self, req: web.Request) -> web.Response:
        body = await req.read()
        self._seen(req, body)
        if self.fail_next > 0:
            self.fail_next -= 1
            retry_after = {"Retry-After": self.fail_retry_after} if self.fail_retry_after else {}
            return web.json_response({"error": "flaky"}, status=503, headers=retry_after)
        return web.json_response(
            {
                "method": req.method,
                "path": req.raw_path,
                "headers": {k: v for k, v in req.headers.items()},
                "body": body.decode("utf-8", "replace"),
            }
        )

    async def status(self, req: web.Request) -> web.Response:
        self._seen(req)
        code = int(req.match_info["code"])
        return web.json_response({"upstream_error": code}, status=code, headers={"X-Up": "1"})

    async def slow(self, req: web.Request) -> web.Response:
        self._seen(req)
        await asyncio.sleep(int(req.query.get("ms", "1000")) / 1000)
        return web.json_response({"slow": True}, status=int(req.query.get("status", "200")))

    async def hold(self, req: web.Request) -> web.Response:
        """Hang until the test sets `release` (a backend stuck on command)."""
        self._seen(req)
        self.held += 1
        try:
            await self.release.wait()
        finally:
            self.held -= 1
        return web.json_response({"held": True})

    async def sse(self, req: web.Request) -> web.StreamResponse:
        self._seen(req)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(req)
        n = int(req.query.get("n", "3"))
        gap = int(req.query.get("gap_ms", "200")) / 1000
        await asyncio.sleep(int(req.query.get("first_ms", "0")) / 1000)
        for i in range(n):
            await resp.write(f"id: {i}\ndata: {json.dumps({'i': i})}\n\n".encode())
            self.sse_sent = i + 1
            await asyncio.sleep(gap)
        await resp.write_eof()
        return resp

    async def sse_once(self, req: web.Request) -> web.StreamResponse:
        """A short answer stream (an MCP tools/call): every event and the end at once."""
        self._seen(req)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(req)
        await resp.write_eof(self.sse_once_body(int(req.query.get("n", "2")),
                                                "leak" in req.query))
        return resp

    @staticmethod
    def sse_once_body(n: int, leak: bool = False) -> bytes:
        """`leak`: the last event carries LEAKED_TOKEN (a credential the proxy must mask)."""
        events = [f"data: {json.dumps({'i': i})}\n\n" for i in range(n)]
        if leak:
            events[-1] = f"data: {json.dumps({'i': n - 1, 'token': LEAKED_TOKEN})}\r\n\r\n"
        return "".join(events).encode()

    async def big(self, req: web.Request) -> web.StreamResponse:
        self._seen(req)
        size = int(req.query.get("mb", "1")) * 1024 * 1024
        resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        resp.content_length = size
        await resp.prepare(req)
        chunk = b"x" * 65536
        for _ in range(size // len(chunk)):
            await resp.write(chunk)
        await resp.write_eof()
        return resp

    async def broken(self, req: web.Request) -> web.StreamResponse:
        """Promises 1 MiB, sends 64 KiB, then resets: a failure after the head went out."""
        self._seen(req)
        resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        resp.content_length = 1 << 20
        await resp.prepare(req)
        await resp.write(b"x" * 65536)
        await asyncio.sleep(0.05)
        assert req.transport is not None
        req.transport.abort()
        return resp

    async def broken_small(self, req: web.Request) -> web.StreamResponse:
        """Promises 100 bytes (an answer the proxy buffers), sends 10, then resets."""
        self._seen(req)
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.content_length = 100
        await resp.prepare(req)
        await resp.write(b'{"a": 1234')
        await asyncio.sleep(0.05)
        assert req.transport is not None
        req.transport.abort()
        return resp

    async def chunked_json(self, req: web.Request) -> web.StreamResponse:
        """A JSON body sent in pieces, with pauses: one read() is not the whole body."""
        self._seen(req)
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(req)
        token = req.query.get("echo", "")
        for part in ('{"items": [', '"a", ', f'"{token}", ', '"z"]}'):
            await resp.write(part.encode())
            await asyncio.sleep(0.05)
        await resp.write_eof()
        return resp

    async def upload(self, req: web.Request) -> web.Response:
        self._seen(req)
        total = 0
        async for chunk in req.content.iter_any():
            total += len(chunk)
        return web.json_response({"received": total})
