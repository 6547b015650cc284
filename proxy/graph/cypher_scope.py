"""Tenant scoping of one Cypher statement, proven on its tokens or refused.

The rule: every node pattern is constrained to the caller's tenant with AND semantics,
by `{prop: $param}` in the pattern, by a top-level `AND` conjunct `v.prop = $param` of
the clause's WHERE, or by naming a variable bound by an earlier clause. Then every node a
statement can reach is the tenant's, by induction: nodes enter a Cypher query only
through patterns, and everything else that could bring one in (subqueries, pattern
expressions and comprehensions, variable-length and quantified paths, shortestPath,
procedures, unknown functions) is refused. The guard understands an allowlist of read
clauses (MATCH, OPTIONAL MATCH, WITH, UNWIND, RETURN, UNION, ORDER BY/SKIP/LIMIT,
EXPLAIN/PROFILE); anything else is refused on tenant routes. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from proxy.graph.cypher_lex import BACKTICK, PARAM, PUNCT, WORD, Token
from proxy.graph.policy import GraphPolicy

_NAME = (WORD, BACKTICK)
# Words that start or end a clause; inside an expression they mean a subquery.
CLAUSE_WORDS = frozenset(
    """MATCH OPTIONAL WITH UNWIND RETURN UNION CALL CREATE MERGE DELETE DETACH NODETACH SET
    REMOVE FOREACH LOAD USE FINISH ORDER SKIP OFFSET LIMIT WHERE SHOW TERMINATE GRANT DENY
    REVOKE ALTER DROP START STOP INSERT FILTER LET NEXT YIELD EXPLAIN PROFILE CYPHER RENAME
    ENABLE DEALLOCATE REALLOCATE""".split()  # noqa: SIM905 (a word list reads better)
)
_SUBQUERY_BEFORE_BRACE = frozenset({"EXISTS", "COUNT", "COLLECT", "CALL"})
MAX_PARENS = 8
"""Parenthesized conjuncts looked into: `((n.tenant = $t))` counts, deeper ones do not."""


class Unscoped(Exception):
    """The statement is not provably scoped (the message says where; no query text)."""


def _kw(tok: Token) -> str:
    """Keyword spelling of a token: ASCII words only (Python upper-cases the long s
    U+017F to 'S'; Neo4j does not read such a word as a keyword)."""
    return tok.upper if tok.kind == WORD and tok.text.isascii() else ""


@dataclass
class _Parser:
    tokens: list[Token]
    depth: list[int]
    keywords: set[int]
    policy: GraphPolicy
    param: str
    prop: str
    pos: int = 0
    scope: set[str] = field(default_factory=set)

    # --- token helpers -----------------------------------------------------------------
    def at(self, i: int | None = None) -> Token | None:
        i = self.pos if i is None else i
        return self.tokens[i] if i < len(self.tokens) else None

    def kw(self, i: int | None = None) -> str:
        i = self.pos if i is None else i
        tok = self.at(i)
        return _kw(tok) if tok is not None and i in self.keywords else ""

    def punct(self, text: str, i: int | None = None) -> bool:
        tok = self.at(i)
        return tok is not None and tok.kind == PUNCT and tok.text == text

    def expect(self, text: str, what: str) -> None:
        if not self.punct(text):
            raise Unscoped(f"{what} is not understood on a tenant route")
        self.pos += 1

    def close_of(self, i: int) -> int:
        """Index of the bracket closing the one at i."""
        d = self.depth[i]
        j = i + 1
        while self.depth[j] != d or self.tokens[j].text not in ")]}":
            j += 1
        return j

    def is_clause_end(self, i: int) -> bool:
        """A depth-0 clause word (not the WITH of STARTS/ENDS WITH)."""
        word = self.kw(i)
        if word not in CLAUSE_WORDS or self.depth[i] != 0:
            return False
        return not (word == "WITH" and i > 0 and self.kw(i - 1) in ("STARTS", "ENDS"))

    def expr_end(self, start: int, stop_at_comma: bool = False, limit: int | None = None) -> int:
        end = len(self.tokens) if limit is None else limit
        d0 = self.depth[start] if start < end else 0
        i = start
        while i < end:
            if self.depth[i] == d0 and (
                self.is_clause_end(i) or (stop_at_comma and self.punct(",", i))
            ):
                return i
            if self.depth[i] < d0:
                return i
            i += 1
        return end

    # --- expressions ---------------------------------------------------------------------
    def check_expr(self, a: int, b: int) -> None:
        """Refuse anything in tokens[a:b] that could bring in a node: subqueries, patterns,
        pattern comprehensions, procedures, unknown functions."""
        t = self.tokens
        if a >= b:
            raise Unscoped("an empty expression is not understood on a tenant route")
        for i in range(a, b):
            tok = t[i]
            word = _kw(tok) if i in self.keywords else ""
            if word in CLAUSE_WORDS and not (
                word == "WHERE" and self.depth[i] > self.depth[a]
            ) and not (word == "WITH" and i > a and self.kw(i - 1) in ("STARTS", "ENDS")):
                raise Unscoped(f"{tok.text} inside an expression (a subquery) is refused")
            if tok.kind != PUNCT:
                continue
            nxt = t[i + 1] if i + 1 < b else None
            if tok.text in ("->", "<-") or (
                tok.text == "-" and nxt is not None and nxt.text in ("-", "[")
            ) or (tok.text == "]" and nxt is not None and nxt.text == "-"):
                raise Unscoped("a pattern inside an expression is refused on a tenant route")
            if tok.text == "[" and nxt is not None and (
                nxt.text == "(" or (nxt.kind in _NAME and i + 2 < b and t[i + 2].text == "=")
            ):
                raise Unscoped("a pattern comprehension is refused on a tenant route")
            if tok.text == "{" and i > a:
                prev = t[i - 1]
                if prev.text == ")" or _kw(prev) in _SUBQUERY_BEFORE_BRACE:
                    raise Unscoped("a subquery is refused on a tenant route")

    def conjunct_vars(self, a: int, b: int, nest: int = 0) -> set[str]:
        """Variables v with a top-level `AND` conjunct `v.prop = $param` in tokens[a:b]
        (looking into at most MAX_PARENS parenthesized conjuncts: linear time)."""
        t = self.tokens
        d0 = self.depth[a] if a < b else 0
        parts: list[tuple[int, int]] = []
        start = a
        for i in range(a, b):
            if self.depth[i] != d0:
                continue
            if t[i].kind == WORD and t[i].upper in ("CASE", "END"):
                # SECURITY: AND inside CASE .. END is no conjunct, and `end` may be a name
                # (`n.end`, a variable): a CASE at this level proves nothing. Parenthesize it.
                return set()
            word = _kw(t[i]) if i in self.keywords else ""
            if word in ("OR", "XOR"):
                return set()  # SECURITY: OR/XOR bind looser than AND: no conjunct holds
            if word == "AND":
                parts.append((start, i))
                start = i + 1
        parts.append((start, b))
        out: set[str] = set()
        for s, e in parts:
            seg = t[s:e]
            if len(seg) > 2 and seg[0].text == "(" and seg[-1].text == ")":
                if nest < MAX_PARENS and self.close_of(s) == e - 1:
                    out |= self.conjunct_vars(s + 1, e - 1, nest + 1)  # `(a AND b)`
            elif len(seg) != 5:
                continue
            elif seg[3].text == "=" and self._is_param(seg[4]) and self._is_prop(seg[0:3]):
                out.add(seg[0].name)
            elif seg[1].text == "=" and self._is_param(seg[0]) and self._is_prop(seg[2:5]):
                out.add(seg[2].name)
        return out

    def _is_param(self, tok: Token) -> bool:
        return tok.kind == PARAM and tok.name == self.param

    def _is_prop(self, seg: list[Token]) -> bool:
        v, dot, p = seg
        return v.kind in _NAME and dot.text == "." and p.kind in _NAME and p.name == self.prop

    # --- patterns ------------------------------------------------------------------------
    def map_constrains(self, open_i: int) -> bool:
        """Check the map literal at open_i ('{'); does it pin prop to $param?"""
        close = self.close_of(open_i)
        i = open_i + 1
        pinned, other = False, False
        while i < close:
            key = self.tokens[i]
            if key.kind not in _NAME or not self.punct(":", i + 1):
                raise Unscoped("a pattern property map is not understood on a tenant route")
            end = self.expr_end(i + 2, stop_at_comma=True, limit=close)
            if end < close and not self.punct(",", end):
                raise Unscoped("a pattern property map is not understood on a tenant route")
            self.check_expr(i + 2, end)
            if key.name == self.prop:
                if end == i + 3 and self._is_param(self.tokens[i + 2]):
                    pinned = True
                else:
                    other = True
            i = end + 1
        return pinned and not other

    def element(self, node: bool) -> tuple[str | None, bool]:
        """Parse a node `( ... )` or relationship `[ ... ]` body at pos: (variable,
        constrained inline)."""
        close_text = ")" if node else "]"
        close = self.close_of(self.pos)
        self.pos += 1
        var = None
        tok = self.at()
        if tok is not None and tok.kind in _NAME and self.kw() != "WHERE":
            var = tok.name
            self.pos += 1
        if self.punct(":"):
            self.pos += 1
            while self.pos < close and (
                self.at().kind in _NAME  # type: ignore[union-attr]
                or self.at().text in ("|", "&", "!", ":", "%")  # type: ignore[union-attr]
            ):
                if self.kw() == "WHERE" and self.tokens[self.pos - 1].text not in ":|&!":
                    break
                self.pos += 1
        if not node and self.punct("*"):
            raise Unscoped("a variable-length relationship is refused on a tenant route")
        pinned = False
        if self.punct("{"):
            pinned = self.map_constrains(self.pos)
            self.pos = self.close_of(self.pos) + 1
        if self.kw() == "WHERE":
            self.check_expr(self.pos + 1, close)
            if var is not None and var in self.conjunct_vars(self.pos + 1, close):
                pinned = True
            self.pos = close
        if self.pos != close or self.tokens[close].text != close_text:
            raise Unscoped("a pattern element is not understood on a tenant route")
        self.pos = close + 1
        return var, pinned

    def pattern(self, nodes: list[tuple[str | None, bool]], names: set[str]) -> None:
        """One comma-separated part of a MATCH: `[p =] (n)(-[r]-(m))*`."""
        tok = self.at()
        if tok is not None and tok.kind in _NAME and self.punct("=", self.pos + 1):
            names.add(tok.name)
            self.pos += 2
        if not self.punct("("):
            word = self.at().text if self.at() is not None else "end"  # type: ignore[union-attr]
            raise Unscoped(f"MATCH {word[:32]} is not understood on a tenant route")
        if self.punct("(", self.pos + 1):
            raise Unscoped("a quantified or parenthesized path is refused on a tenant route")
        nodes.append(self.element(node=True))
        while self.punct("-") or self.punct("<-"):
            self.pos += 1
            if self.punct("["):
                var, _ = self.element(node=False)
                if var:
                    names.add(var)
            if not (self.punct("-") or self.punct("->")):
                raise Unscoped("a relationship pattern is not understood on a tenant route")
            self.pos += 1
            if not self.punct("(") or self.punct("(", self.pos + 1):
                raise Unscoped("a quantified or parenthesized path is refused on a tenant route")
            nodes.append(self.element(node=True))

    def match(self) -> None:
        self.pos += 1  # MATCH
        nodes: list[tuple[str | None, bool]] = []
        names: set[str] = set()
        self.pattern(nodes, names)
        while self.punct(","):
            self.pos += 1
            self.pattern(nodes, names)
        where: set[str] = set()
        if self.kw() == "WHERE":
            end = self.expr_end(self.pos + 1)
            self.check_expr(self.pos + 1, end)
            where = self.conjunct_vars(self.pos + 1, end)
            self.pos = end
        pinned_vars = {v for v, ok in nodes if v is not None and ok} | where
        for var, ok in nodes:
            if ok or (var is not None and (var in self.scope or var in pinned_vars)):
                continue
            who = f"node ({var})" if var else "an anonymous node"
            raise Unscoped(
                f"{who} is not constrained by {{{self.prop}: ${self.param}}} or "
                f"WHERE {var or 'n'}.{self.prop} = ${self.param}"
            )
        self.scope |= names | {v for v, _ in nodes if v is not None}

    # --- clauses -------------------------------------------------------------------------
    def items(self) -> set[str]:
        """Projection items up to the next clause word: the names they bind."""
        if self.kw() == "DISTINCT":
            self.pos += 1
        names: set[str] = set()
        if self.punct("*"):
            self.pos += 1
            names = set(self.scope)
            if not self.punct(","):
                return names
            self.pos += 1
        while True:
            end = self.expr_end(self.pos, stop_at_comma=True)
            as_at = [
                i for i in range(self.pos, end) if self.depth[i] == self.depth[self.pos]
                and _kw(self.tokens[i]) == "AS" and i in self.keywords
            ]
            if as_at and (
                len(as_at) > 1 or as_at[0] != end - 2 or self.tokens[end - 1].kind not in _NAME
            ):
                raise Unscoped("a projection item is not understood on a tenant route")
            if as_at:
                self.check_expr(self.pos, as_at[0])
                names.add(self.tokens[end - 1].name)
            else:
                self.check_expr(self.pos, end)
                if end == self.pos + 1 and self.tokens[self.pos].kind in _NAME:
                    names.add(self.tokens[self.pos].name)
            self.pos = end
            if not self.punct(","):
                return names
            self.pos += 1

    def tail(self) -> None:
        """ORDER BY ..., SKIP/OFFSET n, LIMIT n."""
        if self.kw() == "ORDER":
            self.pos += 1
            if self.kw() != "BY":
                raise Unscoped("ORDER without BY is not understood")
            self.pos += 1
            end = self.expr_end(self.pos)
            self.check_expr(self.pos, end)
            self.pos = end
        for word in ("SKIP", "OFFSET", "LIMIT"):
            if self.kw() == word:
                end = self.expr_end(self.pos + 1)
                self.check_expr(self.pos + 1, end)
                self.pos = end

    def single_query(self) -> None:
        self.scope = set()
        while self.pos < len(self.tokens):
            word = self.kw()
            if word == "UNION":
                return
            if word == "OPTIONAL" and self.kw(self.pos + 1) == "MATCH":
                self.pos += 1
                word = "MATCH"
            if word == "MATCH":
                self.match()
            elif word == "UNWIND":
                end = self.expr_end(self.pos + 1)
                if end - self.pos < 4 or _kw(self.tokens[end - 2]) != "AS":
                    raise Unscoped("UNWIND without AS is not understood")
                self.check_expr(self.pos + 1, end - 2)
                self.scope.add(self.tokens[end - 1].name)
                self.pos = end
            elif word == "WITH":
                self.pos += 1
                names = self.items()
                self.tail()
                if self.kw() == "WHERE":
                    end = self.expr_end(self.pos + 1)
                    self.check_expr(self.pos + 1, end)
                    self.pos = end
                self.scope = names
            elif word == "RETURN":
                self.pos += 1
                self.items()
                self.tail()
                if self.pos < len(self.tokens) and self.kw() != "UNION":
                    raise Unscoped("a clause after RETURN is not understood")
            else:
                tok = self.at()
                what = tok.text[:32] if tok is not None else "end"
                raise Unscoped(f"{what} is not allowed on a tenant route")

    def query(self) -> None:
        if self.kw() in ("EXPLAIN", "PROFILE"):
            self.pos += 1
        self.single_query()
        while self.kw() == "UNION":
            self.pos += 1
            if self.kw() == "ALL" or self.kw() == "DISTINCT":
                self.pos += 1
            self.single_query()
        if self.pos != len(self.tokens):
            raise Unscoped("trailing tokens are not understood on a tenant route")


def scope_problem(
    tokens: list[Token], depth: list[int], keywords: list[int], policy: GraphPolicy
) -> str:
    """'' if every node pattern is constrained to the tenant parameter, else why not."""
    prop, param = policy.scope_property, policy.tenant_parameter
    if prop is None or param is None:
        return ""
    for tok in tokens:
        if tok.kind == WORD and not tok.text.isascii():
            # SECURITY: a name Python and Neo4j might split or case-fold differently.
            return "non-ASCII names must be `quoted` on a tenant route"
    parser = _Parser(tokens, depth, set(keywords), policy, param, prop)
    try:
        parser.query()
    except Unscoped as exc:
        return str(exc)
    except IndexError:
        return "the statement ends early: not understood on a tenant route"
    except RecursionError:  # SECURITY: never let an error switch the guard off
        return "the statement nests too deeply for a tenant route"
    return ""
