"""`callwarden explain`: one call judged without sending it, from --sql or --request."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from proxy.cli import main
from proxy.config.schema import SqlSpec
from proxy.explain import sql_request

DEAD = "http://127.0.0.1:9"  # nothing listens: explain must never send


def sql(name: str, location: dict, **extra) -> dict:
    return {"name": name, "kind": "sql", "match": {"path_prefix": f"/{name}"}, "upstream": DEAD,
            "sql": {"location": location, "tenant": {"column": "tenant_id", "tables": ["orders"]},
                    **extra}}


ROUTES = [
    sql("wh", {"json": "/query"}),
    sql("wq", {"query_param": "q"}),
    sql("tr", {"preset": "trino"}),
    sql("nested", {"json": "/job/sql"}),
    {"name": "api", "match": {"path_prefix": "/api"}, "upstream": DEAD,
     "access": {"roles": ["admin"]}},
    {"name": "crm", "match": {"path_prefix": "/crm"}, "upstream": DEAD,
     "access": {"roles": ["admin"]}, "guard_modes": {"access": "audit"}},
]


@pytest.fixture
def rules(tmp_path: Path) -> str:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "routes": ROUTES}, sort_keys=False))
    return str(path)


def explain(capsys, *args: str) -> tuple[int, dict]:
    code = main(["explain", *args, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else {}


@pytest.mark.parametrize("route", ["wh", "wq", "tr", "nested"])
@pytest.mark.parametrize(
    ("text", "code", "verdict", "rewritten"),
    [
        ("SELECT id FROM orders", 0, "allow", "tenant_id = 't1'"),
        ("SELECT 1", 0, "allow", None),
        ("DELETE FROM orders", 1, "deny", None),
    ],
)
def test_explain_sql_in_each_location(capsys, rules, route, text, code, verdict, rewritten):
    rc, out = explain(capsys, "--rules", rules, "--route", route, "--tenant", "t1", "--sql", text)
    assert rc == code and out["verdict"] == verdict and out["route"] == route
    if verdict == "deny":
        assert out["error_code"] == "SQL_BLOCKED" and out["reasons"]
    if rewritten:
        assert rewritten in out["rewritten_sql"]
    else:
        assert out["rewritten_sql"] is None


def test_explain_names_the_parser_and_the_refused_function(capsys, rules):
    rc, out = explain(capsys, "--rules", rules, "--route", "wh", "--tenant", "t1", "--sql",
                      "SELECT id, app.audit(id) FROM orders")
    assert rc == 1 and out["sql_parser"].startswith("libpg_query")
    assert any("function app.audit is not a PostgreSQL built-in" in r and
               "sql.functions.allow" in r for r in out["reasons"])


def test_explain_sql_without_tenant_is_refused(capsys, rules):
    rc, out = explain(capsys, "--rules", rules, "--route", "wh", "--sql", "SELECT id FROM orders")
    assert rc == 1 and out["error_code"] == "AUTH_FAILED"


def request_file(tmp_path: Path, **doc) -> str:
    path = tmp_path / "req.json"
    path.write_text(json.dumps(doc))
    return str(path)


@pytest.mark.parametrize(
    ("route", "doc", "code", "expected"),
    [
        ("api", {"method": "GET", "path": "/api/x", "headers": {"X-Caller-Role": "admin"}},
         0, {"verdict": "allow", "error_code": None}),
        ("api", {"method": "GET", "path": "/api/x", "headers": {"X-Caller-Role": "intern"}},
         1, {"verdict": "deny", "error_code": "PERMISSION_DENIED"}),
        ("crm", {"method": "GET", "path": "/crm/x", "headers": {"X-Caller-Role": "intern"}},
         0, {"verdict": "allow", "mode": "enforce", "guard_modes": {"access": "audit"}}),
        ("wh", {"method": "POST", "path": "/wh/run", "headers": {"X-Tenant-ID": "t1"},
                "body": {"query": "SELECT id FROM orders"}},
         0, {"verdict": "allow"}),
        ("wh", {"method": "POST", "path": "/wh/run", "headers": {"X-Tenant-ID": "t1"},
                "body": {"query": "DROP TABLE orders"}},
         1, {"verdict": "deny", "error_code": "SQL_BLOCKED"}),
        ("wh", {"method": "POST", "path": "/wh/run", "headers": {"X-Tenant-ID": "t1"},
                "body": {"other": 1}},
         1, {"verdict": "deny", "error_code": "INVALID_PARAMS"}),
    ],
)
def test_explain_request_file(capsys, rules, tmp_path, route, doc, code, expected):
    rc, out = explain(capsys, "--rules", rules, "--route", route,
                      "--request", request_file(tmp_path, **doc))
    assert rc == code
    assert {k: out[k] for k in expected} == expected


def test_explain_request_audit_lists_would_deny(capsys, rules, tmp_path):
    doc = {"method": "GET", "path": "/crm/x", "headers": {"X-Caller-Role": "intern"}}
    _, out = explain(capsys, "--rules", rules, "--route", "crm",
                     "--request", request_file(tmp_path, **doc))
    assert out["would_deny"] == [{"guard": "access", "code": "PERMISSION_DENIED",
                                  "reason": "caller role not allowed on this route"}]


def test_explain_text_output_and_usage_errors(capsys, rules, tmp_path):
    assert main(["explain", "--rules", rules, "--route", "wh", "--tenant", "t1",
                 "--sql", "SELECT id FROM orders"]) == 0
    out = capsys.readouterr().out
    assert "verdict    allow" in out and "rewritten_sql" in out
    assert main(["explain", "--rules", rules, "--route", "api", "--sql", "SELECT 1"]) == 2
    assert main(["explain", "--rules", rules, "--route", "nope", "--sql", "SELECT 1"]) == 2
    assert main(["explain", "--rules", rules, "--route", "api",
                 "--request", str(tmp_path / "missing.json")]) == 2


@pytest.mark.parametrize(
    ("location", "method", "path", "query", "body"),
    [
        ({"json": "/query"}, "POST", "/", "", b'{"query": "S"}'),
        ({"json": "/a/b"}, "POST", "/", "", b'{"a": {"b": "S"}}'),
        ({"query_param": "q"}, "GET", "/", "q=S", None),
        ({"body": "raw"}, "POST", "/", "", b"S"),
        ({"preset": "trino"}, "POST", "/v1/statement", "", b"S"),
        ({"preset": "snowflake"}, "POST", "/api/v2/statements", "", b'{"statement": "S"}'),
    ],
)
def test_sql_request_places_sql_like_a_client(location, method, path, query, body):
    m, p, q, _, b = sql_request(SqlSpec(location=location), "S")
    assert (m, p, q, b) == (method, path, query, body)


MCP_AND_GRAPH = [
    {"name": "tools", "kind": "mcp", "match": {"path_prefix": "/mcp"}, "upstream": DEAD + "/mcp",
     "mcp": {"default": "deny", "tools": {
         "add": {"roles": ["analyst"]},
         "run_sql": {"roles": ["analyst"], "sql": {
             "argument": "query", "tenant": {"column": "tenant_id", "tables": ["orders"]}}}}}},
    {"name": "g", "kind": "graph", "match": {"path_prefix": "/g"}, "upstream": DEAD,
     "graph": {"language": "cypher", "api": "neo4j-tx", "tenant": {"parameter": "tenant_id"}}},
]


def rpc(tool: str, args: dict) -> dict:
    return {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": tool, "arguments": args}}


@pytest.mark.parametrize(
    ("route", "path", "body", "verdict", "code", "rewritten"),
    [
        ("tools", "/mcp", rpc("add", {"a": 1, "b": 2}), "allow", None, None),
        ("tools", "/mcp", rpc("delete_user", {}), "deny", "POLICY_DENY", None),
        ("tools", "/mcp", rpc("run_sql", {"query": "select * from orders"}), "allow", None,
         "tenant_id = 'acme'"),
        ("tools", "/mcp", rpc("run_sql", {"query": "delete from orders"}), "deny", "SQL_BLOCKED",
         None),
        ("g", "/g/db/neo4j/tx/commit",
         {"statements": [{"statement": "MATCH (n {tenant_id: $tenant_id}) RETURN n"}]},
         "allow", None, None),
        ("g", "/g/db/neo4j/tx/commit", {"statements": [{"statement": "MATCH (n) DELETE n"}]},
         "deny", "SQL_BLOCKED", None),
    ],
)
def test_explain_request_for_mcp_and_graph(capsys, tmp_path, route, path, body, verdict, code,
                                          rewritten):
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"version": 1, "routes": MCP_AND_GRAPH}))
    doc = {"method": "POST", "path": path, "body": body,
           "headers": {"X-Caller-Role": "analyst", "X-Tenant-ID": "acme",
                       "Accept": "application/json, text/event-stream"}}
    rc, out = explain(capsys, "--rules", str(rules), "--route", route,
                      "--request", request_file(tmp_path, **doc))
    assert (rc, out["verdict"], out["error_code"]) == (int(verdict == "deny"), verdict, code)
    if rewritten:
        assert rewritten in out["rewritten_body"]
