from __future__ import annotations

import pytest

from proxy.model.errors import ErrorCode
from proxy.pgwire import messages as m
from proxy.pgwire.statements import first_keyword, is_empty, is_housekeeping, refusal, wire_checks


@pytest.mark.parametrize(
    ("sql", "word"),
    [("SELECT 1", "select"), ("  -- c\n/* x */ (copy t to stdout)", "copy"), ("", ""),
     ("/* unterminated", "")],
)
def test_first_keyword(sql: str, word: str) -> None:
    assert first_keyword(sql) == word


@pytest.mark.parametrize(
    ("sql", "empty"), [("", True), (" ; ;", True), ("-- only\n", True), ("/**/;", True),
                       ("SELECT", False)],
)
def test_is_empty(sql: str, empty: bool) -> None:
    assert is_empty(sql) is empty


@pytest.mark.parametrize(
    ("sql", "ok"),
    [
        ("BEGIN", True), ("begin isolation level repeatable read, read only", True),
        ("COMMIT AND NO CHAIN;", True), ('SAVEPOINT "sp 1"', True),
        ("ROLLBACK TO SAVEPOINT a", True), ("DEALLOCATE ALL", True),
        ("SELECT pg_advisory_unlock_all();\nCLOSE ALL;\nUNLISTEN *;\nRESET ALL;", True),
        ("BEGIN; DELETE FROM t", False), ("COMMIT /* x */", False), ("SET ROLE x", False),
        ("PREPARE TRANSACTION 'x'", False), ("SELECT pg_advisory_lock(1)", False),
    ],
)
def test_is_housekeeping(sql: str, ok: bool) -> None:
    assert is_housekeeping(sql) is ok


@pytest.mark.parametrize(
    ("sql", "read_only", "decided", "code", "sqlstate"),
    [
        ("SELECT 1", True, False, None, None),  # the guard chain decides
        ("", True, True, None, None),
        ("BEGIN", True, True, None, None),
        ("BEGIN READ WRITE", True, True, ErrorCode.SQL_BLOCKED, None),
        ("BEGIN READ WRITE", False, True, None, None),
        ("COPY t TO STDOUT", True, True, ErrorCode.SQL_BLOCKED, None),
        ("SET NAMES 'SJIS'", False, True, ErrorCode.SQL_BLOCKED, None),
        ("SELEC 1 FRM", True, False, None, None),  # the chain's SQL guard: 42601
        ("SET client_encoding =", True, True, ErrorCode.SQL_BLOCKED, "42601"),
    ],
)
def test_wire_checks(sql: str, read_only: bool, decided: bool, code: ErrorCode | None,
                     sqlstate: str | None) -> None:
    got = wire_checks(sql, read_only)
    assert (got is not None) is decided
    if got is not None:
        assert (got.code, got.sqlstate) == (code, sqlstate)


def test_refusal_message_and_sqlstate() -> None:
    fields = m.parse_fields(refusal(ErrorCode.TOOL_TIMEOUT, "too slow")[5:])
    assert (fields["C"], fields["M"], fields["S"]) == ("57014", "TOOL_TIMEOUT: too slow", "ERROR")
