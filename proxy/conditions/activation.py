"""The values a condition reads, built per call from typed call data, and only those its
expression refers to (`Condition.needs`). Pure functions of (call, extra facts)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from proxy.conditions.cel import Condition, Outcome
from proxy.model.call import ToolCall

CREDENTIAL_HEADERS = frozenset({
    "authorization", "proxy-authorization", "cookie", "x-api-key", "x-auth-token",
})
"""Never in `request.headers` (nor is the identity token header, whatever its name)."""


@dataclass(frozen=True, slots=True)
class Facts:
    """What a guard knows beyond the call: the MCP tool being called, the SQL decision."""

    tool_name: str = ""
    tool_arguments: Any = None
    tool_annotations: Mapping[str, Any] | None = None
    sql_kind: str = ""
    sql_tables: tuple[str, ...] | None = None
    sql_columns: tuple[str, ...] | None = None
    hidden_headers: frozenset[str] = CREDENTIAL_HEADERS


NO_FACTS = Facts()


def hidden_headers(rules: Any) -> frozenset[str]:
    """Credential headers, plus the identity token's header, left out of
    `request.headers` (`rules`: proxy.config.schema.Rules)."""
    jwt = rules.identity.jwt
    return CREDENTIAL_HEADERS | ({jwt.header.lower()} if jwt is not None else set())


def now() -> datetime:
    return datetime.now(UTC)


def _query(call: ToolCall, facts: Facts) -> dict[str, list[str]]:
    q = call.request.query
    return {k: q.getall(k) for k in q.keys()}  # noqa: SIM118 -- a multidict: keys repeat


def _headers(call: ToolCall, facts: Facts) -> dict[str, str]:
    out: dict[str, str] = {}
    hidden = facts.hidden_headers
    for k, v in call.request.headers.items():
        name = k.lower()
        if name in hidden:
            continue
        out[name] = f"{out[name]}, {v}" if name in out else v
    return out


def _arguments(call: ToolCall, facts: Facts) -> Any:
    args = facts.tool_arguments
    # Absent arguments read as {}; anything but an object stays as sent (and a condition
    # that reads it fails to evaluate: denied).
    return {} if args is None else args


BUILDERS: dict[str, Callable[[ToolCall, Facts], Any]] = {
    "request.method": lambda c, f: c.request.method,
    "request.path": lambda c, f: c.request.path,
    "request.query": _query,
    "request.headers": _headers,
    "identity.tenant": lambda c, f: c.caller.tenant or "",
    "identity.roles": lambda c, f: sorted(c.caller.roles),
    "identity.claims": lambda c, f: c.caller.claims if c.caller.claims is not None else {},
    "identity.verified": lambda c, f: c.caller.claims is not None,
    "tool.name": lambda c, f: f.tool_name,
    "tool.arguments": _arguments,
    "tool.annotations": lambda c, f: f.tool_annotations or {},
    "sql.kind": lambda c, f: f.sql_kind,
    "sql.tables": lambda c, f: list(f.sql_tables) if f.sql_tables is not None else None,
    "sql.columns": lambda c, f: list(f.sql_columns) if f.sql_columns is not None else None,
    "time.now": lambda c, f: now(),
}


def _headers_at(call: ToolCall, facts: Facts, keys: frozenset[str]) -> dict[str, str]:
    headers = call.request.headers
    out = {}
    for name in keys:
        # The whole view has lower-case names only: `X-Env` is no key of it, here too.
        if name != name.lower() or name in facts.hidden_headers or name not in headers:
            continue
        out[name] = ", ".join(headers.getall(name))
    return out


def values_for(cond: Condition, call: ToolCall, facts: Facts = NO_FACTS,
               prune: bool = True) -> dict[str, Any]:
    """The values `cond` reads. `prune` (the fast path): maps read only at some keys
    carry only those keys; False builds every value whole (the reference)."""
    out: dict[str, Any] = {}
    keyed = cond.keys if prune else {}
    for name in cond.needs:
        keys = keyed.get(name)
        if keys is not None and name == "request.headers":
            out[name] = _headers_at(call, facts, keys)
            continue
        value = BUILDERS[name](call, facts)
        if isinstance(value, Mapping) and (keys is not None or type(value) is not dict):
            value = {k: value[k] for k in keys if k in value} if keys is not None \
                else dict(value)
        out[name] = value
    return out


@dataclass(frozen=True, slots=True)
class Seen:
    """One evaluation, for `explain` and `replay`: the rule, its source, what it read."""

    rule: str
    source: str
    values: dict[str, Any]
    holds: bool
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "expression": self.source, "holds": self.holds,
                "reason": self.reason,
                "values": {k: _plain(v) for k, v in sorted(self.values.items())}}


def _plain(v: Any) -> Any:
    return v.isoformat() if isinstance(v, datetime) else v


def evaluate(cond: Condition, call: ToolCall, seen: list[Any] | None,
             facts: Facts = NO_FACTS) -> Outcome:
    """`seen`: a dry run's list, each evaluation appended (CallContext.conditions_seen)."""
    values = values_for(cond, call, facts)
    out = cond.evaluate(values)
    if seen is not None:
        seen.append(Seen(cond.rule, cond.source, values, out.holds, out.reason))
    return out
