"""Typed, frozen per-call values. Pure data: no aiohttp here (multidict is its own package),
so guards, codecs for other listeners and `callwarden explain` can build them too."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import Any, TypeVar

from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

EMPTY_HEADERS: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict())
EMPTY_QUERY: MultiDictProxy[str] = MultiDictProxy(MultiDict())
T = TypeVar("T")
_FIELDS: dict[type, tuple[Callable[[Any], tuple[Any, ...]], dict[str, int]]] = {}


def evolve(obj: T, **changes: Any) -> T:
    """`dataclasses.replace` for these frozen values without its per-call field
    introspection: every guard that rewrites a call makes one."""
    cls = type(obj)
    spec = _FIELDS.get(cls)
    if spec is None:
        init = [f.name for f in fields(cls) if f.init]  # type: ignore[arg-type]
        spec = _FIELDS[cls] = (attrgetter(*init), {n: i for i, n in enumerate(init)})
    values = list(spec[0](obj))
    for name, value in changes.items():
        at = spec[1].get(name)
        if at is None:
            raise TypeError(f"{cls.__name__} has no field {name!r}")
        values[at] = value
    return cls(*values)


@dataclass(frozen=True, slots=True)
class Caller:
    tenant: str | None
    roles: frozenset[str]
    trace_id: str
    client: str = ""
    """Peer address of the connection."""


@dataclass(frozen=True, slots=True)
class Request:
    """The inbound request as the guards see it, path already routed and stripped."""

    method: str
    path: str
    """Path to send upstream (normalised, route prefix stripped), without query."""
    query_string: str = ""
    """The raw query string, forwarded as-is unless a guard rewrote `query`."""
    query: MultiDictProxy[str] = field(default_factory=lambda: EMPTY_QUERY)
    headers: CIMultiDictProxy[str] = field(default_factory=lambda: EMPTY_HEADERS)
    body: bytes | None = None
    """The buffered body, or None when it streams through uninspected."""


@dataclass(frozen=True, slots=True)
class ToolCall:
    route: str
    kind: str
    caller: Caller
    request: Request
    tool: str | None = None
    """MCP tool name (label-bounded by the rules), else None."""
    json: Any = None
    """The decoded JSON body, when a codec decoded one."""
    rewritten_body: bytes | None = None
    """Set by a guard that rewrote the payload: sent instead of the original body."""
    extra_headers: tuple[tuple[str, str], ...] = ()
    """Headers to set upstream (secret injection; replaces same-named caller headers)."""
    extra_query: tuple[tuple[str, str], ...] = ()
    idempotent: bool = False
    """Safe to repeat: decides whether the upstream client may retry."""


@dataclass(frozen=True, slots=True)
class HttpCall(ToolCall):
    pass


@dataclass(frozen=True, slots=True)
class SqlCall(ToolCall):
    sql: str = ""
    params: Any = None
    statement_kind: str = ""
    """Set by the SQL guard (select, insert, ...)."""


@dataclass(frozen=True, slots=True)
class GraphStatement:
    text: str
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class GraphCall(ToolCall):
    language: str = "cypher"
    statements: tuple[GraphStatement, ...] = ()


@dataclass(frozen=True, slots=True)
class JsonRpcMessage:
    id: Any
    """The request id; None for notifications and for responses sent by the client."""
    method: str | None
    params: Any
    raw: dict[str, Any]


@dataclass(frozen=True, slots=True)
class McpCall(ToolCall):
    messages: tuple[JsonRpcMessage, ...] = ()
    batch: bool = False
