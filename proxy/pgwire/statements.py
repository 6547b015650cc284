"""Deciding one statement seen on the wire: what only the wire protocol knows about (COPY
on read-only routes, empty queries, the session settings the proxy owns, driver
housekeeping), as pure functions, and the ErrorResponse a refusal becomes. The rest is
the route's guard chain, the same one HTTP calls run (session.py runs it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from proxy.model.errors import ERROR_TABLE, ErrorCode
from proxy.pgwire import messages as m
from proxy.pgwire.settings import statement_refusal

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
    guard: str = ""
    """The guard that refused (empty: the wire's own checks, or allowed)."""
    would_deny: tuple[tuple[str, str, str], ...] = ()
    """(guard, code, reason) of guards in audit mode that would have refused."""


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


def wire_checks(sql: str, read_only: bool) -> Outcome | None:
    """What only the wire protocol knows about, before the route's guard chain: empty
    queries, COPY on read-only routes, the session settings the proxy owns, and driver
    housekeeping. An Outcome decides the statement; None = the guard chain decides."""
    if is_empty(sql):
        return Outcome(None, sql=sql)
    if read_only and first_keyword(sql) == "copy":
        return Outcome(ErrorCode.SQL_BLOCKED, "COPY is not allowed on a read-only route", sql,
                       statement_kind="copy")
    # SECURITY: before housekeeping, which lets BEGIN ... READ WRITE through otherwise;
    # and outside the guard chain, so no guard mode turns it off.
    owned = statement_refusal(sql, read_only)
    if owned is not None:
        return Outcome(ErrorCode.SQL_BLOCKED, owned[0], sql, statement_kind="session",
                       sqlstate=SYNTAX_ERROR if owned[1] else None)
    if is_housekeeping(sql):
        return Outcome(None, sql=sql, statement_kind="session")
    return None


def sqlstate_of(code: ErrorCode, reason: str, statement_kind: str | None) -> str | None:
    """42601 for SQL the guard could not parse; the table's SQLSTATE otherwise."""
    if code is not ErrorCode.SQL_BLOCKED:
        return None
    low = reason.lower()
    if statement_kind == "unparseable" or "parse" in low or "tokeniz" in low:
        return SYNTAX_ERROR
    return None


def refusal(code: ErrorCode, reason: str, sqlstate: str | None = None,
            severity: str = "ERROR") -> bytes:
    """The ErrorResponse for a refusal: message starts with the CallWarden code."""
    state = sqlstate or ERROR_TABLE[code].sqlstate
    return m.error_response(state, f"{code.value}: {reason}", severity=severity)
