"""PostgreSQL frontend/backend protocol v3 framing, sans-I/O.

Only the messages the proxy must read or make are decoded; everything else (DataRow,
RowDescription, Bind parameters ...) is passed through as opaque frames, which is what
keeps the listener fast.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

PROTOCOL_3 = 196608  # 3.0
SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102
MAX_STARTUP = 10_000
"""PostgreSQL's own cap on a startup packet."""

_I32 = struct.Struct("!i")
_HDR = struct.Struct("!ci")
_I32I32 = struct.Struct("!ii")


class ProtocolError(Exception):
    """The peer broke the protocol; the connection cannot continue."""


class BadText(ProtocolError):
    """A statement message the proxy will not forward: refused, the session goes on."""


class NotUtf8(BadText):
    """A text field that is not valid UTF-8: a statement is refused, a startup packet ends
    the connection."""


# --- startup phase (untyped packets: int32 length, int32 code, body) ---------------------


@dataclass(frozen=True, slots=True)
class Startup:
    version: int
    params: dict[str, str]


@dataclass(frozen=True, slots=True)
class CancelKey:
    pid: int
    secret: int


@dataclass(frozen=True, slots=True)
class SpecialRequest:
    code: int
    """SSL_REQUEST or GSSENC_REQUEST."""


StartupPacket = Startup | CancelKey | SpecialRequest


def parse_startup_packet(packet: bytes) -> StartupPacket:
    """`packet` is the body after the length word."""
    if len(packet) < 4:
        raise ProtocolError("startup packet too short")
    (code,) = _I32.unpack_from(packet)
    if code in (SSL_REQUEST, GSSENC_REQUEST):
        return SpecialRequest(code)
    if code == CANCEL_REQUEST:
        if len(packet) != 12:
            raise ProtocolError("bad cancel request")
        pid, secret = _I32I32.unpack_from(packet, 4)
        return CancelKey(pid, secret)
    if code >> 16 != 3:
        raise ProtocolError(f"unsupported frontend protocol {code >> 16}.{code & 0xFFFF}")
    parts = packet[4:].split(b"\0")
    if len(parts) < 2 or parts[-1] != b"" or parts[-2] != b"" or len(parts) % 2:
        raise ProtocolError("malformed startup parameters")
    words = [_text(p) for p in parts[:-2]]
    return Startup(code, dict(zip(words[::2], words[1::2], strict=True)))


def startup_message(params: dict[str, str]) -> bytes:
    body = b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in params.items())
    body = _I32.pack(PROTOCOL_3) + body + b"\0"
    return _I32.pack(len(body) + 4) + body


def ssl_request() -> bytes:
    return _I32I32.pack(8, SSL_REQUEST)


def cancel_request(key: CancelKey) -> bytes:
    return _I32I32.pack(16, CANCEL_REQUEST) + _I32I32.pack(key.pid, key.secret)


# --- typed messages: 1-byte tag, int32 length (counting itself), body --------------------


def frame(tag: bytes, body: bytes = b"") -> bytes:
    return _HDR.pack(tag, len(body) + 4) + body


def iter_frames(buf: bytes | bytearray, start: int, max_size: int) -> Iterator[tuple[int, int]]:
    """Yield (start, end) of each complete message in buf[start:]; stop at a partial one.

    The tag is buf[start]; the body is buf[start + 5 : end]."""
    n = len(buf)
    while n - start >= 5:
        (length,) = _I32.unpack_from(buf, start + 1)
        if length < 4 or length > max_size:
            raise ProtocolError(f"message length {length} out of bounds")
        end = start + 1 + length
        if end > n:
            return
        yield start, end
        start = end


def frame_length(buf: bytes | bytearray, start: int) -> int:
    """Total size (tag included) of the message starting at buf[start] (5 bytes needed)."""
    return 1 + _I32.unpack_from(buf, start + 1)[0]


def _text(raw: bytes) -> str:
    # SECURITY: strict UTF-8, so that the text judged encodes back to exactly the bytes
    # received (no replacement characters, no surrogates): what is forwarded is what was
    # judged, and the upstream session's client_encoding is UTF8 (settings.py).
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise NotUtf8("text is not valid UTF-8") from None


def cstr(body: bytes, pos: int = 0) -> tuple[str, int]:
    """Read a NUL-terminated string; return it and the position after the NUL."""
    end = body.find(b"\0", pos)
    if end < 0:
        raise ProtocolError("unterminated string")
    return _text(body[pos:end]), end + 1


def parse_query(body: bytes) -> str:
    sql, end = cstr(body)
    if end != len(body):  # SECURITY: nothing after the text that was not judged
        raise BadText("bytes after the query text")
    return sql


def query(sql: str) -> bytes:
    return frame(b"Q", sql.encode() + b"\0")


@dataclass(frozen=True, slots=True)
class ParseMsg:
    name: str
    sql: str
    param_types: bytes
    """int16 count + int32 OIDs, kept raw."""


def parse_parse(body: bytes) -> ParseMsg:
    name, pos = cstr(body)
    sql, pos = cstr(body, pos)
    types = body[pos:]
    if len(types) < 2 or len(types) != 2 + 4 * int.from_bytes(types[:2], "big"):
        raise BadText("malformed parameter types")
    return ParseMsg(name, sql, types)


def build_parse(msg: ParseMsg) -> bytes:
    return frame(b"P", msg.name.encode() + b"\0" + msg.sql.encode() + b"\0" + msg.param_types)


SYNC = frame(b"S")
TERMINATE = frame(b"X")


# --- authentication --------------------------------------------------------------------

AUTH_OK = 0
AUTH_CLEARTEXT = 3
AUTH_MD5 = 5
AUTH_SASL = 10
AUTH_SASL_CONTINUE = 11
AUTH_SASL_FINAL = 12


def authentication(code: int, data: bytes = b"") -> bytes:
    return frame(b"R", _I32.pack(code) + data)


def parse_authentication(body: bytes) -> tuple[int, bytes]:
    if len(body) < 4:
        raise ProtocolError("short authentication message")
    return _I32.unpack_from(body)[0], body[4:]


def password_message(data: bytes) -> bytes:
    return frame(b"p", data)


def sasl_initial_response(mechanism: str, data: bytes) -> bytes:
    return frame(b"p", mechanism.encode() + b"\0" + _I32.pack(len(data)) + data)


def parse_sasl_initial_response(body: bytes) -> tuple[str, bytes]:
    mech, pos = cstr(body)
    if len(body) < pos + 4:
        raise ProtocolError("short SASLInitialResponse")
    (n,) = _I32.unpack_from(body, pos)
    return mech, (b"" if n < 0 else body[pos + 4 : pos + 4 + n])


# --- backend status and errors ---------------------------------------------------------


def parameter_status(name: str, value: str) -> bytes:
    return frame(b"S", name.encode() + b"\0" + value.encode() + b"\0")


def backend_key_data(key: CancelKey) -> bytes:
    return frame(b"K", _I32I32.pack(key.pid, key.secret))


def parse_backend_key_data(body: bytes) -> CancelKey:
    if len(body) < 8:
        raise ProtocolError("short BackendKeyData")
    return CancelKey(*_I32I32.unpack_from(body))


def ready_for_query(status: bytes) -> bytes:
    return frame(b"Z", status)


def negotiate_protocol_version(minor: int, unknown: list[str]) -> bytes:
    body = _I32.pack(minor) + _I32.pack(len(unknown))
    return frame(b"v", body + b"".join(o.encode() + b"\0" for o in unknown))


def error_response(sqlstate: str, message: str, *, severity: str = "ERROR",
                   detail: str | None = None, notice: bool = False) -> bytes:
    """ErrorResponse (or NoticeResponse); `message` goes to the client verbatim."""
    fields = [(b"S", severity), (b"V", severity), (b"C", sqlstate), (b"M", message)]
    if detail:
        fields.append((b"D", detail))
    body = b"".join(t + v.encode() + b"\0" for t, v in fields) + b"\0"
    return frame(b"N" if notice else b"E", body)


def parse_fields(body: bytes) -> dict[str, str]:
    """Fields of an ErrorResponse/NoticeResponse body, keyed by their one-letter type."""
    out: dict[str, str] = {}
    pos = 0
    while pos < len(body) and body[pos] != 0:
        key = chr(body[pos])
        end = body.find(b"\0", pos + 1)
        if end < 0:
            raise ProtocolError("unterminated string")
        # The server's words, only shown: a stray byte must not drop the message.
        out[key] = body[pos + 1 : end].decode("utf-8", "replace")
        pos = end + 1
    return out
