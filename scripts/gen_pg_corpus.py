# ruff: noqa: E501  (the statements below are data: one SQL statement a line)
"""Build tests/sql/data/pg_corpus/corpus.jsonl: PostgreSQL statements with ground truth
from running each one on a real PostgreSQL inside a read-only transaction.

    PYTHONPATH=$PWD .venv/bin/python scripts/gen_pg_corpus.py [--dsn DSN]

Sources: the SELECT bodies of PostgreSQL's own system and information_schema views
(real catalog queries), the DDL of the contrib extension scripts, the TPC-H queries,
and generated statements over a small shop schema (analytics with built-in functions of
every family, exotic syntax, writes of every kind, side-effect calls, user functions).

Labels:
- read: ran without error, no transaction id assigned, no advisory lock, sequence or
  setting changed;
- write: SQLSTATE 25006 (read-only transaction) or a transaction id was assigned;
- side_effect: ran, but changed a sequence, setting or lock, or is a call PostgreSQL
  allows in a read-only transaction although it acts (notify, signals, stats resets,
  sleeps, large objects: tagged by the generator, `declared`);
- invalid: any other error (PostgreSQL rejects it: no verdict is right or wrong).
`clear_write` marks statements that are writes by kind (DML, DDL, DCL), whatever they did.
"""

from __future__ import annotations

import glob
import json
import random
import re
import sys
from pathlib import Path

import psycopg
from pg_cluster import run_on_postgres
from pglast import parser as pg

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "sql" / "data" / "pg_corpus" / "corpus.jsonl"
SHARE = Path("/usr/share/postgresql")

SCHEMA = """
CREATE SCHEMA shop;
CREATE SCHEMA app;
SET search_path = shop, public;
CREATE SEQUENCE shop.invoice_seq;
CREATE TABLE shop.accounts (id int PRIMARY KEY, name text, email text, tenant_id text,
  created_at timestamptz, tags text[], profile jsonb, spot point, ip inet, score float8,
  doc xml, body tsvector);
CREATE TABLE shop.invoices (id int PRIMARY KEY, account_id int, amount numeric(12,2),
  status text, placed_at timestamptz, due date, tenant_id text, note text, lines jsonb,
  period tstzrange, box box);
CREATE TABLE shop.products (id int PRIMARY KEY, name text, price numeric, category text,
  attrs text);
CREATE TABLE shop.events (id bigint, account_id int, kind text, at timestamptz,
  payload json, tenant_id text);
CREATE TABLE shop.tree (id int, parent int, label text);
CREATE VIEW shop.v_tx AS SELECT pg_current_xact_id() AS xid;
CREATE FUNCTION app.f_write(int) RETURNS int LANGUAGE sql AS
  'INSERT INTO shop.events (id) VALUES ($1) RETURNING 1';
CREATE FUNCTION app.f_read(int) RETURNS int LANGUAGE sql STABLE AS 'SELECT $1 + 1';
CREATE FUNCTION app.f_ddl() RETURNS int LANGUAGE plpgsql AS
  'BEGIN CREATE TABLE shop.leak AS SELECT * FROM shop.accounts; RETURN 1; END';
CREATE FUNCTION app.f_grant() RETURNS int LANGUAGE plpgsql AS
  'BEGIN GRANT SELECT ON shop.accounts TO PUBLIC; RETURN 1; END';
CREATE OPERATOR app.<<< (LEFTARG = int, RIGHTARG = int, FUNCTION = int4pl);
INSERT INTO shop.accounts SELECT g, 'n' || g, g || '@x.org', 't' || (g % 2),
  now() - g * interval '1 day', ARRAY['a', 'b'], jsonb_build_object('k', g),
  point(g, g), '10.0.0.1', g / 3.0, '<a>1</a>', to_tsvector('hello world')
  FROM generate_series(1, 20) g;
INSERT INTO shop.invoices SELECT g, g % 20 + 1, g * 1.5, CASE WHEN g % 2 = 0 THEN 'open'
  ELSE 'paid' END, now() - g * interval '1 hour', current_date + g, 't' || (g % 2),
  'note ' || g, jsonb_build_array(g, g + 1), tstzrange(now(), now() + interval '1 day'),
  box(point(0, 0), point(g, g)) FROM generate_series(1, 50) g;
INSERT INTO shop.products SELECT g, 'p' || g, g * 2, 'c' || (g % 3), NULL
  FROM generate_series(1, 10) g;
INSERT INTO shop.events SELECT g, g % 20 + 1, 'k' || (g % 4), now(), '{"a": 1}', 't1'
  FROM generate_series(1, 30) g;
INSERT INTO shop.tree VALUES (1, NULL, 'root'), (2, 1, 'a'), (3, 1, 'b'), (4, 2, 'c');
ANALYZE;
"""
TPCH_SCHEMA = """
CREATE TABLE public.region (r_regionkey int, r_name char(25), r_comment varchar(152));
CREATE TABLE public.nation (n_nationkey int, n_name char(25), n_regionkey int,
  n_comment varchar(152));
CREATE TABLE public.part (p_partkey int, p_name varchar(55), p_mfgr char(25),
  p_brand char(10), p_type varchar(25), p_size int, p_container char(10),
  p_retailprice numeric(15,2), p_comment varchar(23));
CREATE TABLE public.supplier (s_suppkey int, s_name char(25), s_address varchar(40),
  s_nationkey int, s_phone char(15), s_acctbal numeric(15,2), s_comment varchar(101));
CREATE TABLE public.partsupp (ps_partkey int, ps_suppkey int, ps_availqty int,
  ps_supplycost numeric(15,2), ps_comment varchar(199));
CREATE TABLE public.customer (c_custkey int, c_name varchar(25), c_address varchar(40),
  c_nationkey int, c_phone char(15), c_acctbal numeric(15,2), c_mktsegment char(10),
  c_comment varchar(117));
CREATE TABLE public.orders (o_orderkey int, o_custkey int, o_orderstatus char(1),
  o_totalprice numeric(15,2), o_orderdate date, o_orderpriority char(15),
  o_clerk char(15), o_shippriority int, o_comment varchar(79));
CREATE TABLE public.lineitem (l_orderkey int, l_partkey int, l_suppkey int,
  l_linenumber int, l_quantity numeric(15,2), l_extendedprice numeric(15,2),
  l_discount numeric(15,2), l_tax numeric(15,2), l_returnflag char(1),
  l_linestatus char(1), l_shipdate date, l_commitdate date, l_receiptdate date,
  l_shipinstruct char(25), l_shipmode char(10), l_comment varchar(44));
"""

# Built-in expressions by family, over accounts a / invoices i (joined).
EXPRS = """
upper(a.name) | lower(a.email) | initcap(a.name) | length(a.name) | char_length(a.email)
| octet_length(a.name) | substr(a.email, 2, 3) | substring(a.email from 2 for 3)
| substring(a.email from '@(.*)$') | position('@' in a.email) | strpos(a.email, '@')
| overlay(a.name placing 'xx' from 2 for 1) | trim(both 'x' from a.name) | ltrim(a.name)
| rtrim(a.name, 'n') | btrim(a.name) | lpad(a.name, 10, '*') | rpad(a.name, 10)
| replace(a.email, '@', ' at ') | translate(a.name, 'n', 'm') | reverse(a.name)
| repeat(a.name, 2) | split_part(a.email, '@', 2) | left(a.name, 2) | right(a.name, 2)
| concat(a.name, '-', a.id) | concat_ws(',', a.name, a.email) | format('%s:%s', a.id, a.name)
| quote_ident(a.name) | quote_literal(a.name) | quote_nullable(a.note_missing_)
| md5(a.name) | sha256(convert_to(a.name, 'UTF8')) | encode(sha224('x'::bytea), 'hex')
| regexp_replace(a.email, '[0-9]+', '#', 'g') | regexp_match(a.email, '(\\w+)@')
| regexp_like(a.email, 'x') | a.email ~ '^n' | a.email ~* 'X' | a.email !~ 'z'
| a.name LIKE 'n%' | a.name ILIKE 'N%' | a.name SIMILAR TO 'n[0-9]+'
| a.name SIMILAR TO 'n#%' ESCAPE '#' | a.name NOT LIKE '%z' | starts_with(a.name, 'n')
| to_hex(a.id) | ascii(a.name) | chr(65) | string_agg_missing_(a.name)
| a.name || '-' || a.email | a.name COLLATE "C" < 'z' | COLLATION FOR (a.name)
| to_char(a.created_at, 'YYYY-MM-DD') | to_char(i.amount, 'FM999.00')
| to_date('2024-01-02', 'YYYY-MM-DD') | to_timestamp(1700000000) | to_number('12.5', '99.9')
| date_trunc('month', a.created_at) | date_part('year', a.created_at)
| extract(epoch from a.created_at) | extract(dow from i.due) | age(a.created_at)
| age(now(), a.created_at) | now() | current_date | current_time | current_timestamp
| localtimestamp | localtime | clock_timestamp() | statement_timestamp()
| transaction_timestamp() | timeofday() | a.created_at + interval '1 day'
| i.due - 7 | i.due + interval '1 month' | make_date(2024, 1, 2) | make_interval(days => 3)
| make_timestamp(2024, 1, 2, 3, 4, 5) | justify_days(interval '40 days')
| justify_hours(interval '30 hours') | isfinite(i.due) | date_bin('15 minutes', a.created_at, timestamptz '2001-01-01')
| (a.created_at, interval '1 day') OVERLAPS (now(), interval '2 days')
| a.created_at AT TIME ZONE 'UTC' | timezone('UTC', a.created_at) | i.due::timestamp
| abs(i.amount) | ceil(i.amount) | floor(i.amount) | round(i.amount, 1) | trunc(i.amount)
| sqrt(i.amount) | cbrt(i.amount::float8) | power(i.amount, 2) | exp(1) | ln(i.amount + 1)
| log(i.amount + 1) | log10(i.amount + 1) | mod(a.id, 3) | a.id % 3 | sign(i.amount)
| pi() | degrees(1) | radians(90) | sin(1) | cos(1) | tan(1) | atan2(1, 2) | gcd(a.id, 6)
| lcm(a.id, 4) | factorial(5) | width_bucket(i.amount, 0, 100, 10) | random()
| random() < 2 | div(a.id, 2) | scale(i.amount) | greatest(a.id, 3) | least(a.id, 3)
| coalesce(a.email, 'none') | nullif(a.id, 1) | CASE WHEN a.id > 3 THEN 'x' ELSE 'y' END
| a.id BETWEEN 1 AND 3 | a.id IN (1, 2, 3) | a.id IS DISTINCT FROM 2 | num_nonnulls(a.id, NULL)
| a.profile -> 'k' | a.profile ->> 'k' | a.profile @> '{"k": 1}' | a.profile ? 'k'
| a.profile ?| ARRAY['k'] | a.profile #> '{k}' | jsonb_typeof(a.profile)
| jsonb_pretty(a.profile) | jsonb_set(a.profile, '{k}', '2') | a.profile || '{"z": 1}'
| jsonb_path_query_array(a.profile, '$.k') | jsonb_path_exists(a.profile, '$.k')
| a.profile @? '$.k' | jsonb_strip_nulls(a.profile) | jsonb_build_object('a', a.id)
| json_build_array(a.id, a.name) | to_json(a.name) | to_jsonb(a.id) | row_to_json(a)
| jsonb_array_length(i.lines) | i.lines -> 0 | json_object_keys_missing_(a.profile)
| a.profile - 'k' | jsonb_insert(a.profile, '{z}', '1') | a.profile::text::json
| array_length(a.tags, 1) | cardinality(a.tags) | a.tags[1] | a.tags || 'c'::text
| array_append(a.tags, 'c') | array_prepend('z', a.tags) | array_cat(a.tags, a.tags)
| array_position(a.tags, 'b') | array_remove(a.tags, 'a') | array_to_string(a.tags, ',')
| string_to_array(a.email, '@') | a.tags @> ARRAY['a'] | a.tags && ARRAY['b']
| ARRAY[a.id, 2] | array_dims(a.tags) | array_upper(a.tags, 1) | 'a' = ANY(a.tags)
| trim_array(a.tags, 1) | array_fill(0, ARRAY[2])
| a.spot <-> point(0, 0) | a.spot <@ box '((0,0),(100,100))' | box '((0,0),(1,1))' && i.box
| i.box @> point(1, 1) | area(i.box) | center(i.box) | box '(1,2),(3,4)' <<| box '(0,0),(1,1)'
| box '(1,2),(3,4)' |&> box '(0,0),(1,1)' | box '(1,2),(3,4)' ~= box '(1,2),(3,4)'
| lseg '((0,0),(1,1))' ## point '(2,2)' | circle '((0,0),2)' @> point '(1,1)'
| polygon '((0,0),(1,1),(1,0))' ?# lseg '((0,0),(2,2))' | point '(1,1)' ?- point '(2,1)'
| a.ip << inet '10.0.0.0/8' | host(a.ip) | masklen(a.ip) | network(a.ip) | family(a.ip)
| inet '192.168.1.5' & inet '255.255.255.0' | abbrev(cidr '10.1.0.0/16')
| to_tsvector('english', a.name) @@ to_tsquery('english', 'n') | a.body @@ 'hello'::tsquery
| ts_rank(a.body, to_tsquery('hello')) | plainto_tsquery('hello world')
| websearch_to_tsquery('hello -x') | ts_headline('hello world', to_tsquery('hello'))
| setweight(a.body, 'A') | length(a.body) | numnode(to_tsquery('a & b'))
| xmlelement(name x, a.name) | xmlforest(a.id, a.name) | xmlconcat(a.doc, a.doc)
| xpath('/a/text()', a.doc) | xmlparse(content '<b>1</b>') | xmlserialize(content a.doc as text)
| xmlexists('/a' PASSING BY VALUE a.doc) | xml_is_well_formed('<a/>') | a.doc IS DOCUMENT
| i.period @> now() | lower(i.period) | upper_inf(i.period) | isempty(i.period)
| int4range(1, 10) @> a.id | int4range(1, 5) * int4range(3, 8) | range_merge(int4range(1,2), int4range(5,6))
| int4multirange(int4range(1, 3)) | daterange(i.due, i.due + 3) -|- daterange(i.due + 3, i.due + 5)
| gen_random_uuid() | uuid_in_missing_('x') | md5(random()::text) | pg_typeof(a.id)
| current_user | session_user | current_role | current_schema | current_schemas(true)
| current_database() | current_catalog | user | version() | pg_backend_pid()
| inet_client_addr() | pg_postmaster_start_time() | current_setting('work_mem')
| has_table_privilege('shop.accounts', 'SELECT') | pg_has_role('postgres', 'member')
| to_regclass('shop.accounts') | 'shop.accounts'::regclass | pg_get_viewdef('shop.v_tx')
| pg_relation_size('shop.accounts') | pg_total_relation_size('shop.accounts')
| pg_size_pretty(1024::bigint) | obj_description('shop.accounts'::regclass)
| col_description('shop.accounts'::regclass, 1) | format_type(23, NULL)
| pg_get_constraintdef(0) | txid_current_snapshot() | pg_current_snapshot()
| txid_current_if_assigned() | pg_current_xact_id_if_assigned() | currval_missing_(1)
| num_nulls(a.email) | a.id::text | CAST(a.id AS numeric) | a.name::varchar(3)
| U&"a"."id" | U&'d\\0061t\\+000061' | E'a\\tb' | $$dollar$$ | $q$x$q$ | B'101' | X'1F'
| bit_count(B'101') | 1e3 | .5 | 0.5e-2 | interval '1' day | '2024-01-01'::date
| txid_snapshot '10:20:10,14,15' | pg_lsn '16/B374D848' | box '(1,1),(2,2)'
| point '(1,2)' | macaddr '08:00:2b:01:02:03' | money '12.34' | uuid 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'
| tsquery 'a & b' | '{1,2}'::int[] | ROW(a.id, a.name) | (a.id, a.name) < (3, 'z')
| EXISTS (SELECT 1 FROM shop.products p WHERE p.id = a.id)
| (SELECT max(p.price) FROM shop.products p) | a.id = ANY (SELECT id FROM shop.products)
| a.id > ALL (SELECT id FROM shop.products WHERE id < 0)
"""

AGGS = """
count(*) | count(DISTINCT a.id) | sum(i.amount) | avg(i.amount) | min(i.placed_at)
| max(i.due) | string_agg(a.name, ',' ORDER BY a.name) | array_agg(DISTINCT i.status)
| jsonb_agg(i.id) | json_object_agg(i.id, i.status) | bool_and(i.amount > 0)
| bool_or(i.amount > 10) | every(i.amount > 0) | bit_or(a.id) | stddev(i.amount)
| variance(i.amount) | stddev_pop(i.amount) | corr(i.amount, a.id) | regr_slope(i.amount, a.id)
| covar_samp(i.amount, a.id) | percentile_cont(0.5) WITHIN GROUP (ORDER BY i.amount)
| percentile_disc(0.9) WITHIN GROUP (ORDER BY i.amount) | mode() WITHIN GROUP (ORDER BY i.status)
| count(*) FILTER (WHERE i.status = 'open') | sum(i.amount) FILTER (WHERE i.amount > 5)
| xmlagg(xmlelement(name x, a.id)) | range_agg(i.period) | jsonb_object_agg(a.id, a.name)
"""
WINDOWS = """
row_number() OVER (ORDER BY i.id) | rank() OVER (PARTITION BY i.status ORDER BY i.amount)
| dense_rank() OVER w | percent_rank() OVER w | cume_dist() OVER w | ntile(4) OVER w
| lag(i.amount) OVER w | lead(i.amount, 2, 0) OVER w | first_value(i.id) OVER w
| last_value(i.id) OVER w | nth_value(i.id, 2) OVER w
| sum(i.amount) OVER (ORDER BY i.id ROWS BETWEEN 2 PRECEDING AND CURRENT ROW)
| avg(i.amount) OVER (PARTITION BY i.account_id RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
| count(*) OVER (ORDER BY i.placed_at RANGE BETWEEN interval '2 hours' PRECEDING AND CURRENT ROW)
| sum(i.amount) OVER (ORDER BY i.id GROUPS BETWEEN 1 PRECEDING AND 1 FOLLOWING EXCLUDE TIES)
"""

SELECT_TEMPLATES = [
    "SELECT {e} AS v FROM shop.invoices i JOIN shop.accounts a ON a.id = i.account_id "
    "WHERE i.amount > {n} LIMIT {m}",
    "SELECT a.id, {e} FROM accounts a LEFT JOIN invoices i ON i.account_id = a.id "
    "ORDER BY a.id LIMIT {m}",
    "WITH x AS (SELECT {e} AS v FROM shop.invoices i JOIN shop.accounts a "
    "ON a.id = i.account_id) SELECT count(*) FROM x",
    "SELECT * FROM (SELECT {e} AS v FROM shop.accounts a, shop.invoices i "
    "WHERE a.id = i.account_id AND i.status = '{s}') s WHERE v IS NOT NULL",
    "EXPLAIN SELECT {e} FROM shop.accounts a JOIN shop.invoices i ON a.id = i.account_id",
    "SELECT a.name, (SELECT {e} FROM shop.invoices i WHERE i.account_id = a.id LIMIT 1) "
    "FROM shop.accounts a WHERE a.id < {n}",
    "EXPLAIN (ANALYZE, COSTS OFF) SELECT {e} FROM shop.accounts a "
    "JOIN shop.invoices i ON a.id = i.account_id",
]
AGG_TEMPLATES = [
    "SELECT i.status, {e} FROM shop.invoices i JOIN shop.accounts a ON a.id = i.account_id "
    "GROUP BY i.status",
    "SELECT {e} FROM shop.invoices i, shop.accounts a WHERE a.id = i.account_id "
    "AND i.placed_at > now() - interval '{n} days'",
    "SELECT a.tenant_id, {e} FROM shop.accounts a JOIN shop.invoices i "
    "ON a.id = i.account_id GROUP BY ROLLUP (a.tenant_id) HAVING count(*) > {n}",
]
WINDOW_TEMPLATES = [
    "SELECT i.id, {e} FROM shop.invoices i JOIN shop.accounts a ON a.id = i.account_id "
    "WINDOW w AS (PARTITION BY i.status ORDER BY i.id)",
    "SELECT * FROM (SELECT i.id, {e} AS r FROM shop.invoices i, shop.accounts a "
    "WHERE a.id = i.account_id WINDOW w AS (ORDER BY i.amount)) s WHERE r IS NOT NULL "
    "LIMIT {m}",
]
SYNTAX_READS = """
SELECT * FROM ONLY shop.accounts
SELECT * FROM shop.invoices TABLESAMPLE BERNOULLI (50)
SELECT * FROM shop.invoices TABLESAMPLE SYSTEM (100) REPEATABLE (7)
TABLE shop.products
VALUES (1, 'a'), (2, 'b')
SELECT * FROM shop.invoices ORDER BY amount USING >
SELECT DISTINCT ON (status) status, id FROM shop.invoices ORDER BY status, id
WITH RECURSIVE t(id, parent, label) AS (SELECT id, parent, label FROM shop.tree WHERE parent IS NULL UNION ALL SELECT c.id, c.parent, c.label FROM shop.tree c JOIN t ON c.parent = t.id) SEARCH DEPTH FIRST BY id SET ord SELECT * FROM t ORDER BY ord
WITH RECURSIVE t(id, parent) AS (SELECT id, parent FROM shop.tree UNION ALL SELECT c.id, c.parent FROM shop.tree c JOIN t ON c.parent = t.id) CYCLE id SET is_cycle USING path SELECT * FROM t
SELECT * FROM generate_series(1, 5) g(n)
SELECT * FROM unnest(ARRAY[1, 2], ARRAY['a', 'b']) AS u(n, s)
SELECT * FROM ROWS FROM (generate_series(1, 3), unnest(ARRAY['x', 'y'])) AS r(a, b)
SELECT * FROM jsonb_to_recordset('[{"a": 1}]') AS x(a int)
SELECT * FROM json_each('{"a": 1}')
SELECT * FROM jsonb_array_elements('[1, 2]')
SELECT * FROM regexp_split_to_table('a,b', ',')
SELECT * FROM generate_series(now(), now() + interval '3 days', interval '1 day')
SELECT x.* FROM shop.accounts a, LATERAL (SELECT * FROM shop.invoices i WHERE i.account_id = a.id LIMIT 1) x
SELECT * FROM XMLTABLE('/a' PASSING xml '<a>1</a>' COLUMNS v int PATH '.')
SELECT * FROM shop.accounts a NATURAL JOIN shop.events e
SELECT * FROM shop.accounts FULL JOIN shop.invoices USING (tenant_id) LIMIT 3
SELECT * FROM shop.accounts CROSS JOIN LATERAL generate_series(1, a.id) WHERE false
SELECT * FROM shop.accounts a WHERE a.id IN (SELECT account_id FROM shop.invoices) INTERSECT SELECT * FROM shop.accounts
SELECT id FROM shop.accounts EXCEPT ALL SELECT account_id FROM shop.invoices
SELECT id FROM shop.accounts ORDER BY id OFFSET 2 ROWS FETCH FIRST 3 ROWS WITH TIES
SELECT id FROM shop.accounts ORDER BY id FETCH NEXT 2 ROWS ONLY
SELECT status, count(*) FROM shop.invoices GROUP BY GROUPING SETS ((status), ())
SELECT status, tenant_id, count(*) FROM shop.invoices GROUP BY CUBE (status, tenant_id)
SELECT * FROM shop.invoices WHERE (account_id, status) IN (SELECT id, 'open' FROM shop.accounts)
SHOW work_mem
SHOW search_path
SHOW ALL
SHOW TIME ZONE
SELECT U&"i"."id" FROM shop.invoices U&"i"
SELECT 1 <<| 2 FROM shop.accounts WHERE false
SELECT * FROM shop.v_tx
SELECT xmlparse(document '<a/>')
SELECT '1 day'::interval * 3
SELECT ARRAY(SELECT id FROM shop.accounts ORDER BY id)
SELECT a.id FROM shop.accounts a WHERE a.name SIMILAR TO '%(1|2)%'
SELECT 'abc' COLLATE "C" < 'abd'
SELECT (SELECT count(*) FROM pg_catalog.pg_class) AS n
SELECT relname FROM pg_class WHERE relkind = 'r' LIMIT 5
SELECT * FROM pg_stats WHERE schemaname = 'shop'
SELECT table_name FROM information_schema.tables WHERE table_schema = 'shop'
SELECT * FROM pg_stat_activity WHERE pid = pg_backend_pid()
SELECT app.f_read(1)
SELECT count(*) FROM shop.accounts WHERE id = app.f_read(2)
DECLARE c CURSOR FOR SELECT 1
SELECT 1 app.<<< 2
SELECT 1 OPERATOR(pg_catalog.+) 2
"""
WRITES = """
INSERT INTO shop.events (id, kind) VALUES ({n}, '{s}')
INSERT INTO shop.events SELECT id, id, 'x', now(), NULL, tenant_id FROM shop.accounts
INSERT INTO shop.accounts (id, name) VALUES ({n}, '{s}') ON CONFLICT (id) DO NOTHING
INSERT INTO shop.accounts (id, name) VALUES ({n}, '{s}') ON CONFLICT (id) DO UPDATE SET name = excluded.name
UPDATE shop.invoices SET status = '{s}' WHERE id = {n}
UPDATE shop.invoices i SET amount = amount * 2 FROM shop.accounts a WHERE a.id = i.account_id AND a.id = {n}
DELETE FROM shop.events WHERE id = {n}
DELETE FROM shop.events USING shop.accounts a WHERE a.id = events.account_id
DELETE FROM shop.invoices WHERE id = {n} RETURNING *
MERGE INTO shop.accounts a USING (SELECT {n} AS id) s ON a.id = s.id WHEN MATCHED THEN UPDATE SET name = '{s}' WHEN NOT MATCHED THEN INSERT (id) VALUES (s.id)
TRUNCATE shop.events
COPY shop.events FROM STDIN
CREATE TABLE shop.t{n} (a int)
CREATE TEMP TABLE tmp{n} AS SELECT * FROM shop.accounts
CREATE INDEX ON shop.invoices (status)
CREATE VIEW shop.v{n} AS SELECT 1
DROP TABLE shop.events
ALTER TABLE shop.accounts ADD COLUMN c{n} int
COMMENT ON TABLE shop.accounts IS '{s}'
GRANT SELECT ON shop.accounts TO PUBLIC
REVOKE ALL ON shop.accounts FROM PUBLIC
CREATE ROLE r{n}
VACUUM shop.accounts
ANALYZE shop.accounts
REINDEX TABLE shop.accounts
CLUSTER shop.accounts USING accounts_pkey
REFRESH MATERIALIZED VIEW shop.mv
LOCK TABLE shop.accounts IN ACCESS EXCLUSIVE MODE
SELECT * INTO shop.copy{n} FROM shop.accounts
SELECT * INTO TEMP tmpi{n} FROM shop.accounts
CREATE TABLE shop.ctas{n} AS SELECT * FROM shop.accounts
WITH d AS (DELETE FROM shop.events WHERE id = {n} RETURNING *) SELECT * FROM d
WITH u AS (UPDATE shop.invoices SET note = '{s}' RETURNING id) SELECT count(*) FROM u
WITH i AS (INSERT INTO shop.events (id) VALUES ({n}) RETURNING id) SELECT * FROM i
SELECT * FROM shop.accounts FOR UPDATE
SELECT * FROM shop.accounts a JOIN shop.invoices i ON i.account_id = a.id FOR SHARE OF a
SELECT id FROM shop.invoices WHERE id = {n} FOR NO KEY UPDATE SKIP LOCKED
SELECT * FROM shop.accounts FOR KEY SHARE NOWAIT
EXPLAIN ANALYZE DELETE FROM shop.events WHERE id = {n}
EXPLAIN (ANALYZE) INSERT INTO shop.events (id) VALUES ({n})
EXPLAIN ANALYZE CREATE TABLE shop.leak{n} AS SELECT * FROM shop.accounts
EXPLAIN (ANALYZE true, BUFFERS) UPDATE shop.invoices SET note = 'x'
EXPLAIN ANALYZE SELECT * INTO shop.leaki{n} FROM shop.accounts
EXPLAIN ANALYZE SELECT * FROM shop.accounts FOR UPDATE
EXPLAIN ANALYZE DELETE FROM shop.events; SELECT 1
EXPLAIN SELECT 1; DELETE FROM shop.events
SELECT 1; DELETE FROM shop.events WHERE id = {n}
SELECT 1; CREATE TABLE shop.s{n} AS SELECT * FROM shop.accounts
SET default_transaction_read_only = off
SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE
SET search_path = app
RESET ALL
BEGIN READ WRITE
PREPARE p{n} AS DELETE FROM shop.events
EXECUTE p{n}
DO $$BEGIN DELETE FROM shop.events; END$$
CALL app.nothing_()
LISTEN ch{n}
NOTIFY ch, '{s}'
DISCARD ALL
CHECKPOINT
LOAD 'auto_explain'
SECURITY LABEL ON TABLE shop.accounts IS 'x'
CREATE EXTENSION IF NOT EXISTS pgcrypto
IMPORT FOREIGN SCHEMA x FROM SERVER s INTO shop
"""
SIDE_EFFECT_CALLS = """
txid_current() | pg_current_xact_id() | nextval('shop.invoice_seq') | setval('shop.invoice_seq', {n})
| setseed(0.5) | pg_advisory_lock({n}) | pg_advisory_xact_lock({n}) | pg_try_advisory_lock({n})
| pg_advisory_lock_shared({n}) | pg_try_advisory_xact_lock_shared({n}) | pg_advisory_unlock_all()
| set_config('work_mem', '8MB', false) | set_config('app.tenant', '{s}', true)
| pg_notify('ch', '{s}') | lo_create(0) | lo_import('/etc/hostname') | lo_unlink(1)
| lowrite(0, 'x') | loread(0, 1) | lo_from_bytea(0, 'x') | lo_put(1, 0, 'x')
| pg_cancel_backend(0) | pg_terminate_backend(0) | pg_reload_conf() | pg_rotate_logfile()
| pg_stat_reset() | pg_stat_reset_shared('bgwriter') | pg_stat_reset_single_table_counters('shop.accounts'::regclass)
| pg_stat_clear_snapshot() | pg_sleep(0.01) | pg_sleep_for('10 milliseconds')
| pg_log_backend_memory_contexts(pg_backend_pid()) | pg_read_file('postgresql.conf')
| pg_ls_dir('.') | pg_stat_file('postgresql.conf') | query_to_xml('select 1', true, true, '')
| table_to_xml('shop.accounts', true, true, '') | ts_stat('select body from shop.accounts')
| app.f_write({n}) | app.f_ddl() | app.f_grant() | shop.f_missing_({n})
| pg_create_restore_point('x') | pg_switch_wal() | pg_export_snapshot()
| brin_summarize_new_values('shop.accounts_pkey') | gin_clean_pending_list('x'::regclass)
"""
SIDE_EFFECT_TEMPLATES = [
    "SELECT {e}",
    "SELECT a.id, {e} FROM shop.accounts a WHERE a.id = {n}",
    "EXPLAIN ANALYZE SELECT {e}",
    "WITH x AS (SELECT {e} AS v) SELECT * FROM x",
    "SELECT * FROM shop.accounts WHERE id = (SELECT {e} LIMIT 1)",
]
DECLARED = ("pg_notify", "pg_cancel_backend", "pg_terminate_backend", "pg_reload_conf",
            "pg_rotate_logfile", "pg_stat_reset", "pg_stat_clear_snapshot", "pg_sleep",
            "setseed", "pg_log_backend_memory_contexts", "lo_", "lowrite", "loread",
            "pg_read_file", "pg_ls_dir", "pg_stat_file", "query_to_xml", "table_to_xml",
            "ts_stat", "pg_advisory", "pg_try_advisory", "set_config", "nextval", "setval",
            "pg_export_snapshot", "txid_current()", "pg_current_xact_id()",
            "pg_create_restore_point", "pg_switch_wal", "brin_summarize", "gin_clean_pending")
CLEAR_WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE|MERGE|TRUNCATE|CREATE|DROP|ALTER|GRANT|"
                         r"REVOKE|COMMENT|VACUUM|ANALYZE|REINDEX|CLUSTER|REFRESH|LOCK|COPY|"
                         r"SECURITY|IMPORT|DO|CALL)\b", re.I)


def _split(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\|\s*|\s+\|\s+", text.strip()) if p.strip()]


def _fill(template: str, rnd: random.Random, **kw: str) -> str:
    return template.format(n=rnd.randint(1, 40), m=rnd.randint(1, 30),
                           s=rnd.choice(["open", "paid", "x y", "t1"]), **kw)


def view_bodies() -> list[tuple[str, str]]:
    out = []
    for name in ("system_views.sql", "information_schema.sql"):
        for path in sorted(SHARE.glob(f"*/{name}")):
            text = re.sub(r"^\\.*$", "", path.read_text(), flags=re.M)
            try:
                stmts = pg.split(text)
            except pg.ParseError:
                continue
            for stmt in stmts:
                m = re.match(r"(?is)\s*CREATE\s+(?:OR\s+REPLACE\s+)?(?:RECURSIVE\s+)?VIEW\s+"
                             r"([\w.]+)(?:\s*\([^)]*\))?\s+AS\s+(.*)$", stmt)
                if m:
                    body = re.sub(r"(?is)\s+WITH\s+(CASCADED\s+|LOCAL\s+)?CHECK\s+OPTION\s*$",
                                  "", m.group(2))
                    out.append(("pg_views", body))
                    out.append(("pg_views", f"SELECT * FROM {m.group(1)} LIMIT 5"))
            break
    return out


def extension_ddl(rnd: random.Random, limit: int) -> list[tuple[str, str]]:
    out = []
    for path in sorted(glob.glob(str(SHARE / "*" / "extension" / "*.sql"))):
        text = re.sub(r"^\\.*$", "", Path(path).read_text(), flags=re.M)
        text = text.replace("@extschema@", "public").replace("MODULE_PATHNAME", "$libdir/x")
        try:
            out += [("extension_ddl", s) for s in pg.split(text)]
        except pg.ParseError:
            continue
    rnd.shuffle(out)
    return out[:limit]


def candidates(tpch: list[str]) -> list[tuple[str, str]]:
    rnd = random.Random(30)
    out: list[tuple[str, str]] = []
    out += view_bodies()
    out += [("tpch", q) for q in tpch]
    for e in _split(EXPRS):
        for t in SELECT_TEMPLATES:
            out.append(("functions", _fill(t, rnd, e=e)))
    for e in _split(AGGS):
        for t in AGG_TEMPLATES:
            out.append(("aggregates", _fill(t, rnd, e=e)))
    for e in _split(WINDOWS):
        for t in WINDOW_TEMPLATES:
            out.append(("windows", _fill(t, rnd, e=e)))
    out += [("syntax", s) for s in SYNTAX_READS.strip().splitlines()]
    for w in WRITES.strip().splitlines():
        for _ in range(3):
            out.append(("writes", _fill(w, rnd)))
    for e in _split(SIDE_EFFECT_CALLS):
        for t in SIDE_EFFECT_TEMPLATES:
            out.append(("side_effects", _fill(t, rnd, e=_fill(e, rnd))))
    out += extension_ddl(rnd, 1200)
    seen: set[str] = set()
    unique = []
    for source, sql in out:
        if sql not in seen:
            seen.add(sql)
            unique.append((source, sql))
    return unique


def _state(cur: psycopg.Cursor) -> tuple:
    cur.execute("SELECT pg_current_xact_id_if_assigned() IS NOT NULL, "
                "(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                "AND pid = pg_backend_pid()), "
                "(SELECT md5(string_agg(name || '=' || setting, ',' ORDER BY name)) "
                "FROM pg_settings)")
    return cur.fetchone()  # type: ignore[return-value]


def _sequences(cur: psycopg.Cursor) -> object:
    cur.execute("SELECT array_agg(last_value ORDER BY sequencename) FROM pg_sequences")
    return cur.fetchone()


def label(conn: psycopg.Connection, source: str, sql: str) -> dict:
    clear = bool(CLEAR_WRITE.match(sql)) or (source in ("writes", "extension_ddl") and not \
        sql.lstrip().upper().startswith(("SELECT", "WITH", "EXPLAIN", "SHOW", "VALUES")))
    row = {"source": source, "sql": sql, "clear_write": clear,
           # reads through a user function or operator, or a view: only the database's
           # catalog knows what they do (the figures count built-ins only)
           "user_code": bool(re.search(r"\bapp\.|\bshop\.f_|v_tx", sql))}
    cur = conn.cursor()
    seq_before = _sequences(cur)
    cur.execute("BEGIN READ ONLY")
    cur.execute("SET LOCAL statement_timeout = '2s'")
    cur.execute("SET LOCAL search_path = shop, public")
    before = _state(cur)
    try:
        cur.execute(sql.encode())
        if cur.description is not None:
            cur.fetchmany(5)
        after = _state(cur)
        state = None
    except psycopg.Error as e:
        after = None
        state = e.sqlstate
    cur.execute("ROLLBACK")
    cur.execute("SELECT pg_advisory_unlock_all()")
    cur.execute("SELECT lo_unlink(oid) FROM pg_largeobject_metadata")
    cur.execute("RESET ALL")
    seq_after = _sequences(cur)
    row["sqlstate"] = state
    declared = source == "side_effects" and any(
        re.search(rf"\b{re.escape(d)}", sql) for d in DECLARED)
    if state in ("25006", "25001") or (after is not None and after[0]):
        row["label"] = "write"
    elif state is None and (declared or after[1:] != before[1:] or seq_after != seq_before):
        row["label"] = "side_effect"
    elif state is None and source == "writes":
        # SET, PREPARE, LISTEN, NOTIFY, CHECKPOINT ...: ran, and act on the session or
        # the server (at commit, or outside the transaction)
        row["label"] = "side_effect"
    elif state is None:
        row["label"] = "read"
    elif state == "57014" and declared:
        row["label"] = "side_effect"
    else:
        row["label"] = "invalid"
    return row


def build(dsn: str) -> list[dict]:
    tpch = [json.loads(line)["sql"]
            for line in (ROOT / "tests" / "sql" / "data" / "tpch.jsonl").read_text().splitlines()
            if line.strip()]
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS cw_corpus")
        admin.execute("CREATE DATABASE cw_corpus")
    dsn = dsn.rsplit("/", 1)[0] + "/cw_corpus"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA)
        conn.execute(TPCH_SCHEMA)
        conn.execute("ALTER DATABASE cw_corpus SET search_path = shop, public")
    rows = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        for source, sql in candidates(tpch):
            rows.append(label(conn, source, sql))
    return rows


def main() -> int:
    rows = run_on_postgres(__doc__.splitlines()[0], build)
    if rows is None:
        return 1
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["label"]] = counts.get(r["label"], 0) + 1
    print(f"wrote {len(rows)} statements to {OUT.relative_to(ROOT)}: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
