"""A 100 MB body each way through a real `callwarden run` process never sits in its
memory: the proxy's peak RSS stays far below the body size."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parent.parent
SIZE = 100 * 1024 * 1024


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


async def test_hundred_megabytes_each_way_stream_through(upstream, write_rules):
    _, url = upstream
    rules = write_rules([{"name": "api", "match": {"path_prefix": "/api"}, "upstream": url}])
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "proxy.cli",
            "run",
            "--rules",
            str(rules),
            "--listen",
            f"127.0.0.1:{port}",
            "--admin",
            f"127.0.0.1:{_free_port()}",
            "--log-level",
            "WARNING",
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        async with aiohttp.ClientSession() as s:
            for _ in range(100):
                try:
                    async with s.get(f"http://127.0.0.1:{port}/api/x") as r:
                        await r.read()
                    break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
            before = _peak_rss_mb(proc.pid)

            async def body():
                chunk = b"u" * 262144
                for _ in range(SIZE // len(chunk)):
                    yield chunk

            async with s.post(f"http://127.0.0.1:{port}/api/upload", data=body()) as r:
                assert await r.json() == {"received": SIZE}
            got = 0
            async with s.get(f"http://127.0.0.1:{port}/api/big?mb=100") as r:
                async for chunk in r.content.iter_any():
                    got += len(chunk)
            assert got == SIZE
        peak = _peak_rss_mb(proc.pid)
        assert peak - before < 40, f"peak RSS grew {peak - before:.0f} MB for a 100 MB body"
    finally:
        proc.terminate()
        assert proc.wait(15) == 0
