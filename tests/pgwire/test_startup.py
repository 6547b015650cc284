from __future__ import annotations

import pytest

from proxy.pgwire.startup import (
    has_plaintext_password,
    is_replication,
    read_startup,
    split_options,
    strip_proxy_options,
)


@pytest.mark.parametrize(
    ("options", "tokens"),
    [
        ("-c a=1 -c b=2", ["-c", "a=1", "-c", "b=2"]),
        ("  --a=1\t-cb=2 ", ["--a=1", "-cb=2"]),
        (r"-c search_path=a\ b", ["-c", "search_path=a b"]),
        ("", []),
    ],
)
def test_split_options(options: str, tokens: list[str]) -> None:
    assert split_options(options) == tokens


@pytest.mark.parametrize(
    ("options", "kept"),
    [
        ("-c callwarden.tenant=acme -c statement_timeout=5s", "-c statement_timeout=5s"),
        ("--callwarden.role=analyst -cgeqo=off", "-cgeqo=off"),
        ("-c CallWarden.Tenant=x", ""),
        ("-c password=hunter2 -c work_mem=4MB", "-c work_mem=4MB"),
        (r"-c search_path=a\ b", r"-c search_path=a\ b"),
    ],
)
def test_strip_proxy_options(options: str, kept: str) -> None:
    assert strip_proxy_options(options) == kept


@pytest.mark.parametrize(
    ("params", "parameter", "tenant", "role"),
    [
        ({"user": "acme"}, "user", "acme", None),
        ({"user": "u", "database": "globex"}, "database", "globex", None),
        ({"user": "u", "application_name": "acme"}, "application_name", "acme", None),
        ({"user": "u", "options": "-c callwarden.tenant=acme -c callwarden.role=analyst"},
         "options", "acme", "analyst"),
        ({"user": "u", "options": "--callwarden.tenant=acme"}, None, "acme", None),
        ({"user": "u"}, "application_name", None, None),
        ({"user": "u", "application_name": ""}, "application_name", None, None),
    ],
)
def test_read_startup_identity(params: dict[str, str], parameter: str | None,
                               tenant: str | None, role: str | None) -> None:
    got = read_startup(params, parameter)
    assert (got.tenant, got.role) == (tenant, role)


def test_read_startup_forwards_only_session_settings() -> None:
    got = read_startup({"user": "u", "database": "d", "replication": "false",
                        "application_name": "app", "client_encoding": "UTF8",
                        "_pq_.x": "1", "password": "p",
                        "options": "-c callwarden.tenant=t -c DateStyle=ISO"}, "options")
    assert got.upstream_params == {"application_name": "app", "client_encoding": "UTF8",
                                   "options": "-c DateStyle=ISO"}
    assert got.database == "d"


@pytest.mark.parametrize(
    ("params", "replication"),
    [({}, False), ({"replication": "database"}, True), ({"replication": "true"}, True),
     ({"replication": "on"}, True), ({"replication": "0"}, False),
     ({"replication": "false"}, False)],
)
def test_is_replication(params: dict[str, str], replication: bool) -> None:
    assert is_replication(params) is replication


@pytest.mark.parametrize(
    ("params", "plaintext"),
    [({"user": "u"}, False), ({"password": "x"}, True), ({"PassWord": "x"}, True),
     ({"options": "-c password=x"}, True), ({"options": "-c work_mem=1MB"}, False)],
)
def test_has_plaintext_password(params: dict[str, str], plaintext: bool) -> None:
    assert has_plaintext_password(params) is plaintext
