"""Plan the rewrite of an allowed statement: tenant filters and the outer row cap.

Each reference to a tenant table becomes `(SELECT * FROM t WHERE col = <tenant>) AS
alias`, keeping the alias (or the bare name), so joins, outer-join semantics, column
references and `SELECT *` are unchanged. UPDATE/DELETE on a tenant table get the
predicate ANDed into WHERE; INSERT must carry the caller's tenant.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp, parse_one
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import Token, TokenType

from proxy.model.errors import ErrorCode
from proxy.sql.digest import PARAM_TYPES
from proxy.sql.functions import is_catalog
from proxy.sql.plan import AFTER, BEFORE, REPLACE, TENANT, Edit, Plan, blocked
from proxy.sql.policy import SqlPolicy, table_matches
from proxy.sql.safety import QUERY_ROOTS, WRITES, Judgement
from proxy.sql.tenant import dml_target, is_tenant_table, real_tables

_TABLE_KEYS = frozenset({"this", "db", "catalog", "alias"})
_INNER = ("only", "sample")
"""Table clauses that move into the filtered derived table (AST mode)."""
_WRAPPABLE = _TABLE_KEYS | set(_INNER)
_TRAILERS = ("locks", "format", "settings", "options", "into")
MISMATCH = ErrorCode.TENANT_MISMATCH
_AFTER_FROM_ITEM = frozenset(
    getattr(TokenType, name) for name in (
        "SEMICOLON", "COMMA", "R_PAREN", "WHERE", "GROUP_BY", "ORDER_BY", "LIMIT", "HAVING",
        "WINDOW", "QUALIFY", "UNION", "EXCEPT", "INTERSECT", "JOIN", "INNER", "LEFT", "RIGHT",
        "FULL", "CROSS", "NATURAL", "OUTER", "ON", "USING", "FETCH", "OFFSET", "FOR",
        "SEMI", "ANTI", "ASOF", "POSITIONAL", "STRAIGHT_JOIN")
    if hasattr(TokenType, name))
"""Tokens that can follow a FROM item: a TABLESAMPLE clause ends before one."""


class Refusal(Exception):
    """Internal short-circuit from the planner, turned into a blocked Plan."""

    def __init__(self, code: ErrorCode, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


@dataclass(frozen=True, slots=True)
class Context:
    policy: SqlPolicy
    dialect: Dialect
    column: str  # tenant column, as SQL
    marker_sql: str  # how the AST-mode tenant marker literal renders
    marker: exp.Literal
    limit_suffix: bool  # the dialect caps with a trailing `LIMIT n`


def table_names(tables: list[exp.Table]) -> tuple[str, ...]:
    """`catalog.db.name` (the parts present), lower case, each once, in order."""
    out: dict[str, None] = {}
    for t in tables:
        parts = (t.text("catalog"), t.text("db"), t.name)
        out[".".join(p.lower() for p in parts if p)] = None
    return tuple(out)


def column_names(root: exp.Expression) -> tuple[str, ...]:
    """Columns the statement names, lower case, each once: the bare name, and also
    `table.column` when qualified; `*` for any star (`t.*` also as `t.*`)."""
    out: dict[str, None] = {}
    for node in root.find_all(exp.Column, exp.Star):
        if isinstance(node, exp.Star):
            if not isinstance(node.parent, exp.Column):
                out["*"] = None
            continue
        name = "*" if isinstance(node.this, exp.Star) else node.name.lower()
        table = node.table.lower()
        if table:
            out[f"{table}.{name}"] = None
        out[name] = None  # also bare: `"salary" in sql.columns` sees `e.salary`
    return tuple(out)


def plan(sql: str, tokens: list[Token], root: exp.Expression, j: Judgement, ctx: Context) -> Plan:
    try:
        return _plan(sql, tokens, root, j, ctx)
    except Refusal as r:
        return blocked(r.code, r.reason, j.kind)


def _plan(sql: str, tokens: list[Token], root: exp.Expression, j: Judgement, ctx: Context) -> Plan:
    pol = ctx.policy
    by_start = {t.start: i for i, t in enumerate(tokens)}
    lit_token: dict[int, int] = {}  # id(Literal node) -> token index
    for node in root.find_all(exp.Literal):
        i = by_start.get(node.meta.get("start", -1))
        if i is not None:
            tok = tokens[i]
            is_str = tok.token_type is TokenType.STRING
            if tok.token_type in PARAM_TYPES and tok.text == node.this and is_str == node.is_string:
                lit_token[id(node)] = i
    mapped = set(lit_token.values())
    pinned = [i for i, t in enumerate(tokens) if t.token_type in PARAM_TYPES and i not in mapped]

    tables = real_tables(root, ctx.dialect)
    if pol.allowed_tables is not None:
        for t in tables:
            if not table_matches(pol.allowed_tables, t.text("db"), t.name):
                raise Refusal(ErrorCode.SQL_BLOCKED, f"table {t.name} is not in allowed_tables")
    if pol.tenant_column:
        for t in tables:
            # SECURITY: catalogs and statistics hold every tenant's values (pg_stats
            # histograms, duckdb_* views); only those allowed_tables names pass.
            parts = tuple(p.lower() for p in (t.text("catalog"), t.text("db"), t.name) if p)
            if is_catalog(pol.rules, parts) and not (
                    pol.allowed_tables is not None
                    and table_matches(pol.allowed_tables, t.text("db"), t.name)):
                raise Refusal(ErrorCode.SQL_BLOCKED,
                              f"catalog relation {t.name} is not allowed on a tenant route")

    wraps: list[exp.Table] = []
    checks: list[int] = []
    dml: exp.Table | None = None
    if pol.tenant_column:
        for node in root.walk():
            if node is not root and isinstance(node, WRITES):
                raise Refusal(ErrorCode.SQL_BLOCKED, "nested data-modifying statements are "
                              "not allowed on a tenant route")
        for t in tables:
            if not is_tenant_table(t, pol.tenant_tables):
                continue
            target = dml_target(t)
            if target is None:
                if any(v for k, v in t.args.items() if k not in _WRAPPABLE):
                    raise Refusal(ErrorCode.SQL_BLOCKED, "unsupported syntax on a tenant table")
                wraps.append(t)
            elif isinstance(target, exp.Insert):
                checks.extend(_insert_checks(target, pol.tenant_column, lit_token))
            elif isinstance(target, (exp.Update, exp.Delete)) and t.arg_key == "this":
                if t.args.get("joins"):
                    raise Refusal(MISMATCH, "multi-table writes to a tenant table")
                if isinstance(target, exp.Update) and _sets_column(target, pol.tenant_column):
                    raise Refusal(MISMATCH, "UPDATE may not change the tenant column")
                dml = t
            else:
                raise Refusal(MISMATCH, f"{j.kind.upper()} into a tenant table is not supported")

    edits: list[Edit] = []
    ast_mode = dml is not None
    for t in wraps:
        edit = _wrap_edits(sql, tokens, by_start, t, ctx, pinned)
        if edit is None:
            ast_mode = True
        else:
            edits.extend(edit)

    limit: int | None = None  # cap to apply in AST mode
    n = pol.max_rows
    if n is not None and isinstance(root, QUERY_ROOTS):
        lim = root.args.get("limit")
        count = lim.expression if isinstance(lim, exp.Limit) else (
            lim.args.get("count") if isinstance(lim, exp.Fetch) else None)
        i = lit_token.get(id(count)) if isinstance(count, exp.Literal) else None
        opts = lim.args.get("limit_options") if lim is not None else None
        if opts is not None and opts.args.get("percent"):
            i = None  # FETCH FIRST n PERCENT: not a row count
        if lim is not None and i is not None and count.this.isdigit():  # type: ignore[union-attr]
            pinned.append(i)
            if int(count.this) > n:
                edits.append(Edit(i, REPLACE, (str(n),)))
        else:
            stmt = [k for k, t in enumerate(tokens) if t.token_type is not TokenType.SEMICOLON]
            if lim is None and ctx.limit_suffix and not any(root.args.get(k) for k in _TRAILERS):
                edits.append(Edit(stmt[-1], AFTER, (f" LIMIT {n}",)))
            elif lim is not None and ctx.limit_suffix and not any(
                    root.args.get(k) for k in _TRAILERS):
                edits.append(Edit(stmt[0], BEFORE, ("SELECT * FROM (",)))
                edits.append(Edit(stmt[-1], AFTER, (f") AS _cw_limited LIMIT {n}",)))
            else:
                ast_mode, limit = True, n

    base = dict(code=None, reason="", kind=j.kind, read_only=j.read_only,
                pinned=tuple(sorted(set(pinned))), tenant_checks=tuple(checks),
                tables=table_names(tables), columns=column_names(root))
    if not ast_mode:
        return Plan(edits=tuple(edits), **base)  # type: ignore[arg-type]
    return Plan(template=_regenerate(root, wraps, dml, limit, ctx), reusable=False,
                **base)  # type: ignore[arg-type]


def _insert_checks(ins: exp.Insert, column: str, lit_token: dict[int, int]) -> list[int]:
    schema = ins.this
    if not isinstance(schema, exp.Schema):
        raise Refusal(MISMATCH, "INSERT into a tenant table must list its columns")
    names = [c.name.lower() for c in schema.expressions]
    if column.lower() not in names:
        raise Refusal(MISMATCH, f"INSERT into a tenant table must set {column}")
    at = names.index(column.lower())
    conflict = ins.args.get("conflict")
    if conflict is not None and conflict.text("action").upper() != "DO NOTHING":
        raise Refusal(MISMATCH, "upserts into a tenant table are not allowed")
    if ins.args.get("overwrite"):
        raise Refusal(MISMATCH, "INSERT OVERWRITE into a tenant table is not allowed")
    values = ins.expression
    if not isinstance(values, exp.Values):
        raise Refusal(MISMATCH, "INSERT ... SELECT into a tenant table cannot be verified")
    out: list[int] = []
    for row in values.expressions:
        cells = row.expressions if isinstance(row, exp.Tuple) else [row]
        cell = cells[at] if at < len(cells) else None
        i = lit_token.get(id(cell))
        if i is None or not cell.is_string:  # type: ignore[union-attr]
            raise Refusal(MISMATCH, f"{column} must be a string literal in INSERT")
        out.append(i)
    return out


def _sets_column(upd: exp.Update, column: str) -> bool:
    for e in upd.expressions:
        target = e.this if isinstance(e, exp.EQ) else e
        if isinstance(target, exp.Column) and target.name.lower() == column.lower():
            return True
    return False


def _wrap_edits(
    sql: str, tokens: list[Token], by_start: dict[int, int], t: exp.Table, ctx: Context,
    pinned: list[int],
) -> list[Edit] | None:
    """Token edits turning `t` into a filtered derived table, or None (use AST mode).
    ONLY and a TABLESAMPLE clause go inside with the table, in the caller's own words."""
    parts = [t.args.get(k) for k in ("catalog", "db", "this") if t.args.get(k) is not None]
    if not all(isinstance(p, exp.Identifier) for p in parts):
        return None
    first = by_start.get(parts[0].meta.get("start", -1))
    last = by_start.get(t.this.meta.get("start", -1))
    if last is not None and tokens[last].end != t.this.meta.get("end"):
        last = None
    if first is None or last is None:
        return None
    if t.args.get("only"):
        if not first or tokens[first - 1].text.upper() != "ONLY":
            return None
        first -= 1
    edits: list[Edit] = []
    inner = ""
    sample = t.args.get("sample")
    if sample is not None:
        span = _sample_span(sql, tokens, last, sample, ctx)
        if span is None:
            return None
        inner = " " + sql[tokens[span[0]].start : tokens[span[1]].end + 1]
        for i in range(span[0], span[1] + 1):
            edits.append(Edit(i, REPLACE, ("",)))
            if tokens[i].token_type in PARAM_TYPES:
                pinned.append(i)  # moved as text: the plan holds these values
    close: tuple[str | None, ...] = (f"{inner} WHERE {ctx.column} = ", TENANT, ")")
    if t.args.get("alias") is None:
        tok = tokens[last]
        close += (f" AS {sql[tok.start : tok.end + 1]}",)
    edits += [Edit(first, BEFORE, ("(SELECT * FROM ",)), Edit(last, AFTER, close)]
    if first and tokens[first - 1].token_type is TokenType.TABLE:
        # `TABLE t` takes a name only: it becomes the SELECT it stands for.
        edits.insert(0, Edit(first - 1, REPLACE, ("SELECT * FROM",)))
    return edits


def _sample_span(sql: str, tokens: list[Token], last: int, sample: exp.Expression,
                 ctx: Context) -> tuple[int, int] | None:
    """The tokens of `t`'s TABLESAMPLE clause: the shortest run from the TABLESAMPLE
    keyword after the name that sqlglot reads back as the very same sample."""
    start = next((i for i in range(last + 1, min(len(tokens), last + 8))
                  if tokens[i].token_type is TokenType.TABLE_SAMPLE), None)
    if start is None:
        return None
    for end in range(start + 1, min(len(tokens), start + 24)):
        text = sql[tokens[start].start : tokens[end].end + 1]
        try:
            probe = parse_one(f"SELECT * FROM _cw {text}", dialect=ctx.dialect)
        except (ParseError, TokenError):
            continue
        table = probe.find(exp.Table)
        if table is not None and table.args.get("sample") == sample and (
                end + 1 == len(tokens) or tokens[end + 1].token_type in _AFTER_FROM_ITEM):
            return start, end
    return None


def _regenerate(
    root: exp.Expression, wraps: list[exp.Table], dml: exp.Table | None,
    limit: int | None, ctx: Context,
) -> tuple[str | None, ...]:
    """AST mode: rewrite the tree and render it, the tenant marker becoming a slot."""
    col = exp.to_identifier(ctx.policy.tenant_column or "")
    for t in wraps:
        inner = exp.Table(**{k: v.copy() if isinstance(v, exp.Expression) else v
                             for k in ("this", "db", "catalog", *_INNER)
                             if (v := t.args.get(k)) is not None})
        sub = exp.select("*").from_(inner).where(exp.EQ(this=exp.column(col.copy()),
                                                      expression=ctx.marker.copy()))
        alias = t.args.get("alias") or exp.TableAlias(this=t.this.copy())
        t.replace(exp.Subquery(this=sub, alias=alias.copy()))
    if dml is not None:
        stmt = dml.parent
        qual = dml.args["alias"].this if dml.args.get("alias") else dml.this
        cond = exp.EQ(this=exp.column(col.copy(), table=qual.copy()),
                      expression=ctx.marker.copy())
        where = stmt.args.get("where")  # type: ignore[union-attr]
        new = exp.and_(exp.Paren(this=where.this), cond) if where else cond
        stmt.set("where", exp.Where(this=new))  # type: ignore[union-attr]
    if limit is not None:
        root = _cap(root, limit)
    text = root.sql(dialect=ctx.dialect)
    pieces = text.split(ctx.marker_sql)
    expected = len(wraps) + (dml is not None)
    if len(pieces) - 1 != expected:
        raise Refusal(ErrorCode.SQL_BLOCKED, "query could not be rewritten safely")
    out: list[str | None] = [pieces[0]]
    for p in pieces[1:]:
        out.extend((TENANT, p))
    return tuple(out)


def _cap(root: exp.Expression, n: int) -> exp.Expression:
    lim = root.args.get("limit")
    count = lim.expression if isinstance(lim, exp.Limit) else None
    if isinstance(root, (exp.Select, exp.SetOperation)) and (
        lim is None or (isinstance(count, exp.Literal) and count.this.isdigit())
    ):
        if lim is None or int(count.this) > n:  # type: ignore[union-attr]
            return root.limit(n, copy=False)
        return root
    return exp.select("*").from_(exp.Subquery(this=root, alias=exp.TableAlias(
        this=exp.to_identifier("_cw_limited")))).limit(n)
