"""A Gremlin script as a tree: one chain of steps whose arguments are literals, lists, maps,
names, enums, predicates or anonymous traversals. Anything else (operators, string method
names such as `__.'drop'()`, casts) does not parse: the guard refuses what it cannot read.

Pure: no I/O. Input is the token list of `gremlin.tokenize`.
"""

from __future__ import annotations

from dataclasses import dataclass

GToken = tuple[str, str, int, int]


class GremlinShapeError(ValueError):
    """The script is not a chain of steps with plain arguments (no query text inside)."""


@dataclass(frozen=True, slots=True)
class Lit:
    kind: str  # "string" | "number"
    text: str

    @property
    def value(self) -> str | None:
        """A string literal's value when it has no escapes (else None: not comparable)."""
        if self.kind != "string" or "\\" in self.text:
            return None
        quote = 3 if self.text[:3] in ("'''", '"""') else 1
        return self.text[quote:-quote]


@dataclass(frozen=True, slots=True)
class ListLit:
    items: tuple[Arg, ...]


@dataclass(frozen=True, slots=True)
class MapLit:
    entries: tuple[tuple[Arg, Arg], ...]


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    args: tuple[Arg, ...] | None
    """None: a name or property access without parentheses (`g`, `__`, `T`, `desc`)."""


@dataclass(frozen=True, slots=True)
class Chain:
    steps: tuple[Step, ...]

    @property
    def name(self) -> str | None:
        """The bare word when the chain is one name without parentheses."""
        if len(self.steps) == 1 and self.steps[0].args is None:
            return self.steps[0].name
        return None


Arg = Lit | ListLit | MapLit | Chain


MAX_NESTING = 64
"""Nested arguments and traversals a script may hold (the reader recurses per level)."""


class _Reader:
    def __init__(self, tokens: list[GToken]) -> None:
        self.t = tokens
        self.i = 0
        self.nesting = 0

    def peek(self, k: int = 0) -> GToken | None:
        j = self.i + k
        return self.t[j] if j < len(self.t) else None

    def is_punct(self, text: str, k: int = 0) -> bool:
        tok = self.peek(k)
        return tok is not None and tok[0] == "punct" and tok[1] == text

    def take(self, text: str) -> None:
        if not self.is_punct(text):
            raise GremlinShapeError(f"expected '{text}'")
        self.i += 1

    def chain(self) -> Chain:
        steps: list[Step] = []
        while True:
            tok = self.peek()
            if tok is None or tok[0] != "word":
                raise GremlinShapeError("a step name must be a plain word")
            self.i += 1
            args: tuple[Arg, ...] | None = None
            if self.is_punct("("):
                args = self.args("(", ")")
            steps.append(Step(tok[1], args))
            if not self.is_punct("."):
                return Chain(tuple(steps))
            self.i += 1

    def args(self, open_: str, close: str) -> tuple[Arg, ...]:
        self.nesting += 1
        try:
            return self._args(open_, close)
        finally:
            self.nesting -= 1

    def _args(self, open_: str, close: str) -> tuple[Arg, ...]:
        if self.nesting > MAX_NESTING:
            raise GremlinShapeError("arguments nest too deeply")
        self.take(open_)
        out: list[Arg] = []
        if self.is_punct(close):
            self.i += 1
            return ()
        while True:
            out.append(self.arg())
            if self.is_punct(","):
                self.i += 1
                continue
            self.take(close)
            return tuple(out)

    def arg(self) -> Arg:
        tok = self.peek()
        if tok is None:
            raise GremlinShapeError("an argument is missing")
        kind, text = tok[0], tok[1]
        if kind in ("string", "number"):
            self.i += 1
            return Lit(kind, text)
        if kind == "punct" and text == "-":
            nxt = self.peek(1)
            if nxt is not None and nxt[0] == "number":
                self.i += 2
                return Lit("number", "-" + nxt[1])
        if kind == "punct" and text == "[":
            return self.collection()
        if kind == "punct" and text == "(":
            self.i += 1
            self.nesting += 1
            if self.nesting > MAX_NESTING:
                raise GremlinShapeError("arguments nest too deeply")
            inner = self.arg()
            self.nesting -= 1
            self.take(")")
            return inner
        if kind == "word":
            return self.chain()
        raise GremlinShapeError(f"'{text[:16]}' is not a plain argument")

    def collection(self) -> ListLit | MapLit:
        """`[a, b]` or `[k: v, ...]` (a bare word key is a string, as in Groovy)."""
        self.nesting += 1
        try:
            return self._collection()
        finally:
            self.nesting -= 1

    def _collection(self) -> ListLit | MapLit:
        if self.nesting > MAX_NESTING:
            raise GremlinShapeError("arguments nest too deeply")
        self.take("[")
        if self.is_punct(":") and self.is_punct("]", 1):
            self.i += 2
            return MapLit(())
        items: list[Arg] = []
        entries: list[tuple[Arg, Arg]] = []
        if self.is_punct("]"):
            self.i += 1
            return ListLit(())
        while True:
            tok = self.peek()
            if tok is not None and tok[0] == "word" and self.is_punct(":", 1):
                key: Arg = Lit("string", f"'{tok[1]}'")
                self.i += 1
            else:
                key = self.arg()
            if self.is_punct(":"):
                self.i += 1
                entries.append((key, self.arg()))
            else:
                items.append(key)
            if self.is_punct(","):
                self.i += 1
                continue
            self.take("]")
            if items and entries:
                raise GremlinShapeError("a list mixes values and map entries")
            return MapLit(tuple(entries)) if entries else ListLit(tuple(items))


def parse(tokens: list[GToken]) -> Chain:
    """The script's one chain; raises GremlinShapeError on anything else."""
    reader = _Reader(tokens)
    chain = reader.chain()
    if reader.i != len(tokens):
        raise GremlinShapeError("a script must be a single traversal")
    return chain
