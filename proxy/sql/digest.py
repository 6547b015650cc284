"""Query digests: the token stream with plain string and number literals replaced by
placeholders, so `WHERE id = 7` and `WHERE id = 8` share one cached verdict and rewrite.

Only literals sqlglot tokenizes as plain STRING / NUMBER are placeholders; everything
else (keywords, identifiers, operators, comments, exotic literals such as E'', X'',
$$..$$) stays in the key verbatim.
"""

from __future__ import annotations

from sqlglot.tokens import Token, TokenType

PARAM_TYPES: frozenset[TokenType] = frozenset({TokenType.STRING, TokenType.NUMBER})
_MARK = "\x1e"
_PLACEHOLDER = {TokenType.STRING: _MARK + "'", TokenType.NUMBER: _MARK + "0"}


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
    if _MARK in sql:
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
