"""Which functions and catalog relations a route may touch, per dialect.

SECURITY: on read-only and tenant routes functions are allowlisted. A call passes when
sqlglot types it (an expression class: its meaning is known) and the route's dialect
does not list it as reading outside the query, or when its name is a known pure
built-in of the route's dialect, or when the route allows it by name
(`sql.functions.allow`). Everything else, user-defined or unknown, is refused: a
function can read tables by name (DuckDB `query_table`), files, settings, or change
state (`setseed`, `txid_current`). Lists are per dialect: a name that is dangerous in
one engine never refuses another engine's function of that name (SQLite's `glob` is a
string match, DuckDB's lists files).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot.dialects.dialect import Dialect

from proxy.sql import builtins


@dataclass(frozen=True, slots=True)
class Rules:
    denied: frozenset[str]
    """Refused on every guarded route, typed or not."""
    denied_prefixes: tuple[str, ...]
    """... and names starting with one of these."""
    pure: frozenset[str]
    """Untyped built-ins known pure: allowed on read-only and tenant routes."""
    sources: frozenset[str]
    """Table functions that cannot read a table: allowed in FROM on tenant routes."""
    schemas: frozenset[str]
    """Schemas (or catalogs) whose relations are catalogs or statistics."""
    prefixes: tuple[str, ...]
    """Relation names that are catalogs wherever they resolve."""
    path_names: bool = False
    """A quoted table name that looks like a path is a file read (DuckDB's replacement
    scans: `FROM "/data/x.csv"`)."""

    def is_denied(self, name: str) -> bool:
        return name in self.denied or name.startswith(self.denied_prefixes)


_PG_DENIED = frozenset({
    "pg_sleep*", "pg_read_*", "pg_ls_*", "pg_stat_file", "pg_file_*", "lo_*", "dblink*",
    "set_config", "current_setting", "nextval", "setval", "currval", "lastval", "setseed",
    "txid_*", "pg_current_xact_id*", "pg_terminate_backend", "pg_cancel_backend",
    "pg_advisory*", "pg_try_advisory*", "pg_reload_conf", "pg_rotate_logfile", "pg_promote",
    "pg_switch_wal", "pg_create_*", "pg_drop_*", "pg_replication_*", "pg_logical_*",
    "pg_notify", "pg_stat_reset*", "pg_backup_*", "pg_start_backup", "pg_stop_backup",
    "pg_wal_replay_*", "pg_import_system_collations", "query_to_xml*", "table_to_xml*",
    "cursor_to_xml*", "schema_to_xml*", "database_to_xml*", "query_to_xmlschema",
    "table_to_xmlschema", "crosstab*", "ts_stat", "ts_rewrite",
})
_MYSQL_DENIED = frozenset({
    "sleep", "benchmark", "load_file", "get_lock", "release_lock", "release_all_locks",
    "is_free_lock", "is_used_lock", "master_pos_wait", "source_pos_wait", "sys_exec",
    "sys_eval", "last_insert_id", "found_rows", "row_count",
})
_DUCKDB_DENIED = frozenset({
    "read_*", "glob", "parquet_*", "sniff_csv", "getenv", "getvariable", "query",
    "query_table", "setseed", "nextval", "currval", "current_setting", "txid_current",
    "json_execute_serialized_sql", "enable_*", "disable_*", "checkpoint", "force_checkpoint",
    "which_secret", "write_log", "pg_sleep", "sleep*", "truncate_duckdb_logs", "seq_scan",
    "arrow_scan*", "pandas_scan", "python_*", "iceberg_*", "delta_scan", "sqlite_scan",
    "sqlite_attach", "postgres_*", "mysql_*", "httpfs_*",
})
_DENIED: dict[str, frozenset[str]] = {
    "postgres": _PG_DENIED, "redshift": _PG_DENIED, "materialize": _PG_DENIED,
    "risingwave": _PG_DENIED,
    "mysql": _MYSQL_DENIED, "doris": _MYSQL_DENIED, "starrocks": _MYSQL_DENIED,
    "singlestore": _MYSQL_DENIED,
    "tsql": frozenset({"xp_*", "sp_*", "openrowset", "opendatasource", "openquery"}),
    "fabric": frozenset({"xp_*", "sp_*", "openrowset", "opendatasource", "openquery"}),
    "clickhouse": frozenset({
        "sleep", "sleepeachrow", "url", "file", "s3*", "remote", "remotesecure", "executable",
        "hdfs*", "jdbc", "odbc", "mysql", "postgresql", "cluster*", "input", "merge",
        "dictionary", "dictget*", "azureblobstorage*", "gcs", "iceberg*", "deltalake*",
        "hudi*", "mongodb", "redis", "sqlite", "filesystem*",
    }),
    "duckdb": _DUCKDB_DENIED,
    "sqlite": frozenset({"load_extension", "fts3_tokenizer", "readfile", "writefile", "edit",
                         "fsdir", "zipfile", "sqlar_*"}),
    "snowflake": frozenset({"system$*", "getvariable"}),
    "bigquery": frozenset({"external_query"}),
    "spark": frozenset({"reflect", "java_method", "read_files"}),
    "databricks": frozenset({"reflect", "java_method", "read_files"}),
    "hive": frozenset({"reflect", "java_method"}),
    "oracle": frozenset({"dbms_*", "utl_*", "sys_eval"}),
}

def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Untyped built-ins of the dialects without a generated list: the common analytics ones
# sqlglot leaves as anonymous calls in those dialects.
_PG_PURE = _words("""
pg_backend_pid version current_database current_schema current_schemas current_catalog
session_user clock_timestamp statement_timestamp transaction_timestamp timeofday pg_typeof
gen_random_uuid
abs age array_length array_position array_positions array_remove array_replace
array_to_json array_to_string bit_length btrim cardinality cbrt char_length
character_length chr concat_ws date_bin date_part date_trunc decode encode extract
factorial format gcd generate_series generate_subscripts initcap isfinite json_agg
json_array_elements json_array_elements_text json_array_length json_build_array
json_build_object json_each json_each_text json_extract_path json_extract_path_text
json_object_agg json_object_keys json_populate_record json_strip_nulls json_typeof
jsonb_agg jsonb_array_elements jsonb_array_elements_text jsonb_array_length
jsonb_build_array jsonb_build_object jsonb_each jsonb_each_text jsonb_extract_path
jsonb_extract_path_text jsonb_object_agg jsonb_object_keys jsonb_path_exists
jsonb_path_query jsonb_path_query_array jsonb_path_query_first jsonb_pretty jsonb_set
jsonb_strip_nulls jsonb_typeof justify_days justify_hours justify_interval lcm left
length lower lpad ltrim make_date make_interval make_time make_timestamp
make_timestamptz md5 mode num_nonnulls num_nulls octet_length overlay percentile_cont
percentile_disc position quote_ident quote_literal quote_nullable regexp_count
regexp_instr regexp_like regexp_match regexp_matches regexp_replace
regexp_split_to_array regexp_split_to_table regexp_substr repeat replace reverse right
round rpad rtrim scale sha224 sha256 sha384 sha512 sign split_part starts_with
string_agg string_to_array strpos substr substring to_ascii to_char to_date to_hex
to_json to_jsonb to_number to_timestamp translate trim trim_scale trunc unistr unnest
upper width_bucket
""")
_MYSQL_PURE = _words("""
abs acos adddate addtime ascii asin atan atan2 bin bit_and bit_count bit_length bit_or
bit_xor ceiling char_length character_length conv convert_tz cos cot crc32 curdate
curtime date_add date_sub datediff dayname dayofmonth dayofweek dayofyear degrees elt
exp export_set field find_in_set format from_days from_unixtime get_format hex hour
insert instr json_array json_arrayagg json_contains json_contains_path json_depth
json_extract json_keys json_length json_merge_patch json_merge_preserve json_object
json_objectagg json_overlaps json_pretty json_quote json_remove json_replace json_search
json_set json_type json_unquote json_valid json_value last_day lcase left length ln
locate log log10 log2 lower lpad ltrim make_set makedate maketime md5 microsecond minute
mod month monthname now oct octet_length ord period_add period_diff pi position pow
power quarter quote radians rand regexp_instr regexp_like regexp_replace regexp_substr
repeat replace reverse right round rpad rtrim sec_to_time second sha1 sha2 sign sin
soundex space sqrt std stddev str_to_date strcmp subdate substring_index subtime sysdate
tan time_format time_to_sec timediff timestampadd timestampdiff to_days to_seconds
truncate ucase unhex unix_timestamp upper utc_date utc_time utc_timestamp uuid week
weekday weekofyear year yearweek
""")
_TRINO_PURE = _words("""
abs acos approx_distinct approx_percentile arbitrary array_agg array_distinct
array_except array_intersect array_join array_max array_min array_position array_remove
array_sort array_union arrays_overlap asin atan atan2 bitwise_and bitwise_or bool_and
bool_or cardinality cbrt ceil ceiling checksum chr codepoint concat_ws contains corr cos
cosh count_if covar_pop covar_samp date_add date_diff date_format date_parse date_trunc
day day_of_month day_of_week day_of_year degrees e element_at every exp filter flatten
format format_datetime from_base from_hex from_iso8601_date from_iso8601_timestamp
from_unixtime geometric_mean greatest hamming_distance histogram hour
human_readable_seconds index is_finite is_infinite is_json_scalar is_nan
json_array_contains json_array_get json_array_length json_extract json_extract_scalar
json_format json_parse json_size kurtosis last_day_of_month least length
levenshtein_distance ln log log10 log2 lower lpad ltrim map map_agg map_concat
map_entries map_filter map_from_entries map_keys map_values max_by md5 millisecond
min_by minute mod month multimap_agg nan normalize parse_datetime pi position pow power
quarter radians rand random reduce regexp_count regexp_extract regexp_extract_all
regexp_like regexp_position regexp_replace regexp_split repeat replace reverse round
rpad rtrim second sequence sha1 sha256 sha512 shuffle sign sin skewness slice split
split_part split_to_map starts_with stddev stddev_pop stddev_samp strpos substr
substring tan tanh to_base to_char to_hex to_iso8601 to_unixtime transform trim truncate
typeof upper url_decode url_encode url_extract_host url_extract_parameter
url_extract_path url_extract_port url_extract_protocol url_extract_query uuid var_pop
var_samp variance week week_of_year width_bucket with_timezone year year_of_week yow zip
zip_with
""")
_PURE: dict[str, frozenset[str]] = {
    "duckdb": builtins.DUCKDB, "sqlite": builtins.SQLITE,
    "postgres": _PG_PURE, "redshift": _PG_PURE,
    "mysql": _MYSQL_PURE, "doris": _MYSQL_PURE, "starrocks": _MYSQL_PURE,
    "singlestore": _MYSQL_PURE,
    "trino": _TRINO_PURE, "presto": _TRINO_PURE, "athena": _TRINO_PURE,
}

# Table functions that build rows from their arguments only.
_ROWS_ONLY = frozenset({"generate_series", "generateseries", "explodinggenerateseries", "unnest",
                        "explode", "range"})
_SOURCES: dict[str, frozenset[str]] = {
    "duckdb": _ROWS_ONLY | {"json_each", "json_tree", "repeat", "generate_subscripts"},
    "sqlite": _ROWS_ONLY | {"json_each", "json_tree"},
    "postgres": _ROWS_ONLY | {
        "generate_subscripts", "json_each", "json_each_text", "jsonb_each", "jsonb_each_text",
        "json_array_elements", "json_array_elements_text", "jsonb_array_elements",
        "jsonb_array_elements_text", "json_object_keys", "jsonb_object_keys",
        "regexp_split_to_table", "regexp_matches", "jsonb_path_query", "json_to_record",
        "json_to_recordset", "jsonb_to_record", "jsonb_to_recordset"},
    "trino": _ROWS_ONLY | {"sequence"},
}

_INFO = frozenset({"information_schema"})
_SCHEMAS: dict[str, frozenset[str]] = {
    "postgres": _INFO | {"pg_catalog", "pg_toast"},
    "redshift": _INFO | {"pg_catalog", "pg_toast"},
    "duckdb": _INFO | {"pg_catalog", "system", "temp"},
    "mysql": _INFO | {"performance_schema", "mysql", "sys"},
    "trino": _INFO | {"system", "jdbc", "runtime", "metadata"},
    "presto": _INFO | {"system", "jdbc", "runtime", "metadata"},
    "tsql": _INFO | {"sys"},
    "clickhouse": _INFO | {"system"},
    "snowflake": _INFO | {"account_usage", "snowflake"},
}
_PG_NAMES = ("pg_",)
_PREFIXES: dict[str, tuple[str, ...]] = {
    "postgres": _PG_NAMES, "redshift": (*_PG_NAMES, "stl_", "stv_", "svl_", "svv_", "sys_"),
    "duckdb": ("duckdb_", "pragma_", "sqlite_", "pg_"),
    "sqlite": ("sqlite_", "pragma_", "dbstat"),
    "tsql": ("sysobjects", "syscolumns", "sysusers", "sysdatabases", "syslogins"),
}


def dialect_key(dialect: str) -> str:
    """sqlglot's class name for a dialect alias (postgresql -> postgres)."""
    return type(Dialect.get_or_raise(dialect)).__name__.lower()


def rules_for(dialect: str) -> Rules:
    key = dialect_key(dialect)
    denied = _DENIED.get(key, frozenset())  # a trailing `*` marks a prefix
    return Rules(
        denied=frozenset(d for d in denied if not d.endswith("*")),
        denied_prefixes=tuple(sorted(d[:-1] for d in denied if d.endswith("*"))),
        pure=_PURE.get(key, frozenset()),
        sources=_SOURCES.get(key, _ROWS_ONLY),
        schemas=_SCHEMAS.get(key, _INFO),
        prefixes=_PREFIXES.get(key, ()),
        path_names=key == "duckdb",
    )


def is_catalog(rules: Rules, parts: tuple[str, ...]) -> bool:
    """Is the relation `catalog.db.name` (lower-case, empty parts absent) a catalog or
    statistics relation? Any part naming a catalog schema counts (BigQuery writes
    `region-us.INFORMATION_SCHEMA.JOBS`); a name with `$` is a Trino metadata table."""
    if any(p in rules.schemas for p in parts):
        return True
    name = parts[-1] if parts else ""
    return "$" in name or (bool(rules.prefixes) and name.startswith(rules.prefixes))
