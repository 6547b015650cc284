"""Soak: minutes of load through `callwarden run` with random tenants, a flaky upstream and
a full outage in the middle. Prints throughput per phase, answers by status and error
code, the proxy's resilience counters, and its memory (RSS) and CPU at start and end.

    .venv/bin/python bench/soak.py [--seconds 180] [--concurrency 48]

What it shows: rate limits per tenant hold under load, the breaker opens during the
outage (fast CIRCUIT_OPEN instead of piling onto a dead backend) and closes after it,
retries stay within their budget, and memory stays flat while thousands of distinct
tenant ids pass through (limiter tables are bounded).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp
from aiohttp import web
from common import cpu_seconds, free_port, rss_mb, spawn, wait_port

RULES = """
version: 1
observability: {{access_log: {{enabled: false}}}}
routes:
  - name: soak
    match: {{path_prefix: /soak}}
    upstream: http://127.0.0.1:{up}
    limits:
      timeout_ms: 2000
      rate: {{per_second: 20, key: tenant}}
      breaker: {{failures: 20, failure_ratio: 0.5, window_s: 5, min_calls: 40,
                reset_after_s: 2}}
      retries: {{max: 2, backoff_ms: 20, max_backoff_ms: 200}}
      max_inflight: {inflight}
"""
BODY = b'{"ok": true, "items": [1, 2, 3]}'


class FlakyUpstream:
    """Fails `flaky` of calls with 503, is slow for 1%, and down (503) during an outage."""

    def __init__(self, flaky: float, rng: random.Random) -> None:
        self.flaky = flaky
        self.down = False
        self.calls = 0
        self.rng = rng

    async def handle(self, req: web.Request) -> web.Response:
        self.calls += 1
        if req.body_exists:
            await req.read()
        if self.down:
            return web.Response(status=503, text="outage")
        r = self.rng.random()
        if r < self.flaky:
            return web.Response(status=503, text="flaky")
        if r < self.flaky + 0.01:
            await asyncio.sleep(0.3)
        return web.Response(body=BODY, content_type="application/json")


def pick_tenant(rng: random.Random, pool: int) -> str:
    """A hot tenant (over its limit), a pool of regulars, and a stream of one-off ids
    (the memory test: each is a new limiter key)."""
    r = rng.random()
    if r < 0.3:
        return "hot"
    if r < 0.8:
        return f"t{rng.randrange(pool)}"
    return f"once-{rng.getrandbits(64):016x}"


async def load(
    url: str,
    seconds: float,
    concurrency: int,
    pool: int,
    up: FlakyUpstream,
    outage: tuple[float, float],
    rng: random.Random,
) -> tuple[Counter[tuple[str, str]], Counter[str]]:
    """Bounded workers until the end time; returns answers by (phase, code), calls by phase."""
    codes: Counter[tuple[str, str]] = Counter()
    phases: Counter[str] = Counter()
    start = time.monotonic()
    end = start + seconds

    def phase(now: float) -> str:
        t = (now - start) / seconds
        return "before" if t < outage[0] else "outage" if t < outage[1] else "after"

    async def worker(session: aiohttp.ClientSession) -> None:
        while (now := time.monotonic()) < end:
            p = phase(now)
            up.down = p == "outage"
            method = "POST" if rng.random() < 0.2 else "GET"
            headers = {"X-Tenant-ID": pick_tenant(rng, pool)}
            try:
                data = BODY if method == "POST" else None  # GETs replayable: retried
                async with session.request(method, url, headers=headers, data=data) as r:
                    await r.read()
                    code = r.headers.get("X-CallWarden-Error-Code") or f"upstream {r.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                code = f"client {type(exc).__name__}"
            codes[(p, code)] += 1
            phases[p] += 1

    timeout = aiohttp.ClientTimeout(total=10)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return codes, phases


async def scrape(admin: int) -> dict[str, float]:
    wanted = (
        "callwarden_retries_total",
        "callwarden_rate_limited_total",
        "callwarden_breaker_transitions_total",
    )
    out: dict[str, float] = {}
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{admin}/metrics") as r:
        for line in (await r.text()).splitlines():
            if line.startswith(wanted):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
    return out


async def run(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    upstream = FlakyUpstream(args.flaky, rng)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", upstream.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    up_port, port, admin = free_port(), free_port(), free_port()
    await web.TCPSite(runner, "127.0.0.1", up_port).start()
    tmp = Path(tempfile.mkdtemp())
    (tmp / "rules.yaml").write_text(RULES.format(up=up_port, inflight=args.max_inflight))
    proc = spawn(
        "-m",
        "proxy.cli",
        "run",
        "--rules",
        str(tmp),
        "--listen",
        f"127.0.0.1:{port}",
        "--admin",
        f"127.0.0.1:{admin}",
        "--log-level",
        "ERROR",
    )
    try:
        await asyncio.to_thread(wait_port, port)
        await asyncio.sleep(0.5)
        rss0, cpu0 = rss_mb(proc.pid), cpu_seconds(proc.pid)
        t0 = time.monotonic()
        codes, phases = await load(
            f"http://127.0.0.1:{port}/soak/item",
            args.seconds,
            args.concurrency,
            args.tenants,
            upstream,
            (args.outage_at, args.outage_at + args.outage_len),
            rng,
        )
        wall = time.monotonic() - t0
        rss1, cpu1 = rss_mb(proc.pid), cpu_seconds(proc.pid)
        counters = await scrape(admin)
    finally:
        proc.terminate()
        proc.wait(10)
        await runner.cleanup()
    total = sum(phases.values())
    print(
        f"soak: {wall:.0f} s, {args.concurrency} workers, outage "
        f"{args.outage_at:.0%}-{args.outage_at + args.outage_len:.0%} of the run, "
        f"flaky {args.flaky:.0%}"
    )
    print(
        f"throughput: {total / wall:.0f} calls/s ({total} calls); upstream saw "
        f"{upstream.calls} requests ({upstream.calls / max(total, 1):.2f} per call)"
    )
    print(f"{'answer':32} {'before':>9} {'outage':>9} {'after':>9}")
    for code in sorted({c for _, c in codes}):
        row = "".join(f"{codes[(p, code)]:>10}" for p in ("before", "outage", "after"))
        print(f"{code:32}{row}")
    print(f"{'calls':32}" + "".join(f"{phases[p]:>10}" for p in ("before", "outage", "after")))
    for name, value in sorted(counters.items()):
        print(f"{name:60} {value:>8.0f}")
    print(
        f"proxy RSS: {rss0:.1f} MB at start, {rss1:.1f} MB at end "
        f"({rss1 - rss0:+.1f} MB); CPU {cpu1 - cpu0:.1f} s "
        f"({(cpu1 - cpu0) / max(total, 1) * 1e6:.0f} us/call)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=180.0)
    ap.add_argument("--concurrency", type=int, default=48)
    ap.add_argument("--max-inflight", type=int, default=40)
    ap.add_argument("--tenants", type=int, default=500, help="pool of regular tenants")
    ap.add_argument("--flaky", type=float, default=0.05, help="share of upstream 503s")
    ap.add_argument("--outage-at", type=float, default=0.4, help="start, share of the run")
    ap.add_argument("--outage-len", type=float, default=0.2, help="length, share of the run")
    ap.add_argument("--seed", type=int, default=7)
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
