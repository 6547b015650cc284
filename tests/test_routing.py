from __future__ import annotations

import pytest

from proxy.model.errors import ErrorCode, ProxyError
from proxy.routing import RouteTable, host_only, make_entry, normalize_path, split_target


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/", "/"),
        ("/a/b", "/a/b"),
        ("/a//b", "/a/b"),
        ("/a/./b", "/a/b"),
        ("/a/x/../b", "/a/b"),
        ("/a/%2e%2e/b", "/b"),
        ("/a/%2E%2E/b", "/b"),
        ("/crm/%2fadmin", "/crm/admin"),
        ("/a/b/", "/a/b/"),
        ("/caf%C3%A9", "/caf%C3%A9"),
        ("/a b", "/a%20b"),
    ],
)
def test_normalize(raw: str, expected: str) -> None:
    assert normalize_path(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["/..", "/a/../..", "/%2e%2e", "/a/%252e%252e/b", "/a/%252f", "/a\\b", "/a/%5c..", "/a%00b",
     "/%ff", "noslash"],
)
def test_normalize_refuses(raw: str) -> None:
    with pytest.raises(ProxyError) as info:
        normalize_path(raw)
    assert info.value.code is ErrorCode.TOOL_BAD_REQUEST


def _table() -> RouteTable[str]:
    return RouteTable(
        [
            make_entry("/api", None, True, "api"),
            make_entry("/api/admin", None, True, "admin"),
            make_entry("/api", ["tools.example.com"], True, "api-host"),
            make_entry(None, ["*.svc.local"], False, "wild"),
            make_entry("/keep", None, False, "keep"),
        ]
    )


@pytest.mark.parametrize(
    ("host", "path", "target", "forwarded"),
    [
        (None, "/api/x", "api", "/x"),
        (None, "/api", "api", "/"),
        (None, "/api/admin/users", "admin", "/users"),
        (None, "/api/administrator", "api", "/administrator"),
        ("tools.example.com", "/api/x", "api-host", "/x"),
        ("other.example.com", "/api/x", "api", "/x"),
        ("db.svc.local", "/anything", "wild", "/anything"),
        (None, "/keep/me", "keep", "/keep/me"),
    ],
)
def test_match(host: str | None, path: str, target: str, forwarded: str) -> None:
    assert _table().match(host, path) == (target, forwarded)


@pytest.mark.parametrize(("host", "path"), [(None, "/apix"), (None, "/"), ("svc.local", "/z")])
def test_no_match_is_none(host: str | None, path: str) -> None:
    assert _table().match(host, path) is None


def test_split_target_and_host() -> None:
    assert split_target("http://Api.Example.com:8080/a?q=1") == ("api.example.com", "/a", "q=1")
    assert split_target("/a/b?x=1&y") == (None, "/a/b", "x=1&y")
    assert host_only("Example.COM:8080") == "example.com"
    assert host_only("[::1]:15001") == "[::1]"
    assert host_only(None) is None
