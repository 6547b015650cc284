"""CEL conditions: compiled once with the rule's place, unknown fields and type errors
refused at load, evaluation errors and non-bool results deny, and a call's activation
holds only what the expression reads (checked against the whole activation)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from proxy.conditions.activation import Facts, values_for
from proxy.conditions.cel import REFERENCE, Condition, ConditionError, check
from proxy.model.call import Caller, McpCall, Request

REFUND = ('tool.arguments.amount <= ("supervisor" in identity.roles ? 5000 : 500) '
          '&& identity.claims.region == "eu" && tool.name == "refund"')


def cond(src: str, place: str = "tool") -> Condition:
    return Condition.build("routes[r].test.when", src, place)


def make_call(roles: tuple[str, ...] = ("support",), claims: dict[str, Any] | None = None,
              headers: dict[str, str] | None = None) -> McpCall:
    from multidict import CIMultiDict, CIMultiDictProxy

    req = Request("POST", "/mcp", "", headers=CIMultiDictProxy(CIMultiDict(headers or {})))
    return McpCall("r", "mcp", Caller("acme", frozenset(roles), "t", "", claims), req)


@pytest.mark.parametrize(
    ("src", "place", "problem"),
    [
        ("request.bogus == 1", "access", "undeclared reference to 'request.bogus'"),
        ("tool.name == 'x'", "access", "undeclared reference to 'tool.name'"),
        ("sql.tables.size() > 0", "tool", "undeclared reference"),
        ("identity.roles == 1", "access", "no matching overload"),
        ("request.method ==", "access", "Syntax error"),
        ("request.method", "access", "must be a bool"),
        ("   ", "access", "empty condition"),
    ],
)
def test_rules_that_do_not_compile(src: str, place: str, problem: str) -> None:
    with pytest.raises(ConditionError, match=problem):
        check(src, place)


def test_needs_only_what_the_expression_reads() -> None:
    c = cond(REFUND)
    assert c.needs == {"tool.arguments", "identity.roles", "identity.claims", "tool.name"}
    # A comprehension variable named like a group is not a read of it.
    assert cond("[1].all(request, request > 0)", "access").needs == frozenset()


@pytest.mark.parametrize(
    ("roles", "args", "claims", "holds"),
    [
        (("support",), {"amount": 120}, {"region": "eu"}, True),
        (("support",), {"amount": 499.5}, {"region": "eu"}, True),
        (("support",), {"amount": 501}, {"region": "eu"}, False),
        (("support", "supervisor"), {"amount": 4000}, {"region": "eu"}, True),
        (("support",), {"amount": 120}, {"region": "us"}, False),
    ],
)
def test_refund_limit_per_role(roles, args, claims, holds) -> None:
    c = cond(REFUND)
    out = c.evaluate(values_for(c, make_call(roles, claims), Facts("refund", args)))
    assert out.holds is holds
    if not holds:
        assert c.denial(out) == "condition routes[r].test.when is false"


@pytest.mark.parametrize(
    ("args", "claims", "why"),
    [
        ({}, {"region": "eu"}, "a field it reads is missing"),
        ({"amount": "120"}, {"region": "eu"}, "wrong type"),
        ({"amount": 2**70}, {"region": "eu"}, "out of range"),
        ({"amount": 1}, None, "a field it reads is missing"),  # no verified claims
        ([1, 2], {"region": "eu"}, "wrong type"),
    ],
)
def test_evaluation_errors_deny_without_quoting_values(args, claims, why) -> None:
    c = cond(REFUND)
    out = c.evaluate(values_for(c, make_call(("support",), claims), Facts("refund", args)))
    assert not out.holds and why in out.reason
    assert "120" not in out.reason and str(2**70) not in out.reason


def test_nested_arguments_lists_and_has() -> None:
    c = cond('has(tool.arguments.order) && tool.arguments.order.items.all(i, i.qty <= 10)'
             ' && !("discount" in tool.arguments)')
    ok = {"order": {"items": [{"qty": 1}, {"qty": 10}]}}
    assert c.evaluate(values_for(c, make_call(), Facts("t", ok))).holds
    many = {"order": {"items": [{"qty": 1}, {"qty": 11}]}}
    assert not c.evaluate(values_for(c, make_call(), Facts("t", many))).holds
    assert not c.evaluate(values_for(c, make_call(), Facts("t", {}))).holds  # has() is false
    odd = {"order": {"items": [{"sku": "x"}]}}  # a missing field inside the list
    out = c.evaluate(values_for(c, make_call(), Facts("t", odd)))
    assert not out.holds and "missing" in out.reason


def test_time_and_headers() -> None:
    c = cond('time.now.getHours("Europe/Paris") >= 0 && request.headers["x-env"] == "prod"'
             ' && !("authorization" in request.headers)', "access")
    call = make_call(headers={"X-Env": "prod", "Authorization": "Bearer secret"})
    values = values_for(c, call)
    assert "authorization" not in values["request.headers"]  # credentials never shown
    assert c.evaluate(values).holds


def test_sql_tables() -> None:
    c = cond('sql.kind == "select" && sql.tables.all(t, t in ["orders", "customers"])', "sql")
    ok = Facts(sql_kind="select", sql_tables=("orders",))
    assert c.evaluate(values_for(c, make_call(), ok)).holds
    bad = Facts(sql_kind="select", sql_tables=("orders", "payroll"))
    assert not c.evaluate(values_for(c, make_call(), bad)).holds
    unknown = Facts(sql_kind="select", sql_tables=None)  # not listed: fail closed
    assert not c.evaluate(values_for(c, make_call(), unknown)).holds


TEXT = st.text(st.characters(blacklist_characters="\x00"), max_size=5)
"""NUL is refused wherever it is read (test_nul_is_refused); an unread NUL only breaks
the whole-value reference (the runtime cuts strings at NUL: duplicate keys)."""
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
PRUNED = [
    REFUND,
    'has(tool.arguments.order) && tool.arguments.order.x == 1 || tool.arguments["amount"] > 1',
    'request.headers["x-env"] == "prod" || request.headers["X-Env"] == "prod"'
    ' || has(request.headers.authorization) || identity.claims.region in ["eu", 1]',
    'size(identity.claims) > 2 && tool.arguments.all(k, k != "x")',
]


@settings(max_examples=300, deadline=None)
@given(args=st.dictionaries(st.sampled_from(["amount", "order", "x"]), JSON, max_size=3),
       region=st.sampled_from(["eu", "us", 1]),
       extra=st.dictionaries(st.sampled_from(["sub", "aud", "region2"]), JSON, max_size=3),
       headers=st.dictionaries(st.sampled_from(["X-Env", "x-env", "Authorization", "Accept"]),
                               st.sampled_from(["prod", "dev"]), max_size=3),
       roles=st.sets(st.sampled_from(["support", "supervisor", "x"]), max_size=2),
       src=st.sampled_from(PRUNED))
def test_pruned_activation_equals_the_whole_one(args, region, extra, headers, roles,
                                                src) -> None:
    """Fast equals reference: maps cut down to the keys the expression reads give the
    verdict the whole values give."""
    c = cond(src)
    call = make_call(tuple(roles), {"region": region, **extra}, headers)
    facts = Facts("refund", args, {}, "select", ("orders",))
    whole = c.evaluate(values_for(c, call, facts, prune=False))
    pruned = c.evaluate(values_for(c, call, facts))
    # the verdict, and false versus an evaluation error, are the same; which error text
    # the runtime gives for a missing field may differ between a pruned and a whole map
    assert (pruned.holds, pruned.reason == "is false") == (whole.holds, whole.reason == "is false")


@pytest.mark.parametrize("headers", [{"X-Env": "dev"}, {"x-env": "prod"}, {}])
def test_pruned_headers_keep_case_semantics(headers: dict[str, str]) -> None:
    c = cond('request.headers["x-env"] == "prod" || request.headers["X-Env"] == "dev"',
             "access")
    call = make_call(headers=headers)
    assert c.evaluate(values_for(c, call)) == c.evaluate(values_for(c, call, prune=False))


SCALARS = st.sampled_from([0, 1, True, False, 0.0, -0.0, 1.0, None, "1", "", 2**63])


@settings(max_examples=300, deadline=None)
@given(xs=st.lists(st.dictionaries(st.sampled_from(["x", "y"]), SCALARS | st.lists(SCALARS,
                                                                                   max_size=2),
                                   max_size=2), min_size=1, max_size=6))
@example(xs=[{"x": 0.0}, {"x": -0.0}])
@example(xs=[{"x": 1}, {"x": True}, {"x": 1.0}])
@example(xs=[{"y": [1]}, {"y": [True]}])
def test_memo_equals_the_runtime(xs) -> None:
    """Fast equals reference: the outcome memo never answers for values the runtime
    would judge otherwise (1 vs 1.0 vs true, 0.0 vs -0.0, [1] vs [true])."""
    c = cond('1.0 / double(tool.arguments.x) > 0.0 || tool.arguments.y == [true]'
             ' || tool.arguments.x == true || type(tool.arguments.x) == int')
    assert c.memo is not None or REFERENCE
    for args in xs:
        values = values_for(c, make_call(), Facts("t", args))
        assert c.evaluate(values) == c.run(values)


@pytest.mark.parametrize(
    ("args", "claims"),
    [({"amount": 1}, {"region": "eu\x00evil"}),       # would read as "eu"
     ({"amount\x00": 1, "currency": "EUR"}, {"region": "eu"}),  # whole map: key cut short
     ({"amount": 1, "note": ["a\x00"]}, {"region": "eu"})],
)
def test_nul_is_refused(args, claims) -> None:
    c = cond('tool.arguments.amount <= 500 && identity.claims.region == "eu"'
             ' && size(tool.arguments) >= 1')
    out = c.evaluate(values_for(c, make_call(claims=claims), Facts("t", args)))
    assert not out.holds and "NUL" in out.reason


@pytest.mark.fast_path
def test_memo_drops_itself_when_it_does_not_hit() -> None:
    c = cond("tool.arguments.amount <= 500")
    call = make_call()
    for i in range(1100):
        values = values_for(c, call, Facts("t", {"amount": i}))
        assert c.evaluate(values).holds is (i <= 500)
    assert c.stats is None and c.memo == {}
    same = cond("tool.arguments.amount <= 501")
    for _ in range(1100):
        same.evaluate(values_for(same, call, Facts("t", {"amount": 7})))
    assert same.stats is not None and len(same.memo or {}) == 1


def test_no_memo_for_the_clock() -> None:
    assert cond("time.now > timestamp('2020-01-01T00:00:00Z')", "access").memo is None


@pytest.mark.fast_path
def test_pruning_reads_only_named_keys() -> None:
    c = cond(PRUNED[2], "access")
    assert c.keys["request.headers"] == {"x-env", "X-Env", "authorization"}
    assert c.keys["identity.claims"] == {"region"}
    assert "tool.arguments" not in cond(PRUNED[3]).keys  # iterated: read whole


def test_time_is_a_timestamp() -> None:
    c = cond("time.now > timestamp('2020-01-01T00:00:00Z')", "access")
    values = values_for(c, make_call())
    assert isinstance(values["time.now"], datetime) and values["time.now"].tzinfo is UTC
    assert c.evaluate(values).holds
