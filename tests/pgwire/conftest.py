"""Fixtures for the wire-protocol tests (helpers live in pgkit.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from proxy.pgwire import PgListener, StatementRecord
from tests.pgwire.pgkit import PASSWORDS, PG_BIN, PgCluster, compiled_route, running_cluster

Start = Callable[..., Awaitable[PgListener]]


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """One throwaway PostgreSQL for the whole session."""
    if not (PG_BIN / "initdb").exists():
        pytest.skip("PostgreSQL 15 binaries not installed")
    with running_cluster() as cluster:
        yield cluster


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@pytest.fixture
async def start(pg_cluster: PgCluster) -> AsyncIterator[Start]:
    """await start(user=..., records=[...], **route overrides) -> a started PgListener
    running the route's compiled guard chain, as the proxy builds it."""
    listeners: list[PgListener] = []

    async def start_one(user: str = "app", password: str | None = None,
                        records: list[StatementRecord] | None = None,
                        environment: str = "production", client_password: str | None = None,
                        **over: Any) -> PgListener:
        spec = _merge({
            "name": "wh", "kind": "postgres", "listen": "127.0.0.1:0",
            "upstream": f"127.0.0.1:{pg_cluster.port}",
            "postgres": {"client_auth": "trust", "sslmode": "disable", "database": "shop"},
            "sql": {"dialect": "postgres", "read_only": True},
        }, over)

        async def credentials() -> tuple[str, str]:
            return user, password if password is not None else PASSWORDS[user]

        async def client_secret() -> str:
            assert client_password is not None
            return client_password

        listener = PgListener(
            compiled_route(spec), credentials, environment,
            records.append if records is not None else None,
            resolve_client_password=client_secret if client_password else None,
        )
        await listener.start()
        listeners.append(listener)
        return listener

    yield start_one
    for listener in listeners:
        await listener.close()


def proxy_dsn(listener: PgListener, **extra: str) -> str:
    parts = {"host": "127.0.0.1", "port": str(listener.port), "dbname": "shop",
             "user": "agent", "sslmode": "disable", **extra}
    return " ".join(f"{k}={v}" for k, v in parts.items())
