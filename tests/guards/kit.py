"""A small test context for guards (as mitmproxy's taddons context is for addons): build a
guard from a route's rules through its entry in the guard table, a typed call, and a
fresh CallContext, then ask the guard. No proxy, no sockets."""

from __future__ import annotations

import json
import time
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from proxy.capabilities import GUARDS
from proxy.compile import Services
from proxy.config.schema import Rules
from proxy.guards.base import CallContext, Guard
from proxy.model.call import (
    Caller,
    GraphCall,
    GraphStatement,
    HttpCall,
    JsonRpcMessage,
    McpCall,
    Request,
    SqlCall,
)
from proxy.model.deadline import make_deadline
from proxy.model.record import CallRecord
from proxy.model.verdict import Deny, Verdict
from proxy.secrets.store import SecretStore

UPSTREAM = "http://127.0.0.1:9"


def route(kind: str = "http", **spec: Any) -> dict[str, Any]:
    """A route of the rules file, as a dict: name r, prefix /r, the given keys."""
    base: dict[str, Any] = {"name": "r", "kind": kind, "upstream": UPSTREAM,
                            "match": {"path_prefix": "/r"}}
    if kind == "postgres":
        base = {"name": "r", "kind": kind, "listen": "127.0.0.1:0", "upstream": "127.0.0.1:5432"}
    return {**base, **spec}


def rules(spec: dict[str, Any], **top: Any) -> Rules:
    return Rules.model_validate({**top, "routes": [spec]})


def services(r: Rules) -> Services:
    return Services(secrets=SecretStore(r.secrets))


def build(name: str, spec: dict[str, Any], *, svc: Services | None = None,
          **top: Any) -> Guard | None:
    """The guard `name` for the route `spec`, made by its builder in the guard table."""
    r = rules(spec, **top)
    entry = next(e for e in GUARDS if e.name == name)
    return entry.build(r.routes[0], r, svc or services(r))


def guard(name: str, spec: dict[str, Any], **kw: Any) -> Guard:
    made = build(name, spec, **kw)
    assert made is not None, f"route {spec} has no {name} guard"
    assert made.name == name
    return made


def context(environment: str = "production", timeout_s: float = 5.0) -> CallContext:
    rec = CallRecord(start=time.monotonic())
    return CallContext(make_deadline(rec.start, timeout_s, None, None), rec, environment)


def caller(tenant: str | None = "acme", roles: tuple[str, ...] = ()) -> Caller:
    return Caller(tenant, frozenset(roles), "trace")


def request(method: str = "GET", path: str = "/", *, headers: dict[str, str] | None = None,
            query: str = "", body: bytes | None = None) -> Request:
    pairs = [tuple(p.split("=", 1)) for p in query.split("&") if p]
    return Request(
        method, path, query,
        MultiDictProxy(MultiDict(pairs)),
        CIMultiDictProxy(CIMultiDict(headers or {})),
        body,
    )


def http_call(req: Request | None = None, *, tenant: str | None = "acme",
              roles: tuple[str, ...] = (), kind: str = "http") -> HttpCall:
    return HttpCall("r", kind, caller(tenant, roles), req or request())


def json_call(doc: Any, *, tenant: str | None = "acme", roles: tuple[str, ...] = ()) -> HttpCall:
    body = json.dumps(doc).encode()
    req = request("POST", "/", headers={"Content-Type": "application/json"}, body=body)
    return HttpCall("r", "http", caller(tenant, roles), req, json=doc)


def sql_call(sql: str, *, tenant: str | None = "acme", kind: str = "sql") -> SqlCall:
    doc = {"query": sql}
    req = request("POST", "/query", body=json.dumps(doc).encode())
    return SqlCall("r", kind, caller(tenant), req, json=doc, sql=sql)


def graph_call(*statements: str | tuple[str, dict[str, Any]], tenant: str | None = "acme",
               path: str = "/db/neo4j/tx/commit") -> GraphCall:
    stmts = tuple(
        GraphStatement(s) if isinstance(s, str) else GraphStatement(s[0], s[1]) for s in statements
    )
    doc = {"statements": [{"statement": s.text, "parameters": s.parameters} for s in stmts]}
    req = request("POST", path, body=json.dumps(doc).encode())
    return GraphCall("r", "graph", caller(tenant), req, json=doc, statements=stmts)


def rpc(method: str, params: Any = None, id: Any = 1) -> dict[str, Any]:
    """A JSON-RPC request (id None: a notification)."""
    msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        msg["params"] = params
    if id is not None:
        msg["id"] = id
    return msg


def tool_call(name: str, arguments: Any = None, id: Any = 1) -> dict[str, Any]:
    return rpc("tools/call", {"name": name, "arguments": arguments or {}}, id)


def mcp_call(*messages: dict[str, Any], batch: bool = False, tenant: str | None = "acme",
             roles: tuple[str, ...] = ()) -> McpCall:
    doc: Any = list(messages) if batch else messages[0]
    req = request("POST", "/mcp", headers={"Content-Type": "application/json"},
                  body=json.dumps(doc).encode())
    msgs = tuple(JsonRpcMessage(m.get("id"), m.get("method"), m.get("params"), m)
                 for m in messages)
    tool = None
    if len(messages) == 1 and messages[0].get("method") == "tools/call":
        name = (messages[0].get("params") or {}).get("name")
        tool = name if isinstance(name, str) else None
    return McpCall("r", "mcp", caller(tenant, roles), req, tool=tool, json=doc,
                   messages=msgs, batch=batch)


async def ask(g: Guard, call: Any, ctx: CallContext | None = None) -> Verdict:
    return await g.check(call, ctx or context())


def code(v: Verdict) -> str | None:
    """The Deny's error code name, or None for Allow and Rewrite."""
    return v.code.name if isinstance(v, Deny) else None
