"""The verdict cache (keyed by libpg_query's normalized text) and the rewrite check."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.sql.pg.guard import PgJudge, rewrite_is_faithful
from proxy.sql.pg.judge import PgRules

RULES = PgRules(True, True, True, True, frozenset(), frozenset(), frozenset())
M = "cwtenantabc"


def test_schema_names_are_part_of_the_cache_key() -> None:
    """libpg_query's fingerprint gives s.t and u.t one value; the cache must not."""
    j = PgJudge(RULES)
    assert j.judge("SELECT * FROM public.tables").reason is None
    assert j.judge("SELECT * FROM information_schema.tables").reason is not None
    assert j.judge("SELECT public.lower('a')").reason is not None
    assert j.judge("SELECT pg_catalog.lower('a')").reason is None


def test_new_constants_reuse_the_verdict() -> None:
    j = PgJudge(RULES)
    j.judge("SELECT * FROM t WHERE a = 1 AND b = 'x'")
    j.judge("SELECT * FROM t WHERE a = 2 AND b = E'y\\'z'")
    assert j.parses == 1


PIECES = ["SELECT ", "a", "1", "'x'", "E'y\\''", "$$z$$", " FROM ", "t", "s.t", "pg_stats",
          "information_schema.tables", " WHERE ", "f(1)", "pg_sleep(1)", "app.f()", "=", ",",
          "(", ")", ";", " DELETE FROM t", " FOR UPDATE", "--c\n", "/* ' */", "EXPLAIN ",
          "ANALYZE ", "U&\"pg\\005Fsleep\"(1)", "<<<", "<<|", " LIMIT 5", "\x00"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.lists(st.sampled_from(PIECES), min_size=1, max_size=12), min_size=1,
                max_size=6))
def test_property_cached_equals_fresh(texts: list[list[str]]) -> None:
    cached, fresh = PgJudge(RULES), PgJudge(RULES, cached=False)
    for pieces in texts:
        sql = "".join(pieces)
        assert cached.judge(sql) == fresh.judge(sql), sql


def test_faithful_rewrite_is_accepted() -> None:
    before = "SELECT o.id FROM orders o JOIN items ON true WHERE o.a = 1"
    after = (f"SELECT o.id FROM (SELECT * FROM orders WHERE tenant_id = '{M}') AS o "
             "JOIN items ON true WHERE o.a = 1 LIMIT 10")
    assert rewrite_is_faithful(before, after, "tenant_id", M, 10)
    bare = f"SELECT * FROM (SELECT * FROM orders WHERE tenant_id = '{M}') AS orders"
    assert rewrite_is_faithful("SELECT * FROM orders", bare, "tenant_id", M, None)
    dml = f"DELETE FROM orders WHERE (a = 1) AND orders.tenant_id = '{M}'"
    assert rewrite_is_faithful("DELETE FROM orders WHERE a = 1", dml, "tenant_id", M, None)
    assert rewrite_is_faithful("DELETE FROM orders",
                               f"DELETE FROM orders WHERE orders.tenant_id = '{M}'",
                               "tenant_id", M, 10)
    wrapped = "SELECT * FROM (SELECT a FROM t LIMIT 50) AS _cw_limited LIMIT 10"
    assert rewrite_is_faithful("SELECT a FROM t LIMIT 50", wrapped, None, M, 10)


def test_unfaithful_rewrites_are_refused() -> None:
    src = "SELECT id FROM orders WHERE a = 1"
    wrap = f"(SELECT * FROM orders WHERE tenant_id = '{M}') AS orders"
    for bad in [
        f"SELECT id FROM {wrap} WHERE a = 1 OR true",  # changed predicate
        f"SELECT id FROM {wrap} WHERE a = 1; DELETE FROM orders",  # stacked
        "SELECT id FROM orders WHERE a = 1",  # nothing scoped, yet a marker was expected
        f"SELECT id FROM (SELECT * FROM orders WHERE tenant_id = '{M}' OR true) AS orders "
        "WHERE a = 1",
        f"SELECT id FROM (SELECT * FROM orders WHERE tenant_id <> '{M}') AS orders WHERE a = 1",
        f"SELECT id FROM {wrap} WHERE a = '{M}'",  # a marker the undo cannot account for
        f"SELECT id FROM {wrap} WHERE a = 1 LIMIT 11",  # a cap above max_rows
        f"SELECT id FROM {wrap} -- ' WHERE a = 1",  # PostgreSQL reads a comment
        f"SELECT id FROM {wrap} WHERE a = 1 LIMIT 5 +",  # does not parse
    ]:
        assert not rewrite_is_faithful(src, bad, "tenant_id", M, 10), bad
    assert not rewrite_is_faithful(src, f"SELECT id FROM {wrap} WHERE a = 1", "tenant_id",
                                   M, 10)  # the cap is missing


def test_every_tenant_reference_needs_a_predicate() -> None:
    tables = frozenset({"orders"})
    src = "SELECT * FROM orders a JOIN orders b ON true"
    one = (f"SELECT * FROM (SELECT * FROM orders WHERE tenant_id = '{M}') AS a "
           "JOIN orders b ON true")
    assert rewrite_is_faithful(src, one, "tenant_id", M, None)  # structure alone: fine
    assert not rewrite_is_faithful(src, one, "tenant_id", M, None, tables)
    both = one.replace("JOIN orders b", f"JOIN (SELECT * FROM orders WHERE tenant_id = '{M}')"
                       " AS b")
    assert rewrite_is_faithful(src, both, "tenant_id", M, None, tables)
    # a CTE named like the table: the rewrite's scoping decides which reference is which
    cte = "WITH orders AS (SELECT 1) SELECT * FROM orders"
    assert rewrite_is_faithful(cte, cte, "tenant_id", M, None, tables)
    ins = "INSERT INTO orders (id, tenant_id) VALUES (1, 't1')"
    assert rewrite_is_faithful(ins, ins, "tenant_id", M, None, tables)
