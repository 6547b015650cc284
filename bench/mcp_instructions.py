"""Instructions per MCP call (valgrind callgrind), CallWarden's MCP route vs the minimal
aiohttp proxy: a repeatable A/B where CPU time on a shared box drifts by 10-20%.

    .venv/bin/python bench/mcp_instructions.py [--calls 200]

Both proxies run under callgrind in front of the SDK server (stateless, SSE answers);
counters are zeroed after a warm-up and dumped after `--calls` calls per method, so
start-up and imports are not counted. User-space instructions only: the kernel's share
(socket syscalls, the same for both) is not in these numbers, so the ratio here is
larger than the CPU-time ratio bench/mcp_overhead.py prints.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, free_port, spawn, wait_port
from mcp_overhead import RULES, load

METHODS = ("tools/call", "tools/list")


def under_callgrind(out: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p",
         sys.executable, *args],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def measure(proc: subprocess.Popen[bytes], url: str, out: Path, calls: int) -> dict[str, int]:
    """Instructions per call for each method: zero, run the calls, dump, read the total."""
    for method in METHODS:
        asyncio.run(load(url, method, 40, 8))  # warm-up: caches, first parses
    got = {}
    for n, method in enumerate(METHODS):
        subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True,
                       capture_output=True)
        asyncio.run(load(url, method, calls, 8))
        subprocess.run(["callgrind_control", "-d", f"m{n}", str(proc.pid)], check=True,
                       capture_output=True)
        dump = Path(f"{out}.{proc.pid}.{n + 1}")  # callgrind numbers its dumps from 1
        for _ in range(100):
            if dump.exists() and "totals:" in dump.read_text(errors="replace"):
                break
            time.sleep(0.1)
        line = next(x for x in dump.read_text().splitlines() if x.startswith(("summary:",
                                                                              "totals:")))
        got[method] = int(line.split()[1]) // calls
    return got


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=200)
    args = ap.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (apt-get install valgrind)")
    up, base, cw, admin = free_port(), free_port(), free_port(), free_port()
    tmp = Path(tempfile.mkdtemp())
    (tmp / "rules.yaml").write_text(RULES.format(up=up))
    server = spawn("tests/mcp/sdk_server.py", "--port", str(up), "--stateless")
    results: dict[str, dict[str, int]] = {}
    try:
        wait_port(up)
        for name, listen, cmd in (
            ("minimal aiohttp proxy", base,
             ("bench/minimal_proxy.py", str(base), f"http://127.0.0.1:{up}")),
            ("callwarden mcp (policy+filter)", cw,
             ("-m", "proxy.cli", "run", "--rules", str(tmp / "rules.yaml"), "--listen",
              f"127.0.0.1:{cw}", "--admin", f"127.0.0.1:{admin}", "--log-level", "WARNING")),
        ):
            proc = under_callgrind(tmp / "cg", *cmd)
            try:
                wait_port(listen, timeout=180)  # startup under valgrind takes a while
                results[name] = measure(proc, f"http://127.0.0.1:{listen}/mcp", tmp / "cg",
                                        args.calls)
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
