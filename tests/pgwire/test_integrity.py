"""Issue 22 items 4-6 and issue 30 item 3 on the wire, end to end: a full CallWarden
process, real drivers (psycopg, asyncpg), a real PostgreSQL. Each test fails on the code
before the fix (the exploit ran, the write landed, the mode was ignored)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import asyncpg
import psycopg
import pytest

from proxy.pgwire import messages as m
from tests.pgwire.pgkit import PASSWORDS, PgCluster, RawClient

VICTIM = "wire_victim"


@pytest.fixture
def victim(pg_cluster: PgCluster) -> Iterator[psycopg.Connection]:
    """A table the exploits try to empty, and an admin connection to count its rows."""
    with psycopg.connect(pg_cluster.dsn("postgres"), autocommit=True) as admin:
        admin.execute(f"DROP TABLE IF EXISTS {VICTIM}")
        admin.execute(f"CREATE TABLE {VICTIM} (id int, tenant_id text)")
        admin.execute(f"INSERT INTO {VICTIM} VALUES (1, 'acme'), (2, 'globex')")
        admin.execute(f"GRANT ALL ON {VICTIM} TO app")
        yield admin
        admin.execute(f"DROP TABLE IF EXISTS {VICTIM}")


def rows_left(admin: psycopg.Connection) -> int:
    return admin.execute(f"SELECT count(*) FROM {VICTIM}").fetchone()[0]  # type: ignore[index]


def pg_route(cluster: PgCluster, **over: Any) -> dict[str, Any]:
    route: dict[str, Any] = {
        "name": "warehouse",
        "kind": "postgres",
        "listen": "127.0.0.1:0",
        "upstream": f"{cluster.host}:{cluster.port}",
        "tenant": {"startup_parameter": "application_name"},
        "credentials": {"user": "${env:CW_TEST_PG_USER}",
                        "password": "${env:CW_TEST_PG_PASSWORD}"},
        "postgres": {"database": "shop"},
        "sql": {"dialect": "postgres", "read_only": True,
                "tenant": {"column": "tenant_id", "tables": ["orders", VICTIM]}},
    }
    route.update(over)
    return route


@pytest.fixture
async def proxy(pg_cluster, write_rules, start_proxy, monkeypatch):
    """await proxy(**route overrides) -> (running proxy, its wire port)."""
    monkeypatch.setenv("CW_TEST_PG_USER", "app")
    monkeypatch.setenv("CW_TEST_PG_PASSWORD", PASSWORDS["app"])

    async def start(**over: Any) -> tuple[Any, int]:
        px = await start_proxy(write_rules([pg_route(pg_cluster, **over)]))
        return px, px.server.ports["postgres:warehouse"]

    return start


def dsn(port: int, tenant: str = "acme", **extra: str) -> str:
    parts = {"host": "127.0.0.1", "port": str(port), "dbname": "shop", "user": "tool",
             "application_name": tenant, "sslmode": "disable", **extra}
    return " ".join(f"{k}={v}" for k, v in parts.items())


# SJIS 0x95 0x5C is one character (表): its second byte is a backslash to a UTF-8 reader.
SMUGGLE = f"SELECT E'表'; DELETE FROM {VICTIM}; --'"


# --- issue 22 item 4: the text judged is the text run -------------------------------------

@pytest.mark.parametrize("how", ["client_encoding", "options"])
async def test_multibyte_client_encoding_never_reaches_the_server(proxy, victim, how) -> None:
    _, port = await proxy()
    extra = ({"client_encoding": "SJIS"} if how == "client_encoding"
             else {"options": "'-c client_encoding=SJIS'"})
    try:
        async with await psycopg.AsyncConnection.connect(dsn(port, **extra),
                                                         autocommit=True) as conn:
            await conn.execute(SMUGGLE)
    except psycopg.Error as exc:
        assert "POLICY_DENY" in str(exc) and "UTF8" in str(exc)
    assert rows_left(victim) == 2


@pytest.mark.parametrize("encoding", ["BIG5", "GBK", "sjis", "Shift_JIS", "LATIN1", "SQL_ASCII"])
async def test_only_utf8_is_accepted(proxy, encoding) -> None:
    _, port = await proxy()
    with pytest.raises(psycopg.OperationalError, match="only UTF8"):
        await psycopg.AsyncConnection.connect(dsn(port, client_encoding=encoding))
    async with await psycopg.AsyncConnection.connect(dsn(port, client_encoding="utf-8")) as c:
        assert c.info.encoding == "utf-8"


async def test_the_server_reads_utf8_whatever_the_database_default(proxy, victim) -> None:
    """No client_encoding at all: the session is UTF8 because the proxy says so."""
    _, port = await proxy()
    raw = await RawClient.connect(port, {"user": "tool", "database": "shop",
                                         "application_name": "acme"})
    frames = await raw.read_until_ready()
    status = [b for t, b in frames if t == b"S" and b.startswith(b"client_encoding\0")]
    assert status == [b"client_encoding\0UTF8\0"]
    # invalid UTF-8 (the SJIS bytes) is refused, not "repaired" and forwarded
    reply = await raw.send(m.frame(b"Q", SMUGGLE.encode("sjis") + b"\0"))
    errors = [m.parse_fields(b) for t, b in reply if t == b"E"]
    assert [(e["C"], e["M"].split(":")[0]) for e in errors] == [("22021", "TOOL_BAD_REQUEST")]
    reply = await raw.send(m.query("SELECT 1"))
    assert any(t == b"D" for t, _ in reply)  # the session goes on
    # nothing after the judged text travels with it
    reply = await raw.send(m.frame(b"Q", f"SELECT 1\0DELETE FROM {VICTIM}\0".encode()))
    errors = [m.parse_fields(b) for t, b in reply if t == b"E"]
    assert [(e["C"], e["M"].split(":")[0]) for e in errors] == [("08P01", "TOOL_BAD_REQUEST")]
    raw.close()
    assert rows_left(victim) == 2


@pytest.mark.parametrize("sql", [
    "SET client_encoding TO 'SJIS'", "SET NAMES 'GBK'", "SET SESSION client_encoding = BIG5",
    "SELECT set_config('client_encoding', 'SJIS', false)",
    "SELECT pg_catalog.set_config(U&'client\\005Fencoding', 'SJIS', false)",
    "SET standard_conforming_strings = off",
    "SELECT set_config(lower('CLIENT_ENCODING'), 'SJIS', false)",
])
async def test_statements_that_change_the_lexer_are_refused_in_every_mode(proxy, sql) -> None:
    """Refused by the wire itself, before the guard chain: audit mode does not open it."""
    _, port = await proxy(mode="audit")
    async with await psycopg.AsyncConnection.connect(dsn(port), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="SQL_BLOCKED"):
            await conn.execute(sql)
        enc = await (await conn.execute("SHOW client_encoding")).fetchone()
        scs = await (await conn.execute("SHOW standard_conforming_strings")).fetchone()
        assert (enc, scs) == (("UTF8",), ("on",))


async def test_standard_conforming_strings_off_at_startup_is_refused(proxy, victim) -> None:
    """`'a\\''` is one string with standard strings and a closed one plus a DELETE without."""
    _, port = await proxy()
    sql = f"SELECT 'a\\''; DELETE FROM {VICTIM}; --'"
    try:
        async with await psycopg.AsyncConnection.connect(
            dsn(port, options="'-c standard_conforming_strings=off'"), autocommit=True
        ) as conn:
            await conn.execute(sql)
    except psycopg.Error as exc:
        assert "POLICY_DENY" in str(exc)
    assert rows_left(victim) == 2


async def test_reset_all_and_discard_all_keep_the_proxys_settings(proxy, pg_cluster) -> None:
    sql = {"dialect": "postgres", "read_only": True, "functions": {"allow": ["current_setting"]},
           "tenant": {"column": "tenant_id", "tables": ["orders", VICTIM]}}
    _, port = await proxy(sql=sql)  # current_setting is refused unless a route allows it
    async with await psycopg.AsyncConnection.connect(dsn(port), autocommit=True) as conn:
        for sql in ("RESET ALL", "DISCARD ALL"):
            await conn.execute(sql)
        got = await (await conn.execute(
            "SELECT current_setting('client_encoding'), "
            "current_setting('standard_conforming_strings'), "
            "current_setting('default_transaction_read_only')")).fetchone()
        assert got == ("UTF8", "on", "on")


async def test_a_setting_changed_unseen_ends_the_session(proxy, pg_cluster, victim) -> None:
    """A function the guard cannot see into changes client_encoding: the server reports
    it, and the proxy ends the session before anything else is judged in SJIS."""
    victim.execute("CREATE OR REPLACE VIEW public.sneaky AS "
                   "SELECT set_config('client_encoding', 'SJIS', false) AS s")
    victim.execute("GRANT SELECT ON public.sneaky TO app")
    _, port = await proxy()
    raw = await RawClient.connect(port, {"user": "tool", "database": "shop",
                                         "application_name": "acme"})
    await raw.read_until_ready()
    frames = await raw.send(m.query("SELECT s FROM sneaky"))
    errors = [m.parse_fields(b) for t, b in frames if t == b"E"]
    assert [(e["S"], "left UTF8" in e["M"]) for e in errors] == [("FATAL", True)]
    assert not any(t == b"D" for t, _ in frames)  # no answer read in SJIS
    raw.close()


# --- issue 30 item 3: the database enforces read-only too -----------------------------------

WRITES_PAST_THE_PARSER = "SELECT n FROM bumps"


@pytest.fixture
def bump(victim: psycopg.Connection) -> psycopg.Connection:
    """A view over a function whose body writes: the SQL guard sees a read of a view."""
    victim.execute("CREATE OR REPLACE FUNCTION public.bump() RETURNS int LANGUAGE sql AS "
                   f"$$ DELETE FROM {VICTIM} RETURNING 1 $$")
    victim.execute("CREATE OR REPLACE VIEW public.bumps AS SELECT public.bump() AS n")
    victim.execute("GRANT SELECT ON public.bumps TO app")
    return victim


async def test_a_write_past_the_parser_fails_in_postgres_psycopg(proxy, bump) -> None:
    _, port = await proxy()
    async with await psycopg.AsyncConnection.connect(dsn(port), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            await conn.execute(WRITES_PAST_THE_PARSER)
    assert rows_left(bump) == 2


async def test_a_write_past_the_parser_fails_in_postgres_asyncpg(proxy, bump) -> None:
    _, port = await proxy()
    conn = await asyncpg.connect(host="127.0.0.1", port=port, user="tool", database="shop",
                                 ssl=False, server_settings={"application_name": "acme"})
    try:
        with pytest.raises(asyncpg.exceptions.ReadOnlySQLTransactionError):
            await conn.execute(WRITES_PAST_THE_PARSER)
        async with conn.transaction(readonly=True):
            assert await conn.fetchval("SELECT count(*) FROM orders") == 3
        with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError, match="READ WRITE"):
            await conn.execute("START TRANSACTION READ WRITE")
        async with conn.transaction():  # a plain BEGIN is read-only too
            with pytest.raises(asyncpg.exceptions.ReadOnlySQLTransactionError):
                await conn.execute(WRITES_PAST_THE_PARSER)
    finally:
        await conn.close()
    assert rows_left(bump) == 2


@pytest.mark.parametrize("undo", [
    "SET default_transaction_read_only = off",
    "SET SESSION default_transaction_read_only TO false",
    "SELECT set_config('default_transaction_read_only', 'off', false)",
    "BEGIN READ WRITE",
    "START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ WRITE",
    "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
    "SET transaction_read_only = off",
    "SET TRANSACTION READ WRITE",
])
async def test_every_way_to_undo_read_only_is_refused(proxy, bump, undo) -> None:
    _, port = await proxy(guard_modes={"tenant_scope": "audit"})
    async with await psycopg.AsyncConnection.connect(dsn(port), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="SQL_BLOCKED"):
            await conn.execute(undo)
        await conn.execute("ROLLBACK")
        for reset in ("RESET ALL", "DISCARD ALL"):
            await conn.execute(reset)
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                await conn.execute(WRITES_PAST_THE_PARSER)
    assert rows_left(bump) == 2


@pytest.mark.parametrize("options", [
    "-c default_transaction_read_only=off", "--default-transaction-read-only=off",
    "-c transaction_read_only=off", "-c role=postgres", "-ec client_encoding=SJIS",
    "-D /tmp",
])
async def test_startup_options_that_undo_the_proxys_settings(proxy, options) -> None:
    _, port = await proxy()
    with pytest.raises(psycopg.OperationalError, match="POLICY_DENY"):
        await psycopg.AsyncConnection.connect(dsn(port, options=f"'{options}'"))


@pytest.mark.parametrize("params", [
    {"default_transaction_read_only": "off"}, {"Transaction_Read_Only": "false"},
    {"client_encoding": "BIG5"}, {"standard_conforming_strings": "off"},
    {"session_authorization": "postgres"},
])
async def test_startup_parameters_that_undo_the_proxys_settings(proxy, params) -> None:
    """Every startup parameter that is not a login key is a server setting."""
    _, port = await proxy()
    raw = await RawClient.connect(port, {"user": "tool", "database": "shop",
                                         "application_name": "acme", **params})
    frames = await raw.read_until_ready()
    raw.close()
    errors = [m.parse_fields(b) for t, b in frames if t == b"E"]
    assert [(e["S"], e["M"].split(":")[0]) for e in errors] == [("FATAL", "POLICY_DENY")]


async def test_asyncpg_server_settings_are_judged(proxy) -> None:
    _, port = await proxy()
    with pytest.raises(asyncpg.exceptions.PostgresError, match="POLICY_DENY"):
        await asyncpg.connect(host="127.0.0.1", port=port, user="tool", database="shop",
                              ssl=False, server_settings={"application_name": "acme",
                                                          "client_encoding": "GBK"})


# --- issue 22 item 6: one guard chain, its modes included -----------------------------------

def would_deny(px: Any, guard: str, code: str) -> float:
    return px.metric("callwarden_audit_would_deny_total", route="warehouse", guard=guard,
                     error_code=code)


async def test_a_route_in_audit_mode_logs_would_deny_and_lets_the_statement_through(
    proxy,
) -> None:
    sql = {"dialect": "postgres", "read_only": True, "blocked_functions": ["abs"],
           "tenant": {"column": "tenant_id", "tables": ["orders"]}}
    px, port = await proxy(mode="audit", sql=sql)
    async with await psycopg.AsyncConnection.connect(dsn(port), autocommit=True) as conn:
        assert await (await conn.execute("SELECT abs(-1)")).fetchone() == (1,)
    assert would_deny(px, "sql_safety", "SQL_BLOCKED") == 1


async def test_guard_modes_apply_on_the_wire(proxy) -> None:
    """sql_safety audits, tenant_scope enforces: the stacked read is refused by the tenant
    guard (never forwarded unscoped), a plain read is still scoped."""
    px, port = await proxy(guard_modes={"sql_safety": "audit"})
    async with await psycopg.AsyncConnection.connect(dsn(port), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="TENANT_MISMATCH"):
            await conn.execute("SELECT id FROM orders; SELECT 1")
        rows = await (await conn.execute("SELECT id FROM orders ORDER BY id")).fetchall()
        assert rows == [(1,), (2,), (4,)]
    assert would_deny(px, "sql_safety", "SQL_BLOCKED") == 1
    denied = px.metric("callwarden_requests_total", route="warehouse", kind="postgres",
                       outcome="denied", error_code="TENANT_MISMATCH")
    assert denied == 1


async def test_access_on_the_wire_follows_its_mode(proxy) -> None:
    role = {"options": "'-c callwarden.role=intern'"}
    px, port = await proxy(access={"roles": ["analyst"]}, guard_modes={"access": "audit"})
    async with await psycopg.AsyncConnection.connect(dsn(port, **role)) as conn:
        assert await (await conn.execute("SELECT 1")).fetchone() == (1,)
    assert would_deny(px, "access", "PERMISSION_DENIED") >= 1
    _, port = await proxy(access={"roles": ["analyst"]})
    with pytest.raises(psycopg.OperationalError, match="PERMISSION_DENIED"):
        await psycopg.AsyncConnection.connect(dsn(port, **role))
    async with await psycopg.AsyncConnection.connect(
        dsn(port, options="'-c callwarden.role=analyst'")
    ) as conn:
        assert await (await conn.execute("SELECT 1")).fetchone() == (1,)


async def test_a_pipelined_statement_waits_for_an_unseen_settings_change(
    proxy, victim
) -> None:
    """Valid UTF-8 can hide a quote from a UTF-8 reader once the session is SJIS: 'ā' is
    C4 81, and 81 5C is one SJIS character. A statement whose reading depends on the
    settings waits until the one before it (which switched to SJIS through a view) is
    answered: the switch is seen and the session ends before the second is judged."""
    victim.execute("CREATE OR REPLACE VIEW public.sneaky AS "
                   "SELECT set_config('client_encoding', 'SJIS', false) AS s")
    victim.execute("GRANT SELECT ON public.sneaky TO app")
    _, port = await proxy(sql={"dialect": "postgres", "read_only": False})
    raw = await RawClient.connect(port, {"user": "tool", "database": "shop",
                                         "application_name": "acme"})
    await raw.read_until_ready()
    smuggle = f"SELECT E'ā\\'; DELETE FROM {VICTIM}; --'"
    frames = await raw.send(m.query("SELECT s FROM sneaky") + m.query(smuggle))
    raw.close()
    errors = [m.parse_fields(b) for t, b in frames if t == b"E"]
    assert [(e["S"], "left UTF8" in e["M"]) for e in errors] == [("FATAL", True)]
    assert rows_left(victim) == 2


async def test_unsynchronised_pipeline_with_setting_dependent_text_is_refused(proxy) -> None:
    """In a psycopg pipeline nothing is answered before the Sync: such text is refused,
    pure-ASCII text pipelines as before."""
    _, port = await proxy()
    async with await psycopg.AsyncConnection.connect(dsn(port), autocommit=True) as conn:
        async with conn.pipeline():
            a = await conn.execute("SELECT 1")
            b = await conn.execute("SELECT 2")
        assert (await a.fetchone(), await b.fetchone()) == ((1,), (2,))
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="Sync first"):
            async with conn.pipeline():
                await conn.execute("SELECT 1")
                await conn.execute("SELECT 'é'")
        assert await (await conn.execute("SELECT 'é'")).fetchone() == ("é",)


async def test_read_only_in_audit_mode_records_and_lets_writes_through(proxy, victim) -> None:
    """Audit is for seeing what a policy would refuse without breaking the caller: with
    sql_safety auditing, the session is not made read-only and the write runs."""
    sql = {"dialect": "postgres", "read_only": True}
    px, port = await proxy(sql=sql, guard_modes={"sql_safety": "audit"})
    async with await psycopg.AsyncConnection.connect(dsn(port), autocommit=True) as conn:
        await conn.execute(f"DELETE FROM {VICTIM} WHERE id = 1")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="client_encoding"):
            await conn.execute("SET client_encoding = 'SJIS'")  # integrity: every mode
    assert rows_left(victim) == 1
    assert would_deny(px, "sql_safety", "SQL_BLOCKED") == 1


async def test_concurrency_cap_holds_a_slot_until_the_statement_is_answered(proxy) -> None:
    """The route's max_inflight (ratelimit guard) on the wire: a slot is taken when the
    statement is judged and freed when its ReadyForQuery comes back."""
    import asyncio

    _, port = await proxy(limits={"max_inflight": 1})
    async with await psycopg.AsyncConnection.connect(dsn(port), autocommit=True) as a, \
            await psycopg.AsyncConnection.connect(dsn(port), autocommit=True) as b:
        slow = asyncio.create_task(
            a.execute("SELECT count(*) FROM generate_series(1, 5000000)"))
        await asyncio.sleep(0.1)
        with pytest.raises(psycopg.errors.ConfigurationLimitExceeded, match="concurrency"):
            await b.execute("SELECT 1")
        await slow
        assert await (await b.execute("SELECT 1")).fetchone() == (1,)
