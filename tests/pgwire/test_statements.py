from __future__ import annotations

import pytest

from proxy.config.schema import SqlSpec
from proxy.model.errors import ErrorCode
from proxy.pgwire import messages as m
from proxy.pgwire.statements import first_keyword, is_empty, is_housekeeping, judge_sql, refusal
from proxy.sql.engine import SqlGuard
from proxy.sql.policy import SqlPolicy

GUARD = SqlGuard(SqlPolicy.from_spec(SqlSpec(read_only=True)))


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
    ("sql", "read_only", "code", "sqlstate"),
    [
        ("SELECT 1", True, None, None),
        ("", True, None, None),
        ("BEGIN", True, None, None),
        ("DELETE FROM t", True, ErrorCode.SQL_BLOCKED, None),
        ("COPY t TO STDOUT", True, ErrorCode.SQL_BLOCKED, None),
        ("SELEC 1 FRM", True, ErrorCode.SQL_BLOCKED, "42601"),
    ],
)
def test_judge_sql(sql: str, read_only: bool, code: ErrorCode | None,
                   sqlstate: str | None) -> None:
    got = judge_sql(GUARD, sql, None, read_only)
    assert (got.code, got.sqlstate) == (code, sqlstate)


def test_judge_sql_fails_closed_when_guard_raises() -> None:
    class Broken:
        def judge(self, sql: str, tenant: str | None) -> object:
            raise RuntimeError("boom")

    assert judge_sql(Broken(), "SELECT 1", None, True).code is ErrorCode.INTERNAL_ERROR


def test_refusal_message_and_sqlstate() -> None:
    fields = m.parse_fields(refusal(ErrorCode.TOOL_TIMEOUT, "too slow")[5:])
    assert (fields["C"], fields["M"], fields["S"]) == ("57014", "TOOL_TIMEOUT: too slow", "ERROR")
