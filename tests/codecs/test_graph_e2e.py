"""`kind: graph` routes end to end against loopback servers speaking the Neo4j HTTP and
Gremlin Server shapes: reads pass (rewritten with LIMIT and the tenant), writes are
SQL_BLOCKED before the server sees them, query/v2 is forced to accessMode Read."""

from __future__ import annotations

import json
from typing import Any

import pytest

from proxy.guards.base import CallContext
from proxy.model.call import Caller, Request
from proxy.model.deadline import Deadline
from proxy.model.record import CallRecord
from proxy.model.verdict import Allow, Rewrite
from tests.codecs.graph_servers import GremlinHttp, Neo4jHttp

TENANT = {"X-Tenant-ID": "acme"}


@pytest.fixture
async def neo4j(serve_app) -> tuple[Neo4jHttp, str]:
    server = Neo4jHttp()
    return server, await serve_app(server.app)


@pytest.fixture
async def gremlin(serve_app) -> tuple[GremlinHttp, str]:
    server = GremlinHttp()
    return server, await serve_app(server.app)


def graph_route(name: str, url: str, **graph: Any) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "graph",
        "match": {"path_prefix": f"/{name}"},
        "upstream": url,
        "graph": graph,
    }


async def send(px: Any, path: str, body: Any, headers: dict[str, str] | None = None) -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    hdrs = {"Content-Type": "application/json", **(headers if headers is not None else TENANT)}
    async with px.session.post(px.url + path, data=data, headers=hdrs) as r:
        return r.status, await r.json()


def tx(*statements: str, **params: Any) -> dict[str, Any]:
    return {
        "statements": [{"statement": s, "parameters": params} for s in statements],
        "resultDataContents": ["row"],
    }


M = "MATCH (c:Customer {tenant: $tenant_id})"
TX_CASES = [
    # (body, headers, status, error code or None, statement the server got)
    (tx(f"{M} RETURN c.name"), TENANT, 200, None, f"{M} RETURN c.name LIMIT 100"),
    (
        tx(f"{M} WHERE c.note = 'DETACH DELETE' // SET\nRETURN c LIMIT 5"),
        TENANT,
        200,
        None,
        f"{M} WHERE c.note = 'DETACH DELETE' // SET\nRETURN c LIMIT 5",
    ),
    (tx(f"{M} RETURN c", tenant_id="acme"), TENANT, 200, None, f"{M} RETURN c LIMIT 100"),
    (tx(f"{M} DETACH DELETE c"), TENANT, 403, "SQL_BLOCKED", None),
    (tx(f"{M} SET c.vip = true RETURN c"), TENANT, 403, "SQL_BLOCKED", None),
    (tx("CREATE (c:Customer {tenant: $tenant_id})"), TENANT, 403, "SQL_BLOCKED", None),
    (tx(f"{M} RETURN c", "CALL dbms.security.listUsers()"), TENANT, 403, "SQL_BLOCKED", None),
    (tx(f"{M} RETURN c", tenant_id="globex"), TENANT, 403, "TENANT_MISMATCH", None),
    (tx("MATCH (c:Customer) RETURN c"), TENANT, 403, "TENANT_MISMATCH", None),
    (tx(f"{M} RETURN c"), {}, 401, "AUTH_FAILED", None),
    (b'{"statements": [', TENANT, 400, "TOOL_BAD_REQUEST", None),
    # judged by one copy of the key, maybe run by the other: refused, never forwarded
    (b'{"statements": [{"statement": "MATCH (c:Customer) DETACH DELETE c", '
     b'"statement": "MATCH (c:Customer {tenant: $tenant_id}) RETURN c"}]}',
     TENANT, 400, "TOOL_BAD_REQUEST", None),
    # the tenant parameter named once no longer scopes the rest (issue 22 item 7)
    (tx(f"{M} MATCH (o) RETURN o"), TENANT, 403, "TENANT_MISMATCH", None),
    (tx("MATCH (c) WHERE c.tenant = $tenant_id OR true RETURN c"), TENANT, 403,
     "TENANT_MISMATCH", None),
    (tx(f"{M} RETURN c UNION MATCH (o) RETURN o AS c"), TENANT, 403, "TENANT_MISMATCH", None),
    (tx(f"{M} RETURN c", "MATCH (o) WHERE o.tenant = $tenant_id OR true RETURN o"), TENANT,
     403, "TENANT_MISMATCH", None),
]


@pytest.mark.parametrize(("body", "headers", "status", "code", "sent"), TX_CASES)
async def test_neo4j_tx(neo4j, write_rules, start_proxy, body, headers, status, code, sent):
    server, url = neo4j
    route = graph_route(
        "graph",
        url,
        api="neo4j-tx",
        max_rows=100,
        tenant={"parameter": "tenant_id", "property": "tenant"},
    )
    px = await start_proxy(write_rules([route]))
    got, doc = await send(px, "/graph/db/neo4j/tx/commit", body, headers)
    assert got == status, doc
    if code is not None:
        assert doc["error"]["code"] == code
        assert server.received == []
        return
    (seen,) = server.received
    stmt = seen["body"]["statements"][0]
    assert stmt["statement"] == sent
    assert stmt["parameters"]["tenant_id"] == "acme"
    assert seen["body"]["resultDataContents"] == ["row"]  # other keys kept
    assert doc["results"][0]["data"][0]["row"] == [sent]


async def test_blocked_reason_names_the_clause(neo4j, write_rules, start_proxy):
    _server, url = neo4j
    px = await start_proxy(write_rules([graph_route("graph", url)]))
    status, doc = await send(
        px, "/graph/db/neo4j/tx/commit", tx("MATCH (n) RETURN n", "MERGE (n:X)")
    )
    assert status == 403 and doc["error"]["code"] == "SQL_BLOCKED"
    assert doc["error"]["message"].startswith("statement 1:") and "MERGE" in doc["error"]["message"]
    assert (
        px.metric(
            "callwarden_denials_total",
            route="graph",
            guard="graph_safety",
            error_code="SQL_BLOCKED",
        )
        == 1
    )


async def test_unrewritten_bytes_and_endpoints(neo4j, write_rules, start_proxy):
    server, url = neo4j
    px = await start_proxy(write_rules([graph_route("graph", url)]))
    odd = b'{"statements" : [ {"statement": "MATCH (n) RETURN n"} ]}'
    status, _ = await send(px, "/graph/db/neo4j/tx/commit", odd)
    assert status == 200 and server.received[-1]["raw"] == odd  # nothing rewritten: as sent
    status, doc = await send(px, "/graph/db/neo4j/cluster/overview", tx("MATCH (n) RETURN n"))
    assert status == 403 and doc["error"]["code"] == "POLICY_DENY"
    async with px.session.get(px.url + "/graph/") as r:
        assert r.status == 200 and (await r.json())["neo4j_version"]


async def test_neo4j_query_v2_forces_read_mode(neo4j, write_rules, start_proxy):
    server, url = neo4j
    px = await start_proxy(write_rules([graph_route("q", url, api="neo4j-query", max_rows=10)]))
    body = {"statement": "MATCH (n) RETURN n LIMIT 5", "includeCounters": True}
    status, doc = await send(px, "/q/db/neo4j/query/v2", body)
    assert status == 200 and doc["data"]["values"] == [["MATCH (n) RETURN n LIMIT 5"]]
    seen = server.received[-1]["body"]
    assert seen["accessMode"] == "Read" and seen["includeCounters"] is True
    status, doc = await send(px, "/q/db/neo4j/query/v2", {"statement": "CREATE (n)"})
    assert status == 403 and doc["error"]["code"] == "SQL_BLOCKED"
    assert len(server.received) == 1


GREMLIN_CASES = [
    (
        "g.V().has('tenant', tenant).values('name')",
        200,
        None,
        "g.V().has('tenant', tenant).values('name').limit(50)",
    ),
    (
        "g.V().has('tenant', tenant).has('note', 'drop()').count()",
        200,
        None,
        "g.V().has('tenant', tenant).has('note', 'drop()').count().limit(50)",
    ),
    ("g.addV('person').property('tenant', tenant)", 403, "SQL_BLOCKED", "addV"),
    ("g.V().has('tenant', tenant).drop()", 403, "SQL_BLOCKED", "drop"),
    ("System.exit(0); g.V().has('tenant', tenant)", 403, "SQL_BLOCKED", "System"),
    ("g.V().values('name')", 403, "TENANT_MISMATCH", "tenant"),
    ("g.V().has('tenant', within(tenant, 'B')).values('name')", 403, "TENANT_MISMATCH", "has"),
    ("g.V().has('tenant', tenant).both().values('name')", 403, "TENANT_MISMATCH", "has"),
    ("g.V().has('tenant', tenant).union(__.V()).values('name')", 403, "TENANT_MISMATCH", "has"),
    ("g.V().sideEffect(__.'drop'()).has('tenant', tenant)", 403, "SQL_BLOCKED", "step name"),
]


@pytest.mark.parametrize(("script", "status", "code", "expect"), GREMLIN_CASES)
async def test_gremlin(gremlin, write_rules, start_proxy, script, status, code, expect):
    server, url = gremlin
    route = graph_route(
        "gremlin",
        url,
        language="gremlin",
        api="gremlin-http",
        max_rows=50,
        tenant={"parameter": "tenant", "property": "tenant"},
    )
    px = await start_proxy(write_rules([route]))
    got, doc = await send(
        px, "/gremlin", {"gremlin": script, "bindings": {}, "language": "gremlin-groovy"}
    )
    assert got == status, doc
    if code is not None:
        assert doc["error"]["code"] == code and expect in doc["error"]["message"]
        assert server.received == []
        return
    (seen,) = server.received
    assert seen == {"gremlin": expect, "bindings": {"tenant": "acme"}, "language": "gremlin-groovy"}
    assert doc["result"]["data"] == [expect]


@pytest.mark.parametrize(
    ("path", "read_only", "idempotent"),
    [
        ("/db/neo4j/tx/commit", True, True),
        ("/db/neo4j/tx", True, False),
        ("/db/neo4j/tx/commit", False, False),
    ],
)
async def test_read_queries_are_idempotent(
    neo4j, write_rules, start_proxy, path, read_only, idempotent
):
    _server, url = neo4j
    px = await start_proxy(write_rules([graph_route("graph", url, read_only=read_only)]))
    route = px.state.compiled.routes["graph"]
    body = json.dumps(tx("MATCH (n) RETURN n")).encode()
    call = route.codec.decode(
        route, Request("POST", path, body=body), Caller(None, frozenset(), "t")
    )
    guard = next(g for g in route.chain if g.name == "graph_safety")
    ctx = CallContext(Deadline(1e12, False), CallRecord(start=0.0), "production")
    verdict = await guard.check(call, ctx)
    assert isinstance(verdict, Rewrite if idempotent else Allow)
    if idempotent:
        assert verdict.call.idempotent and verdict.call.rewritten_body is None
