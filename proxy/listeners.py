"""Protocol listeners beside the HTTP one: one PostgreSQL wire listener per
`kind: postgres` route, sharing the process's rules, secrets and telemetry."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from proxy.config.refs import parse_template
from proxy.config.schema import Route, Rules
from proxy.guards.identity import loggable_identity
from proxy.model.errors import ErrorCode, ProxyError
from proxy.model.record import CallRecord
from proxy.pgwire.listener import PgListener
from proxy.pgwire.record import StatementRecord

if TYPE_CHECKING:
    from proxy.app import ProxyState

log = logging.getLogger("callwarden")
_OUTCOMES = {"allowed": "ok", "denied": "denied", "error": "error", "timeout": "error"}


def statement_record(rec: StatementRecord) -> CallRecord:
    """A statement on the wire, as the same record an HTTP call leaves."""
    out = CallRecord(start=time.monotonic() - rec.duration_s, route=rec.route, kind="postgres")
    out.method = rec.message
    # SECURITY: startup parameters are the caller's: recorded only if they are an id.
    out.tenant, out.roles = loggable_identity(rec.tenant, rec.role)
    out.outcome = _OUTCOMES.get(rec.outcome, "error")
    code = rec.error_code or (ErrorCode.TOOL_TIMEOUT if rec.outcome == "timeout" else None)
    out.error_code = str(code) if code else ""
    out.reason = rec.reason
    out.guard = rec.guard
    out.would_deny = list(rec.would_deny)
    out.rewritten = rec.rewritten
    out.sql_s = rec.inspect_s or None
    out.upstream_s = rec.duration_s
    return out


def pg_listener(route: Route, state: ProxyState) -> PgListener:
    services = state.services
    creds = route.credentials
    templates = [t for t in (creds.user, creds.password) if t is not None]
    pg = route.postgres
    if pg is not None and pg.client_password is not None:
        templates.append(pg.client_password)
    secrets = services.secrets.scope(route.name, templates)

    async def resolve_credentials() -> tuple[str, str]:
        if creds.user is None:
            raise ProxyError(
                ErrorCode.INTERNAL_ERROR, f"route {route.name} has no credentials.user"
            )
        user = await secrets.resolve(parse_template(creds.user))
        password = await secrets.resolve(parse_template(creds.password)) if creds.password else ""
        return user, password

    async def resolve_client_password() -> str:
        assert pg is not None and pg.client_password is not None
        return await secrets.resolve(parse_template(pg.client_password))

    def on_statement(rec: StatementRecord) -> None:
        state.observe(statement_record(rec))

    def on_catalog(name: str, outcome: str) -> None:
        state.metrics.pg_catalog_reads.labels(name, outcome).inc()

    return PgListener(
        state.compiled.routes[route.name],
        resolve_credentials,
        state.compiled.rules.environment,
        on_statement,
        on_catalog=on_catalog,
        resolve_client_password=resolve_client_password
        if pg is not None and pg.client_password is not None
        else None,
    )


async def start_listeners(state: ProxyState) -> dict[str, int]:
    """Start one listener per postgres route; returns their ports by route name."""
    ports = {}
    for route in state.compiled.rules.routes:
        if route.kind == "postgres":
            listener = pg_listener(route, state)
            await listener.start()
            state.listeners.append(listener)
            ports[route.name] = listener.port
    return ports


def refresh_listeners(state: ProxyState, rules: Rules) -> None:
    """Hot reload for wire listeners: new connections get the new SQL policy. Adding or
    removing a postgres route, or moving its address, takes a restart (logged)."""
    routes = {r.name: r for r in rules.routes if r.kind == "postgres"}
    running = {listener.route.name for listener in state.listeners}
    for listener in state.listeners:
        route = routes.get(listener.route.name)
        if route is None:
            log.warning(
                "rules reload: postgres route %s removed; restart to close it", listener.route.name
            )
            continue
        if route.listen != listener.route.listen or route.upstream != listener.route.upstream:
            log.warning("rules reload: postgres route %s moved; restart to apply", route.name)
        compiled = state.compiled.routes.get(route.name)
        if compiled is not None:
            listener.replace_route(compiled)
    for name in routes.keys() - running:
        log.warning("rules reload: new postgres route %s starts after a restart", name)


async def stop_listeners(state: ProxyState) -> None:
    for listener in state.listeners:
        await listener.close()
    state.listeners.clear()
