"""The PostgreSQL wire listener gets libpg_query's judge through the SQL guard: psycopg
and asyncpg against a real PostgreSQL (the listener fixtures of tests/pgwire)."""

from __future__ import annotations

import asyncpg
import psycopg
import pytest

from tests.pgwire.conftest import pg_cluster, proxy_dsn, start  # noqa: F401  (fixtures)

REFUSED = [
    "EXPLAIN ANALYZE DELETE FROM orders; SELECT 1",
    "SELECT txid_current()", "SELECT pg_current_xact_id()", "SELECT lowrite(0, 'x')",
    "SELECT * FROM pg_stats", "SELECT * FROM orders o, pg_stat_user_tables s",
]


async def test_psycopg_reads_pass_and_bypasses_are_refused(start) -> None:  # noqa: F811
    listener = await start(tenant={"startup_parameter": "application_name"},
                           sql={"dialect": "postgres", "read_only": True,
                                "tenant": {"column": "tenant_id", "tables": ["orders"]}})
    dsn = proxy_dsn(listener, application_name="acme")
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        rows = await (await conn.execute("SELECT o.id FROM generate_series(1, 1) g "
                                         "JOIN orders o ON true ORDER BY 1")).fetchall()
        assert [r[0] for r in rows] == [1, 2, 4]
        for sql in REFUSED:
            with pytest.raises(psycopg.Error, match="SQL_BLOCKED"):
                await conn.execute(sql)
        count = await (await conn.execute("SELECT count(*) FROM orders")).fetchone()
        assert count is not None and count[0] == 3


async def test_asyncpg_plain_read_only_route(start) -> None:  # noqa: F811
    listener = await start()
    conn = await asyncpg.connect(host="127.0.0.1", port=listener.port, ssl=False,
                                 database="shop", user="agent")
    try:
        assert await conn.fetchval("SELECT count(*) FROM ONLY orders") == 5
        assert len(await conn.fetch("SELECT * FROM orders TABLESAMPLE BERNOULLI (100)")) == 5
        for sql in ["SELECT txid_current()", "SELECT app_missing.f(1)",
                    "EXPLAIN ANALYZE CREATE TABLE leak AS SELECT * FROM orders"]:
            with pytest.raises(asyncpg.PostgresError, match="SQL_BLOCKED"):
                await conn.fetch(sql)
    finally:
        await conn.close()
