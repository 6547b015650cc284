"""`postgres_dsn`: a throwaway PostgreSQL cluster for the test session.

Uses CALLWARDEN_TEST_PG_DSN when set. Otherwise runs initdb + pg_ctl from
/usr/lib/postgresql/*/bin in a temp dir on a free loopback port with trust auth
(as the `postgres` OS user when running as root, since postgres refuses root), and
stops it at session end. Skips only when no PostgreSQL binaries exist at all.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _bin_dir() -> Path | None:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit()
        else 0,
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_owner(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


@contextmanager
def private_cluster() -> Iterator[str | None]:
    """A throwaway cluster's DSN for the block (None: no PostgreSQL binaries). Also used
    by scripts/gen_pg_functions.py and bench/pg_corpus.py."""
    bindir = _bin_dir()
    if bindir is None:
        yield None
        return
    root = Path(tempfile.mkdtemp(prefix="cw-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        shutil.chown(sock, "postgres", "postgres")
    port = _free_port()
    run = {"check": True, "capture_output": True, "timeout": 120}
    subprocess.run(_as_owner([str(bindir / "initdb"), "-D", str(data), "-A", "trust",
                              "-U", "postgres", "--no-sync", "-E", "UTF8"]), **run)
    opts = (f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={sock} "
            "-c fsync=off -c full_page_writes=off -c synchronous_commit=off")
    subprocess.run(_as_owner([str(bindir / "pg_ctl"), "-D", str(data), "-o", opts,
                              "-l", str(root / "log"), "-w", "-t", "60", "start"]), **run)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_owner([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                                  "-w", "stop"]), check=False, capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    env_dsn = os.environ.get("CALLWARDEN_TEST_PG_DSN")
    if env_dsn:
        yield env_dsn
        return
    with private_cluster() as dsn:
        if dsn is None:
            pytest.skip("no PostgreSQL binaries installed")
        yield dsn
