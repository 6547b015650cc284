"""Path forms (issue 21 item 7): the path a route's prefix matched is the path the
upstream resolves. Tomcat and Spring strip `;params` from each segment before they
resolve dot segments, so `/public/..;/admin` is `/admin` to them: such paths are refused;
everything else is normalised and forwarded exactly as the router saw it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from proxy.model.errors import ErrorCode, ProxyError
from proxy.routing import normalize_path
from tests.security.h11_upstream import H11Upstream

REFUSED = [
    "/public/..;/admin/x",
    "/public/..;jsessionid=1/admin/x",
    "/public/%2e%2e;/admin/x",
    "/public/%2E%2E;/admin/x",
    "/public/%2e%2e%3b/admin/x",
    "/public/.%3b/admin",
    "/public/%3b/admin",
    "/admin;x=1/users",
    "/public;/../admin",
    "/public/x;jsessionid=ABC",
    "/;/admin",
    "/public/x#/../../admin",
    "/public/..%5c..%5cadmin",
    "/public\\..\\admin",
    "/public/%252e%252e/admin",
    "/public/%2e%2e%2fadmin%2f..%2f..%2f..",
]


@pytest.mark.parametrize("raw", REFUSED)
def test_ambiguous_path_forms_are_refused(raw: str) -> None:
    with pytest.raises(ProxyError) as info:
        normalize_path(raw)
    assert info.value.code is ErrorCode.TOOL_BAD_REQUEST


@pytest.mark.parametrize(
    ("raw", "forwarded"),
    [
        ("/public/%2e%2e/admin/x", "/admin/x"),
        ("/public%2F..%2Fadmin", "/admin"),
        ("/public/./x//y", "/public/x/y"),
        ("/public/a%3Bb", "/public/a%3Bb"),  # an encoded ';' is data and stays encoded
        ("/public/a%3bb", "/public/a%3Bb"),
        ("/public/caf%C3%A9", "/public/caf%C3%A9"),
    ],
)
def test_normalised_paths_are_what_is_forwarded(raw: str, forwarded: str) -> None:
    assert normalize_path(raw) == forwarded


@pytest.fixture
async def h11_upstream() -> AsyncIterator[H11Upstream]:
    up = H11Upstream()
    await up.start()
    yield up
    await up.stop()


@pytest.fixture
async def proxy(h11_upstream, write_rules, start_proxy) -> Any:
    up = f"http://127.0.0.1:{h11_upstream.port}"
    common = {"upstream": up, "limits": {"timeout_ms": 5000}}
    return await start_proxy(
        write_rules(
            [
                {
                    "name": "admin",
                    "match": {"path_prefix": "/admin", "strip_prefix": False},
                    "access": {"roles": ["admin"]},
                    **common,
                },
                {
                    "name": "rest",
                    "match": {"path_prefix": "/", "strip_prefix": False},
                    "access": {"roles": ["agent", "admin"]},
                    **common,
                },
            ]
        )
    )


async def raw_get(proxy: Any, target: str) -> bytes:
    port = int(proxy.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET {target} HTTP/1.1\r\nHost: localhost\r\nX-Caller-Role: agent\r\n"
        "Connection: close\r\n\r\n".encode()
    )
    out = await asyncio.wait_for(reader.read(), 3.0)
    writer.close()
    return out


@pytest.mark.parametrize(
    "target",
    [t for t in REFUSED if "\\" not in t and "#" not in t],  # those two the parser refuses
)
async def test_path_parameters_never_reach_a_tomcat_style_upstream(proxy, h11_upstream, target):
    """A low-privilege caller matched the catch-all route with a path a Tomcat/Spring
    upstream resolves to /admin: refused, and the upstream sees nothing."""
    out = await raw_get(proxy, target)
    assert out.startswith(b"HTTP/1.1 400"), out[:300]
    assert b"TOOL_BAD_REQUEST" in out
    assert h11_upstream.snapshot()[0] == []


async def test_the_upstream_gets_the_path_the_router_matched(proxy, h11_upstream):
    out = await raw_get(proxy, "/public/%2e%2e/admin/x")
    assert out.startswith(b"HTTP/1.1 403")  # the admin route matched, and denied
    out = await raw_get(proxy, "/public/a%3Bb/c")
    assert out.startswith(b"HTTP/1.1 200")
    assert [s.target for s in h11_upstream.snapshot()[0]] == ["/public/a%3Bb/c"]
