"""Judge what you send (DESIGN invariant 1) at the HTTP framing layer: the bytes and
framing that reach the upstream are derived from what the guards judged, never from the
caller's framing headers. Each test plays an attack end to end against a strict raw
upstream (h11) that records what it parsed off the wire."""

from __future__ import annotations

import asyncio
import gzip
import re
import zlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.security.h11_upstream import H11Upstream

TOKEN = "s3cr3t-victim-token-0123456789"


@pytest.fixture
async def h11_upstream() -> AsyncIterator[H11Upstream]:
    up = H11Upstream()
    await up.start()
    yield up
    await up.stop()


def routes(up: str, **limits: Any) -> list[dict[str, Any]]:
    """An admin-only path and a low-privilege path on the same upstream."""
    lim = {"timeout_ms": 5000, **limits}
    return [
        {
            "name": "admin",
            "match": {"path_prefix": "/admin", "strip_prefix": False},
            "upstream": up,
            "access": {"roles": ["admin"]},
            "limits": lim,
        },
        {
            "name": "public",
            "match": {"path_prefix": "/public", "strip_prefix": False},
            "upstream": up,
            "access": {"roles": ["agent", "admin"]},
            "credentials": {"inject": {"Authorization": "Bearer ${env:FRAMING_TOKEN}"}},
            "limits": lim,
        },
    ]


@pytest.fixture
async def proxy(h11_upstream, write_rules, start_proxy, monkeypatch) -> Any:
    monkeypatch.setenv("FRAMING_TOKEN", TOKEN)
    base = f"http://127.0.0.1:{h11_upstream.port}"
    return await start_proxy(write_rules(routes(base, max_request_bytes=65536)))


def smuggling_body(smuggled: bytes) -> tuple[bytes, bytes]:
    """(decoded, gzip-encoded) where the decoded body is `padding + smuggled` and the
    padding is exactly as long as the encoded body: an upstream told the encoded length
    but sent the decoded bytes reads the padding as the body and `smuggled` as the next
    request."""
    pad = 40
    for _ in range(50):
        decoded = b"A" * pad + smuggled
        encoded = gzip.compress(decoded, mtime=0)
        if len(encoded) == pad:
            return decoded, encoded
        pad = len(encoded)
    raise AssertionError("no fixed point")


async def raw_exchange(port: int, data: bytes, *, timeout: float = 3.0) -> bytes:
    """Write raw bytes to the proxy and read until it closes or goes quiet."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    out = b""
    try:
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), timeout)
            if not chunk:
                break
            out += chunk
    except TimeoutError:
        pass
    finally:
        writer.close()
    return out


def port_of(proxy: Any) -> int:
    return int(proxy.url.rsplit(":", 1)[1])


AGENT = {"X-Caller-Role": "agent"}


async def test_compressed_body_cannot_smuggle_an_admin_request(proxy, h11_upstream):
    """A low-privilege caller hides `POST /admin/...` behind a gzip body whose encoded
    length the upstream used to be told: it must never reach the upstream as a request."""
    smuggled = b"POST /admin/drop-all HTTP/1.1\r\nHost: u\r\nContent-Length: 0\r\n\r\n"
    decoded, encoded = smuggling_body(smuggled)
    headers = {**AGENT, "Content-Encoding": "gzip", "Content-Type": "application/octet-stream"}
    async with proxy.session.post(
        proxy.url + "/public/upload", data=encoded, headers=headers
    ) as resp:
        await resp.read()
    # the direct route is refused to this role, as a control
    async with proxy.session.post(proxy.url + "/admin/drop-all", headers=AGENT) as resp:
        assert resp.status == 403
    await asyncio.sleep(0.2)
    seen, errors, _ = h11_upstream.snapshot()
    assert [s.target for s in seen] == ["/public/upload"], seen
    assert not errors
    up = seen[0]
    # exactly the decoded body, framed by the proxy, with no coding left to re-apply
    assert up.body == decoded
    assert up.header("content-length") == str(len(decoded))
    assert up.header("content-encoding") is None


async def test_pooled_next_request_is_not_swallowed(proxy, h11_upstream):
    """The smuggled request opens a body that the next pooled request (another caller's,
    carrying its injected Authorization) would complete: that token must never end up in
    a body the attacker controls."""
    smuggled = b"POST /public/steal HTTP/1.1\r\nHost: u\r\nContent-Length: 150\r\n\r\n"
    _, encoded = smuggling_body(smuggled)
    headers = {**AGENT, "Content-Encoding": "gzip", "Content-Type": "application/octet-stream"}
    async with proxy.session.post(
        proxy.url + "/public/upload", data=encoded, headers=headers
    ) as resp:
        await resp.read()
    victim = {"X-Caller-Role": "admin", "X-Padding": "v" * 200}
    async with proxy.session.get(proxy.url + "/public/mine", headers=victim) as resp:
        answer = await resp.read()
    await asyncio.sleep(0.2)
    seen, _, _ = h11_upstream.snapshot()
    assert all(TOKEN.encode() not in s.body for s in seen), seen
    assert TOKEN.encode() not in answer
    assert [s.target for s in seen] == ["/public/upload", "/public/mine"]
    assert seen[1].header("authorization") == f"Bearer {TOKEN}"


async def test_decoded_size_is_capped(proxy, h11_upstream):
    """max_request_bytes bounds the decoded body: a small gzip bomb is refused."""
    bomb = gzip.compress(b"\0" * (1 << 20))
    assert len(bomb) < 65536
    headers = {**AGENT, "Content-Encoding": "gzip", "Content-Type": "application/octet-stream"}
    async with proxy.session.post(proxy.url + "/public/x", data=bomb, headers=headers) as resp:
        assert resp.status == 413
        assert resp.headers["X-CallWarden-Error-Code"] == "TOOL_BAD_REQUEST"
    seen, _, incomplete = h11_upstream.snapshot()
    assert seen == [] and incomplete == []


@pytest.mark.parametrize("coding", ["gzip", "x-gzip", "deflate", "deflate-raw"])
async def test_supported_codings_are_decoded_and_sent_plain(proxy, h11_upstream, coding):
    payload = b'{"note": "hello"}' * 20
    if coding == "deflate-raw":
        z = zlib.compressobj(wbits=-15)
        encoded, coding = z.compress(payload) + z.flush(), "deflate"
    elif coding == "deflate":
        encoded = zlib.compress(payload)
    else:
        encoded = gzip.compress(payload)
    for ctype in ("application/json", "application/octet-stream"):  # inspected, streamed
        headers = {**AGENT, "Content-Encoding": coding, "Content-Type": ctype}
        async with proxy.session.put(proxy.url + "/public/x", data=encoded, headers=headers) as r:
            assert r.status == 200, await r.text()
    seen, _, _ = h11_upstream.snapshot()
    assert [s.body for s in seen] == [payload, payload]
    assert all(s.header("content-encoding") is None for s in seen)
    assert all(s.header("content-length") == str(len(payload)) for s in seen)


@pytest.mark.parametrize(
    "coding",
    ["br", "compress", "zstd", "gzip, gzip", "gzip, identity", "identity, gzip", "x-caller-42"],
)
async def test_unsupported_codings_are_refused(proxy, h11_upstream, coding):
    headers = {**AGENT, "Content-Encoding": coding}
    async with proxy.session.post(proxy.url + "/public/x", data=b"abc", headers=headers) as r:
        assert r.status == 415
        assert r.headers["X-CallWarden-Error-Code"] == "TOOL_BAD_REQUEST"
        assert "x-caller" not in await r.text()  # header values are not echoed
    assert h11_upstream.snapshot()[0] == []


async def test_corrupt_and_truncated_gzip_are_refused(proxy, h11_upstream):
    whole = gzip.compress(b"x" * 5000)
    for bad in (whole[:-8], whole + b"trailing", b"not gzip at all"):
        headers = {**AGENT, "Content-Encoding": "gzip"}
        async with proxy.session.post(proxy.url + "/public/x", data=bad, headers=headers) as r:
            assert r.status == 400, bad[-10:]
            assert r.headers["X-CallWarden-Error-Code"] == "TOOL_BAD_REQUEST"
    seen, _, incomplete = h11_upstream.snapshot()
    assert seen == [] and incomplete == []


async def test_identity_and_two_gzip_members(proxy, h11_upstream):
    members = gzip.compress(b"one,") + gzip.compress(b"two")
    for coding, data in (("identity", b"plain"), ("gzip", members)):
        headers = {**AGENT, "Content-Encoding": coding}
        async with proxy.session.post(proxy.url + "/public/x", data=data, headers=headers) as r:
            assert r.status == 200
    seen, _, _ = h11_upstream.snapshot()
    assert [s.body for s in seen] == [b"plain", b"one,two"]
    assert all(s.header("content-encoding") is None for s in seen)


async def chunks(data: bytes, size: int = 4096) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]
        await asyncio.sleep(0)


async def test_chunked_body_over_the_cap_is_refused_before_any_byte_is_sent(
    proxy, h11_upstream
):
    body = b"y" * 100_000  # over the 64 KiB cap, sent chunked (no length to check first)
    async with proxy.session.post(
        proxy.url + "/public/x", data=chunks(body), headers=AGENT
    ) as resp:
        assert resp.status == 413
    await asyncio.sleep(0.2)
    seen, errors, incomplete = h11_upstream.snapshot()
    assert seen == [] and errors == [] and incomplete == []
    assert h11_upstream.connections == 0  # not even a head went out


async def test_small_chunked_body_is_sent_with_its_length(proxy, h11_upstream):
    body = b"z" * 10_000
    async with proxy.session.post(
        proxy.url + "/public/x", data=chunks(body, 1000), headers=AGENT
    ) as resp:
        assert resp.status == 200
    seen, _, _ = h11_upstream.snapshot()
    assert seen[0].body == body and seen[0].header("content-length") == "10000"


async def test_long_chunked_body_over_a_large_cap_aborts_the_upstream_connection(
    h11_upstream, write_rules, start_proxy, monkeypatch
):
    """Over a cap larger than what the proxy holds back, the body is already flowing when
    the cap is crossed: the upstream connection is cut, never finished or reused."""
    monkeypatch.setenv("FRAMING_TOKEN", TOKEN)
    base = f"http://127.0.0.1:{h11_upstream.port}"
    proxy = await start_proxy(write_rules(routes(base, max_request_bytes=3 << 20)))
    body = b"w" * (4 << 20)
    async with proxy.session.post(
        proxy.url + "/public/x", data=chunks(body, 65536), headers=AGENT
    ) as resp:
        assert resp.status == 413
    async with proxy.session.get(proxy.url + "/public/after", headers=AGENT) as resp:
        assert resp.status == 200
    await asyncio.sleep(0.2)
    seen, errors, incomplete = h11_upstream.snapshot()
    assert [s.target for s in seen] == ["/public/after"]
    cut = set(incomplete) | {c for c, _ in errors}
    assert len(cut) == 1 and seen[0].conn not in cut


async def test_body_shorter_than_declared_ends_the_upstream_connection(proxy, h11_upstream):
    head = (
        b"POST /public/x HTTP/1.1\r\nHost: localhost\r\nX-Caller-Role: agent\r\n"
        b"Content-Type: application/octet-stream\r\nContent-Length: 60000\r\n\r\n"
    )
    _, writer = await asyncio.open_connection("127.0.0.1", port_of(proxy))
    writer.write(head + b"q" * 40000)
    await writer.drain()
    await asyncio.sleep(0.3)
    assert h11_upstream.connections == 1  # the head and 40000 bytes went on
    writer.close()  # the caller goes away 20000 bytes short
    await asyncio.sleep(0.3)
    async with proxy.session.get(proxy.url + "/public/after", headers=AGENT) as resp:
        assert resp.status == 200
    await asyncio.sleep(0.1)
    seen, _, incomplete = h11_upstream.snapshot()
    assert [s.target for s in seen] == ["/public/after"]
    assert incomplete, "the upstream connection carrying the short body was not ended"
    assert seen[0].conn not in incomplete


@pytest.mark.parametrize(
    "head",
    [
        b"Transfer-Encoding: gzip, chunked\r\n",
        b"Transfer-Encoding: identity, chunked\r\n",
    ],
)
async def test_transfer_codings_other_than_chunked_are_refused(proxy, h11_upstream, head):
    raw = (
        b"POST /public/x HTTP/1.1\r\nHost: localhost\r\nX-Caller-Role: agent\r\n" + head + b"\r\n"
        b"3\r\nabc\r\n0\r\n\r\n"
    )
    out = await raw_exchange(port_of(proxy), raw, timeout=1.0)
    assert out.startswith(b"HTTP/1.1 400"), out[:200]
    assert b"TOOL_BAD_REQUEST" in out
    assert h11_upstream.snapshot()[0] == []


async def test_chunked_in_http10_is_refused(proxy, h11_upstream):
    raw = (
        b"POST /public/x HTTP/1.0\r\nHost: localhost\r\nX-Caller-Role: agent\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    )
    out = await raw_exchange(port_of(proxy), raw, timeout=1.0)
    assert b" 400 " in out.split(b"\r\n", 1)[0], out[:200]
    assert h11_upstream.snapshot()[0] == []


@pytest.mark.parametrize(
    "raw",
    [
        b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        b"Content-Length: 3\r\nContent-Length: 30\r\n\r\nabc",
        b"Content-Length: 3, 3\r\n\r\nabc",
        b"Content-Length: +3\r\n\r\nabc",
        b"X-Fold: a\r\n b\r\nContent-Length: 3\r\n\r\nabc",
        b"Content-Length : 3\r\n\r\nabc",
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"Transfer-Encoding: chunked, gzip\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    ],
    ids=["cl-te", "te-cl", "dup-cl", "dup-cl-differ", "cl-list", "cl-sign", "obs-fold",
         "space-colon", "dup-te", "te-not-last"],
)
async def test_ambiguous_framing_is_refused_by_the_server_parser(proxy, h11_upstream, raw):
    out = await raw_exchange(
        port_of(proxy),
        b"POST /public/x HTTP/1.1\r\nHost: localhost\r\nX-Caller-Role: agent\r\n" + raw,
        timeout=1.0,
    )
    assert b" 400 " in out.split(b"\r\n", 1)[0], out[:200]
    assert h11_upstream.snapshot()[0] == []


async def test_expect_100_continue_is_answered_by_the_proxy(proxy, h11_upstream):
    head = (
        b"POST /public/x HTTP/1.1\r\nHost: localhost\r\nX-Caller-Role: agent\r\n"
        b"Expect: 100-continue\r\nContent-Length: 5\r\n\r\n"
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(proxy))
    writer.write(head)
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2.0)
    assert interim.startswith(b"HTTP/1.1 100 Continue")
    writer.write(b"hello")
    final = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2.0)
    assert final.startswith(b"HTTP/1.1 200")
    writer.close()
    seen, _, _ = h11_upstream.snapshot()
    assert len(seen) == 1 and seen[0].body == b"hello"
    assert seen[0].header("expect") is None  # the proxy already answered the expectation


async def test_unknown_expectation_is_refused(proxy, h11_upstream):
    raw = (
        b"POST /public/x HTTP/1.1\r\nHost: localhost\r\nX-Caller-Role: agent\r\n"
        b"Expect: something-else\r\nContent-Length: 5\r\n\r\nhello"
    )
    out = await raw_exchange(port_of(proxy), raw, timeout=1.0)
    assert out.startswith(b"HTTP/1.1 417"), out[:200]
    assert h11_upstream.snapshot()[0] == []


async def test_pipelined_requests_each_reach_the_upstream_once(proxy, h11_upstream):
    gz = gzip.compress(b"second body")
    raw = (
        b"POST /public/a HTTP/1.1\r\nHost: localhost\r\nX-Caller-Role: agent\r\n"
        b"Content-Length: 5\r\n\r\nfirst"
        b"POST /public/b HTTP/1.1\r\nHost: localhost\r\nX-Caller-Role: agent\r\n"
        b"Content-Encoding: gzip\r\nContent-Length: " + str(len(gz)).encode() + b"\r\n\r\n" + gz
        + b"POST /admin/c HTTP/1.1\r\nHost: localhost\r\nX-Caller-Role: agent\r\n"
        b"Content-Length: 0\r\n\r\n"
        b"GET /public/d HTTP/1.1\r\nHost: localhost\r\nX-Caller-Role: agent\r\n"
        b"Connection: close\r\n\r\n"
    )
    out = await raw_exchange(port_of(proxy), raw)
    assert re.findall(rb"HTTP/1\.1 (\d{3}) ", out) == [b"200", b"200", b"403", b"200"], out
    seen, _, _ = h11_upstream.snapshot()
    assert [(s.target, s.body) for s in seen] == [
        ("/public/a", b"first"),
        ("/public/b", b"second body"),
        ("/public/d", b""),
    ]


async def test_connect_gets_a_clear_refusal(proxy, h11_upstream):
    raw = b"CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\n\r\n"
    out = await raw_exchange(port_of(proxy), raw + b"\x16\x03\x01tls-hello", timeout=2.0)
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 403"), out[:300]
    assert b"POLICY_DENY" in head
    text = body.decode()
    assert "CONNECT" in text and "https" in text and "plain HTTP" in text
    assert h11_upstream.snapshot()[0] == []


async def test_connect_through_a_client_with_https_proxy(proxy):
    """What an HTTPS_PROXY client shows its user: the refusal, not a bad-path error."""
    async with aiohttp.ClientSession() as s:
        with pytest.raises(aiohttp.ClientHttpProxyError) as info:
            await s.get("https://api.example.com/x", proxy=proxy.url)
    assert info.value.status == 403


async def test_mcp_put_cannot_smuggle_a_denied_tool_call(
    h11_upstream, write_rules, start_proxy
):
    """Every route kind: on an MCP route a PUT body is not read by the tool policy (only
    POSTs carry JSON-RPC), so it must reach the upstream as one body and nothing else."""
    base = f"http://127.0.0.1:{h11_upstream.port}"
    px = await start_proxy(
        write_rules(
            [
                {
                    "name": "tools",
                    "kind": "mcp",
                    "match": {"path_prefix": "/mcp"},
                    "upstream": base + "/mcp",
                    "mcp": {"default": "deny", "tools": {"get_weather": {"roles": ["*"]}}},
                }
            ]
        )
    )
    rpc = b'{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"delete_all"}}'
    smuggled = (
        b"POST /mcp HTTP/1.1\r\nHost: u\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(rpc)).encode() + b"\r\n\r\n" + rpc
    )
    decoded, encoded = smuggling_body(smuggled)
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/octet-stream"}
    async with px.session.put(px.url + "/mcp", data=encoded, headers=headers) as resp:
        await resp.read()
    # the same call sent plainly is refused by the tool policy, as a control
    async with px.session.post(px.url + "/mcp", data=rpc, headers=JSON) as resp:
        assert (await resp.json())["error"]["data"]["error_code"] == "POLICY_DENY"
    await asyncio.sleep(0.2)
    seen, errors, _ = h11_upstream.snapshot()
    assert [(s.method, s.body) for s in seen] == [("PUT", decoded)] and not errors


JSON = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


async def test_sql_route_judges_and_sends_the_decoded_statement(
    serve_app, write_rules, start_proxy
):
    from proxy.demo.backends import sql_app

    backend = await serve_app(sql_app())
    route = {
        "name": "db",
        "kind": "sql",
        "match": {"path_prefix": "/db"},
        "upstream": backend,
        "limits": {"max_request_bytes": 4096},
        "sql": {"dialect": "sqlite", "location": {"json": "/query"}, "read_only": True},
    }
    px = await start_proxy(write_rules([route]))

    async def post(data: bytes) -> tuple[int, str | None]:
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        async with px.session.post(px.url + "/db/query", data=data, headers=headers) as r:
            await r.read()
            return r.status, r.headers.get("X-CallWarden-Error-Code")

    assert await post(gzip.compress(b'{"query": "SELECT count(*) FROM orders"}')) == (200, None)
    assert await post(gzip.compress(b'{"query": "DROP TABLE orders"}')) == (403, "SQL_BLOCKED")
    padded = b'{"query": "SELECT 1", "pad": "' + b" " * 8000 + b'"}'
    assert await post(gzip.compress(padded)) == (413, "TOOL_BAD_REQUEST")
