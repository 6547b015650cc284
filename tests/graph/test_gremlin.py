"""Gremlin guard: mutating steps and code execution refused, single read traversals allowed
(step names inside strings and comments ignored), tenant binding and row cap."""

from __future__ import annotations

import pytest

from proxy.config.schema import GraphSpec
from proxy.graph.gremlin import judge_gremlin
from proxy.graph.policy import GraphPolicy
from proxy.model.errors import ErrorCode

RO = GraphPolicy.from_spec(GraphSpec(language="gremlin", api="gremlin-http"))
RW = GraphPolicy.from_spec(GraphSpec(language="gremlin", api="gremlin-http", read_only=False))

BLOCKED: list[tuple[str, str]] = [
    ("g.addV('person')", "addV"),
    ("g.addV('person').property('name', 'x')", "addV"),
    ("g.V(1).addE('knows').to(__.V(2))", "addE"),
    ("g.V(1).property('name', 'x')", "property"),
    ("g.V().drop()", "drop"),
    ("g.E().hasLabel('x').drop()", "drop"),
    ("g.V().outE().drop().iterate()", "drop"),
    ("g.mergeV([name: 'x'])", "mergeV"),
    ("g.mergeE([(T.label): 'knows'])", "mergeE"),
    ("g.io('/tmp/graph.xml').write()", "io"),
    ("g.io('/etc/passwd').read().iterate()", "io"),
    ("g.V().coalesce(__.has('x'), __.addV('x'))", "addV"),
    ("g.V().sideEffect(__.addE('x').to(__.V(2)))", "addE"),
    ("g.V().sideEffect{ it.get().remove() }", "closure"),
    ("g.V().map{ it.get().value('name') }", "closure"),
    ("g.V().filter({ true })", "closure"),
    ("g.V().map(Lambda.function('it.get()'))", "Lambda"),
    ("g.V().map(x -> x)", "lambda"),
    ("System.exit(0)", "System"),
    ("Runtime.getRuntime().exec('rm -rf /')", "Runtime"),
    ("Class.forName('java.lang.Runtime')", "Class"),
    ("g.V().next().getClass().forName('x')", "getClass"),
    ("new File('/etc/passwd').text", "new"),
    ("'ls'.execute()", "execute"),
    ("java.lang.System.getenv()", "java"),
    ("g.V(); g.E()", "multiple statements"),
    ("x = g.V().next()", "assignment"),
    ("def x = 1", "def"),
    ("g.V()\ng.E()", "single traversal"),
    ("g.V().count()\ng.V().has('a')", "single traversal"),
    ("g.V().has('name', \"${Runtime.getRuntime()}\")", "interpolation"),
    ("g.V().has('name', \"$graph\")", "interpolation"),
    ('g.V().has("name", """${x}""")', "interpolation"),
    ("g.V().has('x', /slashy/)", "/"),
    ("g.tx().commit()", "tx"),
    ("graph.addVertex('x')", "graph"),
    ("g.V().has('a').call('tinker.degree.centrality')", "call"),
    ("g.withoutStrategies(ReadOnlyStrategy).V()", "withoutStrategies"),
    ("g.V().has('a') /* unterminated", "unterminated"),
    ("g.V().has('a", "unreadable"),
    ("g.V(", "unbalanced"),
    ("g.V().has('a').", "single traversal"),
    ("Runtime.&getRuntime", "Runtime"),
    ("g.V().@x", "field access"),
    ("@Grab('x') g.V()", "annotation"),
    ("", "empty"),
    ("g['class']['classLoader']", "subscript"),
    ("g.V().toList()[0]", "subscript"),
    ("g.V().has('a', x['y'])", "subscript"),
]

ALLOWED: list[str] = [
    "g.V()",
    "g.V().count()",
    "g.V().hasLabel('person').values('name')",
    "g.V(1).out('knows').values('name').toList()",
    "g.V().has('name', 'drop').values('age')",
    "g.V().has('name', \"addV('x')\")",
    "g.V().has('note', 'System.exit(0); g.V().drop()')",
    "g.V().has('age', gt(30)).order().by('age', desc).limit(5)",
    "g.V().group().by(label).by(count())",
    "g.V().project('a', 'b').by('name').by(__.outE().count())",
    "g.V().has('name', within('a', 'b')).elementMap()",
    "g.V().repeat(out()).times(2).path().by('name')",
    "g.V().where(__.out('created')).valueMap(true)",
    "g.V(1L).properties('name')",
    "g.V().has(T.id, 1).next()",
    "g.inject([a: 1, b: 2]).unfold()",
    "g.V().range(0, 10)",
    "g.V() // addV in a comment\n  .count()",
    "g.V()\n  .hasLabel('x')\n  .values('y')",
    "g.V() /* drop() */ .count()",
    "g.V().has('name', 'a\\'b').id()",
    "g.V().choose(has('age'), values('age'), constant(-1))",
    "g.E().hasLabel('knows').inV().dedup()",
    "g.V().has('price', between(1.5d, 10))",
]


@pytest.mark.parametrize(("script", "what"), BLOCKED)
def test_blocked(script: str, what: str) -> None:
    d = judge_gremlin(script, RO)
    assert d.code is ErrorCode.SQL_BLOCKED, script
    assert what.lower() in d.reason.lower(), d.reason


@pytest.mark.parametrize("script", ALLOWED)
def test_allowed(script: str) -> None:
    d = judge_gremlin(script, RO)
    assert d.code is None, (script, d.reason)
    assert d.statement == script and not d.rewritten


def test_corpus_sizes() -> None:
    assert len(BLOCKED) >= 30 and len(ALLOWED) >= 20


def test_write_route_allows_steps_not_code() -> None:
    assert judge_gremlin("g.addV('x').property('a', 1)", RW).code is None
    assert judge_gremlin("g.V().drop()", RW).code is None
    for script in ("g.V().map{ it }", "Runtime.getRuntime()", "g.V(); g.E()", "x = g.V()"):
        assert judge_gremlin(script, RW).code is ErrorCode.SQL_BLOCKED, script


def test_tenant_binding() -> None:
    p = GraphPolicy(
        language="gremlin", api="gremlin-http", tenant_parameter="tid", tenant_property="tenant"
    )
    ok = judge_gremlin("g.V().has('tenant', tid)", p, tenant="acme")
    assert ok.code is None and ok.parameters == {"tid": "acme"} and ok.rewritten
    same = judge_gremlin("g.V().has('tenant', tid)", p, bindings={"tid": "acme"}, tenant="acme")
    assert same.code is None and not same.rewritten
    other = judge_gremlin("g.V().has('tenant', tid)", p, bindings={"tid": "x"}, tenant="acme")
    assert other.code is ErrorCode.TENANT_MISMATCH
    for script in ("g.V()", "g.V().has('tenant', 'tid')"):
        assert judge_gremlin(script, p, tenant="acme").code is ErrorCode.TENANT_MISMATCH
    # `tid` used as a step name is no read step: refused before the tenant check
    assert judge_gremlin("g.V().values('x').tid()", p, tenant="acme").code is not None


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("g.V()", "g.V().limit(50)"),
        ("g.V().limit(10)", "g.V().limit(10).limit(50)"),
        ("g.V().values('n').toList()", "g.V().values('n').limit(50).toList()"),
        ("g.V().out().next(3)", "g.V().out().limit(50).next(3)"),
        (
            "g.V().where(__.out().toList()).iterate()",
            "g.V().where(__.out().toList()).limit(50).iterate()",
        ),
        ("g.V() // c", "g.V().limit(50) // c"),
    ],
)
def test_row_cap(script: str, expected: str) -> None:
    # a writable route: `__.out().toList()` is no read step, the cap placement is tested
    p = GraphPolicy(language="gremlin", api="gremlin-http", max_rows=50, read_only=False)
    d = judge_gremlin(script, p)
    assert d.code is None and d.statement == expected and d.rewritten
