"""The tenant isolation fuzzer again on a real PostgreSQL (the session cluster of
tests/postgres_fixture.py), with PostgreSQL's own table functions and catalogs, ONLY,
TABLESAMPLE and TABLE: the rewritten text on the two-tenant database returns what the
original returns on a database holding the caller's rows only, and nothing changes."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.config.schema import SqlSpec
from proxy.sql.engine import SqlGuard
from proxy.sql.policy import SqlPolicy
from tests.sql.tenant_cases import ROWS, SCHEMA, TENANT_TABLES, sorted_rows
from tests.sql.test_tenant_fuzz import IDS, NAMES, Vocabulary, statement

GUARD = SqlGuard(SqlPolicy.from_spec(SqlSpec(
    dialect="postgres", tenant={"column": "tenant_id", "tables": list(TENANT_TABLES)})))
TENANTS = ("t1", "t2")
POSTGRES = Vocabulary(
    functions=("generate_series(1, 3) g(id)", "unnest(ARRAY[1, 2]) u(id)",
               "json_each('{\"a\": 1}') j", "query_to_xml('SELECT * FROM orders', true, true, '')",
               "dblink('dbname=x', 'SELECT 1') d(id int)", "pg_ls_dir('.') f(id)",
               "current_setting('server_version') s(id)"),
    catalogs=("pg_stats", "pg_catalog.pg_stats", "pg_class", "information_schema.tables",
              "information_schema.columns", "pg_stat_user_tables", "pg_catalog.pg_attribute"),
    tables=("ONLY {t}", "{t} TABLESAMPLE BERNOULLI (100)", "(TABLE {t}) tt"),
)


def _db(admin_dsn: str, name: str, only: str | None) -> psycopg.Connection:
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.execute(f"CREATE DATABASE {name}")
    con = psycopg.connect(admin_dsn.rsplit("/", 1)[0] + "/" + name, autocommit=True)
    for ddl in SCHEMA:
        con.execute(ddl)
    with con.cursor() as cur:
        for table, rows in ROWS.items():
            keep = [r for r in rows if only is None or table not in TENANT_TABLES or r[1] == only]
            if keep:
                marks = ", ".join(["%s"] * len(keep[0]))
                cur.executemany(f"INSERT INTO {table} VALUES ({marks})", keep)
    con.execute("ANALYZE")  # pg_stats now holds every tenant's values
    return con


@pytest.fixture(scope="module")
def dbs(postgres_dsn: str) -> Iterator[dict[str | None, psycopg.Connection]]:
    cons = {t: _db(postgres_dsn, f"cw_fuzz_{t or 'all'}", t) for t in (None, *TENANTS)}
    yield cons
    for con in cons.values():
        con.close()


def run(con: psycopg.Connection, sql: str) -> list[tuple[object, ...]] | None:
    try:
        with con.cursor() as cur:
            cur.execute(sql.encode())
            return cur.fetchall() if cur.description else []
    except psycopg.Error:
        return None


def snapshot(con: psycopg.Connection) -> list[object]:
    tables = run(con, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
    return [tables, *(sorted_rows(run(con, f"SELECT * FROM {t}") or []) for t in NAMES)]


def test_no_other_tenant_row_and_no_change_on_postgres(
    dbs: dict[str | None, psycopg.Connection],
) -> None:
    full = dbs[None]
    before = snapshot(full)

    def check(sql: str, tenant: str) -> None:
        d = GUARD.judge(sql, tenant)
        if d.code is None:
            got = run(full, d.sql)
            others = IDS - {tenant}
            for row in got or ():
                assert not any(o in str(v) for v in row for o in others), (sql, d.sql)
            if got is not None and not sql.startswith("EXPLAIN"):
                want = run(dbs[tenant], sql) or []
                assert sorted_rows(got) == sorted_rows(want), (sql, d.sql)
        assert snapshot(full) == before, (sql, d.sql)

    # Each item of the vocabulary alone first, then in random company.
    for item in (*POSTGRES.functions, *POSTGRES.catalogs,
                 *(t.format(t=n) for t in POSTGRES.tables for n in NAMES)):
        for tenant in TENANTS:
            check(f"SELECT * FROM {item}", tenant)

    @settings(max_examples=150, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow])
    @given(sql=statement(POSTGRES), tenant=st.sampled_from(TENANTS))
    def fuzz(sql: str, tenant: str) -> None:
        check(sql, tenant)

    fuzz()
