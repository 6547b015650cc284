"""Fixtures for the wire-protocol tests (helpers live in pgkit.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pgwire.pgkit import PG_BIN, PgCluster, running_cluster


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """One throwaway PostgreSQL for the whole session."""
    if not (PG_BIN / "initdb").exists():
        pytest.skip("PostgreSQL 15 binaries not installed")
    with running_cluster() as cluster:
        yield cluster
