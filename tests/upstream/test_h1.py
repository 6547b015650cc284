"""The upstream HTTP/1.1 client against real loopback servers: aiohttp's for the common
shapes, raw asyncio sockets for what a well-behaved server never sends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from multidict import CIMultiDict

from proxy.upstream.h1 import (
    BodyLengthError,
    BodyStream,
    H1Pool,
    UpstreamClosedError,
    UpstreamConnectError,
    UpstreamProtocolError,
    serialize_head,
    split_url,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
async def pool() -> AsyncIterator[H1Pool]:
    p = H1Pool(limit=4)
    yield p
    await p.close()


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    """await raw_server(handler) -> origin URL of an asyncio socket server; each
    connection gets handler(reader, writer)."""
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> str:
        srv = await asyncio.start_server(handler, "127.0.0.1", 0)
        servers.append(srv)
        return f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}"

    yield start
    for srv in servers:
        srv.close()


async def read_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


def answers(raw: bytes, close: bool = True) -> Handler:
    """A connection handler that reads one request head and writes `raw` back."""

    async def h(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(raw)
        await writer.drain()
        if close:
            writer.close()

    return h


def test_split_url() -> None:
    assert split_url("http://h:1/a/b?x=1") == ("http://h:1", "/a/b?x=1")
    assert split_url("http://h:1") == ("http://h:1", "/")
    assert split_url("http://h:1?x=1") == ("http://h:1", "/?x=1")
    assert split_url("http://[::1]:8/p") == ("http://[::1]:8", "/p")
    assert split_url("http://h/caf\u00e9 x")[1] == "/caf%C3%A9%20x"


def test_head_refuses_header_splitting() -> None:
    with pytest.raises(ValueError):
        serialize_head("GET", "/", CIMultiDict({"X-A": "v\r\nX-Injected: 1"}), None)
    with pytest.raises(ValueError):
        serialize_head("GET", "/", CIMultiDict({"X-A": "v\nX: 1"}), None)
    head = serialize_head("POST", "/", CIMultiDict({"Content-Length": "99"}), 3)
    assert head.count(b"Content-Length") == 1 and b"Content-Length: 3\r\n" in head


async def test_keep_alive_reuses_one_connection(serve_app, pool: H1Pool) -> None:
    peers: list[object] = []

    async def h(req: web.Request) -> web.Response:
        peers.append(req.transport.get_extra_info("peername") if req.transport else None)
        return web.json_response({"got": (await req.read()).decode()})

    app = web.Application()
    app.router.add_route("*", "/{p:.*}", h)
    base = await serve_app(app)
    for i in range(3):
        resp = await pool.request("POST", f"{base}/x", CIMultiDict(), f"b{i}".encode())
        assert resp.status == 200 and await resp.read() == b'{"got": "b%d"}' % i
        resp.release()
    assert len(peers) == 3 and len(set(peers)) == 1


async def test_unread_body_is_not_reused(serve_app, pool: H1Pool) -> None:
    peers: list[object] = []

    async def h(req: web.Request) -> web.StreamResponse:
        peers.append(req.transport.get_extra_info("peername") if req.transport else None)
        resp = web.StreamResponse()
        await resp.prepare(req)
        await resp.write(b"x" * 300_000)  # bigger than the read buffer: still in flight
        return resp

    app = web.Application()
    app.router.add_get("/", h)
    base = await serve_app(app)
    first = await pool.request("GET", base + "/", CIMultiDict(), None)
    assert await first.content.readany()
    first.release()  # most of the body unread: this socket cannot carry another request
    second = await pool.request("GET", base + "/", CIMultiDict(), None)
    assert len(await second.read()) == 300_000
    second.release()
    assert len(set(peers)) == 2


async def test_chunked_upload_and_download(serve_app, pool: H1Pool) -> None:
    async def h(req: web.Request) -> web.StreamResponse:
        data = await req.read()
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(req)
        for i in range(0, len(data), 1000):
            await resp.write(data[i : i + 1000])
        return resp

    app = web.Application()
    app.router.add_post("/", h)
    base = await serve_app(app)

    async def body() -> AsyncIterator[bytes]:
        for i in range(5):
            yield bytes([65 + i]) * 2000

    resp = await pool.request("POST", base + "/", CIMultiDict(), BodyStream(body(), None))
    assert resp.headers["Transfer-Encoding"] == "chunked"
    assert await resp.read() == b"".join(bytes([65 + i]) * 2000 for i in range(5))
    resp.release()


async def test_body_until_close_and_interim_response(raw_server, pool: H1Pool) -> None:
    base = await raw_server(
        answers(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nX-A: 1\r\n\r\nall of it")
    )
    resp = await pool.request("GET", base + "/", CIMultiDict(), None)
    assert resp.status == 200 and resp.headers["X-A"] == "1"
    assert resp.content_length is None and await resp.read() == b"all of it"
    resp.release()


async def test_close_mid_body_is_an_error_not_a_short_body(raw_server, pool: H1Pool) -> None:
    base = await raw_server(answers(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this"))
    resp = await pool.request("GET", base + "/", CIMultiDict(), None)
    with pytest.raises(UpstreamClosedError):
        await resp.read()
    resp.release()


async def test_malformed_response(raw_server, pool: H1Pool) -> None:
    base = await raw_server(answers(b"SMTP ready\r\n\r\n", close=False))
    with pytest.raises(UpstreamProtocolError):
        await pool.request("GET", base + "/", CIMultiDict(), None)


async def test_refused_connection(pool: H1Pool) -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens here now
    with pytest.raises(UpstreamConnectError):
        await pool.request("GET", f"http://127.0.0.1:{port}/", CIMultiDict(), None)
    assert pool._open == 0


async def test_stale_keep_alive_retried_only_when_safe(raw_server, pool: H1Pool) -> None:
    """Each connection answers once with keep-alive, then reads the next request and
    closes without a word: the race a pool meets when the upstream drops an idle socket."""
    connections = 0

    async def h(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await read_head(reader)
        writer.close()

    base = await raw_server(h)
    for _ in range(2):  # GET: the second goes out on the stale socket, then a fresh one
        resp = await pool.request("GET", base + "/", CIMultiDict(), None)
        assert await resp.read() == b"ok"
        resp.release()
    assert connections == 2
    with pytest.raises(UpstreamClosedError):  # POST: it may have run; not repeated
        await pool.request("POST", base + "/", CIMultiDict(), b"{}")
    assert connections == 2


async def test_pool_bound_waits_for_a_free_connection(serve_app) -> None:
    gate = asyncio.Event()

    async def h(req: web.Request) -> web.Response:
        await gate.wait()
        return web.Response(text="done")

    app = web.Application()
    app.router.add_get("/", h)
    base = await serve_app(app)
    pool = H1Pool(limit=1)
    try:
        first = asyncio.ensure_future(pool.request("GET", base + "/", CIMultiDict(), None))
        second = asyncio.ensure_future(pool.request("GET", base + "/", CIMultiDict(), None))
        await asyncio.sleep(0.05)
        assert pool._open == 1 and not second.done()
        gate.set()
        r1 = await first
        assert await r1.read() == b"done"
        r1.release()  # back to the pool: the waiter takes it
        r2 = await second
        assert await r2.read() == b"done"
        r2.release()
        assert pool._open == 1
        gate.clear()
        held = asyncio.ensure_future(pool.request("GET", base + "/", CIMultiDict(), None))
        waiting = asyncio.ensure_future(pool.request("GET", base + "/", CIMultiDict(), None))
        await asyncio.sleep(0.05)
        await pool.close()  # a caller waiting for a slot is refused, not left hanging
        with pytest.raises(UpstreamConnectError):
            await asyncio.wait_for(waiting, 5)
        gate.set()
        (await held).release()
    finally:
        await pool.close()


async def test_cancel_mid_request_closes_the_socket(serve_app, pool: H1Pool) -> None:
    async def h(req: web.Request) -> web.Response:
        await asyncio.sleep(10)
        return web.Response()

    app = web.Application()
    app.router.add_get("/", h)
    base = await serve_app(app)
    task = asyncio.ensure_future(pool.request("GET", base + "/", CIMultiDict(), None))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.05)
    assert pool._open == 0 and not any(pool._idle.values())


async def test_https_verifies_the_upstream_certificate(tmp_path) -> None:
    import ssl
    import subprocess

    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    app = web.Application()
    app.router.add_get("/", lambda req: web.Response(text="over tls"))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
    await site.start()
    url = f"https://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/"  # type: ignore[union-attr]
    untrusting, trusting = H1Pool(), H1Pool()
    trusting._ssl = ssl.create_default_context(cafile=str(cert))
    try:
        with pytest.raises(UpstreamConnectError):  # self-signed: refused by default
            await untrusting.request("GET", url, CIMultiDict(), None)
        resp = await trusting.request("GET", url, CIMultiDict(), None)
        assert await resp.read() == b"over tls"
        resp.release()
    finally:
        await untrusting.close()
        await trusting.close()
        await runner.cleanup()


async def test_an_answer_before_the_upload_ends_is_the_answer(raw_server, pool: H1Pool) -> None:
    """The upstream refuses after the head (413) and closes: the caller gets that 413,
    not a broken-pipe error, and the rest of the body is not sent."""
    base = await raw_server(
        answers(b"HTTP/1.1 413 Too Large\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbig")
    )
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(400):
            sent += 1
            yield b"x" * 65536
            await asyncio.sleep(0)

    resp = await pool.request("POST", base + "/", CIMultiDict(), BodyStream(body(), None))
    assert resp.status == 413 and await resp.read() == b"big"
    resp.release()
    assert sent < 400
    assert not any(pool._idle.values())  # that socket carries nothing more


@pytest.mark.parametrize("sizes", [[3000, 3000], [1000]], ids=["longer", "shorter"])
async def test_a_body_that_disagrees_with_its_framing_ends_the_connection(
    raw_server, pool: H1Pool, sizes: list[int]
) -> None:
    """Declared 2000 bytes: neither more (the excess would be read as a next request)
    nor fewer (a next pooled request would complete the body) ever leaves on a socket
    that carries anything after it."""
    received: list[bytes] = []

    async def h(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.read())  # everything until the proxy closes
        writer.close()

    base = await raw_server(h)

    async def body() -> AsyncIterator[bytes]:
        for n in sizes:
            yield b"b" * n

    with pytest.raises(BodyLengthError):
        await pool.request("POST", base + "/", CIMultiDict(), BodyStream(body(), 2000))
    await asyncio.sleep(0.05)
    head, _, sent = received[0].partition(b"\r\n\r\n")
    assert b"Content-Length: 2000" in head
    assert len(sent) <= 2000 and sent == b"b" * len(sent)
    assert pool._open == 0 and not any(pool._idle.values())


async def test_caller_framing_headers_never_reach_the_head() -> None:
    headers = CIMultiDict(
        {"Content-Length": "5", "Transfer-Encoding": "chunked", "X-Keep": "1"}
    )
    head = serialize_head("POST", "/", headers, None, chunked=True)
    assert head.count(b"Transfer-Encoding") == 1 and b"Content-Length" not in head
