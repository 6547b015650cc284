"""The life of one call, in one function: accept, route, decode, guards, send, respond,
observe. Everything it calls is either a pure decision or the one upstream seam."""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web
from multidict import MultiDictProxy

from proxy.codecs.http import read_up_to
from proxy.credentials.mask import Masker
from proxy.guards.base import CallContext
from proxy.guards.identity import identity_problem
from proxy.model.call import EMPTY_QUERY, Caller, Request, ToolCall
from proxy.model.deadline import make_deadline
from proxy.model.errors import ErrorCode, ProxyError
from proxy.model.record import CallRecord
from proxy.model.verdict import Allow, Deny, Rewrite
from proxy.upstream.client import translate
from proxy.upstream.resilience import IDEMPOTENT

if TYPE_CHECKING:
    from proxy.app import ProxyState
    from proxy.compile import CompiledRoute

log = logging.getLogger("callwarden")
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})\Z")
_TRACE_ID = re.compile(r"[A-Za-z0-9._-]{1,128}\Z")
_FORMATS = Masker((), formats=True)
DENIAL_CODES = frozenset(
    {
        ErrorCode.POLICY_DENY,
        ErrorCode.PERMISSION_DENIED,
        ErrorCode.AUTH_FAILED,
        ErrorCode.TENANT_MISMATCH,
        ErrorCode.SQL_BLOCKED,
        ErrorCode.RATE_LIMITED,
        ErrorCode.INVALID_PARAMS,
        ErrorCode.TOOL_BAD_REQUEST,
        ErrorCode.PLAN_INVALID,
    }
)


def trace_context(
    traceparent: str | None, trace_header: str | None
) -> tuple[str, str | None, str]:
    """(trace id, parent span id, flags): W3C traceparent first, then X-Trace-ID, else a
    new id."""
    if traceparent:
        m = _TRACEPARENT.match(traceparent.strip().lower())
        if m and m.group(1) != "0" * 32:
            return m.group(1), m.group(2), m.group(3)
    if trace_header and _TRACE_ID.match(trace_header) and not _FORMATS.spans(trace_header):
        # SECURITY: the id is logged and echoed; a token sent as one is not kept.
        return trace_header, None, "01"
    return f"{random.getrandbits(128) or 1:032x}", None, "01"


_ROLES: dict[str, frozenset[str]] = {}
"""Role header values seen (a handful per deployment), bounded like the route memo."""


def parse_roles(raw: str | None) -> frozenset[str]:
    if not raw:
        return frozenset()
    roles = _ROLES.get(raw)
    if roles is None:
        roles = frozenset(r for r in (p.strip() for p in raw.split(",")) if r)
        if len(raw) <= 256:
            if len(_ROLES) >= 1024:
                _ROLES.clear()
            _ROLES[raw] = roles
    return roles


def too_large(limit: int) -> ProxyError:
    return ProxyError(
        ErrorCode.TOOL_BAD_REQUEST, f"request body larger than {limit} bytes", http_status=413
    )


async def read_capped(stream: Any, limit: int) -> bytes:
    data = await read_up_to(stream, limit)
    if len(data) > limit:
        raise too_large(limit)
    return data


async def capped_stream(stream: Any, limit: int) -> Any:
    size = 0
    async for chunk in stream.iter_any():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        yield chunk


async def run_guards(route: CompiledRoute, call: ToolCall, ctx: CallContext) -> ToolCall:
    """Run the route's chain; returns the (possibly rewritten) call or raises the denial.
    Audit mode turns a Deny into a recorded would-deny and drops rewrites."""
    rec = ctx.record
    for guard in route.chain:
        verdict = await guard.check(call, ctx)
        if isinstance(verdict, Allow):
            continue
        audit = route.guard_mode(guard.name) == "audit"
        if isinstance(verdict, Rewrite):
            if not audit:
                call = verdict.call
                rec.rewritten = rec.rewritten or bool(verdict.note)
            continue
        assert isinstance(verdict, Deny)
        ctx.response_headers.extend(verdict.headers)
        if audit:
            rec.would_deny.append((guard.name, str(verdict.code), verdict.reason))
            continue
        rec.guard = guard.name
        raise ProxyError(verdict.code, verdict.reason, retry_after_s=verdict.retry_after_s)
    return call


class Pipeline:
    def __init__(self, state: ProxyState) -> None:
        self.state = state

    async def handle(self, req: web.Request) -> web.StreamResponse:
        compiled = self.state.compiled  # one snapshot: a reload never changes a call midway
        identity = compiled.identity
        headers = req.headers
        rec = CallRecord(start=time.monotonic(), method=req.method)
        trace_id, parent_span, flags = trace_context(
            headers.get("traceparent"), headers.get(identity.trace_header)
        )
        rec.trace_id = trace_id
        tracing = self.state.tracing
        if tracing is not None:
            rec.span = tracing.start(trace_id, parent_span, flags)
        route: CompiledRoute | None = None
        ctx: CallContext | None = None
        call: ToolCall | None = None
        metrics = self.state.metrics
        try:
            path, host, raw_query, found = compiled.table.resolve(
                req.raw_path, headers.get("Host")
            )
            rec.path = path
            if self.state.decision_log is not None:  # replay needs the request as sent
                rec.decision_input = {
                    "host": host,
                    "query": raw_query,
                    "headers": headers,
                    # logged as the validated tenant/role fields, never as sent
                    "identity_headers": (identity.tenant_header, identity.role_header),
                }
            if found is None:
                raise ProxyError(ErrorCode.POLICY_DENY, "no route matches this request")
            route, upstream_path = found
            rec.route, rec.kind = route.name, route.kind
            tenant = headers.get(identity.tenant_header) or None
            roles_raw = headers.get(identity.role_header)
            # SECURITY: tenant and roles are logged, labelled and forwarded: held to a
            # grammar before anything records them; one tenant header (a second copy
            # could be the one a forwarded-to upstream reads).
            problem = identity_problem(
                tenant, roles_raw, identity.tenant_header, identity.role_header
            )
            if problem is None and tenant and len(headers.getall(identity.tenant_header)) > 1:
                problem = f"{identity.tenant_header} sent more than once"
            if problem is not None:
                raise ProxyError(ErrorCode.AUTH_FAILED, problem)
            caller = Caller(
                tenant,
                parse_roles(roles_raw),
                trace_id,
                req.remote or "",
            )
            rec.tenant = caller.tenant
            rec.roles = roles_raw or ""
            deadline = make_deadline(
                rec.start,
                route.timeout_s,
                headers.get(identity.budget_header),
                headers.get(identity.phase_header),
            )
            rec.budget_ms, rec.phase = deadline.budget_ms, deadline.phase
            ctx = CallContext(deadline, rec, compiled.rules.environment)
            ctx.scratch["trace_flags"] = flags
            if rec.span is not None:
                ctx.scratch["span_id"] = tracing.span_id(rec.span)  # type: ignore[union-attr]
            inflight = self.state.call_metrics.child(metrics.inflight, route.name)
            inflight.inc()
            try:
                return await self._forward(req, route, ctx, caller, upstream_path, raw_query)
            finally:
                inflight.dec()
        except Exception as exc:
            if not isinstance(exc, ProxyError):
                log.error("internal error on route %s: %s", rec.route, exc.__class__.__name__)
                exc = ProxyError(ErrorCode.INTERNAL_ERROR, "internal error")
            err = exc
            if ctx is not None and ctx.streaming is not None:
                # The head is out: cut the connection so the caller sees a broken
                # stream, never a truncated body that looks complete.
                self._refuse(err, route, ctx, call, rec)
                if req.transport is not None:
                    req.transport.close()
                return ctx.streaming
            return self._refuse(err, route, ctx, call, rec)
        finally:
            if ctx is not None:
                for done in ctx.on_done:
                    done()
            self.state.observe(rec)

    async def _forward(
        self,
        req: web.Request,
        route: CompiledRoute,
        ctx: CallContext,
        caller: Caller,
        upstream_path: str,
        raw_query: str,
    ) -> web.StreamResponse:
        rec = ctx.record
        # 1. accept: body read only when a guard needs it, with the route's size cap.
        body, stream = None, None
        if req.body_exists:
            cap = route.max_request_bytes
            length = req.content_length
            if cap is not None and length is not None and length > cap:
                raise too_large(cap)
            if route.codec.wants_body(route, req.method, req.headers):
                limit = min(cap or route.max_inspect_bytes, route.max_inspect_bytes)
                body = await read_capped(req.content, limit)
            elif cap is not None and length is None:
                stream = capped_stream(req.content, cap)
            else:
                stream = req.content
        query: MultiDictProxy[str] = req.query if raw_query else EMPTY_QUERY
        request = Request(req.method, upstream_path, raw_query, query, req.headers, body)
        # 3. decode into a typed call.
        di = rec.decision_input
        if di is not None:
            di["request"] = request
        call = route.codec.decode(route, request, caller)
        if di is not None:
            di["call"] = call
        rec.tool = call.tool
        ctx.scratch["call"] = call  # render_error answers in kind (MCP: the JSON-RPC ids)
        # 4. guards, in the fixed order.
        call = await run_guards(route, call, ctx)
        ctx.scratch[IDEMPOTENT] = call.idempotent  # may the upstream client retry it
        if di is not None:
            di["final"] = call
        # 5-7. send and respond within the deadline (the whole exchange, body included).
        deadline = ctx.deadline
        loop = asyncio.get_running_loop()
        t_up = time.monotonic()
        try:
            async with asyncio.timeout_at(loop.time() + deadline.remaining()) as timer:
                ctx.scratch["timer"] = timer  # a long-lived GET event stream lifts it
                out = route.codec.encode(route, call, ctx, stream, req.remote or "", req.scheme)
                upstream = await self.state.upstream.send(route, out, ctx)
                try:
                    rec.status = upstream.status
                    resp = await route.codec.respond(req, route, call, ctx, upstream)
                finally:
                    upstream.release()
        except TimeoutError:
            rec.upstream_s = time.monotonic() - t_up
            phase = (deadline.phase or "execute") if deadline.budget_bound else "route"
            self.state.metrics.timeouts.labels(route.name, phase).inc()
            raise deadline.expired_error() from None
        except ProxyError:
            rec.upstream_s = time.monotonic() - t_up
            raise
        except Exception as exc:
            rec.upstream_s = time.monotonic() - t_up
            if ctx.streaming is not None and (req.transport is None or req.transport.is_closing()):
                # The caller hung up mid-stream (MCP clients do once they have their answer):
                # not an upstream failure, and nobody is left to answer.
                rec.warnings.append("caller disconnected")
                return ctx.streaming
            raise translate(exc) from None
        rec.upstream_s = time.monotonic() - t_up
        rec.status = resp.status
        return resp

    def _refuse(
        self,
        err: ProxyError,
        route: CompiledRoute | None,
        ctx: CallContext | None,
        call: ToolCall | None,
        rec: CallRecord,
    ) -> web.StreamResponse:
        rec.error_code = str(err.code)
        rec.reason = err.message
        rec.outcome = "denied" if err.code in DENIAL_CODES else "error"
        rec.status = err.http_status
        name = route.name if route else ""
        if err.code is ErrorCode.RATE_LIMITED and route is not None:
            self.state.call_metrics.child(self.state.metrics.rate_limited, name).inc()
        if route is not None:
            return route.codec.render_error(err, name, rec.trace_id, ctx, call)
        from proxy.codecs.http import render_http_error

        return render_http_error(err, name, rec.trace_id)
