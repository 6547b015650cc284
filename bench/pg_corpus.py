"""The PostgreSQL corpus (tests/sql/data/pg_corpus/corpus.jsonl, ground truth from
PostgreSQL 15 in a read-only transaction) judged on a read-only postgres route with
default rules: libpg_query's judge (now) next to sqlglot's (before, the same engine with
the PostgreSQL hook off), plus cold judge time per statement.

    PYTHONPATH=$PWD .venv/bin/python bench/pg_corpus.py [--show N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from unittest import mock

from proxy.config.schema import SqlSpec
from proxy.sql.engine import SqlGuard
from proxy.sql.pg import hook as pg_hook
from proxy.sql.policy import SqlPolicy

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "sql" / "data" / "pg_corpus" / \
    "corpus.jsonl"


def load() -> list[dict]:
    return [json.loads(line) for line in CORPUS.read_text().splitlines() if line.strip()]


def score(rows: list[dict], make: Callable[[], SqlGuard]) -> dict[str, list[dict]]:
    """Rows by outcome: refused reads, allowed writes / side effects (built-ins only, and
    through user code or views), allowed clear writes; plus cold times (us)."""
    out: dict[str, list] = {"reads": [], "refused_reads": [], "effects": [],
                            "allowed_effects": [], "user_effects": [], "allowed_user": [],
                            "clear": [], "allowed_clear": [], "times": []}
    for row in rows:
        g = make()
        t = time.perf_counter()
        d = g.judge(row["sql"], None)
        out["times"].append((time.perf_counter() - t) * 1e6)
        allowed = d.code is None
        row = {**row, "reason": d.reason}
        if row["label"] == "read" and not row["user_code"]:
            out["reads"].append(row)
            if not allowed:
                out["refused_reads"].append(row)
        if row["label"] in ("write", "side_effect"):
            key = "user_effects" if row["user_code"] else "effects"
            out[key].append(row)
            if allowed:
                out["allowed_user" if row["user_code"] else "allowed_effects"].append(row)
        if row["clear_write"]:
            out["clear"].append(row)
            if allowed:
                out["allowed_clear"].append(row)
    return out


def guard() -> SqlGuard:
    return SqlGuard(SqlPolicy.from_spec(SqlSpec(dialect="postgres")))


def sqlglot_guard() -> SqlGuard:
    with mock.patch.object(pg_hook, "judge_for", return_value=None):
        return guard()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--show", type=int, default=0, help="list N rows of each miss")
    args = ap.parse_args()
    rows = load()
    now, before = score(rows, guard), score(rows, sqlglot_guard)
    print(f"{len(rows)} statements; labels: " + ", ".join(
        f"{k} {sum(r['label'] == k for r in rows)}"
        for k in ("read", "write", "side_effect", "invalid")))
    print(f"{'':58} {'sqlglot':>14} {'libpg_query':>14}")

    def line(title: str, key: str, of: str) -> None:
        def cell(res: dict) -> str:
            n, total = len(res[key]), len(res[of])
            return f"{n} ({100 * n / max(1, total):.2f}%)"
        print(f"{title + f' (of {len(now[of])})':58} {cell(before):>14} {cell(now):>14}")

    line("harmless reads refused (built-in functions)", "refused_reads", "reads")
    line("writes / side effects allowed (built-ins)", "allowed_effects", "effects")
    line("writes / side effects allowed (user functions, views)", "allowed_user",
         "user_effects")
    line("clear writes allowed", "allowed_clear", "clear")
    for name, res in (("sqlglot", before), ("libpg_query", now)):
        t = sorted(res["times"])
        print(f"cold judge, {name}: median {statistics.median(t):.0f} us, "
              f"p99 {t[int(0.99 * (len(t) - 1))]:.0f} us")
    for key in ("refused_reads", "allowed_effects", "allowed_user", "allowed_clear"):
        for row in now[key][: args.show]:
            print(f"  {key}: {row['reason'] or '-'} | {row['sql'][:100]!r}")


if __name__ == "__main__":
    main()
