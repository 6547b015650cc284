"""Property test of Cypher tenant scoping: statements generated from a small grammar that
mixes constrained and unconstrained patterns, WHERE with AND/OR/XOR/NOT/CASE, OPTIONAL
MATCH, WITH, UNION and constructs that reach other nodes (subqueries, variable-length
paths, pattern comprehensions, procedures). Each one the guard allows is run by a small
evaluator over an in-memory graph holding two tenants (with edges between them): after
every clause, no row may hold a node of the other tenant, and no construct that reaches
unconstrained nodes may have been allowed.

The evaluator is written from Cypher's semantics over the generator's tree, not from the
guard's token rules, so the two can disagree. A second property checks the guard is not
refusing everything: statements whose every node is constrained by construction pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.graph.cypher import judge_cypher
from proxy.graph.policy import GraphPolicy

POLICY = GraphPolicy(tenant_parameter="tenant")
ME, OTHER = "A", "B"


@dataclass(frozen=True)
class Node:
    id: str
    tenant: str
    label: str
    x: int
    alias: str = ""  # another property that may hold the caller's tenant value


NODES = (
    Node("A1", ME, "Customer", 1),
    Node("A2", ME, "Item", 2),
    Node("B1", OTHER, "Customer", 1, alias=ME),
    Node("B2", OTHER, "Item", 2),
)
BY_ID = {n.id: n for n in NODES}
EDGES = {("A1", "A2"), ("A1", "B1"), ("B1", "B2"), ("B2", "A2"), ("A2", "A1")}


class Leak(Exception):
    """The statement holds a construct that reaches nodes no pattern constrains."""


# --- the grammar's tree -------------------------------------------------------------------
@dataclass(frozen=True)
class NodePat:
    var: str | None
    label: str | None
    inline: str | None  # None | "param" | "B" | "dup" | "x"

    def render(self) -> str:
        body = (self.var or "") + (f":{self.label}" if self.label else "")
        maps = {
            None: "",
            "param": " {tenant: $tenant}",
            "B": " {tenant: 'B'}",
            "dup": " {tenant: $tenant, tenant: 'B'}",
            "x": " {x: 1}",
        }
        return f"({body}{maps[self.inline]})"


@dataclass(frozen=True)
class RelPat:
    direction: str  # "->" | "<-" | "-"
    varlen: bool

    def render(self) -> str:
        inner = "[*1..2]" if self.varlen else ""
        if self.direction == "->":
            return f"-{inner}->" if inner else "-->"
        if self.direction == "<-":
            return f"<-{inner}-" if inner else "<--"
        return f"-{inner}-" if inner else "--"


@dataclass(frozen=True)
class Expr:
    op: str  # atom kinds or AND/OR/XOR/NOT/CASE
    args: tuple[Any, ...] = ()

    def render(self, top: bool = False) -> str:
        op, a = self.op, self.args
        atoms = {
            "teq": lambda: f"{a[0]}.tenant = $tenant",
            "teq_rev": lambda: f"$tenant = {a[0]}.tenant",
            "tne": lambda: f"{a[0]}.tenant <> $tenant",
            "teq_b": lambda: f"{a[0]}.tenant = 'B'",
            "alias": lambda: f"{a[0]}.alias = $tenant",
            "xeq": lambda: f"{a[0]}.x = {a[1]}",
            "true": lambda: "true",
            "false": lambda: "false",
            "exists": lambda: "EXISTS { MATCH (z) WHERE z.x = 1 }",
            "patpred": lambda: f"({a[0]})-->()",
        }
        if op in atoms:
            return atoms[op]()
        if op == "NOT":
            return f"NOT ({a[0].render()})"
        if op == "CASE":
            return f"CASE WHEN {a[0].render(top=True)} THEN true ELSE true END"
        if op == "FLAT":  # `x AND y OR z`: rendered without parentheses, Cypher precedence
            return " OR ".join(" AND ".join(e.render() for e in group) for group in a)
        inner = f" {op} ".join(e.render() for e in a)
        return inner if top else f"({inner})"


@dataclass(frozen=True)
class Match:
    optional: bool
    paths: tuple[tuple[Any, ...], ...]  # NodePat, RelPat, NodePat, ...
    where: Expr | None
    shortest: bool = False

    def render(self) -> str:
        parts = []
        for path in self.paths:
            text = "".join(p.render() for p in path)
            parts.append(f"p = shortestPath({text})" if self.shortest else text)
        kw = "OPTIONAL MATCH" if self.optional else "MATCH"
        where = f" WHERE {self.where.render(top=True)}" if self.where else ""
        return f"{kw} {', '.join(parts)}{where}"


@dataclass(frozen=True)
class With:
    items: tuple[tuple[str, str], ...]  # (source var, alias)
    where: Expr | None
    count: bool = False

    def render(self) -> str:
        if self.count:
            return "WITH count(*) AS cnt"
        items = ", ".join(s if s == a else f"{s} AS {a}" for s, a in self.items)
        return f"WITH {items}" + (f" WHERE {self.where.render(top=True)}" if self.where else "")


@dataclass(frozen=True)
class LeakClause:
    text: str

    def render(self) -> str:
        return self.text


LEAK_CLAUSES = (
    "CALL { MATCH (z) RETURN z }",
    "CALL db.index.fulltext.queryNodes('i', 'x') YIELD node",
    "UNWIND [(q)-->(z) | z] AS zz",
)
LEAK_RETURNS = (
    "COUNT { (z) }",
    "apoc.map.fromNodes('Customer', 'x')",
    "myUdf(1)",
    "COLLECT { MATCH (z) RETURN z.x }",
)


@dataclass(frozen=True)
class Branch:
    clauses: tuple[Any, ...]
    ret: str  # a variable, "count(*)" or a leak expression

    def render(self) -> str:
        body = " ".join(c.render() for c in self.clauses)
        return f"{body} RETURN {self.ret} AS out"


# --- strategies ---------------------------------------------------------------------------
VARS = ("a", "b", "c")


def node_pats(scope: list[str], *, safe: bool, anon: bool = True) -> st.SearchStrategy[NodePat]:
    return _node_pats(tuple(scope), safe, anon)


@cache
def _node_pats(scope: tuple[str, ...], safe: bool, anon: bool) -> st.SearchStrategy[NodePat]:
    # strategies are cached: building one per draw makes hypothesis validate it each time
    names = (*VARS, *scope, None) if anon else (*VARS, *scope)
    var = st.sampled_from(names) if not safe else st.sampled_from(VARS)
    risky = st.sampled_from((None, None, "B", "dup", "x"))
    inline = st.just("param") if safe else st.one_of(st.just("param"), risky)
    return st.builds(NodePat, var, st.sampled_from((None, "Customer", "Item")), inline)


@st.composite
def paths(
    draw: Any, scope: list[str], safe: bool, clean: bool, anon: bool = True
) -> tuple[Any, ...]:
    n = draw(st.integers(1, 3))
    out: list[Any] = [draw(node_pats(scope, safe=safe, anon=anon))]
    for _ in range(n - 1):
        varlen = False if safe or clean else draw(st.integers(0, 9)) == 0
        out.append(RelPat(draw(st.sampled_from(("->", "<-", "-"))), varlen))
        out.append(draw(node_pats(scope, safe=safe, anon=anon)))
    return tuple(out)


def exprs(names: list[str], depth: int = 2, clean: bool = False) -> st.SearchStrategy[Expr]:
    return _exprs(tuple(names), depth, clean)


@cache
def _exprs(names: tuple[str, ...], depth: int, clean: bool) -> st.SearchStrategy[Expr]:
    if not names:
        return st.sampled_from((Expr("true"), Expr("false")))
    v = st.sampled_from(names)
    atoms = st.one_of(
        st.builds(lambda x: Expr("teq", (x,)), v),
        st.builds(lambda x: Expr("teq_rev", (x,)), v),
        st.builds(lambda x: Expr("tne", (x,)), v),
        st.builds(lambda x: Expr("teq_b", (x,)), v),
        st.builds(lambda x, k: Expr("xeq", (x, k)), v, st.sampled_from((1, 2))),
        st.sampled_from((Expr("true"), Expr("false"))),
    )
    if not clean:
        leaks = st.builds(lambda x, k: Expr(k, (x,)), v, st.sampled_from(("exists", "patpred")))
        atoms = st.one_of(atoms, leaks)
    if depth == 0:
        return atoms
    sub = _exprs(names, depth - 1, clean)
    return st.one_of(
        atoms,
        st.builds(
            lambda xs, op: Expr(op, tuple(xs)),
            st.lists(sub, min_size=2, max_size=3),
            st.sampled_from(("AND", "AND", "OR", "XOR")),
        ),
        st.builds(lambda x: Expr("NOT", (x,)), sub),
        st.builds(lambda x: Expr("CASE", (x,)), sub),
        st.builds(
            lambda gs: Expr("FLAT", tuple(tuple(g) for g in gs)),
            st.lists(st.lists(atoms, min_size=1, max_size=3), min_size=1, max_size=3),
        ),
    )


@st.composite
def wheres(draw: Any, needed: list[str], names: list[str], clean: bool) -> Expr:
    """A WHERE that names the tenant of each node in `needed`, in a random shape: the AND
    of everything (scoped), or a near miss (OR, XOR, NOT, CASE, `x OR y AND z`)."""
    tests = st.sampled_from(("teq", "teq", "teq_rev", "alias", "alias"))
    base = [Expr(draw(tests), (v,)) for v in needed]
    extra = draw(st.lists(exprs(names, 1, clean), max_size=2))
    items = list(draw(st.permutations(base + extra)))
    if not items:
        return draw(exprs(names, 2, clean))
    shape = draw(
        st.sampled_from(
            ("AND", "AND", "FLAT", "NEAR", "NEAR", "OR", "XOR", "NOT", "CASE", "CASEAND", "NEST")
        )
    )
    if shape == "CASEAND" and base:  # tenant tests inside `CASE WHEN x AND .. AND y`
        x, y = draw(exprs(names, 0, clean)), draw(exprs(names, 0, clean))
        return Expr("CASE", (Expr("AND", (x, *base, y)),))
    if shape == "NEAR" and base:  # `x OR y AND <tenant tests>`: AND binds tighter than OR
        x, y = draw(exprs(names, 0, clean)), draw(exprs(names, 0, clean))
        return Expr("FLAT", ((x,), (y, *base)))
    if shape in ("FLAT", "NEAR"):
        cuts = sorted(draw(st.sets(st.integers(1, max(1, len(items) - 1)), max_size=2)))
        bounds = [0, *[c for c in cuts if c < len(items)], len(items)]
        groups = tuple(tuple(items[a:b]) for a, b in pairwise(bounds) if a < b)
        return Expr("FLAT", groups)
    if shape == "CASEAND":
        shape = "CASE"
    if shape in ("NOT", "CASE"):
        k = draw(st.integers(0, len(items) - 1))
        items[k] = Expr(shape, (items[k],))
        shape = "AND"
    if shape == "NEST":
        return Expr("AND", (items[0], Expr("OR", (*items[1:], Expr("false")))))
    if len(items) == 1:
        return items[0] if shape == "AND" else Expr(shape, (items[0], Expr("true")))
    return Expr(shape, tuple(items))


def pat_vars(path: tuple[Any, ...]) -> list[str]:
    return [p.var for p in path if isinstance(p, NodePat) and p.var]


@st.composite
def branches(draw: Any, safe: bool = False) -> Branch:
    scope: list[str] = []
    clauses: list[Any] = []
    clean = safe or draw(st.booleans())  # half the branches hold no reaching construct
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(("match", "match", "optional", "with", "leak")))
        if clean:
            kind = draw(st.sampled_from(("match", "optional", "with")))
        if kind in ("match", "optional") or not scope:
            ps = tuple(draw(paths(scope, safe, clean)) for _ in range(draw(st.integers(1, 2))))
            new = sorted({v for p in ps for v in pat_vars(p)} | set(scope))
            where = None
            if safe:
                if new and draw(st.booleans()):
                    where = Expr("AND", (Expr("xeq", (new[0], 1)), Expr("true")))
            elif draw(st.integers(0, 3)):
                loose = sorted(
                    {
                        p.var
                        for path in ps
                        for p in path
                        if isinstance(p, NodePat)
                        and p.var
                        and p.inline != "param"
                        and p.var not in scope
                    }
                )
                where = draw(wheres(loose, new, clean))
            shortest = (
                not clean and len(ps) == 1 and len(ps[0]) == 3 and draw(st.integers(0, 9)) == 0
            )
            clauses.append(Match(kind == "optional", ps, where, shortest))
            scope = new
        elif kind == "with":
            if draw(st.integers(0, 5)) == 0 and not safe:
                clauses.append(With((), None, count=True))
                scope = []
                continue
            keep = draw(st.lists(st.sampled_from(scope), min_size=1, unique=True))
            items = tuple((s, draw(st.sampled_from((s, s, "d", "e")))) for s in keep)
            aliases = list(dict.fromkeys(a for _, a in items))
            if len(aliases) != len(items):
                items = tuple((s, s) for s in keep)
                aliases = keep
            where = draw(st.one_of(st.none(), exprs(aliases, 1, clean))) if not safe else None
            clauses.append(With(items, where))
            scope = aliases
        else:
            clauses.append(LeakClause(draw(st.sampled_from(LEAK_CLAUSES))))
    options = [*scope, "count(*)"] + ([] if clean else list(LEAK_RETURNS))
    if not scope and any(isinstance(c, With) and c.count for c in clauses):
        options.append("cnt")
    return Branch(tuple(clauses), draw(st.sampled_from(options)))


# --- the evaluator ------------------------------------------------------------------------
Row = dict[str, Any]


def prop(value: Any, key: str) -> Any:
    if value is None:
        return None
    if not isinstance(value, Node):
        raise Leak("property of a non-node")  # not generated: be loud
    return getattr(value, key)


def cmp(a: Any, b: Any, eq: bool) -> bool | None:
    if a is None or b is None:
        return None
    return (a == b) if eq else (a != b)


def and3(values: list[bool | None]) -> bool | None:
    if any(v is False for v in values):
        return False
    return None if any(v is None for v in values) else True


def or3(values: list[bool | None]) -> bool | None:
    if any(v is True for v in values):
        return True
    return None if any(v is None for v in values) else False


def xor3(values: list[bool | None]) -> bool | None:
    if any(v is None for v in values):
        return None
    out = False
    for v in values:
        out ^= bool(v)
    return out


def ev(e: Expr, row: Row) -> bool | None:
    op, a = e.op, e.args
    if op == "teq" or op == "teq_rev":
        return cmp(prop(row[a[0]], "tenant"), ME, True)
    if op == "tne":
        return cmp(prop(row[a[0]], "tenant"), ME, False)
    if op == "alias":
        return cmp(prop(row[a[0]], "alias"), ME, True)
    if op == "teq_b":
        return cmp(prop(row[a[0]], "tenant"), OTHER, True)
    if op == "xeq":
        return cmp(prop(row[a[0]], "x"), a[1], True)
    if op in ("true", "false"):
        return op == "true"
    if op in ("exists", "patpred"):
        raise Leak(op)
    if op == "NOT":
        v = ev(a[0], row)
        return None if v is None else not v
    if op == "CASE":
        ev(a[0], row)
        return True
    if op == "FLAT":
        return or3([and3([ev(x, row) for x in group]) for group in a])
    values = [ev(x, row) for x in a]
    return {"AND": and3, "OR": or3, "XOR": xor3}[op](values)


def node_ok(p: NodePat, n: Node) -> bool:
    if p.label and n.label != p.label:
        return False
    if p.inline == "param":
        return n.tenant == ME
    if p.inline in ("B", "dup"):  # a repeated key: assume the worst (the last one wins)
        return n.tenant == OTHER
    if p.inline == "x":
        return n.x == 1
    return True


def adjacent(u: Node, r: RelPat, v: Node) -> bool:
    fwd, back = (u.id, v.id) in EDGES, (v.id, u.id) in EDGES
    return {"->": fwd, "<-": back, "-": fwd or back}[r.direction]


def extend(row: Row, m: Match, anon: list[int]) -> list[Row]:
    """Every way the MATCH's paths extend `row`; anonymous nodes get hidden names."""
    slots: list[tuple[NodePat, str]] = []
    links: list[tuple[int, RelPat, int]] = []
    for path in m.paths:
        prev = -1
        for p in path:
            if isinstance(p, RelPat):
                if p.varlen:
                    raise Leak("variable-length")
                rel = p
                continue
            name = p.var or f"_anon{anon[0]}"
            if not p.var:
                anon[0] += 1
            slots.append((p, name))
            if prev >= 0:
                links.append((prev, rel, len(slots) - 1))
            prev = len(slots) - 1
    if m.shortest:
        raise Leak("shortestPath")
    out: list[Row] = []
    into: dict[int, list[tuple[RelPat, int]]] = {}
    for i, r, j in links:
        into.setdefault(j, []).append((r, i))
    chosen: list[Node] = []

    def walk(k: int, new: Row) -> None:  # depth-first over the slots, pruning early
        if k == len(slots):
            if m.where is None or ev(m.where, new) is True:
                out.append(new)
            return
        p, name = slots[k]
        for n in NODES:
            if not node_ok(p, n) or (name in new and new[name] is not n):
                continue
            if not all(adjacent(chosen[i], r, n) for r, i in into.get(k, ())):
                continue
            chosen.append(n)
            walk(k + 1, {**new, name: n})
            chosen.pop()

    walk(0, dict(row))
    if not out and m.optional:
        hidden = {name for _, name in slots if name not in row}
        out = [{**row, **dict.fromkeys(hidden)}]
    return out


def check_rows(rows: list[Row], where: str) -> None:
    for row in rows:
        for name, v in row.items():
            assert not (isinstance(v, Node) and v.tenant != ME), (where, name, v)


def run(branch: Branch) -> list[Any]:
    rows: list[Row] = [{}]
    for k, c in enumerate(branch.clauses):
        if isinstance(c, LeakClause):
            raise Leak(c.text)
        if isinstance(c, Match):
            anon = [0]
            rows = [r for row in rows for r in extend(row, c, anon)]
        elif c.count:
            rows = [{"cnt": len(rows)}]
        else:
            rows = [{a: row[s] for s, a in c.items} for row in rows]
            if c.where is not None:
                rows = [r for r in rows if ev(c.where, r) is True]
        check_rows(rows, f"after clause {k}")
        rows = [{n: v for n, v in r.items() if not n.startswith("_anon")} for r in rows]
    if branch.ret in LEAK_RETURNS:
        raise Leak(branch.ret)
    if branch.ret == "count(*)":
        return [len(rows)]
    return [r[branch.ret] for r in rows]


def statement(bs: list[Branch]) -> str:
    return " UNION ALL ".join(b.render() for b in bs)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(branches(), min_size=1, max_size=2))
def test_allowed_statements_never_reach_the_other_tenant(bs: list[Branch]) -> None:
    text = statement(bs)
    d = judge_cypher(text, POLICY, tenant=ME)
    if d.code is not None:
        return
    assert d.parameters == {"tenant": ME}
    for b in bs:
        try:
            out = run(b)
        except Leak as exc:
            msg = f"allowed a statement that reaches other nodes ({exc}): {text}"
            raise AssertionError(msg) from None
        assert all(not (isinstance(v, Node) and v.tenant != ME) for v in out), text


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(branches(safe=True), min_size=1, max_size=2))
def test_constrained_statements_pass(bs: list[Branch]) -> None:
    text = statement(bs)
    d = judge_cypher(text, POLICY, tenant=ME)
    assert d.code is None, (text, d.reason)
    for b in bs:
        run(b)  # and the evaluator agrees they stay on the tenant's nodes


@st.composite
def where_branches(draw: Any) -> Branch:
    """Focus on WHERE: one or two MATCH clauses whose nodes are bound only by WHERE
    shapes (the AND of tenant tests, or a near miss), then WITH/RETURN."""
    clauses: list[Any] = []
    scope: list[str] = []
    for _ in range(draw(st.integers(1, 2))):
        n = draw(st.integers(1, 2))
        ps = tuple(draw(paths(scope, False, True, anon=False)) for _ in range(n))
        new = sorted({v for p in ps for v in pat_vars(p)} | set(scope))
        loose = sorted(
            {
                p.var
                for path in ps
                for p in path
                if isinstance(p, NodePat) and p.var and p.inline != "param" and p.var not in scope
            }
        )
        clauses.append(Match(draw(st.booleans()), ps, draw(wheres(loose, new, True)), False))
        scope = new
        if draw(st.integers(0, 3)) == 0:
            clauses.append(With((), None, count=True))
            scope = []
    return Branch(tuple(clauses), draw(st.sampled_from([*scope, "count(*)"])))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(where_branches())
def test_where_shapes_never_reach_the_other_tenant(b: Branch) -> None:
    test_allowed_statements_never_reach_the_other_tenant.hypothesis.inner_test([b])
