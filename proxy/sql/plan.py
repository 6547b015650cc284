"""What the guard decided about one query shape: the verdict plus the rewrite as edits
anchored on token positions, so one plan serves every query with the same digest.

Edits only insert text between tokens (or replace a LIMIT number), so the caller's own
literals, comments and spacing reach the database byte for byte: there is nothing to
re-quote. Where an edit cannot be expressed that way (UPDATE/DELETE on a tenant table,
LIMIT syntax that a suffix cannot cap), the plan carries a whole regenerated `template`
and is only reused for the exact same text.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot.tokens import Token

from proxy.model.errors import ErrorCode

BEFORE, AFTER, REPLACE = 0, 1, 2
TENANT = None  # slot in `parts` for the quoted tenant literal

Parts = tuple[str | None, ...]


@dataclass(frozen=True, slots=True)
class Edit:
    token: int
    mode: int  # BEFORE / AFTER the token, or REPLACE it
    parts: Parts


@dataclass(frozen=True, slots=True)
class Plan:
    code: ErrorCode | None
    reason: str
    kind: str
    read_only: bool
    pinned: tuple[int, ...] = ()
    """Literal token indices whose values are part of the decision (e.g. LIMIT n)."""
    edits: tuple[Edit, ...] = ()
    template: Parts | None = None
    """Whole rewritten SQL (AST mode); valid for this exact text only."""
    tenant_checks: tuple[int, ...] = ()
    """Literal token indices that must equal the caller's tenant (INSERT values)."""
    reusable: bool = True
    """False: do not serve other texts with the same digest from this plan."""
    tables: tuple[str, ...] | None = None
    """Tables named, as in SqlDecision.tables (identifiers: the same for every text of
    one digest)."""
    columns: tuple[str, ...] | None = None
    """Columns named, as in SqlDecision.columns."""


def blocked(code: ErrorCode, reason: str, kind: str = "unknown", **kw: object) -> Plan:
    return Plan(code, reason, kind, False, **kw)  # type: ignore[arg-type]


def edit_spots(tokens: list[Token], edits: tuple[Edit, ...]) -> list[tuple[int, int, Parts]]:
    """(position, where the original text resumes, inserted parts), in output order.
    Ties at one position: later (outer) insertions go first before a token, last after."""
    spots: list[tuple[int, int, int, Parts]] = []
    for seq, e in enumerate(edits):
        tok = tokens[e.token]
        if e.mode == BEFORE:
            spots.append((tok.start, -seq, tok.start, e.parts))
        elif e.mode == AFTER:
            spots.append((tok.end + 1, seq, tok.end + 1, e.parts))
        else:
            spots.append((tok.start, seq, tok.end + 1, e.parts))
    spots.sort(key=lambda s: (s[0], s[1]))
    return [(pos, resume, parts) for pos, _, resume, parts in spots]


def apply_edits(sql: str, tokens: list[Token], edits: tuple[Edit, ...]) -> Parts:
    """The SQL split into text and tenant slots with every edit applied."""
    return splice(sql, edit_spots(tokens, edits))


def splice(sql: str, spots: list[tuple[int, int, Parts]]) -> Parts:
    out: list[str | None] = []
    cur = 0
    for pos, resume, parts in spots:
        out.append(sql[cur:pos])
        out.extend(parts)
        cur = resume
    out.append(sql[cur:])
    return tuple(out)
