"""The only code that sends calls to HTTP backends (through h1.H1Pool). Foreign
exceptions (aiohttp, asyncio, OS) become error codes here and nowhere else."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import aiohttp

from proxy.model.errors import ErrorCode, ProxyError
from proxy.upstream.h1 import (
    BodyLengthError,
    H1Pool,
    UpstreamClosedError,
    UpstreamConnectError,
    UpstreamProtocolError,
    UpstreamResponse,
)

if TYPE_CHECKING:
    from proxy.codecs.http import OutboundRequest
    from proxy.compile import CompiledRoute
    from proxy.guards.base import CallContext


def translate(exc: BaseException) -> ProxyError:
    """aiohttp/OS errors -> error codes; messages name the failure, not the request."""
    if isinstance(exc, BodyLengthError):
        return ProxyError(ErrorCode.TOOL_BAD_REQUEST, "request body does not match its length")
    if isinstance(exc, UpstreamConnectError | ConnectionRefusedError):
        return ProxyError(ErrorCode.UPSTREAM_UNAVAILABLE, "upstream connection failed")
    if isinstance(exc, UpstreamClosedError):
        return ProxyError(ErrorCode.UPSTREAM_UNAVAILABLE, "upstream closed the connection")
    if isinstance(exc, UpstreamProtocolError):
        return ProxyError(ErrorCode.UPSTREAM_UNAVAILABLE, "upstream sent a malformed response")
    if isinstance(exc, aiohttp.ClientError | OSError):
        name = exc.__class__.__name__
        return ProxyError(ErrorCode.UPSTREAM_UNAVAILABLE, f"upstream error ({name})")
    return ProxyError(ErrorCode.INTERNAL_ERROR, "unexpected upstream failure")


class Upstream:
    """One keep-alive pool per process for every HTTP upstream."""

    def __init__(self, limit: int = 1000) -> None:
        self._limit = limit
        self.pool: H1Pool | None = None

    async def start(self) -> None:
        self.pool = H1Pool(limit=self._limit, keepalive_s=30.0)

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()
            self.pool = None

    @property
    def ready(self) -> bool:
        return self.pool is not None and not self.pool.closed

    async def _attempt(self, out: OutboundRequest) -> UpstreamResponse:
        assert self.pool is not None
        return await self.pool.request(out.method, out.url, out.headers, out.body)

    async def send(
        self, route: CompiledRoute, out: OutboundRequest, ctx: CallContext
    ) -> UpstreamResponse:
        """Send with the route's breaker and retry policy; the caller's timeout (the
        deadline, applied around the whole exchange by the pipeline) bounds it all."""
        res = route.resilience
        rec = ctx.record
        attempt = 0
        while True:
            if res is not None:
                res.before_attempt(ctx)  # raises CIRCUIT_OPEN
            t0 = time.monotonic()
            try:
                resp = await self._attempt(out)
            except asyncio.CancelledError:
                # The pipeline's deadline cancels the attempt. The route's own timeout is
                # the backend timing out, and the breaker must hear of it; the caller's
                # budget running out first, or the caller going away, is not.
                if res is not None:
                    if ctx.deadline.remaining() <= 0 and not ctx.deadline.budget_bound:
                        res.record_outcome(ctx, "timeout", time.monotonic() - t0)
                    else:
                        res.abandon(ctx)
                raise
            except TimeoutError:
                if res is not None:
                    res.record_outcome(ctx, "timeout", time.monotonic() - t0)
                raise
            except ProxyError:
                # ours (a streamed body over the route's cap, broken caller framing), not
                # the upstream's: no outcome, and a half-open probe's slot handed back
                if res is not None:
                    res.abandon(ctx)
                raise
            except Exception as exc:
                err = translate(exc)
                if res is None:
                    raise err from None
                res.record_outcome(ctx, "connect", time.monotonic() - t0)
                delay = res.retry_delay(ctx, out, attempt, None, None)
                if delay is None:
                    raise err from None
            else:
                if res is None:
                    return resp
                outcome = res.classify(resp.status)
                res.record_outcome(ctx, outcome, time.monotonic() - t0)
                delay = res.retry_delay(
                    ctx, out, attempt, resp.status, resp.headers.get("Retry-After")
                )
                if delay is None:
                    return resp
                resp.release()
            attempt += 1
            rec.retries += 1
            res.count_retry(ctx)
            await asyncio.sleep(delay)
