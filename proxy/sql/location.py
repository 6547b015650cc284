"""Where a SQL-over-HTTP request carries its SQL, and how to put a rewrite back in the
same place with everything else unchanged. Pure functions over method/path/query/body.

Presets cover the real APIs: ClickHouse HTTP (`?query=` or raw body), Trino
(`POST /v1/statement`, raw body), Snowflake SQL API and Databricks SQL statements
(JSON `statement`), and a generic JSON `{query, params}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from proxy.config.schema import SqlLocation
from proxy.model.errors import ErrorCode, ProxyError
from proxy.model.jsonio import DuplicateKeyError, dumps, loads_unique

_JSON_PRESETS: dict[str, tuple[str, str | None]] = {
    "generic": ("/query", "/params"),
    "snowflake": ("/statement", "/bindings"),
    "databricks": ("/statement", "/parameters"),
}
Pairs = list[tuple[str, str]]


def _missing(what: str) -> ProxyError:
    return ProxyError(ErrorCode.INVALID_PARAMS, f"SQL not found in {what}")


def carries_sql(loc: SqlLocation, method: str, path: str) -> bool:
    """False for the requests of a SQL API that carry no SQL (result polling, cancel),
    which the codec forwards without judging."""
    m = method.upper()
    if loc.preset == "trino":
        return m == "POST" and path.rstrip("/").endswith("/v1/statement")
    if loc.preset in ("snowflake", "databricks"):
        return m == "POST" and path.rstrip("/").endswith("/statements")
    return True


Mode = tuple[str, str, str | None]
_MODES: dict[int, tuple[SqlLocation, Mode]] = {}
"""Mode by location object: read three times per call, and pydantic attribute reads are
slow enough that deciding it each time cost more than the rest of the SQL decode."""


def _mode(loc: SqlLocation, query: Mapping[str, str]) -> Mode:
    """(kind, where, params pointer): kind is json, query or body."""
    hit = _MODES.get(id(loc))
    if hit is not None and hit[0] is loc:
        return hit[1]
    mode = _decide_mode(loc, query)
    if loc.preset != "clickhouse":  # the one mode that depends on the request
        if len(_MODES) > 1024:
            _MODES.clear()
        _MODES[id(loc)] = (loc, mode)  # the entry holds loc, so its id is not reused
    return mode


def _decide_mode(loc: SqlLocation, query: Mapping[str, str]) -> Mode:
    if loc.preset in _JSON_PRESETS:
        ptr, params = _JSON_PRESETS[loc.preset]
        return "json", ptr, params
    if loc.preset == "clickhouse":
        return ("query", "query", None) if "query" in query else ("body", "", None)
    if loc.preset == "trino" or loc.body == "raw":
        return "body", "", None
    if loc.query_param is not None:
        return "query", loc.query_param, None
    return "json", loc.json_pointer or "/query", loc.params


def extract(
    loc: SqlLocation,
    method: str,
    path: str,
    query: Mapping[str, str],
    body: bytes | None,
    doc: Any = None,
) -> tuple[str, Any | None]:
    """(sql, params) from the request; ProxyError(INVALID_PARAMS) when not there.
    `doc`: the body already decoded as JSON, when the caller has it."""
    kind, where, params_ptr = _mode(loc, query)
    if kind == "query":
        values = [v for k, v in query.items() if k == where]
        if len(values) != 1 or not values[0].strip():
            # SECURITY: two values could be judged one way and run the other.
            raise _missing(f"query parameter '{where}' (exactly one expected)")
        if loc.preset == "clickhouse" and body:
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
    sql = pointer_get(doc, where)
    if not isinstance(sql, str) or not sql.strip():
        raise _missing(f"JSON field {where}")
    params = pointer_get(doc, params_ptr) if params_ptr else None
    return sql, params


def replace(
    loc: SqlLocation,
    query: Mapping[str, str],
    body: bytes | None,
    new_sql: str,
    doc: Any = None,
) -> tuple[Pairs | None, bytes | None]:
    """(new query pairs or None, new body or None): only the SQL changes. `doc` is the
    body already decoded; it is not modified (the call that holds it stays as judged)."""
    kind, where, _ = _mode(loc, query)
    if kind == "query":
        return [(k, new_sql if k == where else v) for k, v in query.items()], None
    if kind == "body":
        return None, new_sql.encode("utf-8")
    if doc is None:
        doc = json_body(body)
    return None, dumps(pointer_with(doc, where, new_sql), body or b"")


def is_json(loc: SqlLocation, query: Mapping[str, str]) -> bool:
    """The SQL sits in a JSON body (so the codec can decode it once for every guard)."""
    return _mode(loc, query)[0] == "json"


def _text(body: bytes | None) -> str:
    try:
        return (body or b"").decode("utf-8")
    except UnicodeDecodeError:
        raise ProxyError(ErrorCode.INVALID_PARAMS, "request body is not UTF-8") from None


def json_body(body: bytes | None) -> Any:
    """The body as JSON; ProxyError(INVALID_PARAMS) when it is not, or when an object
    in it names a key twice (the API could run the copy the guards did not judge)."""
    try:
        return loads_unique(_text(body))
    except DuplicateKeyError:
        raise ProxyError(ErrorCode.INVALID_PARAMS, "request body repeats a JSON key") from None
    except ValueError:
        raise ProxyError(ErrorCode.INVALID_PARAMS, "request body is not valid JSON") from None


@lru_cache(maxsize=256)
def _steps(pointer: str) -> tuple[str, ...]:
    """A route has one or two pointers: parsed once, not per call."""
    if pointer == "":
        return ()
    if not pointer.startswith("/"):
        raise ProxyError(ErrorCode.INVALID_PARAMS, "bad JSON pointer")
    return tuple(p.replace("~1", "/").replace("~0", "~") for p in pointer[1:].split("/"))


def _child(node: Any, step: str) -> Any:
    if isinstance(node, dict):
        return node.get(step)
    if isinstance(node, list) and step.isdigit() and int(step) < len(node):
        return node[int(step)]
    return None


def pointer_get(doc: Any, pointer: str) -> Any:
    """RFC 6901 lookup; None when any step is missing."""
    node = doc
    for step in _steps(pointer):
        node = _child(node, step)
        if node is None:
            return None
    return node


def pointer_with(doc: Any, pointer: str, value: Any) -> Any:
    """A copy of `doc` with the value at `pointer` replaced: only the containers on the
    path are copied, everything else is shared."""
    steps = _steps(pointer)
    if not steps:
        raise ProxyError(ErrorCode.INVALID_PARAMS, "cannot replace the whole document")
    try:
        return _with(doc, steps, value)
    except LookupError:
        raise _missing(f"JSON field {pointer}") from None


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
