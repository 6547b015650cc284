"""Neo4j / Gremlin Server HTTP request shapes: decode, encode, endpoint classification."""

from __future__ import annotations

import json

import pytest

from proxy.graph.neo4j import Endpoint, decode, encode, endpoint
from proxy.model.call import GraphStatement
from proxy.model.errors import ErrorCode, ProxyError

TX_BODY = {
    "statements": [
        {"statement": "MATCH (n) RETURN n", "parameters": {"a": 1}, "resultDataContents": ["row"]},
        {"statement": "RETURN 1"},
    ]
}
QUERY_BODY = {"statement": "MATCH (n) RETURN n", "parameters": {"x": [1]}, "includeCounters": True}
GREMLIN_BODY = {"gremlin": "g.V()", "bindings": {"x": 1}, "language": "gremlin-groovy"}


@pytest.mark.parametrize(
    ("api", "body", "expected"),
    [
        (
            "neo4j-tx",
            TX_BODY,
            [GraphStatement("MATCH (n) RETURN n", {"a": 1}), GraphStatement("RETURN 1")],
        ),
        ("neo4j-tx", {"statements": []}, []),
        ("neo4j-tx", {}, []),
        ("neo4j-tx", None, []),
        ("neo4j-query", QUERY_BODY, [GraphStatement("MATCH (n) RETURN n", {"x": [1]})]),
        (
            "neo4j-query",
            {"statement": "RETURN 1", "parameters": None},
            [GraphStatement("RETURN 1")],
        ),
        ("gremlin-http", GREMLIN_BODY, [GraphStatement("g.V()", {"x": 1})]),
    ],
)
def test_decode(api: str, body: object, expected: list[GraphStatement]) -> None:
    assert decode(api, body) == expected


@pytest.mark.parametrize(
    ("api", "body", "code"),
    [
        ("neo4j-tx", [], ErrorCode.TOOL_BAD_REQUEST),
        ("neo4j-tx", {"statements": {}}, ErrorCode.TOOL_BAD_REQUEST),
        ("neo4j-tx", {"statements": ["MATCH (n)"]}, ErrorCode.TOOL_BAD_REQUEST),
        ("neo4j-tx", {"statements": [{"statement": 1}]}, ErrorCode.TOOL_BAD_REQUEST),
        ("neo4j-tx", {"statements": [{"parameters": {}}]}, ErrorCode.TOOL_BAD_REQUEST),
        (
            "neo4j-tx",
            {"statements": [{"statement": "x", "parameters": []}]},
            ErrorCode.INVALID_PARAMS,
        ),
        ("neo4j-query", None, ErrorCode.TOOL_BAD_REQUEST),
        ("neo4j-query", {"query": "x"}, ErrorCode.TOOL_BAD_REQUEST),
        ("neo4j-query", {"statement": "x", "parameters": "a"}, ErrorCode.INVALID_PARAMS),
        ("gremlin-http", {"statement": "g.V()"}, ErrorCode.TOOL_BAD_REQUEST),
        ("gremlin-http", {"gremlin": "g.V()", "bindings": [1]}, ErrorCode.INVALID_PARAMS),
        ("nope", {}, ErrorCode.TOOL_BAD_REQUEST),
    ],
)
def test_decode_malformed(api: str, body: object, code: ErrorCode) -> None:
    with pytest.raises(ProxyError) as info:
        decode(api, body)
    assert info.value.code is code


@pytest.mark.parametrize(
    ("api", "body"),
    [("neo4j-tx", TX_BODY), ("neo4j-query", QUERY_BODY), ("gremlin-http", GREMLIN_BODY)],
)
def test_round_trip_unchanged(api: str, body: dict) -> None:
    wire = json.loads(json.dumps(body))
    out = encode(api, wire, decode(api, wire))
    if api == "neo4j-tx":  # an absent parameters key comes back as {}
        expected = json.loads(json.dumps(body))
        expected["statements"][1]["parameters"] = {}
        assert out == expected
    else:
        assert out == body
    assert decode(api, out) == decode(api, body)
    assert wire == body  # input not mutated


def test_encode_rewrites_statements_and_keeps_other_keys() -> None:
    new = [
        GraphStatement("MATCH (n) RETURN n LIMIT 5", {"a": 1, "tenant_id": "t"}),
        GraphStatement("RETURN 2"),
    ]
    out = encode("neo4j-tx", TX_BODY, new)
    assert out["statements"][0] == {
        "statement": "MATCH (n) RETURN n LIMIT 5",
        "parameters": {"a": 1, "tenant_id": "t"},
        "resultDataContents": ["row"],
    }
    assert out["statements"][1] == {"statement": "RETURN 2", "parameters": {}}
    assert TX_BODY["statements"][0]["statement"] == "MATCH (n) RETURN n"


def test_query_api_read_only_forces_access_mode() -> None:
    body = {**QUERY_BODY, "accessMode": "Write"}
    out = encode("neo4j-query", body, decode("neo4j-query", body), read_only=True)
    assert out["accessMode"] == "Read"
    assert encode("neo4j-query", body, decode("neo4j-query", body))["accessMode"] == "Write"
    assert "accessMode" not in encode(
        "neo4j-tx", TX_BODY, decode("neo4j-tx", TX_BODY), read_only=True
    )


def test_single_statement_apis_refuse_many() -> None:
    with pytest.raises(ProxyError):
        encode("neo4j-query", QUERY_BODY, [GraphStatement("a"), GraphStatement("b")])


@pytest.mark.parametrize(
    ("api", "method", "path", "expected"),
    [
        ("neo4j-tx", "POST", "/db/neo4j/tx/commit", Endpoint.STATEMENTS),
        ("neo4j-tx", "POST", "/db/neo4j/tx", Endpoint.STATEMENTS),
        ("neo4j-tx", "POST", "/db/neo4j/tx/17", Endpoint.STATEMENTS),
        ("neo4j-tx", "POST", "/db/neo4j/tx/17/commit", Endpoint.STATEMENTS),
        ("neo4j-tx", "DELETE", "/db/neo4j/tx/17", Endpoint.NO_STATEMENTS),
        ("neo4j-tx", "GET", "/", Endpoint.NO_STATEMENTS),
        ("neo4j-tx", "GET", "/db/neo4j/tx/commit", Endpoint.UNKNOWN),
        ("neo4j-tx", "POST", "/db/neo4j/query/v2", Endpoint.UNKNOWN),
        ("neo4j-tx", "POST", "/db/neo4j/tx/1/2/3", Endpoint.UNKNOWN),
        ("neo4j-query", "POST", "/db/neo4j/query/v2", Endpoint.STATEMENTS),
        ("neo4j-query", "POST", "/db/neo4j/tx/commit", Endpoint.UNKNOWN),
        ("gremlin-http", "POST", "/", Endpoint.STATEMENTS),
        ("gremlin-http", "GET", "/", Endpoint.UNKNOWN),
    ],
)
def test_endpoint(api: str, method: str, path: str, expected: Endpoint) -> None:
    assert endpoint(api, method, path) is expected


@pytest.mark.parametrize(
    ("api", "body"),
    [
        # `aliases` rebinds g to another traversal source: the judged `g.V()` is not the run one
        ("gremlin-http", {"gremlin": "g.V()", "aliases": {"g": "g_all_tenants"}}),
        ("gremlin-http", {"gremlin": "g.V()", "language": "gremlin-python"}),
        ("gremlin-http", {"gremlin": "g.V()", "language": None}),
        ("neo4j-query", {"statement": "MATCH (n) RETURN n", "impersonatedUser": "admin"}),
        ("neo4j-query", {"statement": "RETURN 1", "somethingNew": 1}),
        ("neo4j-tx", {"statements": [], "extra": 1}),
        ("neo4j-tx", {"statements": [{"statement": "RETURN 1", "impersonatedUser": "a"}]}),
    ],
)
def test_keys_the_guard_does_not_understand_are_refused(api: str, body: object) -> None:
    with pytest.raises(ProxyError) as info:
        decode(api, body)
    assert info.value.code is ErrorCode.POLICY_DENY
