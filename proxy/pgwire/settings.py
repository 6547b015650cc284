"""Session settings the proxy owns on a postgres route, judged by PostgreSQL's own parser.

Two settings decide how PostgreSQL's lexer reads the bytes of a statement:
`client_encoding` (in SJIS, BIG5, GBK ... a lead byte swallows the backslash or quote
after it) and `standard_conforming_strings` (off: a backslash escapes a quote in '...').
The guard reads UTF-8 with standard strings, so the proxy opens every upstream session
with exactly those, and refuses every way a client could change them: startup
parameters, `options`, SET / SET NAMES / set_config / ALTER ... SET / function SET
clauses. On read-only routes `default_transaction_read_only` is owned the same way, so
a write that slips past the guard still fails in PostgreSQL with 25006.

RESET, RESET ALL, DISCARD ALL and `SET x TO DEFAULT` go back to the values the session
started with, which are the proxy's: they are allowed (asyncpg's pool reset sends them).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
from pglast.parser import ParseError, parse_sql_json

UTF8_NAMES = frozenset({"utf8", "unicode"})
"""PostgreSQL's aliases of UTF8, after its clean-up (lower case, letters and digits)."""
_TRUE = frozenset({"on", "true", "1"})
READ_ONLY_SETTINGS = frozenset({"default_transaction_read_only", "transaction_read_only"})
_LEXER_SETTINGS = frozenset({"client_encoding", "standard_conforming_strings"})
_IDENTITY_SETTINGS = frozenset({"role", "session_authorization"})
"""Who the session acts as: the route's login, never a role the client picks."""


def clean_encoding(name: str) -> str:
    """As PostgreSQL's clean_encoding_name: letters and digits, lower case."""
    return "".join(c for c in name.lower() if c.isascii() and c.isalnum())


def upstream_settings(read_only: bool) -> dict[str, str]:
    """Startup parameters the proxy sends on every upstream session of a route."""
    out = {"client_encoding": "UTF8", "standard_conforming_strings": "on"}
    if read_only:
        out["default_transaction_read_only"] = "on"
    return out


def owned(name: str, read_only: bool) -> bool:
    n = name.lower()
    return n in _LEXER_SETTINGS or n in _IDENTITY_SETTINGS or (
        read_only and n in READ_ONLY_SETTINGS
    )


def startup_value_refusal(name: str, value: str, read_only: bool) -> str | None:
    """Why a client may not start a session with `name=value`; None = it may (the value
    equals the proxy's own, which is sent anyway)."""
    n = name.lower()
    if n == "client_encoding":
        if clean_encoding(value) in UTF8_NAMES:
            return None
        return "only UTF8 is accepted as client_encoding"
    if n == "standard_conforming_strings" or (read_only and n in READ_ONLY_SETTINGS):
        return None if value.strip().lower() in _TRUE else f"{n} is set by the proxy"
    if n in _IDENTITY_SETTINGS:
        return f"{n} is set by the proxy"
    return None


# --- statements ---------------------------------------------------------------------------

_MARKERS = ('"VariableSetStmt"', '"TransactionStmt"', '"DoStmt"', '"setstmt"')
_WORDS = ("set", "begin", "start", "do", "u&")
"""A text without any of these (in any case) holds none of those nodes: SET, RESET, SET
TRANSACTION, ALTER ... SET and set_config say "set"; transaction modes follow BEGIN or
START; DO says "do"; only a U& identifier can spell set_config with escapes."""


def _walk(node: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every (node type, fields) in a libpg_query JSON tree."""
    stack = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, dict):
            for key, val in cur.items():
                if isinstance(val, dict) and key[:1].isupper():
                    yield key, val
                elif key == "setstmt" and isinstance(val, dict):  # ALTER ROLE/SYSTEM ... SET
                    yield "VariableSetStmt", val
                if isinstance(val, (dict, list)):
                    stack.append(val)
        elif isinstance(cur, list):
            stack.extend(cur)


def _const(node: Any) -> str | int | None:
    """The value of an A_Const string or integer, else None."""
    if not isinstance(node, dict) or "A_Const" not in node:
        return None
    c = node["A_Const"]
    if "sval" in c:
        return str(c["sval"].get("sval", ""))
    if "ival" in c:
        return int(c["ival"].get("ival", 0))
    if "boolval" in c:
        return int(bool(c["boolval"].get("boolval", False)))
    return None


def _set_refusal(stmt: dict[str, Any], read_only: bool) -> str | None:
    kind = stmt.get("kind", "")
    name = str(stmt.get("name", "")).lower()
    if kind in ("VAR_RESET", "VAR_RESET_ALL", "VAR_SET_DEFAULT", "VAR_SET_CURRENT"):
        return None  # back to the session's start values, which are the proxy's
    if kind == "VAR_SET_MULTI":  # SET TRANSACTION / SET SESSION CHARACTERISTICS
        return _modes_refusal(stmt.get("args", []), read_only)
    if not owned(name, read_only):
        return None
    args = stmt.get("args", [])
    value = _const(args[0]) if len(args) == 1 else None
    if value is None:
        return f"SET {name} is not allowed on this route"
    return startup_value_refusal(name, str(value), read_only)


def _modes_refusal(options: list[Any], read_only: bool) -> str | None:
    """Transaction modes: READ WRITE is refused on read-only routes."""
    if not read_only:
        return None
    for opt in options:
        d = opt.get("DefElem", {}) if isinstance(opt, dict) else {}
        if d.get("defname") == "transaction_read_only" and _const(d.get("arg")) != 1:
            return "READ WRITE transactions are not allowed on a read-only route"
    return None


def _set_config_refusal(call: dict[str, Any], read_only: bool) -> str | None:
    names = call.get("funcname", [])
    last = names[-1].get("String", {}).get("sval", "") if names else ""
    if str(last).lower() != "set_config":
        return None
    args = call.get("args", [])
    name = _const(args[0]) if args else None
    if not isinstance(name, str):
        return "set_config with a computed setting name is not allowed"
    if owned(name, read_only):
        return f"set_config of {name.lower()} is not allowed"
    return None


def statement_refusal(sql: str, read_only: bool) -> tuple[str, bool] | None:
    """Why the text may not run on a session whose settings the proxy owns, as
    (reason, syntax error?); None = it changes none of them. Parsed by libpg_query:
    the text PostgreSQL will read is the text judged here."""
    low = sql.lower()
    if not any(word in low for word in _WORDS):
        return None
    try:
        text = parse_sql_json(sql)
    except ParseError:
        return "SQL does not parse as PostgreSQL", True
    except Exception:  # SECURITY: what cannot be read is refused
        return "SQL could not be judged", False
    # Only trees holding one of these nodes can touch a setting: the rest (most reads)
    # need no walk. The JSON holds names as PostgreSQL resolved them (U& escapes decoded).
    if not any(marker in text for marker in _MARKERS) and "set_config" not in text.lower():
        return None
    try:
        tree = orjson.loads(text)
    except Exception:  # SECURITY: what cannot be read is refused
        return "SQL could not be judged", False
    for kind, node in _walk(tree):
        reason: str | None = None
        if kind == "VariableSetStmt":
            reason = _set_refusal(node, read_only)
        elif kind == "TransactionStmt":
            reason = _modes_refusal(node.get("options", []), read_only)
        elif kind == "FuncCall":
            reason = _set_config_refusal(node, read_only)
        elif kind == "DoStmt":
            reason = "DO blocks are not allowed (they can change session settings unseen)"
        if reason is not None:
            return reason, False
    return None


def reported_refusal(body: bytes, read_only: bool) -> str | None:
    """A ParameterStatus body from the upstream: a setting the proxy owns that is no
    longer its value means something changed it unseen (a function, a view): the session
    must end."""
    name, _, rest = body.partition(b"\0")
    n = name.decode("utf-8", "replace").lower()
    value = rest.partition(b"\0")[0].decode("utf-8", "replace")
    if n == "client_encoding" and clean_encoding(value) not in UTF8_NAMES:
        return "the upstream session left UTF8"
    if n == "standard_conforming_strings" and value.lower() != "on":
        return "the upstream session turned standard_conforming_strings off"
    if read_only and n == "default_transaction_read_only" and value.lower() != "on":
        return "the upstream session left read-only mode"
    return None
