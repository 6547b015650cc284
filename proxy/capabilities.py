"""The one table of what a route can run: every guard, in chain order, with the builder
that makes it from a route and the reason it sits where it does; and every codec by route
kind. `compile` builds chains from it, the rules schema takes its guard names (the keys of
`guard_modes`) from it, and `/rules` reports it. Nothing registers itself on import: a
guard or codec that is not in this table does not exist."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from proxy.codecs import graph as graph_codec
from proxy.codecs import mcp as mcp_codec
from proxy.codecs import sql as sql_codec
from proxy.codecs.http import HttpCodec
from proxy.config.schema import Route, Rules
from proxy.guards import (
    access,
    approval,
    credentials,
    graph_safety,
    identity,
    mcp_policy,
    ratelimit,
    secrets,
    sql_safety,
    tenant_scope,
)
from proxy.guards.base import Guard
from proxy.integrity import guard as integrity
from proxy.services import Services

GuardBuilder = Callable[[Route, Rules, Services], "Guard | None"]
"""Makes a route's guard from its rules, or None when the route does not need it."""
CodecFactory = Callable[[Route], Any]


@dataclass(frozen=True, slots=True)
class GuardEntry:
    name: str
    """The guard's name: `guard_modes` key, metric label, `Guard.name` of what `build` makes."""
    build: GuardBuilder
    reason: str
    """Why it sits at this position in the chain."""


GUARDS: tuple[GuardEntry, ...] = (
    GuardEntry(
        "identity", identity.build,
        "no tenant, no call: later guards and the upstream read the tenant",
    ),
    GuardEntry("access", access.build, "RBAC first: a caller without the role learns nothing more"),
    GuardEntry(
        "mcp_policy", mcp_policy.build,
        "per-tool RBAC and tenant arguments: access, at tool granularity",
    ),
    GuardEntry("ratelimit", ratelimit.build, "after access, so denied calls spend no quota"),
    GuardEntry(
        "credentials", credentials.build,
        "judges what the caller sent, before anything rewrites it",
    ),
    GuardEntry(
        "integrity", integrity.build,
        "pinned tool definitions and argument schemas, before query safety",
    ),
    GuardEntry("sql_safety", sql_safety.build, "query safety on the parsed statement"),
    GuardEntry("graph_safety", graph_safety.build, "query safety for Cypher and Gremlin"),
    GuardEntry("tenant_scope", tenant_scope.build, "rewrites a statement already known to be safe"),
    GuardEntry(
        "approval", approval.build,
        "holds a call a person must approve: the statement as finally judged",
    ),
    GuardEntry("secrets", secrets.build, "last, so nothing before it can see or log a secret"),
)
"""The chain order: a route's chain is the guards of this table whose builder made one."""

GUARD_NAMES: tuple[str, ...] = tuple(g.name for g in GUARDS)

CODECS: Mapping[str, CodecFactory | None] = MappingProxyType(
    {
        "http": lambda route: HttpCodec(),
        "sql": sql_codec.build,
        "graph": graph_codec.GraphCodec,
        "mcp": mcp_codec.McpCodec,
        "postgres": None,  # its wire listener (proxy/pgwire/) is its codec
    }
)
"""Route kind -> codec factory. A kind missing here is refused at load, never passed through."""


def guard_table() -> list[dict[str, str]]:
    """The chain order with reasons, as `/rules` reports it."""
    return [{"name": g.name, "reason": g.reason} for g in GUARDS]
