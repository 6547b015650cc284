"""The aiohttp internals proxy/upstream/h1.py is built on (its C response parser, the
protocol base and the stream reader), held to what h1 needs. aiohttp is pinned to a
tested range in pyproject.toml; a release that changes these fails here, loudly, rather
than in a call."""

from __future__ import annotations

import asyncio
import inspect

import aiohttp
from aiohttp import http_parser
from aiohttp.base_protocol import BaseProtocol
from aiohttp.streams import EMPTY_PAYLOAD, StreamReader

from proxy.upstream import h1


def test_the_c_parser_is_the_one_in_use() -> None:
    """llhttp, not the pure-Python fallback: h1's cost and strictness assume it."""
    assert http_parser.HttpResponseParser is getattr(http_parser, "HttpResponseParserC", None)


def test_parser_keywords_h1_passes_exist() -> None:
    params = inspect.signature(http_parser.HttpResponseParserPy.__init__).parameters
    for name in ("protocol", "loop", "limit", "payload_exception", "response_with_body",
                 "read_until_eof", "auto_decompress"):
        assert name in params, f"aiohttp {aiohttp.__version__}: HttpResponseParser lost {name}"


async def test_parser_feeds_messages_and_payloads_as_h1_reads_them() -> None:
    loop = asyncio.get_running_loop()
    proto = BaseProtocol(loop)
    parser = http_parser.HttpResponseParser(
        proto, loop, 2**16, payload_exception=RuntimeError, response_with_body=True,
        read_until_eof=True, auto_decompress=False,
    )
    raw = (b"HTTP/1.1 100 Continue\r\n\r\n"
           b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Encoding: gzip\r\n"
           b"Connection: close\r\n\r\nhello")
    messages, upgraded, tail = parser.feed_data(raw)
    assert not upgraded and tail == b""
    codes = [m.code for m, _ in messages]
    assert codes == [100, 200]
    message, payload = messages[-1]
    assert message.should_close and message.headers["Content-Encoding"] == "gzip"
    assert isinstance(payload, StreamReader)
    assert await payload.read() == b"hello"  # auto_decompress=False: bytes as sent
    parser.feed_eof()


async def test_protocol_base_keeps_the_transport_h1_closes() -> None:
    loop = asyncio.get_running_loop()
    proto = BaseProtocol(loop)
    assert proto.transport is None
    proto.connection_lost(None)  # h1 reads "closed" as transport None
    assert proto.transport is None
    assert EMPTY_PAYLOAD.at_eof()


def test_h1_still_subclasses_the_base() -> None:
    assert issubclass(h1._Connection, BaseProtocol)
