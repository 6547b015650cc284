"""`sql.allow_tables`: which tables a role or a tenant may name, as data. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from proxy.config.schema import SqlAllowTables
from proxy.sql.policy import table_matches


def _lists(spec: dict[str, list[str]] | None) -> Mapping[str, frozenset[str]] | None:
    if spec is None:
        return None
    return MappingProxyType({k: frozenset(t.lower() for t in v) for k, v in spec.items()})


@dataclass(frozen=True, slots=True)
class TableScope:
    roles: Mapping[str, frozenset[str]] | None
    tenants: Mapping[str, frozenset[str]] | None

    @classmethod
    def from_spec(cls, spec: SqlAllowTables | None) -> TableScope | None:
        return None if spec is None else cls(_lists(spec.roles), _lists(spec.tenants))

    def refusal(self, roles: frozenset[str], tenant: str | None,
                tables: tuple[str, ...] | None) -> str | None:
        """Why these tables are out of this caller's scope (never quoting values), or
        None. SECURITY: a caller no entry names, or a statement whose tables the engine
        did not list, is refused."""
        if tables is None:
            return "the statement's tables could not be listed for allow_tables"
        for what, lists, keys in (("role", self.roles, roles),
                                  ("tenant", self.tenants, (tenant,) if tenant else ())):
            if lists is None:
                continue
            named = [lists[k] for k in keys if k in lists]
            if not named:
                if "*" not in lists:
                    return f"allow_tables names no entry for this caller's {what}"
                named = [lists["*"]]
            allowed = frozenset().union(*named)
            for table in tables:
                db, _, name = table.rpartition(".")
                if not table_matches(allowed, db, name):
                    return f"table {name} is not in this caller's {what} allow_tables"
        return None
