"""The MCP codec (Streamable HTTP, JSON-RPC 2.0, protocol revisions 2025-06-18 and 2026-07-28).

decode: a POST body is parsed once into an `McpCall` (messages, batch flag, bounded tool
label); `Mcp-Method` / `Mcp-Name` must agree with the body. GET (the server's event stream)
and DELETE (session end) carry no messages and pass through. encode: the original bytes
unless a guard rewrote the call. respond: inherited (streams SSE; tools/list filtering is
a response filter the mcp_policy guard adds). render_error: JSON-RPC errors with HTTP 200
and the request's id, so MCP clients show refusals to the model; transport problems
(malformed JSON, header/body mismatch, body too large) keep their HTTP status.

JSON-RPC error codes: see proxy/mcp/jsonrpc.py (`data.error_code` is the stable name).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from proxy.codecs.http import (
    FilteredBody,
    HttpCodec,
    OutboundRequest,
    answer_headers,
    names,
    refused,
    render_http_error,
    start_stream,
)
from proxy.config.schema import Route
from proxy.credentials.mask import Masker
from proxy.guards.base import CallContext, FilterRefused
from proxy.mcp.jsonrpc import ROUTING_HEADERS, check_routing_headers, error_response, parse_body
from proxy.mcp.outcome import ToolOutcome
from proxy.mcp.tools_list import McpRuntime, runtime_for
from proxy.model.call import Caller, McpCall, Request, ToolCall, evolve
from proxy.model.errors import TRANSPORT_CODES, ErrorCode, ProxyError

if TYPE_CHECKING:
    from proxy.compile import CompiledRoute

READ_METHODS = frozenset(
    {"ping", "tools/list", "prompts/list", "resources/list", "resources/templates/list"}
)
"""Requests that change nothing on the server: safe to retry."""
HELD_OPEN = frozenset({"subscriptions/listen"})
"""Requests whose answer is held open (2026-07-28, SEP-2575): the response is the event
stream, one message per SSE event or per line of a chunked JSON body."""
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
"""Longest line of a held-open line-delimited answer (as SseParser's event cap)."""
NOT_SENT = ProxyError(
    ErrorCode.TOOL_BAD_REQUEST, "not sent: another element of the batch was refused"
)


class HeaderRefusal(ProxyError):
    """A refusal found before the call exists (decode), carrying the request id to answer."""

    __slots__ = ("request_id",)

    def __init__(self, code: ErrorCode, message: str, *, request_id: Any = None) -> None:
        super().__init__(code, message)
        self.request_id = request_id


_TOOL_NAME = re.compile(r"[A-Za-z0-9_.:/-]{1,128}\Z")
_FORMATS = Masker((), formats=True)


def loggable_tool(name: object) -> str | None:
    """A tool name fit for a log line (charset and length bounded; MCP names are plain
    identifiers), else None: a denied unknown tool is logged by its name, not "other"."""
    # SECURITY: a token sent as a tool name is not written down either
    if isinstance(name, str) and _TOOL_NAME.match(name) and not _FORMATS.spans(name):
        return name
    return None


class McpCodec(HttpCodec):
    kind = "mcp"

    def __init__(self, spec: Route) -> None:
        self.spec = spec
        self.runtime: McpRuntime | None = None

    def bind(self, route: CompiledRoute) -> McpRuntime:
        """Share the mcp_policy guard's runtime (one policy, one hint table per route) and
        attach the route's tool-integrity monitor, once, on the first call."""
        rt = next(
            (g.runtime for g in route.chain if getattr(g, "name", "") == "mcp_policy"), None
        )
        if rt is None:
            rt = runtime_for(self.spec.mcp)
        rt.integrity = route.extra.get("integrity")
        names = {getattr(g, "name", "") for g in route.chain}
        rt.check_calls = rt.integrity is not None and "integrity" not in names
        self.runtime = rt
        return rt

    def wants_body(self, route: CompiledRoute, method: str, headers: Any) -> bool:
        return method == "POST"

    def decode(self, route: CompiledRoute, request: Request, caller: Caller) -> McpCall:
        rt = self.runtime or self.bind(route)
        if request.method != "POST":
            return McpCall(route.name, route.kind, caller, request)
        if not request.body:
            raise ProxyError(ErrorCode.TOOL_BAD_REQUEST, "MCP POST needs a JSON-RPC body")
        messages, batch = parse_body(request.body)
        headers = request.headers
        for name in ROUTING_HEADERS:
            # SECURITY: first-copy and last-copy readers would disagree on a duplicate.
            if len(headers.getall(name, ())) > 1:
                raise ProxyError(ErrorCode.HEADER_MISMATCH, f"{name} header sent twice")
        try:
            check_routing_headers(headers, messages)
        except ProxyError as exc:
            one = messages[0].id if not batch and messages[0].method else None
            raise HeaderRefusal(exc.code, exc.message, request_id=one) from None
        tool = tool_name = None
        idempotent = True
        for m in messages:
            if m.method == "tools/call":
                name = m.params.get("name") if isinstance(m.params, dict) else None
                if not batch:
                    tool = rt.policy.tool_label(name)
                    tool_name = loggable_tool(name)
                idempotent = idempotent and rt.idempotent(name)
            elif m.method is not None and m.method not in READ_METHODS:
                idempotent = False
        doc = [m.raw for m in messages] if batch else messages[0].raw
        return McpCall(
            route.name,
            route.kind,
            caller,
            request,
            tool=tool,
            tool_name=tool_name,
            json=doc,
            idempotent=idempotent,
            messages=messages,
            batch=batch,
        )

    def encode(
        self,
        route: CompiledRoute,
        call: ToolCall,
        ctx: CallContext,
        stream: Any,
        peer: str,
        scheme: str,
    ) -> OutboundRequest:
        out = super().encode(route, call, ctx, stream, peer, scheme)
        if call.request.path == "/" and route.upstream_prefix.count("/") > 2:
            # The MCP endpoint is one URL: the route's own prefix maps to the upstream URL
            # as written (`/mcp` -> `http://host/mcp`, not `/mcp/`, which SDK servers
            # answer with a redirect clients do not follow).
            base = route.upstream_prefix
            out = evolve(out, url=base + out.url[len(base) + 1 :])
        return out

    async def respond(
        self,
        req: web.Request,
        route: CompiledRoute,
        call: ToolCall,
        ctx: CallContext,
        upstream: Any,
    ) -> web.StreamResponse:
        if call.tool is not None:  # one tools/call: its answer may report a tool failure
            ctx.response_filters.append(ToolOutcome(ctx.record))
        if not _holds_open(call):
            return await super().respond(req, route, call, ctx, upstream)
        # A held-open answer lives as long as the subscription: the call deadline bounded
        # sending the request and the head's arrival, not the stream's life.
        timer = ctx.timer
        if timer is not None:
            timer.reschedule(None)
        ctype = upstream.headers.get("Content-Type", "").lower()
        if "text/event-stream" in ctype or not ctx.response_filters:
            # Event streams are filtered event by event already; unfiltered bodies are
            # passed on as they come.
            return await super().respond(req, route, call, ctx, upstream)
        try:
            return await self._held_lines(req, call, ctx, upstream, ctype)
        except FilterRefused as err:
            refused(ctx.record, err)
            raise

    async def _held_lines(
        self, req: web.Request, call: ToolCall, ctx: CallContext, upstream: Any, ctype: str
    ) -> web.StreamResponse:
        """A held-open line-delimited answer, message by message: each complete line goes
        through every filter as a whole body (masking sees the whole message, so nothing
        is kept back waiting for a next message that may come much later), then out."""
        filters = ctx.response_filters
        headers = answer_headers(upstream, call, ctx)
        for f in filters:
            mask_headers = getattr(f, "headers", None)
            if mask_headers is not None:
                headers = mask_headers(headers)
        body = FilteredBody(upstream, headers, filters)
        headers.pop("Content-Length", None)
        resp = await start_stream(req, upstream.status, headers, ctx)

        def through(message: bytes) -> bytes:
            for f in filters:
                message = f.body(message, ctype)
            return message

        pending = bytearray()
        async for chunk in body.chunks():
            pending += chunk
            end = pending.rfind(b"\n") + 1
            if not end:
                if len(pending) > MAX_MESSAGE_BYTES:
                    # SECURITY: a line that never ends is refused, not buffered.
                    raise FilterRefused(
                        names(filters), "too_large", "a held-open message is larger than the cap"
                    )
                continue
            lines = bytes(pending[:end]).splitlines(keepends=True)
            del pending[:end]
            await resp.write(b"".join(through(line) for line in lines))
        rest = bytes(pending) + body.finish()
        if rest:
            await resp.write(through(rest))
        await resp.write_eof()
        return resp

    def answer_in(self, ctx: CallContext) -> Callable[[bytes], bool] | None:
        """A POST's event stream ends once every request in it has its response (the
        server then closes it): so a first piece ending on an event boundary and holding
        as many JSON-RPC messages as the POST had requests, one a result or an error, is
        the whole answer but for the body's end. A wrong guess costs one SETTLE_S wait."""
        call = ctx.call
        if not isinstance(call, McpCall) or not call.messages:
            return None
        wanted = sum(1 for m in call.messages if m.id is not None and m.method)
        if not wanted:
            return None

        def holds_answer(data: bytes) -> bool:
            return (
                data.endswith((b"\n\n", b"\r\n\r\n", b"\r\r"))
                and (b'"result"' in data or b'"error"' in data)
                and data.count(b'"jsonrpc"') >= wanted
            )

        return holds_answer

    def render_error(
        self, err: ProxyError, route: str, trace_id: str, ctx: CallContext | None, call: Any
    ) -> web.StreamResponse:
        if call is None and ctx is not None:
            call = ctx.call
        headers = list(ctx.response_headers) if ctx else []
        body: Any
        requests = (
            [(i, m) for i, m in enumerate(call.messages) if m.id is not None and m.method]
            if isinstance(call, McpCall)
            else []
        )
        if isinstance(err, HeaderRefusal):
            body = error_response(err.request_id, err, route, trace_id)
            return _response(err.http_status, body, err, trace_id, headers, ctx)
        if not requests or err.http_status == 413:
            # Transport problem (no JSON-RPC request to answer): HTTP status, JSON-RPC body.
            body = error_response(None, err, route, trace_id)
            return _response(err.http_status, body, err, trace_id, headers, ctx)
        if err.code in TRANSPORT_CODES:
            # The exchange itself is refused (SEP-2243: HTTP 400 with -32020): its HTTP
            # status, answering the request when there is exactly one.
            rid = requests[0][1].id if not call.batch and len(requests) == 1 else None
            body = error_response(rid, err, route, trace_id)
            return _response(err.http_status, body, err, trace_id, headers, ctx)
        if not call.batch:
            body = error_response(requests[0][1].id, err, route, trace_id)
        else:
            denials = ctx.mcp_denials if ctx and ctx.record.guard == "mcp_policy" else None
            body = [
                error_response(m.id, _element_error(denials, i, err), route, trace_id)
                for i, m in requests
            ]
        return _response(200, body, err, trace_id, headers, ctx)


def _holds_open(call: ToolCall) -> bool:
    return isinstance(call, McpCall) and any(
        m.method in HELD_OPEN and m.id is not None for m in call.messages
    )


def _element_error(denials: dict[int, Any] | None, i: int, err: ProxyError) -> ProxyError:
    if denials is None:
        return err
    deny = denials.get(i)
    if deny is None:
        return NOT_SENT
    return ProxyError(deny.code, deny.reason, retry_after_s=deny.retry_after_s)


def _response(
    status: int,
    body: Any,
    err: ProxyError,
    trace_id: str,
    headers: list[tuple[str, str]],
    ctx: CallContext | None,
) -> web.Response:
    if ctx is not None:
        ctx.record.status = status  # the access log shows what the caller got
    resp = render_http_error(err, "", trace_id, headers)
    resp.set_status(status)
    resp.body = json.dumps(body, separators=(",", ":")).encode()
    return resp

