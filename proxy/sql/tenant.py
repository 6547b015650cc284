"""Tenant scoping helpers: which table references are real tables (not CTEs), and how
to write the tenant value and column so they cannot change the query."""

from __future__ import annotations

import re

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.tokens import Tokenizer, TokenType

from proxy.sql.policy import table_matches

_PLAIN = re.compile(r"[a-z_][a-z0-9_]*")
_STRING_TOKENS = frozenset({TokenType.STRING, TokenType.BYTE_STRING})


def _exact(ident: exp.Expression | None, dialect: Dialect) -> str:
    """The name as the database resolves it (quoted = exact, unquoted = folded)."""
    if not isinstance(ident, exp.Identifier):
        return ident.name if ident is not None else ""
    fresh = exp.Identifier(this=ident.this, quoted=ident.args.get("quoted"))
    return dialect.normalize_identifier(fresh).name


def _cte_name(cte: exp.Expression, dialect: Dialect) -> str:
    alias = cte.args.get("alias")
    return _exact(alias.this if alias is not None else None, dialect)


def is_cte_ref(table: exp.Table, dialect: Dialect) -> bool:
    """Does `table` name a CTE visible where it stands? A CTE body sees only the CTEs
    before it (and itself when RECURSIVE). SECURITY: matching is exact per dialect, so a
    quoted "Orders" CTE cannot shadow the real orders table."""
    if table.args.get("db") or table.args.get("catalog"):
        return False
    name = _exact(table.this, dialect)
    cur: exp.Expression = table
    while (parent := cur.parent) is not None:
        if isinstance(parent, exp.With):
            upto = 0
            if isinstance(cur, exp.CTE) and cur.index is not None:
                upto = cur.index + (1 if parent.args.get("recursive") else 0)
            if any(_cte_name(c, dialect) == name for c in parent.expressions[:upto]):
                return True
        elif cur.arg_key != "with_":
            with_ = parent.args.get("with_")
            if isinstance(with_, exp.With) and any(
                _cte_name(c, dialect) == name for c in with_.expressions
            ):
                return True
        cur = parent
    return False


def real_tables(root: exp.Expression, dialect: Dialect) -> list[exp.Table]:
    """Every reference to a named table (not a CTE, not a table function)."""
    return [
        t
        for t in root.find_all(exp.Table)
        if isinstance(t.this, exp.Identifier) and not is_cte_ref(t, dialect)
    ]


def is_tenant_table(table: exp.Table, tables: frozenset[str]) -> bool:
    return table_matches(tables, table.text("db"), table.name)


def dml_target(table: exp.Table) -> exp.Expression | None:
    """The INSERT/UPDATE/DELETE/MERGE statement writing into `table`, if any."""
    node: exp.Expression = table
    if isinstance(table.parent, exp.Schema) and table.arg_key == "this":
        node = table.parent
    parent = node.parent
    if isinstance(parent, (exp.Insert, exp.Update, exp.Delete, exp.Merge)) and (
        node.arg_key in ("this", "tables")
    ):
        return parent
    return None


def column_sql(column: str, dialect: Dialect) -> str:
    """The tenant column as an identifier: bare when plain lower-case (so dialects that
    fold case still find it), quoted otherwise."""
    ident = exp.to_identifier(column, quoted=not _PLAIN.fullmatch(column))
    sql = ident.sql(dialect=dialect)
    toks = dialect.tokenize(sql)
    if len(toks) != 1 or toks[0].token_type not in (TokenType.VAR, TokenType.IDENTIFIER):
        sql = exp.to_identifier(column, quoted=True).sql(dialect=dialect)
    return sql


def quote_tenant(tenant: str, dialect: Dialect, tokenizer: Tokenizer) -> str | None:
    """The tenant as a string literal, or None when it cannot be written safely.
    SECURITY: the result is re-tokenized and must come back as exactly one string token
    carrying exactly the tenant, so quotes, backslashes or unicode cannot escape it."""
    if not tenant or "\x00" in tenant:
        return None
    try:
        tenant.encode("utf-8")
    except UnicodeEncodeError:
        return None
    if "\\" in tenant and type(dialect).__name__ == "Postgres":
        # E'' reads the same whether standard_conforming_strings is on or off.
        lit = "E'" + tenant.replace("\\", "\\\\").replace("'", "''") + "'"
    else:
        lit = exp.Literal.string(tenant).sql(dialect=dialect)
    toks = tokenizer.tokenize(lit)
    if len(toks) != 1 or toks[0].token_type not in _STRING_TOKENS or toks[0].text != tenant:
        return None
    return lit
