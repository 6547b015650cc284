"""SQL guard speed over the TPC-H and TPC-DS queries: microseconds per judge() call,
cold (empty caches: tokenize + parse + judge + rewrite), warm (same text again), the
first text of the shape with new literals (every literal changed: a split, or a
tokenize, and the shape's regex compiled once) and a later one (the steady state of an
orchestrator resending a query shape: one regex match, no parse).

    .venv/bin/python bench/sql_guard.py [--rounds 5]

Two routes: `plain` (read-only postgres) and `tenant` (read-only, tenant filter on the
big tables and max_rows, so every query is rewritten).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from sqlglot.dialects.dialect import Dialect
from sqlglot.tokens import TokenType

from proxy.config.schema import SqlSpec
from proxy.sql.engine import COMPILED, SqlGuard
from proxy.sql.policy import SqlPolicy

DATA = Path(__file__).resolve().parents[1] / "tests" / "sql" / "data"
TENANT_TABLES = [
    "lineitem",
    "orders",
    "customer",
    "store_sales",
    "web_sales",
    "catalog_sales",
    "customer_address",
    "item",
]


def relit(sql: str, n: int) -> str:
    """The same query with every string/number literal but LIMIT's changed."""
    out, cur, prev = [], 0, None
    for tok in Dialect.get_or_raise("postgres").tokenize(sql):
        after_limit, prev = prev is TokenType.LIMIT, tok.token_type
        if after_limit:
            continue  # LIMIT n is part of the cache key (compared with max_rows)
        if tok.token_type is TokenType.NUMBER and tok.text.isdigit():
            out += [sql[cur : tok.start], str(int(tok.text) + n)]
            cur = tok.end + 1
        elif tok.token_type is TokenType.STRING and sql[tok.start] == "'":
            out += [sql[cur : tok.start], f"'{tok.text}{n}'"]
            cur = tok.end + 1
    out.append(sql[cur:])
    return "".join(out)


def stats(samples: list[float]) -> tuple[float, float]:
    samples = sorted(samples)
    p99 = samples[min(len(samples) - 1, round(0.99 * (len(samples) - 1)))]
    return statistics.median(samples), p99


def measure(guard: SqlGuard, queries: list[str], rounds: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"cold": [], "warm": [], "new literals 1st": [],
                                   "new literals": []}
    clock = time.perf_counter
    for r in range(rounds):
        for sql in queries:
            first, later = relit(sql, 2 * r + 1), relit(sql, 2 * r + 2)
            guard.clear()
            t0 = clock()
            d = guard.judge(sql, "tenant-42")
            t1 = clock()
            guard.judge(sql, "tenant-42")
            t2 = clock()
            guard.judge(first, "tenant-7")
            t3 = clock()
            guard.judge(later, "tenant-7")
            t4 = clock()
            assert d.code is None, d.reason
            out["cold"].append((t1 - t0) * 1e6)
            out["warm"].append((t2 - t1) * 1e6)
            out["new literals 1st"].append((t3 - t2) * 1e6)
            out["new literals"].append((t4 - t3) * 1e6)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    suites: dict[str, list[str]] = {}
    for path in sorted(DATA.glob("tpc*.jsonl")):
        for line in path.read_text().splitlines():
            q = json.loads(line)
            if not q["id"].endswith("-opt"):
                suites.setdefault(q["suite"], []).append(q["sql"])
    routes = {
        "plain": SqlSpec(dialect="postgres"),
        "tenant": SqlSpec(
            dialect="postgres",
            max_rows=1000,
            tenant={"column": "tenant_id", "tables": TENANT_TABLES},
        ),
    }
    print(f"sqlglotc compiled build active: {COMPILED}")
    print(f"{'suite':8} {'route':7} {'case':17} {'median us':>10} {'p99 us':>10} {'n':>5}")
    for suite, queries in suites.items():
        for route, spec in routes.items():
            guard = SqlGuard(SqlPolicy.from_spec(spec))
            measure(guard, queries[:3], 1)  # warm up the interpreter
            for case, samples in measure(guard, queries, args.rounds).items():
                med, p99 = stats(samples)
                print(f"{suite:8} {route:7} {case:17} {med:10.1f} {p99:10.1f} {len(samples):5}")


if __name__ == "__main__":
    main()
