"""sql.allow_tables: tables per role and tenant, fail closed."""

from __future__ import annotations

from proxy.config.schema import SqlAllowTables
from proxy.sql.scope import TableScope

SCOPE = TableScope.from_spec(SqlAllowTables.model_validate({
    "roles": {"analyst": ["orders", "customers"], "finance": ["payments"]},
    "tenants": {"acme": ["orders", "customers", "payments"], "*": ["orders"]},
}))


def refusal(roles: set[str], tenant: str | None, tables: tuple[str, ...] | None) -> str | None:
    assert SCOPE is not None
    return SCOPE.refusal(frozenset(roles), tenant, tables)


def test_roles_and_tenants_both_bound() -> None:
    assert refusal({"analyst"}, "acme", ("orders", "customers")) is None
    assert refusal({"analyst", "finance"}, "acme", ("orders", "payments")) is None
    assert "role" in (refusal({"analyst"}, "acme", ("payments",)) or "")
    assert "tenant" in (refusal({"analyst"}, "globex", ("customers",)) or "")  # `*`: orders
    assert refusal({"analyst"}, "globex", ("orders",)) is None


def test_unnamed_callers_and_unlisted_tables_are_refused() -> None:
    assert "no entry" in (refusal({"intern"}, "acme", ("orders",)) or "")
    assert "could not be listed" in (refusal({"analyst"}, "acme", None) or "")


def test_qualified_names() -> None:
    assert refusal({"analyst"}, "acme", ("public.orders",)) is None
    scoped = TableScope.from_spec(SqlAllowTables(roles={"a": ["sales.orders"]}))
    assert scoped is not None
    assert scoped.refusal(frozenset({"a"}), None, ("sales.orders",)) is None
    assert scoped.refusal(frozenset({"a"}), None, ("hr.orders",)) is not None
