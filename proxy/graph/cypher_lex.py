"""A Cypher tokenizer: enough of the lexical grammar to tell a clause keyword from the
same letters inside a string, a comment, a backtick identifier or a parameter name.

Unterminated strings, comments and identifiers and characters Cypher does not use raise
`CypherSyntaxError`: the guard fails closed on anything it cannot read.
"""

from __future__ import annotations

import re
from typing import NamedTuple

WORD, BACKTICK, STRING, NUMBER, PARAM, PUNCT = (
    "word",
    "backtick",
    "string",
    "number",
    "param",
    "punct",
)


class CypherSyntaxError(ValueError):
    """The text is not lexically valid Cypher (reason is safe to show: no query text)."""


class Token(NamedTuple):
    kind: str
    text: str
    start: int
    end: int
    upper: str
    """Upper-cased text of a word (keywords are case-insensitive); else the text."""

    @property
    def name(self) -> str:
        """Identifier value: backticks removed and doubled backticks unescaped."""
        if self.kind == BACKTICK:
            return self.text[1:-1].replace("``", "`")
        if self.kind == PARAM:
            rest = self.text[1:]
            return rest[1:-1].replace("``", "`") if rest.startswith("`") else rest
        return self.text


_SPACE = r"[\s\u00a0\ufeff]+"
_TOKEN = re.compile(
    rf"""
    (?P<space>{_SPACE})
  | (?P<line>//[^\r\n]*)
  | (?P<block>/\*.*?\*/)
  | (?P<badblock>/\*)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<backtick>`(?:[^`]|``)*`)
  | (?P<param>\$(?:[^\W\d]\w*|\d+|`(?:[^`]|``)*`))
  | (?P<number>0[xX][0-9a-fA-F_]+|0[oO][0-7_]+
        |(?:\d[\d_]*(?:\.\d[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d+)?)
  | (?P<word>[^\W\d]\w*)
  | (?P<punct><>|<=|>=|=~|\+=|\.\.|->|<-|::|[(){{}}\[\],.;:|=<>+\-*/%^!&?])
  | (?P<bad>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_UNTERMINATED = {"'": "string", '"': "string", "`": "backtick identifier", "/": "comment"}


def tokenize(text: str) -> list[Token]:
    """All significant tokens (whitespace and comments dropped), with source offsets."""
    tokens: list[Token] = []
    append = tokens.append
    for m in _TOKEN.finditer(text):  # `bad` matches any other character: no gaps
        kind = m.lastgroup
        if kind == "space" or kind == "line" or kind == "block":
            continue
        pos = m.start()
        if kind == "bad" or kind == "badblock":
            ch = text[pos]
            what = "comment" if kind == "badblock" else _UNTERMINATED.get(ch)
            if what is None and ch == "$":
                raise CypherSyntaxError(f"bad parameter at offset {pos}")
            if what is None:
                raise CypherSyntaxError(f"unexpected character at offset {pos}")
            raise CypherSyntaxError(f"unterminated {what} at offset {pos}")
        tok = m.group()
        append(Token(kind, tok, pos, m.end(), tok.upper() if kind == WORD else tok))  # type: ignore[arg-type]
    return tokens


_OPEN = {"(": ")", "[": "]", "{": "}"}
_CLOSE = {")", "]", "}"}


def depths(tokens: list[Token]) -> list[int]:
    """Bracket depth of each token (a closing bracket gets the outer depth); raises on
    unbalanced or mismatched brackets."""
    stack: list[str] = []
    out: list[int] = []
    for tok in tokens:
        if tok.kind == PUNCT:
            if tok.text in _OPEN:
                out.append(len(stack))
                stack.append(_OPEN[tok.text])
                continue
            if tok.text in _CLOSE and (not stack or stack.pop() != tok.text):
                raise CypherSyntaxError(f"unbalanced '{tok.text}' at offset {tok.start}")
        out.append(len(stack))
    if stack:
        raise CypherSyntaxError(f"unclosed bracket: expected '{stack[-1]}' before end")
    return out
