"""Cypher tenant scoping (issue 22 item 7): every node pattern is constrained by the tenant
parameter with AND semantics, or the statement is refused. Each BYPASS was allowed by the
substring check this replaced (`$tenant` anywhere in the text)."""

from __future__ import annotations

import pytest

from proxy.config.schema import GraphSpec
from proxy.graph.cypher import judge_cypher
from proxy.graph.policy import GraphPolicy
from proxy.model.errors import ErrorCode

# The property defaults to the parameter's name: `{tenant: $tenant}`.
TENANT = GraphPolicy(tenant_parameter="tenant")
T = "{tenant: $tenant}"

BYPASSES: list[str] = [
    f"MATCH (n {T}) MATCH (m) RETURN m",
    "MATCH (n) WHERE n.tenant = $tenant OR true RETURN n",
    "MATCH (n) WHERE n.tenant = $tenant XOR true RETURN n",
    "MATCH (n) WHERE (n.tenant = $tenant OR true) RETURN n",
    "MATCH (n) WHERE NOT n.tenant = $tenant RETURN n",
    "MATCH (n) WHERE n.tenant = $tenant IS NULL RETURN n",
    "MATCH (n) WHERE n.tenant <> $tenant RETURN n",
    "MATCH (n) WHERE CASE WHEN false AND n.tenant = $tenant AND true THEN true ELSE true END "
    "RETURN n",
    "MATCH (n) WHERE m.tenant = $tenant RETURN n",
    # `n.end` closed the CASE for the guard, not for Neo4j: the AND stayed inside CASE
    "MATCH (n) WHERE CASE WHEN n.end AND n.tenant = $tenant AND true THEN true ELSE true END "
    "RETURN n",
    "MATCH (n) WHERE CASE WHEN n.x THEN end AND n.tenant = $tenant AND true ELSE true END "
    "RETURN n",
    "MATCH (n) WHERE n.owner = $tenant RETURN n",
    "MATCH (n {owner: $tenant}) RETURN n",
    "MATCH (n) WHERE n.tenant = $other AND $tenant = $tenant RETURN n",
    f"MATCH (n {T}) RETURN n UNION MATCH (m) RETURN m AS n",
    f"MATCH (n {T}) RETURN n UNION ALL MATCH (m) RETURN m AS n",
    f"MATCH (n {T}) CALL {{ MATCH (m) RETURN m }} RETURN m",
    f"MATCH (n {T}) CALL (n) {{ MATCH (m) RETURN m }} RETURN m",
    f"MATCH (n {T}) OPTIONAL MATCH (m) RETURN m",
    f"MATCH (n {T}) OPTIONAL MATCH (n)-[:R]->(m) RETURN m",
    f"MATCH (n {T}) RETURN [(n)-->(m) | m.secret] AS s",
    f"MATCH (n {T}) RETURN [p = (n)-->() | p] AS ps",
    f"MATCH (n {T}) WHERE EXISTS {{ MATCH (m) WHERE m.secret = 'x' }} RETURN n",
    f"MATCH (n {T}) WHERE EXISTS {{ (n)-->(m:Secret) }} RETURN n",
    f"MATCH (n {T}) RETURN COUNT {{ (m) }} AS everyone",
    f"MATCH (n {T}) RETURN COLLECT {{ MATCH (m) RETURN m.secret }} AS s",
    f"MATCH (n {T}) WHERE (n)-->(:Secret) RETURN n",
    f"MATCH p = shortestPath((a {T})-[*]-(b {T})) RETURN nodes(p)",
    f"MATCH p = allShortestPaths((a {T})-[*]-(b {T})) RETURN p",
    f"MATCH p = (a {T})-[*1..3]->(b {T}) RETURN nodes(p)",
    f"MATCH p = (a {T})-[:R*]->(b {T}) RETURN p",
    f"MATCH ((a {T})-->(b {T})){{1,3}} RETURN a",
    f"MATCH (a {T})-->+(b {T}) RETURN b",
    f"MATCH ANY SHORTEST (a {T})-->(b {T}) RETURN b",
    f"MATCH (a {T})-[:R]->(b) RETURN b",
    f"MATCH (a {T})<-[:R]-(b) RETURN b",
    f"MATCH (a {T})--() RETURN a",
    f"MATCH (), (n {T}) RETURN n",
    "MATCH (n {tenant: $tenant, tenant: 'B'}) RETURN n",
    "MATCH (n {tenant: $tenant + 'x'}) RETURN n",
    f"MATCH (n {T}) WITH count(n) AS c MATCH (n) RETURN n",
    f"MATCH (n {T}) WITH n.x AS x MATCH (m) WHERE m.x = x RETURN m",
    f"MATCH (n {T}) CALL db.index.fulltext.queryNodes('all', 'x') YIELD node RETURN node",
    f"MATCH (n {T}) RETURN apoc.map.fromNodes('Customer', 'name') AS m",
    f"MATCH (n {T}) RETURN custom.lookup('Customer') AS m",
    f"MATCH (n {T}) RETURN myUdf(n) AS m",
    f"MATCH (n {T}) MATCH (m:Secret) WHERE m.tenant = $tenant OR m.public RETURN m",
    f"CYPHER runtime=slotted MATCH (n {T}) MATCH (m) RETURN m",
    f"MATCH (n {T}) FINISH",
    f"MATCH (n {T}) RETURN n NEXT MATCH (m) RETURN m",
    f"MATCH (n {T}) LET x = 1 MATCH (m) RETURN m",
]


@pytest.mark.parametrize("query", BYPASSES)
def test_unscoped_statement_refused(query: str) -> None:
    d = judge_cypher(query, TENANT, tenant="A")
    assert d.code is not None, query
    assert query not in d.reason


@pytest.mark.parametrize(
    "query",
    [
        f"MATCH (n {T}) WITH n AS MATCH (m) RETURN m",
        f"MATCH (n {T}) RETURN n AS x AS y",
        f"MATCH (n {T}) (m) RETURN m",
        f"MATCH (n {T}) RETURN n ORDER n.x",
        f"MATCH (n {T}) UNWIND n.tags RETURN n",
        f"MATCH (n {T} WHERE) RETURN n",
        f"MATCH (n {T}) RETURN n MATCH (m) RETURN m",
    ],
)
def test_shapes_not_understood_are_refused(query: str) -> None:
    assert judge_cypher(query, TENANT, tenant="A").code is not None


def test_use_refused_on_tenant_route() -> None:
    # not a bypass before (read-only routes refuse USE), but not understood on tenant routes
    rw = GraphPolicy(tenant_parameter="tenant", read_only=False)
    assert judge_cypher(f"USE other MATCH (n {T}) RETURN n", rw, tenant="A").code is not None


def test_non_ascii_names_refused_on_tenant_route() -> None:
    # Python upper-cases U+017F to 'S', so such a word could pass for a keyword the guard
    # splits on; Neo4j reads it as a name. Backtick-quoted names are fine.
    q = f"MATCH (n {T}) WHERE n.x = 1 \u017fOR true RETURN n"
    assert judge_cypher(q, TENANT, tenant="A").code is ErrorCode.TENANT_MISMATCH
    assert (
        judge_cypher("MATCH (`\u00f1` {tenant: $tenant}) RETURN 1", TENANT, tenant="A").code is None
    )


def test_scoping_refusal_is_tenant_mismatch() -> None:
    d = judge_cypher(f"MATCH (n {T}) MATCH (m) RETURN m", TENANT, tenant="A")
    assert d.code is ErrorCode.TENANT_MISMATCH and "(m)" in d.reason


def test_writes_refused_on_writable_tenant_route() -> None:
    rw = GraphPolicy(tenant_parameter="tenant", read_only=False)
    for q in (
        f"MATCH (n {T}) SET n.tenant = 'B' RETURN n",
        f"MATCH (n {T}) CREATE (m {{tenant: 'B'}}) RETURN m",
        f"MATCH (n {T}) MATCH (m) DETACH DELETE m",
        f"MATCH (n {T}) MERGE (m:X {{id: 1}}) RETURN m",
    ):
        assert judge_cypher(q, rw, tenant="A").code is ErrorCode.TENANT_MISMATCH, q


SCOPED: list[str] = [
    f"MATCH (n:Customer {T}) RETURN n.name",
    "MATCH (n) WHERE n.tenant = $tenant RETURN n",
    "MATCH (n) WHERE $tenant = n.tenant RETURN n",
    "MATCH (n) WHERE (n.tenant = $tenant) RETURN n",
    "MATCH (n) WHERE n.x = 1 AND (n.y = 2 AND n.tenant = $tenant) RETURN n",
    "MATCH (n) WHERE n.tenant = $tenant AND (n.x = 1 OR n.y = 2) RETURN n",
    "MATCH (n:Customer WHERE n.tenant = $tenant) RETURN n",
    "MATCH (n {`tenant`: $`tenant`}) RETURN n",
    f"MATCH (a {T})-[r:KNOWS]->(b {T}) RETURN a, r, b",
    f"MATCH (a {T})-[r:KNOWS {{since: 2020}}]-(b) WHERE b.tenant = $tenant RETURN b",
    f"MATCH p = (a {T})-->(b {T})<--(c {T}) RETURN p, nodes(p)",
    f"MATCH (a {T}), (b {T}) WHERE a.x = b.x RETURN a, b",
    f"MATCH (a {T}) MATCH (a)-[:R]->(b {T}) RETURN b",
    f"MATCH (a {T}) WITH a AS x MATCH (x)-->(m) WHERE m.tenant = $tenant RETURN m",
    f"MATCH (a {T}) WITH * MATCH (a)-->(m {T}) RETURN m",
    f"MATCH (a {T}) OPTIONAL MATCH (a)-->(m {T}) RETURN a, m",
    f"MATCH (n {T}) RETURN n UNION MATCH (n {T}) RETURN n",
    f"MATCH (n {T}) RETURN n.x AS x UNION ALL MATCH (m {T}) RETURN m.x AS x",
    f"MATCH (n {T}) UNWIND n.tags AS t RETURN t, count(*) AS c ORDER BY c DESC SKIP 1 LIMIT 3",
    f"MATCH (n {T}) WITH n WHERE n.x > 1 RETURN n {{.name, .email}} AS c",
    f"MATCH (n {T}) WITH DISTINCT n.x AS x, n ORDER BY x LIMIT 3 RETURN x, n",
    f"MATCH (n {T}) WHERE n.name STARTS WITH 'a' AND n.name ENDS WITH 'z' RETURN n",
    f"MATCH (n {T}) RETURN [x IN n.tags WHERE x <> 'a' | toUpper(x)] AS tags",
    f"MATCH (n {T}) RETURN CASE WHEN n.x > 1 THEN 'big' ELSE 'small' END AS size",
    "MATCH (n) WHERE n.tenant = $tenant AND (CASE WHEN n.x > 1 THEN true ELSE false END) "
    "RETURN n",
    f"MATCH (n {T}) RETURN all(x IN n.tags WHERE x STARTS WITH 'a') AS ok",
    f"MATCH (n {T}) WHERE n:Customer|Supplier RETURN labels(n), elementId(n)",
    f"EXPLAIN MATCH (n {T}) RETURN n",
    f"PROFILE MATCH (n {T}) RETURN count(n) AS c",
    f"MATCH (n {T}) RETURN date.truncate('month', n.created) AS m",
]


@pytest.mark.parametrize("query", SCOPED)
def test_scoped_statement_allowed(query: str) -> None:
    d = judge_cypher(query, TENANT, tenant="A")
    assert d.code is None, (query, d.reason)
    assert d.parameters == {"tenant": "A"} and d.statement == query


def test_tenant_property_configurable() -> None:
    p = GraphPolicy.from_spec(GraphSpec(tenant={"parameter": "tid", "property": "org"}))
    assert judge_cypher("MATCH (n {org: $tid}) RETURN n", p, tenant="A").code is None
    d = judge_cypher("MATCH (n {tid: $tid}) RETURN n", p, tenant="A")
    assert d.code is ErrorCode.TENANT_MISMATCH


def test_allowed_function_by_name_on_tenant_route() -> None:
    p = GraphPolicy.from_spec(
        GraphSpec(tenant={"parameter": "tenant"}, allowed_procedures=["apoc.text.*"])
    )
    q = f"MATCH (n {T}) RETURN apoc.text.join(n.tags, ',') AS s"
    assert judge_cypher(q, p, tenant="A").code is None
    # procedures stay refused on tenant routes even when named
    p2 = GraphPolicy.from_spec(
        GraphSpec(tenant={"parameter": "tenant"}, allowed_procedures=["db.labels"])
    )
    assert judge_cypher("CALL db.labels()", p2, tenant="A").code is not None


def test_deep_nesting_is_judged_not_raised() -> None:
    # a recursion error must not escape the guard (it did in the first version of this rule)
    deep = "MATCH (n) WHERE " + "(" * 3000 + "n.tenant = $tenant" + ")" * 3000 + " RETURN n"
    assert judge_cypher(deep, TENANT, tenant="A").code is ErrorCode.TENANT_MISMATCH
    shallow = "MATCH (n) WHERE ((n.tenant = $tenant)) AND ((n.x = 1)) RETURN n"
    assert judge_cypher(shallow, TENANT, tenant="A").code is None
