"""proxy/framing.py as pure functions: which codings and framings are accepted, and the
incremental decoder against the standard library's one-shot decoders."""

from __future__ import annotations

import asyncio
import gzip
import os
import zlib
from collections.abc import AsyncIterator

import pytest
from aiohttp import HttpVersion10, HttpVersion11
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from proxy.framing import PIECE, Decoder, decoded, request_coding, stream_body
from proxy.model.errors import ErrorCode, ProxyError
from proxy.upstream.h1 import BodyStream


def hdrs(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


@pytest.mark.parametrize(
    ("pairs", "coding"),
    [
        ((), None),
        ((("Content-Encoding", "identity"),), None),
        ((("Content-Encoding", " GZIP "),), "gzip"),
        ((("Content-Encoding", "x-gzip"),), "x-gzip"),
        ((("Content-Encoding", "deflate"),), "deflate"),
        ((("Transfer-Encoding", "chunked"), ("Content-Encoding", "gzip")), "gzip"),
        ((("Transfer-Encoding", "Chunked"),), None),
    ],
)
def test_accepted(pairs: tuple[tuple[str, str], ...], coding: str | None) -> None:
    assert request_coding(HttpVersion11, hdrs(*pairs)) == coding


@pytest.mark.parametrize(
    ("version", "pairs", "status"),
    [
        (HttpVersion11, (("Content-Encoding", "br"),), 415),
        (HttpVersion11, (("Content-Encoding", "gzip, gzip"),), 415),
        (HttpVersion11, (("Content-Encoding", "gzip"), ("Content-Encoding", "gzip")), 415),
        (HttpVersion11, (("Content-Encoding", "identity"), ("Content-Encoding", "gzip")), 415),
        (HttpVersion11, (("Transfer-Encoding", "gzip, chunked"),), 400),
        (HttpVersion11, (("Transfer-Encoding", "identity"),), 400),
        (HttpVersion10, (("Transfer-Encoding", "chunked"),), 400),
    ],
)
def test_refused(version: object, pairs: tuple[tuple[str, str], ...], status: int) -> None:
    with pytest.raises(ProxyError) as info:
        request_coding(version, hdrs(*pairs))
    assert info.value.code is ErrorCode.TOOL_BAD_REQUEST and info.value.http_status == status


def encoders() -> dict[str, tuple[str, object]]:
    def raw_deflate(data: bytes) -> bytes:
        z = zlib.compressobj(wbits=-15)
        return z.compress(data) + z.flush()

    return {
        "gzip": ("gzip", gzip.compress),
        "gzip-members": ("gzip", lambda d: gzip.compress(d[:7]) + gzip.compress(d[7:])),
        "zlib": ("deflate", zlib.compress),
        "raw": ("deflate", raw_deflate),
    }


@settings(max_examples=200, deadline=None)
@given(
    data=st.binary(max_size=3000) | st.integers(0, 300_000).map(lambda n: b"a" * n),
    which=st.sampled_from(sorted(encoders())),
    cuts=st.lists(st.integers(0, 400), max_size=8),
)
def test_incremental_decoding_equals_one_shot(data: bytes, which: str, cuts: list[int]) -> None:
    coding, encode = encoders()[which]
    enc = encode(data)  # type: ignore[operator]
    dec = Decoder(coding)
    out: list[bytes] = []
    rest = enc
    for cut in cuts:  # any split of the input, one-byte pieces included
        out += dec.feed(rest[:cut])
        rest = rest[cut:]
    out += dec.feed(rest)
    dec.finish()
    assert b"".join(out) == data
    assert all(len(piece) <= PIECE for piece in out)  # memory per step stays bounded


@pytest.mark.parametrize(
    "bad",
    [gzip.compress(b"x" * 999)[:-3], gzip.compress(b"x") + b"\x00", b"\x1f", b"plain text"],
)
def test_corrupt_or_cut_gzip_is_refused(bad: bytes) -> None:
    dec = Decoder("gzip")
    with pytest.raises(ProxyError) as info:
        list(dec.feed(bad))
        dec.finish()
    assert info.value.http_status == 400


def test_deflate_refuses_data_after_its_end() -> None:
    with pytest.raises(ProxyError):
        list(Decoder("deflate").feed(zlib.compress(b"one") + zlib.compress(b"two")))


async def pieces(*chunks: bytes) -> AsyncIterator[bytes]:
    for c in chunks:
        yield c


async def test_a_bomb_stops_at_the_cap_without_inflating_it_all() -> None:
    bomb = gzip.compress(b"\0" * (50 << 20))
    got = 0
    with pytest.raises(ProxyError) as info:
        async for piece in decoded(pieces(bomb), "gzip", 1 << 20):
            got += len(piece)
    assert info.value.http_status == 413 and got <= 1 << 20


async def test_empty_blocks_cannot_keep_the_proxy_reading() -> None:
    z = zlib.compressobj(wbits=31)
    start = z.compress(b"x") + z.flush(zlib.Z_SYNC_FLUSH)  # ends byte-aligned
    block = b"\x00\x00\x00\xff\xff"  # an empty stored block: five bytes, no output
    probe = Decoder("gzip")
    assert b"".join(probe.feed(start + block * 3)) == b"x"

    async def endless() -> AsyncIterator[bytes]:
        yield start
        while True:
            yield block * 10000
            await asyncio.sleep(0)  # as a socket would: the timeout below can fire

    with pytest.raises(ProxyError) as info:
        async with asyncio.timeout(20):
            async for _ in decoded(endless(), "gzip", 1 << 20):
                pass
    assert info.value.http_status == 413


async def test_incompressible_data_at_the_cap_still_decodes() -> None:
    data = os.urandom(1 << 20)  # deflate cannot shrink it: the coded body is longer
    enc = gzip.compress(data)
    assert len(enc) > len(data)
    got = b"".join([p async for p in decoded(pieces(enc), "gzip", 1 << 20)])
    assert got == data


class FakeContent:
    """The part of aiohttp's StreamReader stream_body uses."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks

    async def iter_any(self) -> AsyncIterator[bytes]:
        for c in self.chunks:
            yield c
            await asyncio.sleep(0)


async def test_stream_body_framing() -> None:
    # declared identity: streamed with that length
    out = await stream_body(FakeContent(b"ab", b"c"), None, None, 3)
    assert isinstance(out, BodyStream) and out.length == 3
    # unknown length, no cap: chunked
    out = await stream_body(FakeContent(b"ab"), None, None, None)
    assert isinstance(out, BodyStream) and out.length is None
    # unknown length within a cap: held back and sent whole, with its length
    assert await stream_body(FakeContent(b"ab", b"cd"), None, 10, None) == b"abcd"
    # over a small cap: refused before anything could be sent
    with pytest.raises(ProxyError):
        await stream_body(FakeContent(b"ab", b"cdefghijkl"), None, 5, None)
    # a coded body is decoded whatever length was declared for the coded bytes
    gz = gzip.compress(b"hello")
    assert await stream_body(FakeContent(gz), "gzip", None, len(gz)) == b"hello"
