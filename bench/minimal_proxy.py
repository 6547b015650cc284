"""The baseline: a minimal aiohttp pass-through proxy, a few dozen lines, no policy.
CallWarden on a pass-through route should cost no more CPU per request than this."""

from __future__ import annotations

import asyncio
import sys

import aiohttp
from aiohttp import web

HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "host", "content-length"}


async def main(listen_port: int, upstream: str) -> None:
    session = aiohttp.ClientSession(auto_decompress=False)

    async def handle(req: web.Request) -> web.Response:
        headers = {k: v for k, v in req.headers.items() if k.lower() not in HOP}
        body = await req.read() if req.body_exists else None
        async with session.request(
            req.method, upstream + req.path_qs, headers=headers, data=body
        ) as r:
            data = await r.read()
            out = {k: v for k, v in r.headers.items() if k.lower() not in HOP}
            return web.Response(status=r.status, body=data, headers=out)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", listen_port).start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
