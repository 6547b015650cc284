"""Property: no rewrite leaves a tenant table unfiltered. Oracle: the rewritten query on
the full two-tenant database returns exactly what the original query returns on a
database holding only the caller's rows in the tenant tables (shared tables intact)."""

from __future__ import annotations

import duckdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.config.schema import SqlSpec
from proxy.sql.engine import SqlGuard
from proxy.sql.policy import SqlPolicy
from tests.sql.tenant_cases import TENANT_TABLES, TENANTS, sorted_rows
from tests.sql.test_tenant_duckdb import load

GUARD = SqlGuard(SqlPolicy.from_spec(SqlSpec(
    dialect="duckdb", tenant={"column": "tenant_id", "tables": list(TENANT_TABLES)})))
PICKED = ("t1", "t2", TENANTS[2], TENANTS[5])
FULL = duckdb.connect()
load(FULL)
ONLY = {t: duckdb.connect() for t in PICKED}
for _t, _con in ONLY.items():
    load(_con, only=_t)

TABLES = ("orders", "customers", "items", "products")


@st.composite
def select(draw: st.DrawFn, depth: int, ctes: tuple[str, ...], n: list[int]) -> str:
    """One SELECT of a single column `id`."""
    n[0] += 1
    a = f"a{n[0]}"
    src = draw(st.sampled_from(TABLES + ctes))
    sql = f"SELECT {a}.id FROM {src} {a}"
    for _ in range(draw(st.integers(0, 2 if depth < 2 else 0))):
        n[0] += 1
        b = f"a{n[0]}"
        kind = draw(st.sampled_from(["JOIN", "LEFT JOIN"]))
        sql += f" {kind} {draw(st.sampled_from(TABLES + ctes))} {b} ON {b}.id = {a}.id"
    where = draw(st.sampled_from(["", "in", "exists", "cmp"] if depth < 2 else ["", "cmp"]))
    if where == "in":
        sql += f" WHERE {a}.id IN ({draw(select(depth + 1, ctes, n))})"
    elif where == "exists":
        n[0] += 1
        c = f"a{n[0]}"
        sql += (f" WHERE EXISTS (SELECT 1 FROM {draw(st.sampled_from(TABLES + ctes))} {c} "
                f"WHERE {c}.id = {a}.id)")
    elif where == "cmp":
        sql += f" WHERE {a}.id > {draw(st.integers(0, 3))}"
    return sql


@st.composite
def query(draw: st.DrawFn) -> str:
    n = [0]
    names: tuple[str, ...] = ()
    parts = []
    for name in draw(st.lists(st.sampled_from(["orders", "x", "customers", "y"]),
                              max_size=2, unique=True)):
        parts.append(f"{name} AS ({draw(select(1, names, n))})")
        names += (name,)
    body = draw(select(0, names, n))
    if draw(st.booleans()):
        op = draw(st.sampled_from(["UNION", "UNION ALL", "EXCEPT", "INTERSECT"]))
        body += f" {op} {draw(select(1, names, n))}"
    return (f"WITH {', '.join(parts)} " if parts else "") + body


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sql=query(), tenant=st.sampled_from(PICKED))
def test_rewrite_equals_query_on_tenant_only_data(sql: str, tenant: str) -> None:
    decision = GUARD.judge(sql, tenant)
    assert decision.code is None, decision.reason
    got = FULL.execute(decision.sql).fetchall()
    assert sorted_rows(got) == sorted_rows(ONLY[tenant].execute(sql).fetchall()), decision.sql
