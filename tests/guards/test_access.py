"""The access guard alone: route RBAC on the caller's roles."""

from __future__ import annotations

import pytest

from tests.guards.kit import ask, build, code, guard, http_call, route


@pytest.mark.parametrize(
    ("allowed", "roles", "expected"),
    [
        (["admin"], ("admin",), None),
        (["admin", "ops"], ("viewer", "ops"), None),
        (["*"], (), None),  # `*` admits a caller without a role header too
        (["*"], ("anything",), None),
        (["admin"], (), "PERMISSION_DENIED"),
        (["admin"], ("Admin",), "PERMISSION_DENIED"),  # roles are exact, not case-folded
        (["admin"], ("viewer",), "PERMISSION_DENIED"),
        ([], ("admin",), "PERMISSION_DENIED"),  # an empty list admits nobody
    ],
)
async def test_roles(allowed: list[str], roles: tuple[str, ...], expected: str | None) -> None:
    g = guard("access", route(access={"roles": allowed}))
    assert code(await ask(g, http_call(roles=roles))) == expected


async def test_the_reason_says_whether_a_role_was_given() -> None:
    g = guard("access", route(access={"roles": ["admin"]}))
    assert "no caller role" in (await ask(g, http_call())).reason  # type: ignore[union-attr]
    assert "not allowed" in (await ask(g, http_call(roles=("x",)))).reason  # type: ignore[union-attr]


def test_no_roles_in_the_rules_means_no_guard() -> None:
    assert build("access", route()) is None
