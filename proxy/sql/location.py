"""Where a SQL-over-HTTP request carries its SQL, and how to put a rewrite back in the
same place with everything else unchanged. Pure functions over method/path/query/body.

Presets cover the real APIs: ClickHouse HTTP (`?query=` or raw body), Trino
(`POST /v1/statement`, raw body), Snowflake SQL API and Databricks SQL statements
(JSON `statement`), and a generic JSON `{query, params}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from proxy.config.schema import SqlLocation
from proxy.model.errors import ErrorCode, ProxyError
from proxy.model.jsonio import DuplicateKeyError, dumps, loads_unique

_JSON_PRESETS: dict[str, tuple[str, str | None]] = {
    "generic": ("/query", "/params"),
    "snowflake": ("/statement", "/bindings"),
    "databricks": ("/statement", "/parameters"),
}
_SQL_PATHS = {"trino": "/v1/statement", "snowflake": "/statements", "databricks": "/statements"}
Pairs = list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Where:
    """A route's SqlLocation, decided once: pydantic attribute reads cost enough that
    deciding it on every call cost more than the rest of finding the SQL."""

    kind: Literal["json", "query", "body", "clickhouse"]
    """clickhouse: `?query=` when the request has one, else the raw body."""
    name: str = ""
    """The query parameter."""
    pointer: str = ""
    steps: tuple[str, ...] = ()
    params: tuple[str, ...] | None = None
    sql_path: str = ""
    """Only POSTs to a path ending so carry SQL (the others poll or cancel); "": all."""


def where(loc: SqlLocation) -> Where:
    path = _SQL_PATHS.get(loc.preset or "", "")
    if loc.preset in _JSON_PRESETS:
        ptr, params = _JSON_PRESETS[loc.preset]
    elif loc.preset == "clickhouse":
        return Where("clickhouse", "query")
    elif loc.preset == "trino" or loc.body == "raw":
        return Where("body", sql_path=path)
    elif loc.query_param is not None:
        return Where("query", loc.query_param)
    else:
        ptr, params = loc.json_pointer or "/query", loc.params
    return Where("json", pointer=ptr, steps=_steps(ptr),
                 params=_steps(params) if params else None, sql_path=path)


def _missing(what: str) -> ProxyError:
    return ProxyError(ErrorCode.INVALID_PARAMS, f"SQL not found in {what}")


def carries_sql(w: Where, method: str, path: str) -> bool:
    """False for the requests of a SQL API that carry no SQL (result polling, cancel),
    which the codec forwards without judging."""
    if not w.sql_path:
        return True
    return method.upper() == "POST" and path.rstrip("/").endswith(w.sql_path)


def _kind(w: Where, query: Mapping[str, str]) -> str:
    if w.kind == "clickhouse":
        return "query" if "query" in query else "body"
    return w.kind


def extract(
    w: Where,
    query: Mapping[str, str],
    body: bytes | None,
    doc: Any = None,
) -> tuple[str, Any | None]:
    """(sql, params) from the request; ProxyError(INVALID_PARAMS) when not there.
    `doc`: the body already decoded as JSON, when the caller has it."""
    kind = _kind(w, query)
    if kind == "query":
        values = [v for k, v in query.items() if k == w.name]
        if len(values) != 1 or not values[0].strip():
            # SECURITY: two values could be judged one way and run the other.
            raise _missing(f"query parameter '{w.name}' (exactly one expected)")
        if w.kind == "clickhouse" and body:
            raise ProxyError(ErrorCode.INVALID_PARAMS,
                             "ClickHouse SQL must be in ?query= or the body, not both")
        return values[0], None
    if kind == "body":
        text = _text(body)
        if not text.strip():
            raise _missing("the request body")
        return text, None
    if doc is None:
        doc = json_body(body)
    sql = _get(doc, w.steps)
    if not isinstance(sql, str) or not sql.strip():
        raise _missing(f"JSON field {w.pointer}")
    return sql, _get(doc, w.params) if w.params is not None else None


def replace(
    w: Where,
    query: Mapping[str, str],
    body: bytes | None,
    new_sql: str,
    doc: Any = None,
) -> tuple[Pairs | None, bytes | None]:
    """(new query pairs or None, new body or None): only the SQL changes. `doc` is the
    body already decoded; it is not modified (the call that holds it stays as judged)."""
    if type(doc) is dict and len(w.steps) == 1 and w.kind == "json":  # `_with`, inline
        new_doc = doc.copy()
        new_doc[w.steps[0]] = new_sql
        return None, dumps(new_doc, body or b"")
    kind = _kind(w, query)
    if kind == "query":
        return [(k, new_sql if k == w.name else v) for k, v in query.items()], None
    if kind == "body":
        return None, new_sql.encode("utf-8")
    if doc is None:
        doc = json_body(body)
    if not w.steps:
        raise ProxyError(ErrorCode.INVALID_PARAMS, "cannot replace the whole document")
    try:
        new_doc = _with(doc, w.steps, new_sql)
    except LookupError:
        raise _missing(f"JSON field {w.pointer}") from None
    return None, dumps(new_doc, body or b"")


def _text(body: bytes | None) -> str:
    try:
        return (body or b"").decode("utf-8")
    except UnicodeDecodeError:
        raise ProxyError(ErrorCode.INVALID_PARAMS, "request body is not UTF-8") from None


def json_body(body: bytes | None) -> Any:
    """The body as JSON; ProxyError(INVALID_PARAMS) when it is not, or when an object
    in it names a key twice (the API could run the copy the guards did not judge)."""
    raw = body or b""
    try:
        # ASCII bytes parse exactly as their text (no decode, no copy); else UTF-8 first.
        # SECURITY: not with a NUL: the stdlib would read such bytes as UTF-16/32.
        plain = raw.isascii() and b"\x00" not in raw
        return loads_unique(raw if plain else _text(raw))
    except DuplicateKeyError:
        raise ProxyError(ErrorCode.INVALID_PARAMS, "request body repeats a JSON key") from None
    except ValueError:
        raise ProxyError(ErrorCode.INVALID_PARAMS, "request body is not valid JSON") from None


def _steps(pointer: str) -> tuple[str, ...]:
    """RFC 6901 pointer (the rules checked its form) as its reference tokens."""
    if pointer == "":
        return ()
    return tuple(p.replace("~1", "/").replace("~0", "~") for p in pointer[1:].split("/"))


def _get(doc: Any, steps: tuple[str, ...]) -> Any:
    """The value at the pointer; None when any step is missing."""
    node = doc
    for step in steps:
        if isinstance(node, dict):
            node = node.get(step)
        elif isinstance(node, list) and step.isdigit() and int(step) < len(node):
            node = node[int(step)]
        else:
            return None
        if node is None:
            return None
    return node


def _with(node: Any, steps: tuple[str, ...], value: Any) -> Any:
    step, rest = steps[0], steps[1:]
    if isinstance(node, dict):
        out: Any = dict(node)
        out[step] = _with(node.get(step), rest, value) if rest else value
        return out
    if isinstance(node, list) and step.isdigit() and int(step) < len(node):
        out = list(node)
        i = int(step)
        out[i] = _with(node[i], rest, value) if rest else value
        return out
    raise LookupError(step)
