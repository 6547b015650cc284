"""MCP overhead, same load, one run: the official SDK server (stateless, SSE answers) called
directly, through the minimal aiohttp pass-through, and through CallWarden with per-tool
policy and tools/list filtering. Concurrent callers post JSON-RPC with aiohttp; a fixed
number of calls per target (bounded). Prints p50/p99 latency, added p50 and the proxy's CPU
time per call.

    .venv/bin/python bench/mcp_overhead.py [--calls 2000] [--concurrency 16] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
from common import cpu_seconds, free_port, spawn, spawn_callwarden, wait_port

RULES = """
version: 1
mode: enforce
routes:
  - name: tools
    kind: mcp
    match: {{path_prefix: /mcp}}
    upstream: http://127.0.0.1:{up}/mcp
    limits: {{timeout_ms: 10000}}
    mcp:
      default: deny
      tools:
        add: {{roles: ["*"]}}
        get_weather: {{roles: ["*"]}}
        run_sql: {{roles: [analyst], sql: {{argument: query, read_only: true}}}}
        lookup_customer: {{roles: [analyst], tenant_argument: tenant_id}}
  - name: raw                 # the same upstream as a plain HTTP route: the pipeline's share
    match: {{hosts: [raw.bench], path_prefix: /mcp, strip_prefix: false}}
    upstream: http://127.0.0.1:{up}
"""
HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/json, text/event-stream",
    "X-Caller-Role": "agent",
    "X-Tenant-ID": "acme",
}


def body(method: str, i: int) -> bytes:
    params = {"name": "add", "arguments": {"a": i, "b": 1}} if method == "tools/call" else {}
    return json.dumps({"jsonrpc": "2.0", "id": i, "method": method, "params": params}).encode()


async def load(url: str, method: str, calls: int, concurrency: int) -> list[float]:
    host = None
    if "@" in url:  # "raw.bench@http://..." sends that Host header
        host, url = url.split("@", 1)
    headers = {**HEADERS, "Host": host} if host else HEADERS
    """Latencies (s) of `calls` requests from `concurrency` callers; each must succeed."""
    latencies: list[float] = []
    todo = iter(range(calls))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def caller() -> None:
            for i in todo:
                t0 = time.perf_counter()
                async with session.post(url, data=body(method, i), headers=headers) as r:
                    data = await r.read()
                latencies.append(time.perf_counter() - t0)
                if r.status != 200 or b'"result"' not in data:
                    raise RuntimeError(f"{url}: {r.status} {data[:200]!r}")

        await asyncio.gather(*(caller() for _ in range(concurrency)))
    return latencies


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    up, base, cw = free_port(), free_port(), free_port()
    tmp = Path(tempfile.mkdtemp())
    (tmp / "rules.yaml").write_text(RULES.format(up=up))
    procs = [spawn("tests/mcp/sdk_server.py", "--port", str(up), "--stateless")]
    try:
        wait_port(up)
        procs.append(spawn("bench/minimal_proxy.py", str(base), f"http://127.0.0.1:{up}"))
        procs.append(spawn_callwarden(str(tmp), cw))
        wait_port(base)
        wait_port(cw)
        targets = [
            ("direct", f"http://127.0.0.1:{up}/mcp", None),
            ("minimal aiohttp proxy", f"http://127.0.0.1:{base}/mcp", procs[1].pid),
            ("callwarden http pass-through", f"raw.bench@http://127.0.0.1:{cw}/mcp", procs[2].pid),
            ("callwarden mcp (policy+filter)", f"http://127.0.0.1:{cw}/mcp", procs[2].pid),
        ]
        rows = []
        for method in ("tools/call", "tools/list"):
            cpu: dict[str, list[float]] = {name: [] for name, _, _ in targets}
            lat: dict[str, list[float]] = {name: [] for name, _, _ in targets}
            for _ in range(args.rounds):  # interleaved rounds: drift hits every target alike
                for name, url, pid in targets:
                    asyncio.run(load(url, method, 100, args.concurrency))  # warm-up
                    before = cpu_seconds(pid) if pid else 0.0
                    n = len(asyncio.run(load(url, method, args.calls, args.concurrency)))
                    cpu[name].append((cpu_seconds(pid) - before) / n if pid else 0.0)
                    # latency unloaded (one caller), so server queueing does not drown it
                    lat[name] += asyncio.run(load(url, method, args.calls // 4, 1))
            for name, _, _ in targets:
                q = statistics.quantiles(lat[name], n=100)
                rows.append(
                    (method, name, q[49] * 1e3, q[98] * 1e3, statistics.median(cpu[name]) * 1e6)
                )
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)
    print(
        f"SDK server (stateless, SSE answers); CPU: median of {args.rounds} rounds of "
        f"{args.calls} calls from {args.concurrency} concurrent callers; latency: one caller"
    )
    print(
        f"{'method':<11} {'target':<30} {'p50 ms':>8} {'p99 ms':>8} {'+p50 ms':>8} "
        f"{'CPU us/call':>12} {'CPU x base':>10}"
    )
    for method, name, p50, p99, cpu in rows:
        direct = next(r for r in rows if r[0] == method and r[1] == "direct")
        minimal = next(r for r in rows if r[0] == method and r[1].startswith("minimal"))
        added = p50 - direct[2]
        ratio = f"{cpu / minimal[4]:.2f}" if cpu and minimal[4] else "-"
        cpu_s = f"{cpu:.0f}" if cpu else "-"
        print(
            f"{method:<11} {name:<30} {p50:8.2f} {p99:8.2f} {added:+8.2f} {cpu_s:>12} {ratio:>10}"
        )


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    main()
