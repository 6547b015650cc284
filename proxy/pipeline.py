"""The life of one call, in one function: accept, route, decode, guards, send, respond,
observe. Everything it calls is either a pure decision or the one upstream seam."""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from typing import TYPE_CHECKING, Any

from aiohttp import HttpVersion11, web
from multidict import MultiDictProxy

from proxy.credentials.mask import Masker
from proxy.framing import read_body, request_coding, stream_body, too_large
from proxy.guards.base import CallContext, FilterRefused, Guard
from proxy.guards.identity import identity_problem
from proxy.hosts import HOST_REFUSED, HostPolicy
from proxy.identity.caller import resolve as resolve_identity
from proxy.model.call import EMPTY_QUERY, Caller, HttpCall, Request, ToolCall
from proxy.model.deadline import make_deadline
from proxy.model.errors import PHASE_TIMEOUTS, ErrorCode, ProxyError
from proxy.model.record import CallRecord
from proxy.model.verdict import Allow, Deny, Rewrite
from proxy.reference import REFERENCE
from proxy.upstream.breaker import Outcome
from proxy.upstream.client import translate

if TYPE_CHECKING:
    from proxy.app import ProxyState
    from proxy.compile import CompiledRoute

log = logging.getLogger("callwarden")
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})\Z")
_TRACE_ID = re.compile(r"[A-Za-z0-9._-]{1,128}\Z")
_FORMATS = Masker((), formats=True)
PHASE_CODES = frozenset(PHASE_TIMEOUTS.values())
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
        ErrorCode.HEADER_MISMATCH,
        ErrorCode.HOST_NOT_ALLOWED,
        ErrorCode.ORIGIN_NOT_ALLOWED,
        ErrorCode.APPROVAL_PENDING,
        ErrorCode.APPROVAL_DENIED,
        ErrorCode.APPROVAL_EXPIRED,
        ErrorCode.APPROVAL_MISMATCH,
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
    roles = None if REFERENCE else _ROLES.get(raw)
    if roles is None:
        roles = frozenset(r for r in (p.strip() for p in raw.split(",")) if r)
        if not REFERENCE and len(raw) <= 256:
            if len(_ROLES) >= 1024:
                _ROLES.clear()
            _ROLES[raw] = roles
    return roles


CONNECT_REFUSED = (
    "CONNECT (a tunnel, as clients with HTTPS_PROXY open) is not accepted: CallWarden must "
    "read every call to judge it. Call tools through the proxy in plain HTTP on loopback "
    "(http://127.0.0.1:15001/<route prefix>/...) and give the route an https:// upstream; "
    "the proxy opens the TLS connection. Set HTTP_PROXY, not HTTPS_PROXY, or call the "
    "route's URL directly."
)


async def expect_continue(req: web.Request, expect: str) -> None:
    """Answer `Expect: 100-continue` here (the low-level server does not, and the
    upstream is never told: the proxy decides when the body is read)."""
    if expect.strip().lower() != "100-continue":
        raise ProxyError(
            ErrorCode.TOOL_BAD_REQUEST, "unsupported Expect header", http_status=417
        )
    if req.version >= HttpVersion11 and req.writer is not None:
        try:
            await req.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        except ConnectionError:
            raise ProxyError(ErrorCode.TOOL_BAD_REQUEST, "caller closed the connection") from None


async def run_guards(
    route: CompiledRoute, call: ToolCall, ctx: CallContext, chain: tuple[Guard, ...] | None = None
) -> ToolCall:
    """Run the route's chain (every listener's: HTTP, MCP, PostgreSQL wire); returns the
    (possibly rewritten) call or raises the denial. Audit mode turns a Deny into a
    recorded would-deny and drops rewrites. `chain`: a part of the route's own chain, in
    its order (the wire listener judges the caller alone at connection time)."""
    rec = ctx.record
    for guard in route.chain if chain is None else chain:
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
        raise ProxyError(
            verdict.code,
            verdict.reason,
            retry_after_s=verdict.retry_after_s,
            data=dict(verdict.data) if verdict.data else None,
        )
    return call


def _local_ip(req: web.Request) -> str | None:
    """The address the connection arrived on (the listen address, or the interface a
    wildcard listener was reached by)."""
    transport = req.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    return sockname[0] if isinstance(sockname, tuple) and sockname else None


class Pipeline:
    def __init__(self, state: ProxyState) -> None:
        self.state = state
        self._hosts: tuple[Any, HostPolicy] | None = None
        """(rules, their HostPolicy): built again when a reload swaps the rules."""

    def host_policy(self, rules: Any) -> HostPolicy:
        held = self._hosts
        if held is None or held[0] is not rules:
            held = self._hosts = (rules, HostPolicy.from_rules(rules))
        return held[1]

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
            if req.method == "CONNECT":
                raise ProxyError(ErrorCode.POLICY_DENY, CONNECT_REFUSED)
            path, host, raw_query, found = compiled.table.resolve(
                req.raw_path, headers.get("Host")
            )
            rec.path = path
            # SECURITY: DNS rebinding: Host must name this proxy, a browser Origin be listed.
            hosts = self.host_policy(compiled.rules)
            host_header = headers.get("Host")
            refusal = hosts.check(
                host_header,
                headers.getall("Origin", ()) if "Origin" in headers else (),
                req.raw_path,
            )
            if refusal is HOST_REFUSED and hosts.is_listen_address(host_header, _local_ip(req)):
                refusal = None
            if refusal is not None:
                raise refusal
            if self.state.decision_log is not None:  # replay needs the request as sent
                rec.decision_input = {
                    "host": host,
                    "query": raw_query,
                    "headers": headers,
                    # logged as the validated tenant/role fields, never as sent
                    "identity_headers": compiled.identity_headers,
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
            roles = parse_roles(roles_raw)
            claims = None
            if route.identity_mode != "headers":
                # SECURITY: roles and tenant from the verified token; headers may only
                # repeat it (proxy/identity/caller.py).
                who = await resolve_identity(
                    compiled.verifier, route.identity_mode, headers, identity, tenant, roles
                )
                tenant, roles, roles_raw, claims = who.tenant, who.roles, who.roles_text, who.claims
            caller = Caller(tenant, roles, trace_id, req.remote or "", claims)
            rec.tenant = caller.tenant
            rec.roles = roles_raw or ""
            try:
                deadline = make_deadline(
                    rec.start,
                    route.timeout_s,
                    headers.get(identity.budget_header),
                    headers.get(identity.phase_header),
                )
            except ProxyError as err:
                if err.code in PHASE_CODES:  # a spent budget: the log says 0, not null
                    rec.budget_ms = 0
                raise
            rec.budget_ms, rec.phase = deadline.budget_ms, deadline.phase
            ctx = CallContext(deadline, rec, compiled.rules.environment)
            ctx.trace_flags = flags
            if rec.span is not None:
                ctx.span_id = tracing.span_id(rec.span)  # type: ignore[union-attr]
            inflight = self.state.call_metrics.child(metrics.inflight, route.name)
            inflight.inc()
            try:
                resp = await self._forward(req, route, ctx, caller, upstream_path, raw_query)
            finally:
                inflight.dec()
            if self.state.draining:
                resp.force_close()  # Connection: close, so keep-alive callers move on
            return resp
        except asyncio.CancelledError:
            # The caller hung up (aiohttp cancels the handler): nobody to answer; the
            # finally below still releases what the call held and records it.
            rec.outcome = "error"
            rec.warnings.append("caller disconnected")
            raise
        except Exception as exc:
            if not isinstance(exc, ProxyError):
                log.error("internal error on route %s: %s", rec.route, exc.__class__.__name__)
                exc = ProxyError(ErrorCode.INTERNAL_ERROR, "internal error")
            err = exc
            if ctx is not None and ctx.streaming is not None:
                # The head is out: cut the connection so the caller sees a broken
                # stream, never a truncated body that looks complete.
                self._refuse(err, route, ctx, call, rec)
                if err.code in (ErrorCode.UPSTREAM_UNAVAILABLE, ErrorCode.TOOL_TIMEOUT):
                    rec.outcome = "upstream_error"  # the answer broke after its head went out
                if req.transport is not None:
                    req.transport.close()
                return ctx.streaming
            refusal = self._refuse(err, route, ctx, call, rec)
            if self.state.draining or req.method == "CONNECT":
                # Draining: Connection: close. CONNECT: what follows its head is tunnel
                # bytes, not HTTP.
                refusal.force_close()
            return refusal
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
        query: MultiDictProxy[str] = req.query if raw_query else EMPTY_QUERY
        if route.caller_chain:
            # Who calls is judged before the body is read: a refused caller learns nothing
            # about it (and its refusal is counted under the guard that made it).
            bare = Request(req.method, upstream_path, raw_query, query, req.headers, None)
            await run_guards(route, HttpCall(route.name, route.kind, caller, bare), ctx,
                             route.caller_chain)
        # 1. accept: body read only when a guard needs it, with the route's size cap; the
        # framing and coding are decided here (proxy/framing.py) and never copied on.
        body, stream = None, None
        if req.body_exists:
            headers = req.headers
            coding = request_coding(req.version, headers)
            cap = route.max_request_bytes
            length = req.content_length
            if coding is None and cap is not None and length is not None and length > cap:
                raise too_large(cap)
            expect = headers.get("Expect")
            if expect is not None:
                await expect_continue(req, expect)
            if route.codec.wants_body(route, req.method, headers):
                limit = min(cap or route.max_inspect_bytes, route.max_inspect_bytes)
                body = await read_body(req.content, coding, limit)
            else:
                stream = await stream_body(req.content, coding, cap, length)
        request = Request(req.method, upstream_path, raw_query, query, req.headers, body)
        # 3. decode into a typed call.
        di = rec.decision_input
        if di is not None:
            di["request"] = request
        call = route.codec.decode(route, request, caller)
        if di is not None:
            di["call"] = call
        rec.tool, rec.tool_name = call.tool, call.tool_name
        ctx.call = call  # render_error answers in kind (MCP: the JSON-RPC ids)
        # 4. guards, in the fixed order.
        call = await run_guards(route, call, ctx, route.call_chain)
        ctx.idempotent = call.idempotent  # may the upstream client retry it
        if di is not None:
            di["final"] = call
        # 5-7. send and respond within the deadline (the whole exchange, body included).
        deadline = ctx.deadline
        loop = asyncio.get_running_loop()
        t_up = time.monotonic()
        live = self.state.live
        timer: asyncio.Timeout | None = None
        headed = False  # the upstream's head arrived: a failure from here is mid-answer
        try:
            async with asyncio.timeout_at(loop.time() + deadline.remaining()) as timer:
                live.add(timer)
                if self.state.cutting:  # the drain is over: answer now, not at the deadline
                    self.state.cut.add(timer)
                    timer.reschedule(loop.time())
                ctx.timer = timer  # a long-lived GET event stream lifts it
                out = route.codec.encode(route, call, ctx, stream, req.remote or "", req.scheme)
                upstream = await self.state.upstream.send(route, out, ctx)
                headed = True
                try:
                    rec.status = upstream.status
                    resp = await route.codec.respond(req, route, call, ctx, upstream)
                finally:
                    upstream.release()
        except TimeoutError:
            rec.upstream_s = time.monotonic() - t_up
            if timer in self.state.cut:
                self._not_blamed(route, ctx)
                raise ProxyError(
                    ErrorCode.UPSTREAM_UNAVAILABLE, "proxy shutting down: the call was cut"
                ) from None
            if deadline.budget_bound:
                self._not_blamed(route, ctx)  # the caller's budget, not the backend
            elif headed:
                self._broke_mid_body(route, ctx, "timeout")
            phase = (deadline.phase or "execute") if deadline.budget_bound else "route"
            self.state.metrics.timeouts.labels(route.name, phase).inc()
            raise deadline.expired_error() from None
        except ProxyError as err:
            rec.upstream_s = time.monotonic() - t_up
            # SECURITY: a filter refusing an answer (one a caller can ask to be huge) or the
            # caller's own framing is never the backend's failure: the breaker must not be
            # opened for everyone by what one caller asks for.
            if headed and err.code is ErrorCode.UPSTREAM_UNAVAILABLE \
                    and not isinstance(err, FilterRefused):
                self._broke_mid_body(route, ctx, "connect")
            else:
                self._not_blamed(route, ctx)
            raise
        except asyncio.CancelledError:
            self._not_blamed(route, ctx)  # the caller hung up
            raise
        except Exception as exc:
            rec.upstream_s = time.monotonic() - t_up
            if ctx.streaming is not None and (req.transport is None or req.transport.is_closing()):
                # The caller hung up mid-stream (MCP clients do once they have their answer):
                # not an upstream failure, and nobody is left to answer.
                rec.warnings.append("caller disconnected")
                self._not_blamed(route, ctx)
                return ctx.streaming
            if headed:
                self._broke_mid_body(route, ctx, "connect")
            raise translate(exc) from None
        finally:
            if timer is not None:
                live.discard(timer)
                self.state.cut.discard(timer)
            if route.resilience is not None:
                route.resilience.settle(ctx)  # the answer went through whole: a success
        rec.upstream_s = time.monotonic() - t_up
        rec.status = resp.status
        if resp.status >= 500:
            rec.outcome = "upstream_error"  # passed on as sent, yet the SLO must see it
        return resp

    @staticmethod
    def _not_blamed(route: CompiledRoute, ctx: CallContext) -> None:
        """The exchange ended for a reason that says nothing about the backend: no
        outcome, and a half-open probe's slot handed back."""
        if route.resilience is not None:
            route.resilience.abandon(ctx)

    @staticmethod
    def _broke_mid_body(route: CompiledRoute, ctx: CallContext, how: Outcome) -> None:
        """The upstream failed after its head went out (a reset, a stall past the route
        timeout): the breaker hears that, not the success the head announced."""
        if route.resilience is not None:
            route.resilience.settle(ctx, how)

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
