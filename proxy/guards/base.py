"""The guard contract. A guard decides; it never raises, responds or logs: the pipeline
owns short-circuit, audit mode, metrics and logging."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from proxy.model.call import ToolCall
from proxy.model.deadline import Deadline
from proxy.model.errors import ErrorCode, ProxyError
from proxy.model.record import CallRecord
from proxy.model.verdict import Deny, Verdict

if TYPE_CHECKING:
    from proxy.mcp.sse import SseEvent
    from proxy.sql.engine import SqlDecision
    from proxy.sql.pg.userfns import UserFunctions
    from proxy.upstream.resilience import CallResilience


class SqlJudgement(NamedTuple):
    """The SQL engine's decision on one exact text for one tenant (a tuple: made on every
    SQL call, see sql_safety.sql_decision)."""

    sql: str
    tenant: str | None
    decision: SqlDecision


class ResponseFilter(Protocol):
    """Changes what the upstream answered before the caller sees it.

    Optional members the codec looks for: `name` (metric label); `whole(content_type)`,
    True when the filter must read the whole body of that type (the codec then holds it,
    up to a cap, or refuses the answer; a filter without `whole` is held to need it);
    `headers(h) -> h`; `feed(chunk, content_type) -> bytes` and `flush() -> bytes`, for a
    filter that works on a body of any length as it streams. A filter that cannot read
    what it must raises FilterRefused."""

    def body(self, data: bytes, content_type: str) -> bytes:
        """Whole buffered body (JSON or text)."""
        ...

    def event(self, data: bytes, parsed: SseEvent | None = None) -> bytes | None:
        """One SSE event's raw bytes (terminator included); None drops the event.
        `parsed`: the same event as the proxy's parser read it, while `data` is still
        what the upstream sent (an earlier filter changed nothing)."""
        ...

    def passes(self, data: bytes) -> bool:
        """True only if `event` would return every event in `data` unchanged: then a
        stream that is complete on arrival goes out without being parsed into events."""
        ...


class FilterRefused(ProxyError):
    """A response filter the route asked for cannot run on this answer (unreadable,
    undecodable, too large to hold): the answer is refused, never passed on unread.
    The codec counts it by filter and reason (callwarden_filter_refusals_total)."""

    __slots__ = ("filters", "reason")

    def __init__(self, filters: tuple[str, ...], reason: str, message: str) -> None:
        super().__init__(
            ErrorCode.UPSTREAM_UNAVAILABLE,
            f"the upstream's answer was refused: {message} ({', '.join(filters)} filter)",
        )
        self.filters = filters
        self.reason = reason
        """encoding, undecodable, too_large, unreadable, partial."""


@dataclass(slots=True)
class CallContext:
    """One call's state between stages, each field typed and named for who writes and who
    reads it (never shared between calls)."""

    deadline: Deadline
    record: CallRecord
    environment: str
    response_filters: list[ResponseFilter] = field(default_factory=list)
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    """Headers for the caller's response (e.g. RateLimit-*), success or refusal."""
    sql: SqlJudgement | None = None
    """Written by the first SQL guard that judges the call (sql_safety, tenant_scope) and
    read by the next, so a statement is parsed once. A decision, never a verdict: each
    guard draws its own verdict from it (a guard in audit mode changes no other's)."""
    sql_catalog: UserFunctions | None = None
    """The upstream's user-function table (proxy.sql.pg.userfns.UserFunctions) when the
    wire listener has read it; None over HTTP."""
    on_done: list[Any] = field(default_factory=list)
    """Callables run when the call ends (release a concurrency slot, ...)."""
    streaming: Any = None
    """The caller's response once its head was sent (errors after that cut the stream)."""
    # -- written by the pipeline, read by codecs and the upstream seam ------------------
    call: ToolCall | None = None
    """The decoded call: a refusal answers in kind (MCP: with the JSON-RPC ids)."""
    trace_flags: str = "01"
    span_id: str | None = None
    """The span this call is in, when tracing; else the upstream gets a new span id."""
    idempotent: bool = False
    """The judged call may be repeated: the upstream client may retry it."""
    timer: asyncio.Timeout | None = None
    """The deadline around the exchange; a long-lived GET event stream lifts it."""
    # -- written and read by the upstream seam (proxy/upstream/resilience.py) ----------
    resilience: CallResilience | None = None
    """The breaker and retry state picked for this call on its first attempt."""
    retry_refused: str | None = None
    """Why a failed attempt was not retried (attempts, budget, deadline, breaker ...)."""
    # -- written by guards for the codec or a dry run ------------------------------------
    mcp_denials: dict[int, Deny] | None = None
    """mcp_policy: {message index: Deny} when elements of a batch were refused (the codec
    answers each refused element, and the others 'not sent')."""
    conditions_seen: list[Any] | None = None
    """A dry run (explain, replay) sets a list: each `when` evaluation is appended."""


class Guard(Protocol):
    name: str

    async def check(self, call: ToolCall, ctx: CallContext) -> Verdict: ...
