"""Finding the SQL in a request and putting the rewrite back in the same place."""

from __future__ import annotations

import json

import pytest
from multidict import MultiDict
from pydantic import ValidationError

from proxy.config.schema import SqlLocation
from proxy.model.errors import ErrorCode, ProxyError
from proxy.sql.location import Where, carries_sql, extract, replace, where


def loc(**kw: object) -> Where:
    return where(SqlLocation(**kw))  # type: ignore[arg-type]


JSON_CASES = [
    (loc(), {"query": "SELECT 1", "timeout": 5}, "/query", None),
    (loc(json="/q/sql", params="/q/args"), {"q": {"sql": "SELECT 1", "args": [1]}, "x": 1},
     "/q/sql", [1]),
    (loc(json="/a~1b/0"), {"a/b": ["SELECT 1"]}, "/a~1b/0", None),
    (loc(preset="generic"), {"query": "SELECT 1", "params": {"a": 1}}, "/query", {"a": 1}),
    (loc(preset="snowflake"), {"statement": "SELECT 1", "bindings": {"1": {"type": "TEXT"}},
                               "warehouse": "W"}, "/statement", {"1": {"type": "TEXT"}}),
    (loc(preset="databricks"), {"statement": "SELECT 1", "parameters": [{"name": "a"}],
                                "warehouse_id": "w"}, "/statement", [{"name": "a"}]),
]


@pytest.mark.parametrize(("location", "doc", "pointer", "params"), JSON_CASES)
def test_json_locations(location: Where, doc: dict, pointer: str, params: object) -> None:
    body = json.dumps(doc).encode()
    sql, got = extract(location, {}, body)
    assert sql == "SELECT 1" and got == params
    q, new_body = replace(location, {}, body, "SELECT 2 /* ü */")
    assert q is None and new_body is not None
    out = json.loads(new_body)
    node: object = out
    for step in pointer[1:].split("/"):
        step = step.replace("~1", "/")
        node = node[int(step)] if isinstance(node, list) else node[step]  # type: ignore[index]
    assert node == "SELECT 2 /* ü */"
    # everything else unchanged
    assert json.dumps(out).replace("SELECT 2 /* \\u00fc */", "SELECT 1") == json.dumps(doc)
    # from the decoded document the codec holds: the same body, and that document (the
    # call as the guards judged it) untouched
    held = json.loads(body)
    assert replace(location, {}, body, "SELECT 2 /* ü */", held) == (None, new_body)
    assert held == doc


def test_query_param_and_raw_body() -> None:
    q = MultiDict([("db", "x"), ("query", "SELECT 1"), ("fmt", "json")])
    assert extract(loc(query_param="query"), q, None) == ("SELECT 1", None)
    pairs, body = replace(loc(query_param="query"), q, None, "SELECT 2")
    assert pairs == [("db", "x"), ("query", "SELECT 2"), ("fmt", "json")] and body is None
    assert extract(loc(body="raw"), {}, "SELECT ü".encode()) == ("SELECT ü", None)
    assert replace(loc(body="raw"), {}, b"SELECT 1", "SELECT 2") == (None, b"SELECT 2")


def test_presets_clickhouse_and_trino() -> None:
    ch = loc(preset="clickhouse")
    q = {"query": "SELECT 1", "database": "d"}
    assert extract(ch, q, None) == ("SELECT 1", None)
    assert replace(ch, q, None, "SELECT 2")[0] == [("query", "SELECT 2"), ("database", "d")]
    assert extract(ch, {"database": "d"}, b"SELECT 3") == ("SELECT 3", None)
    tr = loc(preset="trino")
    assert extract(tr, {}, b"SELECT 1") == ("SELECT 1", None)
    assert carries_sql(tr, "POST", "/v1/statement")
    assert not carries_sql(tr, "GET", "/v1/statement/queued/abc/1")
    assert not carries_sql(loc(preset="snowflake"), "GET", "/api/v2/statements/handle")
    assert carries_sql(loc(preset="snowflake"), "POST", "/api/v2/statements")


@pytest.mark.parametrize(("location", "query", "body"), [
    (loc(), {}, b'{"sql": "SELECT 1"}'),
    (loc(), {}, b'{"query": 5}'),
    (loc(), {}, b'{"query": "   "}'),
    (loc(), {}, b"not json"),
    (loc(), {}, b"\xff\xfe"),
    (loc(), {}, None),
    (loc(json="/a/3"), {}, b'{"a": ["x"]}'),
    (loc(query_param="query"), {"q": "SELECT 1"}, None),
    (loc(query_param="query"), MultiDict([("query", "SELECT 1"), ("query", "DROP TABLE t")]), None),
    (loc(body="raw"), {}, b""),
    (loc(preset="clickhouse"), {"query": "SELECT 1"}, b"; DROP TABLE t"),
])
def test_missing_or_ambiguous_sql_is_invalid_params(
    location: Where, query: object, body: bytes | None
) -> None:
    with pytest.raises(ProxyError) as err:
        extract(location, query, body)  # type: ignore[arg-type]
    assert err.value.code is ErrorCode.INVALID_PARAMS
    assert "SELECT" not in err.value.message and "DROP" not in err.value.message


@pytest.mark.parametrize("field", ["json", "params"])
def test_a_pointer_without_a_slash_is_a_rules_error(field: str) -> None:
    with pytest.raises(ValidationError, match="not a JSON pointer"):
        SqlLocation(**{field: "query"})  # type: ignore[arg-type]
    assert loc(**{field: ""}) is not None  # the empty pointer is the whole document


def test_a_utf16_body_is_not_json() -> None:
    """ASCII-range bytes with NULs: the stdlib's bytes parser would read them as UTF-16."""
    from proxy.model.errors import ProxyError
    from proxy.sql.location import json_body

    body = '{"query": "SELECT 1"}'.encode("utf-16-le")
    assert body.isascii()
    with pytest.raises(ProxyError, match="not valid JSON"):
        json_body(body)
    assert json_body(b'{"query": "SELECT 1"}') == {"query": "SELECT 1"}
