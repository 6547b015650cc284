"""Instructions per upstream request (valgrind callgrind): aiohttp's ClientSession vs the
proxy's own HTTP/1.1 client (proxy/upstream/h1.py), each in its own process, one small
keep-alive GET at a time to bench/upstream.py. The number behind h1.py's existence.

    .venv/bin/python bench/h1_instructions.py [--requests 300]

Each client process reads one line per request from stdin and answers one line; a third
process that only answers measures that pipe work, which is taken off both numbers. Counters are
zeroed after a warm-up, so start-up and imports are not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import REPO, free_port, instructions, require_valgrind, spawn, wait_port

CLIENTS = ("aiohttp.ClientSession", "proxy h1.H1Pool", "no request (the pipe)")


async def _client(which: str, url: str) -> None:
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    out = sys.stdout.buffer
    if which == CLIENTS[0]:
        import aiohttp

        async with aiohttp.ClientSession() as session:
            while await stdin.readline():
                async with session.get(url) as r:
                    await r.read()
                out.write(b"ok\n")
                out.flush()
    elif which == CLIENTS[2]:
        while await stdin.readline():
            out.write(b"ok\n")
            out.flush()
    else:
        from multidict import CIMultiDict

        from proxy.upstream.h1 import H1Pool

        pool = H1Pool()
        while await stdin.readline():
            resp = await pool.request("GET", url, CIMultiDict(), None)
            await resp.read()
            resp.release()
            out.write(b"ok\n")
            out.flush()
        await pool.close()


def _run(proc: subprocess.Popen[bytes], n: int) -> None:
    assert proc.stdin is not None and proc.stdout is not None
    for _ in range(n):
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
        if proc.stdout.readline() != b"ok\n":
            raise RuntimeError("the client process failed")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--client", help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.client:
        asyncio.run(_client(args.client, args.url))
        return
    require_valgrind()
    up = free_port()
    tmp = Path(tempfile.mkdtemp())
    upstream = spawn("bench/upstream.py", str(up))
    got: dict[str, int] = {}
    try:
        wait_port(up)
        for which in CLIENTS:
            proc = subprocess.Popen(
                ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp / 'cg'}.%p",
                 sys.executable, __file__, "--client", which,
                 "--url", f"http://127.0.0.1:{up}/x"],
                cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            )
            try:
                _run(proc, 30)  # warm-up: imports done, the connection pooled
                total = instructions(proc, tmp / "cg", 1, lambda p=proc: _run(p, args.requests))
                got[which] = total // args.requests
            finally:
                assert proc.stdin is not None
                proc.stdin.close()
                proc.wait(60)
    finally:
        upstream.terminate()
        upstream.wait(10)
    pipe = got.pop(CLIENTS[2])
    print(f"instructions per upstream GET (callgrind, {args.requests} requests, keep-alive;"
          f" the pipe's {pipe:,} taken off)")
    base = got[CLIENTS[0]] - pipe
    for name, per in got.items():
        print(f"{name:22} {per - pipe:>11,} {(per - pipe) / base:>7.3f}x")


if __name__ == "__main__":
    main()
