"""Instructions per request (valgrind callgrind), CallWarden's SQL route vs its
pass-through route, every request with new literals: the repeatable A/B behind
bench/sql_route.py, whose CPU times drift by 10-20% on a shared box.

    .venv/bin/python bench/sql_instructions.py [--requests 300]

One CallWarden under callgrind in front of bench/upstream.py; counters are zeroed after
a warm-up and dumped after `--requests` requests per route (8 concurrent). User-space
instructions only: the kernel's share (the same for both routes) is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path

import aiohttp
from common import (
    callwarden_args,
    free_port,
    instructions,
    require_valgrind,
    spawn,
    under_callgrind,
    wait_port,
)
from sql_route import RULES

ROUTES = (("pass-through route", "/pt/query"), ("sql route", "/sql/query"))
HEADERS = {"Content-Type": "application/json", "X-Tenant-ID": "acme"}


def body(n: int) -> bytes:
    """The 3-way join of bench/sql_route.py with a fresh id, name and date."""
    sql = ("SELECT o.id, o.amount, c.name, i.sku FROM orders o "
           "JOIN customers c ON c.id = o.customer_id JOIN items i ON i.order_id = o.id "
           f"WHERE o.id = {n} AND c.name = 'cust-{n * 7}' "
           f"AND o.created_at > '2026-01-{n % 28 + 1:02d}' ORDER BY o.id LIMIT 50")
    return json.dumps({"query": sql}).encode()


async def send(url: str, first: int, count: int, concurrency: int = 8) -> None:
    todo = iter(range(first, first + count))
    async with aiohttp.ClientSession(headers=HEADERS) as session:
        async def worker() -> None:
            for n in todo:
                async with session.post(url, data=body(n)) as r:
                    await r.read()
                    if r.status != 200:
                        raise RuntimeError(f"{url}: HTTP {r.status}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=300)
    args = ap.parse_args()
    require_valgrind()
    up, cw = free_port(), free_port()
    tmp = Path(tempfile.mkdtemp())
    (tmp / "rules.yaml").write_text(RULES.format(up=up))
    upstream = spawn("bench/upstream.py", str(up))
    proc = under_callgrind(tmp / "cg", *callwarden_args(tmp / "rules.yaml", cw))
    got: dict[str, int] = {}
    try:
        wait_port(up)
        wait_port(cw, timeout=180)  # startup under valgrind takes a while
        base = f"http://127.0.0.1:{cw}"
        for _, path in ROUTES:
            asyncio.run(send(base + path, 10**6, 60))  # warm-up: first parses, pools
        for n, (name, path) in enumerate(ROUTES):
            first = 2 * 10**6 + n * args.requests  # literals never seen before
            total = instructions(proc, tmp / "cg", n + 1, lambda p=path, f=first: asyncio.run(
                send(base + p, f, args.requests)))
            got[name] = total // args.requests
    finally:
        proc.terminate()
        proc.wait(60)
        upstream.terminate()
        upstream.wait(10)
    print(f"instructions per request (callgrind, {args.requests} requests, new literals each)")
    baseline = got[ROUTES[0][0]]
    for name, per in got.items():
        print(f"{name:20} {per:>13,} {per / baseline:>7.3f}x")


if __name__ == "__main__":
    main()
