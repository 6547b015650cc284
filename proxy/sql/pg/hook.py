"""Where the SQL engine (proxy/sql/engine.py) meets the PostgreSQL judge: the route's
rules, the verdict as a Plan, and the two proofs the engine's fast paths and rewrites
need before they may stand in for a fresh parse."""

from __future__ import annotations

from proxy.model.errors import ErrorCode
from proxy.sql.digest import FastDigest
from proxy.sql.pg.guard import PgJudge, rewrite_is_faithful
from proxy.sql.pg.judge import PgRules
from proxy.sql.pg.parse import PARSER, scan_constants
from proxy.sql.pg.userfns import NO_USER_FUNCTIONS, UserFunctions
from proxy.sql.plan import Plan, blocked
from proxy.sql.policy import SqlPolicy

__all__ = ["PARSER", "decides_alone", "faithful", "judge_for", "lexes_alike", "parser_for",
           "verdict_plan"]

POSTGRES = frozenset({"postgres", "postgresql"})


def rules_for(policy: SqlPolicy,
              user_functions: UserFunctions = NO_USER_FUNCTIONS) -> PgRules:
    return PgRules(
        read_only=policy.read_only,
        block_ddl=policy.block_ddl,
        block_dcl=policy.block_dcl,
        tenant=policy.tenant_column is not None,
        allow_functions=policy.allowed_functions,
        blocked_functions=frozenset(f.lower() for f in policy.route_blocked_functions),
        allowed_tables=policy.allowed_tables or frozenset(),
        user_functions=user_functions,
    )


def parser_for(dialect: str) -> str:
    """Which parser judges a route's SQL (callwarden explain shows it)."""
    return PARSER if dialect.lower() in POSTGRES else f"sqlglot ({dialect})"


def judge_for(policy: SqlPolicy, cache_size: int, cached: bool,
              user_functions: UserFunctions = NO_USER_FUNCTIONS) -> PgJudge | None:
    """The route's PostgreSQL judge; None for other dialects."""
    if policy.dialect.lower() not in POSTGRES:
        return None
    return PgJudge(rules_for(policy, user_functions), cache_size if cached else 0,
                   cached=cached)


def decides_alone(policy: SqlPolicy) -> bool:
    """Nothing to rewrite or to match against table lists: the verdict is the whole
    answer and the text goes upstream unchanged (sqlglot never reads it)."""
    return policy.tenant_column is None and policy.max_rows is None \
        and policy.allowed_tables is None and not policy.lists_tables


def verdict_plan(pg: PgJudge, sql: str, alone: bool) -> Plan:
    v = pg.judge(sql)
    if v.reason is not None:
        return blocked(ErrorCode.SQL_BLOCKED, v.reason, v.kind)
    if v.statements > 1:
        return blocked(ErrorCode.SQL_BLOCKED, f"stacked statements ({v.statements}) are "
                       "not allowed", v.kind)
    return Plan(None, "", v.kind, v.read_only)


def lexes_alike(sql: str, fd: FastDigest) -> bool:
    """SECURITY: the fast split may stand in for PostgreSQL's lexer on texts of this shape
    only if PostgreSQL cuts exactly these literals out of this text: then every text of
    the shape (same text between literals, literals of the split's plain alphabets) reads
    as the same tree with other constant values."""
    consts = scan_constants(sql)
    if consts is None:
        return False
    have = set(consts)
    return all(span in have for span in fd.spans())


def faithful(sql: str, segments: tuple[str, ...], marker_sql: str,
             policy: SqlPolicy) -> bool:
    """Is the rewrite (tenant slots filled with the marker) the judged text plus the
    tenant predicates and row cap, read by PostgreSQL's parser?"""
    marker = marker_sql.strip("'")
    tables = frozenset(t.rpartition(".")[2] for t in policy.tenant_tables)
    return rewrite_is_faithful(sql, marker_sql.join(segments), policy.tenant_column,
                               marker, policy.max_rows, tables)
