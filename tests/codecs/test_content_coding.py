"""Response content decoding: what a client would decode, in bounded pieces, or an error."""

from __future__ import annotations

import gzip
import zlib

import pytest

from proxy.codecs.content_coding import (
    PIECE,
    BodyDecoder,
    DecodedTooLarge,
    DecodeError,
    coding_of,
)

TEXT = b'{"rows": [[1], [2]], "note": "' + bytes(range(32, 127)) * 50 + b'"}'


def _decode(coding: str, data: bytes, step: int, limit: int | None = None) -> bytes:
    d = BodyDecoder(coding, limit)
    out = b"".join(p for i in range(0, len(data), step) for p in d.feed(data[i : i + step]))
    return out + d.finish()


@pytest.mark.parametrize(
    ("coding", "data"),
    [
        ("gzip", gzip.compress(TEXT)),
        ("gzip", gzip.compress(TEXT[:100]) + gzip.compress(TEXT[100:])),  # two members
        ("deflate", zlib.compress(TEXT)),
        ("deflate", zlib.compress(TEXT)[2:-4]),  # raw deflate, as some servers send it
    ],
)
@pytest.mark.parametrize("step", [1, 7, 1 << 20])
def test_decodes_in_any_chunking(coding: str, data: bytes, step: int) -> None:
    assert _decode(coding, data, step) == TEXT


def test_pieces_are_bounded_and_the_cap_refuses() -> None:
    bomb = gzip.compress(b"\0" * (8 * PIECE))
    d = BodyDecoder("gzip", None)
    assert max(len(p) for p in d.feed(bomb)) <= PIECE
    with pytest.raises(DecodedTooLarge):
        _decode("gzip", bomb, 1 << 20, limit=PIECE)


@pytest.mark.parametrize(
    ("coding", "data"),
    [
        ("gzip", gzip.compress(TEXT)[:-9]),  # truncated
        ("gzip", b"not gzip at all"),
        ("gzip", gzip.compress(TEXT) + b"trailing"),
        ("deflate", zlib.compress(TEXT) + b"trailing"),
        ("deflate", zlib.compress(TEXT)[:-20]),
    ],
)
def test_corrupt_or_truncated_bodies_are_errors(coding: str, data: bytes) -> None:
    with pytest.raises(DecodeError):
        _decode(coding, data, 64)


def test_empty_body_is_empty() -> None:
    assert _decode("gzip", b"", 1) == b""


@pytest.mark.parametrize(
    ("header", "coding"),
    [
        (None, ""),
        ("identity", ""),
        ("GZIP", "gzip"),
        ("x-gzip", "gzip"),
        (" deflate ", "deflate"),
        ("identity, gzip", "gzip"),
        ("br", None),
        ("zstd", None),
        ("gzip, gzip", None),
        ("gzip, br", None),
    ],
)
def test_coding_of(header: str | None, coding: str | None) -> None:
    assert coding_of(header) == coding
