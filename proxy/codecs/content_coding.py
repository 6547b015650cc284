"""Undoing an upstream's Content-Encoding so response filters read the body as the caller's
client will (RFC 9110 8.4). Only the codings the standard library decodes: gzip (x-gzip)
and deflate (zlib-wrapped, or raw as some servers send it). Anything else, stacked codings
included, has no decoder: the codec refuses such an answer rather than pass it unread.

Pure: bytes in, bytes out, no I/O. Output comes in bounded pieces, so a small compressed
body that inflates enormously (a decompression bomb) never sits in memory whole.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

PIECE = 256 * 1024
"""Most decoded bytes produced per step."""
_GZIP = 16 + zlib.MAX_WBITS
_ZLIB = zlib.MAX_WBITS
_RAW = -zlib.MAX_WBITS


class DecodeError(ValueError):
    """The body is not what its Content-Encoding says (corrupt, truncated, trailing bytes)."""


class DecodedTooLarge(ValueError):
    """The decoded body grew past the decoder's cap."""


class BodyDecoder:
    """feed(compressed) -> decoded pieces; finish() at the end of the body."""

    __slots__ = ("_d", "_fed", "_gzip", "_limit", "_pending", "size")

    def __init__(self, coding: str, limit: int | None) -> None:
        self._gzip = coding == "gzip"
        self._d: zlib._Decompress | None = zlib.decompressobj(_GZIP) if self._gzip else None
        self._pending = b""  # deflate: bytes held until the wrapper can be told apart
        self._fed = False
        self._limit = limit
        self.size = 0
        """Decoded bytes produced so far."""

    def _count(self, piece: bytes) -> bytes:
        self.size += len(piece)
        if self._limit is not None and self.size > self._limit:
            raise DecodedTooLarge(f"decoded body larger than {self._limit} bytes")
        return piece

    def feed(self, data: bytes) -> Iterator[bytes]:
        if not data:
            return
        self._fed = True
        d = self._d
        if d is None:  # deflate: RFC 9110 says zlib-wrapped; some servers send it raw
            data = self._pending + data
            if len(data) < 2:
                self._pending = data
                return
            self._pending = b""
            wrapped = data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
            d = self._d = zlib.decompressobj(_ZLIB if wrapped else _RAW)
        while data:
            if d.eof:
                # SECURITY: bytes after the end are a second gzip member (decoded like
                # clients do) or garbage a client would read differently: refused.
                if not self._gzip:
                    raise DecodeError("bytes after the end of the deflate stream")
                d = self._d = zlib.decompressobj(_GZIP)
            try:
                piece = d.decompress(data, PIECE)
            except zlib.error:
                raise DecodeError("body does not decode as its Content-Encoding") from None
            if piece:
                yield self._count(piece)
            data = d.unconsumed_tail or (d.unused_data if d.eof else b"")

    def finish(self) -> bytes:
        """The end of the body: anything still inside the decoder, or DecodeError when the
        body stopped before its compressed stream did."""
        if self._pending:
            raise DecodeError("body ends inside the compressed stream")
        d = self._d
        if not self._fed:
            return b""  # an empty body: nothing was encoded
        if not d.eof:
            raise DecodeError("body ends inside the compressed stream")
        return self._count(d.flush())


def coding_of(header: str | None) -> str | None:
    """The one coding to undo: '' for none (absent or identity), the coding's name when
    this module decodes it, None when it does not (unknown, or stacked codings)."""
    if header is None:
        return ""
    names = [t.strip().lower() for t in header.split(",") if t.strip()]
    names = [n for n in names if n != "identity"]
    if not names:
        return ""
    if len(names) > 1:
        return None  # stacked codings: refused, not guessed at
    name = names[0]
    if name in ("gzip", "x-gzip"):
        return "gzip"
    if name == "deflate":
        return "deflate"
    return None
