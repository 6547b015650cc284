"""Helpers for the wire-protocol tests: a throwaway PostgreSQL 15 cluster on a free port.

Logins are set up so every upstream authentication method is exercised for real:
`app` (scram-sha-256), `app_md5` (md5) and `app_plain` (cleartext `password`); the
superuser `postgres` is trusted on loopback for fixture setup only. TLS is on with a
self-signed certificate so sslmode=require can be tested. Two tenants' rows live in
`shop.orders` (acme: 3, globex: 2).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
PASSWORDS = {"app": "scram-Pw-7f3a9c", "app_md5": "md5-Pw-41be0d", "app_plain": "plain-Pw-9c1e"}

HBA = """\
local all all trust
host all postgres 127.0.0.1/32 trust
host all app_md5 127.0.0.1/32 md5
host all app_plain 127.0.0.1/32 password
host all all 127.0.0.1/32 scram-sha-256
"""

SETUP = """
CREATE ROLE app LOGIN PASSWORD '{app}';
SET password_encryption = 'md5';
CREATE ROLE app_md5 LOGIN PASSWORD '{app_md5}';
RESET password_encryption;
CREATE ROLE app_plain LOGIN PASSWORD '{app_plain}';
CREATE DATABASE shop OWNER app;
"""

SHOP = """
CREATE TABLE orders (id int PRIMARY KEY, tenant_id text NOT NULL, amount numeric NOT NULL);
INSERT INTO orders VALUES (1, 'acme', 10.5), (2, 'acme', 20), (3, 'globex', 7),
                          (4, 'acme', 3.25), (5, 'globex', 99);
CREATE TABLE notes (id serial PRIMARY KEY, body text);
GRANT SELECT ON orders TO app_md5, app_plain;
GRANT ALL ON notes TO app_md5, app_plain;
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class PgCluster:
    host: str
    port: int
    database: str = "shop"

    def dsn(self, user: str = "app", **extra: str) -> str:
        password = PASSWORDS.get(user)
        parts = [f"host={self.host}", f"port={self.port}", f"dbname={self.database}",
                 f"user={user}", "sslmode=disable"]
        if password:
            parts.append(f"password={password}")
        parts += [f"{k}={v}" for k, v in extra.items()]
        return " ".join(parts)


def _as_postgres(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[bytes]:
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    return subprocess.run(cmd, check=True, capture_output=True, **kw)  # type: ignore[call-overload]


@contextlib.contextmanager
def running_cluster() -> Iterator[PgCluster]:
    import psycopg

    root = Path(tempfile.mkdtemp(prefix="cw-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    _as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                  "--no-sync", "-E", "UTF8", "--locale=C"])
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-keyout", str(data / "server.key"),
                    "-out", str(data / "server.crt")], check=True, capture_output=True)
    os.chmod(data / "server.key", 0o600)
    if os.geteuid() == 0:
        for f in ("server.key", "server.crt"):
            shutil.chown(data / f, "postgres", "postgres")
    port = free_port()
    (data / "pg_hba.conf").write_text(HBA)
    with (data / "postgresql.conf").open("a") as conf:
        conf.write(f"\nport = {port}\nlisten_addresses = '127.0.0.1'\n"
                   f"unix_socket_directories = '{root}'\nfsync = off\nsynchronous_commit = off\n"
                   "full_page_writes = off\nmax_connections = 300\nshared_buffers = 32MB\n"
                   "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n")
    _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w",
                  "-t", "60", "start"])
    try:
        su = f"host=127.0.0.1 port={port} user=postgres sslmode=disable"
        with psycopg.connect(su + " dbname=postgres", autocommit=True) as conn:
            for statement in SETUP.format(**PASSWORDS).split(";"):
                if statement.strip():
                    conn.execute(statement)
        with psycopg.connect(su + " dbname=shop", autocommit=True) as conn:
            conn.execute("SET ROLE app")
            conn.execute(SHOP)
        yield PgCluster("127.0.0.1", port)
    finally:
        subprocess.run([*(["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []),
                        str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


# --- the SQL guard ------------------------------------------------------------------------

def compiled_route(spec: dict, mode: str = "enforce") -> object:
    """A postgres route compiled as the proxy compiles it (its guard chain included)."""
    from proxy.compile import Services, compile_route
    from proxy.config.schema import Rules

    rules = Rules.model_validate({"mode": mode, "routes": [spec]})
    return compile_route(rules.routes[0], rules, Services())


# --- a raw protocol client, to see exactly what the proxy sends ------------------------

class RawClient:
    """Speaks just enough protocol to send frames and collect every byte received."""

    def __init__(self, reader: object, writer: object) -> None:
        self.reader = reader
        self.writer = writer
        self.received = bytearray()

    @classmethod
    async def connect(cls, port: int, params: dict[str, str]) -> RawClient:
        import asyncio

        from proxy.pgwire import messages as m

        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer)
        writer.write(m.startup_message(params))
        return client

    async def read_until_ready(self) -> list[tuple[bytes, bytes]]:
        """Frames up to and including ReadyForQuery, or up to EOF."""
        import asyncio

        out: list[tuple[bytes, bytes]] = []
        while True:
            try:
                head = await asyncio.wait_for(self.reader.readexactly(5), 20)  # type: ignore[attr-defined]
            except asyncio.IncompleteReadError as exc:
                self.received += exc.partial
                return out
            body = await self.reader.readexactly(int.from_bytes(head[1:], "big") - 4)  # type: ignore[attr-defined]
            self.received += head + body
            out.append((head[:1], body))
            if head[:1] in (b"Z",) or (head[:1] == b"E" and b"FATAL" in body):
                return out

    async def send(self, data: bytes) -> list[tuple[bytes, bytes]]:
        self.writer.write(data)  # type: ignore[attr-defined]
        return await self.read_until_ready()

    def close(self) -> None:
        self.writer.close()  # type: ignore[attr-defined]
