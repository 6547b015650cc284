"""Functions PostgreSQL does not ship, as an upstream's catalog describes them: a typed,
hashable table the pure judge reads (proxy/sql/pg/judge.py). Only the wire listener,
which holds a connection, can fill it (proxy/pgwire/catalog.py); over HTTP it is empty
and every unknown function is refused unless allowed by name.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# SECURITY: PostgreSQL itself refuses data-modifying statements inside a non-volatile
# function only in these languages; in C, PL/Python, ... volatility is just a label.
ENFORCING_LANGUAGES = frozenset({"sql", "plpgsql"})


@dataclass(frozen=True, slots=True)
class CatalogRow:
    """One pg_proc row: schema, name, prokind, provolatile, language."""

    schema: str
    name: str
    kind: str  # f function, a aggregate, w window, p procedure
    volatility: str  # i immutable, s stable, v volatile
    language: str

    @property
    def reads_only(self) -> bool:
        """PostgreSQL guarantees this function writes nothing itself."""
        return self.kind == "f" and self.volatility in ("i", "s") \
            and self.language in ENFORCING_LANGUAGES


@dataclass(frozen=True, slots=True)
class UserFunctions:
    """Names (bare and `schema.name`, exactly as pg_proc spells them) whose every
    overload reads only, and every name the catalog holds. A bare name reads only if it
    does in every schema (the proxy does not know the session's search_path)."""

    reads_only: frozenset[str] = frozenset()
    known: frozenset[str] = frozenset()
    source: str = "none"  # where the table came from (explain, logs): never a secret

    @classmethod
    def from_rows(cls, rows: Iterable[CatalogRow], source: str) -> UserFunctions:
        known: set[str] = set()
        volatile: set[str] = set()
        for row in rows:
            for key in (row.name, f"{row.schema}.{row.name}"):
                known.add(key)
                if not row.reads_only:
                    volatile.add(key)
        return cls(frozenset(known - volatile), frozenset(known), source)

    def lookup(self, qualified: str, bare: str, has_schema: bool) -> str | None:
        """'reads_only', 'volatile', or None when the catalog does not hold the name."""
        key = qualified if has_schema else bare
        if key not in self.known:
            return None
        return "reads_only" if key in self.reads_only else "volatile"


NO_USER_FUNCTIONS = UserFunctions()
