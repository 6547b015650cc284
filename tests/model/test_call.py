"""evolve() stands in for dataclasses.replace on the call path: same results, same refusals."""

from __future__ import annotations

import dataclasses

import pytest

from proxy.model.call import Caller, McpCall, Request, SqlCall, evolve


def test_evolve_is_dataclasses_replace() -> None:
    call = SqlCall("r", "sql", Caller("t", frozenset({"a"}), "x" * 32), Request("POST", "/q"),
                   json={"query": "SELECT 1"}, sql="SELECT 1")
    changes = {"sql": "SELECT 2", "idempotent": True, "statement_kind": "select"}
    assert evolve(call, **changes) == dataclasses.replace(call, **changes)
    assert evolve(call) == call and evolve(call) is not call
    mcp = McpCall("m", "mcp", call.caller, call.request, batch=True)
    assert evolve(mcp, tool="add") == dataclasses.replace(mcp, tool="add")


def test_evolve_refuses_unknown_fields() -> None:
    with pytest.raises(TypeError, match="no field"):
        evolve(Request("GET", "/"), bogus=1)
