"""PostgreSQL text judged by libpg_query, with a verdict cache keyed by the text as
libpg_query normalizes it (every constant replaced by $n: new literals per request cost
one C call), and the check that a rewrite is the judged text plus the tenant
predicates, nothing else.

SECURITY: not libpg_query's fingerprint: it leaves out schema names (`s.t` and `u.t`
share one), aliases and prepared statement names, and the judge reads schemas. Two
texts with one normalized form differ only inside constants, which name no relation,
function or operator. tests/sql/pg/test_guard.py holds cached and fresh verdicts equal.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from functools import lru_cache
from typing import Any

import orjson
from pglast import parser as pg

from proxy.sql.pg.judge import PgRules, PgVerdict, judge
from proxy.sql.pg.parse import normalized, parse


class PgJudge:
    """One route's PostgreSQL judge. Not thread-safe: one per event loop."""

    def __init__(self, rules: PgRules, cache_size: int = 4096, cached: bool = True) -> None:
        self.rules = rules
        self.cached = cached  # False: reference mode, every text parsed
        self._cache: OrderedDict[str, PgVerdict] = OrderedDict()
        self._size = max(1, cache_size)
        self.parses = 0  # full parses (tests, benchmarks)

    def judge(self, sql: str) -> PgVerdict:
        if not self.cached:
            return self.judge_uncached(sql)
        key = normalized(sql)
        if key is None:
            return self.judge_uncached(sql)  # does not parse: the parse says where
        verdict = self._cache.get(key)
        if verdict is None:
            verdict = self.judge_uncached(sql)
            self._cache[key] = verdict
            if len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return verdict

    def judge_uncached(self, sql: str) -> PgVerdict:
        self.parses += 1
        return judge(parse(sql), self.rules)


# Offsets into the text (they move when text is inserted), cut from libpg_query's JSON:
# each value zeroed and its key renamed to `..._l` (one literal-led regex, C speed), then
# the renamed keys removed. SECURITY: a JSON string value cannot hold `location":` (its
# quote would be escaped), so only keys match.
_OFFSET = re.compile(rb'l(?:ocation|ist_start|ist_end)":-?\d+')
_OFFSET_KEYS = tuple(b'"%s":0' % k for k in (b"l", b"arg_l", b"rexpr_l"))  # stmt_l: outside
# `orders AS orders` reads as `orders` (the rewrite names bare tables that way); names
# with a quote or backslash are left alone (they then compare unequal: refused).
_SELF_ALIAS = re.compile(rb'("relname":"([^"\\]*)"(?:,"inh":true)?,"relpersistence":"[a-z]"),'
                         rb'"alias":\{"aliasname":"\2"\}')


_RELNAME = re.compile(rb'"relname":"([^"\\]*)"')
_INSERT_TARGET = re.compile(rb'"InsertStmt":\{"relation":\{(?:"catalogname":"[^"]*",)?'
                            rb'(?:"schemaname":"[^"]*",)?"relname":"([^"\\]*)"')
_CTE_NAME = re.compile(rb'"ctename":"([^"\\]*)"')


def _scoped_references(raw: bytes, tables: frozenset[str]) -> int | None:
    """How many references to a tenant table the judged text makes (INSERT targets are
    checked by value, not scoped); None when a CTE bears a tenant table's name (which
    references are the CTE is then the rewrite's scoping to decide)."""
    def named(rx: re.Pattern[bytes]) -> int:
        return sum(m.group(1).decode().lower() in tables for m in rx.finditer(raw))
    if named(_CTE_NAME):
        return None
    return named(_RELNAME) - named(_INSERT_TARGET)


@lru_cache(maxsize=64)
def _wrap_rx(column: str, marker: str) -> re.Pattern[bytes]:
    """The JSON of `(SELECT * FROM t WHERE [q.]column = '<marker>') AS a` (positions cut),
    exactly as libpg_query writes it: t (no nested object) and a are captured."""
    col = re.escape(orjson.dumps(column)[1:-1])
    mark = re.escape(orjson.dumps(marker)[1:-1])
    return re.compile(
        rb'\{"RangeSubselect":\{"subquery":\{"SelectStmt":\{"targetList":\[\{"ResTarget":'
        rb'\{"val":\{"ColumnRef":\{"fields":\[\{"A_Star":\{\}\}\]\}\}\}\}\],'
        rb'"fromClause":\[\{"RangeVar":\{([^{}]*)\}\}\],'
        rb'"whereClause":\{"A_Expr":\{"kind":"AEXPR_OP","name":\[\{"String":\{"sval":"="\}\}\],'
        rb'"lexpr":\{"ColumnRef":\{"fields":\[(?:\{"String":\{"sval":"[^"\\]*"\}\},)?'
        rb'\{"String":\{"sval":"' + col + rb'"\}\}\]\}\},'
        rb'"rexpr":\{"A_Const":\{"sval":\{"sval":"' + mark + rb'"\}\}\}\}\},'
        rb'"limitOption":"LIMIT_OPTION_DEFAULT","op":"SETOP_NONE"\}\}'
        rb'(?:,"alias":\{"aliasname":"([^"\\]*)"\})?\}\}')


def _unwrap(m: re.Match[bytes]) -> bytes:
    alias = b',"alias":{"aliasname":"%s"}' % m.group(2) if m.group(2) is not None else b""
    return b'{"RangeVar":{%s%s}}' % (m.group(1), alias)


def _positionless_raw(sql: str, unwrap: re.Pattern[bytes] | None = None,
                      ) -> tuple[list[dict[str, Any]], bytes, int] | None:
    """libpg_query's statements without source positions, their JSON, and how many
    tenant wrappers `unwrap` turned back into the table (in C: a regex over the JSON,
    not a walk of the tree); None if the text does not parse."""
    if "\x00" in sql:
        return None
    try:
        raw = pg.parse_sql_json(sql).encode()
    except pg.ParseError:
        return None
    raw = _OFFSET.sub(b'l":0', raw)
    for key in _OFFSET_KEYS:
        raw = raw.replace(b"," + key, b"").replace(key + b",", b"").replace(key, b"")
    unwrapped = 0
    if unwrap is not None:
        raw, unwrapped = unwrap.subn(_unwrap, raw)
    raw = _SELF_ALIAS.sub(rb"\1", raw)
    doc = orjson.loads(raw)
    return [s["stmt"] for s in doc.get("stmts", ())], raw, unwrapped


def _is_marker(node: Any, marker: str) -> bool:
    return isinstance(node, dict) and node.get("A_Const", {}).get("sval", {}).get(
        "sval") == marker


def _predicate(node: Any, column: str, marker: str) -> bool:
    """`[qualifier.]column = <marker>`."""
    expr = node.get("A_Expr") if isinstance(node, dict) else None
    if not expr or expr.get("kind") != "AEXPR_OP" or expr.get("name") != [
            {"String": {"sval": "="}}]:
        return False
    fields = expr.get("lexpr", {}).get("ColumnRef", {}).get("fields", [])
    names = [f.get("String", {}).get("sval") for f in fields]
    return bool(names) and names[-1] == column and None not in names \
        and _is_marker(expr.get("rexpr"), marker)


class _Undo:
    """Turns the rewrite back into the judged tree, counting the tenant predicates."""

    def __init__(self, column: str, marker: str) -> None:
        self.column, self.marker = column, marker
        self.predicates = 0

    def node(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self.node(v) for v in node]
        if not isinstance(node, dict):
            return node
        sub = node.get("RangeSubselect")
        if sub is not None and not sub.get("lateral"):
            inner = self._wrapped(sub)
            if inner is not None:
                self.predicates += 1
                return inner
        out = {}
        for k, v in node.items():
            if k == "whereClause":
                v = self._where(v)
                if v is None:
                    continue  # the predicate was the whole WHERE
            out[k] = self.node(v)
        return out

    def _wrapped(self, sub: dict[str, Any]) -> dict[str, Any] | None:
        """`(SELECT * FROM t [TABLESAMPLE ...] WHERE col = marker) AS a` -> the range
        `t AS a [TABLESAMPLE ...]` as the judged text had it, else None."""
        sel = sub.get("subquery", {}).get("SelectStmt")
        if not sel or set(sel) - {"targetList", "fromClause", "whereClause", "limitOption",
                                  "op"}:
            return None
        if sel["targetList"] != [{"ResTarget": {"val": {"ColumnRef": {"fields": [
                {"A_Star": {}}]}}}}]:
            return None
        rels = sel.get("fromClause", [])
        if len(rels) != 1 or set(rels[0]) - {"RangeVar", "RangeTableSample"}:
            return None
        sample = rels[0].get("RangeTableSample")
        found = sample.get("relation") if sample is not None else rels[0]
        if not isinstance(found, dict) or set(found) != {"RangeVar"} \
                or "alias" in found["RangeVar"]:
            return None
        if not _predicate(sel.get("whereClause"), self.column, self.marker):
            return None
        rel = dict(found["RangeVar"])
        alias = sub.get("alias")
        # `AS <the table's name>` is what the rewrite adds to a table without an alias
        if alias and not (alias.get("aliasname") == rel.get("relname")
                          and not alias.get("colnames")):
            rel["alias"] = alias
        if sample is None:
            return {"RangeVar": rel}
        # SECURITY: the sampling clause sits inside the filter, where it was judged; the
        # equality check that follows compares it with the judged text's clause.
        return {"RangeTableSample": {**sample, "relation": {"RangeVar": rel}}}

    def _where(self, where: Any) -> Any:
        """`(orig) AND q.col = marker` -> orig; a lone predicate -> no WHERE."""
        if _predicate(where, self.column, self.marker):
            self.predicates += 1
            return None
        expr = where.get("BoolExpr") if isinstance(where, dict) else None
        if expr and expr.get("boolop") == "AND_EXPR" and len(expr.get("args", [])) == 2 \
                and _predicate(expr["args"][1], self.column, self.marker):
            self.predicates += 1
            return expr["args"][0]
        return where


def _unlimit(stmt: dict[str, Any]) -> tuple[dict[str, Any], int | None, bool]:
    """The rewrite's statement without its row cap, the cap's value if a number, and
    whether the cap was a `SELECT * FROM (<the statement>) AS _cw_limited` wrapper (then
    the inner statement is the judged one as written, its own LIMIT included)."""
    sel = stmt.get("SelectStmt")
    if sel is None:
        return stmt, None, False
    count = sel.get("limitCount")
    value = count.get("A_Const", {}).get("ival", {}).get("ival", 0) if isinstance(
        count, dict) and "A_Const" in count else None
    rest = {k: v for k, v in sel.items() if k not in ("limitCount", "limitOption")}
    frm = rest.get("fromClause", [])
    if set(rest) == {"targetList", "fromClause", "op"} and len(frm) == 1 \
            and rest["targetList"] == [{"ResTarget": {"val": {"ColumnRef": {"fields": [
                {"A_Star": {}}]}}}}] \
            and frm[0].get("RangeSubselect", {}).get("alias") == {"aliasname": "_cw_limited"}:
        return frm[0]["RangeSubselect"]["subquery"], value, True
    return {"SelectStmt": rest}, value, False


def rewrite_is_faithful(judged: str, rewritten: str, column: str | None, marker: str,
                        cap: int | None, tables: frozenset[str] = frozenset()) -> bool:
    """SECURITY: the rewritten text, read by PostgreSQL's parser, is the judged text plus
    tenant predicates (every one with the marker) and a row cap, nothing else; and it has
    a predicate for every reference to a tenant table (bare names in `tables`)."""
    got = _positionless_raw(judged)
    got_after = _positionless_raw(rewritten, _wrap_rx(column, marker) if column else None)
    if got is None or got_after is None or len(got[0]) != len(got_after[0]):
        return False
    before, raw, _ = got
    after, raw_after, predicates = got_after
    want = _scoped_references(raw, tables) if column else 0
    walk = marker.encode() in raw_after  # predicates the regex did not take (DML WHERE)
    for b_stmt, a_stmt in zip(before, after, strict=True):
        if cap is not None and "SelectStmt" in b_stmt:  # the cap applies to queries
            a_stmt, value, wrapped = _unlimit(a_stmt)
            if value is None or not 0 <= value <= cap:
                return False
            if not wrapped:
                b_stmt = _unlimit(b_stmt)[0]
        if walk:
            undo = _Undo(column or "", marker)
            a_stmt = undo.node(a_stmt)
            predicates += undo.predicates
            if marker in orjson.dumps(a_stmt).decode():
                return False  # a tenant value the undo did not account for
        if a_stmt != b_stmt:
            return False
    return want is None or predicates >= want
