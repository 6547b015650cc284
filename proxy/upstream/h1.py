"""A lean HTTP/1.1 client for upstream calls: keep-alive pool, llhttp (aiohttp's C
parser) for responses, aiohttp's StreamReader for bodies, nothing else.

Why not aiohttp's ClientSession: per small request it costs more than twice what this
client does (request/URL objects, connector, traces, timers; bench/h1_instructions.py
measures both). A proxy forwards requests already parsed and cleaned, so it needs none
of the session's conveniences (cookies, redirects, auth, decompression, form encoding).
Deadlines come from the caller (the pipeline cancels).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from aiohttp.base_protocol import BaseProtocol
from aiohttp.http_parser import HttpResponseParser
from aiohttp.streams import EMPTY_PAYLOAD, StreamReader
from multidict import CIMultiDict, CIMultiDictProxy

READ_LIMIT = 2**16
"""Per-body buffer before the socket is paused (aiohttp's default read_bufsize)."""
NO_BODY_STATUS = frozenset({204, 304})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
_TARGET_SAFE = "/?#[]@!$&'()*+,;=:%-._~"


@dataclass(frozen=True, slots=True)
class BodyStream:
    """A request body streamed upstream with the proxy's framing: exactly `length`
    bytes, or chunked when None. The framing is decided before the first byte
    (proxy/framing.py); the sender checks the body against it."""

    chunks: AsyncIterator[bytes]
    length: int | None


class UpstreamConnectError(ConnectionError):
    """Connecting failed (refused, unreachable, DNS, TLS handshake)."""


class UpstreamClosedError(ConnectionError):
    """The upstream closed the connection before the response was complete."""


class UpstreamProtocolError(ConnectionError):
    """The upstream sent something that is not an HTTP/1.1 response."""


class BodyLengthError(ConnectionError):
    """The request body did not match the framing the proxy sent for it (the
    connection is then ended, never reused)."""


class _Connection(BaseProtocol):
    """One upstream socket; one request at a time (no pipelining)."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, origin: str, on_close: Callable[[], None]
    ) -> None:
        super().__init__(loop)
        self.origin = origin
        self.host = origin.partition("://")[2]
        self._on_close: Callable[[], None] | None = on_close
        self.waiter: asyncio.Future[tuple[Any, StreamReader]] | None = None
        self.payload: StreamReader | None = None
        self.should_close = False
        self.received = False
        self.idle_since = 0.0

    def begin(self, head_request: bool) -> asyncio.Future[tuple[Any, StreamReader]]:
        self._parser = HttpResponseParser(
            self,
            self._loop,
            READ_LIMIT,
            payload_exception=UpstreamClosedError,
            response_with_body=not head_request,
            read_until_eof=True,
            auto_decompress=False,
        )
        self.received = False
        self.payload = None
        self.waiter = self._loop.create_future()
        return self.waiter

    def data_received(self, data: bytes) -> None:
        if data:
            self.received = True
        parser = self._parser
        if parser is None:  # bytes nobody asked for: the connection is out of step
            self.close()
            return
        try:
            messages, _upgraded, _tail = parser.feed_data(data)
        except Exception:
            self._fail(UpstreamProtocolError("malformed upstream response"))
            return
        for message, payload in messages:
            if 100 <= message.code < 200 and message.code != 101:
                continue  # interim (100 Continue, 103 Early Hints): the answer follows
            if message.should_close or message.code == 101:
                self.should_close = True
            if message.code in NO_BODY_STATUS:
                payload = EMPTY_PAYLOAD
            self.payload = payload
            waiter = self.waiter
            if waiter is not None and not waiter.done():
                waiter.set_result((message, payload))

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)  # transport -> None: closed
        self.give_back()
        parser = self._parser
        if parser is not None:
            with contextlib.suppress(Exception):  # an incomplete body: reported below
                parser.feed_eof()  # ends a read-until-close body
        payload = self.payload
        if payload is not None and not payload.is_eof():
            payload.set_exception(UpstreamClosedError("upstream closed mid-body"))
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(UpstreamClosedError("upstream closed the connection"))

    def _fail(self, exc: Exception) -> None:
        if self.payload is not None and not self.payload.is_eof():
            self.payload.set_exception(exc)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)
        self.close()

    def give_back(self) -> None:
        """Free this connection's slot in the pool, once."""
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()

    def close(self) -> None:
        self.should_close = True
        if self.transport is not None:
            self.transport.close()

    def reusable(self) -> bool:
        payload = self.payload
        return (
            not self.should_close
            and self.transport is not None
            and payload is not None
            and payload.is_eof()
            and payload.exception() is None
        )

    async def drain(self) -> None:
        await self._drain_helper()

    def answered(self) -> bool:
        """A final response arrived for the request in flight."""
        waiter = self.waiter
        return waiter is not None and waiter.done() and waiter.exception() is None


class UpstreamResponse:
    """What the codecs read: status, headers, the body as a StreamReader."""

    __slots__ = ("_conn", "_pool", "content", "headers", "reason", "status")

    def __init__(self, message: Any, payload: StreamReader, conn: _Connection, pool: H1Pool):
        self.status: int = message.code
        self.reason: str = message.reason
        self.headers: CIMultiDictProxy[str] = message.headers
        self.content = payload
        self._conn: _Connection | None = conn
        self._pool = pool

    @property
    def content_length(self) -> int | None:
        raw = self.headers.get("Content-Length")
        return int(raw) if raw is not None and raw.isdigit() else None

    async def read(self) -> bytes:
        return await self.content.read()

    def release(self) -> None:
        """Back to the pool when the body was read to its end; otherwise the rest is
        unread and the connection cannot carry another request."""
        conn, self._conn = self._conn, None
        if conn is not None:
            self._pool.put(conn)


def split_url(url: str) -> tuple[str, str]:
    """(origin, request target): `http://h:1/a?b` -> (`http://h:1`, `/a?b`)."""
    start = url.find("//") + 2
    i = url.find("/", start)
    q = url.find("?", start)
    if i < 0 or (0 <= q < i):
        i = q
    if i < 0:
        return url, "/"
    target = url[i:]
    if target[0] == "?":
        target = "/" + target
    if not target.isascii() or " " in target:
        target = quote(target, safe=_TARGET_SAFE)
    return url[:i], target


def serialize_head(
    method: str,
    target: str,
    headers: CIMultiDict[str],
    length: int | None,
    chunked: bool = False,
    host: str = "",
) -> bytes:
    """The request head; framing (Content-Length or chunked) from the body actually sent,
    so the caller's framing headers are removed from `headers`. SECURITY: a CR or LF
    inside a name, value or target would split the head (request smuggling), so one is
    refused, wherever it came from."""
    if "Content-Length" in headers:
        headers.popall("Content-Length")
    if "Transfer-Encoding" in headers:
        headers.popall("Transfer-Encoding")
    lines = [f"{method} {target} HTTP/1.1"]
    if host and "Host" not in headers:
        lines.append(f"Host: {host}")  # HTTP/1.1 requires it (RFC 9112 3.2)
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    elif chunked:
        lines.append("Transfer-Encoding: chunked")
    text = "\r\n".join(lines)
    breaks = len(lines) - 1
    if text.count("\n") != breaks or text.count("\r") != breaks:
        raise ValueError("CR or LF in a request header or target")
    return (text + "\r\n\r\n").encode("utf-8")


class H1Pool:
    """Keep-alive connections per origin, LIFO (the warmest socket first), bounded in
    total; a caller over the bound waits for a connection to close."""

    def __init__(self, limit: int = 1000, keepalive_s: float = 30.0) -> None:
        self.limit = limit
        self.keepalive_s = keepalive_s
        self._idle: dict[str, list[_Connection]] = {}
        self._open = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._ssl: ssl.SSLContext | None = None
        self.closed = False

    async def request(
        self, method: str, url: str, headers: Any, body: Any
    ) -> UpstreamResponse:
        origin, target = split_url(url)
        conn, reused = await self._acquire(origin)
        try:
            return await self._exchange(conn, method, target, headers, body)
        except UpstreamClosedError:
            conn.close()
            replayable = body is None or isinstance(body, bytes | bytearray | memoryview)
            if not (reused and not conn.received and replayable and method in IDEMPOTENT):
                raise
        except BaseException:
            conn.close()
            raise
        # A kept-alive socket the upstream closed while idle (the race every pool has)
        # and nothing answered: once more on a new socket, for methods safe to repeat
        # (RFC 9110 9.2.2; aiohttp's rule too): a POST may have run before the close.
        conn, _ = await self._acquire(origin, fresh=True)
        try:
            return await self._exchange(conn, method, target, headers, body)
        except BaseException:
            conn.close()
            raise

    async def _exchange(
        self, conn: _Connection, method: str, target: str, headers: Any, body: Any
    ) -> UpstreamResponse:
        waiter = conn.begin(method == "HEAD")
        transport = conn.transport
        if transport is None:
            raise UpstreamClosedError("upstream closed the connection")
        if body is None:
            length: int | None = 0 if method in BODY_METHODS else None
            transport.write(serialize_head(method, target, headers, length, host=conn.host))
        elif isinstance(body, bytes | bytearray | memoryview):
            head = serialize_head(method, target, headers, len(body), host=conn.host)
            transport.write(head + body)
        else:
            try:
                await self._send_stream(conn, method, target, headers, body)
            except BaseException:
                # SECURITY: a request cut mid-body is reset, not closed: nothing buffered
                # behind it goes out, and the upstream never reads a clean end.
                conn.should_close = True
                if conn.transport is not None:
                    conn.transport.abort()
                conn.waiter = None  # nobody waits for an answer to a body never sent
                if not waiter.cancel() and not waiter.cancelled():
                    waiter.exception()  # already failed: the error raised here says why
                raise
        message, payload = await waiter
        conn.waiter = None
        return UpstreamResponse(message, payload, conn, self)

    async def _send_stream(
        self, conn: _Connection, method: str, target: str, headers: Any, body: BodyStream
    ) -> None:
        """Exactly `body.length` bytes, or chunked when it is None: the framing is the
        proxy's (proxy/framing.py), never a header's. SECURITY: a body that disagrees with
        its framing ends the connection unfinished, so no later request can complete it."""
        length = body.length
        transport = conn.transport
        assert transport is not None
        head = serialize_head(method, target, headers, length, length is None, conn.host)
        transport.write(head)
        sent = 0
        async for chunk in body.chunks:
            if conn.answered():
                break
            if not chunk:
                continue
            sent += len(chunk)
            if length is None:
                transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            elif sent > length:
                raise BodyLengthError("request body longer than its framing")
            else:
                transport.write(chunk)
            try:
                await conn.drain()
            except ConnectionError:
                if not conn.answered():
                    raise
        if conn.answered():
            # The upstream answered before the body ended (a 413, a 401): that answer is
            # the caller's, the rest of the body is not sent, and the socket is spent.
            conn.should_close = True
        elif length is None:
            transport.write(b"0\r\n\r\n")
        elif sent != length:
            raise BodyLengthError("request body shorter than its framing")

    async def _acquire(self, origin: str, fresh: bool = False) -> tuple[_Connection, bool]:
        while True:
            if self.closed:
                raise UpstreamConnectError("upstream client is closed")
            if not fresh:
                conn = self._take_idle(origin)
                if conn is not None:
                    return conn, True
            if self._open < self.limit:
                break
            self._evict_one()  # an idle socket to another origin makes room
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        self._open += 1
        return await self._connect(origin), False

    def _take_idle(self, origin: str) -> _Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if conn.transport is None:
                continue  # its close already gave the slot back
            if now - conn.idle_since > self.keepalive_s:
                conn.close()
                continue
            return conn
        return None

    def _evict_one(self) -> None:
        for conns in self._idle.values():
            while conns:
                conn = conns.pop(0)
                if conn.transport is not None:
                    conn.close()
                    return

    async def _connect(self, origin: str) -> _Connection:
        scheme, _, hostport = origin.partition("://")
        host, port = _host_port(hostport, 443 if scheme == "https" else 80)
        loop = asyncio.get_running_loop()
        tls: ssl.SSLContext | None = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            tls = self._ssl
        conn = _Connection(loop, origin, self._slot_freed)
        try:
            await loop.create_connection(
                lambda: conn,
                host,
                port,
                ssl=tls,
                server_hostname=host if tls else None,
            )
        except OSError as exc:
            conn.give_back()
            raise UpstreamConnectError(f"connect failed ({exc.__class__.__name__})") from None
        except BaseException:
            conn.give_back()
            raise
        return conn

    def put(self, conn: _Connection) -> None:
        if self.closed or not conn.reusable():
            conn.close()
            return
        conn._parser = None
        conn.payload = None
        conn.idle_since = time.monotonic()
        self._idle.setdefault(conn.origin, []).append(conn)
        self._wake()

    def _slot_freed(self) -> None:
        self._open -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    async def close(self) -> None:
        self.closed = True
        while self._waiters:  # callers waiting for a slot: refused, not left hanging
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
        idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()
        await asyncio.sleep(0)  # let the transports run their close callbacks


def _host_port(hostport: str, default: int) -> tuple[str, int]:
    if "@" in hostport:
        hostport = hostport.rsplit("@", 1)[1]
    if hostport.startswith("["):  # [v6]:port
        host, _, rest = hostport[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default
    host, sep, port = hostport.rpartition(":")
    if not sep:
        return hostport, default
    return host, int(port)
