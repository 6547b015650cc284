"""`when:` conditions in Common Expression Language, on Google's C++ runtime
(cel-expr-python), chosen by measurement: bench/identity_conditions.py prints the table
(a three-clause condition costs a few microseconds there, several times more on the Rust
binding, whose per-value conversion dominates, and a millisecond on cel-python).

Every field of the activation is declared as a variable of its own with a dotted name
(`request.method`, `tool.arguments`, ...): the type checker then refuses an unknown field
(`request.bogus`) and a type error (`identity.roles == 1`) when the rules load, with the
rule's path, and a call only builds the variables its expression reads.

SECURITY: an evaluation error (a missing key, a wrong type, a value out of range) or a
result that is not `true` denies. Reasons name the rule and the kind of failure, never
the runtime's message, which may quote a value from the call.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

from cel_expr_python import cel

from proxy import reference
from proxy.conditions.reads import key_reads

T = cel.Type
_STR_MAP = T.Map(T.STRING, T.STRING)
_DYN_MAP = T.Map(T.STRING, T.DYN)

VARIABLES: dict[str, Any] = {
    "request.method": T.STRING,
    "request.path": T.STRING,
    "request.query": T.Map(T.STRING, T.List(T.STRING)),
    "request.headers": _STR_MAP,
    "identity.tenant": T.STRING,
    "identity.roles": T.List(T.STRING),
    "identity.claims": _DYN_MAP,
    "identity.verified": T.BOOL,
    "tool.name": T.STRING,
    "tool.arguments": _DYN_MAP,
    "tool.annotations": _DYN_MAP,
    "sql.kind": T.STRING,
    "sql.tables": T.List(T.STRING),
    "sql.columns": T.List(T.STRING),
    "time.now": T.TIMESTAMP,
}
"""The activation, documented in README "Conditions". Values: request.query maps each
name to every value sent (a repeated name is a list, never one copy picked);
request.headers has lower-case names, repeated headers joined with ", ", and no
credential headers; identity.claims is the verified token's payload ({} without one)."""

BASE = ("request", "identity", "time")
PLACES: dict[str, tuple[str, ...]] = {
    "access": BASE,
    "tool": (*BASE, "tool"),
    "sql": (*BASE, "sql"),
    "graph": BASE,
}
"""Which activation groups a condition may read, by where it is written: a route's
`access.when` is judged before any tool or statement is known."""


REFERENCE: bool = reference.REFERENCE or os.environ.get("CALLWARDEN_CEL_REFERENCE") == "1"
"""Fast paths off: whole values (no key pruning), no outcome memo (CI runs both)."""
MEMO_MAX = 4096
MEMO_PROBE = 1024


_PLAIN = frozenset({str, int, float, bool, type(None), dict, list, datetime})


def _key(values: Mapping[str, Any], order: tuple[str, ...]) -> str | None:
    """The memo key: the repr of the values read, in a fixed order. For these types repr
    is exact and keeps types apart where Python's == does not and CEL does (1, 1.0 and
    True; 0.0 and -0.0; "1" and 1). None when a value is of another type."""
    parts = [values.get(n) for n in order]
    for v in parts:
        if v.__class__ not in _PLAIN:
            return None
    return repr(parts)


class ConditionError(ValueError):
    """A condition that does not compile: syntax, unknown field, type error."""


@functools.cache
def _env(names: frozenset[str]) -> Any:
    return cel.NewEnv(variables={n: VARIABLES[n] for n in names})


def place_variables(place: str) -> frozenset[str]:
    groups = PLACES[place]
    return frozenset(n for n in VARIABLES if n.split(".", 1)[0] in groups)


@functools.lru_cache(maxsize=1024)
def _compile(source: str, place: str) -> tuple[Any, frozenset[str], Mapping[str, frozenset[str]]]:
    names = place_variables(place)
    try:
        program = _env(names).compile(source)
    except Exception as exc:  # the checker's message quotes the expression, not a call
        raise ConditionError(_first_line(str(exc))) from None
    if program.return_type() not in (T.BOOL, T.DYN):
        raise ConditionError(f"a condition must be a bool, not {program.return_type().name()}")
    # The variables it reads, asked of the checker itself: one that the expression
    # refers to fails to compile without it. A call then builds only these.
    needs = frozenset(n for n in names if not _compiles(source, names - {n}))
    reads = key_reads(program.serialize()) or {}
    keys = MappingProxyType({n: k for n, k in reads.items() if n in needs and k is not None})
    return program, needs, keys


def _compiles(source: str, names: frozenset[str]) -> bool:
    try:
        _env(names).compile(source)
    except Exception:
        return False
    return True


def _first_line(message: str) -> str:
    lines = [ln for ln in message.splitlines() if ln.strip()]
    text = " ".join(lines[:1]).replace("INVALID_ARGUMENT: ", "").replace("ERROR: ", "")
    return text.replace("<input>:", "at ")[:300]


def check(source: str, place: str) -> str:
    """Validator: the source if it compiles where it is written, else ConditionError."""
    if not source.strip():
        raise ConditionError("empty condition")
    _compile(source, place)
    return source


@dataclass(frozen=True, slots=True)
class Outcome:
    holds: bool
    reason: str
    """Why it denied ("" when it holds): false, or the kind of evaluation error."""


_HOLDS = Outcome(True, "")
_FALSE = Outcome(False, "is false")
_NUL = Outcome(False, "could not be evaluated: a string it reads holds a NUL character")
"""SECURITY: the runtime's binding cuts strings at NUL (`"eu\\x00x"` reads as "eu", and
a key `"amount\\x00"` as "amount") while the upstream reads them whole: refused."""
_ODD = Outcome(False, "could not be evaluated: a value has the wrong type")


@dataclass(frozen=True, slots=True)
class Condition:
    rule: str
    """Where it is written, e.g. `routes[billing].mcp.tools.refund.when`."""
    source: str
    program: Any
    needs: frozenset[str]
    keys: Mapping[str, frozenset[str]]
    """Map variables read only at these keys (proxy/conditions/reads.py): a call
    converts those keys alone."""

    memo: dict[Any, Outcome] | None = None
    """Outcomes by the exact (typed) values read: a condition is a pure function of
    them, and most calls repeat a few (one token's claims, one method). None: off (an
    expression that reads the clock; CALLWARDEN_CEL_REFERENCE=1)."""
    order: tuple[str, ...] = ()
    stats: list[int] | None = None
    """[lookups, hits] in the current window of MEMO_PROBE lookups: a memo that hits
    less than a quarter of the time (arguments that differ on every call) is dropped."""

    @classmethod
    def build(cls, rule: str, source: str, place: str) -> Condition:
        program, needs, keys = _compile(source, place)
        if REFERENCE:
            keys = MappingProxyType({})
        memo = None if REFERENCE or "time.now" in needs else {}
        return cls(rule, source, program, needs, keys, memo, tuple(sorted(needs)), [0, 0])

    def evaluate(self, values: Mapping[str, Any]) -> Outcome:
        key = _key(values, self.order)
        # SECURITY: repr writes a NUL as \x00 (and a backslash as \\, so a caller's
        # literal "\x00" text is refused too: fail closed).
        if key is None or "\\x00" in key:
            return _ODD if key is None else _NUL
        memo = self.memo
        if memo is None or self.stats is None:
            return self.run(values)
        out = memo.get(key)
        stats = self.stats
        if stats is not None:
            stats[0] += 1
            if out is not None:
                stats[1] += 1
            if stats[0] >= MEMO_PROBE:
                if stats[1] * 4 < stats[0]:
                    memo.clear()
                    object.__setattr__(self, "stats", None)  # off for these rules
                    return out or self.run(values)
                stats[0] = stats[1] = 0
        if out is None:
            out = self.run(values)
            if self.stats is None:
                return out
            if len(memo) >= MEMO_MAX:
                memo.clear()
            memo[key] = out
        return out

    def run(self, values: Mapping[str, Any]) -> Outcome:
        """The reference: the runtime, every time."""
        try:
            result = self.program.eval(data=values)
            value = result.value()
            if value is True:  # only a BOOL's value is the True object
                return _HOLDS
            kind = result.type()
            if kind == T.BOOL:
                return _FALSE
            if kind == T.ERROR:
                return Outcome(False, _error_kind(str(value)))
        except Exception as exc:  # a value the runtime cannot take (a tuple, a set)
            return Outcome(False, _error_kind(str(exc)))
        return Outcome(False, "did not evaluate to a bool")

    def denial(self, outcome: Outcome) -> str:
        return f"condition {self.rule} {outcome.reason}"


def _error_kind(message: str) -> str:
    """The class of an evaluation error, without its text (which can quote a value)."""
    low = message.lower()
    if "key not found" in low or "no such key" in low or "no such field" in low:
        return "could not be evaluated: a field it reads is missing"
    if "no matching overload" in low:
        return "could not be evaluated: a value has the wrong type"
    if "out of range" in low or "overflow" in low:
        return "could not be evaluated: a number is out of range"
    if "unexpected value type" in low or "non-cel value" in low:
        return "could not be evaluated: a value has the wrong type"
    return "could not be evaluated"
