"""The PostgreSQL judge over the route's rules: read-only, tenant and writable routes."""

from __future__ import annotations

import pytest

from proxy.sql.pg.functions import Fn, classify
from proxy.sql.pg.judge import PgRules, judge
from proxy.sql.pg.parse import Name, parse

READ_ONLY = PgRules(True, True, True, False, frozenset(), frozenset(), frozenset())
TENANT = PgRules(True, True, True, True, frozenset(), frozenset(), frozenset())
WRITABLE = PgRules(False, True, True, False, frozenset(), frozenset(), frozenset())
OPEN = PgRules(False, False, False, False, frozenset(), frozenset(), frozenset())


def reason(sql: str, rules: PgRules = READ_ONLY) -> str | None:
    return judge(parse(sql), rules).reason


@pytest.mark.parametrize("sql", [
    "SELECT * FROM ONLY orders", "SELECT * FROM orders TABLESAMPLE BERNOULLI (10)",
    "TABLE orders", "SHOW work_mem", "EXPLAIN ANALYZE SELECT * FROM orders",
    "SELECT box '(1,2),(3,4)' <<| box '(0,0),(1,1)'", "SELECT txid_snapshot '10:20:10'",
    "SELECT xmlparse(content '<a/>')", "SELECT * FROM t ORDER BY a USING >",
    "SELECT 'a' SIMILAR TO 'b' ESCAPE '#'", "SELECT COLLATION FOR ('a')",
    "SELECT now(), random(), clock_timestamp(), gen_random_uuid(), pg_catalog.upper('a')",
    "SELECT sp_help FROM t",
    "SELECT txid_current_if_assigned(), pg_current_xact_id_if_assigned()",
    "SELECT count(*) FILTER (WHERE a > 1) OVER (PARTITION BY b) FROM t",
    "SELECT * FROM generate_series(1, 3), json_to_recordset('[]') AS x(a int)",
])
def test_harmless_reads_pass(sql: str) -> None:
    assert reason(sql) is None


@pytest.mark.parametrize(("sql", "why"), [
    ("EXPLAIN ANALYZE DELETE FROM orders; SELECT 1", "EXPLAIN ANALYZE executes"),
    ("EXPLAIN ANALYZE CREATE TABLE leak AS SELECT * FROM orders; SELECT 1",
     "EXPLAIN ANALYZE executes"),
    ("EXPLAIN (ANALYZE true) UPDATE t SET a = 1", "EXPLAIN ANALYZE executes"),
    ("EXPLAIN ANALYZE SELECT nextval('s')", "EXPLAIN ANALYZE executes"),
    ("EXPLAIN DELETE FROM t", "writes data"),
    ("SELECT 1; DELETE FROM t", "writes data"),
    ("SELECT txid_current()", "side effects"), ("SELECT pg_current_xact_id()", "side effects"),
    ("SELECT lowrite(0, 'x')", "side effects"), ("SELECT setseed(0.1)", "side effects"),
    ("SELECT pg_advisory_lock(1)", "side effects"),
    ("SELECT set_config('default_transaction_read_only', 'off', false)", "side effects"),
    ("SELECT pg_notify('c', 'x')", "side effects"), ("SELECT pg_sleep(1)", "side effects"),
    ("SELECT U&\"pg\\005Fsleep\"(1)", "side effects"),
    ("SELECT pg_stat_reset()", "side effects"), ("SELECT pg_terminate_backend(1)",
                                                  "side effects"),
    ("SELECT dblink('x', 'DELETE FROM t')", "side effects"),
    ("SELECT ext.dblink_exec('x')", "side effects"),
    ("SELECT query_to_xml('delete from t', true, true, '')", "runs SQL given as text"),
    ("SELECT pg_read_file('/etc/passwd')", "reads server files"),
    ("SELECT app.f(1)", "not a PostgreSQL built-in"),
    ("SELECT f(1)", "not a PostgreSQL built-in"),
    ("SELECT public.now()", "not a PostgreSQL built-in"),
    ("SELECT pg_switch_wal()", "side effects"),
    ("SELECT pg_backup_start('x')", "side effects"),
    ("SELECT 1 <<< 2", "operator <<<"), ("SELECT a OPERATOR(app.+) b FROM t", "operator app.+"),
    ("SELECT * FROM t TABLESAMPLE mine (1)", "TABLESAMPLE method"),
    ("SELECT * INTO t2 FROM t", "INTO"), ("SELECT * FROM t FOR UPDATE", "locking"),
    ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", "data-modifying"),
    ("INSERT INTO t VALUES (1)", "writes data"), ("MERGE INTO t USING s ON true "
                                                  "WHEN MATCHED THEN DELETE", "writes data"),
    ("CREATE TABLE t (a int)", "DDL"), ("GRANT SELECT ON t TO PUBLIC", "DCL"),
    ("SET default_transaction_read_only = off", "DCL"), ("BEGIN READ WRITE", "DCL"),
    ("DO $$BEGIN DELETE FROM t; END$$", "statement type do"),
    ("CALL p()", "statement type call"), ("COPY t TO STDOUT", "COPY"),
    ("COPY t FROM PROGRAM 'id'", "statement type copy"),
    ("PREPARE p AS DELETE FROM t", "DCL"), ("EXECUTE p", "DCL"),
    ("SELECT 'a' FRM t", "does not parse"), ("", "empty"),
])
def test_read_only_refusals(sql: str, why: str) -> None:
    r = reason(sql)
    assert r is not None and why in r, (sql, r)


def test_allow_by_name_bare_or_qualified() -> None:
    rules = PgRules(True, True, True, False, frozenset({"app.f", "g", "<<<"}), frozenset(),
                    frozenset())
    assert reason("SELECT app.f(1), g(2), other.g(3), 1 <<< 2", rules) is None
    assert "other.f" in (reason("SELECT other.f(1)", rules) or "")
    # the side-effect set cannot be allowed on a read-only route
    side = PgRules(True, True, True, False, frozenset({"nextval"}), frozenset(), frozenset())
    assert reason("SELECT nextval('s')", side) is not None


def test_tenant_routes_refuse_catalogs_and_table_functions() -> None:
    for sql in ["SELECT * FROM pg_stats", "SELECT * FROM pg_catalog.pg_class",
                "SELECT * FROM information_schema.columns", "SELECT * FROM pg_stat_activity",
                "SELECT * FROM pg_toast.pg_toast_1", "SELECT * FROM myfn()",
                "SELECT * FROM query_to_xml('select 1', true, true, '')",
                "EXPLAIN ANALYZE SELECT * FROM orders"]:
        assert reason(sql, TENANT) is not None, sql
        assert reason(sql, READ_ONLY) is None or "pg_" not in sql or "toast" in sql \
            or "query_to" in sql
    for sql in ["SELECT * FROM generate_series(1, 3)", "SELECT * FROM unnest(ARRAY[1])",
                "SELECT * FROM orders, jsonb_to_recordset('[]') AS x(a int)"]:
        assert reason(sql, TENANT) is None, sql
    allowed = PgRules(True, True, True, True, frozenset(), frozenset(),
                      frozenset({"pg_catalog.pg_class"}))
    assert reason("SELECT * FROM pg_catalog.pg_class", allowed) is None
    assert reason("SELECT * FROM pg_stats", allowed) is not None


def test_writable_and_open_routes() -> None:
    assert reason("INSERT INTO t VALUES (nextval('s'))", WRITABLE) is not None
    assert reason("UPDATE t SET a = 1", WRITABLE) is None
    assert reason("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", WRITABLE) is None
    assert reason("CREATE TABLE t (a int)", WRITABLE) is not None
    assert reason("SELECT * INTO t2 FROM t", WRITABLE) is not None
    assert reason("SELECT myfn()", WRITABLE) is None  # unknown functions: read-only routes
    blocked = PgRules(False, True, True, False, frozenset(), frozenset({"myfn", "x_*"}),
                      frozenset())
    assert reason("SELECT myfn(), 1", blocked) is not None
    assert reason("SELECT x_y()", blocked) is not None
    assert reason("DROP TABLE t; SELECT pg_sleep(1)", OPEN) is None


def test_read_only_flag() -> None:
    assert judge(parse("SELECT random()"), READ_ONLY).read_only
    assert not judge(parse("UPDATE t SET a = 1"), WRITABLE).read_only
    assert not judge(parse("SELECT myfn()"), WRITABLE).read_only


def test_classification() -> None:
    assert classify(Name(None, "upper")) is Fn.SAFE
    assert classify(Name("pg_catalog", "now")) is Fn.SAFE
    assert classify(Name(None, "random")) is Fn.HARMLESS
    assert classify(Name(None, "txid_current")) is Fn.SIDE_EFFECT  # STABLE in pg_proc
    assert classify(Name(None, "pg_stat_get_xact_numscans")) is Fn.HARMLESS
    assert classify(Name(None, "pg_import_system_collations")) is Fn.SIDE_EFFECT
    assert classify(Name(None, "brin_summarize_range")) is Fn.SIDE_EFFECT
    assert classify(Name("app", "upper")) is Fn.UNKNOWN
    assert classify(Name(None, "table_to_xml")) is Fn.READS_ELSEWHERE
    assert classify(Name("information_schema", "_pg_truetypid")) is Fn.SAFE
