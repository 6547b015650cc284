"""The proxy's own connection to PostgreSQL: TCP, TLS as libpq's sslmode says, and login
with the route's credentials (SCRAM-SHA-256, md5 or cleartext, whichever the server asks).

Foreign errors (OSError, ssl, timeouts) become `UpstreamError` here and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from dataclasses import dataclass, field

from proxy.model.errors import ErrorCode
from proxy.pgwire import messages as m
from proxy.pgwire.auth import MECHANISM, AuthError, ScramClient, md5_password

MAX_STARTUP_MESSAGE = 1 << 20


class UpstreamError(Exception):
    """Could not open a session upstream; `message` and `sqlstate` are safe for the client."""

    def __init__(self, code: ErrorCode, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.sqlstate = sqlstate


@dataclass(slots=True)
class UpstreamSession:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    key: m.CancelKey | None = None
    greeting: list[bytes] = field(default_factory=list)
    """ParameterStatus / NoticeResponse frames to relay to the client, in order."""
    status: bytes = b"I"


def tls_context(sslmode: str) -> ssl.SSLContext | None:
    if sslmode == "disable":
        return None
    ctx = ssl.create_default_context()
    if sslmode in ("prefer", "require", "verify-ca"):
        ctx.check_hostname = False
    if sslmode in ("prefer", "require"):
        ctx.verify_mode = ssl.CERT_NONE  # libpq semantics: encrypted, not authenticated
    return ctx


async def read_message(reader: asyncio.StreamReader, max_size: int) -> tuple[bytes, bytes]:
    head = await reader.readexactly(5)
    length = m.frame_length(head, 0) - 1
    if length < 4 or length > max_size:
        raise m.ProtocolError(f"message length {length} out of bounds")
    return head[:1], await reader.readexactly(length - 4)


async def _open(host: str, port: int, sslmode: str) -> tuple[asyncio.StreamReader,
                                                             asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(host, port)
    with contextlib.suppress(OSError):
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    ctx = tls_context(sslmode)
    if ctx is None:
        return reader, writer
    writer.write(m.ssl_request())
    answer = await reader.readexactly(1)
    if answer == b"S":
        await writer.start_tls(ctx, server_hostname=host if ctx.check_hostname else None)
    elif answer != b"N" or sslmode != "prefer":
        writer.close()
        raise UpstreamError(ErrorCode.UPSTREAM_UNAVAILABLE, "upstream does not offer TLS")
    return reader, writer


async def _authenticate(s: UpstreamSession, user: str, password: str) -> None:
    scram: ScramClient | None = None
    while True:
        tag, body = await read_message(s.reader, MAX_STARTUP_MESSAGE)
        if tag == b"E":
            fields = m.parse_fields(body)
            state = fields.get("C", "08006")
            if state.startswith("28"):  # do not echo the upstream login name
                raise UpstreamError(ErrorCode.AUTH_FAILED, "upstream refused the proxy's login",
                                    "28000")
            raise UpstreamError(ErrorCode.UPSTREAM_UNAVAILABLE,
                                fields.get("M", "upstream error"), state)
        if tag != b"R":
            raise m.ProtocolError(f"unexpected {tag!r} during upstream authentication")
        code, data = m.parse_authentication(body)
        if code == m.AUTH_OK:
            return
        if code == m.AUTH_CLEARTEXT:
            s.writer.write(m.password_message(password.encode() + b"\0"))
        elif code == m.AUTH_MD5:
            s.writer.write(m.password_message(md5_password(user, password, data[:4])))
        elif code == m.AUTH_SASL:
            if MECHANISM.encode() not in data.split(b"\0"):
                raise UpstreamError(ErrorCode.UPSTREAM_UNAVAILABLE, "no usable SASL mechanism")
            scram = ScramClient(password)
            s.writer.write(m.sasl_initial_response(MECHANISM, scram.first()))
        elif code == m.AUTH_SASL_CONTINUE and scram is not None:
            s.writer.write(m.password_message(scram.final(data)))
        elif code == m.AUTH_SASL_FINAL and scram is not None:
            scram.verify(data)
        else:
            raise UpstreamError(ErrorCode.UPSTREAM_UNAVAILABLE,
                                f"unsupported upstream authentication method {code}")


async def _until_ready(s: UpstreamSession) -> None:
    while True:
        tag, body = await read_message(s.reader, MAX_STARTUP_MESSAGE)
        if tag == b"K":
            s.key = m.parse_backend_key_data(body)
        elif tag == b"Z":
            s.status = body[:1] or b"I"
            return
        elif tag == b"E":
            fields = m.parse_fields(body)
            raise UpstreamError(ErrorCode.UPSTREAM_UNAVAILABLE, fields.get("M", "upstream error"),
                                fields.get("C"))
        elif tag in (b"S", b"N"):
            s.greeting.append(m.frame(tag, body))
        else:
            raise m.ProtocolError(f"unexpected {tag!r} before ReadyForQuery")


async def connect(host: str, port: int, sslmode: str, params: dict[str, str], user: str,
                  password: str, timeout_s: float) -> UpstreamSession:
    """Open and log in; raises UpstreamError with a client-safe message."""
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await _open(host, port, sslmode)
            s = UpstreamSession(reader, writer)
            writer.write(m.startup_message({"user": user, **params}))
            await _authenticate(s, user, password)
            await _until_ready(s)
            return s
    except UpstreamError:
        if writer is not None:
            writer.close()
        raise
    except (OSError, EOFError, TimeoutError, ssl.SSLError, m.ProtocolError, AuthError) as exc:
        if writer is not None:
            writer.close()
        reason = "authentication failed" if isinstance(exc, AuthError) else type(exc).__name__
        raise UpstreamError(ErrorCode.UPSTREAM_UNAVAILABLE,
                            f"cannot reach upstream database ({reason})") from None


async def send_cancel(host: str, port: int, key: m.CancelKey) -> None:
    """Fire a CancelRequest on a fresh connection (how PostgreSQL wants it)."""
    with contextlib.suppress(OSError, TimeoutError):
        async with asyncio.timeout(5):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(m.cancel_request(key))
            await writer.drain()
            await reader.read(1)  # the server closes when done
            writer.close()
