"""The decision for PostgreSQL text: a pure function of the parsed facts and the route.

Fail closed on read-only and tenant routes: a statement kind, function, operator or
table function this module cannot prove harmless is refused; a route widens functions
by name (`sql.functions.allow`), catalogs by naming them in `allowed_tables`.
"""

from __future__ import annotations

from dataclasses import dataclass

from proxy.sql.pg.functions import (
    SAMPLE_METHODS,
    TABLE_SAFE,
    Fn,
    classify,
    is_builtin_operator,
)
from proxy.sql.pg.parse import PARSER, WRITE_NODES, Name, Parsed, Statement
from proxy.sql.pg.userfns import NO_USER_FUNCTIONS, UserFunctions

READS = frozenset({"SelectStmt", "VariableShowStmt"})
DCL = frozenset({
    "GrantStmt", "GrantRoleStmt", "AlterDefaultPrivilegesStmt", "VariableSetStmt",
    "TransactionStmt", "LockStmt", "DiscardStmt", "ConstraintsSetStmt", "CreateRoleStmt",
    "AlterRoleStmt", "AlterRoleSetStmt", "DropRoleStmt", "ReassignOwnedStmt",
    "DropOwnedStmt", "ExecuteStmt", "PrepareStmt", "DeallocateStmt", "ListenStmt",
    "UnlistenStmt", "NotifyStmt", "AlterSystemStmt", "DeclareCursorStmt", "FetchStmt",
    "ClosePortalStmt",
})
_DDL_PREFIXES = ("Create", "Alter", "Drop")
DDL_OTHER = frozenset({
    "TruncateStmt", "CommentStmt", "IndexStmt", "ViewStmt", "RuleStmt", "DefineStmt",
    "RenameStmt", "RefreshMatViewStmt", "ReindexStmt", "ClusterStmt", "VacuumStmt",
    "SecLabelStmt", "ImportForeignSchemaStmt", "CompositeTypeStmt", "CreateTableAsStmt",
})
_CATALOG_SCHEMAS = frozenset({"pg_catalog", "information_schema", "pg_toast"})


@dataclass(frozen=True, slots=True)
class PgRules:
    """The part of a route's SQL policy this judge reads (hashable: keys caches)."""

    read_only: bool
    block_ddl: bool
    block_dcl: bool
    tenant: bool
    allow_functions: frozenset[str]  # lower-case, bare or schema-qualified
    blocked_functions: frozenset[str]  # the route's own list (a trailing * is a prefix)
    allowed_tables: frozenset[str]  # catalogs a tenant route may read, by exact name
    user_functions: UserFunctions = NO_USER_FUNCTIONS
    """What the upstream's catalog says of functions PostgreSQL does not ship (the wire
    listener reads it; empty over HTTP)."""

    @property
    def guarded(self) -> bool:
        return self.read_only or self.block_ddl or self.block_dcl or self.tenant


@dataclass(frozen=True, slots=True)
class PgVerdict:
    reason: str | None  # None = allowed; never SQL text or a literal
    kind: str
    read_only: bool  # every statement only reads
    statements: int
    parser: str = PARSER


def _is_ddl(node: str) -> bool:
    return node.startswith(_DDL_PREFIXES) or node in DDL_OTHER


def _allowed_by_name(name: Name, rules: PgRules) -> bool:
    bare = name.name.lower()
    return bare in rules.allow_functions or str(name).lower() in rules.allow_functions


def _blocked_by_route(name: Name, rules: PgRules) -> bool:
    bare = name.name.lower()
    for entry in rules.blocked_functions:
        if entry.endswith("*") and bare.startswith(entry[:-1]):
            return True
        if entry in (bare, str(name).lower()):
            return True
    return False


def _function_reason(st: Statement, rules: PgRules) -> tuple[str | None, bool]:
    """(refusal, a call may change something)."""
    effects = False
    strict = rules.read_only or rules.tenant
    for call in st.calls:
        name = call.name
        if _blocked_by_route(name, rules):
            return f"function {name} is blocked on this route", True
        fn = classify(name)
        allowed = _allowed_by_name(name, rules)
        if fn is not Fn.SAFE and fn is not Fn.HARMLESS:
            effects = True
        if fn is Fn.SIDE_EFFECT:
            if rules.read_only or not allowed:
                return f"function {name} {fn.value}", True
        elif fn is Fn.READS_ELSEWHERE:
            if not allowed:
                return f"function {name} {fn.value}; allow it in sql.functions.allow", True
        elif fn is Fn.UNKNOWN and strict and not allowed:
            reason = _user_function_reason(name, rules)
            if reason is not None:
                return reason, True
        elif fn is Fn.VOLATILE and strict and not allowed:
            return (f"function {name} is {fn.value} and may write; allow it by name in "
                    "sql.functions.allow"), True
        if call.in_from and rules.tenant and name.name not in TABLE_SAFE and not allowed:
            return f"table function {name} may read a scoped table", True
    for op in st.operators:
        if not is_builtin_operator(op) and strict and not _allowed_by_name(op, rules):
            return (f"operator {op} is not a PostgreSQL built-in (it runs a function); "
                    "allow it by name in sql.functions.allow"), True
    for method in st.sample_methods:
        if method not in SAMPLE_METHODS and strict:
            return f"TABLESAMPLE method {method} is not known", True
    return None, effects


def _user_function_reason(name: Name, rules: PgRules) -> str | None:
    """None when the upstream's catalog shows a function that cannot write itself
    (STABLE/IMMUTABLE, SQL or PL/pgSQL: PostgreSQL refuses its INSERTs) on a read-only
    route that is not tenant-scoped; else why it is refused."""
    table = rules.user_functions
    found = table.lookup(str(name), name.name, name.schema is not None)
    allow = "allow it by name in sql.functions.allow"
    if found is None:
        where = {"none": "(user functions are judged by the upstream's catalog on the wire "
                         "only)",
                 "unavailable": "(the upstream's catalog could not be read)",
                 }.get(table.source, "nor in the upstream's catalog")
        return f"function {name} is not a PostgreSQL built-in {where} and may write; {allow}"
    if found == "volatile":
        return (f"function {name} is a user function that may write (VOLATILE, not a plain "
                f"function, or not SQL/PL/pgSQL in the upstream's catalog); {allow}")
    if rules.tenant:
        # SECURITY: its body may read a tenant table, which no tenant predicate reaches.
        return (f"function {name} is a user function whose body the tenant scope cannot "
                f"reach; {allow}")
    return None


def _catalog(name: Name, rules: PgRules) -> bool:
    """SECURITY: statistics and catalogs hold other tenants' values (pg_stats histograms)."""
    if name.schema in _CATALOG_SCHEMAS or (name.schema or "").startswith("pg_") \
            or name.name.startswith("pg_"):
        return str(name).lower() not in rules.allowed_tables \
            and name.name.lower() not in rules.allowed_tables
    return False


def _statement_reason(st: Statement, rules: PgRules) -> tuple[str | None, bool]:
    """(refusal, may write) for one statement."""
    node, kind = st.node, st.kind
    if node == "ExplainStmt":
        target = st.explain_target
        assert target is not None
        reason, writes = _statement_reason(target, rules)
        if st.explain_analyze and (writes or target.node not in READS):
            if rules.read_only or rules.tenant:
                return "EXPLAIN ANALYZE executes the statement, which is not a read", True
            return reason, True
        if st.explain_analyze and rules.tenant:
            return "EXPLAIN ANALYZE on a tenant route counts other tenants' rows", True
        # SECURITY: not `writes and analyze`: `(ANALYZE 0)` and `(ANALYZE 1)` differ only
        # in a constant, which the fast paths may swap; the verdict must not depend on it.
        return reason, writes
    writes = node not in READS
    if node in WRITE_NODES:
        reason = "statement writes data on a read-only route" if rules.read_only else None
    elif node in READS:
        reason = None
    elif node == "CopyStmt" and st.copy_to_client:
        reason = "COPY is not allowed on a read-only route" if rules.read_only else None
    elif _is_ddl(node):
        reason = (f"DDL statement ({kind}) is not allowed"
                  if rules.read_only or rules.block_ddl else None)
    elif node in DCL:
        reason = (f"DCL/session statement ({kind}) is not allowed"
                  if rules.read_only or rules.block_dcl else None)
    else:
        reason = f"statement type {kind} is not allowed" if rules.guarded else None
    if reason is not None:
        return reason, True
    if st.into:
        writes = True
        if rules.read_only or rules.block_ddl:
            return "SELECT ... INTO creates a table", True
    if st.locking:
        writes = True
        if rules.read_only:
            return "locking clauses (FOR UPDATE/SHARE) are not allowed", True
    nested_writes = [n for n in st.nested if n in WRITE_NODES]
    if nested_writes:
        writes = True
        if rules.read_only:
            return "data-modifying statement inside a query", True
    other = [n for n in st.nested if n not in WRITE_NODES and n not in READS]
    if other and node not in ("PrepareStmt", "CopyStmt", "DeclareCursorStmt",
                              "CreateTableAsStmt", "ViewStmt", "RuleStmt") and rules.guarded:
        return f"nested {other[0]} statement", True
    if rules.tenant:
        for rel in st.relations:
            if _catalog(rel, rules):
                return (f"catalog or statistics relation {rel} is not allowed on a tenant "
                        "route (name it in allowed_tables to allow it)"), True
    if rules.guarded:
        reason, effects = _function_reason(st, rules)
        if reason is not None:
            return reason, True
        writes = writes or effects
    return None, writes


def judge(parsed: Parsed, rules: PgRules) -> PgVerdict:
    """Every statement of the text is judged; the first refusal decides."""
    if parsed.error is not None:
        return PgVerdict(parsed.error, "unknown", False, 0)
    stmts = parsed.statements
    if not stmts:
        return PgVerdict("empty SQL", "unknown", False, 0)
    kind = stmts[0].kind
    writes = False
    for st in stmts:
        reason, w = _statement_reason(st, rules)
        writes = writes or w
        if reason is not None:
            return PgVerdict(reason, st.kind, False, len(stmts))
    return PgVerdict(None, kind, not writes, len(stmts))
