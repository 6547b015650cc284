"""The tenant rewrite cases again, executed on a real PostgreSQL (the session cluster
from tests/postgres_fixture.py)."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from proxy.config.schema import SqlSpec
from proxy.model.errors import ErrorCode
from proxy.sql.engine import SqlGuard
from proxy.sql.policy import SqlPolicy
from tests.sql.tenant_cases import CASES, ROWS, SCHEMA, TENANT_TABLES, TENANTS, sorted_rows

GUARD = SqlGuard(SqlPolicy.from_spec(SqlSpec(
    dialect="postgres", tenant={"column": "tenant_id", "tables": list(TENANT_TABLES)})))


@pytest.fixture(scope="module")
def pg(postgres_dsn: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS cw_sql_tenant")
        admin.execute("CREATE DATABASE cw_sql_tenant")
    dsn = postgres_dsn.rsplit("/", 1)[0] + "/cw_sql_tenant"
    with psycopg.connect(dsn, autocommit=True) as con:
        for ddl in SCHEMA:
            con.execute(ddl)
        with con.cursor() as cur:
            for table, rows in ROWS.items():
                marks = ", ".join(["%s"] * len(rows[0]))
                cur.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
        yield con


def fetch(con: psycopg.Connection, sql: str, params: list[str] | None = None) -> list[tuple]:
    with con.cursor() as cur:
        cur.execute(sql.encode(), params)  # bytes: no client-side % interpretation
        return cur.fetchall()


@pytest.mark.parametrize("tenant", TENANTS)
@pytest.mark.parametrize(("name", "query", "reference"), CASES, ids=[c[0] for c in CASES])
def test_rewrite_matches_hand_filtered(
    pg: psycopg.Connection, name: str, query: str, reference: str, tenant: str
) -> None:
    decision = GUARD.judge(query.replace("{schema}", "public"), tenant)
    assert decision.code is None, decision.reason
    want = fetch(pg, reference.replace("?", "%s"), [tenant] * reference.count("?"))
    assert sorted_rows(fetch(pg, decision.sql)) == sorted_rows(want)


@pytest.mark.parametrize("setting", ["on", "off"])
def test_backslash_tenant_is_safe_whatever_the_string_setting(
    pg: psycopg.Connection, setting: str
) -> None:
    pg.execute(f"SET standard_conforming_strings = {setting}")
    try:
        for tenant in TENANTS:
            got = fetch(pg, GUARD.judge("SELECT id, tenant_id FROM orders", tenant).sql)
            want = fetch(pg, "SELECT id, tenant_id FROM orders WHERE tenant_id = %s", [tenant])
            assert sorted_rows(got) == sorted_rows(want)
    finally:
        pg.execute("RESET standard_conforming_strings")


def test_blocked_statements_never_reach_the_database(pg: psycopg.Connection) -> None:
    for sql in ("SELECT pg_sleep(0)", "DELETE FROM orders", "SELECT 1; DROP TABLE orders"):
        assert GUARD.judge(sql, "t1").code is ErrorCode.SQL_BLOCKED
