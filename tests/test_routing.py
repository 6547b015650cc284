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


@pytest.mark.parametrize(
    ("target", "host_header"),
    [
        ("/api/x?a=1", "api.example.com:8080"),
        ("/api/./y/../x?b=2", "API.example.com"),
        ("http://api.example.com/api/x?c=3", "other.example"),
        ("/nothing/here", None),
        ("/api/%78", "api.example.com"),
    ],
)
def test_resolve_is_split_normalize_match(target: str, host_header: str | None) -> None:
    """The memoised lookup answers what the three steps answer, first time and after."""
    table = _table()
    host, raw_path, query = split_target(target)
    path = normalize_path(raw_path)
    host = host or host_only(host_header)
    expected = (path, host, query, table.match(host, path))
    assert table.resolve(target, host_header) == expected
    assert table.resolve(target, host_header) == expected


@pytest.mark.fast_path
def test_resolve_keeps_each_query_and_never_memoises_a_bad_path() -> None:
    table = _table()
    assert table.resolve("/api/x?a=1", None)[2] == "a=1"
    assert table.resolve("/api/x?a=2", None)[2] == "a=2"
    for _ in range(2):
        with pytest.raises(ProxyError) as err:
            table.resolve("/api/%252e%252e/admin", None)
        assert err.value.code is ErrorCode.TOOL_BAD_REQUEST
    assert len(table._memo) == 1


def test_resolve_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    import proxy.routing

    monkeypatch.setattr(proxy.routing, "MEMO_MAX", 8)
    table = _table()
    for i in range(50):
        assert table.resolve(f"/api/{i}", None)[0] == f"/api/{i}"
    assert len(table._memo) <= 8


def test_resolve_does_not_memoise_long_targets() -> None:
    table = _table()
    long = "/api/" + "x" * 600
    assert table.resolve(long, None)[3] == ("api", long[4:])
    assert table.resolve("/api/y", "h" * 600)[3] == ("api", "/y")
    assert table._memo == {}
