"""A route's SQL policy, compiled once from `SqlSpec`: hashable, so it can key caches
and be compared across rule reloads."""

from __future__ import annotations

from dataclasses import dataclass, field

from proxy.config.schema import SqlSpec

# Functions with side effects, file/network/program access or that stall the server.
# A trailing `*` matches a prefix. Names are compared lower-case (fail closed: a quoted
# "PG_SLEEP" is blocked too). Applied to every dialect: a name that does not exist in
# the route's dialect costs nothing, and per-dialect gaps are how bypasses start.
COMMON_BLOCKED: frozenset[str] = frozenset(
    {
        # PostgreSQL
        "pg_sleep*", "pg_read_*", "pg_ls_*", "pg_stat_file", "pg_file_*", "lo_*",
        "dblink*", "set_config", "nextval", "setval", "pg_terminate_backend",
        "pg_cancel_backend", "pg_advisory*", "pg_try_advisory*", "pg_reload_conf",
        "pg_rotate_logfile", "pg_promote", "pg_switch_wal", "pg_create_*", "pg_drop_*",
        "pg_replication_*", "pg_logical_*", "pg_notify", "pg_stat_reset*", "pg_backup_*",
        "pg_start_backup", "pg_stop_backup", "pg_wal_replay_*", "pg_import_system_collations",
        "query_to_xml*", "table_to_xml*", "cursor_to_xml*", "schema_to_xml*",
        "database_to_xml*", "query_to_xmlschema", "table_to_xmlschema",
        # ... and those that run SQL given as a string (it would escape the tenant filter)
        "crosstab*", "ts_stat", "ts_rewrite",
        # MySQL / MariaDB
        "sleep", "benchmark", "load_file", "get_lock", "release_lock", "release_all_locks",
        "master_pos_wait", "source_pos_wait", "sys_exec", "sys_eval",
        # SQL Server
        "xp_*", "sp_*", "openrowset", "opendatasource", "openquery",
        # ClickHouse / DuckDB / Snowflake / BigQuery: I/O table functions and side effects
        "sleepeachrow", "url", "file", "s3", "s3cluster", "remote", "remotesecure",
        "executable", "hdfs", "jdbc", "odbc", "read_*", "glob", "parquet_scan",
        "sniff_csv", "getenv", "system$*", "external_query",
    }
)


@dataclass(frozen=True, slots=True)
class SqlPolicy:
    """What a route allows. `tenant_tables` and `allowed_tables` hold lower-case names,
    optionally schema-qualified (`public.orders`)."""

    dialect: str
    read_only: bool
    block_ddl: bool
    block_dcl: bool
    blocked_functions: frozenset[str]
    allowed_tables: frozenset[str] | None
    tenant_column: str | None
    tenant_tables: frozenset[str]
    max_rows: int | None
    allowed_functions: frozenset[str] = frozenset()
    """sql.functions.allow, lower-case."""
    route_blocked_functions: frozenset[str] = frozenset()
    """The route's own blocked_functions, without the cross-dialect list (postgres judge)."""
    _prefixes: tuple[str, ...] = field(init=False, compare=False, hash=False, repr=False)

    def __post_init__(self) -> None:
        prefixes = tuple(p[:-1] for p in self.blocked_functions if p.endswith("*"))
        object.__setattr__(self, "_prefixes", prefixes)

    @classmethod
    def from_spec(cls, spec: SqlSpec) -> SqlPolicy:
        tenant = spec.tenant
        return cls(
            dialect=spec.dialect,
            read_only=spec.read_only,
            block_ddl=spec.block_ddl,
            block_dcl=spec.block_dcl,
            blocked_functions=COMMON_BLOCKED | {f.lower() for f in spec.blocked_functions},
            allowed_tables=(
                None
                if spec.allowed_tables is None
                else frozenset(t.lower() for t in spec.allowed_tables)
            ),
            tenant_column=tenant.column if tenant else None,
            tenant_tables=frozenset(t.lower() for t in tenant.tables) if tenant else frozenset(),
            max_rows=spec.max_rows,
            route_blocked_functions=frozenset(f.lower() for f in spec.blocked_functions),
            allowed_functions=frozenset(
                f.lower() for f in (spec.functions.allow if spec.functions else ())),
        )

    def function_blocked(self, name: str) -> bool:
        name = name.lower()
        return name in self.blocked_functions or name.startswith(self._prefixes)


def table_matches(names: frozenset[str], db: str, name: str) -> bool:
    """Does table `db.name` match an entry of `names`? Case-insensitive; an entry without a
    schema matches the name in any schema, and an unqualified reference matches a
    qualified entry (search_path could resolve it there)."""
    name = name.lower()
    if name in names:
        return True
    db = db.lower()
    for entry in names:
        schema, _, tail = entry.rpartition(".")
        if tail == name and (not db or schema.rpartition(".")[2] == db):
            return True
    return False
