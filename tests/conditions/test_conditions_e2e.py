"""`when:` conditions and `sql.allow_tables` through a running proxy with verified
identity: the README's worked examples (a refund limit per role on an MCP tool, EU-only
tenants on a SQL route), audit mode, explain and replay."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from proxy.config.load import load_rules
from proxy.explain import explain
from proxy.replay import dry_compile, replay
from tests.codecs.mcp_servers import FakeMcp
from tests.identity.keys import AUDIENCE, ISSUER, SigningKey, jwks

KEY = SigningKey.make("k1", "EdDSA")
JSON_SSE = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
REFUND_WHEN = ('tool.arguments.amount <= ("supervisor" in identity.roles ? 5000 : 500)'
               ' && tool.arguments.currency in ["EUR", "USD"]')
EU_WHEN = 'identity.claims.region == "eu" && sql.kind == "select"'


def identity(tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "jwks.json"
    path.write_bytes(jwks(KEY))
    return {"jwt": {"issuer": ISSUER, "audiences": [AUDIENCE], "jwks_file": str(path)}}


def bearer(roles: list[str], tenant: str = "acme", **claims: Any) -> dict[str, str]:
    token = KEY.sign({"roles": roles, "tenant": tenant, **claims})
    return {"Authorization": f"Bearer {token}"}


def routes(mcp_url: str, sql_url: str, **sql_extra: Any) -> list[dict[str, Any]]:
    return [
        {"name": "billing", "kind": "mcp", "match": {"path_prefix": "/mcp"},
         "upstream": mcp_url,
         "mcp": {"tools": {"refund": {"roles": ["support", "supervisor"],
                                      "when": REFUND_WHEN},
                           "add": {"roles": ["*"]}}}},
        {"name": "analytics", "kind": "sql", "match": {"path_prefix": "/sql"},
         "upstream": sql_url,
         "sql": {"dialect": "duckdb", "when": EU_WHEN,
                 "allow_tables": {"roles": {"analyst": ["orders", "customers"],
                                            "finance": ["orders", "payments"]}}},
         **sql_extra},
    ]


async def refund(p, headers: dict[str, str], amount: Any, currency: str = "EUR") -> Any:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "refund", "arguments": {"amount": amount, "currency": currency}}}
    async with p.session.post(f"{p.url}/mcp", json=body, headers={**JSON_SSE, **headers}) as r:
        return json.loads(await r.read())


async def query(p, headers: dict[str, str], sql: str) -> tuple[int, Any]:
    async with p.session.post(f"{p.url}/sql/", json={"query": sql}, headers=headers) as r:
        return r.status, await r.json()


async def start(tmp_path, write_rules, start_proxy, serve_app, upstream, **top: Any):
    fake = FakeMcp()
    mcp_url = await serve_app(fake.app) + "/mcp"
    up, sql_url = upstream
    sql_extra = top.pop("sql_extra", {})
    path = write_rules(routes(mcp_url, sql_url, **sql_extra), identity=identity(tmp_path),
                       **top)
    return await start_proxy(path), fake, up, path


async def test_refund_limit_per_role(tmp_path, write_rules, start_proxy, serve_app,
                                     upstream) -> None:
    p, fake, _, _ = await start(tmp_path, write_rules, start_proxy, serve_app, upstream)
    ok = await refund(p, bearer(["support"]), 120)
    assert "result" in ok, ok
    sent = len(fake.calls)
    over = await refund(p, bearer(["support"]), 800)
    assert over["error"]["data"]["error_code"] == "POLICY_DENY", over
    assert "routes[billing].mcp.tools.refund.when is false" in over["error"]["message"]
    assert len(fake.calls) == sent  # never reached the server
    assert "result" in await refund(p, bearer(["support", "supervisor"]), 800)
    # Missing and ill-typed arguments fail closed, and say the rule.
    body = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "refund", "arguments": {"currency": "EUR"}}}
    async with p.session.post(f"{p.url}/mcp", json=body,
                              headers={**JSON_SSE, **bearer(["support"])}) as r:
        doc = json.loads(await r.read())
    assert "a field it reads is missing" in doc["error"]["message"], doc
    wrong = await refund(p, bearer(["support"]), "120")
    assert "wrong type" in wrong["error"]["message"]


async def test_eu_only_tenants_and_tables_per_role(tmp_path, write_rules, start_proxy,
                                                   serve_app, upstream) -> None:
    p, _, up, _ = await start(tmp_path, write_rules, start_proxy, serve_app, upstream)
    eu = bearer(["analyst"], region="eu")
    status, _ = await query(p, eu, "select * from orders join customers using (id)")
    assert status == 200 and len(up.calls) == 1
    status, body = await query(p, bearer(["analyst"], region="us"), "select * from orders")
    assert status == 403 and body["error"]["code"] == "POLICY_DENY"
    assert "routes[analytics].sql.when is false" in body["error"]["message"]
    # allow_tables: an analyst may not read payments, finance may.
    status, body = await query(p, eu, "select * from payments")
    assert body["error"]["code"] == "PERMISSION_DENIED", body
    status, _ = await query(p, bearer(["finance"], region="eu"), "select * from payments")
    assert status == 200
    # A table hidden in a subquery or CTE body is still a table read.
    status, body = await query(p, eu, "with x as (select * from payments) select * from x")
    assert body["error"]["code"] == "PERMISSION_DENIED"
    # A caller allow_tables does not name is refused.
    status, body = await query(p, bearer(["intern"], region="eu"), "select * from orders")
    assert body["error"]["code"] == "PERMISSION_DENIED"
    assert len(up.calls) == 2


async def test_audit_mode_counts_would_deny(tmp_path, write_rules, start_proxy, serve_app,
                                            upstream) -> None:
    p, _, up, _ = await start(tmp_path, write_rules, start_proxy, serve_app, upstream,
                              sql_extra={"guard_modes": {"sql_safety": "audit"}})
    status, _ = await query(p, bearer(["analyst"], region="us"), "select * from orders")
    assert status == 200 and len(up.calls) == 1
    assert await p.metric_eventually("callwarden_audit_would_deny_total", 1.0,
                                     route="analytics", guard="sql_safety",
                                     error_code="POLICY_DENY") == 1.0


async def test_explain_shows_values_and_replay_re_evaluates(tmp_path, write_rules, serve_app,
                                                            upstream) -> None:
    _up, url = upstream
    path = write_rules(routes(url + "/mcp", url), identity=identity(tmp_path))
    args = argparse.Namespace(rules=str(path), route="analytics", tenant="acme",
                              role="analyst", sql="select * from orders", request=None,
                              claims='{"region": "us"}')
    out = await explain(args)
    assert out["verdict"] == "deny"
    [seen] = out["conditions"]
    assert seen["expression"] == EU_WHEN and seen["holds"] is False
    assert seen["values"]["identity.claims"] == {"region": "us"}
    assert seen["values"]["sql.kind"] == "select"
    # replay: a logged call with EU claims, re-judged under rules that now want "us".
    record = {"verdict": "allow", "method": "POST", "path": "/sql/", "route": "analytics",
              "headers": [["Content-Type", "application/json"]],
              "body": json.dumps({"query": "select * from orders"}),
              "tenant": "acme", "role": "analyst", "claims": {"region": "eu"}}
    same = await replay(dry_compile(load_rules(path)), [record])
    assert same["unchanged"] == 1
    doc = load_rules(path).rules.model_dump(mode="json", by_alias=True, exclude_unset=True)
    doc["routes"][1]["sql"]["when"] = EU_WHEN.replace('"eu"', '"us"')
    path.write_text(json.dumps(doc))
    changed = await replay(dry_compile(load_rules(path)), [record])
    assert changed["newly_denied"]["count"] == 1, changed


def test_validate_reports_the_rule_path(tmp_path, write_rules) -> None:
    from proxy.config.load import RulesError

    bad = routes("http://127.0.0.1:1/mcp", "http://127.0.0.1:1")
    bad[0]["mcp"]["tools"]["refund"]["when"] = "tool.arguments.amount <= identity.bogus"
    path = write_rules(bad, identity=identity(tmp_path))
    try:
        load_rules(path)
    except RulesError as exc:
        text = "\n".join(exc.problems)
    else:
        raise AssertionError("loaded")
    assert "routes[0].mcp.tools.refund.when" in text and "identity.bogus" in text


async def test_graph_route_when(tmp_path, write_rules, start_proxy, upstream) -> None:
    up, url = upstream
    route = {"name": "graph", "kind": "graph", "match": {"path_prefix": "/graph"},
             "upstream": url,
             "graph": {"language": "cypher", "api": "neo4j-tx",
                       "when": '"reader" in identity.roles && request.method == "POST"'}}
    p = await start_proxy(write_rules([route], identity=identity(tmp_path)))
    body = {"statements": [{"statement": "MATCH (n) RETURN n LIMIT 1"}]}
    async with p.session.post(f"{p.url}/graph/db/neo4j/tx/commit", json=body,
                              headers=bearer(["reader"])) as r:
        assert r.status == 200, await r.text()
    async with p.session.post(f"{p.url}/graph/db/neo4j/tx/commit", json=body,
                              headers=bearer(["writer"])) as r:
        doc = await r.json()
    assert doc["error"]["code"] == "POLICY_DENY"
    assert "routes[graph].graph.when is false" in doc["error"]["message"]
    assert len(up.calls) == 1


async def test_sql_columns_allowlist(tmp_path, write_rules, start_proxy, upstream) -> None:
    up, url = upstream
    route = {"name": "hr", "kind": "sql", "match": {"path_prefix": "/sql"}, "upstream": url,
             "sql": {"dialect": "postgres",
                     "when": 'sql.columns.all(c, c in ["id", "name", "e.id", "e.name"])'}}
    p = await start_proxy(write_rules([route], identity=identity(tmp_path)))
    h = bearer(["analyst"])
    status, _ = await query(p, h, "select e.id, name from employees e")
    assert status == 200
    for sql in ("select salary from employees", "select * from employees",
                "select e.* from employees e", "select x from (select salary as x from e) s"):
        status, body = await query(p, h, sql)
        assert body["error"]["code"] == "POLICY_DENY", (sql, body)
    assert len(up.calls) == 1
