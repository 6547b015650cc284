"""The PostgreSQL corpus (scripts/gen_pg_corpus.py: ground truth from PostgreSQL 15 in a
read-only transaction) on a read-only postgres route with default rules."""

from __future__ import annotations

import json
from pathlib import Path

from proxy.config.schema import SqlSpec
from proxy.sql.engine import SqlGuard
from proxy.sql.policy import SqlPolicy

CORPUS = Path(__file__).resolve().parents[1] / "data" / "pg_corpus" / "corpus.jsonl"
ROWS = [json.loads(line) for line in CORPUS.read_text().splitlines() if line.strip()]


def _allowed(rows: list[dict]) -> list[tuple[dict, str]]:
    g = SqlGuard(SqlPolicy.from_spec(SqlSpec(dialect="postgres")))
    return [(r, d.reason) for r in rows for d in [g.judge(r["sql"], None)]
            if d.code is None]


def test_corpus_is_big_and_labelled() -> None:
    labels = {r["label"] for r in ROWS}
    assert len(ROWS) >= 3000 and labels == {"read", "write", "side_effect", "invalid"}
    assert sum(r["label"] == "read" for r in ROWS) >= 2000


def test_harmless_reads_refused_at_most_half_a_percent() -> None:
    reads = [r for r in ROWS if r["label"] == "read" and not r["user_code"]]
    allowed = {id(r) for r, _ in _allowed(reads)}
    refused = [r["sql"][:80] for r in reads if id(r) not in allowed]
    assert len(refused) <= 0.005 * len(reads), refused


def test_no_write_or_side_effect_is_allowed() -> None:
    effects = [r for r in ROWS if r["label"] in ("write", "side_effect") and not r["user_code"]]
    assert len(effects) >= 1000
    assert [r["sql"][:80] for r, _ in _allowed(effects)] == []


def test_no_clear_write_is_allowed() -> None:
    clear = [r for r in ROWS if r["clear_write"]]
    assert [r["sql"][:80] for r, _ in _allowed(clear)] == []


def test_user_code_is_refused_unless_only_a_view_hides_it() -> None:
    """User functions and operators are refused by name; a view's body is in the catalog
    only (the one case the text cannot show)."""
    effects = [r for r in ROWS if r["label"] in ("write", "side_effect") and r["user_code"]]
    assert [r["sql"] for r, _ in _allowed(effects)] == ["SELECT * FROM shop.v_tx"]
