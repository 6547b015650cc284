"""Same load, one run: direct to the upstream, through a minimal aiohttp proxy, and
through CallWarden (pass-through route, guard chain on). Prints req/s, p50, p99 and the
proxy's CPU time per request.

    .venv/bin/python bench/proxy_overhead.py [--seconds 10] [--connections 32]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from common import cpu_seconds, free_port, spawn, spawn_callwarden, wait_port, wrk

RULES = """
version: 1
routes:
  - name: bench
    match: {{path_prefix: /bench}}
    upstream: http://127.0.0.1:{up}
    access: {{roles: [agent]}}
    tenant: {{forward_header: X-Tenant-ID}}
    limits: {{timeout_ms: 10000}}
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved runs; medians shown")
    args = ap.parse_args()
    up, base, cw = free_port(), free_port(), free_port()
    tmp = Path(tempfile.mkdtemp())
    (tmp / "rules.yaml").write_text(RULES.format(up=up))
    procs = [spawn("bench/upstream.py", str(up))]
    wait_port(up)
    procs.append(spawn("bench/minimal_proxy.py", str(base), f"http://127.0.0.1:{up}"))
    procs.append(spawn_callwarden(str(tmp), cw))
    wait_port(base)
    wait_port(cw)
    headers = {"X-Caller-Role": "agent", "X-Tenant-ID": "acme"}
    targets = [
        ("direct", f"http://127.0.0.1:{up}/bench/x", None),
        ("minimal aiohttp proxy", f"http://127.0.0.1:{base}/bench/x", procs[1].pid),
        ("callwarden", f"http://127.0.0.1:{cw}/bench/x", procs[2].pid),
    ]
    samples: dict[str, list[tuple[dict[str, float], float]]] = {n: [] for n, _, _ in targets}
    try:
        for _ in range(args.rounds):  # interleaved, so drift on a shared machine hits all
            for name, url, pid in targets:
                wrk(url, 2, args.connections, headers)  # warm-up: connections, caches
                before = cpu_seconds(pid) if pid else 0.0
                res = wrk(url, args.seconds, args.connections, headers)
                cpu = cpu_seconds(pid) - before if pid else 0.0
                per_req = cpu / res["requests"] * 1e6 if pid and res["requests"] else 0.0
                samples[name].append((res, per_req))
        rows = []
        for name, runs in samples.items():
            mid = sorted(runs, key=lambda r: r[1] or r[0]["rps"])[len(runs) // 2]
            rows.append((name, mid[0], mid[1]))
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
    print(
        f"\nwrk -t1 -c{args.connections} -d{args.seconds}s x {args.rounds} rounds (median),"
        " small JSON upstream, loopback"
    )
    print(
        f"{'target':24} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}"
        f" {'proxy CPU us/req':>17}"
    )
    for name, res, per_req in rows:
        cpu = f"{per_req:.0f}" if per_req else "-"
        print(
            f"{name:24} {res['rps']:>9.0f} {res['p50_ms']:>8.2f} {res['p99_ms']:>8.2f}"
            f" {res['non2xx']:>8.0f} {cpu:>17}"
        )


if __name__ == "__main__":
    main()
