"""pgbench direct vs through the PostgreSQL listener, same server, same load, one run.

    .venv/bin/python bench/pgbench.py [--seconds 10] [--clients 8] [--jobs 2] [--scale 1]

Starts a throwaway PostgreSQL (tests/pgwire/pgkit.py), initialises pgbench tables,
starts a read-only postgres route with the real SQL guard, then runs each workload
direct and proxied and prints TPS, average latency and the latency the proxy adds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from proxy.pgwire import PgListener
from tests.pgwire.pgkit import PASSWORDS, compiled_route, running_cluster

PGBENCH = shutil.which("pgbench") or "/usr/lib/postgresql/15/bin/pgbench"
CUSTOM = """\\set aid random(1, 100000 * :scale)
SELECT a.aid, a.abalance, b.bbalance FROM pgbench_accounts a
  JOIN pgbench_branches b ON b.bid = a.bid WHERE a.aid BETWEEN :aid AND :aid + 9;
"""
WORKLOADS: list[tuple[str, list[str]]] = [
    ("select-only, simple", ["-S", "-M", "simple"]),
    ("select-only, prepared", ["-S", "-M", "prepared"]),
    ("custom join, extended", ["-M", "extended", "-f", "{custom}"]),
]


async def pgbench(
    port: int, user: str, args: list[str], env: dict[str, str]
) -> tuple[float, float]:
    proc = await asyncio.create_subprocess_exec(
        PGBENCH,
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-U",
        user,
        *args,
        "shop",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **env},
    )
    out, err = await proc.communicate()
    text = out.decode()
    if "-i" in args and proc.returncode == 0:
        return 0.0, 0.0
    tps = re.search(r"tps = ([\d.]+)", text)
    lat = re.search(r"latency average = ([\d.]+) ms", text)
    if proc.returncode != 0 or tps is None or lat is None:
        raise RuntimeError(f"pgbench failed: {err.decode()[-800:]}{text[-400:]}")
    return float(tps.group(1)), float(lat.group(1))


async def main(ns: argparse.Namespace) -> None:
    with running_cluster() as cluster, tempfile.TemporaryDirectory() as tmp:
        direct_env = {"PGPASSWORD": PASSWORDS["app"], "PGSSLMODE": "disable"}
        await pgbench(cluster.port, "app", ["-i", "-q", "-s", str(ns.scale)], direct_env)
        custom = Path(tmp) / "custom.sql"
        custom.write_text(CUSTOM)
        spec = {
            "name": "bench",
            "kind": "postgres",
            "listen": "127.0.0.1:0",
            "upstream": f"127.0.0.1:{cluster.port}",
            "postgres": {"sslmode": "disable", "database": "shop", "max_connections": 1000},
        }
        if not ns.no_guard:
            spec["sql"] = {"dialect": "postgres", "read_only": True}

        async def creds() -> tuple[str, str]:
            return "app", PASSWORDS["app"]

        listener = PgListener(compiled_route(spec), creds, "production")  # type: ignore[arg-type]
        await listener.start()
        load = ["-n", "-T", str(ns.seconds), "-c", str(ns.clients), "-j", str(ns.jobs)]
        rows = []
        try:
            for name, args in WORKLOADS:
                args = [a.replace("{custom}", str(custom)) for a in args] + load
                d = await pgbench(cluster.port, "app", args, direct_env)
                p = await pgbench(listener.port, "agent", args, {"PGSSLMODE": "disable"})
                rows.append((name, d, p))
        finally:
            await listener.close()
    print(
        f"pgbench: {ns.seconds}s per run, {ns.clients} clients, {ns.jobs} threads, "
        f"scale {ns.scale}, cpus {os.cpu_count()}, guard {'off' if ns.no_guard else 'on'}"
    )
    print(
        f"{'workload':24} {'direct tps':>11} {'proxy tps':>10} {'direct ms':>10} "
        f"{'proxy ms':>9} {'added ms':>9} {'tps ratio':>9}"
    )
    for name, (dt, dl), (pt, pl) in rows:
        print(f"{name:24} {dt:11.0f} {pt:10.0f} {dl:10.3f} {pl:9.3f} {pl - dl:9.3f} {pt / dt:9.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--no-uvloop", action="store_true")
    parser.add_argument("--no-guard", action="store_true", help="relay cost alone, no SQL guard")
    ns = parser.parse_args()
    if not ns.no_uvloop:
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
    asyncio.run(main(ns))
