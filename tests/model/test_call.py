"""evolve() stands in for dataclasses.replace on the call path: same results, same refusals."""

from __future__ import annotations

import dataclasses

import pytest

from proxy.model.call import Caller, McpCall, Request, SqlCall, evolve, new_call


def test_evolve_is_dataclasses_replace() -> None:
    call = SqlCall("r", "sql", Caller("t", frozenset({"a"}), "x" * 32), Request("POST", "/q"),
                   json={"query": "SELECT 1"}, sql="SELECT 1")
    changes = {"sql": "SELECT 2", "idempotent": True, "statement_kind": "select"}
    assert evolve(call, **changes) == dataclasses.replace(call, **changes)
    assert evolve(call) == call and evolve(call) is not call
    mcp = McpCall("m", "mcp", call.caller, call.request, batch=True)
    assert evolve(mcp, tool="add") == dataclasses.replace(mcp, tool="add")


def test_evolve_refuses_unknown_fields() -> None:
    with pytest.raises(TypeError, match="bogus"):
        evolve(Request("GET", "/"), bogus=1)


def test_evolved_values_stay_frozen_and_whole() -> None:
    req = Request("GET", "/a", "x=1")
    new = evolve(req, path="/b")
    assert type(new) is Request and new == Request("GET", "/b", "x=1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        new.path = "/c"  # type: ignore[misc]
    caller = evolve(Caller("t", frozenset(), "x"), client="1.2.3.4")
    assert hash(caller) == hash(Caller("t", frozenset(), "x", "1.2.3.4"))


@dataclasses.dataclass(frozen=True)
class _Checked:
    n: int

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError("negative")


def test_evolve_runs_post_init_where_a_class_has_one() -> None:
    assert evolve(_Checked(1), n=2) == _Checked(2)
    with pytest.raises(ValueError, match="negative"):
        evolve(_Checked(1), n=-1)


def test_new_call_is_the_constructor() -> None:
    caller = Caller("acme", frozenset({"r"}), "t")
    req = Request("POST", "/q", body=b"{}")
    made = new_call(SqlCall, route="r", kind="sql", caller=caller, request=req, sql="SELECT 1")
    assert made == SqlCall("r", "sql", caller, req, sql="SELECT 1")
    assert made.__dict__ == SqlCall("r", "sql", caller, req, sql="SELECT 1").__dict__
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.sql = "DELETE FROM t"  # type: ignore[misc]
    with pytest.raises(TypeError):
        new_call(SqlCall, route="r", kind="sql", caller=caller)  # missing request
    with pytest.raises(TypeError):
        new_call(SqlCall, route="r", kind="sql", caller=caller, request=req, nope=1)
    assert new_call(Caller, tenant=None, roles=frozenset(), trace_id="x") == Caller(
        None, frozenset(), "x")  # slotted: the real constructor
