"""User functions judged by the upstream's catalog on the wire (issue 30 item 2): real
PostgreSQL, real drivers (psycopg, asyncpg), functions created for real."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import asyncpg
import psycopg
import pytest

from proxy.pgwire.catalog import CatalogError, fetch_user_functions
from proxy.sql.pg.userfns import UserFunctions
from tests.pgwire.conftest import Start, proxy_dsn
from tests.pgwire.pgkit import PASSWORDS, PgCluster

FUNCTIONS = """
CREATE OR REPLACE FUNCTION cw_total() RETURNS numeric LANGUAGE sql STABLE
    AS $$ SELECT sum(amount) FROM orders $$;
CREATE OR REPLACE FUNCTION cw_double(x int) RETURNS int LANGUAGE plpgsql IMMUTABLE
    AS $$ BEGIN RETURN 2 * x; END $$;
CREATE OR REPLACE FUNCTION cw_note(t text) RETURNS int LANGUAGE plpgsql VOLATILE
    AS $$ BEGIN INSERT INTO notes(body) VALUES (t); RETURN 1; END $$;
CREATE OR REPLACE FUNCTION cw_pick() RETURNS float8 LANGUAGE sql VOLATILE
    AS $$ SELECT 4.0::float8 $$;
CREATE OR REPLACE FUNCTION cw_hidden() RETURNS int LANGUAGE plpgsql STABLE
    AS $$ BEGIN RETURN cw_note('stable wrapper'); END $$;
CREATE OR REPLACE VIEW cw_noting AS SELECT cw_note('view') AS n;
"""


@pytest.fixture(scope="module")
def functions(pg_cluster: PgCluster) -> Iterator[PgCluster]:
    with psycopg.connect(pg_cluster.dsn("app"), autocommit=True) as conn:
        conn.execute(FUNCTIONS)
    yield pg_cluster


def notes(cluster: PgCluster) -> list[str]:
    with psycopg.connect(cluster.dsn("app"), autocommit=True) as conn:
        return [r[0] for r in conn.execute("SELECT body FROM notes ORDER BY id").fetchall()]


async def test_catalog_read_types_the_functions(functions: PgCluster) -> None:
    table = await fetch_user_functions("127.0.0.1", functions.port, "disable", "shop", "app",
                                       PASSWORDS["app"])
    assert {"cw_total", "public.cw_total", "cw_double"} <= table.reads_only
    assert table.lookup("public.cw_note", "cw_note", True) == "volatile"
    assert table.lookup("cw_pick", "cw_pick", False) == "volatile"
    assert table.lookup("now", "now", False) is None  # built-ins are not read
    with pytest.raises(CatalogError) as err:
        await fetch_user_functions("127.0.0.1", functions.port, "disable", "shop", "app",
                                   "wrong-password")
    assert "wrong-password" not in str(err.value)


async def test_psycopg_stable_passes_volatile_refused(start: Start,
                                                      functions: PgCluster) -> None:
    listener = await start()
    before = notes(functions)
    async with await psycopg.AsyncConnection.connect(proxy_dsn(listener),
                                                     autocommit=True) as conn:
        cur = await conn.execute("SELECT cw_total(), public.cw_double(21)")
        assert await cur.fetchone() == (pytest.approx(139.75), 42)
        with pytest.raises(psycopg.errors.InsufficientPrivilege,
                           match="cw_note is a user function that may write"):
            await conn.execute("SELECT cw_note('x')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="cw_pick"):
            await conn.execute("SELECT cw_pick()")
        # SECURITY: a view is a relation; what it runs is PostgreSQL's to stop (read-only
        # session), as is a STABLE function calling a VOLATILE one.
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            await conn.execute("SELECT * FROM cw_noting")
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            await conn.execute("SELECT cw_hidden()")
    assert notes(functions) == before


async def test_asyncpg_stable_passes_volatile_refused(start: Start,
                                                      functions: PgCluster) -> None:
    listener = await start()
    before = notes(functions)
    conn = await asyncpg.connect(host="127.0.0.1", port=listener.port, user="agent",
                                 database="shop", ssl=False)
    try:
        assert await conn.fetchval("SELECT cw_double($1::int)", 5) == 10
        assert await conn.fetchval("SELECT cw_total()") == pytest.approx(139.75)
        with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError,
                           match="cw_note is a user function that may write"):
            await conn.fetchval("SELECT cw_note($1)", "y")
        with pytest.raises(asyncpg.exceptions.ReadOnlySQLTransactionError):
            await conn.fetch("SELECT * FROM cw_noting")
    finally:
        await conn.close()
    assert notes(functions) == before


async def test_allowed_by_name_passes(start: Start, functions: PgCluster) -> None:
    listener = await start(sql={"functions": {"allow": ["cw_pick"]}})
    async with await psycopg.AsyncConnection.connect(proxy_dsn(listener),
                                                     autocommit=True) as conn:
        assert await (await conn.execute("SELECT cw_pick()")).fetchone() == (4.0,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="cw_note"):
            await conn.execute("SELECT cw_note('z')")


async def test_tenant_route_keeps_refusing_user_functions(start: Start,
                                                          functions: PgCluster) -> None:
    """A function's body reads tables no tenant predicate reaches."""
    listener = await start(sql={"tenant": {"column": "tenant_id", "tables": ["orders"]}},
                           tenant={"startup_parameter": "application_name"})
    async with await psycopg.AsyncConnection.connect(
            proxy_dsn(listener, application_name="acme"), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege,
                           match="function cw_total is not a PostgreSQL built-in"):
            await conn.execute("SELECT cw_total()")


async def test_unreadable_catalog_refuses_and_says_so(
        start: Start, functions: PgCluster, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from proxy.pgwire import listener as listener_module

    async def broken(*args: object, **kw: object) -> UserFunctions:
        raise CatalogError("timeout", "no answer within 5 s")

    monkeypatch.setattr(listener_module, "fetch_user_functions", broken)
    seen: list[tuple[str, str]] = []
    listener = await start()
    listener._on_catalog = lambda route, outcome: seen.append((route, outcome))
    caplog.set_level(logging.WARNING, "callwarden.pgwire")
    async with await psycopg.AsyncConnection.connect(proxy_dsn(listener),
                                                     autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege,
                           match="catalog could not be read"):
            await conn.execute("SELECT cw_total()")
        assert await (await conn.execute("SELECT 1")).fetchone() == (1,)
    assert seen == [("wh", "timeout")]
    assert "cannot read user functions" in caplog.text


async def test_one_read_per_database_and_reload_reads_again(
        start: Start, functions: PgCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    from proxy.pgwire import listener as listener_module

    calls: list[str] = []
    real = listener_module.fetch_user_functions

    async def counted(*args: object, **kw: object) -> UserFunctions:
        calls.append(str(args[3]))
        return await real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(listener_module, "fetch_user_functions", counted)
    listener = await start()

    async def one() -> None:
        async with await psycopg.AsyncConnection.connect(proxy_dsn(listener)) as conn:
            await conn.execute("SELECT cw_total()")

    await asyncio.gather(*(one() for _ in range(4)))
    assert calls == ["shop"]
    listener.replace_route(listener.ctx.compiled)
    await one()
    assert calls == ["shop", "shop"]
