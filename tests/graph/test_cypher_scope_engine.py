"""The Cypher scoping property on a real Cypher engine: every grammar-generated statement
the tenant guard allows runs, as judged (the tenant parameter pinned to the caller's), on
Kuzu (an embedded graph database) holding two tenants' nodes with edges between them, and
no node of the other tenant comes back. Kuzu is not Neo4j, so statements it cannot read
are skipped; the in-memory evaluator (test_cypher_scope_fuzz) checks every clause."""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from proxy.graph.cypher import judge_cypher
from tests.graph.test_cypher_scope_fuzz import EDGES, NODES, POLICY, Branch, branches, statement

kuzu = pytest.importorskip("kuzu")
ME = "A"


@cache
def connection() -> Any:
    db = kuzu.Database(":memory:")
    conn = kuzu.Connection(db)
    for label in ("Customer", "Item"):
        conn.execute(
            f"CREATE NODE TABLE {label}(id STRING, tenant STRING, x INT64, alias STRING,"
            " PRIMARY KEY(id))"
        )
    conn.execute(
        "CREATE REL TABLE R(FROM Customer TO Item, FROM Customer TO Customer,"
        " FROM Item TO Item, FROM Item TO Customer)"
    )
    by_id = {n.id: n for n in NODES}
    for n in NODES:
        conn.execute(
            f"CREATE (:{n.label} {{id: $id, tenant: $t, x: $x, alias: $a}})",
            {"id": n.id, "t": n.tenant, "x": n.x, "a": n.alias},
        )
    for a, b in sorted(EDGES):
        la, lb = by_id[a].label, by_id[b].label
        conn.execute(
            f"MATCH (u:{la} {{id: $a}}), (v:{lb} {{id: $b}}) CREATE (u)-[:R]->(v)",
            {"a": a, "b": b},
        )
    return conn


def rows(text: str, params: dict[str, Any]) -> list[list[Any]] | None:
    """The statement's rows on Kuzu, or None when Kuzu cannot run it (another dialect)."""
    try:
        result = connection().execute(text, params)
    except RuntimeError:
        return None
    out = []
    while result.has_next():
        out.append(result.get_next())
    return out


def nodes_in(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        found = [value] if "_label" in value and "tenant" in value else []
        return found + [n for v in value.values() for n in nodes_in(v)]
    if isinstance(value, list):
        return [n for v in value for n in nodes_in(v)]
    return []


def test_engine_holds_both_tenants() -> None:
    got = rows("MATCH (n) RETURN n.tenant AS t, count(*) AS c ORDER BY t", {})
    assert got == [["A", 2], ["B", 2]]
    leak = rows("MATCH (a {tenant: $tenant})-->(b) RETURN b.id AS id", {"tenant": ME})
    assert leak is not None and ["B1"] in leak  # the cross-tenant edge is there to follow


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(branches(), min_size=1, max_size=2))
def test_allowed_statements_return_no_other_tenant_node(bs: list[Branch]) -> None:
    text = statement(bs)
    d = judge_cypher(text, POLICY, tenant=ME)
    if d.code is not None:
        return
    got = rows(d.statement, d.parameters)
    event("ran on kuzu" if got is not None else "kuzu cannot read it")
    for row in got or []:
        for node in nodes_in(row):
            assert node["tenant"] == ME, (text, node)
