"""Validated rules -> runtime objects, once per load. The per-call path only looks up what
is built here (guard chains, codecs, header sets, limiters, breakers, SQL policies).
Reload builds a new `CompiledRules` and swaps one reference."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from proxy.capabilities import CODECS, GUARDS
from proxy.codecs.http import FRAMING, HOP_BY_HOP
from proxy.config.load import LoadedRules
from proxy.config.schema import Identity, Route, Rules
from proxy.guards.base import Guard
from proxy.routing import RouteTable, make_entry
from proxy.services import Services
from proxy.upstream.resilience import RouteResilience, build_resilience, cache_of


@dataclass(slots=True)
class CompiledRoute:
    spec: Route
    name: str
    kind: str
    mode: str
    guard_modes: dict[str, str]
    timeout_s: float
    chain: tuple[Guard, ...]
    codec: Any
    upstream_prefix: str
    """scheme://host:port/base-path, without a trailing slash."""
    upstream_host: str
    drop_headers: frozenset[str]
    budget_header: str
    tenant_forward_header: str | None
    inspect_bodies: bool
    max_inspect_bytes: int
    max_request_bytes: int | None
    resilience: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
    identity_mode: str = "headers"
    """required | optional (a verified token, proxy/identity/) | headers."""
    caller_chain: tuple[Guard, ...] = ()
    """The chain's leading caller guards (identity, access), run before the body is read
    or decoded: a caller the route refuses learns nothing about its body's problems."""
    call_chain: tuple[Guard, ...] | None = None
    """The rest of the chain, run on the decoded call (None: all of `chain`)."""

    def guard_mode(self, guard: str) -> str:
        return self.guard_modes.get(guard, self.mode)


@dataclass(slots=True)
class CompiledRules:
    loaded: LoadedRules
    table: RouteTable[CompiledRoute]
    routes: dict[str, CompiledRoute]
    identity: Identity
    tenant_label_routes: frozenset[str] = frozenset()
    """Routes whose rules opt in to a tenant label on metrics."""
    verifier: Any = None
    """proxy.identity.jwt.Verifier when `identity.jwt` is set."""
    identity_headers: tuple[str, ...] = ()
    """Headers that carry who the caller is: never logged as sent (tenant and roles are
    logged validated; the token never)."""

    @property
    def rules(self) -> Rules:
        return self.loaded.rules


def control_headers(identity: Identity) -> frozenset[str]:
    return frozenset(
        h.lower()
        for h in (
            identity.tenant_header,
            identity.role_header,
            identity.budget_header,
            identity.phase_header,
        )
    )


def route_resilience(route: Route, services: Services) -> RouteResilience | None:
    """Breakers and retries for Upstream.send; None when the route has neither."""
    tools: dict[str, Any] = {}
    if route.mcp is not None:
        tools = {n: t.limits for n, t in route.mcp.tools.items() if t.limits is not None}
    lim = route.limits
    if lim.breaker is None and lim.retries.max == 0 and not any(
        t.breaker or t.retries for t in tools.values()
    ):
        return None
    return build_resilience(route.name, lim, tools, services.metrics, cache_of(services))


def build_chain(route: Route, rules: Rules, services: Services) -> tuple[Guard, ...]:
    """The route's guards, in the table's order."""
    chain = []
    for entry in GUARDS:
        guard = entry.build(route, rules, services)
        if guard is None:
            continue
        if guard.name != entry.name:  # guard_modes and metrics find a guard by its name
            raise ValueError(f"guard '{entry.name}' built a guard named '{guard.name}'")
        chain.append(guard)
    return tuple(chain)


CALLER_GUARDS = frozenset({"identity", "access"})
"""Guards that judge who calls, not what: they need no body."""


def split_chain(kind: str, chain: tuple[Guard, ...]) -> tuple[tuple[Guard, ...], tuple[Guard, ...]]:
    """(caller guards, the rest). MCP routes keep one chain: a refusal answers in kind,
    with the JSON-RPC ids only the decoded body gives."""
    if kind == "mcp":
        return (), chain
    n = 0
    while n < len(chain) and chain[n].name in CALLER_GUARDS:
        n += 1
    return chain[:n], chain[n:]


def compile_route(route: Route, rules: Rules, services: Services) -> CompiledRoute:
    chain = build_chain(route, rules, services)
    caller_chain, call_chain = split_chain(route.kind, chain)
    parts = urlsplit(route.upstream)
    drop = set(HOP_BY_HOP) | FRAMING | {
        "host", "x-forwarded-proto", "traceparent", "x-trace-id", "x-callwarden-approval"
    }
    if not route.forward_control_headers:
        drop |= control_headers(rules.identity)
    mode = identity_mode(route, rules)
    if mode != "headers" and not route.credentials.forward_token:
        assert rules.identity.jwt is not None
        drop.add(rules.identity.jwt.header.lower())  # SECURITY: the token stays here
    drop.add(rules.identity.budget_header.lower())  # re-set with the remaining budget
    if route.kind not in CODECS:
        # SECURITY: never fall back to a pass-through codec
        raise ValueError(f"route '{route.name}': kind {route.kind} has no codec in this build")
    return CompiledRoute(
        spec=route,
        name=route.name,
        kind=route.kind,
        mode=route.mode or rules.mode,
        guard_modes=dict(route.guard_modes),
        timeout_s=route.limits.timeout_ms / 1000,
        chain=chain,
        caller_chain=caller_chain,
        call_chain=call_chain,
        codec=codec(route) if (codec := CODECS[route.kind]) else None,
        upstream_prefix=f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}",
        upstream_host=parts.netloc,
        drop_headers=frozenset(drop),
        budget_header=rules.identity.budget_header,
        tenant_forward_header=route.tenant.forward_header if route.tenant else None,
        inspect_bodies=(route.tenant is not None and route.tenant.json_field is not None)
        or "credentials" in {getattr(g, "name", "") for g in chain},
        max_inspect_bytes=route.limits.max_inspect_bytes,
        max_request_bytes=route.limits.max_request_bytes,
        resilience=route_resilience(route, services),
        # Guards may publish objects for other stages (e.g. the integrity monitor that the
        # MCP tools/list filter consults) through an `extra` mapping.
        extra={k: v for g in chain for k, v in (getattr(g, "extra", None) or {}).items()},
        identity_mode=mode,
    )


def identity_mode(route: Route, rules: Rules) -> str:
    """The route's `identity`, defaulting to `required` when the rules verify tokens."""
    if route.identity is not None:
        return route.identity
    return "required" if rules.identity.jwt is not None and route.kind != "postgres" \
        else "headers"


def jwt_verifier(rules: Rules, services: Services) -> Any:
    """One verifier (its key source and token cache) per `identity.jwt`, kept across
    reloads while that section is unchanged."""
    spec = rules.identity.jwt
    if spec is None:
        return None
    from proxy.identity.jwt import Verifier, source_for

    key = ("jwt_verifier", spec.model_dump_json())
    verifier = services.extra.get(key)
    if verifier is None:
        verifier = services.extra[key] = Verifier(spec, source_for(spec))
    return verifier


def compile_rules(loaded: LoadedRules, services: Services) -> CompiledRules:
    cache = cache_of(services)  # limiter/breaker state carried across reloads
    cache.begin()
    rules = loaded.rules
    routes: dict[str, CompiledRoute] = {}
    entries = []
    for route in rules.routes:
        compiled = compile_route(route, rules, services)
        routes[route.name] = compiled
        if route.kind != "postgres":
            entries.append(
                make_entry(
                    route.match.path_prefix, route.match.hosts, route.match.strip_prefix, compiled
                )
            )
    cache.end()  # only after a successful compile: drops state of removed/changed specs
    labelled = frozenset(r.name for r in rules.routes if r.tenant is not None and r.tenant.label)
    ident = rules.identity
    headers = (ident.tenant_header, ident.role_header) + (
        (ident.jwt.header,) if ident.jwt is not None else ())
    return CompiledRules(loaded, RouteTable(entries), routes, ident, labelled,
                         jwt_verifier(rules, services), headers)
