"""`callwarden explain`: one call through a route's codec and guards, never sent.

`--sql TEXT` puts the SQL where the route's `sql.location` says a real client would;
`--request FILE` takes a whole HTTP request (JSON: method, path, headers, body) for any
route kind. The answer says what `run` would do: verdict, code, reasons, what audit mode
let through, and the rewritten SQL or body.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from proxy.compile import CompiledRoute, CompiledRules
from proxy.config.load import RulesError, load_rules
from proxy.config.schema import SqlSpec
from proxy.model.call import Caller
from proxy.pipeline import parse_roles
from proxy.replay import SKIP_GUARDS, dry_compile, judge, make_request
from proxy.routing import host_only, normalize_path, split_target
from proxy.sql.pg.hook import parser_for

RawRequest = tuple[str, str, str, list[tuple[str, str]], bytes | None]
"""method, upstream path, query string, headers, body."""
_JSON_PRESETS = {
    "generic": ("/", "/query"),
    "snowflake": ("/api/v2/statements", "/statement"),
    "databricks": ("/api/2.0/sql/statements", "/statement"),
}
_JSON = [("Content-Type", "application/json")]
_TEXT = [("Content-Type", "text/plain; charset=utf-8")]


def _nest(pointer: str, value: Any) -> Any:
    """{"a": {"b": value}} for /a/b (RFC 6901 escapes undone)."""
    for step in reversed(pointer.lstrip("/").split("/")):
        value = {step.replace("~1", "/").replace("~0", "~"): value}
    return value


def sql_request(spec: SqlSpec, sql: str) -> RawRequest:
    """The request a client of this SQL API would send to run `sql`."""
    loc = spec.location
    if loc.preset in _JSON_PRESETS:
        path, pointer = _JSON_PRESETS[loc.preset]
        return "POST", path, "", _JSON, json.dumps(_nest(pointer, sql)).encode()
    if loc.preset == "trino":
        return "POST", "/v1/statement", "", _TEXT, sql.encode()
    if loc.preset == "clickhouse" or loc.body == "raw":
        return "POST", "/", "", _TEXT, sql.encode()
    if loc.query_param is not None:
        return "GET", "/", urlencode({loc.query_param: sql}), [], None
    return "POST", "/", "", _JSON, json.dumps(_nest(loc.json_pointer or "/query", sql)).encode()


def file_request(compiled: CompiledRules, route: CompiledRoute, file: str) -> RawRequest:
    """A request file, routed like `run` routes it (prefix stripped for this route)."""
    try:
        doc = json.loads(Path(file).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RulesError([f"{file}: cannot read request: {exc.__class__.__name__}"]) from None
    if not isinstance(doc, dict):
        raise RulesError([f"{file}: a request is a JSON object {{method, path, headers, body}}"])
    raw_headers = doc.get("headers") or {}
    headers = [(str(k), str(v)) for k, v in dict(raw_headers).items()]
    body = doc.get("body")
    if isinstance(body, (dict, list)):
        data: bytes | None = json.dumps(body).encode()
        if not any(k.lower() == "content-type" for k, _ in headers):
            headers += _JSON
    else:
        data = None if body is None else str(body).encode()
    host, raw_path, query = split_target(str(doc.get("path") or "/"))
    path = normalize_path(raw_path)
    host = host or host_only(dict((k.lower(), v) for k, v in headers).get("host"))
    found = compiled.table.match(host, path)
    if found is not None and found[0] is route:
        path = found[1]
    return str(doc.get("method") or "GET").upper(), path, query, headers, data


async def explain(args: argparse.Namespace) -> dict[str, Any]:
    loaded = load_rules(args.rules)
    compiled = dry_compile(loaded)
    route = compiled.routes.get(args.route)
    if route is None:
        names = ", ".join(compiled.routes) or "none"
        raise RulesError([f"{args.rules}: no route named '{args.route}' (routes: {names})"])
    if args.sql is not None:
        if route.spec.sql is None or route.kind != "sql":
            raise RulesError([f"--sql needs a sql route; '{route.name}' is {route.kind}: "
                              "use --request FILE"])
        method, path, query, headers, body = sql_request(route.spec.sql, args.sql)
    else:
        method, path, query, headers, body = file_request(compiled, route, args.request)
    ident = compiled.identity
    given = {k.lower(): v for k, v in headers}
    tenant = args.tenant if args.tenant is not None else given.get(ident.tenant_header.lower())
    roles = args.role if args.role is not None else given.get(ident.role_header.lower())
    own = {ident.tenant_header.lower(), ident.role_header.lower()}
    headers = [(k, v) for k, v in headers if k.lower() not in own]
    headers += [(h, v) for h, v in ((ident.tenant_header, tenant), (ident.role_header, roles)) if v]
    claims = None
    if getattr(args, "claims", None):
        try:
            claims = json.loads(args.claims)
        except ValueError:
            raise RulesError(["--claims must be a JSON object"]) from None
        if not isinstance(claims, dict):
            raise RulesError(["--claims must be a JSON object"])
    caller = Caller(tenant or None, parse_roles(roles), "explain", "", claims)
    result = await judge(compiled, route, make_request(method, path, query, headers, body), caller)
    reasons = [f"{result.guard}: {result.reason}"] if result.reason else []
    return {
        "route": route.name,
        "kind": route.kind,
        "mode": route.mode,
        "guard_modes": route.guard_modes,
        "guards": [g.name for g in route.chain],
        "skipped": [g.name for g in route.chain if g.name in SKIP_GUARDS],
        "verdict": "deny" if result.verdict != "allow" else "allow",
        "error_code": result.code,
        "reasons": reasons,
        "would_deny": result.would_deny,
        "rewritten_sql": result.rewrite.get("rewritten_sql"),
        "sql_parser": parser_for(route.spec.sql.dialect) if route.spec.sql else None,
        "rewritten_body": result.rewrite.get("rewritten_body"),
        "conditions": result.conditions,
        "approval": result.approval,
    }
