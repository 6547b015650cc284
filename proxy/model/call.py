"""Typed, frozen per-call values. Pure data: no aiohttp here (multidict is its own package),
so guards, codecs for other listeners and `callwarden explain` can build them too."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields, replace
from types import MemberDescriptorType
from typing import Any, TypeVar

from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

EMPTY_HEADERS: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict())
EMPTY_QUERY: MultiDictProxy[str] = MultiDictProxy(MultiDict())
T = TypeVar("T")
_KEEP: Any = object()
_EVOLVERS: dict[type, Callable[..., Any]] = {}
_DICT_FIELDS: dict[type, frozenset[str]] = {}
_alloc = object.__new__
_setattr = object.__setattr__


def evolve(obj: T, **changes: Any) -> T:
    """`dataclasses.replace` for these frozen values, specialised once per class: every
    guard that rewrites a call makes one, and replace's field introspection and the
    frozen `__init__`'s `object.__setattr__` per field were most of what it cost."""
    cls = type(obj)
    known = _DICT_FIELDS.get(cls)
    if known is not None and known.issuperset(changes):
        new = _alloc(cls)  # a call: its dict is a copy of the old one's, updated
        state = obj.__dict__.copy()  # type: ignore[attr-defined]
        state.update(changes)
        _setattr(new, "__dict__", state)
        return new  # type: ignore[no-any-return]
    fn = _EVOLVERS.get(cls)
    if fn is None:
        fn = _EVOLVERS[cls] = _evolver(cls)
    return fn(obj, **changes)  # type: ignore[no-any-return]


def _evolver(cls: type) -> Callable[..., Any]:
    """Slotted values: a function of keyword-only fields that fills a new instance's
    slots directly (what the frozen `__init__` does, without its per-field lookups).
    Calls (no slots) go the dict way in `evolve` from their second copy on."""
    all_fields = fields(cls)  # type: ignore[arg-type]
    if hasattr(cls, "__post_init__") or not all(f.init for f in all_fields):
        return replace  # not one of the plain frozen values
    names = [f.name for f in all_fields]
    if "__slots__" not in cls.__dict__:
        _DICT_FIELDS[cls] = frozenset(names)
        return replace  # this copy (and any with an unknown field: its TypeError)
    slots = [getattr(cls, name, None) for name in names]
    if not all(isinstance(d, MemberDescriptorType) for d in slots):
        return replace
    scope: dict[str, Any] = {"KEEP": _KEEP, "alloc": object.__new__, "cls": cls}
    lines = [f"def evolve_{cls.__name__}(obj, *, {', '.join(f'{n}=KEEP' for n in names)}):",
             "    new = alloc(cls)"]
    for i, (name, slot) in enumerate(zip(names, slots, strict=True)):
        scope[f"set{i}"] = slot.__set__
        lines.append(f"    set{i}(new, obj.{name} if {name} is KEEP else {name})")
    lines.append("    return new")
    exec("\n".join(lines), scope)  # field names are identifiers: nothing else goes in
    return scope[f"evolve_{cls.__name__}"]  # type: ignore[no-any-return]


_PLAIN: dict[type, tuple[frozenset[str], frozenset[str], dict[str, Any]] | None] = {}


def _plain(cls: type) -> tuple[frozenset[str], frozenset[str], dict[str, Any]] | None:
    """(required fields, all fields, defaults) of a dict-backed frozen value whose
    `__init__` only stores its arguments; None for any other class."""
    if "__slots__" in cls.__dict__ or hasattr(cls, "__post_init__"):
        return None
    required, defaults = set(), {}
    for f in fields(cls):  # type: ignore[arg-type]
        if not f.init or f.default_factory is not MISSING:
            return None
        if f.default is MISSING:
            required.add(f.name)
        else:
            defaults[f.name] = f.default
    return frozenset(required), frozenset(required) | frozenset(defaults), defaults


def new_call(cls: type[T], **values: Any) -> T:
    """`cls(**values)` for the calls, made the way `evolve` copies them (a dict, set
    once) instead of the frozen `__init__`'s `object.__setattr__` per field: codecs make
    one per request. Anything unusual goes to the real constructor (and its errors)."""
    plain = _PLAIN.get(cls, MISSING)
    if plain is MISSING:
        plain = _PLAIN[cls] = _plain(cls)
    if plain is None or not plain[0] <= values.keys() <= plain[1]:
        return cls(**values)
    state = plain[2].copy()
    state.update(values)
    new = _alloc(cls)
    _setattr(new, "__dict__", state)
    return new  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class Caller:
    tenant: str | None
    roles: frozenset[str]
    trace_id: str
    client: str = ""
    """Peer address of the connection."""
    claims: Any = None
    """The verified identity token's claims (a read-only mapping), or None when the
    identity came from headers or the caller is anonymous."""


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


@dataclass(frozen=True)
class ToolCall:
    """No slots on the calls: a guard's rewrite copies one, and copying an instance
    dict costs half of setting 14 slots one by one."""

    route: str
    kind: str
    caller: Caller
    request: Request
    tool: str | None = None
    """MCP tool name (label-bounded by the rules), else None."""
    tool_name: str | None = None
    """The MCP tool as the caller named it, when it is a plain name (for the logs)."""
    json: Any = None
    """The decoded JSON body, when a codec decoded one."""
    rewritten_body: bytes | None = None
    """Set by a guard that rewrote the payload: sent instead of the original body."""
    extra_headers: tuple[tuple[str, str], ...] = ()
    """Headers to set upstream (secret injection; replaces same-named caller headers)."""
    extra_query: tuple[tuple[str, str], ...] = ()
    idempotent: bool = False
    """Safe to repeat: decides whether the upstream client may retry."""


@dataclass(frozen=True)
class HttpCall(ToolCall):
    pass


@dataclass(frozen=True)
class SqlCall(ToolCall):
    sql: str = ""
    params: Any = None
    statement_kind: str = ""
    """Set by the SQL guard (select, insert, ...)."""


@dataclass(frozen=True, slots=True)
class GraphStatement:
    text: str
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class McpCall(ToolCall):
    messages: tuple[JsonRpcMessage, ...] = ()
    batch: bool = False
