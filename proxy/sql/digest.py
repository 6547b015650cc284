"""Query digests: the token stream with plain string and number literals replaced by
placeholders, so `WHERE id = 7` and `WHERE id = 8` share one cached verdict and rewrite.

Only literals sqlglot tokenizes as plain STRING / NUMBER are placeholders; everything
else (keywords, identifiers, operators, comments, exotic literals such as E'', X'',
$$..$$) stays in the key verbatim.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from sqlglot.tokens import Token, TokenType

PARAM_TYPES: frozenset[TokenType] = frozenset({TokenType.STRING, TokenType.NUMBER})
MARK = "\x1e"
"""Never in a text the fast path binds: placeholders in keys, tenant slots in rewrites."""
_PLACEHOLDER = {TokenType.STRING: MARK + "'", TokenType.NUMBER: MARK + "0"}


def digest(
    tokens: list[Token], commands: frozenset[TokenType], sql: str
) -> tuple[str, tuple[int, ...]] | None:
    """(key, indices of placeholder literals): the SQL text with every plain literal
    token cut out, or None when the text holds the placeholder character.

    Two texts with one key differ only inside literal tokens that start and end at the
    same places, so they tokenize to the same stream apart from those values. Comments
    and spacing stay in the key: the checks that read them run once per key.
    SECURITY: after a command keyword (EXPLAIN, SHOW ...) sqlglot packs the rest of the
    statement into one STRING token; that one is code, so it stays in the key."""
    if MARK in sql:
        return None
    lits = [
        i
        for i, tok in enumerate(tokens)
        if tok.token_type in PARAM_TYPES and (i == 0 or tokens[i - 1].token_type not in commands)
    ]
    parts: list[str] = []
    cur = 0
    for i in lits:
        tok = tokens[i]
        parts.append(sql[cur : tok.start])
        parts.append(_PLACEHOLDER[tok.token_type])
        cur = tok.end + 1
    parts.append(sql[cur:])
    return "".join(parts), tuple(lits)


def comment_hazard(sql: str, tokens: list[Token]) -> str | None:
    """Text the database reads differently from sqlglot, found outside the tokens.
    SECURITY: MySQL runs `/*! ... */` comments as code; PostgreSQL's U&"..." identifiers
    can spell a blocked function name that sqlglot does not decode."""
    for tok in tokens:
        for comment in tok.comments or ():
            if comment.lstrip().startswith("!"):
                return "executable comments (/*! ... */) are not allowed"
        if (
            tok.token_type is TokenType.IDENTIFIER
            and tok.start >= 2
            and sql[tok.start - 2 : tok.start] in ("U&", "u&")
        ):
            return "unicode-escaped identifiers (U&\"...\") are not allowed"
    return None


# A literal the fast digest may cut out is bounded on both sides by spacing or by
# punctuation that cannot extend it (no identifier characters, dots, quotes, $, @, :).
_BEFORE = frozenset(" \t\r\n\f,(=<>!|+-*/%;[")
_AFTER = frozenset(" \t\r\n\f,)=<>!|+-*/%;]:")
_KINDS = {"'": MARK + "s", ".": MARK + "d", "": MARK + "i"}
# Numbers are found on a class map of the text (b: may precede or follow a number, c: may
# only follow, d: digit); bytes.find(b"bd") keeps the scan in C.
_CLASSES = bytes(
    ord("d") if chr(c).isdigit() and c < 128 else ord(".") if c == ord(".")
    else ord("b") if (chr(c) in _BEFORE and chr(c) in _AFTER) or chr(c) in "([" else
    ord("c") if chr(c) in _AFTER else ord("w")
    for c in range(256)
)
_NUMBER_TAIL = re.compile(rb"d+(?:\.d+)?(?=[bc])")


class FastDigest(NamedTuple):
    """A text split (without the tokenizer) into fixed segments and literals: `parts[0::2]` are
    the segments, `parts[1::2]` the literals. Used only as a cache key: the entry a key
    finds was admitted after sqlglot's tokenizer cut the same literals out of the same
    segments, so for a text with that key the two agree (strings end at the next quote,
    numbers at the same boundary character) and no tokenize is needed."""

    key: str
    parts: list[str]
    ends: list[int]  # offset just past each literal, after a 0 for the start of the text

    def spans(self) -> list[tuple[int, int]]:
        return [(end - len(lit), end)
                for lit, end in zip(self.parts[1::2], self.ends[1:], strict=True)]


def fast_digest(sql: str) -> FastDigest | None:
    """None for texts the split cannot handle safely: any backslash (an escape in some
    dialects), dollar quoting, the placeholder character, unbalanced quotes, or a quoted
    string not bounded as above (doubled quotes, prefixes such as E'' or N'')."""
    if "\\" in sql or "$" in sql or MARK in sql or "\x00" in sql:
        return None  # NUL: PostgreSQL's parser reads C strings; the slow path refuses it
    pieces = sql.split("'")
    last = len(pieces) - 1
    if last % 2:
        return None
    lits: list[tuple[int, int]] = []
    pos = len(pieces[0])
    for i in range(1, last, 2):
        before, after = pieces[i - 1], pieces[i + 1]
        if (before[-1:] not in _BEFORE if before else i > 1) or (
                after[:1] not in _AFTER if after else i + 1 < last):
            return None
        end = pos + len(pieces[i]) + 2
        lits.append((pos, end))
        pos = end + len(after)
    strings = len(lits)
    # One byte per character (encode replaces each non-ASCII one with a single "?"), and
    # a boundary byte in front, so cls[k + 1] classifies sql[k].
    cls = b"b%bb" % sql.encode("ascii", "replace").translate(_CLASSES)
    si = 0
    j = cls.find(b"bd")
    while j >= 0:
        m = _NUMBER_TAIL.match(cls, j + 1)
        if m is None:
            j = cls.find(b"bd", j + 2)
            continue
        start, end = j, m.end() - 1
        while si < strings and lits[si][1] <= start:
            si += 1
        if si < strings and lits[si][0] < start:  # inside a quoted string
            j = cls.find(b"bd", lits[si][1])
            continue
        lits.append((start, end))
        j = cls.find(b"bd", m.end())
    if len(lits) > strings:
        lits.sort()
    parts: list[str] = []
    key: list[str] = []
    ends = [0]
    cur = 0
    for start, end in lits:
        text, lit = sql[cur:start], sql[start:end]
        parts += (text, lit)
        key += (text, _KINDS["'" if lit[0] == "'" else "." if "." in lit else ""])
        ends.append(end)
        cur = end
    text = sql[cur:]
    parts.append(text)
    key.append(text)
    return FastDigest("".join(key), parts, ends)
