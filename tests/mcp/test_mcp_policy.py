"""Per-tool MCP policy: decisions, tools/list filtering (cursor kept), idempotency,
tenant argument pinning and the SQL argument location."""

from __future__ import annotations

import json

import pytest

from proxy.config.schema import McpSpec
from proxy.mcp.policy import OTHER_TOOL, McpPolicy, with_arguments
from proxy.mcp.tools_list import McpRuntime, ToolsListFilter
from proxy.model.errors import ErrorCode

SPEC = McpSpec.model_validate(
    {
        "default": "deny",
        "tools": {
            "run_sql": {"roles": ["analyst"], "sql": {"argument": "query", "read_only": True}},
            "get_weather": {"roles": ["*"], "limits": {"rate": {"per_minute": 30}}},
            "lookup_customer": {"roles": ["agent", "analyst"], "tenant_argument": "tenant_id"},
            "reindex": {"roles": ["admin"], "idempotent": True},
        },
        "methods": {"resources/read": ["reader"]},
    }
)
POLICY = McpPolicy.from_spec(SPEC)
OPEN = McpPolicy.from_spec(McpSpec(default="allow", tools={"delete_user": {"roles": ["admin"]}}))


@pytest.mark.parametrize(
    ("policy", "tool", "roles", "code"),
    [
        (POLICY, "get_weather", frozenset(), None),
        (POLICY, "get_weather", frozenset({"anyone"}), None),
        (POLICY, "run_sql", frozenset({"analyst"}), None),
        (POLICY, "run_sql", frozenset({"agent", "analyst"}), None),
        (POLICY, "run_sql", frozenset({"agent"}), ErrorCode.PERMISSION_DENIED),
        (POLICY, "run_sql", frozenset(), ErrorCode.PERMISSION_DENIED),
        (POLICY, "delete_user", frozenset({"admin"}), ErrorCode.POLICY_DENY),
        (POLICY, "RUN_SQL", frozenset({"analyst"}), ErrorCode.POLICY_DENY),  # names are exact
        (POLICY, None, frozenset(), ErrorCode.INVALID_PARAMS),
        (POLICY, 5, frozenset(), ErrorCode.INVALID_PARAMS),
        (POLICY, "", frozenset(), ErrorCode.INVALID_PARAMS),
        (OPEN, "anything", frozenset(), None),
        (OPEN, "delete_user", frozenset({"user"}), ErrorCode.PERMISSION_DENIED),
        (OPEN, "delete_user", frozenset({"admin"}), None),
    ],
)
def test_tool_decision(
    policy: McpPolicy, tool: object, roles: frozenset[str], code: object
) -> None:
    allowed, got, reason = policy.tool_decision(tool, roles)
    assert (allowed, got) == (code is None, code)
    assert bool(reason) == (code is not None)


def test_method_decision() -> None:
    assert POLICY.method_decision("resources/read", frozenset({"reader"}))[0]
    assert (
        POLICY.method_decision("resources/read", frozenset({"x"}))[1] is ErrorCode.PERMISSION_DENIED
    )
    assert POLICY.method_decision("ping", frozenset())[0]


LIST = {
    "tools": [
        {"name": "get_weather", "inputSchema": {"type": "object"}},
        {"name": "run_sql", "inputSchema": {"type": "object"}},
        {"name": "delete_user", "inputSchema": {"type": "object"}},
        {"name": "lookup_customer", "inputSchema": {"type": "object"}},
    ],
    "nextCursor": "page-2",
    "_meta": {"k": "v"},
}


@pytest.mark.parametrize(
    ("roles", "names"),
    [
        (frozenset(), ["get_weather"]),
        (frozenset({"analyst"}), ["get_weather", "run_sql", "lookup_customer"]),
        (frozenset({"agent"}), ["get_weather", "lookup_customer"]),
        (frozenset({"admin"}), ["get_weather"]),
    ],
)
def test_visible_tools_keeps_cursor(roles: frozenset[str], names: list[str]) -> None:
    out = POLICY.visible_tools(LIST, roles)
    assert [t["name"] for t in out["tools"]] == names
    assert out["nextCursor"] == "page-2" and out["_meta"] == {"k": "v"}
    assert len(LIST["tools"]) == 4  # input untouched


def test_empty_page_keeps_cursor() -> None:
    page = {"tools": [{"name": "delete_user"}], "nextCursor": "c3"}
    assert POLICY.visible_tools(page, frozenset()) == {"tools": [], "nextCursor": "c3"}


def test_unchanged_list_is_the_same_object() -> None:
    page = {"tools": [{"name": "get_weather"}]}
    assert POLICY.visible_tools(page, frozenset()) is page
    raw = json.dumps({"jsonrpc": "2.0", "id": 2, "result": page}).encode()
    assert _filter(raw) is raw  # forward original bytes


def test_the_list_filter_keeps_the_callers_tools() -> None:
    out = json.loads(_filter(json.dumps({"jsonrpc": "2.0", "id": 2, "result": LIST}).encode()))
    assert out["id"] == 2 and [t["name"] for t in out["result"]["tools"]] == ["get_weather"]
    for other in ({"jsonrpc": "2.0", "id": 2, "error": {}}, [1]):
        raw = json.dumps(other).encode()
        assert _filter(raw) is raw


def _filter(raw: bytes) -> bytes:
    return ToolsListFilter(McpRuntime(POLICY), frozenset()).body(raw, "application/json")


def test_malformed_tool_entries_are_hidden() -> None:
    out = OPEN.visible_tools({"tools": ["x", {"name": 1}, {"name": "ok"}]}, frozenset())
    assert out["tools"] == [{"name": "ok"}]


@pytest.mark.parametrize(
    ("tool", "annotations", "expected"),
    [
        ("reindex", None, True),
        ("get_weather", None, False),
        ("get_weather", {"readOnlyHint": True}, True),
        ("get_weather", {"idempotentHint": True}, True),
        ("get_weather", {"readOnlyHint": False, "destructiveHint": True}, False),
        ("get_weather", {"readOnlyHint": "yes"}, False),
        ("unknown", {"idempotentHint": True}, True),
    ],
)
def test_idempotent(tool: str, annotations: object, expected: bool) -> None:
    assert POLICY.tool_is_idempotent(tool, annotations) is expected


@pytest.mark.parametrize(
    ("args", "tenant", "expected"),
    [
        ({"customer_id": "c1"}, "acme", (None, {"customer_id": "c1", "tenant_id": "acme"})),
        (None, "acme", (None, {"tenant_id": "acme"})),
        ({"customer_id": "c1", "tenant_id": "acme"}, "acme", (None, None)),
        ({"tenant_id": "evil"}, "acme", (ErrorCode.TENANT_MISMATCH, None)),
        ({"tenant_id": "acme"}, None, (ErrorCode.AUTH_FAILED, None)),
        (["x"], "acme", (ErrorCode.INVALID_PARAMS, None)),
    ],
)
def test_pin_tenant(args: object, tenant: str | None, expected: tuple) -> None:
    code, _, new = POLICY.pin_tenant("lookup_customer", args, tenant)
    assert (code, new) == expected


def test_pin_tenant_only_for_configured_tools() -> None:
    assert POLICY.pin_tenant("get_weather", {"tenant_id": "x"}, "acme") == (None, "", None)


def test_sql_argument_and_limits_and_label() -> None:
    arg, spec = POLICY.sql_argument("run_sql")  # type: ignore[misc]
    assert arg == "query" and spec.read_only
    assert POLICY.sql_argument("get_weather") is None
    limits = POLICY.tool_limits("get_weather")
    assert limits is not None and limits.rate is not None and limits.rate.per_minute == 30
    assert POLICY.tool_label("run_sql") == "run_sql"
    assert POLICY.tool_label("made_up_123") == OTHER_TOOL
    assert POLICY.tool_label(None) == OTHER_TOOL


def test_with_arguments() -> None:
    msg = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "a", "arguments": {}},
    }
    out = with_arguments(msg, {"x": 1})
    assert out["params"] == {"name": "a", "arguments": {"x": 1}}
    assert msg["params"]["arguments"] == {}
