"""tenant_scope draws its verdict from the SQL decision alone: with sql_safety in audit mode
a statement the engine blocked (and so never scoped) is refused by the tenant guard,
never forwarded without its tenant predicate (issue 22 item 5). Over HTTP, in front of
real DuckDB and PostgreSQL backends holding two tenants' rows."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import duckdb
import psycopg
import pytest
from aiohttp import web

from proxy.compile import Services, compile_route
from proxy.config.schema import Rules
from proxy.model.call import Caller, Request, SqlCall
from proxy.model.errors import ErrorCode, ProxyError
from proxy.pipeline import run_guards
from proxy.sql.rows import RowCapFilter
from tests.guards import kit
from tests.guards.kit import context

ROWS = [(1, "acme"), (2, "acme"), (3, "globex")]
UNSCOPABLE = [
    "SELECT id FROM orders; SELECT 1",  # stacked: blocked, so never rewritten
    "SELECT 1; SELECT id FROM orders",
    "DELETE FROM orders",
]


def db_app(run: Callable[[str], list[list[Any]]]) -> web.Application:
    """A SQL-over-HTTP backend: POST /query {"query"} runs every statement of the text and
    answers the rows of all of them (as a database shell would)."""

    async def query(req: web.Request) -> web.Response:
        sql = (await req.json())["query"]
        try:
            return web.json_response({"rows": run(sql)})
        except Exception as exc:  # the backend's own error, shown to the caller
            return web.json_response({"error": str(exc)}, status=400)

    app = web.Application()
    app.router.add_post("/query", query)
    return app


def duck_runner() -> Callable[[str], list[list[Any]]]:
    con = duckdb.connect()
    con.execute("CREATE TABLE orders (id INTEGER, tenant_id VARCHAR)")
    con.executemany("INSERT INTO orders VALUES (?, ?)", ROWS)

    def run(sql: str) -> list[list[Any]]:
        out: list[list[Any]] = []
        for stmt in con.extract_statements(sql):
            cur = con.execute(stmt)
            if cur.description:
                out.extend(list(r) for r in cur.fetchall())
        return out

    return run


@pytest.fixture
def pg_runner(postgres_dsn: str) -> Iterator[Callable[[str], list[list[Any]]]]:
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS cw_tenant_scope")
        admin.execute("CREATE DATABASE cw_tenant_scope")
    dsn = postgres_dsn.rsplit("/", 1)[0] + "/cw_tenant_scope"
    with psycopg.connect(dsn, autocommit=True) as con:
        con.execute("CREATE TABLE orders (id int, tenant_id text)")
        con.cursor().executemany("INSERT INTO orders VALUES (%s, %s)", ROWS)

        def run(sql: str) -> list[list[Any]]:
            out: list[list[Any]] = []
            cur = con.execute(sql.encode())  # simple protocol: every statement runs
            while True:
                if cur.description:
                    out.extend(list(r) for r in cur.fetchall())
                if not cur.nextset():
                    return out

        yield run


def route(url: str, dialect: str) -> dict[str, Any]:
    return {
        "name": "db", "kind": "sql", "match": {"path_prefix": "/db"}, "upstream": url,
        "guard_modes": {"sql_safety": "audit"},
        "sql": {"dialect": dialect, "tenant": {"column": "tenant_id", "tables": ["orders"]}},
    }


@pytest.mark.parametrize("dialect", ["duckdb", "postgres"])
async def test_audit_of_sql_safety_never_opens_the_tenant_guard(
    dialect, serve_app, write_rules, start_proxy, request
) -> None:
    run = duck_runner() if dialect == "duckdb" else request.getfixturevalue("pg_runner")
    px = await start_proxy(write_rules([route(await serve_app(db_app(run)), dialect)]))

    async def call(sql: str) -> tuple[int, str | None, Any]:
        async with px.session.post(px.url + "/db/query", json={"query": sql},
                                   headers={"X-Tenant-ID": "acme"}) as r:
            return r.status, r.headers.get("X-CallWarden-Error-Code"), await r.json()

    for sql in UNSCOPABLE:
        status, code, _ = await call(sql)
        assert (status, code) == (403, "TENANT_MISMATCH"), sql
    assert sorted(run("SELECT id, tenant_id FROM orders")) == sorted(list(r) for r in ROWS)
    status, _, body = await call("SELECT id FROM orders ORDER BY id")
    assert (status, body["rows"]) == (200, [[1], [2]])  # still scoped in this mode
    would = px.metric("callwarden_audit_would_deny_total", route="db", guard="sql_safety",
                      error_code="SQL_BLOCKED")
    assert would == len(UNSCOPABLE)


# --- the guard alone, through run_guards ----------------------------------------------------

def compiled(guard_modes: dict[str, str], tenant: bool = True) -> Any:
    sql: dict[str, Any] = {"dialect": "postgres"}
    if tenant:
        sql["tenant"] = {"column": "tenant_id", "tables": ["orders"]}
    rules = Rules.model_validate({"routes": [{
        "name": "db", "kind": "sql", "match": {"path_prefix": "/db"},
        "upstream": "http://127.0.0.1:9", "guard_modes": guard_modes, "sql": sql}]})
    return compile_route(rules.routes[0], rules, Services())


def sql_call(sql: str, tenant: str | None = "acme") -> SqlCall:
    body = {"query": sql}
    request = Request("POST", "/query", body=json.dumps(body).encode())
    return SqlCall("db", "sql", Caller(tenant, frozenset(), "t"), request, json=body, sql=sql)


@pytest.mark.parametrize("sql", UNSCOPABLE)
async def test_tenant_guard_denies_with_its_own_code(sql: str) -> None:
    ctx = context()
    with pytest.raises(ProxyError) as err:
        await run_guards(compiled({"sql_safety": "audit"}), sql_call(sql), ctx)
    assert (err.value.code, ctx.record.guard) == (ErrorCode.TENANT_MISMATCH, "tenant_scope")
    assert [g for g, _, _ in ctx.record.would_deny] == ["sql_safety"]


async def test_without_a_tenant_policy_audit_of_sql_safety_forwards() -> None:
    ctx = context()
    route = compiled({"sql_safety": "audit"}, tenant=False)
    out = await run_guards(route, sql_call("SELECT 1; SELECT 2", None), ctx)
    assert isinstance(out, SqlCall) and out.sql == "SELECT 1; SELECT 2"
    assert [g for g, _, _ in ctx.record.would_deny] == ["sql_safety"]


async def test_both_guards_in_audit_forward_unchanged_and_record_both() -> None:
    ctx = context()
    route = compiled({"sql_safety": "audit", "tenant_scope": "audit"})
    out = await run_guards(route, sql_call("SELECT id FROM orders; SELECT 1"), ctx)
    assert isinstance(out, SqlCall) and out.sql == "SELECT id FROM orders; SELECT 1"
    assert [g for g, _, _ in ctx.record.would_deny] == ["sql_safety", "tenant_scope"]


async def test_the_decision_is_judged_once_per_text() -> None:
    """sql_safety and tenant_scope share one typed decision, for the same text only."""
    ctx = context()
    route = compiled({})
    out = await run_guards(route, sql_call("SELECT id FROM orders"), ctx)
    assert ctx.sql is not None and ctx.sql.sql == "SELECT id FROM orders"
    assert isinstance(out, SqlCall) and "tenant_id" in out.sql
    assert out.rewritten_body is not None and b"tenant_id" in out.rewritten_body
    assert not hasattr(ctx, "scratch")  # typed fields only: no string-keyed dict


# --- the guard alone, built through the guard table ------------------------------------------

TENANT_SQL = {"tenant": {"column": "tenant_id", "tables": ["orders"]}}


@pytest.mark.parametrize(
    ("sql", "expected", "needle"),
    [
        ("SELECT id FROM orders", None, "'acme'"),
        ("SELECT id FROM customers", None, None),  # not tenant-scoped: unchanged
        ("SELECT * FROM orders o JOIN orders p ON o.id = p.id", None, "'acme'"),
    ],
)
async def test_rewrite_table(sql: str, expected: str | None, needle: str | None) -> None:
    g = kit.guard("tenant_scope", kit.route("sql", sql=TENANT_SQL))
    v = await kit.ask(g, kit.sql_call(sql))
    assert kit.code(v) == expected
    sent = v.call.sql if hasattr(v, "call") else sql
    assert (needle in sent) if needle else sent == sql


async def test_no_tenant_on_a_tenant_route_is_refused() -> None:
    g = kit.guard("tenant_scope", kit.route("sql", sql=TENANT_SQL))
    assert kit.code(await kit.ask(g, kit.sql_call("SELECT id FROM orders", tenant=None))) \
        is not None


async def test_a_row_cap_adds_the_sql_engines_filter_on_http_only() -> None:
    ctx = context()
    g = kit.guard("tenant_scope", kit.route("sql", sql={"max_rows": 10}))
    await kit.ask(g, kit.sql_call("SELECT id FROM customers"), ctx)
    assert [type(f) for f in ctx.response_filters] == [RowCapFilter]
    pg = kit.guard("tenant_scope", kit.route("postgres", sql={"max_rows": 10}))
    ctx = context()
    await kit.ask(pg, kit.sql_call("SELECT id FROM customers", kind="postgres"), ctx)
    assert ctx.response_filters == []  # rows stream back: only the rewrite's LIMIT
