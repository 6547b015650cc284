"""The mcp_policy guard alone: per-method and per-tool RBAC, tenant-pinned and SQL
arguments, batches, per-tool timeouts, and the tools/list filter it adds."""

from __future__ import annotations

import json

import pytest

from proxy.mcp.tools_list import ToolsListFilter
from proxy.model.call import evolve
from proxy.model.verdict import ALLOW, Deny, Rewrite
from tests.guards.kit import (
    ask,
    build,
    code,
    context,
    guard,
    mcp_call,
    route,
    rpc,
    tool_call,
)

MCP = {
    "default": "deny",
    "tools": {
        "weather": {"roles": ["*"]},
        "admin_tool": {"roles": ["admin"]},
        "orders": {"roles": ["*"], "tenant_argument": "org"},
        "query": {"roles": ["*"], "sql": {"argument": "sql", "dialect": "postgres",
                                          "tenant": {"column": "tenant_id", "tables": ["t"]}}},
        "slow": {"roles": ["*"], "limits": {"timeout_ms": 50}},
    },
    "methods": {"resources/read": ["reader"]},
}
SPEC = route("mcp", mcp=MCP)


@pytest.mark.parametrize(
    ("message", "roles", "expected"),
    [
        (tool_call("weather"), (), None),
        (tool_call("admin_tool"), ("admin",), None),
        (tool_call("admin_tool"), ("viewer",), "PERMISSION_DENIED"),
        (tool_call("unlisted"), ("admin",), "POLICY_DENY"),  # default: deny
        (rpc("tools/call", {"arguments": {}}), (), "INVALID_PARAMS"),  # no name
        (rpc("tools/call", {"name": 7}), (), "INVALID_PARAMS"),
        (tool_call("admin_tool", id=None), (), "PERMISSION_DENIED"),  # notifications too
        (rpc("resources/read", {"uri": "x"}), ("reader",), None),
        (rpc("resources/read", {"uri": "x"}), ("viewer",), "PERMISSION_DENIED"),
        (rpc("prompts/list"), (), None),  # methods the rules do not name pass
        ({"jsonrpc": "2.0", "id": 4, "result": {}}, (), None),  # a client's response
    ],
)
async def test_methods_and_tools(message: dict, roles: tuple[str, ...], expected) -> None:
    g = guard("mcp_policy", SPEC)
    assert code(await ask(g, mcp_call(message, roles=roles))) == expected


@pytest.mark.parametrize(
    ("arguments", "tenant", "expected", "org"),
    [
        ({}, "acme", None, "acme"),  # set when absent
        ({"org": "acme"}, "acme", None, None),  # unchanged: no rewrite
        ({"org": "other"}, "acme", "TENANT_MISMATCH", None),
        ({}, None, "AUTH_FAILED", None),
    ],
)
async def test_tenant_argument(arguments, tenant, expected, org) -> None:
    g = guard("mcp_policy", SPEC)
    v = await ask(g, mcp_call(tool_call("orders", arguments), tenant=tenant))
    assert code(v) == expected
    if org is not None:
        assert isinstance(v, Rewrite)
        assert json.loads(v.call.rewritten_body)["params"]["arguments"]["org"] == org
    elif expected is None:
        assert v is ALLOW


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("DELETE FROM t", "SQL_BLOCKED"),
        (42, "INVALID_PARAMS"),
    ],
)
async def test_sql_argument_refusals(sql, expected) -> None:
    g = guard("mcp_policy", SPEC)
    assert code(await ask(g, mcp_call(tool_call("query", {"sql": sql})))) == expected


async def test_sql_argument_gets_the_tenant_predicate() -> None:
    g = guard("mcp_policy", SPEC)
    v = await ask(g, mcp_call(tool_call("query", {"sql": "SELECT id FROM t"})))
    assert isinstance(v, Rewrite)
    sent = json.loads(v.call.rewritten_body)["params"]["arguments"]["sql"]
    assert "tenant_id" in sent and "'acme'" in sent


async def test_a_refused_batch_element_refuses_the_batch_and_names_it() -> None:
    g = guard("mcp_policy", SPEC)
    ctx = context()
    call = mcp_call(tool_call("weather", id=1), tool_call("admin_tool", id=2), batch=True)
    v = await ask(g, call, ctx)
    assert isinstance(v, Deny) and v.reason.startswith("batch[1]: ")
    assert list(ctx.mcp_denials or ()) == [1]


async def test_tools_list_adds_the_filter_except_in_audit() -> None:
    ctx = context()
    assert await ask(guard("mcp_policy", SPEC), mcp_call(rpc("tools/list")), ctx) is ALLOW
    assert [type(f) for f in ctx.response_filters] == [ToolsListFilter]
    audit = guard("mcp_policy", {**SPEC, "guard_modes": {"mcp_policy": "audit"}})
    ctx = context()
    await ask(audit, mcp_call(rpc("tools/list")), ctx)
    assert ctx.response_filters == []
    ctx = context()  # a tools/list notification has no answer to filter
    await ask(guard("mcp_policy", SPEC), mcp_call(rpc("tools/list", id=None)), ctx)
    assert ctx.response_filters == []


async def test_a_tool_timeout_tightens_the_deadline() -> None:
    ctx = context(timeout_s=5.0)
    await ask(guard("mcp_policy", SPEC), mcp_call(tool_call("slow")), ctx)
    assert ctx.deadline.remaining() <= 0.05


async def test_a_call_without_messages_passes() -> None:
    g = guard("mcp_policy", SPEC)
    call = mcp_call(rpc("ping"))
    assert await ask(g, evolve(call, messages=())) is ALLOW


def test_only_mcp_routes_get_the_guard() -> None:
    assert build("mcp_policy", route()) is None
    assert build("mcp_policy", route("mcp")) is not None  # no mcp section: deny all
