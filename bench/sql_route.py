"""End-to-end cost of a SQL route vs a pass-through route, same upstream, same load, one
run; every SQL request carries new literals (ids, names), as orchestrators send them.

    .venv/bin/python bench/sql_route.py [--seconds 10] [--connections 16] [--rounds 3]

The two routes run alternately, `--rounds` times each, and the table shows medians: on a
shared machine CPU per request drifts by 10-20% between runs a minute apart.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from common import cpu_seconds, free_port, spawn, spawn_callwarden, wait_port, wrk

RULES = """
version: 1
routes:
  - name: passthrough
    match: {{path_prefix: /pt}}
    upstream: http://127.0.0.1:{up}
  - name: sql
    kind: sql
    match: {{path_prefix: /sql}}
    upstream: http://127.0.0.1:{up}
    sql:
      dialect: postgres
      max_rows: 1000
      tenant: {{column: tenant_id, tables: [orders, customers]}}
"""

# wrk script: a 3-way join with a fresh id and name literal on every request.
LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Tenant-ID"] = "acme"
local n = 0
request = function()
  n = n + 1
  local body = string.format('{"query": "SELECT o.id, o.amount, c.name, i.sku FROM orders o '
    .. 'JOIN customers c ON c.id = o.customer_id JOIN items i ON i.order_id = o.id '
    .. "WHERE o.id = %d AND c.name = 'cust-%d' AND o.created_at > '2026-01-%02d' "
    .. 'ORDER BY o.id LIMIT 50"}', n, n * 7, n % 28 + 1)
  return wrk.format(nil, nil, nil, body)
end
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    up, cw = free_port(), free_port()
    tmp = Path(tempfile.mkdtemp())
    (tmp / "rules.yaml").write_text(RULES.format(up=up))
    (tmp / "new_literals.lua").write_text(LUA)
    procs = [spawn("bench/upstream.py", str(up))]
    procs.append(spawn_callwarden(str(tmp / "rules.yaml"), cw))
    wait_port(up)
    wait_port(cw)
    routes = (("pass-through route", "/pt/query"), ("sql route", "/sql/query"))
    runs: dict[str, list[tuple[dict[str, float], float]]] = {name: [] for name, _ in routes}
    lua = str(tmp / "new_literals.lua")
    try:
        for _name, path in routes:
            wrk(f"http://127.0.0.1:{cw}{path}", 2, args.connections, {}, script=lua)
        for _ in range(args.rounds):
            for name, path in routes:
                url = f"http://127.0.0.1:{cw}{path}"
                before = cpu_seconds(procs[1].pid)
                res = wrk(url, args.seconds, args.connections, {}, script=lua)
                cpu = cpu_seconds(procs[1].pid) - before
                runs[name].append((res, cpu / res["requests"] * 1e6 if res["requests"] else 0.0))
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
    rows = []
    for name, got in runs.items():
        med = {k: statistics.median(r[k] for r, _ in got) for k in got[0][0]}
        rows.append((name, med, statistics.median(c for _, c in got)))
    print(f"\nwrk -t1 -c{args.connections} -d{args.seconds}s x {args.rounds} rounds (medians), "
          "POST JSON, new literals per request")
    print(
        f"{'route':20} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'CPU us/req':>11}"
    )
    for name, res, per_req in rows:
        print(
            f"{name:20} {res['rps']:>9.0f} {res['p50_ms']:>8.2f} {res['p99_ms']:>8.2f}"
            f" {res['non2xx']:>8.0f} {per_req:>11.0f}"
        )
    if rows[0][2]:
        print(f"sql route CPU / pass-through CPU: {rows[1][2] / rows[0][2]:.2f}x")


if __name__ == "__main__":
    main()
