"""The judge with an upstream's user-function table (what the wire listener reads)."""

from __future__ import annotations

import dataclasses

import pytest

from proxy.sql.pg.judge import PgRules, judge
from proxy.sql.pg.parse import parse
from proxy.sql.pg.userfns import CatalogRow, UserFunctions

TABLE = UserFunctions.from_rows([
    CatalogRow("public", "total", "f", "s", "sql"),
    CatalogRow("public", "double", "f", "i", "plpgsql"),
    CatalogRow("public", "note", "f", "v", "plpgsql"),
    CatalogRow("public", "fast", "f", "i", "c"),  # a label PostgreSQL does not enforce
    CatalogRow("public", "agg", "a", "i", "internal"),
    CatalogRow("public", "twice", "f", "s", "sql"),
    CatalogRow("app", "twice", "f", "v", "sql"),  # same bare name, another schema
    CatalogRow("app", "Mixed", "f", "s", "sql"),
], "test")
READ_ONLY = PgRules(True, True, True, False, frozenset(), frozenset(), frozenset(),
                    user_functions=TABLE)
TENANT = dataclasses.replace(READ_ONLY, tenant=True)


def reason(sql: str, rules: PgRules = READ_ONLY) -> str | None:
    return judge(parse(sql), rules).reason


@pytest.mark.parametrize("sql", [
    "SELECT total(), public.double(2)", "SELECT public.twice()", 'SELECT app."Mixed"()',
])
def test_reads_only_user_functions_pass(sql: str) -> None:
    assert reason(sql) is None
    assert not judge(parse(sql), READ_ONLY).read_only  # never retried as a pure read


@pytest.mark.parametrize(("sql", "why"), [
    ("SELECT note('x')", "user function that may write"),
    ("SELECT fast()", "user function that may write"),
    ("SELECT agg(a) FROM t", "user function that may write"),
    ("SELECT twice()", "user function that may write"),  # app.twice may be on the path
    ("SELECT app.twice()", "user function that may write"),
    ("SELECT app.mixed()", "nor in the upstream's catalog"),  # folded: another name
    ("SELECT other()", "nor in the upstream's catalog"),
    ("SELECT app.total()", "nor in the upstream's catalog"),
])
def test_others_refused(sql: str, why: str) -> None:
    assert why in (reason(sql) or "")


def test_allowed_by_name_and_tenant_routes() -> None:
    allowed = dataclasses.replace(READ_ONLY, allow_functions=frozenset({"note"}))
    assert reason("SELECT note('x')", allowed) is None
    assert "whose body the tenant scope cannot reach" in (reason("SELECT total()", TENANT)
                                                          or "")
    no_table = dataclasses.replace(READ_ONLY, user_functions=UserFunctions())
    assert "on the wire only" in (reason("SELECT total()", no_table) or "")
    failed = dataclasses.replace(READ_ONLY, user_functions=UserFunctions(source="unavailable"))
    assert "could not be read" in (reason("SELECT total()", failed) or "")
