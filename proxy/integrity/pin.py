"""`callwarden pin --route NAME --rules PATH [--out FILE]`: list the route's upstream MCP
tools with the official SDK client (the same handshake and transport a real client uses,
with the route's injected credentials) and write the pin file for review.

The file is rewritten whole, tools sorted by name and keys sorted, so `git diff` shows a
reviewer exactly which definitions changed since the last approval.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from proxy.config.load import RulesError, load_rules
from proxy.config.schema import Route, Rules
from proxy.integrity.pins import PinError, PinFile, diff_pins, load_pins, pins_from_tools, save_pins

MAX_PAGES = 1000
"""Bound on tools/list pagination: a server that never stops paging is refused."""


async def _headers(route: Route, rules: Rules) -> dict[str, str]:
    """The route's injected headers, resolved like the proxy would (never printed)."""
    if not route.credentials.inject:
        return {}
    from proxy.secrets.store import SecretStore

    store = SecretStore(rules.secrets)
    await store.start()
    try:
        return {name: await store.resolve(t) for name, t in route.credentials.inject.items()}
    finally:
        await store.close()


async def fetch_tools(url: str, headers: dict[str, str], timeout_s: float) -> list[dict[str, Any]]:
    """Every tool the server lists, all pages, as wire JSON (fields as the server set them)."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    tools: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout_s):
        async with (
            httpx2.AsyncClient(headers=headers) as http,
            Client(streamable_http_client(url, http_client=http)) as client,
        ):
            cursor: str | None = None
            for _ in range(MAX_PAGES):
                page = await client.list_tools(cursor=cursor)
                tools += [
                    t.model_dump(by_alias=True, exclude_unset=True, mode="json") for t in page.tools
                ]
                cursor = page.next_cursor
                if not cursor:
                    return tools
    raise RuntimeError(f"tools/list still paging after {MAX_PAGES} pages")


def _previous(path: Path) -> PinFile | None:
    if not path.exists():
        return None
    try:
        return load_pins(path)
    except PinError:
        return None  # replaced whole; the diff then lists every tool as added


def cmd_pin(args: argparse.Namespace) -> int:
    try:
        rules = load_rules(args.rules).rules
    except RulesError as exc:
        for p in exc.problems:
            print(p, file=sys.stderr)
        return 2
    route = next((r for r in rules.routes if r.name == args.route), None)
    if route is None or route.kind != "mcp":
        print(f"callwarden pin: no MCP route named '{args.route}'", file=sys.stderr)
        return 2
    out = args.out or (route.mcp.pins if route.mcp else None)
    if not out:
        print(f"callwarden pin: route '{route.name}' has no mcp.pins; pass --out", file=sys.stderr)
        return 2

    async def collect() -> list[dict[str, Any]]:
        return await fetch_tools(
            route.upstream, await _headers(route, rules), route.limits.timeout_ms / 1000
        )

    try:
        tools = asyncio.run(collect())
    except Exception as exc:  # report and exit; the message names no header or secret
        print(f"callwarden pin: cannot list tools from {route.upstream}: {why(exc)}",
              file=sys.stderr)
        return 1
    pins = pins_from_tools(route.name, tools)
    changes = diff_pins(_previous(Path(out)), pins)
    save_pins(out, pins)
    print(f"wrote {out}: {len(pins.tools)} tools")
    for what in ("added", "changed", "removed"):
        if changes[what]:
            print(f"  {what}: {', '.join(changes[what])}")
    return 0


def why(exc: BaseException) -> str:
    """One line for a failed listing: the SDK wraps transport errors in exception groups
    ("unhandled errors in a TaskGroup"), which say nothing to a user."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:  # the root: a refused connection
        seen.add(id(cause))
        if isinstance(cause, ConnectionRefusedError) or "connect" in type(cause).__name__.lower():
            return "connection refused (is the MCP server running at that URL?)"
        if isinstance(cause, TimeoutError):
            return "timed out (the route's timeout_ms)"
        cause = cause.__cause__ or cause.__context__
    return f"{exc.__class__.__name__}: {str(exc)[:200]}"


def add_parser(sub: Any) -> None:
    """Register `pin` on the `callwarden` subcommand parser."""
    p = sub.add_parser("pin", help="write the route's approved MCP tool definitions")
    p.add_argument("--route", required=True)
    p.add_argument("--rules", required=True)
    p.add_argument("--out", help="pin file (default: the route's mcp.pins)")
    p.set_defaults(func=cmd_pin)
