"""Shared pieces of the bench scripts: free ports, child processes, CPU time, wrk."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 15.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


def spawn(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")


def wrk(
    url: str, seconds: int, connections: int, headers: dict[str, str], script: str | None = None
) -> dict[str, float]:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if script:
        cmd += ["-s", script]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30).stdout
    total = re.search(r"(\d+) requests in", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    # Line starts only: the Stdev share on the latency line ("75.50%") ends in 50% too.
    p50 = re.search(r"^\s*50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s*99%\s+(\S+)", out, re.M)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "requests": float(total.group(1)) if total else 0.0,
        "rps": float(rps.group(1)) if rps else 0.0,
        "p50_ms": _ms(p50.group(1)) if p50 else float("nan"),
        "p99_ms": _ms(p99.group(1)) if p99 else float("nan"),
        "non2xx": float(non2xx.group(1)) if non2xx else 0.0,
    }


def callwarden_args(rules: str | Path, port: int) -> tuple[str, ...]:
    """`callwarden run` on `port` (admin on a free port), access log off: the baselines
    log nothing either."""
    return ("-m", "proxy.cli", "run", "--rules", str(rules), "--listen", f"127.0.0.1:{port}",
            "--admin", f"127.0.0.1:{free_port()}", "--log-level", "WARNING")


def spawn_callwarden(rules: str | Path, port: int) -> subprocess.Popen[bytes]:
    return spawn(*callwarden_args(rules, port))


def require_valgrind() -> None:
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (apt-get install valgrind)")


def under_callgrind(out: Path, *args: str) -> subprocess.Popen[bytes]:
    """A Python process under valgrind's callgrind (counters dumped on request)."""
    return subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p",
         sys.executable, *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def instructions(proc: subprocess.Popen[bytes], out: Path, n: int, run: Any) -> int:
    """Instructions the process spends while `run()` runs: counters zeroed, `run()`,
    dump number `n` (callgrind numbers its dumps from 1), total read back."""
    subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True, capture_output=True)
    run()
    subprocess.run(["callgrind_control", "-d", f"m{n}", str(proc.pid)], check=True,
                   capture_output=True)
    dump = Path(f"{out}.{proc.pid}.{n}")
    for _ in range(100):
        if dump.exists() and "totals:" in dump.read_text(errors="replace"):
            break
        time.sleep(0.1)
    line = next(x for x in dump.read_text().splitlines() if x.startswith(("summary:", "totals:")))
    return int(line.split()[1])
