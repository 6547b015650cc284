"""Deciding one statement seen on the wire: pure functions over the route's guard.

The SQL guard (proxy.sql.engine.SqlGuard) does the real work; this module adds what only
the wire protocol knows about (COPY and function calls on read-only routes, empty queries)
and turns a refusal into the ErrorResponse the client will see.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

from proxy.model.errors import ERROR_TABLE, ErrorCode
from proxy.pgwire import messages as m

SYNTAX_ERROR = "42601"
_ID = r'(?:[A-Za-z_][A-Za-z0-9_$]*|"[^"\x00]+")'
_TX_MODE = (r"(?:ISOLATION\s+LEVEL\s+(?:SERIALIZABLE|REPEATABLE\s+READ|READ\s+COMMITTED|"
            r"READ\s+UNCOMMITTED)|READ\s+ONLY|READ\s+WRITE|(?:NOT\s+)?DEFERRABLE)")
_TX_MODES = rf"(?:\s+{_TX_MODE}(?:\s*,?\s*{_TX_MODE})*)?"
_CHAIN = r"(?:\s+AND\s+(?:NO\s+)?CHAIN)?"
_HOUSEKEEPING_ONE = (
    rf"(?:BEGIN(?:\s+(?:WORK|TRANSACTION))?{_TX_MODES}|START\s+TRANSACTION{_TX_MODES}"
    rf"|(?:COMMIT|END|ROLLBACK|ABORT)(?:\s+(?:WORK|TRANSACTION))?{_CHAIN}"
    rf"|SAVEPOINT\s+{_ID}|RELEASE(?:\s+SAVEPOINT)?\s+{_ID}"
    rf"|ROLLBACK(?:\s+(?:WORK|TRANSACTION))?\s+TO(?:\s+SAVEPOINT)?\s+{_ID}"
    rf"|DEALLOCATE(?:\s+PREPARE)?\s+(?:ALL|{_ID})|CLOSE\s+(?:ALL|{_ID})|DISCARD\s+ALL"
    rf"|UNLISTEN\s+\*|RESET\s+ALL|SHOW\s+(?:ALL|{_ID})|SELECT\s+pg_advisory_unlock_all\(\))"
)
_HOUSEKEEPING = re.compile(
    rf"\s*{_HOUSEKEEPING_ONE}\s*(?:;\s*{_HOUSEKEEPING_ONE}\s*)*;?\s*", re.I
)
_LEADING = re.compile(r"(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?\*/|\()*", re.S)
_WORD = re.compile(r"[A-Za-z_]+")


class Judge(Protocol):
    """What the listener needs from proxy.sql.engine.SqlGuard."""

    def judge(self, sql: str, tenant: str | None) -> Any: ...


@dataclass(frozen=True, slots=True)
class Outcome:
    code: ErrorCode | None
    """None = allowed."""
    reason: str = ""
    sql: str = ""
    """What to send upstream (the guard's rewrite, or the original)."""
    rewritten: bool = False
    statement_kind: str | None = None
    sqlstate: str | None = None
    """SQLSTATE for a refusal; None = the error table's."""


def first_keyword(sql: str) -> str:
    """The statement's first word, lower case, after comments and parentheses."""
    match = _WORD.match(sql, _LEADING.match(sql).end())  # type: ignore[union-attr]
    return match.group(0).lower() if match else ""


def is_empty(sql: str) -> bool:
    """Nothing but blanks, comments and semicolons: the server answers EmptyQueryResponse."""
    stripped = _LEADING.sub("", sql.replace(";", " "))
    return not stripped.strip()


def is_housekeeping(sql: str) -> bool:
    """Transaction control and session clean-up that drivers send on their own (psycopg's
    BEGIN, asyncpg's pool reset). Harmless on any route, so allowed before the guard,
    which would refuse them as session statements. Matched strictly: no comments, quotes
    only around identifiers, nothing else in the text."""
    return _HOUSEKEEPING.fullmatch(sql) is not None


def _sqlstate(decision: Any) -> str | None:
    """42601 for SQL the guard could not parse; the table's SQLSTATE otherwise."""
    kind = getattr(decision, "statement_kind", None)
    reason = str(getattr(decision, "reason", "")).lower()
    if kind == "unparseable" or "parse" in reason or "tokeniz" in reason:
        return SYNTAX_ERROR
    return None


def judge_sql(guard: Judge | None, sql: str, tenant: str | None, read_only: bool) -> Outcome:
    """Never raises: a guard failure is an INTERNAL_ERROR refusal (fail closed)."""
    if is_empty(sql):
        return Outcome(None, sql=sql)
    if read_only and first_keyword(sql) == "copy":
        return Outcome(ErrorCode.SQL_BLOCKED, "COPY is not allowed on a read-only route", sql,
                       statement_kind="copy")
    if guard is None or is_housekeeping(sql):
        return Outcome(None, sql=sql, statement_kind=None if guard is None else "session")
    try:
        d = guard.judge(sql, tenant)
    except Exception:  # the guard promises not to raise; if it does, refuse
        return Outcome(ErrorCode.INTERNAL_ERROR, "the SQL guard failed", sql)
    if d.code is not None:
        return Outcome(d.code, d.reason, sql, False, d.statement_kind, _sqlstate(d))
    return Outcome(None, d.reason, d.sql, bool(d.rewritten), d.statement_kind)


def refusal(code: ErrorCode, reason: str, sqlstate: str | None = None,
            severity: str = "ERROR") -> bytes:
    """The ErrorResponse for a refusal: message starts with the CallWarden code."""
    state = sqlstate or ERROR_TABLE[code].sqlstate
    return m.error_response(state, f"{code.value}: {reason}", severity=severity)
