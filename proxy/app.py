"""Wiring only: rules -> compiled table -> aiohttp applications (proxy and admin)."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.openmetrics.exposition import (
    CONTENT_TYPE_LATEST as OPENMETRICS_TYPE,
)
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from proxy.capabilities import guard_table
from proxy.compile import CompiledRules, Services, compile_rules
from proxy.config.load import LoadedRules, RulesError, load_rules
from proxy.model.record import CallRecord
from proxy.observe.access_log import AccessLog
from proxy.observe.metrics import Metrics
from proxy.observe.recorder import CallMetrics
from proxy.secrets.store import SecretStore
from proxy.upstream.client import Upstream

log = logging.getLogger("callwarden")


@dataclass(slots=True)
class ProxyState:
    """What the process holds: the compiled rules (swapped whole on reload) and the
    long-lived collaborators every call shares."""

    compiled: CompiledRules
    metrics: Metrics
    upstream: Upstream
    services: Services
    access_log: AccessLog
    rules_path: str | None = None
    last_error: str | None = None
    last_reload: float = field(default_factory=time.time)
    listeners: list[Any] = field(default_factory=list)
    tracing: Any = None
    """proxy.observe.tracing.Tracing when OTEL_* asks for spans, else None."""
    decision_log: Any = None
    """proxy.observe.decision_log.DecisionLog when the rules turn it on, else None."""
    call_metrics: CallMetrics = field(init=False)
    secret_problems: list[str] = field(default_factory=list)
    """References the rules name that do not resolve (which and why, never a value)."""
    secrets_checked: float = 0.0
    secrets_checking: asyncio.Lock = field(default_factory=asyncio.Lock)
    """One re-check at a time: a burst of probes must not each ask Vault."""
    draining: bool = False
    """Set when shutdown starts: every answer from then on says `Connection: close`."""
    live: set[asyncio.Timeout] = field(default_factory=set)
    """The deadline timers of calls waiting on an upstream (cut at the end of a drain)."""
    cut: set[asyncio.Timeout] = field(default_factory=set)
    cutting: bool = False
    """The drain time is up: a call reaching the upstream from now on is cut at once."""

    def __post_init__(self) -> None:
        self.call_metrics = CallMetrics(self.metrics)

    def observe(self, rec: CallRecord) -> None:
        """Step 8 of every call (HTTP or wire): metrics, access log, span, decision log."""
        duration = time.monotonic() - rec.start
        compiled = self.compiled
        cap = (
            compiled.rules.observability.tenant_label_cap
            if rec.route in compiled.tenant_label_routes
            else None
        )
        self.call_metrics.record(rec, duration, cap)
        self.access_log.emit(rec, duration)
        if rec.span is not None:
            self.tracing.finish(rec.span, rec)
        if self.decision_log is not None:
            self.decision_log.submit(rec)

    def swap(self, loaded: LoadedRules) -> None:
        """Build the new table fully, then swap one reference (in-flight calls keep theirs)."""
        compiled = compile_rules(loaded, self.services)
        previous = self.compiled.rules
        old = self.compiled.loaded.digest
        self.compiled = compiled
        if old != loaded.digest:
            self.metrics.rules_info.remove(old)
        self.metrics.rules_info.labels(loaded.digest).set(1)
        if previous.secrets != loaded.rules.secrets:
            log.warning("rules reload: the secrets section changed; it applies after a restart")
        from proxy.listeners import refresh_listeners

        refresh_listeners(self, loaded.rules)
        obs = loaded.rules.observability
        self.access_log = AccessLog(obs.access_log)
        self.decision_log = reopen_decision_log(self.decision_log, obs.decision_log)


def reopen_decision_log(current: Any, spec: Any) -> Any:
    """The decision log for `spec`: the current one when unchanged, else a new one (or None)."""
    from proxy.observe.decision_log import DecisionLog

    if current is not None and current.spec == spec:
        return current
    if current is not None:
        current.close(wait=False)  # the writer drains and closes on its own thread
    if not spec.path:
        return None
    try:
        return DecisionLog(spec)
    except OSError as exc:  # a log that cannot be opened must not take the proxy down
        log.error("decision log %s cannot be opened: %s", spec.path, exc.__class__.__name__)
        return None


def build_state(loaded: LoadedRules, metrics: Metrics | None = None) -> ProxyState:
    metrics = metrics or Metrics()
    services = Services(metrics=metrics, secrets=SecretStore(loaded.rules.secrets))
    state = ProxyState(
        compiled=compile_rules(loaded, services),
        metrics=metrics,
        upstream=Upstream(),
        services=services,
        access_log=AccessLog(loaded.rules.observability.access_log),
        decision_log=reopen_decision_log(None, loaded.rules.observability.decision_log),
    )
    metrics.rules_info.labels(loaded.digest).set(1)
    metrics.rules_reloads.labels("ok").inc()
    from proxy.observe.tracing import tracing_from_env

    state.tracing = tracing_from_env()
    return state


STATE: web.AppKey[ProxyState] = web.AppKey("state", ProxyState)


def proxy_server(state: ProxyState) -> web.Server:
    """aiohttp's low-level server: the pipeline routes every call itself, so the
    Application's router, middleware chain and per-request app lookups are pure cost."""
    from proxy.ingress import make_handler

    return web.Server(
        make_handler(state),  # type: ignore[arg-type]
        tcp_keepalive=True,
        # A caller that hangs up cancels its call: the upstream request is dropped and its
        # concurrency slot freed at once, not held until the route timeout.
        handler_cancellation=True,
        access_log=None,  # CallWarden writes its own, with the verdict
        # SECURITY: bodies arrive as sent; proxy/framing.py decodes them, bounded, and
        # decides the framing the upstream gets (aiohttp would inflate without a cap).
        auto_decompress=False,
    )


SECRETS_RECHECK_S = 5.0
"""/readyz re-resolves the rules' references at most this often (a mounted file or Vault
can come back; a probe must not hammer Vault)."""


async def check_secrets(state: ProxyState) -> list[str]:
    """Resolve every reference the compiled rules declare; remember and log what fails."""
    problems = await state.services.secrets.prefetch()
    if problems != state.secret_problems:
        for problem in problems:
            log.error("secret reference unresolved: %s", problem)
    state.secret_problems = problems
    state.secrets_checked = time.monotonic()
    return problems


def admin_app(state: ProxyState) -> web.Application:
    app = web.Application()
    app[STATE] = state

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        # Not ready while a secret the rules inject cannot be resolved: the pod stays out
        # of the Service and says which reference, instead of calls failing with 500.
        if time.monotonic() - state.secrets_checked > SECRETS_RECHECK_S:
            async with state.secrets_checking:
                if time.monotonic() - state.secrets_checked > SECRETS_RECHECK_S:
                    await check_secrets(state)
        ready = state.upstream.ready and not state.secret_problems
        body: dict[str, Any] = {"ready": ready, "rules_digest": state.compiled.loaded.digest}
        if state.secret_problems:
            body["secrets"] = state.secret_problems
        return web.json_response(body, status=200 if ready else 503)

    async def metrics(req: web.Request) -> web.Response:
        registry = state.metrics.registry
        if "application/openmetrics-text" in req.headers.get("Accept", ""):
            body, ctype = generate_openmetrics(registry), OPENMETRICS_TYPE
        else:
            body, ctype = generate_latest(registry), CONTENT_TYPE_LATEST
        resp = web.Response(body=body)
        resp.headers["Content-Type"] = ctype
        return resp

    async def rules(_: web.Request) -> web.Response:
        return web.json_response(rules_summary(state))

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/rules", rules)
    from proxy.approval.admin import add_routes

    add_routes(app, state)  # approvers: the admin port only
    return app


def rules_summary(state: ProxyState) -> dict[str, Any]:
    """Digest and route summary; never secret values (templates show references only)."""
    c = state.compiled
    return {
        "digest": c.loaded.digest,
        "files": list(c.loaded.files),
        "loaded_at": state.last_reload,
        "last_error": state.last_error,
        "mode": c.rules.mode,
        "environment": c.rules.environment,
        "guard_order": guard_table(),
        "routes": [
            {
                "name": r.name,
                "kind": r.kind,
                "mode": r.mode,
                "guard_modes": r.guard_modes,
                "match": r.spec.match.model_dump(exclude_none=True),
                "upstream": r.spec.upstream,
                "guards": [g.name for g in r.chain],
                "timeout_ms": r.spec.limits.timeout_ms,
            }
            for r in c.routes.values()
        ],
    }


def split_addr(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


class Server:
    """The listeners of one process (proxy HTTP, admin, and any protocol listeners)."""

    def __init__(self, state: ProxyState, listen: str, admin: str | None) -> None:
        self.state = state
        self.listen = listen
        self.admin = admin
        self.runners: list[web.BaseRunner] = []
        self.ports: dict[str, int] = {}

    async def start(self) -> None:
        await self.state.upstream.start()
        await self.state.services.secrets.start()
        await check_secrets(self.state)  # found at start, not by the first call
        proxy = web.ServerRunner(proxy_server(self.state), shutdown_timeout=1)
        await self._site("proxy", proxy, self.listen)
        if self.admin:
            admin = web.AppRunner(admin_app(self.state), access_log=None, shutdown_timeout=1)
            await self._site("admin", admin, self.admin)
        from proxy.listeners import start_listeners

        for name, port in (await start_listeners(self.state)).items():
            self.ports[f"postgres:{name}"] = port

    async def _site(self, name: str, runner: web.BaseRunner, addr: str) -> None:
        await runner.setup()
        host, port = split_addr(addr)
        site = web.TCPSite(runner, host, port, reuse_address=True, backlog=1024)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.ports[name] = sockets[0].getsockname()[1] if sockets else port
        self.runners.append(runner)

    async def stop(self, drain_s: float = 10.0) -> None:
        """Stop accepting, let in-flight calls finish up to `drain_s`, then close."""
        from proxy.listeners import stop_listeners

        self.state.draining = True
        approvals = self.state.services.extra.get("approvals")
        if approvals is not None:
            approvals.closing.set()  # calls held for approval answer now, ids kept
        await stop_listeners(self.state)
        for runner in self.runners:
            for site in list(runner.sites):
                await site.stop()
        deadline = time.monotonic() + drain_s
        while time.monotonic() < deadline and _inflight(self.state) > 0:
            await asyncio.sleep(0.05)
        self.state.cutting = True
        if self.state.live:
            # Calls still waiting get an answer with a code, not a closed socket.
            now = asyncio.get_running_loop().time()
            for timer in list(self.state.live):
                if timer.expired():
                    continue  # firing already: it answers with its own code
                self.state.cut.add(timer)
                try:
                    timer.reschedule(now)
                except RuntimeError:  # expiring between the check and here
                    self.state.cut.discard(timer)
            for _ in range(20):  # bounded: up to ~1 s for the refusals to be written
                if _inflight(self.state) <= 0:
                    break
                await asyncio.sleep(0.05)
        for runner in self.runners:
            await runner.cleanup()
        await self.state.upstream.close()
        from proxy.upstream.resilience import cache_of

        await cache_of(self.state.services).aclose()  # Redis clients of cluster limiters
        approvals = self.state.services.extra.get("approvals")
        if approvals is not None:
            await approvals.aclose()  # webhooks in flight, the approval store's client
        if self.state.decision_log is not None:
            await asyncio.to_thread(self.state.decision_log.close)
        await self.state.services.secrets.close()
        for key, held in list(self.state.services.extra.items()):
            if isinstance(key, tuple) and key[:1] == ("jwt_verifier",):
                await held.close()  # a JWKS URL's HTTP session


def _inflight(state: ProxyState) -> float:
    total = 0.0
    for metric in state.metrics.inflight.collect():
        for sample in metric.samples:
            total += sample.value
    return total


GC_GEN0_THRESHOLD = 20_000
"""Container allocations between young collections (CPython's default is 700)."""


def settle_heap() -> None:
    """Once started, the heap is mostly long-lived (modules, sqlglot, compiled rules,
    metrics): freeze it so collections never walk it again, and collect the young
    generation less often. A call's objects die by reference count; the collector only
    looks for cycles, and re-walking this heap was ~5% of the CPU of a call. What the
    frozen set later drops in cycles (the first rules after a reload) stays: bounded."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, 10, 10)


async def serve(rules_path: str, listen: str, admin: str | None, drain_s: float = 10.0) -> int:
    try:
        loaded = load_rules(rules_path)
    except RulesError as exc:
        for problem in exc.problems:
            log.error("invalid rules: %s", problem)
        return 1
    state = build_state(loaded)
    state.rules_path = rules_path
    server = Server(state, listen, admin)
    # Signals are ours before the first socket accepts: a SIGTERM or SIGHUP sent the moment
    # the port opens (a probe, a config-reloader sidecar) must not kill the process.
    stop = asyncio.Event()
    early_hup = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, early_hup.set)
    try:
        await server.start()
    except OSError as exc:  # a port in use, an address not on this host
        log.error("cannot listen: %s", exc.strerror or exc)
        await server.stop(drain_s=0)
        return 1
    settle_heap()
    log.info(
        "callwarden listening on %s (admin %s), %d routes, rules %s",
        listen,
        admin,
        len(state.compiled.routes),
        loaded.digest[:12],
    )
    from proxy.reload import RulesWatcher

    watcher = RulesWatcher(state, rules_path)
    watcher.start()  # polls the rules path and takes SIGHUP over
    if early_hup.is_set():
        await watcher.reload("SIGHUP")
    await stop.wait()
    await watcher.stop()
    log.info("shutting down: draining in-flight calls (up to %.0fs)", drain_s)
    await server.stop(drain_s)
    return 0
