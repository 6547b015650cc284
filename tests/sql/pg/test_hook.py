"""The SQL engine on postgres routes: libpg_query decides, sqlglot only rewrites, and
the fast paths give the reference mode's verdicts."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.config.schema import SqlSpec
from proxy.model.errors import ErrorCode
from proxy.sql.digest import fast_digest
from proxy.sql.engine import SqlGuard
from proxy.sql.policy import SqlPolicy
from tests.sql.test_engine import TPC

TENANT = {"column": "tenant_id", "tables": ["orders", "customers", "lineitem", "customer",
                                            "store_sales", "web_sales", "catalog_sales",
                                            "customer_address", "item"]}
SPECS = {
    "plain": {},
    "capped": {"max_rows": 100},
    "tenant": {"tenant": TENANT, "max_rows": 1000},
    "allow": {"functions": {"allow": ["app.audit", "<<<"]}},
    "write": {"read_only": False},
}


def guard(name: str, fast: bool | None = None) -> SqlGuard:
    spec = SqlSpec(dialect="postgres", **SPECS[name])  # type: ignore[arg-type]
    return SqlGuard(SqlPolicy.from_spec(spec), fast=fast)


def test_false_refusals_of_issue_22_pass_unchanged() -> None:
    g = guard("plain")
    assert g.parser.startswith("libpg_query")
    for sql in ["SELECT * FROM ONLY orders", "SELECT * FROM orders TABLESAMPLE BERNOULLI (10)",
                "TABLE orders", "SHOW search_path", "SELECT sp_help FROM t",
                "SELECT 1 <<| 2", "SELECT id FROM t ORDER BY id USING >"]:
        d = g.judge(sql, None)
        assert d.code is None and d.sql == sql and not d.rewritten, (sql, d.reason)


def test_stacked_explain_is_judged_whole() -> None:
    for name in ("plain", "tenant"):
        g = guard(name)
        for sql in ["EXPLAIN ANALYZE DELETE FROM orders; SELECT 1",
                    "EXPLAIN ANALYZE CREATE TABLE leak AS SELECT * FROM orders; SELECT 1",
                    "EXPLAIN SELECT 1; DELETE FROM orders", "SELECT 1; SELECT 2"]:
            assert g.judge(sql, "t1").code is ErrorCode.SQL_BLOCKED, (name, sql)


def test_functions_by_name() -> None:
    plain, allow = guard("plain"), guard("allow")
    for sql in ["SELECT app.audit(1)", "SELECT 1 <<< 2"]:
        assert plain.judge(sql, None).code is ErrorCode.SQL_BLOCKED
        assert allow.judge(sql, None).code is None
    assert "sql.functions.allow" in plain.judge("SELECT app.audit(1)", None).reason
    assert allow.judge("SELECT app.other(1)", None).code is ErrorCode.SQL_BLOCKED


def test_every_tpc_query_is_scoped_on_the_tenant_route() -> None:
    g = guard("tenant")
    for q in TPC:
        d = g.judge(q["sql"], "t1")
        if "ARRAY_ANY(" in q["sql"]:  # sqlglot's rendering; not PostgreSQL
            assert d.code is ErrorCode.SQL_BLOCKED
            continue
        assert d.code is None, (q["id"], d.reason)


def test_fast_path_needs_postgres_lexer_agreement() -> None:
    """A quote in a comment: the split sees a literal, PostgreSQL a comment. The shape
    never takes the fast path, so a variant with a write behind the comment is parsed."""
    g = guard("plain")
    safe = "SELECT 1 /* 'x' */, 2"
    assert g.judge(safe, None).code is None
    fd = fast_digest(safe)
    assert fd is not None
    hostile = "SELECT 1 /* '*/; DELETE FROM t; --' */, 2"
    assert g.judge(hostile, None).code is ErrorCode.SQL_BLOCKED
    assert g.fast_hits == 0


def test_nul_is_refused_on_every_path() -> None:
    g = guard("plain")
    g.judge("SELECT 'a' FROM t WHERE b = 'c'", None)
    g.judge("SELECT 'a' FROM t WHERE b = 'd'", None)  # the shape is learnt
    d = g.judge("SELECT 'a' FROM t WHERE b = '\x00'; DELETE FROM t; --'", None)
    assert d.code is ErrorCode.SQL_BLOCKED


SHAPES = [
    "SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.cid "
    "WHERE o.total > {n} AND c.name = '{s}' LIMIT {n}",
    "SELECT count(*) FROM orders WHERE note LIKE '{s}' OR total = {n}.5",
    "EXPLAIN SELECT * FROM orders WHERE id = {n} AND x = '{s}'",
    "SELECT * FROM pg_stats WHERE attname = '{s}' AND n = {n}",
    "SELECT id, txid_current() FROM orders WHERE id = {n}",
    "WITH d AS (DELETE FROM orders WHERE id = {n} RETURNING *) SELECT '{s}' FROM d",
    "SELECT {n} /* '{s}' */ , '{s}' FROM orders",
    "SELECT * FROM orders WHERE id = {n}; SELECT '{s}'",
    "EXPLAIN (ANALYZE {n}) UPDATE orders SET note = '{s}'",
    "EXPLAIN (ANALYZE {n}) SELECT * FROM orders WHERE note = '{s}'",
]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shape=st.sampled_from(SHAPES), route=st.sampled_from(sorted(SPECS)),
       n=st.integers(0, 10**9), s=st.text(st.characters(blacklist_categories=("Cs",)),
                                           max_size=12))
def test_property_fast_paths_equal_reference_mode(shape: str, route: str, n: int,
                                                   s: str) -> None:
    """Fast paths on (digest, split, shape regex, normalized-text cache) against the
    reference mode (engine.REFERENCE: every text parsed)."""
    g = FAST[route]
    for warm in (1, 2):
        g.judge(shape.format(n=warm, s="a"), "t1")
    sql = shape.format(n=n, s=s)
    assert g.judge(sql, "t9") == guard(route, fast=False).judge(sql, "t9"), sql


FAST = {name: guard(name) for name in SPECS}


def test_reference_switch_turns_the_fast_paths_off(monkeypatch) -> None:
    from proxy.sql import engine

    monkeypatch.setattr(engine, "REFERENCE", True)
    g = guard("plain")
    for n in range(3):
        assert g.judge(f"SELECT * FROM t WHERE id = {n}", None).code is None
    assert g.fast_hits == 0 and g._pg is not None and g._pg.parses == 3
    monkeypatch.setattr(engine, "REFERENCE", False)
    g = guard("plain")
    for n in range(3):
        g.judge(f"SELECT * FROM t WHERE id = {n}", None)
    assert g.fast_hits == 2 and g._pg is not None and g._pg.parses == 1
