"""The guard contract. A guard decides; it never raises, responds or logs: the pipeline
owns short-circuit, audit mode, metrics and logging."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from proxy.model.call import ToolCall
from proxy.model.deadline import Deadline
from proxy.model.errors import ErrorCode, ProxyError
from proxy.model.record import CallRecord
from proxy.model.verdict import Verdict

if TYPE_CHECKING:
    from proxy.mcp.sse import SseEvent
    from proxy.sql.engine import SqlDecision
    from proxy.sql.pg.userfns import UserFunctions


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
    """Per-call scratch that guards may add to (never shared between calls)."""

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
    scratch: dict[str, Any] = field(default_factory=dict)
    """Values one stage computes for a later one (trace flags, the upstream timer)."""
    on_done: list[Any] = field(default_factory=list)
    """Callables run when the call ends (release a concurrency slot, ...)."""
    streaming: Any = None
    """The caller's response once its head was sent (errors after that cut the stream)."""


class Guard(Protocol):
    name: str

    async def check(self, call: ToolCall, ctx: CallContext) -> Verdict: ...
