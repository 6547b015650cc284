"""Breakers, retries and cluster-wide limits end to end: a running proxy in front of real
loopback upstreams that fail, hang and recover on command, and two `callwarden run`
processes sharing one real Redis that is killed and restarted mid-test."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.redis_fixture import RedisServer

ROOT = Path(__file__).resolve().parents[2]
FAST = {"backoff_ms": 1, "max_backoff_ms": 1}


def route(url: str, **limits: Any) -> dict:
    return {"name": "api", "match": {"path_prefix": "/api"}, "upstream": url, "limits": limits}


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


async def get(px: Any, path: str, method: str = "GET", **headers: str) -> tuple[int, str | None]:
    """(status, X-CallWarden-Error-Code): None means the upstream's own answer."""
    data = b'{"n": 1}' if method in ("POST", "PUT", "PATCH") else None
    async with px.session.request(method, px.url + path, headers=headers, data=data) as r:
        await r.read()
        return r.status, r.headers.get("X-CallWarden-Error-Code")


# ---- circuit breakers --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "timeout_ms", "dead", "failure"),
    [
        ("/api/status/503", 30000, False, (503, None)),
        ("/api/hold", 200, False, (504, "TOOL_TIMEOUT")),
        ("/api/x", 30000, True, (502, "UPSTREAM_UNAVAILABLE")),
    ],
    ids=["5xx", "timeout", "connect"],
)
async def test_breaker_opens_after_n_failures_and_fails_fast(
    upstream, write_rules, start_proxy, path, timeout_ms, dead, failure
):
    up, url = upstream
    target = closed_port_url() if dead else url
    px = await start_proxy(
        write_rules(
            [route(target, timeout_ms=timeout_ms, breaker={"failures": 3, "reset_after_s": 30})]
        )
    )
    for _ in range(3):
        assert await get(px, path) == failure
    seen = len(up.calls)
    async with px.session.get(px.url + path) as r:  # open: refused without calling
        assert r.status == 503
        assert r.headers["X-CallWarden-Error-Code"] == "CIRCUIT_OPEN"
        assert 1 <= int(r.headers["Retry-After"]) <= 30
        assert (await r.json())["error"]["retryable"] is True
    assert len(up.calls) == seen
    assert px.metric("callwarden_breaker_state", route="api") == 2
    assert px.metric("callwarden_breaker_transitions_total", route="api", state="open") == 1
    up.release.set()


async def test_callers_own_4xx_never_opens_the_breaker(upstream, write_rules, start_proxy):
    _up, url = upstream
    px = await start_proxy(write_rules([route(url, breaker={"failures": 2})]))
    for _ in range(5):
        assert await get(px, "/api/status/404") == (404, None)
    assert await get(px, "/api/x") == (200, None)
    assert px.metric("callwarden_breaker_state", route="api") == 0


async def test_callers_short_budget_never_opens_the_breaker(upstream, write_rules, start_proxy):
    """A timeout the caller's own budget causes says nothing about the backend: ten calls
    with a 50 ms budget against a healthy 300 ms upstream leave the breaker closed for
    the next caller, who has time to wait."""
    _up, url = upstream
    px = await start_proxy(
        write_rules([route(url, timeout_ms=5000, breaker={"failures": 3, "reset_after_s": 30})])
    )
    for _ in range(10):
        got = await get(px, "/api/slow?ms=300", **{"X-Request-Budget-Ms": "50"})
        assert got == (504, "EXECUTE_TIMEOUT")
    assert px.metric("callwarden_breaker_state", route="api") == 0
    assert await get(px, "/api/slow?ms=300") == (200, None)


async def test_upstream_5xx_and_mid_body_failures_are_errors_the_slo_sees(
    upstream, write_rules, start_proxy
):
    """A passed-through 503 is counted `upstream_error` (the error-budget alerts read it),
    and a reset after the head went out is too, and the breaker hears of it."""
    _up, url = upstream
    px = await start_proxy(write_rules([route(url, breaker={"failures": 2})]))
    assert await get(px, "/api/status/503") == (503, None)
    labels = {"route": "api", "kind": "http", "error_code": ""}
    assert px.metric("callwarden_requests_total", outcome="upstream_error", **labels) == 1
    assert px.metric("callwarden_requests_total", outcome="ok", **labels) == 0
    assert await get(px, "/api/x") == (200, None)  # a success resets the consecutive count
    for _ in range(2):
        with pytest.raises(aiohttp.ClientPayloadError):
            await get(px, "/api/broken")
    await px.metric_eventually(
        "callwarden_requests_total", 2, route="api", kind="http", outcome="upstream_error",
        error_code="UPSTREAM_UNAVAILABLE",
    )
    assert px.metric("callwarden_breaker_state", route="api") == 2  # opened by the resets
    assert await get(px, "/api/x") == (503, "CIRCUIT_OPEN")


async def test_a_buffered_answer_that_breaks_is_a_failure_not_a_success(
    upstream, write_rules, start_proxy
):
    """A small answer the proxy reads whole (no stream started) that resets mid-body is
    the backend failing: two of them open a breaker of two failures."""
    _up, url = upstream
    px = await start_proxy(write_rules([route(url, breaker={"failures": 2})]))
    for _ in range(2):
        status, code = await get(px, "/api/broken-small")
        assert (status, code) == (502, "UPSTREAM_UNAVAILABLE")
    assert px.metric("callwarden_breaker_state", route="api") == 2


async def test_half_open_probe_failure_reopens_success_closes(upstream, write_rules, start_proxy):
    up, url = upstream
    px = await start_proxy(
        write_rules([route(url, breaker={"failures": 2, "reset_after_s": 0.3})])
    )
    for _ in range(2):
        assert await get(px, "/api/status/503") == (503, None)
    assert await get(px, "/api/x") == (503, "CIRCUIT_OPEN")
    await asyncio.sleep(0.4)
    assert await get(px, "/api/status/503") == (503, None)  # the probe fails: open again
    assert await get(px, "/api/x") == (503, "CIRCUIT_OPEN")
    await asyncio.sleep(0.4)
    assert await get(px, "/api/x") == (200, None)  # the probe succeeds: closed
    assert await get(px, "/api/x") == (200, None)
    assert len(up.calls) == 5
    state = {s: px.metric("callwarden_breaker_transitions_total", route="api", state=s)
             for s in ("open", "half_open", "closed")}
    assert state == {"open": 2, "half_open": 2, "closed": 1}
    assert px.metric("callwarden_breaker_state", route="api") == 0


@pytest.mark.parametrize("per_tenant", [True, False])
async def test_per_tenant_breaker_isolation(upstream, write_rules, start_proxy, per_tenant):
    _up, url = upstream
    px = await start_proxy(
        write_rules([route(url, breaker={"failures": 2, "per_tenant": per_tenant})])
    )
    for _ in range(2):
        assert await get(px, "/api/status/503", **{"X-Tenant-ID": "bad"}) == (503, None)
    assert await get(px, "/api/x", **{"X-Tenant-ID": "bad"}) == (503, "CIRCUIT_OPEN")
    good = [await get(px, "/api/x", **{"X-Tenant-ID": "good"}) for _ in range(3)]
    expected = (200, None) if per_tenant else (503, "CIRCUIT_OPEN")
    assert good == [expected] * 3
    # One open tenant breaker shows on the route's gauge.
    assert px.metric("callwarden_breaker_state", route="api") == 2


# ---- retries -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "attempts"),
    [("GET", 3), ("HEAD", 3), ("OPTIONS", 3), ("POST", 1), ("PUT", 1), ("PATCH", 1),
     ("DELETE", 1)],
)
async def test_retries_only_safe_methods_after_transient_503s(
    upstream, write_rules, start_proxy, method, attempts
):
    up, url = upstream
    px = await start_proxy(write_rules([route(url, retries={"max": 2, **FAST})]))
    up.fail_next = 2
    status, code = await get(px, "/api/x", method)
    assert (status, code) == ((200, None) if attempts == 3 else (503, None))
    assert len(up.calls) == attempts  # SECURITY: a write is never sent twice
    assert px.metric("callwarden_retries_total", route="api") == attempts - 1


async def test_retries_stop_at_max_attempts(upstream, write_rules, start_proxy):
    up, url = upstream
    px = await start_proxy(write_rules([route(url, retries={"max": 2, **FAST})]))
    up.fail_next = 10
    assert await get(px, "/api/x") == (503, None)
    assert len(up.calls) == 3


async def test_retries_stop_at_the_budget(upstream, write_rules, start_proxy):
    up, url = upstream
    slow = {**route(url, retries={"max": 3, **FAST}), "name": "slow"}
    slow["match"] = {"path_prefix": "/slow"}
    px = await start_proxy(write_rules([route(url, retries={"max": 3, **FAST}), slow]))
    # The upstream asks for 1 s before a retry: a 500 ms budget cannot cover it.
    up.fail_next, up.fail_retry_after = 1, "1"
    assert await get(px, "/api/x", **{"X-Request-Budget-Ms": "500"}) == (503, None)
    assert len(up.calls) == 1
    # With time to spare, the retry honours Retry-After and succeeds.
    up.fail_next = 1
    assert await get(px, "/api/x") == (200, None)
    assert len(up.calls) == 3
    # Observed latency (the route's first sample): a 400 ms failure leaves too little of a
    # 700 ms budget to try again.
    assert await get(px, "/slow/slow?ms=400&status=503", **{"X-Request-Budget-Ms": "700"}) == (
        503,
        None,
    )
    assert len(up.calls) == 4
    # A hung attempt uses the whole budget: the caller gets the phase timeout, no retry.
    status = await get(px, "/api/hold", **{"X-Request-Budget-Ms": "300"})
    assert status == (504, "EXECUTE_TIMEOUT")
    assert len(up.calls) == 5
    up.release.set()


async def test_retry_budget_caps_amplification_during_an_outage(
    upstream, write_rules, start_proxy
):
    up, url = upstream
    retries = {"max": 3, "backoff_ms": 0, "budget_ratio": 0.2, "min_retries_per_s": 0.5}
    px = await start_proxy(write_rules([route(url, retries=retries)]))
    up.fail_next = 10**9  # a full outage
    calls = 100
    for _ in range(calls):
        assert await get(px, "/api/x") == (503, None)
    made = px.metric("callwarden_retries_total", route="api")
    assert len(up.calls) == calls + made
    # Without the budget: 3 retries per call (400 upstream calls). With it: at most 20%
    # of requests plus the floor (0.5/s over the 10 s window).
    assert 0 < made <= 0.2 * calls + 5


# ---- cluster-wide limits: two processes, one Redis ---------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ProxyProcess:
    """`python -m proxy.cli run` as a child process."""

    def __init__(self, rules: Path, log: Path) -> None:
        self.port, self.admin = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "proxy.cli", "run", "--rules", str(rules),
             "--listen", f"127.0.0.1:{self.port}", "--admin", f"127.0.0.1:{self.admin}"],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=self._log, stderr=subprocess.STDOUT,
        )

    async def ready(self, session: aiohttp.ClientSession) -> None:
        for _ in range(300):  # up to ~30 s
            assert self.proc.poll() is None, "proxy process exited"
            try:
                async with session.get(f"http://127.0.0.1:{self.admin}/readyz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        raise AssertionError("proxy process never became ready")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


@pytest.fixture
async def two_proxies(
    tmp_path: Path, write_rules: Callable[..., Path]
) -> AsyncIterator[Callable[..., Any]]:
    procs: list[ProxyProcess] = []
    session = aiohttp.ClientSession()

    async def start(rules: Path) -> tuple[aiohttp.ClientSession, list[ProxyProcess]]:
        pair = [ProxyProcess(rules, tmp_path / f"proxy{i}.log") for i in range(2)]
        procs.extend(pair)
        for p in pair:
            await p.ready(session)
        return session, pair

    yield start
    await session.close()
    for p in procs:
        p.stop()


def cluster_route(url: str, name: str, on_error: str) -> dict:
    rate = {"per_minute": 5, "key": "tenant", "scope": "cluster", "on_store_error": on_error}
    return {"name": name, "match": {"path_prefix": f"/{name}"}, "upstream": url,
            "limits": {"rate": rate}}


async def statuses(
    session: aiohttp.ClientSession, procs: list[ProxyProcess], path: str, tenant: str, n: int
) -> list[list[int]]:
    """n calls to each proxy, interleaved; the statuses each proxy answered."""
    out: list[list[int]] = [[] for _ in procs]
    for _ in range(n):
        for i, p in enumerate(procs):
            async with session.get(p.url + path, headers={"X-Tenant-ID": tenant}) as r:
                out[i].append(r.status)
    return out


async def test_cluster_limit_across_two_processes_and_redis_killed(
    upstream, write_rules, two_proxies, fresh_redis: RedisServer
):
    _up, url = upstream
    rules = write_rules(
        [cluster_route(url, "allow", "allow"), cluster_route(url, "deny", "deny")],
        redis={"url": fresh_redis.url, "timeout_ms": 200},
    )
    session, procs = await two_proxies(rules)
    # One bucket for the whole deployment: 5 per tenant, however the calls are spread.
    for path in ("/allow/x", "/deny/x"):
        got = await statuses(session, procs, path, "t1", 6)
        assert sum(s.count(200) for s in got) == 5
        assert sum(s.count(429) for s in got) == 7
        assert all(s.count(200) > 0 for s in got)  # both processes spent from it
    other = await statuses(session, procs, "/allow/x", "t2", 1)
    assert other == [[200], [200]]  # per tenant

    fresh_redis.kill()
    # allow: each process falls back to its own limiter with the same spec (5 each) ...
    got = await statuses(session, procs, "/allow/x", "t3", 7)
    assert [s.count(200) for s in got] == [5, 5]
    # ... deny: nothing passes while the store is unreachable.
    got = await statuses(session, procs, "/deny/x", "t3", 3)
    assert got == [[429] * 3, [429] * 3]

    fresh_redis.start()  # same port, empty
    for i in range(100):  # bounded: the cool-down (1 s) must pass before Redis is retried
        probe = await statuses(session, procs, "/deny/x", f"probe{i}", 1)
        if probe == [[200], [200]]:
            break
        await asyncio.sleep(0.1)
    assert probe == [[200], [200]]
    got = await statuses(session, procs, "/allow/x", "t4", 6)
    assert sum(s.count(200) for s in got) == 5  # shared again


async def test_open_breaker_survives_a_reload_of_unchanged_rules(
    upstream, write_rules, start_proxy
):
    from proxy.config.load import load_rules

    _up, url = upstream
    spec = route(url, breaker={"failures": 1, "reset_after_s": 30})
    px = await start_proxy(write_rules([spec]))
    assert await get(px, "/api/status/503") == (503, None)
    other = {"name": "other", "match": {"path_prefix": "/other"}, "upstream": url}
    px.state.swap(load_rules(write_rules([spec, other], name="new.yaml")))
    assert await get(px, "/api/x") == (503, "CIRCUIT_OPEN")
    px.state.swap(load_rules(write_rules([route(url, breaker={"failures": 2}), other],
                                         name="changed.yaml")))
    assert await get(px, "/api/x") == (200, None)  # a changed breaker spec starts closed
