"""`callwarden demo`: the proxy on the example rules, with embedded backends."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import tempfile
from pathlib import Path

from aiohttp import web

from proxy.app import Server, build_state
from proxy.config.load import load_rules
from proxy.demo.backends import api_app, demo_database, sql_app
from proxy.demo.mcp_backend import start_mcp_backend

DEMO_PORTS = {"api": 18081, "sql": 18082, "mcp": 18083}
RULES = Path(__file__).resolve().parents[2] / "rules"
DEMO_APPROVAL_TOKEN = "demo-approver-token-not-a-secret"
"""The demo's own approver token (never a real secret)."""


def curl_examples(proxy: str, admin: str = "http://127.0.0.1:15090") -> str:
    token = os.environ.get("DEMO_APPROVAL_TOKEN", DEMO_APPROVAL_TOKEN)
    mcp_headers = "-H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream'"
    q = '\'{"query": "SELECT item, amount FROM orders ORDER BY id"}\''
    drop = '\'{"query": "DROP TABLE orders"}\''
    return f"""
CallWarden demo is up: proxy {proxy}

# 1. Allowed: CallWarden injects the CRM token and forwards the tenant
curl -s -w '\\n' {proxy}/crm/customers -H 'X-Caller-Role: manager' -H 'X-Tenant-ID: acme'

# 2. Denied by RBAC (PERMISSION_DENIED, 403)
curl -s -w '\\n' {proxy}/crm/customers -H 'X-Caller-Role: intern' -H 'X-Tenant-ID: acme'

# 3. SQL, rewritten so tenant acme sees only its own rows
curl -s -w '\\n' {proxy}/analytics/query -H 'X-Caller-Role: analyst' -H 'X-Tenant-ID: acme' -d {q}

# 4. SQL blocked on a read-only route (SQL_BLOCKED, 403)
curl -s -w '\\n' {proxy}/analytics/query -H 'X-Caller-Role: analyst' -H 'X-Tenant-ID: acme' -d {drop}

# 5. No route: deny by default (POLICY_DENY, 403)
curl -s -w '\\n' {proxy}/payments/refund -X POST

# 6. MCP: the caller sees only the tools it may call; SQL arguments are tenant-scoped
curl -s -w '\\n' {proxy}/mcp -H 'X-Caller-Role: analyst' -H 'X-Tenant-ID: acme' {mcp_headers} \\
     -d '{{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}}'
curl -s -w '\\n' {proxy}/mcp -H 'X-Caller-Role: analyst' -H 'X-Tenant-ID: acme' {mcp_headers} \\
     -d '{{"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {{"name": "run_sql", "arguments": {{"query": "SELECT item FROM orders"}}}}}}'

# 7. MCP: a tool the caller's role may not call is a JSON-RPC error, never sent
curl -s -w '\\n' {proxy}/mcp -H 'X-Caller-Role: analyst' -H 'X-Tenant-ID: acme' {mcp_headers} \\
     -d '{{"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {{"name": "delete_customer", "arguments": {{"customer_id": 1}}}}}}'

# 8. A spent budget is refused before the upstream is called (EXECUTE_TIMEOUT, 504)
curl -s -w '\\n' {proxy}/crm/x -H 'X-Caller-Role: admin' -H 'X-Tenant-ID: acme' \\
     -H 'X-Request-Budget-Ms: 0' -H 'X-Orchestration-Phase: execute'

# 9. MCP: delete_customer is held for an on-call approval (APPROVAL_PENDING, id in data)
curl -s -w '\\n' {proxy}/mcp -H 'X-Caller-Role: admin' -H 'X-Tenant-ID: acme' {mcp_headers} \\
     -d '{{"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {{"name": "delete_customer", "arguments": {{"customer_id": 1}}}}}}'
#    approve it on the admin port (or sign in at {admin}/approvals/ui), then send the same
#    call again with -H 'X-CallWarden-Approval: <id>': it goes through once
curl -s -X POST {admin}/approvals/<id>/approve -H 'Authorization: Bearer {token}' \\
     -H 'X-Approver: dana' -H 'X-Approver-Role: on-call' -d '{{"comment": "demo"}}'
"""


async def _start_backend(app: web.Application, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


def demo_rules(ports: dict[str, int], into: Path) -> Path:
    """The example rules with the backends' upstreams on `ports` (the shipped file names
    the default ones), written as a rules folder under `into`."""
    text = (RULES / "callwarden.yaml").read_text(encoding="utf-8")
    for name, default in DEMO_PORTS.items():
        text = text.replace(f"127.0.0.1:{default}", f"127.0.0.1:{ports[name]}")
    into.mkdir(parents=True, exist_ok=True)
    (into / "callwarden.yaml").write_text(text, encoding="utf-8")
    return into


async def run_demo(
    listen: str, admin: str, duration: float | None = None, backend_port: int | None = None
) -> int:
    """`backend_port`: the first of three consecutive loopback ports for the demo's
    backends (default 18081-18083)."""
    # The demo's own token, so the injected-credential path runs; never a real secret.
    os.environ.setdefault("DEMO_CRM_TOKEN", "demo-token-not-a-secret")
    os.environ.setdefault("DEMO_APPROVAL_TOKEN", DEMO_APPROVAL_TOKEN)
    logging.getLogger("mcp").setLevel(logging.WARNING)  # the SDK's lines are not ours
    ports = dict(DEMO_PORTS)
    if backend_port is not None:
        ports = {name: backend_port + i for i, name in enumerate(DEMO_PORTS)}
    db = demo_database()
    backends: list[web.AppRunner] = []
    server: Server | None = None
    mcp = None
    try:
        backends.append(await _start_backend(api_app(), ports["api"]))
        backends.append(await _start_backend(sql_app(db), ports["sql"]))
        mcp = await start_mcp_backend(ports["mcp"], db)
        if mcp is None:
            print("(the mcp SDK is not installed: the /mcp route has no backend)", flush=True)
        with tempfile.TemporaryDirectory(prefix="callwarden-demo-") as tmp:
            rules = RULES if ports == DEMO_PORTS else demo_rules(ports, Path(tmp))
            state = build_state(load_rules(rules))
        server = Server(state, listen, admin)
        await server.start()
    except OSError as exc:  # a port in use: one line that says which and what to do
        print(
            f"callwarden demo: cannot listen: {exc.strerror or exc} (proxy {listen}, admin "
            f"{admin}, backends {min(ports.values())}-{max(ports.values())}); pick free ports "
            "with --listen, --admin and --backend-port",
            file=sys.stderr,
            flush=True,
        )
        if server is not None:
            await server.stop(drain_s=0)
        for runner in backends:
            await runner.cleanup()
        if mcp is not None:
            await mcp()
        return 1
    proxy_url = f"http://127.0.0.1:{server.ports['proxy']}"
    admin_url = f"http://127.0.0.1:{server.ports.get('admin', 15090)}"
    print(curl_examples(proxy_url, admin_url), flush=True)
    print(f"admin: http://127.0.0.1:{server.ports['admin']}/metrics  /rules  /healthz", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), duration)
    await server.stop(drain_s=2)
    for runner in backends:
        await runner.cleanup()
    if mcp is not None:
        await mcp()
    return 0
