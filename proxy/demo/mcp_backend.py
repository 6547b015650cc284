"""The demo's MCP server (official `mcp` SDK, installed with the `mcp` or `test` extra):
a harmless tool, a SQL tool over the demo tables, and a destructive one the rules deny."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
from collections.abc import Awaitable, Callable
from typing import Any

PORT_PATH = "/mcp"


async def start_mcp_backend(port: int, db: Any) -> Callable[[], Awaitable[None]] | None:
    """Serve on 127.0.0.1:port in this loop; returns its stop (None when the SDK is not
    installed)."""
    try:
        import uvicorn
        from mcp.server.mcpserver import MCPServer
    except ImportError:
        return None
    server = MCPServer("callwarden-demo")

    @server.tool()
    def get_weather(city: str) -> str:
        """Weather for a city."""
        return f"sunny in {city}"

    @server.tool()
    def run_sql(query: str) -> str:
        """Run a read-only query on the demo database (CallWarden scopes it to the tenant)."""
        cur = db.execute(query)
        return json.dumps([list(r) for r in cur.fetchall()])

    @server.tool()
    def delete_customer(customer_id: int) -> str:
        """Destructive: the demo rules hold it for an on-call approval."""
        return f"deleted {customer_id}"

    app = server.streamable_http_app(
        streamable_http_path=PORT_PATH, json_response=True, stateless_http=True
    )
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    uv = uvicorn.Server(config)
    uv.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(uv.serve())
    for _ in range(100):
        if uv.started or task.done():
            break
        await asyncio.sleep(0.05)
    if not uv.started:  # uvicorn exits (SystemExit) when the port is taken
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise OSError(errno.EADDRINUSE, f"MCP demo backend cannot listen on 127.0.0.1:{port}")

    async def stop() -> None:
        """Ask uvicorn to exit (a cancelled lifespan would print a traceback)."""
        uv.should_exit = True
        await task

    return stop
