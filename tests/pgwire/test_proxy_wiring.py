"""A postgres route in a full CallWarden process: the listener starts with the HTTP one,
takes its upstream credentials from secret references, and reports every statement in
the same metrics as HTTP calls."""

from __future__ import annotations

import psycopg
import pytest

from tests.pgwire.pgkit import PASSWORDS


def pg_route(cluster) -> dict:
    return {
        "name": "warehouse",
        "kind": "postgres",
        "listen": "127.0.0.1:0",
        "upstream": f"{cluster.host}:{cluster.port}",
        "tenant": {"startup_parameter": "application_name"},
        "credentials": {"user": "${env:CW_TEST_PG_USER}", "password": "${env:CW_TEST_PG_PASSWORD}"},
        "sql": {
            "dialect": "postgres",
            "read_only": True,
            "tenant": {"column": "tenant_id", "tables": ["orders"]},
        },
    }


async def test_postgres_route_in_the_proxy(pg_cluster, write_rules, start_proxy, monkeypatch):
    monkeypatch.setenv("CW_TEST_PG_USER", "app")
    monkeypatch.setenv("CW_TEST_PG_PASSWORD", PASSWORDS["app"])
    px = await start_proxy(write_rules([pg_route(pg_cluster)]))
    port = px.server.ports["postgres:warehouse"]
    dsn = f"host=127.0.0.1 port={port} dbname=shop user=tool application_name=acme sslmode=disable"
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        rows = await (await conn.execute("SELECT id FROM orders ORDER BY id")).fetchall()
        assert rows == [(1,), (2,), (4,)]
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="SQL_BLOCKED"):
            await conn.execute("DELETE FROM orders")
        assert (await (await conn.execute("SELECT count(*) FROM orders")).fetchone()) == (3,)
    labels = {"route": "warehouse", "kind": "postgres"}
    assert px.metric("callwarden_requests_total", outcome="ok", error_code="", **labels) >= 2
    assert (
        px.metric("callwarden_requests_total", outcome="denied", error_code="SQL_BLOCKED", **labels)
        == 1
    )
    assert px.metric("callwarden_sql_inspection_seconds_count", route="warehouse") >= 3


async def test_statement_rate_limit_on_the_wire(pg_cluster, write_rules, start_proxy, monkeypatch):
    monkeypatch.setenv("CW_TEST_PG_USER", "app")
    monkeypatch.setenv("CW_TEST_PG_PASSWORD", PASSWORDS["app"])
    route = pg_route(pg_cluster)
    route["limits"] = {"rate": {"per_minute": 3, "key": "tenant"}}
    px = await start_proxy(write_rules([route]))
    port = px.server.ports["postgres:warehouse"]
    dsn = f"host=127.0.0.1 port={port} dbname=shop user=tool application_name=acme sslmode=disable"
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        for _ in range(3):
            await conn.execute("SELECT 1")
        with pytest.raises(psycopg.errors.ConfigurationLimitExceeded, match="RATE_LIMITED"):
            await conn.execute("SELECT 1")
    other = dsn.replace("application_name=acme", "application_name=globex")
    async with await psycopg.AsyncConnection.connect(other, autocommit=True) as conn:
        assert (await (await conn.execute("SELECT 1")).fetchone()) == (1,)


async def test_catalog_reads_are_counted(pg_cluster, write_rules, start_proxy, monkeypatch):
    """A read-only route without tenants reads the upstream's user functions once."""
    monkeypatch.setenv("CW_TEST_PG_USER", "app")
    monkeypatch.setenv("CW_TEST_PG_PASSWORD", PASSWORDS["app"])
    route = pg_route(pg_cluster)
    del route["tenant"], route["sql"]["tenant"]
    px = await start_proxy(write_rules([route]))
    port = px.server.ports["postgres:warehouse"]
    dsn = f"host=127.0.0.1 port={port} dbname=shop user=tool sslmode=disable"
    for _ in range(2):
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            assert await (await conn.execute("SELECT 1")).fetchone() == (1,)
    assert px.metric("callwarden_pg_catalog_reads_total", route="warehouse", outcome="ok") == 1
