"""Secret injection, last in the chain so no guard before it can see or log a secret.
Each route resolves only the references its own rules declare (RouteSecrets), so a
secret can never be sent to a destination its rule does not name."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from multidict import CIMultiDict

from proxy.config.refs import Template, parse_template
from proxy.config.schema import Route, Rules
from proxy.credentials.mask import (
    ByteStreamMasker,
    StreamMasker,
    byte_masker_for,
    masker_for,
)
from proxy.guards.base import CallContext
from proxy.model.call import ToolCall, evolve
from proxy.model.errors import ProxyError
from proxy.model.record import CallRecord
from proxy.model.verdict import ALLOW, Deny, Rewrite, Verdict
from proxy.secrets.store import RouteSecrets
from proxy.services import Services

_TEXT_TYPES = ("json", "text/", "xml", "javascript", "x-www-form-urlencoded", "yaml")


_WIDE_CHARSETS = ("utf-16", "utf-32", "ucs-2", "ucs-4", "utf16", "utf32")


@lru_cache(maxsize=256)
def textual(content_type: str) -> bool:
    """Text the masker can read as UTF-8: token formats are searched only there (in an
    image or archive a chance match would corrupt the bytes). Exact injected values are
    searched in every body, in raw bytes where the body is not such text."""
    ct = content_type.lower()
    if not ct:
        return True
    return any(t in ct for t in _TEXT_TYPES) and not any(w in ct for w in _WIDE_CHARSETS)


class MaskFilter:
    """Replaces this route's injected secret values and known token formats in the
    response (headers and body, any content type, whole or streamed) with [REDACTED];
    exact values first, so no false positives there."""

    __slots__ = ("_masker", "_record", "_stream", "_values")
    name = "mask"

    def __init__(self, values: frozenset[str], record: CallRecord) -> None:
        self._values = values
        self._masker = masker_for(values)
        self._record = record
        self._stream: StreamMasker | ByteStreamMasker | None = None

    def whole(self, content_type: str) -> bool:
        return False  # masks a stream of any length as it goes

    def body(self, data: bytes, content_type: str) -> bytes:
        masker = self._masker if textual(content_type) else byte_masker_for(self._values)
        out, n = masker.mask_bytes(data)
        self._record.masked += n
        return out

    def feed(self, chunk: bytes, content_type: str) -> bytes:
        """One piece of a streamed body; what may be sent now (a tail that could hold
        the start of a secret is kept back)."""
        if self._stream is None:
            self._stream = (
                StreamMasker(self._masker)
                if textual(content_type)
                else ByteStreamMasker(byte_masker_for(self._values))
            )
        return self._stream.feed(chunk)

    def flush(self) -> bytes:
        """The end of a streamed body: the tail kept back, masked."""
        sm, self._stream = self._stream, None
        if sm is None:
            return b""
        out = sm.flush()
        self._record.masked += sm.count
        return out

    def headers(self, headers: CIMultiDict[str]) -> CIMultiDict[str]:
        """Response headers with the injected values masked; a header whose *name* holds
        one is dropped. SECURITY: an upstream that echoes a request header back (a debug
        header, a redirect URL) would otherwise hand the caller the injected secret. Only
        exact values: a token format in the upstream's own Set-Cookie or session id is
        the upstream's to give, and masking it would break the session."""
        if self._masker.longest == 0:
            return headers  # nothing injected: a masking-only route
        masker = masker_for(self._values, False)
        if (
            masker.clean("\n".join(headers.values())) and masker.clean("\n".join(headers))
        ):
            return headers  # nothing echoed
        out: CIMultiDict[str] = CIMultiDict()
        for name, value in headers.items():
            if not masker.clean(name):
                self._record.masked += 1
                continue
            masked, n = masker.mask_text(value)
            self._record.masked += n
            out.add(name, masked)
        return out

    def event(self, data: bytes, parsed: object = None) -> bytes | None:
        out, n = self._masker.mask_bytes(data)  # an event stream is text
        self._record.masked += n
        return out

    def passes(self, data: bytes) -> bool:
        return self._masker.clean(data.decode("utf-8", "surrogateescape"))


@dataclass(frozen=True, slots=True)
class SecretsGuard:
    secrets: RouteSecrets
    headers: tuple[tuple[str, Template], ...]
    query: tuple[tuple[str, Template], ...]
    mask: bool
    name: str = "secrets"

    async def _values(self, items: tuple[tuple[str, Template], ...]) -> tuple[tuple[str, str], ...]:
        out = []
        for key, template in items:
            value = self.secrets.resolve_cached(template)
            if value is None:
                value = await self.secrets.resolve(template)
            out.append((key, value))
        return tuple(out)

    async def check(self, call: ToolCall, ctx: CallContext) -> Verdict:
        if not self.headers and not self.query:
            if self.mask:
                ctx.response_filters.append(MaskFilter(self.secrets.current_values(), ctx.record))
            return ALLOW
        try:
            headers = await self._values(self.headers)
            query = await self._values(self.query)
        except ProxyError as err:  # messages name the reference, never a value
            return Deny(err.code, err.message)
        if self.mask:
            # SECURITY: after resolving, so the values this call sends are among those
            # masked (a first call, or the first after a rotation, would echo unmasked).
            ctx.response_filters.append(MaskFilter(self.secrets.current_values(), ctx.record))
        return Rewrite(
            evolve(
                call,
                extra_headers=call.extra_headers + headers,
                extra_query=call.extra_query + query,
            )
        )


def build(route: Route, rules: Rules, services: Services) -> SecretsGuard | None:
    spec = route.credentials
    mask = spec.mask_responses if spec.mask_responses is not None else route.kind == "mcp"
    if route.kind == "postgres" or not (spec.inject or spec.inject_query or mask):
        return None
    headers = tuple((k, parse_template(v)) for k, v in spec.inject.items())
    query = tuple((k, parse_template(v)) for k, v in spec.inject_query.items())
    scoped = services.secrets.scope(route.name, [t for _, t in headers + query])
    return SecretsGuard(scoped, headers, query, mask)

