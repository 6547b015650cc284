"""What the PostgreSQL generators share: a DSN from `--dsn`, or a private PostgreSQL
started for the run (tests/postgres_fixture.py)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")


def run_on_postgres(description: str, work: Callable[[str], T]) -> T | None:
    """`work(dsn)` on `--dsn` or on a private cluster; None (and a message) without one."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--dsn")
    args = ap.parse_args()
    if args.dsn:
        return work(args.dsn)
    sys.path.insert(0, str(ROOT))
    from tests.postgres_fixture import private_cluster

    with private_cluster() as dsn:
        if dsn is None:
            print("no PostgreSQL binaries found", file=sys.stderr)
            return None
        return work(dsn)
