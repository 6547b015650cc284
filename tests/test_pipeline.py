"""End to end through a running proxy to a real loopback upstream."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import pytest

from proxy.capabilities import GUARD_NAMES
from tests.upstream_server import LEAKED_TOKEN, UpstreamApp


def http_route(url: str, name: str = "api", prefix: str = "/api", **extra) -> dict:
    return {"name": name, "match": {"path_prefix": prefix}, "upstream": url, **extra}


async def raw_request(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    out = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return out


async def test_routing_prefix_host_absolute_and_unknown(upstream, write_rules, start_proxy):
    _up, url = upstream
    px = await start_proxy(
        write_rules(
            [
                http_route(url),
                http_route(
                    url,
                    "admin",
                    "/api/admin",
                    match={"path_prefix": "/api/admin", "strip_prefix": False},
                ),
                {"name": "byhost", "match": {"hosts": ["tools.example.com"]}, "upstream": url},
            ]
        )
    )
    async with px.session.get(px.url + "/api/admin/x") as r:
        assert (await r.json())["path"] == "/api/admin/x"
    async with px.session.get(px.url + "/api/x/y?z=1") as r:
        assert (await r.json())["path"] == "/x/y?z=1"
    async with px.session.get(px.url + "/other", headers={"Host": "tools.example.com"}) as r:
        assert (await r.json())["path"] == "/other"
    port = px.server.ports["proxy"]
    raw = await raw_request(
        port,
        b"GET http://tools.example.com/abs?q=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    assert raw.startswith(b"HTTP/1.1 200") and b'"/abs?q=1"' in raw
    async with px.session.get(px.url + "/unknown") as r:
        assert r.status == 403
        body = await r.json()
        assert body["error"]["code"] == "POLICY_DENY"
        assert body["error"]["trace_id"] == r.headers["X-Trace-ID"]


@pytest.mark.parametrize(
    ("target", "status"),
    [
        (b"/api/../secret", 403),  # normalised to /secret: no route
        (b"/api/%2e%2e/secret", 403),
        (b"/api/..%2fsecret", 403),
        (b"/api/%252e%252e/secret", 400),
        (b"/../../etc/passwd", 400),
        (b"//api//x", 200),
    ],
)
async def test_traversal_cannot_leave_prefix(upstream, write_rules, start_proxy, target, status):
    up, url = upstream
    px = await start_proxy(write_rules([http_route(url)]))
    raw = await raw_request(
        px.server.ports["proxy"],
        b"GET " + target + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    assert raw.startswith(b"HTTP/1.1 %d" % status), raw[:200]
    if status != 200:
        assert not up.calls


async def test_hop_by_hop_and_forwarding_headers(upstream, write_rules, start_proxy):
    _up, url = upstream
    # development: the Proxy-Authorization below would be refused as a plaintext credential
    px = await start_proxy(write_rules([http_route(url)], environment="development"))
    headers = {
        "Connection": "keep-alive, X-Secret-Hop",
        "X-Secret-Hop": "drop me",
        "Keep-Alive": "timeout=5",
        "TE": "trailers",
        "Proxy-Authorization": "Basic Zm9vOmJhcg==",
        "X-Forwarded-For": "10.0.0.1",
        "X-Tenant-ID": "acme",
        "X-Keep": "yes",
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    }
    async with px.session.get(px.url + "/api/h", headers=headers) as r:
        got = (await r.json())["headers"]
        assert r.headers["X-Trace-ID"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    lower = {k.lower(): v for k, v in got.items()}
    for name in ("x-secret-hop", "keep-alive", "te", "proxy-authorization", "x-tenant-id"):
        assert name not in lower
    assert lower["x-keep"] == "yes"
    assert lower["x-forwarded-for"] == "10.0.0.1, 127.0.0.1"
    assert lower["x-forwarded-proto"] == "http"
    assert lower["host"] == url.removeprefix("http://")
    assert lower["traceparent"].startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-")
    assert lower["traceparent"] != headers["traceparent"]  # a child span for the hop
    assert lower["x-trace-id"] == "4bf92f3577b34da6a3ce929d0e0e4736"


async def test_upstream_errors_pass_through_and_down_is_502(upstream, write_rules, start_proxy):
    _up, url = upstream
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    px = await start_proxy(write_rules([http_route(url), http_route(dead, "dead", "/dead")]))
    for code in (404, 500, 503):
        async with px.session.get(px.url + f"/api/status/{code}") as r:
            assert r.status == code
            assert r.headers["X-Up"] == "1"
            assert "X-CallWarden-Error-Code" not in r.headers
            assert await r.json() == {"upstream_error": code}
    async with px.session.get(px.url + "/dead/x") as r:
        assert r.status == 502
        assert (await r.json())["error"]["code"] == "UPSTREAM_UNAVAILABLE"
    assert (
        px.metric(
            "callwarden_requests_total",
            route="dead",
            kind="http",
            outcome="error",
            error_code="UPSTREAM_UNAVAILABLE",
        )
        == 1
    )


async def test_route_timeout_vs_budget_by_phase(upstream, write_rules, start_proxy):
    up, url = upstream
    px = await start_proxy(write_rules([http_route(url, limits={"timeout_ms": 300})]))
    async with px.session.get(px.url + "/api/slow?ms=3000") as r:
        assert r.status == 504
        assert r.headers["X-CallWarden-Error-Code"] == "TOOL_TIMEOUT"
    hdr = {"X-Request-Budget-Ms": "100", "X-Orchestration-Phase": "plan"}
    async with px.session.get(px.url + "/api/slow?ms=3000", headers=hdr) as r:
        assert r.headers["X-CallWarden-Error-Code"] == "PLAN_TIMEOUT"
    calls = len(up.calls)
    for budget, phase, code in (
        ("0", "compose", "COMPOSE_TIMEOUT"),
        ("0", None, "EXECUTE_TIMEOUT"),
    ):
        hdr = {"X-Request-Budget-Ms": budget, **({"X-Orchestration-Phase": phase} if phase else {})}
        async with px.session.get(px.url + "/api/x", headers=hdr) as r:
            assert (r.status, r.headers["X-CallWarden-Error-Code"]) == (504, code)
    assert len(up.calls) == calls  # never called when the budget is spent
    async with px.session.get(px.url + "/api/x", headers={"X-Request-Budget-Ms": "soon"}) as r:
        assert (r.status, r.headers["X-CallWarden-Error-Code"]) == (400, "TOOL_BAD_REQUEST")
    async with px.session.get(px.url + "/api/x", headers={"X-Request-Budget-Ms": "250"}) as r:
        forwarded = int((await r.json())["headers"]["X-Request-Budget-Ms"])
        assert 0 < forwarded <= 250
    # the route's own timeout is counted as such even when the caller names a phase
    async with px.session.get(
        px.url + "/api/slow?ms=3000", headers={"X-Orchestration-Phase": "compose"}
    ) as r:
        assert r.headers["X-CallWarden-Error-Code"] == "TOOL_TIMEOUT"
    assert px.metric("callwarden_timeouts_total", route="api", phase="route") == 2
    assert px.metric("callwarden_timeouts_total", route="api", phase="plan") == 1
    assert px.metric("callwarden_timeouts_total", route="api", phase="compose") == 0


async def test_role_denial_and_audit_mode(upstream, write_rules, start_proxy):
    _up, url = upstream
    px = await start_proxy(
        write_rules(
            [
                http_route(url, access={"roles": ["admin"]}),
                http_route(url, "shadow", "/shadow", access={"roles": ["admin"]}, mode="audit"),
            ]
        )
    )
    async with px.session.get(px.url + "/api/x", headers={"X-Caller-Role": "intern, guest"}) as r:
        assert (r.status, r.headers["X-CallWarden-Error-Code"]) == (403, "PERMISSION_DENIED")
    async with px.session.get(px.url + "/api/x") as r:
        assert r.status == 403
    async with px.session.get(px.url + "/api/x", headers={"X-Caller-Role": "guest,admin"}) as r:
        assert r.status == 200
    async with px.session.get(px.url + "/shadow/x", headers={"X-Caller-Role": "intern"}) as r:
        assert r.status == 200
    assert (
        px.metric(
            "callwarden_audit_would_deny_total",
            route="shadow",
            guard="access",
            error_code="PERMISSION_DENIED",
        )
        == 1
    )
    assert (
        px.metric(
            "callwarden_denials_total", route="api", guard="access", error_code="PERMISSION_DENIED"
        )
        == 2
    )


async def test_tenant_required_and_forwarded(upstream, write_rules, start_proxy):
    _up, url = upstream
    px = await start_proxy(write_rules([http_route(url, tenant={"forward_header": "X-Org"})]))
    async with px.session.get(px.url + "/api/x") as r:
        assert (r.status, r.headers["X-CallWarden-Error-Code"]) == (401, "AUTH_FAILED")
    async with px.session.get(
        px.url + "/api/x", headers={"X-Tenant-ID": "acme", "X-Org": "evil"}
    ) as r:
        assert (await r.json())["headers"]["X-Org"] == "acme"


async def test_sse_arrives_incrementally(upstream, write_rules, start_proxy):
    up, url = upstream
    px = await start_proxy(write_rules([http_route(url)]))
    async with px.session.get(px.url + "/api/sse?n=4&gap_ms=300") as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        first = await r.content.readuntil(b"\n\n")
        assert first == b'id: 0\ndata: {"i": 0}\n\n'
        assert up.sse_sent < 4  # the first event arrived while the upstream was still writing
        rest = await r.content.read()
    assert rest.count(b"data:") == 3


@pytest.mark.parametrize("mask", [False, True])
async def test_answer_streams_pass_event_by_event_or_whole(
    upstream, write_rules, start_proxy, mask: bool
):
    """A POST answered with an event stream: events pass as they come (the head rides
    with the first one); a stream already complete when it arrives goes out in one piece
    with its length, as a buffering proxy would send it. With and without the SSE filter
    (response masking) in the way."""
    up, url = upstream
    route = http_route(url, credentials={"mask_responses": mask})
    px = await start_proxy(write_rules([route]))
    async with px.session.post(px.url + "/api/sse?n=4&gap_ms=300", data=b"{}") as r:
        first = await r.content.readuntil(b"\n\n")
        assert first == b'id: 0\ndata: {"i": 0}\n\n'
        assert up.sse_sent < 4
        assert r.headers.get("Transfer-Encoding") == "chunked"
        assert (await r.content.read()).count(b"data:") == 3
    async with px.session.post(px.url + "/api/sse-once?n=3", data=b"{}") as r:
        body = await r.read()
        assert r.headers["Content-Type"].startswith("text/event-stream")
        assert r.headers["Content-Length"] == str(len(body)) and body.count(b"data:") == 3


async def test_one_piece_answer_stream_is_masked_or_sent_as_is(
    upstream, write_rules, start_proxy
):
    """A complete answer stream with nothing to mask skips event parsing: it must still
    be the upstream's bytes exactly; one carrying a credential must still be masked."""
    _up, url = upstream
    px = await start_proxy(write_rules([http_route(url, credentials={"mask_responses": True})]))
    async with px.session.post(px.url + "/api/sse-once?n=3", data=b"{}") as r:
        assert await r.read() == UpstreamApp.sse_once_body(3)
    async with px.session.post(px.url + "/api/sse-once?n=2&leak", data=b"{}") as r:
        body = await r.read()
    assert LEAKED_TOKEN.encode() not in body and body.count(b"[REDACTED]") == 1
    assert body.startswith(b'data: {"i": 0}\n\n') and body.endswith(b"\r\n\r\n")


async def test_standalone_event_stream_head_is_not_held_back(upstream, write_rules, start_proxy):
    """A GET event stream may stay silent for long: the caller gets its head at once."""
    up, url = upstream
    px = await start_proxy(write_rules([http_route(url)]))
    async with px.session.get(px.url + "/api/sse?n=1&first_ms=1500") as r:
        assert r.status == 200 and up.sse_sent == 0
        assert (await r.read()).count(b"data:") == 1


async def test_request_size_cap(upstream, write_rules, start_proxy):
    _up, url = upstream
    px = await start_proxy(write_rules([http_route(url, limits={"max_request_bytes": 1000})]))
    async with px.session.post(px.url + "/api/upload", data=b"x" * 1001) as r:
        assert r.status == 413
        assert r.headers["X-CallWarden-Error-Code"] == "TOOL_BAD_REQUEST"
    async with px.session.post(px.url + "/api/upload", data=b"x" * 1000) as r:
        assert (await r.json()) == {"received": 1000}


async def test_large_bodies_stream_both_ways(upstream, write_rules, start_proxy):
    _up, url = upstream
    px = await start_proxy(write_rules([http_route(url)]))
    size = 64 * 1024 * 1024

    async def gen():
        chunk = b"y" * 65536
        for _ in range(size // len(chunk)):
            yield chunk

    async with px.session.post(px.url + "/api/upload", data=gen()) as r:
        assert (await r.json()) == {"received": size}
    total = 0
    async with px.session.get(px.url + "/api/big?mb=64") as r:
        async for chunk in r.content.iter_any():
            total += len(chunk)
    assert total == size


async def test_hundred_concurrent_calls(upstream, write_rules, start_proxy):
    _up, url = upstream
    px = await start_proxy(write_rules([http_route(url)]))

    async def one(i: int) -> str:
        async with px.session.get(px.url + f"/api/c/{i}") as r:
            return (await r.json())["path"]

    paths = await asyncio.gather(*(one(i) for i in range(100)))
    assert sorted(paths) == sorted(f"/c/{i}" for i in range(100))
    assert (
        px.metric(
            "callwarden_requests_total", route="api", kind="http", outcome="ok", error_code=""
        )
        == 100
    )


async def test_graceful_drain(upstream, write_rules, start_proxy):
    up, url = upstream
    px = await start_proxy(write_rules([http_route(url)]))
    slow = asyncio.create_task(px.session.get(px.url + "/api/slow?ms=600"))
    while not up.calls:
        await asyncio.sleep(0.01)
    await px.server.stop(drain_s=5)
    resp = await slow
    assert resp.status == 200 and (await resp.json()) == {"slow": True}
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as s:
            await s.get(px.url + "/api/x")


async def test_drain_says_connection_close_and_answers_what_it_cuts(
    upstream, write_rules, start_proxy
):
    """Once draining, every answer says `Connection: close` (keep-alive callers move on
    instead of holding the drain open), and a call still waiting when the drain time is
    up is answered with a code rather than a closed socket."""
    up, url = upstream
    px = await start_proxy(write_rules([http_route(url)]))
    hung = asyncio.create_task(px.session.get(px.url + "/api/hold"))
    slow = asyncio.create_task(px.session.get(px.url + "/api/slow?ms=300"))
    while len(up.calls) < 2:
        await asyncio.sleep(0.01)
    await px.server.stop(drain_s=1)
    done = await slow
    assert done.status == 200 and done.headers.get("Connection") == "close"
    cut = await hung
    assert cut.status == 502 and cut.headers.get("Connection") == "close"
    body = await cut.json()
    assert body["error"]["code"] == "UPSTREAM_UNAVAILABLE"
    assert "shutting down" in body["error"]["message"]
    up.release.set()


async def test_admin_endpoints(upstream, write_rules, start_proxy):
    _up, url = upstream
    px = await start_proxy(write_rules([http_route(url, access={"roles": ["a"]})]))
    async with px.session.get(px.url + "/api/x", headers={"X-Caller-Role": "a"}) as r:
        assert r.status == 200
    async with px.session.get(px.admin + "/healthz") as r:
        assert r.status == 200
    async with px.session.get(px.admin + "/readyz") as r:
        assert (await r.json())["ready"] is True
    async with px.session.get(px.admin + "/rules") as r:
        rules = await r.json()
        assert rules["routes"][0]["guards"] == ["access", "credentials"]
        assert len(rules["digest"]) == 64
        assert [g["name"] for g in rules["guard_order"]] == list(GUARD_NAMES)
        assert all(g["reason"] for g in rules["guard_order"])
    async with px.session.get(px.admin + "/metrics") as r:
        text = await r.text()
        assert (
            'callwarden_requests_total{error_code="",kind="http",outcome="ok",route="api"} 1.0'
            in text
        )
        assert "callwarden_request_duration_seconds_bucket" in text
    async with px.session.get(
        px.admin + "/metrics", headers={"Accept": "application/openmetrics-text"}
    ) as r:
        text = await r.text()
        assert r.headers["Content-Type"].startswith("application/openmetrics-text")
        assert "# {trace_id=" in text  # trace ids as exemplars, never labels


async def test_get_event_stream_outlives_the_route_timeout(upstream, write_rules, start_proxy):
    _, url = upstream
    px = await start_proxy(write_rules([http_route(url, limits={"timeout_ms": 300})]))
    async with px.session.get(px.url + "/api/sse?n=4&gap_ms=200") as r:
        body = await r.read()  # 4 events over ~800 ms: longer than the 300 ms route timeout
    assert body.count(b"data:") == 4
    async with px.session.get(px.url + "/api/slow?ms=2000") as r:
        assert r.headers["X-CallWarden-Error-Code"] == "TOOL_TIMEOUT"  # ordinary calls: cut


async def test_filtered_response_read_whole_when_it_arrives_in_pieces(
    upstream, write_rules, start_proxy
):
    _, url = upstream
    token = "ghp_" + "Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4J3i2"
    route = http_route(url, credentials={"mask_responses": True})
    # development: the token in the query (which the upstream echoes) is only warned about
    px = await start_proxy(write_rules([route], environment="development"))
    async with px.session.get(px.url + f"/api/chunked-json?echo={token}") as r:
        body = await r.json()
    assert body == {"items": ["a", "[REDACTED]", "z"]}
