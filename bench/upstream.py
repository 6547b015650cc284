"""A small JSON upstream for benchmarks (its own process, so it is not measured)."""

from __future__ import annotations

import sys

from aiohttp import web

BODY = b'{"ok": true, "items": [1, 2, 3], "note": "a small JSON answer like a tool returns"}'


async def handle(req: web.Request) -> web.Response:
    if req.body_exists:
        await req.read()
    return web.Response(body=BODY, content_type="application/json")


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
