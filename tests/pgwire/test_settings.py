"""The settings the proxy owns on a postgres session, judged by libpg_query."""

from __future__ import annotations

import pytest

from proxy.pgwire.settings import (
    clean_encoding,
    reported_refusal,
    startup_value_refusal,
    statement_refusal,
    upstream_settings,
)
from proxy.pgwire.startup import startup_refusal, strict_settings

REFUSED_ANYWHERE = [
    "SET client_encoding TO 'SJIS'",
    "SET NAMES 'GBK'",
    "set session CLIENT_ENCODING = big5",
    'SET "Client_Encoding" = $$sjis$$',
    "SET LOCAL client_encoding = 'LATIN1'",
    "SET standard_conforming_strings = off",
    "SET standard_conforming_strings TO 'no'",
    "SET ROLE postgres",
    "SET SESSION AUTHORIZATION postgres",
    "SELECT set_config('client_encoding', 'SJIS', false)",
    "SELECT pg_catalog.set_config('CLIENT_ENCODING', 'SJIS', false)",
    "SELECT * FROM set_config('standard_conforming_strings', 'off', false)",
    "SELECT set_config(chr(99) || 'lient_encoding', 'SJIS', false)",
    "SELECT 1 WHERE EXISTS (SELECT set_config('role', 'x', true))",
    "WITH c AS (SELECT set_config('client_encoding', 'SJIS', false)) SELECT * FROM c",
    "SELECT 1 ORDER BY set_config('client_encoding', 'SJIS', false)",
    "SELECT U&\"\\0073et_config\"('client_encoding', 'SJIS', false)",
    "DO $$ BEGIN PERFORM set_config('client_encoding', 'SJIS', false); END $$",
    "ALTER ROLE app SET client_encoding = 'SJIS'",
    "ALTER SYSTEM SET standard_conforming_strings = off",
    "CREATE FUNCTION f() RETURNS int LANGUAGE sql SET client_encoding = 'SJIS' AS 'SELECT 1'",
    "SELECT 1; SET client_encoding = 'SJIS'",
]
READ_WRITE = [
    "BEGIN READ WRITE",
    "BEGIN ISOLATION LEVEL SERIALIZABLE READ WRITE",
    "START TRANSACTION READ WRITE",
    "SET TRANSACTION READ WRITE",
    "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
    "SET transaction_read_only = off",
    "SET default_transaction_read_only TO false",
    "SET default_transaction_read_only = 0",
    "SELECT set_config('default_transaction_read_only', 'off', false)",
    "SELECT set_config('transaction_read_only', 'off', true)",
]
ALLOWED = [
    "SELECT 1",
    "SELECT E'\\\\' || 'x'",
    "SET client_encoding = 'UTF8'",
    "SET NAMES 'utf-8'",
    "SET standard_conforming_strings = on",
    "SET search_path = public",
    "SET statement_timeout = '5s'",
    "SELECT set_config('search_path', 'public', false)",
    "RESET ALL",
    "RESET client_encoding",
    "DISCARD ALL",
    "SET client_encoding TO DEFAULT",
    "BEGIN",
    "BEGIN READ ONLY",
    "START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY",
    "SET TRANSACTION READ ONLY",
    "SET transaction_read_only = on",
    "SELECT 'set_config(''client_encoding'', ''SJIS'')'",
]


@pytest.mark.parametrize("sql", REFUSED_ANYWHERE)
@pytest.mark.parametrize("read_only", [True, False])
def test_refused_on_every_route(sql: str, read_only: bool) -> None:
    got = statement_refusal(sql, read_only)
    assert got is not None and got[1] is False


@pytest.mark.parametrize("sql", READ_WRITE)
def test_read_write_refused_on_read_only_routes_only(sql: str) -> None:
    assert statement_refusal(sql, True) is not None
    assert statement_refusal(sql, False) is None


@pytest.mark.parametrize("sql", ALLOWED)
def test_allowed(sql: str) -> None:
    assert statement_refusal(sql, True) is None


def test_unparseable_is_a_syntax_error() -> None:
    assert statement_refusal("SET client_encoding =", True) == (
        "SQL does not parse as PostgreSQL", True)
    assert statement_refusal("SELEC 1", True) is None  # no setting word: the chain judges


@pytest.mark.parametrize(("name", "clean"), [("UTF-8", "utf8"), ("Unicode", "unicode"),
                                             ("Shift_JIS", "shiftjis"), (" utf_8 ", "utf8")])
def test_clean_encoding(name: str, clean: str) -> None:
    assert clean_encoding(name) == clean


@pytest.mark.parametrize(("name", "value", "read_only", "ok"), [
    ("client_encoding", "UTF8", True, True), ("Client_Encoding", "utf-8", True, True),
    ("client_encoding", "SJIS", False, False), ("client_encoding", "", False, False),
    ("standard_conforming_strings", "on", False, True),
    ("standard_conforming_strings", "off", False, False),
    ("default_transaction_read_only", "off", True, False),
    ("default_transaction_read_only", "off", False, True),
    ("default_transaction_read_only", "on", True, True),
    ("role", "postgres", False, False), ("application_name", "acme", True, True),
])
def test_startup_values(name: str, value: str, read_only: bool, ok: bool) -> None:
    assert (startup_value_refusal(name, value, read_only) is None) is ok


@pytest.mark.parametrize(("options", "settings"), [
    ("", []),
    ("-c geqo=off", [("geqo", "off")]),
    ("-cgeqo=off --search-path=x", [("geqo", "off"), ("search_path", "x")]),
    ("-c a\\ b=c\\ d", [("a b", "c d")]),
    ("-ec client_encoding=SJIS", None),
    ("-D /tmp", None),
    ("-c", None),
    ("-c geqo", None),
    ("--", None),
    ("geqo=off", None),
])
def test_strict_settings(options: str, settings: list[tuple[str, str]] | None) -> None:
    assert strict_settings(options) == settings


@pytest.mark.parametrize(("params", "read_only", "ok"), [
    ({"user": "u", "client_encoding": "UTF8"}, True, True),
    ({"user": "u", "client_encoding": "SJIS"}, True, False),
    ({"user": "u", "options": "-c client_encoding=GBK"}, True, False),
    ({"user": "u", "options": "-c client_encoding=UTF8 -c client_encoding=BIG5"}, True, False),
    ({"user": "u", "options": "--client-encoding=BIG5"}, True, False),
    ({"user": "u", "options": "-c callwarden.tenant=acme"}, True, True),
    ({"user": "u", "DEFAULT_TRANSACTION_READ_ONLY": "off"}, True, False),
    ({"user": "u", "default_transaction_read_only": "off"}, False, True),
    ({"user": "u", "options": "-e"}, False, False),
])
def test_startup_refusal(params: dict[str, str], read_only: bool, ok: bool) -> None:
    assert (startup_refusal(params, read_only) is None) is ok


def test_upstream_settings() -> None:
    assert upstream_settings(False) == {"client_encoding": "UTF8",
                                        "standard_conforming_strings": "on"}
    assert upstream_settings(True)["default_transaction_read_only"] == "on"


@pytest.mark.parametrize(("body", "read_only", "bad"), [
    (b"client_encoding\0UTF8\0", True, False),
    (b"client_encoding\0SJIS\0", False, True),
    (b"standard_conforming_strings\0off\0", False, True),
    (b"default_transaction_read_only\0off\0", True, True),
    (b"default_transaction_read_only\0off\0", False, False),
    (b"server_version\x0015.4\0", True, False),
])
def test_reported_refusal(body: bytes, read_only: bool, bad: bool) -> None:
    assert (reported_refusal(body, read_only) is not None) is bad
