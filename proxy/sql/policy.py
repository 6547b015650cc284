"""A route's SQL policy, compiled once from `SqlSpec`: hashable, so it can key caches
and be compared across rule reloads."""

from __future__ import annotations

from dataclasses import dataclass, field

from proxy.config.schema import SqlSpec
from proxy.sql.functions import Rules, rules_for


@dataclass(frozen=True, slots=True)
class SqlPolicy:
    """What a route allows. `tenant_tables` and `allowed_tables` hold lower-case names,
    optionally schema-qualified (`public.orders`)."""

    dialect: str
    read_only: bool
    block_ddl: bool
    block_dcl: bool
    blocked_functions: frozenset[str]
    allowed_tables: frozenset[str] | None
    tenant_column: str | None
    tenant_tables: frozenset[str]
    max_rows: int | None
    allowed_functions: frozenset[str] = frozenset()
    """sql.functions.allow, lower-case."""
    route_blocked_functions: frozenset[str] = frozenset()
    """The route's own blocked_functions, without the cross-dialect list (postgres judge)."""
    lists_tables: bool = False
    """A `when` or `allow_tables` reads the tables a statement names: the engine must
    list them (sqlglot reads the text even where PostgreSQL's parser alone judges)."""
    _prefixes: tuple[str, ...] = field(init=False, compare=False, hash=False, repr=False)
    rules: Rules = field(init=False, compare=False, hash=False, repr=False)

    def __post_init__(self) -> None:
        prefixes = tuple(p[:-1] for p in self.blocked_functions if p.endswith("*"))
        object.__setattr__(self, "_prefixes", prefixes)
        object.__setattr__(self, "rules", rules_for(self.dialect))

    @property
    def strict_functions(self) -> bool:
        """Read-only and tenant routes allowlist functions; the others deny a list."""
        return self.read_only or self.tenant_column is not None

    @classmethod
    def from_spec(cls, spec: SqlSpec) -> SqlPolicy:
        tenant = spec.tenant
        return cls(
            dialect=spec.dialect,
            read_only=spec.read_only,
            block_ddl=spec.block_ddl,
            block_dcl=spec.block_dcl,
            blocked_functions=frozenset(f.lower() for f in spec.blocked_functions),
            allowed_tables=(
                None
                if spec.allowed_tables is None
                else frozenset(t.lower() for t in spec.allowed_tables)
            ),
            tenant_column=tenant.column if tenant else None,
            tenant_tables=frozenset(t.lower() for t in tenant.tables) if tenant else frozenset(),
            max_rows=spec.max_rows,
            route_blocked_functions=frozenset(f.lower() for f in spec.blocked_functions),
            allowed_functions=frozenset(
                f.lower() for f in (spec.functions.allow if spec.functions else ())),
            lists_tables=spec.when is not None or spec.allow_tables is not None,
        )

    def function_blocked(self, name: str) -> bool:
        """Refused on every guarded route: the dialect's list and the route's own, unless
        the route allows the name."""
        name = name.lower()
        if name in self.allowed_functions:
            return False
        return (name in self.blocked_functions or name.startswith(self._prefixes)
                or self.rules.is_denied(name))

    def function_known(self, name: str) -> bool:
        """May a read-only or tenant route call this untyped function?"""
        name = name.lower()
        rules = self.rules
        return name in self.allowed_functions or name in rules.pure or name in rules.sources


def table_matches(names: frozenset[str], db: str, name: str) -> bool:
    """Does table `db.name` match an entry of `names`? Case-insensitive; an entry without a
    schema matches the name in any schema, and an unqualified reference matches a
    qualified entry (search_path could resolve it there)."""
    name = name.lower()
    if name in names:
        return True
    db = db.lower()
    for entry in names:
        schema, _, tail = entry.rpartition(".")
        if tail == name and (not db or schema.rpartition(".")[2] == db):
            return True
    return False
