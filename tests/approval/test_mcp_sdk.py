"""Approval on an MCP tool, driven by the official SDK client through the proxy to the
official SDK server: defer (JSON-RPC error with the id in data, retry with the header)
and wait (the SDK's call returns once a person approved)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client

from proxy.model.errors import ERROR_TABLE, ErrorCode
from tests.approval.conftest import TOP, decide, pending_id
from tests.mcp.sdk_server import RunningServer, start_server


@pytest.fixture(scope="module")
def sdk_server() -> Iterator[RunningServer]:
    server = start_server()
    yield server
    server.stop()


def mcp_route(url: str, mode: str) -> dict[str, Any]:
    approval = {"approvers": ["on-call"], "mode": mode, "timeout_s": 20}
    return {
        "name": "tools",
        "kind": "mcp",
        "match": {"path_prefix": "/mcp"},
        "upstream": url,
        "mcp": {
            "default": "deny",
            "tools": {
                "get_weather": {"roles": ["*"]},
                "delete_user": {"roles": ["agent"], "approval": approval},
            },
        },
    }


async def call_tool(url: str, tool: str, args: dict[str, Any], **headers: str) -> Any:
    hdrs = {"X-Caller-Role": "agent", "X-Tenant-ID": "acme", **headers}
    async with asyncio.timeout(30):
        async with (
            httpx2.AsyncClient(headers=hdrs, timeout=30) as hc,
            Client(streamable_http_client(url, http_client=hc)) as client,
        ):
            try:
                res = await client.call_tool(tool, args)
            except MCPError as exc:
                return exc.error
            return res.content[0].text  # type: ignore[union-attr]


async def test_sdk_defer_then_retry_with_the_id(sdk_server, admin_token, write_rules, start_proxy):
    px = await start_proxy(write_rules([mcp_route(sdk_server.url, "defer")], **TOP))
    url = px.url + "/mcp"
    assert await call_tool(url, "get_weather", {"city": "Oslo"}) == "sunny in Oslo"  # not held
    err = await call_tool(url, "delete_user", {"user_id": 7})
    assert err.code == ERROR_TABLE[ErrorCode.APPROVAL_PENDING].jsonrpc_code
    assert err.data["error_code"] == "APPROVAL_PENDING" and err.data["retryable"] is True
    approval_id = err.data["approval_id"]
    assert (await decide(px, approval_id, comment="ticket 9"))[0] == 200
    changed = await call_tool(
        url, "delete_user", {"user_id": 8}, **{"X-CallWarden-Approval": approval_id}
    )
    assert changed.data["error_code"] == "APPROVAL_MISMATCH"
    done = await call_tool(
        url, "delete_user", {"user_id": 7}, **{"X-CallWarden-Approval": approval_id}
    )
    assert done == "deleted 7"


async def test_sdk_wait_held_until_approved(sdk_server, admin_token, write_rules, start_proxy):
    px = await start_proxy(write_rules([mcp_route(sdk_server.url, "wait")], **TOP))
    task = asyncio.create_task(call_tool(px.url + "/mcp", "delete_user", {"user_id": 3}))
    approval_id = await pending_id(px, timeout=15)
    assert not task.done()
    assert (await decide(px, approval_id))[0] == 200
    assert await task == "deleted 3"


async def test_sdk_wait_denied(sdk_server, admin_token, write_rules, start_proxy):
    px = await start_proxy(write_rules([mcp_route(sdk_server.url, "wait")], **TOP))
    task = asyncio.create_task(call_tool(px.url + "/mcp", "delete_user", {"user_id": 3}))
    approval_id = await pending_id(px, timeout=15)
    assert (await decide(px, approval_id, "deny"))[0] == 200
    err = await task
    assert err.data["error_code"] == "APPROVAL_DENIED" and err.data["approval_id"] == approval_id
