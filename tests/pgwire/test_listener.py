"""The listener between real clients (psql, psycopg 3, asyncpg) and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import struct
from collections.abc import Callable
from decimal import Decimal

import asyncpg
import psycopg
import pytest

from proxy.model.errors import ErrorCode
from proxy.pgwire import StatementRecord
from proxy.pgwire import messages as m
from tests.pgwire.conftest import Start, proxy_dsn
from tests.pgwire.pgkit import PASSWORDS, PgCluster, RawClient, compiled_route

ORDERS = "SELECT id, tenant_id, amount FROM orders ORDER BY id"
SLOW = "SELECT count(*) FROM generate_series(1, 2000000000)"


async def psql(dsn: str, *commands: str, env: dict[str, str] | None = None,
               ) -> tuple[int, str, str]:
    args = ["psql", dsn, "-X", "-At", "-v", "VERBOSITY=verbose"]
    for c in commands:
        args += ["-c", c]
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {}), "PGCONNECT_TIMEOUT": "10"},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


# --- psql ------------------------------------------------------------------------------

async def test_psql_same_results_blocked_then_usable(start: Start, pg_cluster: PgCluster) -> None:
    listener = await start()
    rc, direct, _ = await psql(pg_cluster.dsn(), ORDERS)
    assert rc == 0 and direct.count("\n") == 5
    rc, proxied, err = await psql(proxy_dsn(listener), ORDERS)
    assert (rc, proxied, err) == (0, direct, "")
    rc, out, err = await psql(proxy_dsn(listener), "DELETE FROM orders", "SELECT 41 + 1")
    assert "SQL_BLOCKED" in err and "42501" in err
    assert out == "42\n"  # same connection, next statement fine
    rc, out, err = await psql(proxy_dsn(listener), "SELECT 1; SELECT 2")
    assert rc == 1 and "SQL_BLOCKED" in err and out == ""


async def test_psql_client_password_scram(start: Start) -> None:
    listener = await start(postgres={"client_auth": "password"}, client_password="agent-pw")
    rc, out, err = await psql(proxy_dsn(listener), "SELECT 7", env={"PGPASSWORD": "agent-pw"})
    assert (rc, out) == (0, "7\n"), err
    rc, out, err = await psql(proxy_dsn(listener), "SELECT 7", env={"PGPASSWORD": "wrong"})
    assert rc != 0 and "AUTH_FAILED" in err and "agent-pw" not in err


# --- psycopg 3 -------------------------------------------------------------------------

async def test_psycopg_results_blocked_prepared(start: Start, pg_cluster: PgCluster) -> None:
    listener = await start()
    async with await psycopg.AsyncConnection.connect(pg_cluster.dsn()) as direct:
        expected = await (await direct.execute(ORDERS)).fetchall()
    async with await psycopg.AsyncConnection.connect(proxy_dsn(listener)) as conn:
        assert await (await conn.execute(ORDERS)).fetchall() == expected
        for _ in range(3):  # server-side prepared: Parse once, then Bind/Execute by name
            cur = await conn.execute("SELECT amount FROM orders WHERE id = %s", [2],
                                     prepare=True)
            assert await cur.fetchall() == [(Decimal(20),)]
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="SQL_BLOCKED"):
            await conn.execute("UPDATE orders SET amount = 0 WHERE id = %s", [1], prepare=True)
        await conn.rollback()
        assert await (await conn.execute("SELECT %s::int + 1", [1])).fetchone() == (2,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            await conn.execute("DROP TABLE orders")
        await conn.rollback()
        assert await (await conn.execute(ORDERS)).fetchall() == expected


async def test_psycopg_pipeline(start: Start) -> None:
    listener = await start()
    async with await psycopg.AsyncConnection.connect(proxy_dsn(listener),
                                                     autocommit=True) as conn:
        async with conn.pipeline() as p:
            c1 = await conn.execute("SELECT 1")
            c2 = await conn.execute("SELECT %s::text", ["two"])
            await p.sync()
            assert await c1.fetchone() == (1,)
            assert await c2.fetchone() == ("two",)
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="SQL_BLOCKED"):
            async with conn.pipeline():
                ok = await conn.execute("SELECT 'before'")
                await conn.execute("DELETE FROM orders")
                await conn.execute("SELECT 'after'")
        assert await ok.fetchone() == ("before",)
        async with conn.pipeline():
            cur = await conn.execute("SELECT count(*) FROM orders")
        assert await cur.fetchone() == (5,)


async def test_copy_refused_on_read_only(start: Start) -> None:
    listener = await start()
    async with await psycopg.AsyncConnection.connect(proxy_dsn(listener),
                                                     autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="COPY"):
            async with conn.cursor().copy("COPY orders TO STDOUT") as copy:
                async for _ in copy:
                    pass
        assert await (await conn.execute("SELECT 3")).fetchone() == (3,)


# --- asyncpg (extended protocol for everything) -----------------------------------------

async def test_asyncpg_results_blocked(start: Start, pg_cluster: PgCluster) -> None:
    listener = await start()
    direct = await asyncpg.connect(host="127.0.0.1", port=pg_cluster.port, user="app",
                                   password=PASSWORDS["app"], database="shop", ssl=False)
    expected = [tuple(r) for r in await direct.fetch(ORDERS)]
    await direct.close()
    conn = await asyncpg.connect(host="127.0.0.1", port=listener.port, user="agent",
                                 database="shop")  # ssl=prefer: the proxy answers 'N'
    try:
        assert [tuple(r) for r in await conn.fetch(ORDERS)] == expected
        assert await conn.fetchval("SELECT $1::int * 2", 21) == 42
        with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError, match="SQL_BLOCKED"):
            await conn.execute("DELETE FROM orders WHERE id = $1", 1)
        assert await conn.fetchval("SELECT count(*) FROM orders") == 5
        async with conn.transaction():
            with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
                await conn.fetch("INSERT INTO orders VALUES (9, 'x', 1) RETURNING id")
            assert await conn.fetchval("SELECT 5") == 5
    finally:
        await conn.close()


async def test_many_concurrent_connections(start: Start) -> None:
    listener = await start()

    async def one(i: int) -> int:
        conn = await asyncpg.connect(host="127.0.0.1", port=listener.port, user="agent",
                                     database="shop", ssl=False)
        try:
            total = 0
            for j in range(5):
                total += await conn.fetchval("SELECT $1::int + $2::int", i, j)
            return total
        finally:
            await conn.close()

    results = await asyncio.gather(*(one(i) for i in range(50)))
    assert results == [5 * i + 10 for i in range(50)]


# --- tenants ---------------------------------------------------------------------------

TENANT_SQL = {"dialect": "postgres", "read_only": True,
              "tenant": {"column": "tenant_id", "tables": ["orders"]}}


@pytest.mark.parametrize(
    ("parameter", "connect_extra"),
    [
        ("application_name", lambda t: {"application_name": t}),
        ("options", lambda t: {"options": f"'-c callwarden.tenant={t}'"}),
        ("user", lambda t: {"user": t}),
    ],
)
async def test_tenant_rewrite_exact_rows(start: Start, parameter: str,
                                         connect_extra: Callable[[str], dict[str, str]]) -> None:
    listener = await start(tenant={"startup_parameter": parameter}, sql=TENANT_SQL)
    want = {"acme": [1, 2, 4], "globex": [3, 5], "nobody": []}
    for tenant, ids in want.items():
        dsn = proxy_dsn(listener, **connect_extra(tenant))
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            rows = await (await conn.execute("SELECT id FROM orders ORDER BY id")).fetchall()
            assert [r[0] for r in rows] == ids
            prepared = await conn.execute("SELECT id FROM orders WHERE amount > %s ORDER BY id",
                                          [0], prepare=True)
            assert [r[0] for r in await prepared.fetchall()] == ids
        conn2 = await asyncpg.connect(host="127.0.0.1", port=listener.port, ssl=False,
                                      database="shop", user=connect_extra(tenant).get("user", "a"),
                                      server_settings=_settings(connect_extra(tenant)))
        try:
            assert [r[0] for r in await conn2.fetch("SELECT id FROM orders ORDER BY id")] == ids
            if parameter == "options":  # the proxy's own settings never reach the server
                assert await conn2.fetchval(
                    "SELECT current_setting('callwarden.tenant', true)") is None
        finally:
            await conn2.close()


def _settings(extra: dict[str, str]) -> dict[str, str]:
    return {k: v.strip("'") for k, v in extra.items() if k != "user"}


async def test_missing_tenant_refused(start: Start) -> None:
    listener = await start(tenant={"startup_parameter": "options"}, sql=TENANT_SQL)
    with pytest.raises(psycopg.OperationalError, match="AUTH_FAILED"):
        await psycopg.AsyncConnection.connect(proxy_dsn(listener))


# --- credentials -------------------------------------------------------------------------

@pytest.mark.parametrize("user", ["app", "app_md5", "app_plain"])  # SCRAM, md5, cleartext
async def test_upstream_auth_methods_and_password_never_sent(start: Start, user: str) -> None:
    listener = await start(user=user)
    raw = await RawClient.connect(listener.port, {"user": "agent", "database": "shop"})
    frames = await raw.read_until_ready()
    assert [t for t, _ in frames][:1] == [b"R"] and frames[-1][0] == b"Z"
    reply = await raw.send(m.query("SELECT current_user"))
    assert any(t == b"D" and user.encode() in body for t, body in reply)
    await raw.send(m.query("DELETE FROM orders"))
    await raw.send(m.query("SELECT * FROM pg_settings"))
    raw.close()
    assert PASSWORDS[user].encode() not in raw.received


async def test_wrong_upstream_password_is_not_echoed(start: Start) -> None:
    listener = await start(password="not-the-password")
    with pytest.raises(psycopg.OperationalError) as info:
        await psycopg.AsyncConnection.connect(proxy_dsn(listener))
    assert "AUTH_FAILED" in str(info.value) and "not-the-password" not in str(info.value)
    assert "app" not in str(info.value).replace("AUTH_FAILED", "")


@pytest.mark.parametrize(("sslmode", "encrypted"),
                         [("disable", False), ("prefer", True), ("require", True)])
async def test_tls_to_upstream(start: Start, sslmode: str, encrypted: bool) -> None:
    listener = await start(postgres={"sslmode": sslmode})
    async with await psycopg.AsyncConnection.connect(proxy_dsn(listener)) as conn:
        cur = await conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        assert await cur.fetchone() == (encrypted,)


@pytest.mark.parametrize(
    ("params", "environment", "code"),
    [
        ({"user": "a", "database": "shop", "replication": "database"}, "production",
         "POLICY_DENY"),
        ({"user": "a", "database": "shop", "replication": "true"}, "development", "POLICY_DENY"),
        ({"user": "a", "database": "shop", "password": "hunter2"}, "production", "POLICY_DENY"),
        ({"user": "a", "database": "shop", "options": "-c password=hunter2"}, "production",
         "POLICY_DENY"),
        ({"user": "a", "database": "shop", "password": "hunter2"}, "development", None),
    ],
)
async def test_startup_refusals(start: Start, params: dict[str, str], environment: str,
                                code: str | None) -> None:
    listener = await start(environment=environment)
    raw = await RawClient.connect(listener.port, params)
    frames = await raw.read_until_ready()
    raw.close()
    if code is None:
        assert frames[-1][0] == b"Z"
    else:
        assert frames[-1][0] == b"E" and m.parse_fields(frames[-1][1])["M"].startswith(code)
    assert b"hunter2" not in raw.received


async def test_function_call_refused_then_usable(start: Start) -> None:
    records: list[StatementRecord] = []
    listener = await start(records=records)
    raw = await RawClient.connect(listener.port, {"user": "a", "database": "shop"})
    await raw.read_until_ready()
    call = m.frame(b"F", struct.pack("!ihhh", 2026, 0, 0, 0))  # pg_backend_pid()
    reply = await raw.send(call)
    assert [t for t, _ in reply] == [b"E", b"Z"]
    assert m.parse_fields(reply[0][1])["M"].startswith("SQL_BLOCKED")
    reply = await raw.send(m.query("SELECT 1"))
    assert [t for t, _ in reply] == [b"T", b"D", b"C", b"Z"]
    raw.close()
    assert [(r.message, r.outcome) for r in records] == [("function", "denied"),
                                                         ("query", "allowed")]


# --- timeouts, cancel and limits -----------------------------------------------------------

async def test_route_timeout_cancels_upstream(start: Start) -> None:
    records: list[StatementRecord] = []
    listener = await start(records=records, limits={"timeout_ms": 300})
    async with await psycopg.AsyncConnection.connect(proxy_dsn(listener),
                                                     autocommit=True) as conn:
        with pytest.raises(psycopg.errors.QueryCanceled, match="TOOL_TIMEOUT"):
            await conn.execute(SLOW)
        assert await (await conn.execute("SELECT 'alive'")).fetchone() == ("alive",)
    assert [r.error_code for r in records if r.outcome == "timeout"] == [ErrorCode.TOOL_TIMEOUT]


async def test_client_cancel_request_is_forwarded(start: Start) -> None:
    listener = await start()
    conn = await asyncpg.connect(host="127.0.0.1", port=listener.port, user="a",
                                 database="shop", ssl=False)
    try:
        with pytest.raises(asyncio.TimeoutError):
            await conn.fetchval(SLOW, timeout=0.3)  # asyncpg sends a CancelRequest
        # Without the forwarded cancel the server would still be counting for minutes.
        assert await asyncio.wait_for(conn.fetchval("SELECT 'back'"), 20) == "back"
    finally:
        await conn.close()


async def test_max_connections(start: Start) -> None:
    listener = await start(postgres={"max_connections": 2})
    dsn = proxy_dsn(listener)
    first = await psycopg.AsyncConnection.connect(dsn)
    second = await psycopg.AsyncConnection.connect(dsn)
    with pytest.raises(psycopg.OperationalError, match="too many connections"):
        await psycopg.AsyncConnection.connect(dsn)
    await first.close()
    for _ in range(100):  # the slot frees once the proxy sees the close
        if listener.connections < 2:
            break
        await asyncio.sleep(0.02)
    third = await psycopg.AsyncConnection.connect(dsn)
    await third.close()
    await second.close()


async def test_records_for_allowed_denied_rewritten(start: Start) -> None:
    records: list[StatementRecord] = []
    listener = await start(records=records, tenant={"startup_parameter": "application_name"},
                           sql=TENANT_SQL)
    dsn = proxy_dsn(listener, application_name="acme")
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("SELECT id FROM orders")
        with pytest.raises(psycopg.Error):
            await conn.execute("DELETE FROM orders")
    got = [(r.tenant, r.outcome, r.rewritten, r.error_code) for r in records]
    assert got == [("acme", "allowed", True, None),
                   ("acme", "denied", False, ErrorCode.SQL_BLOCKED)]
    assert all("DELETE" not in r.reason or r.outcome == "denied" for r in records)


@pytest.mark.parametrize(
    ("sql", "error", "sqlstate"),
    [
        ("SELEC id FROM orders", psycopg.errors.SyntaxError, "42601"),  # guard cannot parse
        ("SELECT pg_sleep(0)", psycopg.errors.InsufficientPrivilege, "42501"),
        ("SELECT 1; SELECT 2", psycopg.errors.InsufficientPrivilege, "42501"),
        ("SET ROLE postgres", psycopg.errors.InsufficientPrivilege, "42501"),
        ("SELECT 1/0", psycopg.errors.DivisionByZero, "22012"),  # the server's own error
    ],
)
async def test_errors_keep_connection_usable(start: Start, sql: str, error: type[Exception],
                                             sqlstate: str) -> None:
    listener = await start()
    async with await psycopg.AsyncConnection.connect(proxy_dsn(listener)) as conn:
        for _ in range(2):
            with pytest.raises(error) as info:
                await conn.execute(sql)
            assert info.value.sqlstate == sqlstate  # type: ignore[attr-defined]
            await conn.rollback()
            assert await (await conn.execute("SELECT 'ok'")).fetchone() == ("ok",)


async def test_large_results_stream_through(start: Start, pg_cluster: PgCluster) -> None:
    listener = await start()
    queries = ["SELECT g, repeat('y', 100) FROM generate_series(1, 20000) g",
               "SELECT repeat('x', 3000000)"]
    for q in queries:
        async with await psycopg.AsyncConnection.connect(pg_cluster.dsn()) as direct:
            expected = await (await direct.execute(q)).fetchall()
        async with await psycopg.AsyncConnection.connect(proxy_dsn(listener)) as conn:
            assert await (await conn.execute(q)).fetchall() == expected
            assert await (await conn.execute("SELECT 1")).fetchone() == (1,)


async def test_asyncpg_pool_and_scram_client_login(start: Start) -> None:
    listener = await start(postgres={"client_auth": "password"}, client_password="pool-pw")
    pool = await asyncpg.create_pool(host="127.0.0.1", port=listener.port, user="a",
                                     password="pool-pw", database="shop", ssl=False,
                                     min_size=2, max_size=2)
    try:
        for i in range(6):  # each release runs asyncpg's multi-statement reset query
            async with pool.acquire() as conn:
                assert await conn.fetchval("SELECT $1::int", i) == i
    finally:
        await pool.close()
    with pytest.raises(asyncpg.exceptions.InvalidPasswordError):
        await asyncpg.connect(host="127.0.0.1", port=listener.port, user="a",
                              password="wrong", database="shop", ssl=False)


async def test_replace_route_applies_to_new_connections(start: Start) -> None:
    listener = await start()
    async with await psycopg.AsyncConnection.connect(proxy_dsn(listener)) as old:
        spec = listener.route.model_dump(exclude_none=True)
        spec["sql"] = {"dialect": "postgres", "read_only": True, "blocked_functions": ["abs"]}
        listener.replace_route(compiled_route(spec))
        assert await (await old.execute("SELECT abs(-1)")).fetchone() == (1,)
        async with await psycopg.AsyncConnection.connect(proxy_dsn(listener)) as new:
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="abs"):
                await new.execute("SELECT abs(-1)")
