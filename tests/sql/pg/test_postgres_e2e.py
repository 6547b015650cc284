"""End to end on a real PostgreSQL: SQL over HTTP through CallWarden to a loopback
service that runs each statement on PostgreSQL (read-write, so a write the guard let
through would land). The bypasses of issues 22 and 30 are refused and change nothing;
the reads PostgreSQL accepts pass and return the caller's rows only."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from aiohttp import web

SCHEMA = """
CREATE SCHEMA app;
CREATE TABLE orders (id int PRIMARY KEY, tenant_id text NOT NULL, amount numeric);
INSERT INTO orders VALUES (1, 'acme', 10), (2, 'acme', 20), (3, 'globex', 7);
CREATE SEQUENCE seq;
CREATE FUNCTION app.f_write() RETURNS int LANGUAGE sql AS
  'INSERT INTO orders VALUES (99, ''acme'', 0) RETURNING 1';
ANALYZE orders;
"""


@pytest.fixture(scope="module")
def db(postgres_dsn: str) -> Iterator[str]:
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS cw_pg_e2e")
        admin.execute("CREATE DATABASE cw_pg_e2e")
    dsn = postgres_dsn.rsplit("/", 1)[0] + "/cw_pg_e2e"
    with psycopg.connect(dsn, autocommit=True) as con:
        con.execute(SCHEMA)
    yield dsn


def state(dsn: str) -> tuple:
    """What a write or side effect would change."""
    with psycopg.connect(dsn, autocommit=True) as con:
        return con.execute(
            "SELECT (SELECT count(*) FROM orders), (SELECT last_value FROM seq), "
            "to_regclass('leak') IS NULL").fetchone()  # type: ignore[return-value]


@pytest.fixture
async def proxy(db: str, serve_app, write_rules, start_proxy):
    async def run(request: web.Request) -> web.Response:
        sql = (await request.json())["query"]
        async with await psycopg.AsyncConnection.connect(db, autocommit=True) as con:
            try:
                cur = await con.execute(sql.encode())
                rows = await cur.fetchall() if cur.description else []
            except psycopg.Error as e:
                return web.json_response({"error": e.sqlstate}, status=400)
        return web.json_response({"rows": [[str(v) for v in r] for r in rows]})

    app = web.Application()
    app.router.add_post("/query", run)
    url = await serve_app(app)

    def route(name: str, **sql: object) -> dict:
        return {"name": name, "kind": "sql", "match": {"path_prefix": f"/{name}"},
                "upstream": url, "sql": {"dialect": "postgres", **sql}}

    px = await start_proxy(write_rules([
        route("ro"), route("tn", tenant={"column": "tenant_id", "tables": ["orders"]}),
        route("fa", functions={"allow": ["app.f_write"]}, read_only=False),
    ]))

    async def call(name: str, sql: str, tenant: str = "acme") -> tuple[int, dict, str]:
        async with px.session.post(f"{px.url}/{name}/query", json={"query": sql},
                                   headers={"X-Tenant-ID": tenant}) as r:
            return r.status, await r.json(content_type=None), \
                r.headers.get("X-CallWarden-Error-Code", "")
    return call


@pytest.mark.parametrize("sql", [
    "SELECT id FROM ONLY orders ORDER BY id", "SELECT id FROM orders TABLESAMPLE BERNOULLI (100)",
    "TABLE orders", "SHOW work_mem", "SELECT box '(1,2),(3,4)' <<| box '(0,0),(1,1)'",
    "EXPLAIN ANALYZE SELECT * FROM orders", "SELECT now(), random()",
])
async def test_reads_postgres_accepts_pass(proxy, sql: str) -> None:
    status, body, code = await proxy("ro", sql)
    assert status == 200 and "rows" in body, (sql, code, body)


@pytest.mark.parametrize("sql", [
    "EXPLAIN ANALYZE DELETE FROM orders; SELECT 1",
    "EXPLAIN ANALYZE CREATE TABLE leak AS SELECT * FROM orders; SELECT 1",
    "EXPLAIN (ANALYZE) UPDATE orders SET amount = 0",
    "SELECT txid_current()", "SELECT pg_current_xact_id()", "SELECT nextval('seq')",
    "SELECT app.f_write()", "SELECT 1 WHERE app.f_write() > 0",
    "WITH d AS (DELETE FROM orders RETURNING *) SELECT count(*) FROM d",
    "SELECT * INTO leak FROM orders", "SELECT U&\"pg\\005Fsleep\"(0)",
    "SELECT set_config('default_transaction_read_only', 'off', false)",
])
async def test_writes_and_side_effects_are_refused_and_change_nothing(
    proxy, db: str, sql: str
) -> None:
    before = state(db)
    status, _, code = await proxy("ro", sql)
    assert (status, code) == (403, "SQL_BLOCKED") or code == "SQL_BLOCKED", (sql, status)
    assert state(db) == before


async def test_tenant_route_scopes_and_refuses_catalogs(proxy) -> None:
    status, body, _ = await proxy("tn", "SELECT o.id FROM generate_series(1, 1) g "
                                        "JOIN orders o ON true ORDER BY 1")
    assert status == 200 and body["rows"] == [["1"], ["2"]]
    for sql in ["SELECT histogram_bounds FROM pg_stats WHERE tablename = 'orders'",
                "SELECT * FROM pg_catalog.pg_statistic",
                "SELECT * FROM information_schema.tables",
                "SELECT query_to_xml('select * from orders', true, true, '')",
                "EXPLAIN ANALYZE SELECT * FROM orders"]:
        status, body, code = await proxy("tn", sql)
        assert code == "SQL_BLOCKED", sql
    status, body, code = await proxy("tn", "TABLE orders")
    # refused (sqlglot's rewrite would not parse), never another tenant's rows
    assert code == "SQL_BLOCKED" or body.get("rows") == [["1", "acme", "10"], ["2", "acme", "20"]]


async def test_a_function_allowed_by_name_runs(proxy, db: str) -> None:
    status, body, _ = await proxy("fa", "SELECT app.f_write()")
    assert status == 200 and body["rows"] == [["1"]]
    with psycopg.connect(db, autocommit=True) as con:
        con.execute("DELETE FROM orders WHERE id = 99")
    status, _, code = await proxy("fa", "SELECT app.other()")
    assert code == "" or status == 400  # a writable route: unknown functions reach PostgreSQL
