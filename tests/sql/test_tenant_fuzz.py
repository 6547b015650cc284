"""Tenant isolation fuzzer: grammar-generated statements (table functions, catalogs, set
operations, CTEs, LATERAL, subqueries, EXPLAIN, stacked statements, comments) judged on a
read-only tenant route and, when allowed, run as rewritten on DuckDB holding every
tenant's rows. Oracle: the rewritten text on the full database returns what the
original returns on a database holding the caller's rows only; no cell carries another
tenant's id; no data or table ever changes. Bounded for CI (a few seconds)."""

from __future__ import annotations

from typing import NamedTuple

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.config.schema import SqlSpec
from proxy.sql.engine import SqlGuard
from proxy.sql.policy import SqlPolicy
from tests.sql.tenant_cases import ROWS, TENANT_TABLES, sorted_rows
from tests.sql.test_tenant_duckdb import load

GUARD = SqlGuard(SqlPolicy.from_spec(SqlSpec(
    dialect="duckdb", tenant={"column": "tenant_id", "tables": list(TENANT_TABLES)})))
TENANTS = ("t1", "t2")
FULL = duckdb.connect()
load(FULL)
ONLY = {t: duckdb.connect() for t in TENANTS}
for _t, _con in ONLY.items():
    load(_con, only=_t)
IDS = {r[1] for t in TENANT_TABLES for r in ROWS[t]}  # every tenant id in the data

NAMES = ("orders", "customers", "items", "products")
FUNCTIONS = (  # table functions: those that can read a table must never pass
    "query_table('orders')", "query_table(['orders', 'items'])",
    "query('SELECT * FROM orders')", "read_csv('orders.csv')", "generate_series(1, 3) g(id)",
    "range(2) r(id)", "unnest([1, 2]) u(id)", "json_each('[1, 2]')", "glob('*')",
)
CATALOGS = (
    "duckdb_tables()", "duckdb_tables", "duckdb_columns()", "information_schema.tables",
    "information_schema.columns", "sqlite_master", "pg_catalog.pg_class", "pg_class",
    "pragma_table_info('orders')", "system.main.duckdb_tables", "duckdb_views()",
)
COMMENTS = ("", " /* c */", " -- c\n", "/**/")
STACKED = ("DELETE FROM orders", "UPDATE orders SET amount = 0", "DROP TABLE items",
           "CREATE TABLE leak AS SELECT * FROM orders", "INSERT INTO products VALUES (9, 'Z', 'z')",
           "SELECT * FROM orders")


class Vocabulary(NamedTuple):
    functions: tuple[str, ...]
    catalogs: tuple[str, ...]
    tables: tuple[str, ...] = ()  # other FROM items over a table name ({t}: the name)


DUCKDB = Vocabulary(FUNCTIONS, CATALOGS, ("{t} TABLESAMPLE 100%",))


@st.composite
def source(draw: st.DrawFn, voc: Vocabulary, depth: int, ctes: tuple[str, ...],
           n: list[int]) -> str:
    n[0] += 1
    alias = f"s{n[0]}"
    kinds = ["table", "table", "function", "catalog"] + (["subquery", "cte"] if depth < 2 else [])
    kind = draw(st.sampled_from(kinds if ctes else [k for k in kinds if k != "cte"]))
    if kind == "table":
        name = draw(st.sampled_from(NAMES))
        form = draw(st.sampled_from(("{t}", *voc.tables)))
        return f"{form.format(t=name)} {alias}" if form == "{t}" else form.format(t=name)
    if kind == "cte":
        return f"{draw(st.sampled_from(ctes))} {alias}"
    if kind == "function":
        return draw(st.sampled_from(voc.functions))
    if kind == "catalog":
        return draw(st.sampled_from(voc.catalogs))
    return f"({draw(select(voc, depth + 1, ctes, n))}) {alias}"


@st.composite
def select(draw: st.DrawFn, voc: Vocabulary, depth: int, ctes: tuple[str, ...],
           n: list[int]) -> str:
    src = draw(source(voc, depth, ctes, n))
    cols = draw(st.sampled_from(["*", "count(*)", "1 AS one"]))
    sql = f"SELECT {cols} FROM {src}"
    extra = draw(st.sampled_from(["", "join", "lateral", "in", "exists"] if depth < 2 else [""]))
    if extra == "join":
        sql += f", {draw(source(voc, depth + 1, ctes, n))}"
    elif extra == "lateral":
        n[0] += 1
        sql += f", LATERAL (SELECT * FROM {draw(st.sampled_from(NAMES))} l{n[0]}) x{n[0]}"
    elif extra == "in":
        sql += f" WHERE 1 IN ({draw(select(voc, depth + 1, ctes, n))})"
    elif extra == "exists":
        sql += f" WHERE EXISTS ({draw(select(voc, depth + 1, ctes, n))})"
    return sql


@st.composite
def statement(draw: st.DrawFn, voc: Vocabulary = DUCKDB) -> str:
    n = [0]
    ctes: tuple[str, ...] = ()
    parts = []
    for name in draw(st.lists(st.sampled_from(["orders", "c1", "items"]), max_size=2,
                              unique=True)):
        parts.append(f"{name} AS ({draw(select(voc, 1, ctes, n))})")
        ctes += (name,)
    body = draw(select(voc, 0, ctes, n))
    if draw(st.booleans()):
        op = draw(st.sampled_from(["UNION", "UNION ALL", "EXCEPT", "INTERSECT"]))
        other = draw(select(voc, 1, ctes, n))
        body = f"SELECT * FROM ({body}) u1 {op} SELECT * FROM ({other}) u2"
    sql = (f"WITH {', '.join(parts)} " if parts else "") + body
    prefix = draw(st.sampled_from([*[""] * 7, "EXPLAIN ", "EXPLAIN ANALYZE ", "TABLE orders; "]))
    sql = prefix + sql.replace(" FROM ", draw(st.sampled_from(COMMENTS)) + " FROM ", 1)
    if draw(st.integers(0, 9)) == 9:
        sql += f";{draw(st.sampled_from(COMMENTS))} {draw(st.sampled_from(STACKED))}"
    return sql


def snapshot(con: duckdb.DuckDBPyConnection) -> list[object]:
    tables = con.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()
    return [tables, *(sorted_rows(con.execute(f"SELECT * FROM {t}").fetchall()) for t in NAMES)]


BEFORE = snapshot(FULL)


def run(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[object, ...]] | None:
    try:
        return con.execute(sql).fetchall()
    except duckdb.Error:
        return None  # the database refused it: nothing came back


@pytest.mark.parametrize("tenant", TENANTS)
def test_each_vocabulary_item_alone(tenant: str) -> None:
    for item in (*DUCKDB.functions, *DUCKDB.catalogs,
                 *(t.format(t=n) for t in DUCKDB.tables for n in NAMES)):
        test_no_other_tenant_row_and_no_change.hypothesis.inner_test(  # type: ignore[attr-defined]
            f"SELECT * FROM {item}", tenant)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow],
          derandomize=True)
@given(sql=statement(), tenant=st.sampled_from(TENANTS))
def test_no_other_tenant_row_and_no_change(sql: str, tenant: str) -> None:
    d = GUARD.judge(sql, tenant)
    if d.code is None:
        got = run(FULL, d.sql)
        others = IDS - {tenant}
        for row in got or ():
            assert not any(o in str(v) for v in row for o in others), (sql, d.sql)
        if got is not None and not sql.startswith("EXPLAIN"):
            assert sorted_rows(got) == sorted_rows(run(ONLY[tenant], sql) or []), (sql, d.sql)
    assert snapshot(FULL) == BEFORE, (sql, d.sql)
