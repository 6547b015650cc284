"""Wire statements through the route's compiled guard chain (no sockets)."""

from __future__ import annotations

import dataclasses
from typing import Any

from proxy.model.errors import ErrorCode
from proxy.pgwire.chain import judge_caller, judge_statement, wire_caller
from tests.pgwire.pgkit import compiled_route

TENANT = {"column": "tenant_id", "tables": ["orders"]}


def route(mode: str = "enforce", **over: Any) -> Any:
    spec = {"name": "wh", "kind": "postgres", "listen": "127.0.0.1:0",
            "upstream": "127.0.0.1:5432", "tenant": {"startup_parameter": "application_name"},
            "sql": {"dialect": "postgres", "read_only": True, "tenant": TENANT}, **over}
    return compiled_route(spec, mode)


ACME = wire_caller("acme", None, "127.0.0.1")


async def test_rewrite_and_refusal() -> None:
    r = route()
    got = await judge_statement(r, ACME, "SELECT id FROM orders", "production", "query")
    assert got.outcome.code is None and got.outcome.rewritten
    assert "tenant_id" in got.outcome.sql
    got = await judge_statement(r, ACME, "DELETE FROM orders", "production", "query")
    assert (got.outcome.code, got.outcome.guard) == (ErrorCode.SQL_BLOCKED, "sql_safety")


async def test_audit_mode_forwards_unchanged_and_says_who_would_deny() -> None:
    got = await judge_statement(route("audit"), ACME, "DELETE FROM orders", "production", "q")
    assert got.outcome.code is None and got.outcome.sql == "DELETE FROM orders"
    assert [g for g, _, _ in got.outcome.would_deny] == ["sql_safety", "tenant_scope"]


async def test_unparseable_is_a_syntax_error() -> None:
    got = await judge_statement(route(), ACME, "SELEC 1 FRM", "production", "query")
    assert (got.outcome.code, got.outcome.sqlstate) == (ErrorCode.SQL_BLOCKED, "42601")


async def test_a_failing_guard_refuses() -> None:
    class Broken:
        name = "sql_safety"

        async def check(self, call: Any, ctx: Any) -> Any:
            raise RuntimeError("boom")

    r = dataclasses.replace(route(), chain=(Broken(),))
    got = await judge_statement(r, ACME, "SELECT 1", "production", "query")
    assert got.outcome.code is ErrorCode.INTERNAL_ERROR


async def test_caller_guards_at_connect() -> None:
    nobody = wire_caller(None, None, "127.0.0.1")
    assert (await judge_caller(route(), nobody, "production")).code is ErrorCode.AUTH_FAILED
    assert (await judge_caller(route(), ACME, "production")).code is None
    r = route(access={"roles": ["analyst"]})
    assert (await judge_caller(r, ACME, "production")).code is ErrorCode.PERMISSION_DENIED
    analyst = wire_caller("acme", "analyst", "127.0.0.1")
    assert (await judge_caller(r, analyst, "production")).code is None
    audited = await judge_caller(route("audit", access={"roles": ["analyst"]}), ACME, "x")
    assert audited.code is None and audited.would_deny[0][0] == "access"
