"""SQL routes end to end: the proxy in front of a real SQL-over-HTTP backend (the demo's
SQLite one) on loopback; rewrites must return exactly the tenant's rows."""

from __future__ import annotations

import pytest

from proxy.demo.backends import sql_app


@pytest.fixture
async def sql_backend(serve_app) -> str:
    return await serve_app(sql_app())


def sql_route(url: str, **sql) -> dict:
    return {
        "name": "db",
        "kind": "sql",
        "match": {"path_prefix": "/db"},
        "upstream": url,
        "sql": {
            "dialect": "sqlite",
            "tenant": {"column": "tenant_id", "tables": ["orders", "customers"]},
            **sql,
        },
    }


async def run(px, sql: str, tenant: str | None = "acme", **kw):
    headers = {"X-Tenant-ID": tenant} if tenant else {}
    async with px.session.post(
        px.url + "/db/query", json={"query": sql, **kw}, headers=headers
    ) as r:
        return r.status, r.headers.get("X-CallWarden-Error-Code"), await r.json()


async def test_tenant_rewrite_returns_only_the_tenants_rows(sql_backend, write_rules, start_proxy):
    px = await start_proxy(write_rules([sql_route(sql_backend)]))
    status, _, body = await run(
        px, "SELECT o.item FROM orders o JOIN customers c ON c.id = o.customer_id ORDER BY o.id"
    )
    assert status == 200 and body["rows"] == [["anvil"], ["rocket"]]
    status, _, body = await run(px, "SELECT count(*) FROM orders", tenant="globex")
    assert body["rows"] == [[2]]
    # a hostile tenant id never reaches the SQL (the tenant grammar refuses it; the
    # rewrite quoting it as a value is tested in tests/sql over tenant_cases.py)
    status, code, _ = await run(px, "SELECT count(*) FROM orders", tenant="x' OR '1'='1")
    assert (status, code) == (401, "AUTH_FAILED")
    status, code, _ = await run(px, "SELECT 1 FROM orders", tenant=None)
    assert (status, code) == (401, "AUTH_FAILED")
    assert px.metric("callwarden_sql_inspection_seconds_count", route="db") == 2


@pytest.mark.parametrize(
    "sql",
    [
        "DROP TABLE orders",
        "SELECT 1; DELETE FROM orders",
        "WITH x AS (DELETE FROM orders RETURNING *) SELECT * FROM x",
        "UPDATE orders SET amount = 0",
        "SELEC oops FROM",
    ],
)
async def test_blocked_statements_never_reach_the_backend(
    sql_backend, write_rules, start_proxy, sql
):
    px = await start_proxy(write_rules([sql_route(sql_backend)]))
    status, code, body = await run(px, sql)
    assert (status, code) == (403, "SQL_BLOCKED")
    assert sql not in body["error"]["message"]  # the reason never echoes the statement
    _, _, after = await run(px, "SELECT count(*) FROM orders")
    assert after["rows"] == [[2]]


async def test_row_cap_limit_and_response_check(sql_backend, write_rules, start_proxy):
    px = await start_proxy(write_rules([sql_route(sql_backend, max_rows=1)]))
    status, _, body = await run(px, "SELECT item FROM orders ORDER BY id")
    assert status == 200 and body["rows"] == [["anvil"]]  # LIMIT 1 injected


async def test_sql_missing_and_malformed_body(sql_backend, write_rules, start_proxy):
    px = await start_proxy(write_rules([sql_route(sql_backend)]))
    async with px.session.post(
        px.url + "/db/query", json={"sql": "SELECT 1"}, headers={"X-Tenant-ID": "a"}
    ) as r:
        assert (r.status, r.headers["X-CallWarden-Error-Code"]) == (422, "INVALID_PARAMS")
    async with px.session.post(
        px.url + "/db/query", data=b"{not json", headers={"X-Tenant-ID": "a"}
    ) as r:
        assert r.headers["X-CallWarden-Error-Code"] == "INVALID_PARAMS"
    async with px.session.post(
        px.url + "/db/query", data=b'{"query": "\\xff\xff"}', headers={"X-Tenant-ID": "a"}
    ) as r:
        assert r.headers["X-CallWarden-Error-Code"] == "INVALID_PARAMS"


async def test_the_caller_is_judged_before_the_body(sql_backend, write_rules, start_proxy):
    """A caller the route refuses learns nothing about its body: a role outside
    access.roles with a malformed body is PERMISSION_DENIED (counted under 'access'),
    not INVALID_PARAMS; a missing tenant is AUTH_FAILED before the body is read."""
    route = {**sql_route(sql_backend), "access": {"roles": ["analyst"]}}
    px = await start_proxy(write_rules([route]))
    for body in (b"{not json", b'{"sql": "SELECT 1"}', b'{"query": "DROP TABLE orders"}'):
        async with px.session.post(
            px.url + "/db/query", data=body,
            headers={"X-Tenant-ID": "a", "X-Caller-Role": "intern"},
        ) as r:
            assert (r.status, r.headers["X-CallWarden-Error-Code"]) == (403, "PERMISSION_DENIED")
    assert px.metric("callwarden_denials_total", route="db", guard="access",
                     error_code="PERMISSION_DENIED") == 3
    async with px.session.post(
        px.url + "/db/query", data=b"{not json", headers={"X-Caller-Role": "analyst"}
    ) as r:
        assert r.headers["X-CallWarden-Error-Code"] == "AUTH_FAILED"
    async with px.session.post(
        px.url + "/db/query", data=b"{not json",
        headers={"X-Tenant-ID": "a", "X-Caller-Role": "analyst"},
    ) as r:
        assert r.headers["X-CallWarden-Error-Code"] == "INVALID_PARAMS"  # allowed: now judged


async def test_a_repeated_key_is_refused_not_forwarded(sql_backend, write_rules, start_proxy):
    """A backend that reads the first copy would run a statement nobody judged: without a
    tenant or row cap nothing is rewritten, so the body would go as sent."""
    route = sql_route(sql_backend)
    del route["sql"]["tenant"]
    px = await start_proxy(write_rules([route]))
    body = b'{"query": "DELETE FROM orders", "query": "SELECT count(*) FROM orders"}'
    async with px.session.post(px.url + "/db/query", data=body) as r:
        assert (r.status, r.headers["X-CallWarden-Error-Code"]) == (422, "INVALID_PARAMS")
        assert "repeats a JSON key" in (await r.json())["error"]["message"]
    status, _, after = await run(px, "SELECT count(*) FROM orders", tenant=None)
    assert (status, after["rows"]) == (200, [[4]])


async def test_query_param_location_and_audit(sql_backend, write_rules, start_proxy):
    route = sql_route(sql_backend, location={"query_param": "q"})
    route["guard_modes"] = {"sql_safety": "audit"}
    px = await start_proxy(write_rules([route]))
    # audit: a blocked statement is counted as would-deny; the tenant guard, which
    # enforces, cannot scope it and refuses it (never sent unscoped)
    async with px.session.post(
        px.url + "/db/query?q=x", json={"query": "SELECT 1"}, headers={"X-Tenant-ID": "a"}
    ) as r:
        assert (r.status, r.headers["X-CallWarden-Error-Code"]) == (403, "TENANT_MISMATCH")
    assert (
        px.metric(
            "callwarden_audit_would_deny_total",
            route="db",
            guard="sql_safety",
            error_code="SQL_BLOCKED",
        )
        == 1
    )


@pytest.mark.parametrize("cap", [1, 2, 10, 1000])
def test_an_answer_the_row_cap_skips_cannot_exceed_it(cap: int) -> None:
    """`fits` lets an unencoded answer shorter than the cap stream unread: the shortest
    answers with one row more than the cap, in every form the cap counts, are longer."""
    import json

    from proxy.sql.rows import RowCapFilter

    f = RowCapFilter(cap, "deny")
    n = cap + 1
    shortest = [json.dumps([1] * n, separators=(",", ":")).encode(),
                b'{"rows":[' + b",".join([b"1"] * n) + b"]}",
                b"1\n" * (n - 1) + b"1"]
    for body in shortest:
        assert not f.fits(len(body))
        with pytest.raises(Exception, match="more than"):
            f.body(body, "application/x-ndjson" if b"\n" in body else "application/json")


async def test_a_small_compressed_answer_is_still_counted(serve_app, write_rules,
                                                          start_proxy) -> None:
    """Its length is the compressed size: it says nothing of the rows."""
    import gzip

    from aiohttp import web

    many = gzip.compress(b"[" + b",".join([b"1"] * 5000) + b"]")
    assert len(many) < 1000

    async def answer(req: web.Request) -> web.Response:
        return web.Response(body=many, headers={"Content-Encoding": "gzip",
                                                "Content-Type": "application/json"})

    app = web.Application()
    app.router.add_post("/query", answer)
    url = await serve_app(app)
    route = {"name": "db", "kind": "sql", "match": {"path_prefix": "/db"}, "upstream": url,
             "sql": {"dialect": "postgres", "max_rows": 1000}}
    px = await start_proxy(write_rules([route]))
    async with px.session.post(px.url + "/db/query", json={"query": "SELECT 1"}) as r:
        assert (r.status, r.headers.get("X-CallWarden-Error-Code")) == (422,
                                                                         "MAX_ROWS_EXCEEDED")
