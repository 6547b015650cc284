"""What a read-only or tenant Gremlin route understands, judged on the script's tree.

Read-only routes: every step of every traversal (the script's and the anonymous ones in
arguments) is a known read step, every bare name a binding the request carries or a
Gremlin enum; unknown steps and names are refused (they could write, or reach server
globals such as `graph`).

Tenant routes add the scoping rule: a traversal starts at `g.V()`/`g.E()`, and every step
that reaches new elements (V, E, out, in, both, outE, inE, bothE, outV, inV, bothV,
otherV) is followed, before any other step, by `has('<property>', <binding>)`; only pure
filters with plain arguments (has, hasLabel, hasId, hasNot) may stand between. An
anonymous traversal starts on the caller's elements and must end on them too. So every
element a traversal yields, or hands to a nested traversal, is the tenant's.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from proxy.graph.gremlin_tree import Arg, Chain, ListLit, Lit, MapLit, Step

MOVES = frozenset(
    {"V", "E", "out", "in", "both", "outE", "inE", "bothE", "outV", "inV", "bothV", "otherV"}
)
PURE_FILTERS = frozenset({"has", "hasLabel", "hasId", "hasNot"})
TERMINALS = frozenset(
    {"toList", "toSet", "toBulkSet", "next", "tryNext", "iterate", "hasNext", "explain"}
)
# Steps that read: they neither change the graph nor run code. `inject` brings in values
# from the script, not from the graph: read-only routes only (tenant traversals start at V/E).
READ_STEPS = MOVES | PURE_FILTERS | frozenset(
    """hasKey hasValue is values valueMap elementMap propertyMap properties key value id label
    count limit range skip tail order by dedup fold unfold as select project sum min max
    mean group groupCount path simplePath cyclicPath where not and or filter map flatMap
    coalesce choose optional union local constant identity barrier math repeat emit until
    times loops option tree cap aggregate store index concat asString toUpper toLower
    length trim lTrim rTrim split substring replace format reverse coin sample timeLimit
    asDate dateAdd dateDiff element discard conjoin combine difference disjunct intersect
    product""".split()  # noqa: SIM905
)
SOURCES_READ = frozenset({"V", "E", "inject"})
SOURCES_TENANT = frozenset({"V", "E"})
PREDICATE_CLASSES = frozenset({"P", "TextP"})
PREDICATES = frozenset(
    """eq neq lt lte gt gte inside outside between within without startingWith endingWith
    containing notStartingWith notEndingWith notContaining regex notRegex""".split()  # noqa: SIM905
)
ENUM_CLASSES = frozenset(
    {"T", "Order", "Scope", "Column", "Pop", "Direction", "Cardinality", "Operator"}
)
ENUM_WORDS = frozenset(
    """id label key value asc desc shuffle local global keys values first last all mixed
    OUT IN BOTH incr decr true false null""".split()  # noqa: SIM905
)


class Refused(Exception):
    """Why the script is refused (no script text inside)."""


@dataclass(frozen=True, slots=True)
class _Judge:
    names: Collection[str]
    """Bare names a script may use: the request's bindings (the tenant's included)."""
    prop: str | None
    """Tenant property; None: read-only checks only."""
    param: str | None

    def tenant_has(self, step: Step) -> bool:
        """`has('<prop>', <param>)` or `has(<label>, '<prop>', <param>)`."""
        args = step.args
        if step.name != "has" or args is None or len(args) not in (2, 3):
            return False
        key, val = args[-2], args[-1]
        if len(args) == 3 and not isinstance(args[0], Lit):
            return False
        return (
            isinstance(key, Lit)
            and key.value == self.prop
            and isinstance(val, Chain)
            and val.name == self.param
        )

    def value(self, arg: Arg, *, traversals: bool) -> None:
        """An argument: literal, collection, binding, enum, predicate or (if allowed) an
        anonymous traversal, which must itself be read-only and scoped."""
        if isinstance(arg, Lit):
            return
        if isinstance(arg, ListLit):
            for item in arg.items:
                self.value(item, traversals=traversals)
            return
        if isinstance(arg, MapLit):
            for k, v in arg.entries:
                self.value(k, traversals=traversals)
                self.value(v, traversals=traversals)
            return
        name = arg.name
        if name is not None:
            if name in self.names or name in ENUM_WORDS:
                return
            raise Refused(f"name '{name[:32]}' is neither a binding nor a Gremlin enum")
        first = arg.steps[0]
        if first.args is None and first.name in ENUM_CLASSES:
            if len(arg.steps) == 2 and arg.steps[1].args is None:
                return
            raise Refused(f"{first.name}.… is not a plain enum")
        if first.args is None and first.name in PREDICATE_CLASSES:
            if len(arg.steps) == 2 and arg.steps[1].name in PREDICATES:
                self.predicate(arg.steps[1])
                return
            raise Refused(f"{first.name}.… is not a known predicate")
        if first.args is not None and first.name in PREDICATES and len(arg.steps) == 1:
            self.predicate(first)
            return
        if not traversals:
            raise Refused("a nested traversal is not allowed here")
        steps = arg.steps[1:] if first.name == "__" and first.args is None else arg.steps
        if not steps:
            raise Refused("an empty anonymous traversal")
        self.steps(steps, scoped=True, top=False)

    def predicate(self, step: Step) -> None:
        for a in step.args or ():
            self.value(a, traversals=False)

    def steps(self, steps: tuple[Step, ...], *, scoped: bool, top: bool) -> None:
        """Walk one traversal; scoped = its current elements are the tenant's."""
        tenant = self.prop is not None
        for k, step in enumerate(steps):
            name = step.name
            if step.args is None:
                raise Refused(f"'.{name[:32]}' without parentheses is not a step")
            if name in TERMINALS:
                if not top or k != len(steps) - 1:
                    raise Refused(f"{name}() must be the last step")
                continue
            if name not in READ_STEPS and (tenant or name != "inject"):
                raise Refused(f"step {name[:32]}() is not a known read step")
            if tenant and self.tenant_has(step):
                scoped = True
                continue
            if tenant and not scoped:
                if name in PURE_FILTERS:
                    for a in step.args:
                        self.value(a, traversals=False)
                    continue
                raise Refused(
                    f"{name}() follows a step reaching new elements before "
                    f"has('{self.prop}', {self.param})"
                )
            for a in step.args:
                self.value(a, traversals=True)
            if tenant and name in MOVES:
                scoped = False
        if tenant and not scoped:
            raise Refused(f"the traversal ends before has('{self.prop}', {self.param})")


def script_problem(
    chain: Chain, names: Collection[str], prop: str | None, param: str | None
) -> str:
    """'' if the script is a read traversal (scoped to the tenant when prop is set)."""
    judge = _Judge(names, prop, param)
    steps = chain.steps
    if len(steps) < 2 or steps[0].name != "g" or steps[0].args is not None:
        return "a script must start with g.V() or g.E()" if prop else "a script must start at g"
    sources = SOURCES_TENANT if prop else SOURCES_READ
    if steps[1].name not in sources:
        return f"g.{steps[1].name[:32]}() is not an allowed traversal start"
    try:
        judge.steps(steps[1:], scoped=True, top=True)  # the source step is the first move
    except Refused as exc:
        return str(exc)
    return ""
