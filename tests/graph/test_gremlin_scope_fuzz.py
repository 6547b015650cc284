"""Property test of Gremlin tenant scoping: traversals generated from a small grammar that
mixes moves (V, E, out, in, both, outE, inE, inV, outV), tenant filters and near misses
(within, neq, a filter on another property), nested traversals (union, where, not, local,
repeat, project/by, optional, coalesce) and value steps. Each one the guard allows is run
by a small evaluator over an in-memory graph of two tenants with edges between them:
an element of the other tenant may only ever be filtered away (no other step may run on
it, no traversal may end on it), so nothing the caller sees depends on it.

The evaluator follows Gremlin's semantics over the generator's tree, not the guard's
token rules. A second property checks that traversals scoped by construction pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.graph.gremlin import judge_gremlin
from proxy.graph.policy import GraphPolicy

POLICY = GraphPolicy(language="gremlin", api="gremlin-http", tenant_parameter="tenant")
ME, OTHER = "A", "B"


@dataclass(frozen=True)
class El:
    id: str
    tenant: str
    label: str
    x: int
    ends: tuple[str, str] | None = None  # edges: (out vertex, in vertex)
    alias: str = ""  # another property that may hold the caller's tenant value


VERTICES = (
    El("A1", ME, "Customer", 1),
    El("A2", ME, "Item", 2),
    El("B1", OTHER, "Customer", 1, alias=ME),
    El("B2", OTHER, "Item", 2),
)
EDGES = (  # an edge belongs to the tenant of the vertex it leaves
    El("e1", ME, "knows", 1, ("A1", "A2")),
    El("e2", ME, "knows", 2, ("A1", "B1")),
    El("e3", OTHER, "knows", 1, ("B1", "B2")),
    El("e4", OTHER, "knows", 2, ("B2", "A2")),
    El("e5", ME, "knows", 1, ("A2", "A1")),
)
V_BY_ID = {v.id: v for v in VERTICES}


class Violation(AssertionError):
    pass


# --- grammar -----------------------------------------------------------------------------
MOVES = ("V", "E", "out", "in", "both", "outE", "inE", "bothE", "inV", "outV")
FILTERS = {
    "has_t": "has('tenant', tenant)",
    "has_lt": "has('Customer', 'tenant', tenant)",
    "has_within": "has('tenant', within(tenant, 'B'))",
    "has_neq": "has('tenant', neq(tenant))",
    "has_x": "has('x', 1)",
    "has_alias": "has('alias', tenant)",
    "hasLabel": "hasLabel('Customer')",
}
SIMPLE = {"identity": "identity()", "dedup": "dedup()", "limit": "limit(3)"}
NESTED = ("union", "where", "not", "local", "repeat", "project", "optional", "coalesce")
VALUES = {"values": "values('x')", "count": "count()", "path": "path()", "fold": "fold()"}


@dataclass(frozen=True)
class S:
    op: str
    subs: tuple[tuple[S, ...], ...] = ()


def render_steps(steps: tuple[S, ...]) -> str:
    out = []
    for s in steps:
        if s.op in MOVES:
            out.append(f"{s.op}()")
        elif s.op in FILTERS:
            out.append(FILTERS[s.op])
        elif s.op in SIMPLE:
            out.append(SIMPLE[s.op])
        elif s.op in VALUES:
            out.append(VALUES[s.op])
        elif s.op == "repeat":
            out.append(f"repeat({anon(s.subs[0])}).times(2)")
        elif s.op == "project":
            out.append(f"project('p').by({anon(s.subs[0])})")
        elif s.op == "inject":
            out.append("inject('x')")
        else:
            out.append(f"{s.op}({', '.join(anon(t) for t in s.subs)})")
    return ".".join(out)


def anon(steps: tuple[S, ...]) -> str:
    return "__." + render_steps(steps)


def render(start: str, steps: tuple[S, ...]) -> str:
    head = "g.inject(1)" if start == "inject" else f"g.{start}()"
    return head + ("." + render_steps(steps) if steps else "")


@cache
def step_lists(depth: int, safe: bool) -> st.SearchStrategy[tuple[S, ...]]:
    """Element steps (moves, filters, nested), then maybe a value step."""
    moves = st.sampled_from(MOVES[2:])  # V and E mid-traversal are rarer, below
    if safe:
        move = st.builds(lambda m: (S(m), S("has_t")), moves)
        filt = st.sampled_from(("has_x", "hasLabel", "identity", "dedup")).map(lambda f: (S(f),))
    else:  # mostly scoped moves, with near misses: no filter, the wrong one, one too late
        any_move = st.one_of(moves, moves, st.sampled_from(("V", "E")))
        after = st.lists(
            st.sampled_from((*FILTERS, "has_t", "has_t", "has_t", *SIMPLE)), min_size=0, max_size=2
        )
        move = st.builds(lambda m, a: (S(m), *(S(x) for x in a)), any_move, after)
        filt = st.sampled_from((*FILTERS, *SIMPLE)).map(lambda f: (S(f),))
    parts = [move, filt]
    if depth > 0:
        sub = step_lists(depth - 1, safe).filter(bool)
        nested = st.builds(
            lambda op, a, b: (S(op, (a, b) if op in ("union", "coalesce") else (a,)),),
            st.sampled_from(NESTED),
            sub,
            sub,
        )
        parts.append(nested)
    if not safe:
        parts = [*parts, *parts, *parts, st.just((S("inject"),))]
    body = st.lists(st.one_of(*parts), max_size=4).map(lambda xs: tuple(s for x in xs for s in x))
    tail = st.one_of(st.just(()), st.sampled_from(tuple(VALUES)).map(lambda v: (S(v),)))
    return st.builds(lambda b, t: b + t, body, tail)


# --- evaluator -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Trav:
    obj: Any
    path: tuple[Any, ...]


def other(obj: Any) -> bool:
    return isinstance(obj, El) and obj.tenant != ME


def step_on(t: Trav, new: Any) -> Trav:
    return Trav(new, (*t.path, new) if isinstance(new, El) else t.path)


def moves(op: str, obj: Any) -> list[Any]:
    if op == "V":
        return list(VERTICES)
    if op == "E":
        return list(EDGES)
    if not isinstance(obj, El):
        return []
    if obj.ends is None:  # a vertex
        outs = [e for e in EDGES if e.ends and e.ends[0] == obj.id]
        ins = [e for e in EDGES if e.ends and e.ends[1] == obj.id]
        table = {
            "out": [V_BY_ID[e.ends[1]] for e in outs if e.ends],
            "in": [V_BY_ID[e.ends[0]] for e in ins if e.ends],
            "outE": outs,
            "inE": ins,
            "bothE": outs + ins,
        }
        table["both"] = table["out"] + table["in"]
        return table.get(op, [])
    a, b = obj.ends
    return {"outV": [V_BY_ID[a]], "inV": [V_BY_ID[b]]}.get(op, [])


def keep(op: str, obj: Any) -> bool:
    if not isinstance(obj, El):
        return False
    return {
        "has_t": obj.tenant == ME,
        "has_lt": obj.tenant == ME and obj.label == "Customer",
        "has_within": obj.tenant in (ME, OTHER),
        "has_neq": obj.tenant != ME,
        "has_x": obj.x == 1,
        "has_alias": obj.alias == ME,
        "hasLabel": obj.label == "Customer",
    }[op]


def run(steps: tuple[S, ...], travs: list[Trav]) -> list[Trav]:
    for s in steps:
        if s.op in FILTERS:  # the only step that may look at the other tenant's element
            travs = [t for t in travs if keep(s.op, t.obj)]
            continue
        for t in travs:
            if other(t.obj):
                raise Violation(f"{s.op} runs on {t.obj.id}")
        if s.op in MOVES:
            travs = [step_on(t, n) for t in travs for n in moves(s.op, t.obj)]
        elif s.op in ("identity", "dedup", "limit"):
            travs = travs[:3] if s.op == "limit" else travs
        elif s.op == "inject":
            travs = [*travs, Trav("x", ())]
        elif s.op == "values":
            travs = [Trav(t.obj.x, t.path) for t in travs if isinstance(t.obj, El)]
        elif s.op == "count":
            travs = [Trav(len(travs), ())]
        elif s.op == "fold":
            travs = [Trav(tuple(t.obj for t in travs), ())]
        elif s.op == "path":
            travs = [Trav(t.path, t.path) for t in travs]
        else:
            travs = [r for t in travs for r in nested(s, t)]
    for t in travs:
        if other(t.obj):
            raise Violation(f"a traversal ends on {t.obj.id}")
    return travs


def nested(s: S, t: Trav) -> list[Trav]:
    runs = [run(sub, [t]) for sub in s.subs]
    if s.op == "union":
        return runs[0] + runs[1]
    if s.op == "coalesce":
        return runs[0] or runs[1]
    if s.op == "where":
        return [t] if runs[0] else []
    if s.op == "not":
        return [] if runs[0] else [t]
    if s.op == "local":
        return runs[0]
    if s.op == "optional":
        return runs[0] or [t]
    if s.op == "project":
        return [Trav({"p": runs[0][0].obj if runs[0] else None}, t.path)]
    assert s.op == "repeat"
    return [r for mid in runs[0] for r in run(s.subs[0], [mid])]


def evaluate(start: str, steps: tuple[S, ...]) -> list[Trav]:
    return run((S(start), *steps) if start != "inject" else (S("inject"), *steps), [Trav(0, ())])


starts = st.sampled_from(("V", "V", "V", "E", "E", "E", "V", "inject"))
# how the start is filtered: mostly scoped, else a near miss or nothing
PREFIXES = st.sampled_from(
    ("has_t", "has_t", "has_t", "has_lt", "has_within", "has_neq", "has_alias", "hasLabel", "")
).map(lambda f: (S(f),) if f else ())


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(starts, PREFIXES, step_lists(2, False))
def test_allowed_traversals_never_use_the_other_tenant(
    start: str, prefix: tuple[S, ...], steps: tuple[S, ...]
) -> None:
    steps = (*prefix, *steps)
    script = render(start, steps)
    d = judge_gremlin(script, POLICY, tenant=ME)
    if d.code is not None:
        return
    try:
        evaluate(start, steps)
    except Violation as exc:
        raise AssertionError(f"allowed {script}: {exc}") from None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(("V", "E")), step_lists(2, True))
def test_scoped_traversals_pass(start: str, steps: tuple[S, ...]) -> None:
    steps = (S("has_t"), *steps)
    script = render(start, steps)
    d = judge_gremlin(script, POLICY, tenant=ME)
    assert d.code is None, (script, d.reason)
    evaluate(start, steps)  # and the evaluator agrees
