"""Tenant-isolation fuzzer on the wire (issue 22): statements generated from a small SQL
grammar (table functions, catalogs, set operations, CTEs, LATERAL, subqueries, EXPLAIN,
stacked statements, comments, string forms whose reading depends on the lexer) go through
the wire listener with psycopg, under every client_encoding the proxy accepts, against a
real PostgreSQL holding two tenants' rows.

The other tenant's rows carry markers no rewrite can produce from the caller's rows (its
ids are >= 1,000,000, its secrets say GLOBEX): a marker in any answer, in any form (a
value, an aggregate, a plan, an error message), is a leak. After the run no row has
changed. Deterministic (seeded), bounded in count: well under 30 s.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.pgwire.pgkit import PASSWORDS, PgCluster

SEED = 2215
PER_ENCODING = 120
ENCODINGS = [None, "UTF8", "utf-8", "unicode"]
"""Every way to ask for UTF8 (None: not sent, the proxy sets it)."""
REFUSED = {"SJIS": "shift_jis", "BIG5": "big5", "GBK": "gbk", "GB18030": "gb18030",
           "UHC": "cp949", "JOHAB": "johab", "LATIN1": "latin-1"}
"""Client encodings (and Python's codec for each) whose text a UTF-8 reader would judge
differently: none gets a session."""


def backslash_char(codec: str) -> str:
    """A character whose last byte in `codec` is a backslash (one exists in each
    multibyte encoding above; LATIN1 has none, and '表' does not encode at all)."""
    for code in range(0x3000, 0xD7A4):
        try:
            raw = chr(code).encode(codec)
        except UnicodeEncodeError:
            continue
        if len(raw) > 1 and raw.endswith(b"\\"):
            return chr(code)
    return "表"
TABLES = ("fz_orders", "fz_items")
ACME = [(1, "acme", "acme-one", 10), (2, "acme", "acme-two", 20)]
GLOBEX = [(1_000_001, "globex", "GLOBEX-SECRET-1", 7_000_000),
          (1_000_002, "globex", "GLOBEX-SECRET-2", 9_000_000)]


@pytest.fixture
def fuzz_tables(pg_cluster: PgCluster) -> Iterator[psycopg.Connection]:
    with psycopg.connect(pg_cluster.dsn("postgres"), autocommit=True) as admin:
        for t in TABLES:
            admin.execute(f"DROP TABLE IF EXISTS {t}")
            admin.execute(f"CREATE TABLE {t} (id bigint, tenant_id text, secret text, "
                          "amount bigint)")
            with admin.cursor() as cur:
                cur.executemany(f"INSERT INTO {t} VALUES (%s, %s, %s, %s)", ACME + GLOBEX)
            admin.execute(f"GRANT ALL ON {t} TO app")
        yield admin
        for t in TABLES:
            admin.execute(f"DROP TABLE IF EXISTS {t}")


def snapshot(admin: psycopg.Connection) -> list[Any]:
    return [admin.execute(f"SELECT * FROM {t} ORDER BY id").fetchall() for t in TABLES]


# --- the grammar ----------------------------------------------------------------------------

def _pick(rng: random.Random, *options: str) -> str:
    return rng.choice(options)


def column(rng: random.Random, alias: str = "") -> str:
    a = f"{alias}." if alias else ""
    return _pick(rng, f"{a}id", f"{a}secret", f"{a}amount", f"{a}tenant_id", "*",
                 f"max({a}id)", f"sum({a}amount)", f"string_agg({a}secret, ',')",
                 f"array_agg({a}id)", f"row_to_json({alias or 't'})" if alias else f"{a}id",
                 f"upper({a}secret)", f"count(*) FILTER (WHERE {a}amount > 0)")


def table(rng: random.Random) -> str:
    return _pick(rng, *TABLES, *(f"public.{t}" for t in TABLES), *(f'"{t}"' for t in TABLES))


def source(rng: random.Random, depth: int) -> tuple[str, str]:
    """(FROM item, alias)."""
    t = table(rng)
    choices = [
        (f"{t}", ""),
        (f"{t} AS t", "t"),
        (f"{t} t", "t"),
        (f"ONLY {t} t", "t"),
        (f"{t} t TABLESAMPLE BERNOULLI (100)", "t"),
        (f"{t} t JOIN {table(rng)} u USING (id)", "t"),
        (f"{t} t CROSS JOIN generate_series(1, 2) g", "t"),
        (f"{t} t, LATERAL (SELECT u.secret FROM {table(rng)} u WHERE u.id = t.id) l", "t"),
        ("unnest(ARRAY[1, 2]) t(id)", ""),
        ("generate_series(1, 3) t(id)", ""),
        (f"query_to_xml('SELECT * FROM {TABLES[0]}', true, false, '') t(x)", ""),
        (f"json_populate_recordset(NULL::{TABLES[0]}, "
         f"(SELECT json_agg(x) FROM {TABLES[1]} x)) t", "t"),
        ("pg_catalog.pg_class t", "t"),
        ("information_schema.columns t", "t"),
    ]
    if depth < 2:
        inner = select(rng, depth + 1)
        choices.append((f"({inner}) s", "s"))
    return rng.choice(choices)


def where(rng: random.Random, alias: str, depth: int) -> str:
    a = f"{alias}." if alias else ""
    options = ["", f"WHERE {a}id > 0", "WHERE true OR true", f"WHERE {a}id = 1 OR 1 = 1",
               f"WHERE {a}tenant_id = 'globex'", f"WHERE {a}tenant_id <> 'acme'"]
    if depth < 2:
        options += [f"WHERE {a}id IN ({select(rng, depth + 1)})",
                    f"WHERE EXISTS (SELECT 1 FROM {table(rng)} x WHERE x.tenant_id = 'globex')"]
    return rng.choice(options)


def select(rng: random.Random, depth: int = 0) -> str:
    src, alias = source(rng, depth)
    sql = f"SELECT {column(rng, alias)} FROM {src} {where(rng, alias, depth)}".strip()
    if rng.random() < 0.2:
        sql += _pick(rng, " GROUP BY 1", " ORDER BY 1", " LIMIT 10", " OFFSET 0")
    return sql


def statement(rng: random.Random) -> str:
    core = select(rng)
    t = table(rng)
    forms = [
        core,
        core,
        f"WITH c AS ({select(rng, 1)}) SELECT * FROM c",
        f"WITH c AS (SELECT * FROM {t}) SELECT secret FROM c",
        f"{core} UNION ALL {select(rng, 1)}",
        f"{core} UNION SELECT secret FROM {t}",
        f"SELECT (SELECT max(secret) FROM {t}), secret FROM {t}",
        f"TABLE {t}",
        f"EXPLAIN {core}",
        f"EXPLAIN (ANALYZE, VERBOSE) {core}",
        f"EXPLAIN ANALYZE DELETE FROM {t}",
        f"{core}; SELECT 1",
        f"SELECT 1; {core}",
        f"{core}; DELETE FROM {t}",
        f"DELETE FROM {t}",
        f"UPDATE {t} SET secret = 'x'",
        f"INSERT INTO {t} VALUES (3, 'acme', 'x', 1)",
        f"CREATE TABLE fz_leak AS SELECT * FROM {t}",
        f"SELECT * INTO fz_leak FROM {t}",
        f"SELECT secret FROM {t} FOR UPDATE",
        f"COPY {t} TO STDOUT",
        f"SELECT E'表\\'; SELECT secret FROM {t}; --'",
        f"SELECT E'表'; SELECT secret FROM {t}; --'",
        f"SELECT 'é\\''; SELECT secret FROM {t}; --'",
        f"SELECT $$x$$ || secret FROM {t}",
        f"SELECT U&'\\0041' || secret FROM {t}",
        f"ANALYZE {t}",
        f"SELECT current_setting('client_encoding'), secret FROM {t}",
        f"SELECT query_to_xml('SELECT * FROM {t}', true, false, '')",
        f"SELECT * FROM dblink('dbname=shop', 'SELECT secret FROM {t}') AS x(s text)",
        f"SELECT xmlagg(xmlelement(name s, secret)) FROM {t}",
        f"SELECT (SELECT string_agg(secret, ',') FROM {t} WHERE tenant_id = 'globex')",
        f"SELECT secret FROM {t} WHERE tenant_id = 'acme' OR tenant_id = 'globex'",
    ]
    sql = rng.choice(forms)
    if rng.random() < 0.3:  # comments between tokens
        sql = sql.replace(" FROM ", _pick(rng, " /* c */ FROM ", " --c\nFROM ", " FROM/**/"), 1)
    return sql


CATALOG_FORMS = [
    "SELECT histogram_bounds::text FROM pg_stats WHERE tablename LIKE 'fz%'",
    "SELECT * FROM pg_catalog.pg_stats",
    "SELECT most_common_vals::text FROM pg_stats",
    "SELECT s.* FROM pg_stats s /* c */ WHERE true",
]
"""Statistics views hold the other tenant's values (issue 22 item 3, the SQL rules' part)."""


# --- the run --------------------------------------------------------------------------------

def leaked(value: Any) -> bool:
    """The statement's own text (echoed by plans and errors) says 'globex', never these."""
    text = str(value)
    if value == "globex" or "GLOBEX-SECRET" in text or "1000001" in text or "1000002" in text:
        return True
    return isinstance(value, int) and value >= 1_000_000


async def run_one(conn: psycopg.AsyncConnection, sql: str) -> list[Any]:
    """Every cell of every result, and the error text if the statement was refused."""
    out: list[Any] = []
    try:
        cur = await conn.execute(sql)
        while True:
            if cur.description:
                out.extend(c for row in await cur.fetchall() for c in row)
            if not cur.nextset():
                break
    except psycopg.Error as exc:
        out.append(str(exc))
    return out


@pytest.fixture
async def wire_port(pg_cluster, write_rules, start_proxy, monkeypatch) -> int:
    monkeypatch.setenv("CW_TEST_PG_USER", "app")
    monkeypatch.setenv("CW_TEST_PG_PASSWORD", PASSWORDS["app"])
    route = {
        "name": "fuzz", "kind": "postgres", "listen": "127.0.0.1:0",
        "upstream": f"{pg_cluster.host}:{pg_cluster.port}",
        "tenant": {"startup_parameter": "application_name"},
        "credentials": {"user": "${env:CW_TEST_PG_USER}",
                        "password": "${env:CW_TEST_PG_PASSWORD}"},
        "postgres": {"database": "shop"},
        "sql": {"dialect": "postgres", "read_only": True,
                "tenant": {"column": "tenant_id", "tables": list(TABLES)}},
    }
    px = await start_proxy(write_rules([route]))
    return px.server.ports["postgres:fuzz"]


async def fuzz(dsn: str, statements: list[str], leaks: list[tuple[str, str]]) -> None:
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    try:
        for sql in statements:
            for cell in await run_one(conn, sql):
                if leaked(cell):
                    leaks.append((sql, str(cell)[:120]))
                    break
            if conn.closed:  # a FATAL ended the session: open a new one
                conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    finally:
        await conn.close()


def wire_dsn(port: int, encoding: str | None) -> str:
    extra = f" client_encoding={encoding}" if encoding else ""
    return (f"host=127.0.0.1 port={port} dbname=shop user=tool application_name=acme "
            f"sslmode=disable{extra}")


async def test_no_other_tenant_row_and_no_change_over_the_wire(fuzz_tables, wire_port) -> None:
    before = snapshot(fuzz_tables)
    fuzz_tables.execute(f"ANALYZE {TABLES[0]}")  # statistics hold the other tenant's values
    rng = random.Random(SEED)
    leaks: list[tuple[str, str]] = []
    for encoding in ENCODINGS:
        async with await psycopg.AsyncConnection.connect(wire_dsn(wire_port, encoding)) as c:
            assert c.info.parameter_status("client_encoding") == "UTF8"
        await fuzz(wire_dsn(wire_port, encoding),
                   [statement(rng) for _ in range(PER_ENCODING)], leaks)
    assert not leaks, "\n".join(map(str, leaks[:20]))
    assert snapshot(fuzz_tables) == before
    exists = fuzz_tables.execute("SELECT to_regclass('public.fz_leak')").fetchone()
    assert exists == (None,)


@pytest.mark.parametrize("encoding", REFUSED)
async def test_other_client_encodings_get_no_session(fuzz_tables, wire_port, encoding) -> None:
    before = snapshot(fuzz_tables)
    rng = random.Random(SEED)
    # c ends in the byte of a backslash: E'c' is an open string to a UTF-8 reader, a
    # closed one to the server
    c = backslash_char(REFUSED[encoding])
    smuggled = [f"SELECT E'{c}'; {select(rng)}; --'" for _ in range(10)]
    smuggled += [f"SELECT E'{c}'; DELETE FROM {t}; --'" for t in TABLES]
    leaks: list[tuple[str, str]] = []
    try:
        await fuzz(wire_dsn(wire_port, encoding), smuggled, leaks)
    except psycopg.OperationalError as exc:
        assert "only UTF8" in str(exc)
    assert not leaks, "\n".join(map(str, leaks[:20]))
    assert snapshot(fuzz_tables) == before


async def test_catalogs_do_not_leak_over_the_wire(fuzz_tables, wire_port) -> None:
    fuzz_tables.execute(f"ANALYZE {TABLES[0]}")
    leaks: list[tuple[str, str]] = []
    await fuzz(wire_dsn(wire_port, None), CATALOG_FORMS, leaks)
    assert not leaks, "\n".join(map(str, leaks))
