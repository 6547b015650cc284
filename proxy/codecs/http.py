"""The HTTP codec: plain HTTP routes, and the base the SQL, graph and MCP codecs extend.

decode: inbound request -> typed call; encode: call -> outbound request (headers cleaned
per RFC 9110 7.6.1, secrets injected, trace and budget propagated); respond: upstream
response -> caller (streamed unless a response filter must see it); render_error.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aiohttp import web
from multidict import CIMultiDict

from proxy.codecs.content_coding import BodyDecoder, DecodedTooLarge, DecodeError, coding_of
from proxy.guards.base import CallContext, FilterRefused
from proxy.mcp.sse import SseEventTooLarge, SseParser
from proxy.model.call import Caller, HttpCall, Request, ToolCall
from proxy.model.errors import ErrorCode, ProxyError
from proxy.model.jsonio import DuplicateKeyError, loads_unique

if TYPE_CHECKING:
    from proxy.compile import CompiledRoute
    from proxy.model.record import CallRecord
    from proxy.upstream.h1 import UpstreamResponse

# RFC 9110 7.6.1 connection-specific fields, plus the de-facto ones proxies also drop.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-authorization",
        "proxy-authenticate",
    }
)
FRAMING = frozenset({"content-length", "content-encoding", "transfer-encoding", "expect"})
"""Request headers the proxy decides from the body it sends (proxy/framing.py), never
copied from the caller (DESIGN invariant 1)."""
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
INSPECTABLE_TYPES = ("application/json", "application/x-www-form-urlencoded", "text/", "+json",
                     "multipart/form-data", "xml")
SMALL_RESPONSE = 65536
"""Responses up to this size (with a Content-Length) are read whole: cheaper than streaming."""
MAX_FILTERED_RESPONSE = 16 * 1024 * 1024
"""Most a filter that reads the whole document (row caps, tools/list) gets; a larger
answer is refused (FilterRefused, too_large), never passed on unfiltered."""
SMALL_DECODED = 1024 * 1024
"""A compressed answer complete on arrival is decoded in one piece up to this size."""
MAX_DECODED_RESPONSE = 256 * 1024 * 1024
"""Most a compressed answer is decoded to on a filtered route (streamed masking reads any
length of plain body; this bounds what a small compressed one may inflate to)."""
SETTLE_S = 0.05
"""Longest wait for the end of an event stream whose answer has arrived."""


@dataclass(frozen=True, slots=True)
class OutboundRequest:
    method: str
    url: str
    headers: CIMultiDict[str]
    body: Any
    """bytes, an h1.BodyStream with the proxy's framing (not replayable), or None."""
    replayable: bool


def error_body(err: ProxyError, route: str, trace_id: str) -> dict[str, Any]:
    return {
        "error": {
            "code": str(err.code),
            "message": err.message,
            "route": route or None,
            "trace_id": trace_id,
            "retryable": err.spec.retryable,
            **(err.data or {}),
        }
    }


def render_http_error(
    err: ProxyError, route: str, trace_id: str, headers: list[tuple[str, str]] | None = None
) -> web.Response:
    resp = web.Response(
        status=err.http_status,
        body=json.dumps(error_body(err, route, trace_id)).encode(),
        content_type="application/json",
    )
    h = resp.headers
    h["X-CallWarden-Error-Code"] = str(err.code)
    h["X-Trace-ID"] = trace_id
    if err.retry_after_s is not None:
        h["Retry-After"] = str(max(1, int(-(-err.retry_after_s // 1))))
    for name, value in headers or ():
        h[name] = value
    for name, value in (err.extra_headers or {}).items():
        h[name] = value
    return resp


def is_inspectable(content_type: str) -> bool:
    ct = content_type.lower()
    return any(t in ct for t in INSPECTABLE_TYPES)


def new_span_id() -> str:
    return f"{random.getrandbits(64) or 1:016x}"  # ids, not secrets: no syscall per call


async def read_up_to(stream: Any, limit: int) -> bytes:
    """The whole body, or its first limit+1 bytes: StreamReader.read(n) may return
    fewer than n bytes long before EOF, so one read is not the body."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await stream.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


class HttpCodec:
    kind = "http"
    always_buffer = False
    """Kinds whose guards must read the body (sql, graph, mcp) buffer it always."""

    def wants_body(self, route: CompiledRoute, method: str, headers: Any) -> bool:
        if self.always_buffer:
            return True
        if not route.inspect_bodies:
            return False
        length = headers.get("Content-Length")
        return (
            length is not None
            and length.isdigit()
            and 0 < int(length) <= route.max_inspect_bytes
            and is_inspectable(headers.get("Content-Type", ""))
        )

    def decode(self, route: CompiledRoute, request: Request, caller: Caller) -> ToolCall:
        parsed = None
        if request.body and "json" in request.headers.get("Content-Type", ""):
            try:
                parsed = loads_unique(request.body)
            except DuplicateKeyError:
                # SECURITY: the guards would read one copy and the upstream maybe the other
                # (a credential under the first copy of a key went unscanned).
                raise duplicate_key() from None
            except (ValueError, UnicodeDecodeError):
                parsed = None  # plain HTTP routes forward what they do not need to read
        # Safe methods (RFC 9110 9.2.1) may be retried; anything else is treated as a write.
        safe = request.method in SAFE_METHODS
        return HttpCall(route.name, route.kind, caller, request, json=parsed, idempotent=safe)

    def outbound_body(self, call: ToolCall) -> bytes | None:
        """The body to send when a guard rewrote the call (None: the original)."""
        return call.rewritten_body

    # -- encode -------------------------------------------------------------------------

    def headers(
        self, route: CompiledRoute, call: ToolCall, ctx: CallContext, peer: str, scheme: str
    ) -> CIMultiDict[str]:
        src = call.request.headers
        drop = route.drop_headers
        connection = src.get("Connection")
        if connection:
            drop = drop | {t.strip().lower() for t in connection.split(",")}
        out: CIMultiDict[str] = CIMultiDict()
        for name, value in src.items():
            if name.lower() not in drop:
                out.add(name, value)
        # SECURITY: the upstream's own Host (DNS-rebinding protection refuses others).
        out["Host"] = route.upstream_host
        xff = src.get("X-Forwarded-For")
        out["X-Forwarded-For"] = f"{xff}, {peer}" if xff else peer
        out["X-Forwarded-Proto"] = scheme
        trace_id = call.caller.trace_id
        out["X-Trace-ID"] = trace_id
        if len(trace_id) == 32:
            flags = ctx.trace_flags
            span = ctx.span_id or new_span_id()
            out["traceparent"] = f"00-{trace_id}-{span}-{flags}"
        if ctx.deadline.budget_ms is not None:
            out[route.budget_header] = str(ctx.deadline.remaining_ms())
        if route.tenant_forward_header and call.caller.tenant:
            out[route.tenant_forward_header] = call.caller.tenant
        if ctx.response_filters or "Accept-Encoding" not in out:
            # Filters must read the body as sent; and a caller that asked for no encoding
            # must not get one the client library would otherwise ask for on its behalf.
            out["Accept-Encoding"] = "identity"
        if ctx.response_filters and ("Range" in out or "If-Range" in out):
            # SECURITY: filters judge whole answers; pieces (206) could each hold part of
            # a secret and none all of it.
            out.popall("Range", None)
            out.popall("If-Range", None)
        for name, value in call.extra_headers:
            out[name] = value  # injected secrets replace caller-supplied values
        return out

    def encode(
        self,
        route: CompiledRoute,
        call: ToolCall,
        ctx: CallContext,
        stream: Any,
        peer: str,
        scheme: str,
    ) -> OutboundRequest:
        headers = self.headers(route, call, ctx, peer, scheme)
        body = self.outbound_body(call)
        if body is not None:
            replayable = True
        elif call.request.body is not None:
            body, replayable = call.request.body, True
        else:
            # a framing.BodyStream, or a body that arrived whole while held back (bytes)
            body, replayable = stream, stream is None or isinstance(stream, bytes)
        qs = call.request.query_string
        if call.extra_query:
            names = {k for k, _ in call.extra_query}
            pairs = [(k, v) for k, v in call.request.query.items() if k not in names]
            qs = urlencode([*pairs, *call.extra_query])
        url = route.upstream_prefix + call.request.path
        if qs:
            url = f"{url}?{qs}"
        return OutboundRequest(call.request.method, url, headers, body, replayable)

    # -- respond ------------------------------------------------------------------------

    async def respond(
        self,
        req: web.Request,
        route: CompiledRoute,
        call: ToolCall,
        ctx: CallContext,
        upstream: UpstreamResponse,
    ) -> web.StreamResponse:
        headers = answer_headers(upstream, call, ctx)
        # Media types are case-insensitive (RFC 9110 8.3.1): `Text/Event-Stream` is a stream.
        ctype = upstream.headers.get("Content-Type", "").lower()
        if req.method == "GET" and "text/event-stream" in ctype:
            # A standalone event stream (MCP's GET stream) lives as long as the session:
            # the call deadline bounded its opening, not its life.
            timer = ctx.timer
            if timer is not None:
                timer.reschedule(None)
        filters = ctx.response_filters
        if filters and upstream.status != 206 and upstream.content_length is not None \
                and coding_of(upstream.headers.get("Content-Encoding")) == "":
            filters = _needed(filters, upstream.content_length)
        if filters:
            try:
                out = self._filtered(req, upstream, headers, ctype, filters, ctx)
                return out if isinstance(out, web.StreamResponse) else await out
            except FilterRefused as err:
                refused(ctx.record, err)
                raise
        length = upstream.content_length
        if length is not None and length <= SMALL_RESPONSE:
            data = await upstream.read()
            return web.Response(status=upstream.status, headers=headers, body=data)
        return await self._stream(req, upstream, headers, ctx)

    def _filtered(
        self,
        req: web.Request,
        upstream: UpstreamResponse,
        headers: CIMultiDict[str],
        ctype: str,
        filters: list[Any],
        ctx: CallContext,
    ) -> web.StreamResponse | Awaitable[web.StreamResponse]:
        """The answer through every filter the route asked for, or refused (FilterRefused):
        no size, encoding or content type lets it past a filter unread. Filters that
        stream (masking) work on a body of any length; filters that read the whole
        document (row caps, tools/list) get it up to MAX_FILTERED_RESPONSE. Returns the
        response, or what to await for it (no coroutine frame of its own: hot path)."""
        for f in filters:
            mask_headers = getattr(f, "headers", None)
            if mask_headers is not None:
                headers = mask_headers(headers)
        status = upstream.status
        if req.method == "HEAD" or status in (204, 304):
            if coding_of(headers.get("Content-Encoding")):  # as the GET would be sent
                headers.popall("Content-Encoding")
                headers.pop("Content-Length", None)
            return web.Response(status=status, headers=headers)  # no body to filter
        if status == 206:  # the proxy sent no Range: a piece of an answer is not judged
            raise FilterRefused(names(filters), "partial", "a partial answer (206)")
        body = FilteredBody(upstream, headers, filters)
        if "text/event-stream" in ctype:
            return self._stream_events(req, upstream, headers, filters, ctx, body)
        return self._filtered_body(req, upstream, headers, ctype, filters, ctx, body)

    async def _filtered_body(
        self,
        req: web.Request,
        upstream: UpstreamResponse,
        headers: CIMultiDict[str],
        ctype: str,
        filters: list[Any],
        ctx: CallContext,
        body: FilteredBody,
    ) -> web.StreamResponse:
        status = upstream.status
        whole = [f for f in filters if needs_whole(f, ctype)]
        if whole:
            data = await body.read_all(MAX_FILTERED_RESPONSE, whole)
            for f in filters:
                data = f.body(data, ctype)
            headers.pop("Content-Length", None)
            return web.Response(status=status, headers=headers, body=data)
        streaming = [f for f in filters if getattr(f, "feed", None) is not None]
        first, done = await body.first_piece(_standalone_stream(req, headers))
        if done:  # the whole body had arrived: filtered in one piece, sent in one write
            for f in filters:
                first = f.body(first, ctype)
            headers.pop("Content-Length", None)
            return web.Response(status=status, headers=headers, body=first)
        # SECURITY: masking runs on a body of any length as it streams: each filter keeps
        # back only a tail that could hold the start of a secret still arriving.
        headers.pop("Content-Length", None)
        for f in streaming:
            first = f.feed(first, ctype)
        resp = await start_stream(req, status, headers, ctx, coalesce=bool(first))
        if first:
            await resp.write(first)
        async for chunk in body.chunks():
            for f in streaming:
                chunk = f.feed(chunk, ctype)
            if chunk:
                await resp.write(chunk)
        tail = body.finish()
        for f in streaming:
            tail = f.flush() if not tail else f.feed(tail, ctype) + f.flush()
        if tail:
            await resp.write(tail)
        await resp.write_eof()
        return resp

    async def _stream(
        self,
        req: web.Request,
        upstream: UpstreamResponse,
        headers: CIMultiDict[str],
        ctx: CallContext,
        first: bytes = b"",
    ) -> web.StreamResponse:
        content = upstream.content
        if not first and not _standalone_stream(req, headers):
            first, done = await _first_piece(content)
            if done:  # the whole body had arrived: one write, like a buffered proxy
                headers.pop("Content-Length", None)
                return web.Response(status=upstream.status, headers=headers, body=first)
        if first:
            headers.pop("Content-Length", None)
        resp = await start_stream(req, upstream.status, headers, ctx, coalesce=bool(first))
        if first:
            await resp.write(first)
        async for chunk in content.iter_any():
            await resp.write(chunk)
        await resp.write_eof()
        return resp

    async def _stream_events(
        self,
        req: web.Request,
        upstream: UpstreamResponse,
        headers: CIMultiDict[str],
        filters: list[Any],
        ctx: CallContext,
        body: FilteredBody,
    ) -> web.StreamResponse:
        headers.pop("Content-Length", None)
        # SECURITY: an event that never ends is cut at the parser's cap, not buffered,
        # and the answer refused (a filter cannot read half an event).
        parser = SseParser()
        out = b""
        try:
            if not _standalone_stream(req, headers):
                first, done = await body.first_piece(False, self.answer_in(ctx))
                if done and all(f.passes(first) for f in filters):
                    # Complete on arrival and nothing to change (the common tools/call
                    # answer): no event parsing at all.
                    return web.Response(status=upstream.status, headers=headers, body=first)
                out = filter_events(parser.feed(first), filters)
                if done:  # a short answer stream (an MCP tools/call): already complete
                    events, rest = parser.finish()
                    out += filter_events(events, filters) + _unfinished(rest, filters)
                    return web.Response(status=upstream.status, headers=headers, body=out)
            resp = await start_stream(req, upstream.status, headers, ctx, coalesce=bool(out))
            if out:
                await resp.write(out)
            async for chunk in body.chunks():
                out = filter_events(parser.feed(chunk), filters)
                if out:
                    await resp.write(out)
            events, rest = parser.feed(body.finish()), b""
            more, rest = parser.finish()
            await resp.write(filter_events(events + more, filters) + _unfinished(rest, filters))
        except SseEventTooLarge:
            raise FilterRefused(
                names(filters), "too_large", "an event-stream event is larger than the cap"
            ) from None
        await resp.write_eof()
        return resp

    def answer_in(self, ctx: CallContext) -> Callable[[bytes], bool] | None:
        """A test for "this first piece of an event stream holds the final answer" (the
        body's end is then imminent), where the protocol says so; plain HTTP cannot."""
        return None

    def render_error(
        self, err: ProxyError, route: str, trace_id: str, ctx: CallContext | None, call: Any
    ) -> web.StreamResponse:
        return render_http_error(err, route, trace_id, ctx.response_headers if ctx else None)


def answer_headers(
    upstream: UpstreamResponse, call: ToolCall, ctx: CallContext
) -> CIMultiDict[str]:
    """The upstream's response headers as the caller gets them (before any filter)."""
    headers = CIMultiDict(upstream.headers)
    for name in HOP_BY_HOP.intersection(k.lower() for k in headers):
        headers.popall(name)
    headers["X-Trace-ID"] = call.caller.trace_id
    for name, value in ctx.response_headers:
        headers[name] = value
    return headers


def filter_events(events: list[Any], filters: list[Any]) -> bytes:
    """Each event through every filter, in order; a filter returning None drops it."""
    out = []
    for event in events:
        data: bytes | None = event.raw
        for f in filters:
            if data is None:
                break
            data = f.event(data, event if data is event.raw else None)
        if data:
            out.append(data)
    return b"".join(out)


def _unfinished(rest: bytes, filters: list[Any]) -> bytes:
    """The bytes of an event the stream never finished: masked like a body (a client
    may still read them), never passed on as they came."""
    if not rest:
        return rest
    for f in filters:
        if getattr(f, "feed", None) is not None:
            rest = f.body(rest, "text/event-stream")
    return rest


def names(filters: list[Any]) -> tuple[str, ...]:
    """Metric labels of these filters (bounded: the filter kinds there are)."""
    return tuple(filter_name(f) for f in filters if not getattr(f, "watch_only", False))


def filter_name(f: Any) -> str:
    name = getattr(f, "name", None)
    if isinstance(name, str):
        return name
    return _CLASS_NAMES.get(type(f).__name__, "other")


_CLASS_NAMES = {"ToolsListFilter": "tools_list"}


def needs_whole(f: Any, content_type: str) -> bool:
    """The filter must read the whole body of this type (a filter that does not say is
    held to need it: fail closed)."""
    whole = getattr(f, "whole", None)
    return True if whole is None else bool(whole(content_type))


def refused(rec: CallRecord, err: FilterRefused) -> None:
    """Counted by filter and reason, and a warning on the access-log line."""
    for name in err.filters:
        rec.filter_refusals.append((name, err.reason))
    rec.warnings.append(f"response refused: {err.reason} ({', '.join(err.filters)} filter)")


def _needed(filters: list[Any], length: int) -> list[Any]:
    """The filters that must read an unencoded answer of `length` bytes: one with a
    `fits(length)` that proves the answer cannot concern it (a row cap larger than the
    answer's size in bytes) is left out, so a small answer streams as on a plain route."""
    for f in filters:
        fits = getattr(f, "fits", None)
        if fits is None or not fits(length):
            break
    else:
        return []
    return [f for f in filters if not (getattr(f, "fits", None) and f.fits(length))]


def _too_large(whole: list[Any], cap: int) -> FilterRefused:
    return FilterRefused(names(whole), "too_large", f"answer larger than {cap} bytes")


class FilteredBody:
    """The upstream body as the filters read it: decoded when the upstream encoded it
    (then sent to the caller as identity, Content-Encoding removed), or refused when it
    cannot be decoded. SECURITY: a compressed answer never passes a filter unread."""

    __slots__ = ("_content", "_decoder", "_filters", "_length", "_pending")

    def __init__(
        self, upstream: UpstreamResponse, headers: CIMultiDict[str], filters: list[Any]
    ) -> None:
        self._content = upstream.content
        self._length = upstream.content_length
        self._filters = filters
        self._decoder: BodyDecoder | None = None
        self._pending: Iterator[bytes] | None = None
        raw = headers.get("Content-Encoding")
        if raw is None:
            return
        coding = coding_of(",".join(headers.getall("Content-Encoding")))
        if coding is None:
            raise FilterRefused(
                names(filters), "encoding", "its Content-Encoding cannot be decoded"
            )
        headers.popall("Content-Encoding")
        if coding:
            headers.pop("Content-Length", None)
            self._length = None
            self._decoder = BodyDecoder(coding, MAX_DECODED_RESPONSE)

    def _refuse(self, exc: Exception, whole: list[Any] | None = None) -> FilterRefused:
        if isinstance(exc, DecodedTooLarge):
            return FilterRefused(names(whole or self._filters), "too_large", str(exc))
        return FilterRefused(names(self._filters), "undecodable", str(exc))

    async def read_all(self, cap: int, whole: list[Any]) -> bytes:
        """The whole (decoded) body, or FilterRefused when it is larger than `cap`.
        SECURITY: a size limit refuses; it never switches a filter off."""
        if self._length is not None and self._length > cap:
            raise _too_large(whole, cap)
        decoder = self._decoder
        if decoder is None:
            data = await read_up_to(self._content, cap)
            if len(data) > cap:
                raise _too_large(whole, cap)
            return data
        parts = []
        try:
            async for chunk in self._content.iter_any():
                parts += decoder.feed(chunk)
                if decoder.size > cap:
                    raise _too_large(whole, cap)
            parts.append(decoder.finish())
        except (DecodeError, DecodedTooLarge) as exc:
            raise self._refuse(exc, whole) from None
        if decoder.size > cap:
            raise _too_large(whole, cap)
        return b"".join(parts)

    def first_piece(
        self, standalone: bool, settle: Callable[[bytes], bool] | None = None
    ) -> Awaitable[tuple[bytes, bool]]:
        """As `_first_piece`, decoded: a compressed answer complete on arrival and small
        once decoded is one piece (so a corrupt one is refused before the head goes out);
        otherwise the rest of its decoding is left for `chunks`."""
        if self._decoder is None and not standalone:
            return _first_piece(self._content, settle)  # no frame of its own: hot path
        return self._first_decoded(standalone, settle)

    async def _first_decoded(
        self, standalone: bool, settle: Callable[[bytes], bool] | None
    ) -> tuple[bytes, bool]:
        if standalone:
            return b"", False
        raw, done = await _first_piece(self._content, settle)
        pending = self._pending = self._decode(raw)
        parts: list[bytes] = []
        size = 0
        for piece in pending:
            parts.append(piece)
            size += len(piece)
            if size > SMALL_DECODED:
                return b"".join(parts), False
        self._pending = None
        if done:
            parts.append(self.finish())
        return b"".join(parts), done

    def _decode(self, raw: bytes) -> Iterator[bytes]:
        assert self._decoder is not None
        try:
            yield from self._decoder.feed(raw)
        except (DecodeError, DecodedTooLarge) as exc:
            raise self._refuse(exc) from None

    async def chunks(self) -> AsyncIterator[bytes]:
        if self._decoder is None:
            async for chunk in self._content.iter_any():
                yield chunk
            return
        if self._pending is not None:
            for piece in self._pending:
                yield piece
                await asyncio.sleep(0)
            self._pending = None
        async for chunk in self._content.iter_any():
            for piece in self._decode(chunk):
                yield piece
                await asyncio.sleep(0)  # a bomb inflating must not hold the loop

    def finish(self) -> bytes:
        if self._decoder is None:
            return b""
        try:
            return self._decoder.finish()
        except (DecodeError, DecodedTooLarge) as exc:
            raise self._refuse(exc) from None


class _CoalescedStream(web.StreamResponse):
    """Its head goes out with the first body write, in one segment (aiohttp's Response
    does this; a StreamResponse sends its head at once)."""

    _send_headers_immediately = False


async def start_stream(
    req: web.Request,
    status: int,
    headers: CIMultiDict[str],
    ctx: CallContext,
    coalesce: bool = False,
) -> web.StreamResponse:
    """Send the head now (or, with `coalesce`, with the first write that follows at
    once); from here on a failure can only cut the connection, so the pipeline must not
    try to render an error (it checks ctx.streaming)."""
    resp = (_CoalescedStream if coalesce else web.StreamResponse)(status=status, headers=headers)
    await resp.prepare(req)
    ctx.streaming = resp
    return resp


def _standalone_stream(req: web.Request, headers: CIMultiDict[str]) -> bool:
    """A GET event stream lives for a session and may stay silent: its head must go out
    at once, not wait for a first event."""
    return req.method == "GET" and "text/event-stream" in headers.get("Content-Type", "")


async def _first_piece(
    content: Any, settle: Callable[[bytes], bool] | None = None
) -> tuple[bytes, bool]:
    """The first chunk of a body (waiting for it) plus whatever else has already arrived,
    and whether that is all of it. Waits beyond the first chunk only when `settle` says
    it holds the final answer, and then at most SETTLE_S, so a stream is still passed on
    as it comes."""
    data = await content.readany()
    more = content.read_nowait() if data else b""
    if more:
        data += more
    if settle and data and not content.at_eof() and settle(data):
        # The answer is here and the end of the body right behind it: wait (briefly)
        # for it, and the caller gets one response instead of a stream.
        try:
            async with asyncio.timeout(SETTLE_S):
                await content.wait_eof()
        except TimeoutError:
            pass
        more = content.read_nowait()
        if more:
            data += more
    return data, content.at_eof()


def bad_json(what: str = "request body") -> ProxyError:
    return ProxyError(ErrorCode.TOOL_BAD_REQUEST, f"{what} is not valid JSON")


def duplicate_key(what: str = "request body") -> ProxyError:
    return ProxyError(ErrorCode.TOOL_BAD_REQUEST, f"{what} repeats a JSON key")
