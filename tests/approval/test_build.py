"""The guard's plan from rules: `when: destructive` trusts only pinned annotations."""

from __future__ import annotations

from proxy.compile import Services
from proxy.config.schema import HttpRoute, McpRoute, Rules
from proxy.guards.approval import build
from proxy.integrity.pins import pins_from_tools, save_pins


def test_destructive_reads_pinned_annotations(tmp_path):
    tools = [
        {"name": "add", "inputSchema": {"type": "object"}, "annotations": {"readOnlyHint": True}},
        {
            "name": "archive",
            "inputSchema": {"type": "object"},
            "annotations": {"destructiveHint": False},
        },
        {"name": "delete_user", "inputSchema": {"type": "object"}},
    ]
    pins = tmp_path / "pins.yaml"
    save_pins(pins, pins_from_tools("tools", tools))
    route = McpRoute(
        name="tools",
        kind="mcp",
        match={"path_prefix": "/mcp"},
        upstream="http://127.0.0.1:9/mcp",
        approval={"approvers": ["on-call"], "when": "destructive"},
        mcp={"default": "allow", "pins": str(pins)},
    )
    guard = build(route, Rules(routes=[route]), Services())
    assert guard is not None
    assert guard.plan.safe_tools == frozenset({"add", "archive"})


def test_no_approval_no_guard():
    route = HttpRoute(name="r", match={"path_prefix": "/r"}, upstream="http://127.0.0.1:9")
    assert build(route, Rules(routes=[route]), Services()) is None
