"""sql_safety alone: it refuses what the engine blocks, and shares one typed decision per
text with tenant_scope (CallContext.sql, no string-keyed scratch)."""

from __future__ import annotations

import pytest

from proxy.config.schema import SqlSpec
from proxy.guards.sql_safety import SqlSafetyGuard, sql_decision
from proxy.model.call import Caller, Request, SqlCall, ToolCall, evolve
from proxy.model.errors import ErrorCode
from proxy.model.verdict import ALLOW, Deny
from proxy.sql.engine import SqlGuard
from proxy.sql.policy import SqlPolicy
from tests.guards import kit
from tests.guards.kit import context

ENGINE = SqlGuard(SqlPolicy.from_spec(SqlSpec(
    dialect="postgres", read_only=True, tenant={"column": "tenant_id", "tables": ["orders"]})))


def call(sql: str, tenant: str | None = "acme") -> SqlCall:
    return SqlCall("db", "sql", Caller(tenant, frozenset(), "t"), Request("POST", "/q"), sql=sql)


async def test_refuses_what_the_engine_blocks() -> None:
    guard = SqlSafetyGuard(ENGINE)
    verdict = await guard.check(call("DELETE FROM orders"), context())
    assert isinstance(verdict, Deny) and verdict.code is ErrorCode.SQL_BLOCKED
    assert await guard.check(call("SELECT id FROM orders"), context()) is ALLOW


async def test_a_call_without_sql_passes() -> None:
    plain = ToolCall("db", "sql", Caller("acme", frozenset(), "t"), Request("GET", "/poll"))
    assert await SqlSafetyGuard(ENGINE).check(plain, context()) is ALLOW


def test_one_decision_per_text_and_tenant() -> None:
    ctx = context()
    first = call("SELECT id FROM orders")
    d1 = sql_decision(ENGINE, first, ctx)
    assert ctx.sql is not None and ctx.sql.decision is d1
    assert sql_decision(ENGINE, first, ctx) is d1  # reused
    other = sql_decision(ENGINE, evolve(first, sql="SELECT 1"), ctx)
    assert other is not d1 and ctx.sql.sql == "SELECT 1"  # a changed text is judged anew
    globex = evolve(first, caller=Caller("globex", frozenset(), "t"))
    d3 = sql_decision(ENGINE, globex, ctx)
    assert "'globex'" in d3.sql and "'acme'" not in d3.sql


# --- built from the rules through the guard table --------------------------------------------


@pytest.mark.parametrize(
    ("sql_spec", "sql", "expected"),
    [
        ({}, "SELECT id FROM orders", None),
        ({}, "DELETE FROM orders", "SQL_BLOCKED"),
        ({}, "EXPLAIN ANALYZE DELETE FROM orders", "SQL_BLOCKED"),
        ({}, "SELECT 1; DROP TABLE orders", "SQL_BLOCKED"),
        ({}, "SELEC id FROM orders", "SQL_BLOCKED"),  # unparseable: fails closed
        ({"read_only": False}, "DELETE FROM orders", None),
        ({"read_only": False}, "DROP TABLE orders", "SQL_BLOCKED"),  # block_ddl
        ({"read_only": False, "block_ddl": False}, "DROP TABLE orders", None),
        ({"read_only": False}, "GRANT ALL ON orders TO x", "SQL_BLOCKED"),  # block_dcl
        ({"allowed_tables": ["orders"]}, "SELECT * FROM users", "SQL_BLOCKED"),
        ({"allowed_tables": ["orders"]}, "SELECT * FROM orders", None),
        ({}, "SELECT pg_sleep(10)", "SQL_BLOCKED"),
    ],
)
async def test_rules_table(sql_spec: dict, sql: str, expected: str | None) -> None:
    g = kit.guard("sql_safety", kit.route("sql", sql=sql_spec))
    assert kit.code(await kit.ask(g, kit.sql_call(sql))) == expected


def test_only_sql_and_postgres_routes_get_the_guard() -> None:
    assert kit.build("sql_safety", kit.route()) is None
    assert kit.build("sql_safety", kit.route("postgres", sql={})) is not None
