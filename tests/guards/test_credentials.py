"""The credentials guard alone: plaintext credentials in what the caller sent are refused
in production and warned about in development; the rules' allow list and extra header
names apply. Reasons name where, never the value."""

from __future__ import annotations

import pytest

from proxy.model.verdict import ALLOW
from tests.credentials.fakes import github, rnd
from tests.guards.kit import ask, build, code, context, guard, http_call, json_call, request, route

TOKEN = github()


@pytest.mark.parametrize(
    ("req", "expected"),
    [
        (request(headers={"Accept": "application/json"}), None),
        (request(headers={"Authorization": f"Bearer {TOKEN}"}), "POLICY_DENY"),
        (request(headers={"X-Anything": TOKEN}), "POLICY_DENY"),
        (request(query=f"token={TOKEN}"), "POLICY_DENY"),
        (request(path=f"/repos/{TOKEN}/issues"), "POLICY_DENY"),
        (request("POST", headers={"Content-Type": "text/plain"}, body=TOKEN.encode()),
         "POLICY_DENY"),
        (request(query="q=weather"), None),
    ],
)
async def test_where_plaintext_is_found(req, expected) -> None:
    g = guard("credentials", route())
    v = await ask(g, http_call(req))
    assert code(v) == expected
    if expected:
        assert TOKEN not in v.reason  # type: ignore[union-attr]


async def test_json_bodies_are_scanned() -> None:
    g = guard("credentials", route())
    assert code(await ask(g, json_call({"city": "Oslo"}))) is None
    assert code(await ask(g, json_call({"auth": {"api_key": TOKEN}}))) == "POLICY_DENY"


async def test_development_warns_and_records() -> None:
    g = guard("credentials", route(), environment="development")
    ctx = context("development")
    v = await ask(g, http_call(request(headers={"Authorization": f"token {TOKEN}"})), ctx)
    assert v is ALLOW and ctx.record.warnings and TOKEN not in ctx.record.warnings[0]
    assert ctx.record.findings and all(action == "warned" for _, action in ctx.record.findings)


async def test_the_allow_list_and_extra_header_names() -> None:
    spec = route(credentials={"allow": ["header X-Debug-Token"], "scan_headers": ["X-Session"]})
    g = guard("credentials", spec)
    assert await ask(g, http_call(request(headers={"X-Debug-Token": TOKEN}))) is ALLOW
    session = http_call(request(headers={"X-Session": "s3cr3t-" + rnd(24)}))
    assert code(await ask(g, session)) == "POLICY_DENY"
    assert await ask(guard("credentials", route()), session) is ALLOW  # only when named


async def test_a_clean_header_remembered_is_still_scanned_with_new_values() -> None:
    g = guard("credentials", route())
    assert await ask(g, http_call(request(headers={"X-Note": "hello"}))) is ALLOW
    assert code(await ask(g, http_call(request(headers={"X-Note": TOKEN})))) == "POLICY_DENY"


def test_postgres_routes_judge_their_own_startup() -> None:
    assert build("credentials", route("postgres")) is None
