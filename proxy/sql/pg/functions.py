"""What PostgreSQL knows of a function name: the built-in table generated from pg_proc
(proxy/sql/pg/catalog.py) plus the side effects PostgreSQL allows even inside a
read-only transaction, which volatility alone does not tell (txid_current() is STABLE
and assigns a transaction id).
"""

from __future__ import annotations

import enum
from functools import cache

from proxy.sql.pg import catalog
from proxy.sql.pg.parse import Name


class Fn(enum.Enum):
    SAFE = "built-in, stable or immutable"
    HARMLESS = "built-in, volatile but without effects"
    VOLATILE = "built-in and volatile"
    SIDE_EFFECT = "has side effects even in a read-only transaction"
    READS_ELSEWHERE = "reads server files, or runs SQL given as text"
    UNKNOWN = "not a PostgreSQL built-in"


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_SCHEMAS = {
    "pg_catalog": (_words(catalog.PG_CATALOG_IMMUTABLE) | _words(catalog.PG_CATALOG_STABLE),
                   _words(catalog.PG_CATALOG_VOLATILE)),
    "information_schema": (
        _words(catalog.INFORMATION_SCHEMA_IMMUTABLE) | _words(catalog.INFORMATION_SCHEMA_STABLE),
        _words(catalog.INFORMATION_SCHEMA_VOLATILE)),
}

# SECURITY: effects a read-only transaction does not stop. A trailing `*` is a prefix.
SIDE_EFFECTS: tuple[str, ...] = (
    "txid_current", "pg_current_xact_id",  # assign a transaction id
    "nextval", "setval", "setseed",  # sequence and session random state
    "pg_advisory_*", "pg_try_advisory_*",  # advisory locks
    "set_config",  # settings (also the way out of default_transaction_read_only)
    "pg_notify",
    "lo_*", "lowrite", "loread",  # large objects (lo_export writes server files)
    "pg_cancel_backend", "pg_terminate_backend", "pg_reload_conf", "pg_rotate_logfile*",
    "pg_log_backend_memory_contexts", "pg_promote", "pg_switch_wal", "pg_backup_*",
    "pg_wal_replay_*", "pg_create_*", "pg_drop_*", "pg_copy_*", "pg_replication_*",
    "pg_logical_*", "pg_export_snapshot", "pg_import_system_collations",
    "pg_stat_reset*", "pg_stat_clear_snapshot", "pg_stat_force_next_flush",
    "pg_sleep*",
    "brin_summarize_*", "brin_desummarize_range", "gin_clean_pending_list",
    "binary_upgrade_*", "pg_extension_config_dump", "pg_nextoid",
    "pg_stop_making_pinned_objects",
    "dblink*",  # extension: connects out and runs arbitrary SQL there
)
READS_ELSEWHERE: tuple[str, ...] = (
    "pg_read_file*", "pg_read_binary_file", "pg_ls_*", "pg_stat_file", "pg_current_logfile",
    "pg_hba_file_rules", "pg_ident_file_mappings", "pg_show_all_file_settings",
    "query_to_xml*", "query_to_xmlschema", "cursor_to_xml*", "table_to_xml*",
    "schema_to_xml*", "database_to_xml*", "ts_stat", "ts_rewrite",
    "current_setting",  # server settings: what the rules keep out of a caller's reach
)
# Volatile built-ins that read without changing anything.
HARMLESS_VOLATILE: frozenset[str] = frozenset({
    "random", "clock_timestamp", "timeofday", "gen_random_uuid", "currval", "lastval",
    "current_query", "pg_relation_size", "pg_table_size", "pg_total_relation_size",
    "pg_indexes_size", "pg_database_size", "pg_tablespace_size", "pg_is_in_recovery",
    "pg_jit_available", "pg_blocking_pids", "pg_safe_snapshot_blocking_pids",
    "pg_lock_status", "pg_partition_tree", "pg_partition_ancestors", "pg_xact_status",
    "txid_status", "pg_sequence_last_value", "pg_stat_have_stats",
    "pg_xact_commit_timestamp", "pg_xact_commit_timestamp_origin", "pg_last_committed_xact",
    "pg_collation_actual_version", "pg_database_collation_actual_version",
    "pg_is_wal_replay_paused", "pg_get_wal_replay_pause_state", "pg_current_wal_lsn",
    "pg_current_wal_flush_lsn", "pg_current_wal_insert_lsn", "pg_last_wal_receive_lsn",
    "pg_last_wal_replay_lsn", "pg_last_xact_replay_timestamp", "pg_notification_queue_usage",
    "pg_get_wal_resource_managers", "pg_control_checkpoint", "pg_control_init",
    "pg_control_recovery", "pg_control_system", "pg_get_multixact_members",
    "pg_get_backend_memory_contexts", "pg_get_shmem_allocations", "pg_prepared_xact",
    "pg_isolation_test_session_is_blocked", "pg_show_replication_origin_status",
    "pg_stat_get_recovery_prefetch",
})
# Set-returning built-ins that cannot read a table: the only table functions a tenant
# route lets into FROM.
TABLE_SAFE: frozenset[str] = frozenset({
    "generate_series", "generate_subscripts", "unnest", "json_each", "json_each_text",
    "jsonb_each", "jsonb_each_text", "json_array_elements", "json_array_elements_text",
    "jsonb_array_elements", "jsonb_array_elements_text", "json_object_keys",
    "jsonb_object_keys", "json_to_record", "json_to_recordset", "jsonb_to_record",
    "jsonb_to_recordset", "json_populate_record", "json_populate_recordset",
    "jsonb_populate_record", "jsonb_populate_recordset", "jsonb_path_query",
    "regexp_matches", "regexp_split_to_table", "string_to_table", "ts_debug", "ts_parse",
    "ts_token_type", "json_table", "jsonb_path_query_tz",
})
# TABLESAMPLE methods of core and of the tsm_system_* contrib modules.
SAMPLE_METHODS: frozenset[str] = frozenset({"bernoulli", "system", "system_rows",
                                           "system_time"})
OPERATORS: frozenset[str] = _words(catalog.OPERATORS_IMMUTABLE) | _words(
    catalog.OPERATORS_STABLE) | _words(catalog.OPERATORS_VOLATILE)


HARMLESS_PREFIXES: tuple[str, ...] = ("pg_stat_get_xact_",)  # this transaction's counters


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(name.startswith(p[:-1]) if p.endswith("*") else name == p for p in patterns)


@cache
def classify(name: Name) -> Fn:
    """What a call by this name is. An unqualified name resolves to pg_catalog first
    (PostgreSQL searches it before search_path unless the path lists it later)."""
    schema, fn = name.schema, name.name
    if _matches(fn, SIDE_EFFECTS) and schema in (None, "pg_catalog", "public"):
        return Fn.SIDE_EFFECT
    if fn.startswith("dblink"):
        return Fn.SIDE_EFFECT  # any schema the extension was installed in
    tables = _SCHEMAS.get(schema or "pg_catalog")
    if tables is None:
        return Fn.UNKNOWN
    stable, volatile = tables
    if _matches(fn, READS_ELSEWHERE):
        return Fn.READS_ELSEWHERE
    if fn in stable and fn not in volatile:
        return Fn.SAFE
    if fn in volatile:
        harmless = fn in HARMLESS_VOLATILE or fn.startswith(HARMLESS_PREFIXES)
        return Fn.HARMLESS if harmless else Fn.VOLATILE
    if schema is None and _matches(fn, SIDE_EFFECTS):
        return Fn.SIDE_EFFECT
    return Fn.UNKNOWN


def is_builtin_operator(op: Name) -> bool:
    return op.schema in (None, "pg_catalog") and op.name in OPERATORS
