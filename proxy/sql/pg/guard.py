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

from collections import OrderedDict
from typing import Any

from proxy.sql.pg.judge import PgRules, PgVerdict, judge
from proxy.sql.pg.parse import normalized, parse, tree


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


def _strip(node: Any) -> Any:
    """The tree without source positions (they move when text is inserted)."""
    if isinstance(node, dict):
        return {k: _strip(v) for k, v in node.items()
                if k not in ("location", "stmt_location", "stmt_len")}
    if isinstance(node, list):
        return [_strip(v) for v in node]
    return node


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
                return {"RangeVar": inner}
        out = {}
        for k, v in node.items():
            if k == "whereClause":
                v = self._where(v)
            out[k] = self.node(v)
        return out

    def _wrapped(self, sub: dict[str, Any]) -> dict[str, Any] | None:
        """`(SELECT * FROM t WHERE col = marker) AS a` -> t AS a, else None."""
        sel = sub.get("subquery", {}).get("SelectStmt")
        if not sel or set(sel) - {"targetList", "fromClause", "whereClause", "limitOption",
                                  "op"}:
            return None
        if sel["targetList"] != [{"ResTarget": {"val": {"ColumnRef": {"fields": [
                {"A_Star": {}}]}}}}]:
            return None
        rels = sel.get("fromClause", [])
        if len(rels) != 1 or "RangeVar" not in rels[0]:
            return None
        if not _predicate(sel.get("whereClause"), self.column, self.marker):
            return None
        rel = dict(rels[0]["RangeVar"])
        alias = sub.get("alias")
        if alias and not (alias.get("aliasname") == rel.get("relname")
                          and not alias.get("colnames")):
            rel["alias"] = alias
        return rel

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


def _drop_alias_self(node: Any) -> Any:
    """`orders AS orders` reads as `orders`: the rewrite names bare tables that way."""
    if isinstance(node, list):
        return [_drop_alias_self(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _drop_alias_self(v) for k, v in node.items()}
    if "relname" in out and isinstance(out.get("alias"), dict):
        alias = out["alias"]
        if alias.get("aliasname") == out["relname"] and not alias.get("colnames"):
            del out["alias"]
    return {k: v for k, v in out.items() if v is not None}


def _unlimit(stmt: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
    """The statement without its row limit (and without the `_cw_limited` wrapper the
    rewrite puts around a query that has its own), and the limit's value if a number."""
    sel = stmt.get("SelectStmt")
    if sel is None:
        return stmt, None
    count = sel.get("limitCount")
    value = count.get("A_Const", {}).get("ival", {}).get("ival", 0) if isinstance(
        count, dict) and "A_Const" in count else None
    rest = {k: v for k, v in sel.items() if k not in ("limitCount", "limitOption")}
    frm = rest.get("fromClause", [])
    if set(rest) == {"targetList", "fromClause", "op"} and len(frm) == 1 \
            and rest["targetList"] == [{"ResTarget": {"val": {"ColumnRef": {"fields": [
                {"A_Star": {}}]}}}}] \
            and frm[0].get("RangeSubselect", {}).get("alias", {}).get(
                "aliasname") == "_cw_limited":
        return frm[0]["RangeSubselect"]["subquery"], value
    return {"SelectStmt": rest}, value


def rewrite_is_faithful(judged: str, rewritten: str, column: str | None, marker: str,
                        cap: int | None) -> bool:
    """SECURITY: the rewritten text, read by PostgreSQL's parser, is the judged text plus
    tenant predicates (every one with the marker) and a row cap, nothing else."""
    before, after = tree(judged), tree(rewritten)
    if isinstance(before, str) or isinstance(after, str) or len(before) != len(after):
        return False
    for b, a in zip(before, after, strict=True):
        undo = _Undo(column or "", marker)
        a_stmt = _strip(a["stmt"])
        b_stmt = _strip(b["stmt"])
        if cap is not None:
            a_stmt, value = _unlimit(a_stmt)
            if value is None or not 0 <= value <= cap:
                return False
            b_stmt, _ = _unlimit(b_stmt)
        a_stmt = undo.node(a_stmt)
        if marker in repr(a_stmt):
            return False  # a tenant value the undo did not account for
        if _drop_alias_self(a_stmt) != _drop_alias_self(b_stmt):
            return False
    return True
