"""The secrets guard alone: injected headers and query parameters from references (the
caller's own value of that name replaced downstream), masking filters, and a reference
that cannot be resolved refusing the call without naming a value."""

from __future__ import annotations

import pytest

from proxy.guards.secrets import MaskFilter
from proxy.model.verdict import ALLOW, Deny, Rewrite
from tests.guards.kit import ask, build, code, context, guard, http_call, request, route

SECRET = "sk-live-4f9Qz7Lr2Wx8Nc3Vb6Hm1Jt5"


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CW_GUARD_TEST_KEY", SECRET)
    monkeypatch.delenv("CW_GUARD_TEST_MISSING", raising=False)


@pytest.mark.parametrize(
    ("credentials", "headers", "query"),
    [
        ({"inject": {"Authorization": "Bearer ${env:CW_GUARD_TEST_KEY}"}},
         (("Authorization", f"Bearer {SECRET}"),), ()),
        ({"inject_query": {"api_key": "${env:CW_GUARD_TEST_KEY}"}}, (), (("api_key", SECRET),)),
        ({"inject": {"X-A": "${env:CW_GUARD_TEST_KEY}", "X-B": "fixed"},
          "inject_query": {"k": "${env:CW_GUARD_TEST_KEY}"}},
         (("X-A", SECRET), ("X-B", "fixed")), (("k", SECRET),)),
    ],
)
async def test_injection(credentials, headers, query) -> None:
    g = guard("secrets", route(credentials={**credentials, "mask_responses": False}))
    ctx = context()
    v = await ask(g, http_call(request(headers={"Authorization": "caller's own"})), ctx)
    assert isinstance(v, Rewrite)
    assert (v.call.extra_headers, v.call.extra_query) == (headers, query)
    assert ctx.response_filters == []


async def test_masking_filter_is_added_with_the_values_this_call_sends() -> None:
    spec = route(credentials={"inject": {"X-Key": "${env:CW_GUARD_TEST_KEY}"},
                              "mask_responses": True})
    ctx = context()
    await ask(guard("secrets", spec), http_call(), ctx)
    (f,) = ctx.response_filters
    assert isinstance(f, MaskFilter)
    assert SECRET.encode() not in f.body(f"echo {SECRET}".encode(), "text/plain")


async def test_mcp_routes_mask_by_default_and_inject_nothing_unasked() -> None:
    ctx = context()
    assert await ask(guard("secrets", route("mcp")), http_call(kind="mcp"), ctx) is ALLOW
    assert [type(f) for f in ctx.response_filters] == [MaskFilter]


async def test_an_unresolvable_reference_refuses_without_a_value() -> None:
    g = guard("secrets", route(credentials={"inject": {"X-Key": "${env:CW_GUARD_TEST_MISSING}"}}))
    v = await ask(g, http_call())
    assert isinstance(v, Deny) and code(v) is not None and "CW_GUARD_TEST_MISSING" in v.reason


@pytest.mark.parametrize(
    "spec",
    [route(), route("postgres", credentials={"user": "${env:CW_GUARD_TEST_KEY}"}),
     route("mcp", credentials={"mask_responses": False})],
)
def test_routes_without_secrets_get_no_guard(spec) -> None:
    assert build("secrets", spec) is None
