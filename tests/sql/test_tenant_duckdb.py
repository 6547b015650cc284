"""Tenant rewrites executed on DuckDB against a two-tenant fixture: the rewritten query
must return exactly the rows of the hand-filtered reference."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import pytest

from proxy.config.schema import SqlSpec
from proxy.model.errors import ErrorCode
from proxy.sql.engine import SqlGuard
from proxy.sql.policy import SqlPolicy
from tests.sql.tenant_cases import CASES, ROWS, SCHEMA, TENANT_TABLES, TENANTS, sorted_rows


def load(con: duckdb.DuckDBPyConnection, only: str | None = None) -> None:
    for ddl in SCHEMA:
        con.execute(ddl)
    for table, rows in ROWS.items():
        keep = [r for r in rows if only is None or table not in TENANT_TABLES or r[1] == only]
        if keep:
            marks = ", ".join("?" * len(keep[0]))
            con.executemany(f"INSERT INTO {table} VALUES ({marks})", keep)


@pytest.fixture(scope="module")
def db() -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect()
    load(con)
    yield con
    con.close()


def guard(dialect: str = "duckdb", **kw: object) -> SqlGuard:
    spec = SqlSpec(dialect=dialect, tenant={"column": "tenant_id", "tables": list(TENANT_TABLES)},
                   **kw)  # type: ignore[arg-type]
    return SqlGuard(SqlPolicy.from_spec(spec))


GUARD = guard()


@pytest.mark.parametrize("tenant", TENANTS)
@pytest.mark.parametrize(("name", "query", "reference"), CASES, ids=[c[0] for c in CASES])
def test_rewrite_matches_hand_filtered(
    db: duckdb.DuckDBPyConnection, name: str, query: str, reference: str, tenant: str
) -> None:
    query = query.replace("{schema}", "main")
    decision = GUARD.judge(query, tenant)
    assert decision.code is None, decision.reason
    got = db.execute(decision.sql).fetchall()
    want = db.execute(reference, [tenant] * reference.count("?")).fetchall()
    assert sorted_rows(got) == sorted_rows(want)
    assert decision.rewritten == (name != "cte_shadows_table")


def test_fixture_really_has_two_tenants(db: duckdb.DuckDBPyConnection) -> None:
    everything = db.execute("SELECT * FROM orders").fetchall()
    mine = db.execute(GUARD.judge("SELECT * FROM orders", "t1").sql).fetchall()
    assert 0 < len(mine) < len(everything)


def test_unknown_tenant_sees_nothing(db: duckdb.DuckDBPyConnection) -> None:
    sql = GUARD.judge("SELECT o.id FROM orders o JOIN items i ON i.order_id = o.id", "nobody").sql
    assert db.execute(sql).fetchall() == []


def test_max_rows_caps_outer_query(db: duckdb.DuckDBPyConnection) -> None:
    g = guard(max_rows=2)
    for sql in ("SELECT * FROM orders", "SELECT * FROM orders LIMIT 50",
                "SELECT id FROM orders UNION ALL SELECT id FROM items"):
        assert len(db.execute(g.judge(sql, "t1").sql).fetchall()) == 2
    assert len(db.execute(g.judge("SELECT * FROM orders LIMIT 1", "t1").sql).fetchall()) == 1


WRITE_GUARD = guard(read_only=False)


@pytest.fixture
def fresh() -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect()
    load(con)
    yield con
    con.close()


def by_tenant(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[object, ...]]]:
    out: dict[str, list[tuple[object, ...]]] = {}
    for row in con.execute("SELECT tenant_id, id, amount FROM orders ORDER BY id").fetchall():
        out.setdefault(row[0], []).append(row)
    return out


@pytest.mark.parametrize("tenant", ["t1", TENANTS[2]])
def test_update_and_delete_touch_only_the_tenant(
    fresh: duckdb.DuckDBPyConnection, tenant: str
) -> None:
    before = by_tenant(fresh)
    up = WRITE_GUARD.judge("UPDATE orders SET amount = amount + 1000 WHERE status = 'open' "
                           "OR status = 'paid'", tenant)
    assert up.code is None and up.rewritten and not up.read_only
    fresh.execute(up.sql)
    after = by_tenant(fresh)
    for t, rows in before.items():
        delta = 1000 if t == tenant else 0
        assert after[t] == [(r[0], r[1], r[2] + delta) for r in rows]
    gone = WRITE_GUARD.judge("DELETE FROM orders WHERE amount > 0", tenant)
    fresh.execute(gone.sql)
    left = by_tenant(fresh)
    assert tenant not in left and set(left) == set(before) - {tenant}


def test_insert_must_carry_the_callers_tenant(fresh: duckdb.DuckDBPyConnection) -> None:
    sql = ("INSERT INTO orders (id, tenant_id, customer_id, amount, status) "
           "VALUES (9, 't1', 1, 1, 'x')")
    ok = WRITE_GUARD.judge(sql, "t1")
    assert ok.code is None
    fresh.execute(ok.sql)
    assert WRITE_GUARD.judge(sql, "t2").code is ErrorCode.TENANT_MISMATCH
    assert WRITE_GUARD.judge(sql.replace("'t1'", "'t2'"), "t1").code is ErrorCode.TENANT_MISMATCH
    for bad in ("INSERT INTO orders VALUES (9, 't1', 1, 1, 'x')",
                "INSERT INTO orders (id, amount) VALUES (9, 1)",
                "INSERT INTO orders (id, tenant_id) SELECT id, tenant_id FROM orders",
                "INSERT INTO orders (id, tenant_id) VALUES (1, 't1'), (2, lower('T1'))",
                "UPDATE orders SET tenant_id = 't2' WHERE id = 1",
                "MERGE INTO orders o USING products p ON o.id = p.id WHEN MATCHED THEN DELETE"):
        assert WRITE_GUARD.judge(bad, "t1").code is ErrorCode.TENANT_MISMATCH, bad


def test_insert_select_from_tenant_table_is_filtered(fresh: duckdb.DuckDBPyConnection) -> None:
    fresh.execute("CREATE TABLE archive (id INT, amount INT)")
    d = WRITE_GUARD.judge("INSERT INTO archive SELECT id, amount FROM orders", "t2")
    fresh.execute(d.sql)
    assert sorted(fresh.execute("SELECT * FROM archive").fetchall()) == [(1, 100), (4, 200), (5, 5)]
