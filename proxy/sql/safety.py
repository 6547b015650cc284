"""Statement safety, judged on sqlglot's AST (never on keywords, so comments, string
literals and odd spacing cannot hide or fake a statement).

Fail closed: the root statement type must be on an allow-list; anything sqlglot does
not model (its `Command` fallback) is refused while any safety flag is on. Functions on
read-only and tenant routes are allowlisted per dialect (proxy/sql/functions.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from proxy.sql.policy import SqlPolicy

QUERY_ROOTS: tuple[type[exp.Expression], ...] = (
    exp.Select, exp.SetOperation, exp.Values, exp.Subquery,
)
WRITES: tuple[type[exp.Expression], ...] = (exp.Insert, exp.Update, exp.Delete, exp.Merge)
DDL: tuple[type[exp.Expression], ...] = (
    exp.Create, exp.Drop, exp.Alter, exp.TruncateTable, exp.Comment, exp.Analyze,
    exp.Cache, exp.Uncache, exp.Pragma, exp.Attach, exp.Detach, exp.Install, exp.Refresh,
)
DCL: tuple[type[exp.Expression], ...] = (
    exp.Grant, exp.Revoke, exp.Set, exp.Use, exp.Transaction, exp.Commit, exp.Rollback,
    exp.Kill, exp.Execute,
)
_WRITES_COPY = (*WRITES, exp.Copy)
_WATCHED = (exp.Func, exp.Table, *WRITES, exp.Copy, exp.Into, exp.Lock, *DDL, *DCL, exp.Command)
_KINDS: dict[type[exp.Expression], str] = {
    exp.Insert: "insert", exp.Update: "update", exp.Delete: "delete", exp.Merge: "merge",
}


@dataclass(frozen=True, slots=True)
class Judgement:
    reason: str | None  # None = allowed
    kind: str
    read_only: bool


def statement_kind(root: exp.Expression) -> str:
    if isinstance(root, QUERY_ROOTS):
        return "select"
    if isinstance(root, exp.Command):
        word = str(root.this).split()[0].lower() if root.this else "command"
        return word if word.isalpha() and len(word) <= 20 else "command"
    return _KINDS.get(type(root), root.key)


_UNTYPED = (exp.Anonymous, exp.AnonymousAggFunc)


def _function_names(node: exp.Func) -> list[str]:
    if isinstance(node, _UNTYPED):
        return [node.name.lower()]
    return [node.key, *(n.lower() for n in node.sql_names())]


def _qualifier(node: exp.Expression) -> list[str] | None:
    """`a.b` in `a.b.f()`, as names; None for anything but plain names."""
    if isinstance(node, (exp.Identifier, exp.Var)):
        return [node.name.lower()]
    if isinstance(node, exp.Column):
        return [p.name.lower() for p in node.parts]
    if isinstance(node, exp.Dot):
        left, right = _qualifier(node.this), _qualifier(node.expression)
        return None if left is None or right is None else left + right
    return None


def function_reason(node: exp.Func, policy: SqlPolicy) -> str | None:
    """Why this call is refused, or None. SECURITY: on read-only and tenant routes only
    typed functions (not on the dialect's list) and known pure built-ins pass; a
    schema-qualified call may resolve to any user function, so it passes only when the
    route allows its full name."""
    names = _function_names(node)
    parent = node.parent
    if isinstance(parent, exp.Dot) and node.arg_key == "expression":
        qual = _qualifier(parent.this)
        full = ".".join([*(qual or ["?"]), names[0]])
        if full in policy.allowed_functions:
            return None
        if policy.strict_functions:
            return f"function {full} is not allowed (allow it in sql.functions.allow)"
    for name in names:
        if policy.function_blocked(name):
            return f"function {name} is blocked"
    if policy.strict_functions and isinstance(node, _UNTYPED) \
            and not policy.function_known(names[0]) \
            and node.find_ancestor(exp.Hint) is None:  # optimizer hints are not calls
        return f"function {names[0]} is not allowed (allow it in sql.functions.allow)"
    return None


def _table_reason(table: exp.Table, sql: str, policy: SqlPolicy) -> str | None:
    if _from_string(table, sql):
        return "string literals as table names (file reads) are not allowed"
    source = table.this
    if policy.tenant_column is None or isinstance(source, exp.Identifier):
        return None
    # SECURITY: a table function in FROM escapes the tenant filter if it can read a
    # table (DuckDB query_table, query); only those that build rows from their
    # arguments pass on a tenant route, or those the route allows by name.
    if isinstance(source, exp.Func):
        names = _function_names(source)
        if any(n in policy.rules.sources or n in policy.allowed_functions for n in names):
            return None
        return f"table function {names[0]} is not allowed on a tenant route"
    return "this FROM item is not allowed on a tenant route"


def judge(root: exp.Expression, sql: str, policy: SqlPolicy) -> Judgement:
    """Is this one statement allowed on the route? The reason names a category or a
    function, never SQL text or a literal."""
    kind = statement_kind(root)
    unguarded = not (policy.read_only or policy.block_ddl or policy.block_dcl)
    reason = _root_reason(root, kind, policy, unguarded)
    writes = isinstance(root, WRITES)
    may_write = writes or not isinstance(root, QUERY_ROOTS)
    if reason is None:
        for node in root.walk():
            if not isinstance(node, _WATCHED):
                continue
            if isinstance(node, exp.Func):
                if isinstance(node, _UNTYPED):
                    may_write = True  # unknown function: may have side effects
                reason = function_reason(node, policy)
            elif isinstance(node, exp.Table):
                reason = _table_reason(node, sql, policy)
            elif node is root:
                continue
            elif isinstance(node, _WRITES_COPY):
                may_write = True
                if policy.read_only:
                    reason = "data-modifying statement inside a query"
            elif isinstance(node, exp.Into):
                may_write = True
                if policy.read_only or policy.block_ddl:
                    reason = "SELECT ... INTO creates a table"
            elif isinstance(node, exp.Lock):
                may_write = True
                if policy.read_only:
                    reason = "locking clauses (FOR UPDATE/SHARE) are not allowed"
            else:
                reason = f"nested {node.key} statement"
            if reason is not None and not unguarded:
                break
    if unguarded:
        reason = None
    return Judgement(reason, kind, not may_write and reason is None)


def _root_reason(
    root: exp.Expression, kind: str, policy: SqlPolicy, unguarded: bool
) -> str | None:
    if isinstance(root, QUERY_ROOTS):
        return None
    if isinstance(root, WRITES):
        return "statement writes data on a read-only route" if policy.read_only else None
    if isinstance(root, DDL):
        if policy.read_only or policy.block_ddl:
            return f"DDL statement ({kind}) is not allowed"
        return None
    if isinstance(root, DCL):
        if policy.read_only or policy.block_dcl:
            return f"DCL/session statement ({kind}) is not allowed"
        return None
    if isinstance(root, exp.Command):
        return f"unsupported statement ({kind}) is not allowed"
    return f"statement type {kind} is not allowed"


def _from_string(table: exp.Table, sql: str) -> bool:
    """SECURITY: DuckDB and others read files named by a string in FROM."""
    ident = table.this
    if not isinstance(ident, exp.Identifier):
        return False
    start = ident.meta.get("start") if ident.meta else None
    return isinstance(start, int) and sql[start : start + 1] == "'"
