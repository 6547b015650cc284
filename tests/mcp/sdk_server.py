"""A real MCP server (official `mcp` SDK 2.x, `MCPServer`) for tests and the demo bench.

`start_server()` runs it on 127.0.0.1, port 0, in a daemon thread and returns its URL;
`python tests/mcp/sdk_server.py --port N` runs it in the foreground (subprocess use).
Tools are chosen to exercise proxy policy: an allowed read tool, a destructive one, one
taking SQL, one whose tenant argument is echoed back, and one advertising annotations.
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

PATH = "/mcp"


def build_server() -> MCPServer:
    """The SDK server with the tools the proxy tests rely on."""
    server = MCPServer("callwarden-test")

    @server.tool()
    def get_weather(city: str) -> str:
        """Weather for a city (harmless read)."""
        return f"sunny in {city}"

    @server.tool()
    def run_sql(query: str) -> str:
        """Echo the SQL as received, so tests can see a proxy rewrite."""
        return query

    @server.tool()
    def delete_user(user_id: int) -> str:
        """A destructive tool that policy should deny."""
        return f"deleted {user_id}"

    @server.tool()
    def lookup_customer(customer_id: str, tenant_id: str = "") -> str:
        """Echo the arguments, so tests can see a pinned tenant argument."""
        return json.dumps({"customer_id": customer_id, "tenant_id": tenant_id})

    @server.tool(annotations=ToolAnnotations(readOnlyHint=True, idempotentHint=True))
    def add(a: int, b: int) -> int:
        """Add two numbers (advertised read-only and idempotent)."""
        return a + b

    return server


@dataclass
class RunningServer:
    url: str
    port: int
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def _config(port_or_sock: Any, *, json_response: bool, stateless: bool) -> uvicorn.Config:
    app = build_server().streamable_http_app(
        streamable_http_path=PATH, json_response=json_response, stateless_http=stateless
    )
    return uvicorn.Config(app, log_level="warning", lifespan="on", **port_or_sock)


def start_server(*, json_response: bool = False, stateless: bool = False) -> RunningServer:
    """Start on 127.0.0.1:0 in a daemon thread; return once it accepts connections."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(_config({}, json_response=json_response, stateless=stateless))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(500):  # bounded: 10 s
        if server.started:
            break
        time.sleep(0.02)
    else:
        server.should_exit = True
        raise RuntimeError("MCP SDK server did not start")
    return RunningServer(f"http://127.0.0.1:{port}{PATH}", port, server, thread)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--json-response", action="store_true")
    parser.add_argument("--stateless", action="store_true")
    args = parser.parse_args()
    config = _config(
        {"host": "127.0.0.1", "port": args.port},
        json_response=args.json_response,
        stateless=args.stateless,
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
