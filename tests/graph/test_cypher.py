"""Cypher guard: write/admin corpus refused on read-only routes, read corpus allowed
(keywords hidden in strings, comments, backticks, properties, map keys), tenant and LIMIT."""

from __future__ import annotations

import pytest

from proxy.config.schema import GraphSpec
from proxy.graph.cypher import judge_cypher
from proxy.graph.policy import GraphPolicy
from proxy.model.errors import ErrorCode

RO = GraphPolicy()

BLOCKED: list[tuple[str, str]] = [
    ("CREATE (n:Person {name: 'a'})", "CREATE"),
    ("create (n)", "CREATE"),
    ("MATCH (a), (b) CREATE (a)-[:KNOWS]->(b)", "CREATE"),
    ("MERGE (n:Person {id: 1})", "MERGE"),
    ("MATCH (n) MERGE (n)-[:R]->(:X)", "MERGE"),
    ("MERGE (n:P {id: 1}) ON CREATE SET n.c = 1", "MERGE"),
    ("MATCH (n) DELETE n", "DELETE"),
    ("MATCH (n) DETACH DELETE n", "DETACH DELETE"),
    ("MATCH (n) detach delete n", "DETACH DELETE"),
    ("MATCH (n) NODETACH DELETE n", "NODETACH DELETE"),
    ("MATCH ()-[r]->() DELETE r", "DELETE"),
    ("MATCH (n) SET n.name = 'x'", "SET"),
    ("MATCH (n) SET n:Admin", "SET"),
    ("MATCH (n) SET n += {a: 1}", "SET"),
    ("MATCH (n) SET n = {}", "SET"),
    ("MATCH (n) REMOVE n.name", "REMOVE"),
    ("MATCH (n) REMOVE n:Label", "REMOVE"),
    ("DROP INDEX idx", "DROP"),
    ("DROP CONSTRAINT c IF EXISTS", "DROP"),
    ("DROP DATABASE foo", "DROP"),
    ("CREATE INDEX FOR (n:P) ON (n.x)", "CREATE"),
    ("CREATE CONSTRAINT FOR (n:P) REQUIRE n.id IS UNIQUE", "CREATE"),
    ("CREATE USER bob SET PASSWORD 'x'", "CREATE"),
    ("CREATE DATABASE foo", "CREATE"),
    ("ALTER USER bob SET PASSWORD 'y'", "ALTER"),
    ("GRANT ROLE admin TO bob", "GRANT"),
    ("DENY READ {*} ON GRAPH * TO bob", "DENY"),
    ("REVOKE ROLE admin FROM bob", "REVOKE"),
    ("RENAME USER bob TO alice", "RENAME"),
    ("START DATABASE foo", "START"),
    ("STOP DATABASE foo", "STOP"),
    ("TERMINATE TRANSACTIONS 'neo4j-transaction-1'", "TERMINATE"),
    ("SHOW USERS", "SHOW"),
    ("SHOW DATABASES", "SHOW"),
    ("SHOW TRANSACTIONS", "SHOW"),
    ("ENABLE SERVER 'x'", "ENABLE"),
    ("DEALLOCATE DATABASES FROM SERVER 'x'", "DEALLOCATE"),
    ("USE system SHOW USERS", "USE"),
    ("INSERT (n:Person {name: 'a'})", "INSERT"),
    ("LOAD CSV FROM 'file:///x.csv' AS row RETURN row", "LOAD CSV"),
    ("LOAD CSV WITH HEADERS FROM 'https://evil/x' AS row RETURN row", "LOAD CSV"),
    ("MATCH p = (a)-->(b) FOREACH (n IN nodes(p) | SET n.marked = true)", "FOREACH"),
    (
        "UNWIND range(1, 10) AS i CALL { WITH i RETURN i AS j } IN TRANSACTIONS RETURN j",
        "IN TRANSACTIONS",
    ),
    ("MATCH (n) CALL (n) { RETURN n AS m } IN TRANSACTIONS OF 10 ROWS RETURN m", "IN TRANSACTIONS"),
    ("MATCH (n) CALL { WITH n SET n.x = 1 } RETURN n", "SET"),
    ("MATCH (n) WHERE EXISTS { MATCH (n)-->(m) DELETE m } RETURN n", "DELETE"),
    ("CALL dbms.security.createUser('a', 'b', false)", "dbms.security.createUser"),
    ("CALL dbms.killQuery('q-1')", "dbms.killQuery"),
    ("CALL dbms.setConfigValue('x', 'y')", "dbms.setConfigValue"),
    ("CALL db.createLabel('X')", "db.createLabel"),
    ("CALL db.createIndex('i', ['X'], ['p'], 'native-btree-1.0')", "db.createIndex"),
    ("CALL db.index.fulltext.createNodeIndex('i', ['X'], ['p'])", "db.index.fulltext.create"),
    ("CALL db.index.fulltext.drop('i')", "db.index.fulltext.drop"),
    ("CALL db.clearQueryCaches()", "db.clearQueryCaches"),
    ("CALL apoc.create.node(['X'], {a: 1})", "apoc.create.node"),
    ("CALL apoc.merge.node(['X'], {id: 1})", "apoc.merge.node"),
    (
        "MATCH (a), (b) CALL apoc.refactor.mergeNodes([a, b]) YIELD node RETURN node",
        "apoc.refactor.mergeNodes",
    ),
    (
        "CALL apoc.periodic.iterate('MATCH (n) RETURN n', 'DETACH DELETE n', {})",
        "apoc.periodic.iterate",
    ),
    ("CALL apoc.load.json('https://evil/x') YIELD value RETURN value", "apoc.load.json"),
    ("CALL apoc.load.jdbc('jdbc:x', 'SELECT 1') YIELD row RETURN row", "apoc.load.jdbc"),
    ("CALL apoc.cypher.runWrite('CREATE (n)', {})", "apoc.cypher.runWrite"),
    ("CALL apoc.cypher.run('MATCH (n) RETURN n', {}) YIELD value RETURN value", "apoc.cypher.run"),
    ("RETURN apoc.cypher.runFirstColumnSingle('MATCH (n) RETURN n', {})", "apoc.cypher"),
    ("CALL apoc.do.when(true, 'CREATE (n)', '', {})", "apoc.do.when"),
    ("CALL apoc.export.csv.all('/tmp/x.csv', {})", "apoc.export.csv.all"),
    ("CALL apoc.trigger.add('t', 'RETURN 1', {})", "apoc.trigger.add"),
    ("MATCH (n) CALL apoc.nodes.delete(n, 10) YIELD value RETURN value", "apoc.nodes.delete"),
    ("CALL gds.pageRank.write('g', {writeProperty: 'pr'})", "gds.pageRank.write"),
    ("CALL gds.louvain.mutate('g', {mutateProperty: 'c'})", "gds.louvain.mutate"),
    ("CALL gds.graph.drop('g')", "gds.graph.drop"),
    ("CALL `dbms`.`security`.`createUser`('a', 'b')", "dbms.security.createUser"),
    ("CALL DBMS.SECURITY.CREATEUSER('a', 'b')", "DBMS.SECURITY.CREATEUSER"),
    ("OPTIONAL CALL apoc.create.node(['X'], {})", "apoc.create.node"),
    ("CALL dbms.shutdown", "dbms.shutdown"),
    ("MATCH (n) WITH n AS set SET set.x = 1", "SET"),
    ("MATCH (n) // comment\nDELETE n", "DELETE"),
    ("MATCH (n) /* multi\nline */ DELETE n", "DELETE"),
    ("MATCH (n {name: 'DELETE'}) DELETE n", "DELETE"),
    ("MATCH (n) WITH n, 'x' AS y DELETE n", "DELETE"),
    ("MATCH (n:Person)\nSET\nn.x = 1", "SET"),
]

ALLOWED: list[str] = [
    "MATCH (n) RETURN n",
    "MATCH (n:Person) WHERE n.name = 'bob' RETURN n.name, n.age",
    "MATCH (n) RETURN count(n)",
    "MATCH (a)-[:KNOWS]->(b) RETURN a, b LIMIT 10",
    "MATCH (n) WHERE n.name = 'CREATE (x)' RETURN n",
    'MATCH (n) WHERE n.name = "DETACH DELETE n" RETURN n',
    "MATCH (n) WHERE n.name = 'it\\'s; DELETE' RETURN n",
    'MATCH (n) WHERE n.q = "say \\"SET\\" now" RETURN n',
    "MATCH (n) // DELETE n\nRETURN n",
    "MATCH (n) /* SET n.x = 1; DROP INDEX */ RETURN n",
    "MATCH (n:`DELETE`) RETURN n",
    "MATCH (n) RETURN n.`SET` AS `CREATE`",
    "MATCH (n) RETURN n.set, n.create, n.delete, n.merge",
    "MATCH (n) WHERE n.remove = true RETURN n.drop",
    "RETURN {create: 1, delete: 2, set: 3, merge: 4}",
    "MATCH (n) RETURN n {.set, .delete, create: n.x}",
    "MATCH (n:Create|Set) RETURN n",
    "MATCH (a)-[r:DELETE|MERGE]->(b) RETURN r",
    "MATCH (n) WHERE n:Remove RETURN n",
    "MATCH (n) RETURN n.name AS set",
    "WITH $set AS s, $delete AS d RETURN s, d",
    "MATCH (n) WHERE n.name STARTS WITH 'a' RETURN n ORDER BY n.name DESC SKIP 5 LIMIT 5",
    "OPTIONAL MATCH (n)-[:R*1..3]->(m) RETURN m",
    "MATCH p = shortestPath((a)-[*]-(b)) RETURN p",
    "UNWIND [1, 2, 3] AS x RETURN x * 2 AS y",
    "MATCH (n) WITH n ORDER BY n.x LIMIT 3 RETURN collect(n) AS ns",
    "MATCH (n) RETURN CASE WHEN n.x > 1 THEN 'big' ELSE 'small' END AS size",
    "MATCH (n) WHERE EXISTS { MATCH (n)-->(:X) } RETURN n",
    "MATCH (n) RETURN COUNT { (n)-->() } AS degree",
    "MATCH (n) CALL { WITH n MATCH (n)-->(m) RETURN count(m) AS c } RETURN n, c",
    "CALL db.labels() YIELD label RETURN label",
    "CALL db.labels",
    "CALL db.schema.visualization()",
    "MATCH (n) RETURN n UNION MATCH (m) RETURN m AS n",
    "SHOW INDEXES",
    "SHOW CONSTRAINTS",
    "SHOW PROCEDURES",
    "EXPLAIN MATCH (n) RETURN n",
    "PROFILE MATCH (n) RETURN n",
    "MATCH (n) RETURN n;",
    "MATCH (n) WHERE n.x =~ 'a.*' RETURN n",
    "MATCH (n) RETURN [x IN n.list WHERE x > 1 | x.delete] AS xs",
    "RETURN 0x1F, 1.5e3, .5, 1_000 AS n",
    "MATCH (n) RETURN n // trailing comment with ; and DELETE",
    "MATCH (n) WHERE n.name = $name RETURN n",
    "MATCH (n) RETURN n.`weird``name`",
    "CALL db.relationshipTypes() YIELD relationshipType RETURN relationshipType",
    "CALL db.index.fulltext.queryNodes('names', 'bob') YIELD node RETURN node",
    "RETURN date.truncate('month', date()) AS d, point.distance(point({x: 0, y: 0}), $p)",
    "MATCH (n) RETURN toLower(n.name), size(n.tags), coalesce(n.x, 0), elementId(n)",
    "MATCH (n:Person) USING INDEX n:Person(name) WHERE n.name = 'a' RETURN n",
    "MATCH (n) RETURN {a: NOT (n.x = 1), b: n.y IN ([1, 2])} AS m",
]


@pytest.mark.parametrize(("query", "clause"), BLOCKED)
def test_write_and_admin_blocked(query: str, clause: str) -> None:
    d = judge_cypher(query, RO)
    assert d.code is ErrorCode.SQL_BLOCKED, query
    assert clause.lower() in d.reason.lower()
    assert query not in d.reason  # never echo the whole query


@pytest.mark.parametrize("query", ALLOWED)
def test_reads_allowed(query: str) -> None:
    d = judge_cypher(query, RO)
    assert d.code is None, (query, d.reason)
    assert d.statement == query and not d.rewritten


def test_corpus_sizes() -> None:
    assert len(BLOCKED) >= 60 and len(ALLOWED) >= 40


@pytest.mark.parametrize(
    "query",
    [
        "MATCH (n) RETURN n; MATCH (m) DETACH DELETE m",
        "MATCH (n) RETURN n; MATCH (m) RETURN m",
        "RETURN 'unterminated",
        'RETURN "unterminated',
        "MATCH (n:`unterminated) RETURN n",
        "MATCH (n) /* unterminated RETURN n",
        "MATCH (n RETURN n",
        "MATCH (n)) RETURN n",
        "RETURN [1, 2",
        "RETURN {a: 1]",
        "RETURN \\ 1",
        "",
        "   // only a comment",
    ],
)
def test_unreadable_or_multiple_fail_closed(query: str) -> None:
    assert judge_cypher(query, RO).code is ErrorCode.SQL_BLOCKED


def test_write_route_allows_writes_but_keeps_rules_blocklist() -> None:
    rw = GraphPolicy(read_only=False, blocked_procedures=("custom.wipe*",))
    assert judge_cypher("MATCH (n) DETACH DELETE n", rw).code is None
    assert judge_cypher("CALL dbms.components()", rw).code is None
    d = judge_cypher("CALL custom.wipeAll()", rw)
    assert d.code is ErrorCode.SQL_BLOCKED and "custom.wipeAll" in d.reason
    assert judge_cypher("MATCH (n) RETURN n; RETURN 1", rw).code is ErrorCode.SQL_BLOCKED


def test_rules_blocked_procedures_on_read_route() -> None:
    p = GraphPolicy.from_spec(GraphSpec(blocked_procedures=["db.labels"]))
    assert judge_cypher("CALL db.labels()", p).code is ErrorCode.SQL_BLOCKED
    assert judge_cypher("CALL db.relationshipTypes()", p).code is None


# --- tenant parameter --------------------------------------------------------------

TENANT = GraphPolicy.from_spec(GraphSpec(tenant={"parameter": "tenant_id", "property": "tenant"}))


def test_tenant_parameter_set_when_absent() -> None:
    d = judge_cypher("MATCH (n {tenant: $tenant_id}) RETURN n", TENANT, tenant="acme")
    assert d.code is None and d.rewritten
    assert d.parameters == {"tenant_id": "acme"}


def test_tenant_parameter_same_value_kept() -> None:
    q = "MATCH (n) WHERE n.tenant = $tenant_id RETURN n"
    d = judge_cypher(q, TENANT, parameters={"tenant_id": "acme", "x": 1}, tenant="acme")
    assert d.code is None and not d.rewritten and d.parameters == {"tenant_id": "acme", "x": 1}


def test_tenant_parameter_other_value_refused() -> None:
    q = "MATCH (n) WHERE n.tenant = $tenant_id RETURN n"
    d = judge_cypher(q, TENANT, parameters={"tenant_id": "evil"}, tenant="acme")
    assert d.code is ErrorCode.TENANT_MISMATCH


@pytest.mark.parametrize(
    "query",
    [
        "MATCH (n) RETURN n",
        "MATCH (n) WHERE n.tenant = '$tenant_id' RETURN n",  # inside a string
        "MATCH (n) // $tenant_id\nRETURN n",  # inside a comment
        "MATCH (n) WHERE n.tenant = $tenant RETURN n",  # another parameter
    ],
)
def test_statement_must_reference_tenant_parameter(query: str) -> None:
    d = judge_cypher(query, TENANT, tenant="acme")
    assert d.code is ErrorCode.TENANT_MISMATCH and "$tenant_id" in d.reason


def test_backtick_parameter_counts() -> None:
    d = judge_cypher("MATCH (n {tenant: $`tenant_id`}) RETURN n", TENANT, tenant="acme")
    assert d.code is None


def test_tenant_missing_caller_tenant() -> None:
    d = judge_cypher("MATCH (n {tenant: $tenant_id}) RETURN n", TENANT, tenant=None)
    assert d.code is ErrorCode.AUTH_FAILED


# --- max_rows ------------------------------------------------------------------------

CAP = GraphPolicy(max_rows=100)


@pytest.mark.parametrize(
    ("query", "params", "expected"),
    [
        ("MATCH (n) RETURN n", {}, "MATCH (n) RETURN n LIMIT 100"),
        ("MATCH (n) RETURN n;", {}, "MATCH (n) RETURN n LIMIT 100;"),
        ("MATCH (n) RETURN n // c", {}, "MATCH (n) RETURN n LIMIT 100 // c"),
        ("MATCH (n) RETURN n LIMIT 10", {}, "MATCH (n) RETURN n LIMIT 10"),
        ("MATCH (n) RETURN n LIMIT 100", {}, "MATCH (n) RETURN n LIMIT 100"),
        ("MATCH (n) RETURN n LIMIT 5000", {}, "MATCH (n) RETURN n LIMIT 100"),
        ("MATCH (n) RETURN n limit 0x1000", {}, "MATCH (n) RETURN n limit 100"),
        ("MATCH (n) RETURN n SKIP 3", {}, "MATCH (n) RETURN n SKIP 3 LIMIT 100"),
        ("MATCH (n) RETURN n LIMIT $l", {"l": 7}, "MATCH (n) RETURN n LIMIT $l"),
        ("MATCH (n) RETURN n LIMIT $l", {"l": 700}, "MATCH (n) RETURN n LIMIT 100"),
        ("MATCH (n) RETURN n LIMIT $l", {}, "MATCH (n) RETURN n LIMIT 100"),
        ("MATCH (n) RETURN n LIMIT $l", {"l": "7"}, "MATCH (n) RETURN n LIMIT 100"),
        (
            "MATCH (n) RETURN n LIMIT 1 + $l",
            {},
            "MATCH (n) RETURN n LIMIT CASE WHEN (1 + $l) < 100 THEN (1 + $l) ELSE 100 END",
        ),
        (
            "MATCH (n) WITH n LIMIT 5000 RETURN n",
            {},
            "MATCH (n) WITH n LIMIT 5000 RETURN n LIMIT 100",
        ),
        (
            "MATCH (n) CALL { WITH n RETURN n AS m LIMIT 9999 } RETURN m",
            {},
            "MATCH (n) CALL { WITH n RETURN n AS m LIMIT 9999 } RETURN m LIMIT 100",
        ),
        (
            "MATCH (a) RETURN a.x AS x UNION MATCH (b) RETURN b.x AS x LIMIT 5",
            {},
            "CALL { MATCH (a) RETURN a.x AS x UNION MATCH (b) RETURN b.x AS x LIMIT 5 }"
            " RETURN * LIMIT 100",
        ),
        (
            "EXPLAIN MATCH (a) RETURN a UNION ALL MATCH (a) RETURN a",
            {},
            "EXPLAIN CALL { MATCH (a) RETURN a UNION ALL MATCH (a) RETURN a } RETURN * LIMIT 100",
        ),
        ("CALL db.labels()", {}, "CALL db.labels()"),  # no RETURN: response side caps
        ("RETURN 'LIMIT 5000'", {}, "RETURN 'LIMIT 5000' LIMIT 100"),
    ],
)
def test_limit_rewrite(query: str, params: dict, expected: str) -> None:
    d = judge_cypher(query, CAP, parameters=params)
    assert d.code is None
    assert d.statement == expected
    assert d.rewritten == (expected != query)
    assert d.parameters == params  # LIMIT never rewrites a parameter others may use


def test_tenant_and_limit_together() -> None:
    p = GraphPolicy(max_rows=10, tenant_parameter="tenant_id", tenant_property="tenant")
    d = judge_cypher("MATCH (n {tenant: $tenant_id}) RETURN n", p, tenant="t1")
    assert (d.statement, d.parameters) == (
        "MATCH (n {tenant: $tenant_id}) RETURN n LIMIT 10",
        {"tenant_id": "t1"},
    )


def test_from_spec() -> None:
    spec = GraphSpec(max_rows=5, tenant={"parameter": "tid"}, read_only=False)
    p = GraphPolicy.from_spec(spec)
    assert (p.max_rows, p.tenant_parameter, p.read_only, p.language) == (5, "tid", False, "cypher")


# --- unknown procedures and functions on read-only routes (issue 22 item 7) -------------


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("CALL apoc.meta.schema() YIELD value RETURN value", "apoc.meta.schema"),
        ("CALL gds.pageRank.stream('g') YIELD nodeId RETURN nodeId", "gds.pageRank.stream"),
        ("CALL custom.cleanup()", "custom.cleanup"),
        ("CALL `custom.cleanup`()", "custom.cleanup"),
        ("CALL Custom . Cleanup()", "Custom.Cleanup"),
        ("RETURN apoc.text.join(['a', 'b'], ',') AS s", "apoc.text.join"),
        ("RETURN custom.wipe() AS x", "custom.wipe"),
        ("MATCH (n) RETURN myUdf(n) AS x", "myUdf"),
        ("MATCH (n) RETURN `myUdf`(n) AS x", "myUdf"),
        ("RETURN apoc.map.fromNodes('Customer', 'name') AS m", "apoc.map.fromNodes"),
        ("RETURN {a: apoc.cypher.runFirstColumnSingle('MATCH (n) RETURN n', {})}", "apoc.cypher"),
        ("MATCH (n) RETURN {a: myUdf(n)} AS m", "myUdf"),
    ],
)
def test_unknown_procedures_and_functions_refused_on_read_only(query: str, name: str) -> None:
    d = judge_cypher(query, RO)
    assert d.code is ErrorCode.SQL_BLOCKED, query
    assert name in d.reason


def test_allowed_procedures_by_name() -> None:
    p = GraphPolicy.from_spec(
        GraphSpec(allowed_procedures=["apoc.meta.schema", "apoc.text.*", "gds.*.stream"])
    )
    for q in (
        "CALL apoc.meta.schema() YIELD value RETURN value",
        "RETURN apoc.text.join(['a', 'b'], ',') AS s",
        "CALL gds.pageRank.stream('g') YIELD nodeId RETURN nodeId",
    ):
        assert judge_cypher(q, p).code is None, q
    # the built-in blocklist wins over an allow glob
    wide = GraphPolicy.from_spec(GraphSpec(allowed_procedures=["apoc.*"]))
    assert judge_cypher("CALL apoc.cypher.run('MATCH (n) DELETE n', {})", wide).code is not None
    assert judge_cypher("CALL apoc.meta.schema()", wide).code is None
