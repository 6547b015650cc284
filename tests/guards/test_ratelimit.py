"""Rate limits and concurrency caps, end to end through a running proxy to a real loopback
upstream: exact counts per key, Retry-After and RateLimit-* headers, waiting within the
caller's budget, per-MCP-tool limits, and 1,000 concurrent calls against max_inflight;
then the guard alone, built through the guard table."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from proxy.config.load import load_rules
from proxy.guards.ratelimit import RateLimitGuard
from proxy.model.verdict import ALLOW
from tests.guards import kit

# (tenant, role) of each call, in order, and the statuses expected back.
A, B = ("a", "x"), ("b", "x")
CASES = [
    ("tenant", [A, A, A, A, B, B, B, B], [200, 200, 200, 429, 200, 200, 200, 429]),
    ("route", [A, A, B, B, A, B], [200, 200, 200, 429, 429, 429]),
    ("role", [("a", "x"), ("b", "x"), ("c", "x"), ("a", "y")], [200, 200, 200, 200]),
    (
        ["tenant", "role"],
        [("a", "x"), ("a", "x"), ("a", "x"), ("a", "x"), ("a", "y"), ("b", "x")],
        [200, 200, 200, 429, 200, 200],
    ),
]


def route(url: str, **limits: object) -> dict:
    return {"name": "api", "match": {"path_prefix": "/api"}, "upstream": url, "limits": limits}


@pytest.mark.parametrize(("key", "callers", "expected"), CASES)
async def test_exact_counts_per_key_and_headers(
    upstream, write_rules, start_proxy, key, callers, expected
):
    up, url = upstream
    px = await start_proxy(write_rules([route(url, rate={"per_minute": 3, "key": key})]))
    statuses: list[int] = []
    used: dict[tuple[str, ...], int] = {}
    for tenant, role in callers:
        headers = {"X-Tenant-ID": tenant, "X-Caller-Role": role}
        async with px.session.get(px.url + "/api/x", headers=headers) as r:
            statuses.append(r.status)
            bucket = {"tenant": (tenant,), "route": ("api",), "role": (role,)}.get(
                key if isinstance(key, str) else "", (tenant, role)
            )
            assert r.headers["RateLimit-Limit"] == "3"
            if r.status == 200:
                used[bucket] = used.get(bucket, 0) + 1
                assert r.headers["RateLimit-Remaining"] == str(3 - used[bucket])
                assert "Retry-After" not in r.headers
            else:
                body = await r.json()
                assert body["error"]["code"] == "RATE_LIMITED"
                assert body["error"]["retryable"] is True
                assert r.headers["X-CallWarden-Error-Code"] == "RATE_LIMITED"
                assert r.headers["RateLimit-Remaining"] == "0"
                # per_minute 3: one permit frees every 20 s.
                assert 1 <= int(r.headers["Retry-After"]) <= 20
                assert 1 <= int(r.headers["RateLimit-Reset"]) <= 60
    assert statuses == expected
    assert len(up.calls) == expected.count(200)  # refused calls never reach the upstream
    refused = expected.count(429)
    assert px.metric("callwarden_rate_limited_total", route="api") == refused
    got = px.metric(
        "callwarden_denials_total", route="api", guard="ratelimit", error_code="RATE_LIMITED"
    )
    assert got == refused


async def test_denied_by_access_spends_no_quota(upstream, write_rules, start_proxy):
    _up, url = upstream
    spec = route(url, rate={"per_minute": 1, "key": "route"})
    spec["access"] = {"roles": ["admin"]}
    px = await start_proxy(write_rules([spec]))
    for _ in range(3):
        async with px.session.get(px.url + "/api/x", headers={"X-Caller-Role": "guest"}) as r:
            assert r.status == 403
    async with px.session.get(px.url + "/api/x", headers={"X-Caller-Role": "admin"}) as r:
        assert r.status == 200


async def test_wait_ms_waits_for_capacity_within_the_budget(upstream, write_rules, start_proxy):
    up, url = upstream
    px = await start_proxy(
        write_rules([route(url, rate={"per_second": 2, "key": "route", "wait_ms": 5000})])
    )
    for _ in range(2):
        async with px.session.get(px.url + "/api/x") as r:
            assert r.status == 200
    # The next permit frees in 0.5 s: a 100 ms budget cannot wait that long, so it is
    # refused at once and spends nothing ...
    async with px.session.get(px.url + "/api/x", headers={"X-Request-Budget-Ms": "100"}) as r:
        assert r.status == 429
        assert r.headers["Retry-After"] == "1"
    # ... while a caller with time to spare waits for it and gets through.
    async with px.session.get(px.url + "/api/x") as r:
        assert r.status == 200
    assert len(up.calls) == 3


async def test_max_inflight_with_1000_concurrent_calls(upstream, write_rules, start_proxy):
    up, url = upstream
    cap, total = 50, 1000
    px = await start_proxy(write_rules([route(url, max_inflight=cap)]))
    refused: list[dict] = []

    async def one(session: aiohttp.ClientSession) -> int:
        async with session.get(px.url + "/api/hold") as r:
            if r.status == 429:
                refused.append({"body": await r.json(), "headers": dict(r.headers)})
            else:
                await r.read()
            return r.status

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = [asyncio.create_task(one(session)) for _ in range(total)]
        for _ in range(1200):  # bounded: up to ~60 s on a slow machine
            if len(refused) >= total - cap and up.held >= cap:
                break
            await asyncio.sleep(0.05)
        # Refused at once while the admitted ones still hang: nothing was queued.
        assert up.held == cap
        assert len(refused) == total - cap
        assert len(up.calls) == cap
        up.release.set()
        statuses = await asyncio.gather(*tasks)
    assert statuses.count(200) == cap
    assert statuses.count(429) == total - cap
    for r in refused:
        assert r["body"]["error"]["code"] == "RATE_LIMITED"
        assert "concurrency" in r["body"]["error"]["message"]
        assert r["headers"]["Retry-After"] == "1"
    (guard,) = [g for g in px.state.compiled.routes["api"].chain if g.name == "ratelimit"]
    assert isinstance(guard, RateLimitGuard) and guard.limit is not None
    assert guard.limit.bulkhead is not None and guard.limit.bulkhead.inflight == 0
    async with px.session.get(px.url + "/api/x") as r:  # every slot came back
        assert r.status == 200


def mcp_request(tool: str, i: int) -> bytes:
    msg = {"jsonrpc": "2.0", "id": i, "method": "tools/call",
           "params": {"name": tool, "arguments": {"city": "Oslo"}}}
    return json.dumps(msg).encode()


async def test_per_mcp_tool_limit(upstream, write_rules, start_proxy):
    up, url = upstream
    mcp = {
        "default": "deny",
        "tools": {
            "get_weather": {"roles": ["*"], "limits": {"rate": {"per_minute": 2}}},
            "add": {"roles": ["*"]},
        },
    }
    px = await start_proxy(
        write_rules([{"name": "tools", "kind": "mcp", "match": {"path_prefix": "/mcp"},
                      "upstream": url, "mcp": mcp}])
    )
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    codes = []
    for i, tool in enumerate(["get_weather"] * 3 + ["add"] * 3):
        body = mcp_request(tool, i)
        async with px.session.post(px.url + "/mcp", data=body, headers=headers) as r:
            codes.append(r.headers.get("X-CallWarden-Error-Code"))
            if codes[-1] == "RATE_LIMITED":
                body = await r.json()
                assert body["error"]["data"]["error_code"] == "RATE_LIMITED"
                assert "Retry-After" in r.headers
    assert codes == [None, None, "RATE_LIMITED", None, None, None]
    assert len(up.calls) == 5


@pytest.mark.parametrize(
    ("new_rate", "after"), [({"per_minute": 2}, 429), ({"per_minute": 3}, 200)]
)
async def test_reload_keeps_state_of_unchanged_limits(
    upstream, write_rules, start_proxy, new_rate, after
):
    _up, url = upstream
    px = await start_proxy(write_rules([route(url, rate={"per_minute": 2})]))
    for _ in range(2):
        async with px.session.get(px.url + "/api/x") as r:
            assert r.status == 200
    other = {"name": "other", "match": {"path_prefix": "/other"}, "upstream": url}
    px.state.swap(load_rules(write_rules([route(url, rate=new_rate), other], name="new.yaml")))
    # Same spec: the spent bucket carries over. Changed spec: a fresh limiter.
    async with px.session.get(px.url + "/api/x") as r:
        assert r.status == after


async def test_a_caller_that_hangs_up_frees_its_slot_at_once(upstream, write_rules, start_proxy):
    """Four callers hang up while their calls wait on the upstream: their slots come back
    at once (before: held until the 30 s route timeout, every new call got 429)."""
    up, url = upstream
    px = await start_proxy(write_rules([route(url, max_inflight=4, timeout_ms=30000)]))
    sessions = [aiohttp.ClientSession() for _ in range(4)]
    tasks = [asyncio.create_task(s.get(px.url + "/api/hold")) for s in sessions]
    for _ in range(200):  # bounded: ~10 s
        if up.held >= 4:
            break
        await asyncio.sleep(0.05)
    assert up.held == 4
    async with px.session.get(px.url + "/api/x") as r:
        assert r.status == 429  # full while they wait
    for t in tasks:
        t.cancel()
    for s in sessions:
        await s.close()  # the hang-up
    for _ in range(40):  # bounded: ~2 s, far below the route timeout
        async with px.session.get(px.url + "/api/x") as r:
            if r.status == 200:
                break
        await asyncio.sleep(0.05)
    assert r.status == 200
    up.release.set()


# --- the guard alone (tests/guards/kit.py): the same table, no proxy -------------------------


@pytest.mark.parametrize(("key", "callers", "expected"), CASES)
async def test_guard_alone_counts_per_key(key, callers, expected) -> None:
    g = kit.guard("ratelimit", kit.route(limits={"rate": {"per_minute": 3, "key": key}}))
    codes = []
    for tenant, role in callers:
        ctx = kit.context()
        v = await kit.ask(g, kit.http_call(tenant=tenant, roles=(role,)), ctx)
        codes.append(kit.code(v))
        if v is ALLOW:
            assert dict(ctx.response_headers)["RateLimit-Limit"] == "3"
        else:
            assert v.retry_after_s and 0 < v.retry_after_s <= 20  # type: ignore[union-attr]
    assert codes == [None if s == 200 else "RATE_LIMITED" for s in expected]


async def test_guard_alone_holds_a_slot_until_the_call_ends() -> None:
    g = kit.guard("ratelimit", kit.route(limits={"max_inflight": 2}))
    first, second, third = kit.context(), kit.context(), kit.context()
    assert await kit.ask(g, kit.http_call(), first) is ALLOW
    assert await kit.ask(g, kit.http_call(), second) is ALLOW
    assert kit.code(await kit.ask(g, kit.http_call(), third)) == "RATE_LIMITED"
    for done in first.on_done:
        done()
    assert await kit.ask(g, kit.http_call(), kit.context()) is ALLOW


async def test_guard_alone_limits_one_mcp_tool() -> None:
    spec = kit.route("mcp", mcp={"default": "allow", "tools": {
        "search": {"limits": {"rate": {"per_minute": 1}}}}})
    g = kit.guard("ratelimit", spec)
    search = kit.mcp_call(kit.tool_call("search"))
    other = kit.mcp_call(kit.tool_call("weather"))
    assert await kit.ask(g, search) is ALLOW
    assert kit.code(await kit.ask(g, search)) == "RATE_LIMITED"
    assert await kit.ask(g, other) is ALLOW and await kit.ask(g, other) is ALLOW


def test_no_limits_no_guard() -> None:
    assert kit.build("ratelimit", kit.route()) is None
