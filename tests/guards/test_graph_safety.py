"""The graph_safety guard alone: writes refused on read-only routes, the tenant filter
required, the read-mode request and retry safety it sets. The tokenizers and judges are
tested in tests/graph/; this is the guard's glue."""

from __future__ import annotations

import json

import pytest

from proxy.model.call import evolve
from proxy.model.verdict import ALLOW, Deny, Rewrite
from tests.guards.kit import ask, build, code, graph_call, guard, route

CYPHER = route("graph", graph={})
TENANT = route("graph", graph={"tenant": {"parameter": "tenant"}})
WRITABLE = route("graph", graph={"read_only": False})


@pytest.mark.parametrize(
    ("spec", "statements", "expected"),
    [
        (CYPHER, ["MATCH (n) RETURN n LIMIT 5"], None),
        (CYPHER, ["CREATE (n:X) RETURN n"], "SQL_BLOCKED"),  # the query-safety code
        (CYPHER, ["MATCH (n) RETURN n", "MATCH (n) DETACH DELETE n"], "SQL_BLOCKED"),
        (WRITABLE, ["CREATE (n:X) RETURN n"], None),
        (TENANT, ["MATCH (n) RETURN n"], "TENANT_MISMATCH"),
        (TENANT, [("MATCH (n {tenant: $tenant}) RETURN n", {"tenant": "acme"})], None),
    ],
)
async def test_statements(spec, statements, expected) -> None:
    v = await ask(guard("graph_safety", spec), graph_call(*statements))
    assert code(v) == expected, v


async def test_which_statement_is_named_in_a_batch() -> None:
    call = graph_call("MATCH (n) RETURN n", "CREATE (n:X)")
    v = await ask(guard("graph_safety", CYPHER), call)
    assert isinstance(v, Deny) and v.reason.startswith("statement 1: ")


async def test_another_tenants_parameter_is_refused() -> None:
    v = await ask(guard("graph_safety", TENANT),
                  graph_call(("MATCH (n {tenant: $tenant}) RETURN n", {"tenant": "other"})))
    assert code(v) == "TENANT_MISMATCH"


async def test_read_only_commits_are_marked_safe_to_retry() -> None:
    g = guard("graph_safety", CYPHER)
    commit = await ask(g, graph_call("MATCH (n) RETURN n"))
    assert isinstance(commit, Rewrite) and commit.call.idempotent is True
    open_tx = await ask(g, graph_call("MATCH (n) RETURN n", path="/db/neo4j/tx"))
    assert open_tx is ALLOW  # opening a transaction leaves state: not repeatable


async def test_query_api_read_only_asks_the_server_for_read_mode() -> None:
    spec = route("graph", graph={"api": "neo4j-query"})
    call = graph_call("MATCH (n) RETURN n", path="/db/neo4j/query/v2")
    call = evolve(call, json={"statement": "MATCH (n) RETURN n"})
    v = await ask(guard("graph_safety", spec), call)
    assert isinstance(v, Rewrite) and json.loads(v.call.rewritten_body)["accessMode"] == "Read"


async def test_no_statements_pass() -> None:
    assert await ask(guard("graph_safety", CYPHER), graph_call()) is ALLOW


def test_only_graph_routes_get_the_guard() -> None:
    assert build("graph_safety", route()) is None
