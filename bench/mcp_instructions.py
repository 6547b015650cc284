"""Instructions per MCP call (valgrind callgrind), CallWarden's MCP route vs the minimal
aiohttp proxy: a repeatable A/B where CPU time on a shared box drifts by 10-20%.

    .venv/bin/python bench/mcp_instructions.py [--calls 200]

Both proxies run under callgrind in front of the SDK server (stateless, SSE answers);
CallWarden is measured on its MCP route and on a plain HTTP route to the same server;
counters are zeroed after a warm-up and dumped after `--calls` calls per method, so
start-up and imports are not counted. User-space instructions only: the kernel's share
(socket syscalls, the same for both) is not in these numbers, so the ratio here is
larger than the CPU-time ratio bench/mcp_overhead.py prints.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import tempfile
from pathlib import Path

from common import (
    callwarden_args,
    free_port,
    instructions,
    require_valgrind,
    spawn,
    under_callgrind,
    wait_port,
)
from mcp_overhead import RULES, load

METHODS = ("tools/call", "tools/list")


def measure(proc: subprocess.Popen[bytes], urls: dict[str, str], out: Path,
            calls: int) -> dict[str, dict[str, int]]:
    """Instructions per call for each target URL of this process and each method, after
    a warm-up (caches, first parses)."""
    for url in urls.values():
        for method in METHODS:
            asyncio.run(load(url, method, 40, 8))
    got: dict[str, dict[str, int]] = {}
    n = 0
    for name, url in urls.items():
        got[name] = {}
        for method in METHODS:
            n += 1
            total = instructions(proc, out, n,
                                 lambda u=url, m=method: asyncio.run(load(u, m, calls, 8)))
            got[name][method] = total // calls
    return got


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=200)
    args = ap.parse_args()
    require_valgrind()
    up, base, cw = free_port(), free_port(), free_port()
    tmp = Path(tempfile.mkdtemp())
    (tmp / "rules.yaml").write_text(RULES.format(up=up))
    server = spawn("tests/mcp/sdk_server.py", "--port", str(up), "--stateless")
    results: dict[str, dict[str, int]] = {}
    try:
        wait_port(up)
        cw_url = f"http://127.0.0.1:{cw}/mcp"
        for listen, cmd, urls in (
            (base, ("bench/minimal_proxy.py", str(base), f"http://127.0.0.1:{up}"),
             {"minimal aiohttp proxy": f"http://127.0.0.1:{base}/mcp"}),
            (cw, callwarden_args(tmp / "rules.yaml", cw),
             {"callwarden http pass-through": "raw.bench@" + cw_url,
              "callwarden mcp (policy+filter)": cw_url}),
        ):
            proc = under_callgrind(tmp / "cg", *cmd)
            try:
                wait_port(listen, timeout=180)  # startup under valgrind takes a while
                results.update(measure(proc, urls, tmp / "cg", args.calls))
            finally:
                proc.terminate()
                proc.wait(60)
    finally:
        server.terminate()
        server.wait(10)
    print(f"instructions per call (callgrind, {args.calls} calls, 8 concurrent callers)")
    print(f"{'method':<11} {'target':<31} {'instructions':>13} {'x base':>7}")
    for method in METHODS:
        baseline = results["minimal aiohttp proxy"][method]
        for name, got in results.items():
            per = got[method]
            print(f"{method:<11} {name:<31} {per:>13,} {per / baseline:>7.2f}")


if __name__ == "__main__":
    main()
