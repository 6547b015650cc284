"""The only code that talks to HTTP backends. Foreign exceptions (aiohttp, asyncio, OS)
become error codes here and nowhere else."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import ClientResponse

from proxy.model.errors import ErrorCode, ProxyError

if TYPE_CHECKING:
    from proxy.codecs.http import OutboundRequest
    from proxy.compile import CompiledRoute
    from proxy.guards.base import CallContext


class _NoDelayConnector(aiohttp.TCPConnector):
    """TCP_NODELAY on upstream sockets: small JSON-RPC frames suffer under Nagle."""

    async def _wrap_create_connection(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        transport, proto = await super()._wrap_create_connection(*args, **kwargs)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return transport, proto


def translate(exc: BaseException) -> ProxyError:
    """aiohttp/OS errors -> error codes; messages name the failure, not the request."""
    if isinstance(exc, aiohttp.ClientConnectorError | ConnectionRefusedError):
        return ProxyError(ErrorCode.UPSTREAM_UNAVAILABLE, "upstream connection failed")
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return ProxyError(ErrorCode.UPSTREAM_UNAVAILABLE, "upstream closed the connection")
    if isinstance(exc, aiohttp.ClientError | OSError):
        name = exc.__class__.__name__
        return ProxyError(ErrorCode.UPSTREAM_UNAVAILABLE, f"upstream error ({name})")
    return ProxyError(ErrorCode.INTERNAL_ERROR, "unexpected upstream failure")


class Upstream:
    """One pooled ClientSession per process, keep-alive to every upstream."""

    def __init__(self, limit: int = 1000, limit_per_host: int = 0) -> None:
        self._limit = limit
        self._limit_per_host = limit_per_host
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = _NoDelayConnector(
            limit=self._limit,
            limit_per_host=self._limit_per_host,
            keepalive_timeout=30,
            enable_cleanup_closed=False,
            ttl_dns_cache=60,
        )
        self.session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,  # pass bytes through as the upstream encoded them
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=None),
        )

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    @property
    def ready(self) -> bool:
        return self.session is not None and not self.session.closed

    async def _attempt(self, out: OutboundRequest) -> ClientResponse:
        assert self.session is not None
        return await self.session.request(
            out.method,
            out.url,
            headers=out.headers,
            data=out.body,
            allow_redirects=False,
            compress=None,
            auto_decompress=False,
        )

    async def send(
        self, route: CompiledRoute, out: OutboundRequest, ctx: CallContext
    ) -> ClientResponse:
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
                # The pipeline's deadline cancels the attempt: that is the backend timing
                # out, and the breaker must hear of it (a client going away is not).
                if res is not None and ctx.deadline.remaining() <= 0:
                    res.record_outcome(ctx, "timeout", time.monotonic() - t0)
                raise
            except TimeoutError:
                if res is not None:
                    res.record_outcome(ctx, "timeout", time.monotonic() - t0)
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
