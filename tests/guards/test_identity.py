"""The tenant / role grammar: what may be recorded as an identity, and what is refused."""

from __future__ import annotations

import pytest

from proxy.guards.identity import INVALID, identity_problem, loggable_identity
from tests.credentials.fakes import jwt, rnd
from tests.guards.kit import ask, build, code, http_call, route


@pytest.mark.parametrize(
    "tenant",
    ["acme", "org:acme.eu-1@corp", "t_1", "550e8400-e29b-41d4-a716-446655440000", "a" * 128],
)
def test_tenants_that_pass(tenant: str) -> None:
    assert identity_problem(tenant, None, "X-Tenant-ID", "X-Caller-Role") is None


@pytest.mark.parametrize(
    "tenant",
    ["a" * 129, "acme corp", "x' OR '1'='1", 'acme"', "ü", "a/b", "ghp_" + rnd(36), jwt()],
)
def test_tenants_refused_without_quoting_them(tenant: str) -> None:
    problem = identity_problem(tenant, None, "X-Tenant-ID", "X-Caller-Role")
    assert problem is not None and problem.startswith("X-Tenant-ID ") and tenant not in problem
    assert loggable_identity(tenant, None) == (INVALID, "")


@pytest.mark.parametrize("roles", ["agent", "agent, ops", " a ,b ", "a,,b", "x" * 128])
def test_role_lists_that_pass(roles: str) -> None:
    assert identity_problem(None, roles, "X-Tenant-ID", "X-Caller-Role") is None
    assert loggable_identity(None, roles) == (None, roles)


@pytest.mark.parametrize(
    "roles", ["x" * 129, "a b", "admin;drop", ",".join(["r"] * 600), "admin, ghp_" + rnd(36)]
)
def test_role_lists_refused(roles: str) -> None:
    problem = identity_problem(None, roles, "X-Tenant-ID", "X-Caller-Role")
    assert problem is not None and problem.startswith("X-Caller-Role ")


def test_a_value_valid_as_one_field_is_not_taken_for_the_other() -> None:
    """Verdicts are remembered per (tenant, roles) pair, never per value: a role list
    with a blank is not a tenant id because it was seen as roles first."""
    assert identity_problem(None, "a, b", "T", "R") is None
    assert identity_problem("a, b", None, "T", "R") is not None
    assert identity_problem("x,y", None, "T", "R") is not None
    assert identity_problem(None, "x,y", "T", "R") is None

# --- the guard, built from the rules -------------------------------------------------------

SQL_TENANT = {"tenant": {"column": "t", "tables": ["orders"]}}
GRAPH_TENANT = {"tenant": {"parameter": "tenant"}}


@pytest.mark.parametrize(
    ("spec", "needs"),
    [
        (route(), False),
        (route(tenant={"forward_header": "X-T"}), True),
        (route(tenant={"required": False, "forward_header": "X-T"}), False),
        (route("sql", sql={}), False),
        (route("sql", sql=SQL_TENANT), True),
        (route("graph", graph={}), False),
        (route("graph", graph=GRAPH_TENANT), True),
        (route("mcp", tenant={"json_field": "/tenant"}), True),
        (route("postgres", sql=SQL_TENANT), True),
    ],
)
async def test_which_routes_need_a_tenant(spec: dict, needs: bool) -> None:
    g = build("identity", spec)
    assert (g is not None) == needs
    if g is not None:
        assert code(await ask(g, http_call(tenant=None))) == "AUTH_FAILED"
        assert code(await ask(g, http_call(tenant=""))) == "AUTH_FAILED"
        assert code(await ask(g, http_call(tenant="acme"))) is None


async def test_the_reason_names_where_the_tenant_comes_from() -> None:
    http = build("identity", route(tenant={}), identity={"tenant_header": "X-Org"})
    pg = build("identity", route("postgres", tenant={"startup_parameter": "application_name"}))
    assert "missing X-Org" in (await ask(http, http_call(tenant=None))).reason  # type: ignore[union-attr]
    assert "application_name" in (await ask(pg, http_call(tenant=None))).reason  # type: ignore[union-attr]
