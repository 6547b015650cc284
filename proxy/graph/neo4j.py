"""Request shapes of the graph HTTP APIs, decoded to `GraphStatement`s and encoded back.

- `neo4j-tx`: POST /db/{db}/tx/commit, /db/{db}/tx, /db/{db}/tx/{id}[/commit];
  body {"statements": [{"statement", "parameters", ...}]}.
- `neo4j-query`: POST /db/{db}/query/v2; body {"statement", "parameters", ...}.
- `gremlin-http`: POST to Gremlin Server; body {"gremlin", "bindings", ...}.

`encode` keeps every other key of the original body (resultDataContents, bookmarks ...),
so only what a guard changed differs. Pure: no I/O.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Any

from proxy.model.call import GraphStatement
from proxy.model.errors import ErrorCode, ProxyError

_TEXT_KEY = {"neo4j-tx": "statement", "neo4j-query": "statement", "gremlin-http": "gremlin"}
# SECURITY: the body keys the guard understands; others could change what runs or as whom
# (Gremlin `aliases` rebinds `g` to another traversal source, `language` picks another
# parser, Neo4j `impersonatedUser` runs as another user): refused.
_KEYS = {
    "neo4j-tx": frozenset({"statements", "resultDataContents", "includeStats"}),
    "neo4j-query": frozenset(
        {"statement", "parameters", "includeCounters", "bookmarks", "accessMode"}
    ),
    "gremlin-http": frozenset({"gremlin", "bindings", "language"}),
}
_TX_STATEMENT_KEYS = frozenset({"statement", "parameters", "resultDataContents", "includeStats"})
GREMLIN_LANGUAGE = "gremlin-groovy"
_PARAMS_KEY = {"neo4j-tx": "parameters", "neo4j-query": "parameters", "gremlin-http": "bindings"}


class Endpoint(Enum):
    STATEMENTS = "statements"
    """The body carries statements to judge."""
    NO_STATEMENTS = "no_statements"
    """Commit/rollback of an open transaction, discovery: nothing to judge."""
    UNKNOWN = "unknown"
    """Not an endpoint of this API: refuse (deny by default)."""


_TX = re.compile(r"^/db/[^/]+/tx(?:/[^/]+)?(?:/commit)?/?$")
_TX_ID = re.compile(r"^/db/[^/]+/tx/[^/]+/?$")
_QUERY = re.compile(r"^/db/[^/]+/query/v2(?:/tx(?:/[^/]+(?:/commit)?)?)?/?$")


def endpoint(api: str, method: str, path: str) -> Endpoint:
    """Which kind of request this is for the route's API."""
    method = method.upper()
    if api == "gremlin-http":
        return Endpoint.STATEMENTS if method == "POST" else Endpoint.UNKNOWN
    if method == "GET" and path in ("", "/"):
        return Endpoint.NO_STATEMENTS  # discovery document
    pattern = _TX if api == "neo4j-tx" else _QUERY
    if not pattern.match(path):
        return Endpoint.UNKNOWN
    if method == "POST":
        return Endpoint.STATEMENTS
    if method == "DELETE" and (_TX_ID.match(path) or "/tx/" in path):
        return Endpoint.NO_STATEMENTS  # rollback
    return Endpoint.UNKNOWN


def _bad(message: str, code: ErrorCode = ErrorCode.TOOL_BAD_REQUEST) -> ProxyError:
    return ProxyError(code, message)


def _check_keys(doc: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    for key in doc:
        if key not in allowed:
            raise _bad(f"{where} key '{str(key)[:64]}' is not allowed", ErrorCode.POLICY_DENY)


def _statement(api: str, item: Any, where: str) -> GraphStatement:
    if not isinstance(item, dict):
        raise _bad(f"{where} must be a JSON object")
    if api == "neo4j-tx":
        _check_keys(item, _TX_STATEMENT_KEYS, where)
    text = item.get(_TEXT_KEY[api])
    if not isinstance(text, str):
        raise _bad(f"{where}.{_TEXT_KEY[api]} must be a string")
    params = item.get(_PARAMS_KEY[api])
    if params is None:
        params = {}
    elif not isinstance(params, dict):
        raise _bad(f"{where}.{_PARAMS_KEY[api]} must be an object", ErrorCode.INVALID_PARAMS)
    return GraphStatement(text, params)


def decode(api: str, body: Any) -> list[GraphStatement]:
    """The statements of a request body (already JSON-decoded; None = empty body)."""
    if api not in _TEXT_KEY:
        raise _bad(f"unknown graph api '{api}'")
    if body is None:
        if api == "neo4j-tx":
            return []  # committing an open transaction needs no body
        raise _bad("request body required")
    if not isinstance(body, dict):
        raise _bad("request body must be a JSON object")
    if api != "neo4j-tx":
        statement = _statement(api, body, "body")
        _check_keys(body, _KEYS[api], "body")
        if api == "gremlin-http" and body.get("language", GREMLIN_LANGUAGE) != GREMLIN_LANGUAGE:
            raise _bad(f"only language {GREMLIN_LANGUAGE} is judged", ErrorCode.POLICY_DENY)
        return [statement]
    _check_keys(body, _KEYS[api], "body")
    items = body.get("statements", [])
    if not isinstance(items, list):
        raise _bad("statements must be a list")
    return [_statement(api, item, f"statements[{i}]") for i, item in enumerate(items)]


def encode(
    api: str, original: Any, statements: list[GraphStatement], *, read_only: bool = False
) -> dict[str, Any]:
    """The body to send: `original` with each statement's text and parameters replaced.
    On neo4j-query read-only routes `accessMode` is forced to "Read" (defence in depth:
    the server then refuses writes the guard missed)."""
    text_key, params_key = _TEXT_KEY[api], _PARAMS_KEY[api]
    base = dict(original) if isinstance(original, dict) else {}
    if api == "neo4j-tx":
        items = base.get("statements") if isinstance(base.get("statements"), list) else []
        if len(items) != len(statements):
            items = [{} for _ in statements]
        base["statements"] = [
            {**(item if isinstance(item, dict) else {}), text_key: s.text, params_key: s.parameters}
            for item, s in zip(items, statements, strict=True)
        ]
        return base
    if len(statements) != 1:
        raise _bad(f"{api} carries exactly one statement", ErrorCode.INTERNAL_ERROR)
    base[text_key] = statements[0].text
    base[params_key] = statements[0].parameters
    if api == "neo4j-query" and read_only:
        base["accessMode"] = "Read"
    return base
