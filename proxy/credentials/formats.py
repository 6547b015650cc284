"""Known credential formats, compiled once into one regex (one pass over a text).

Each format has a kind (what a refusal names), a pattern, optionally a `v` group (the
secret part: for `postgres://user:pw@host` only `pw` is the secret, and only it is masked)
and a check that throws out look-alikes the pattern alone would take.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import product

try:  # the `speed` extra: all needles in one linear pass (Rust Aho-Corasick)
    from ahocorasick_rs import AhoCorasick, Implementation, MatchKind
except ImportError:  # the gates below (tested against the automaton) do it
    AhoCorasick = None

from proxy.credentials.literals import (
    is_placeholder,
    is_reference,
    is_secret_key,
    is_strong_literal,
)


def _random_enough(token: str) -> bool:
    """Generated tokens have many distinct characters; `AKIA0000...`, `ghp_xxxx...` and
    anything saying EXAMPLE are documentation."""
    return len(set(token)) >= 8 and not is_placeholder(token)


def _mixed(token: str) -> bool:
    """`sk-` keys mix cases and digits; `sk-my-long-css-class-name` does not."""
    body = token[3:]
    return (_random_enough(token) and any(c.isupper() for c in body)
            and any(c.islower() for c in body) and any(c.isdigit() for c in body))


def _url_password(pw: str) -> bool:
    # `host:8080@` is not a password; `${env:PW}`, `****`, `<password>` are not literals.
    return not (pw.isdigit() and len(pw) <= 5) and not is_reference(pw) and not is_placeholder(pw)


@dataclass(frozen=True, slots=True)
class Format:
    kind: str
    pattern: str
    check: Callable[[str], bool] | None = None
    """secret text -> keep?; None keeps every match."""
    boundary: bool = True
    """The match must not follow a word character (`ghp_` yes, `xghp_` no)."""
    needles: tuple[str, ...] = ()
    """Literal texts every match contains (one of them): a text holding none is not run
    through the pattern. `str in str` is a C search, far cheaper than a regex pass."""


# Patterns start with a literal where they can (and without `\b`): Python's regex engine
# then skips ahead with a fast prefix search, 10-50x faster than a boundary-first pattern.
# Boundaries are checked in code (`boundary`). `needles` must cover every match:
# tests/credentials/test_detect.py checks each against its pattern.
FORMATS: tuple[Format, ...] = (
    Format("private_key", r"-----BEGIN[ A-Z0-9]{0,30}PRIVATE KEY(?: BLOCK)?-----"
           r"(?:[^-]{0,16384}-----END[ A-Z0-9]{0,30}PRIVATE KEY(?: BLOCK)?-----)?",
           boundary=False, needles=("-----BEGIN",)),
    Format("aws_access_key_id", r"A(?:KIA|SIA|IDA|ROA|IPA|NPA|NVA|PKA|BIA|CCA)[A-Z0-9]{16}"
           r"(?![A-Za-z0-9])", lambda s: _random_enough(s[4:]),
           needles=("AKIA", "ASIA", "AIDA", "AROA", "AIPA", "ANPA", "ANVA", "APKA", "ABIA",
                    "ACCA")),
    Format("github_token", r"gh[pousr]_[A-Za-z0-9]{36,251}(?![A-Za-z0-9_])",
           lambda s: _random_enough(s[4:]), needles=tuple(f"gh{c}_" for c in "pousr")),
    Format("github_token", r"github_pat_[A-Za-z0-9_]{50,251}(?![A-Za-z0-9_])",
           lambda s: _random_enough(s[11:]), needles=("github_pat_",)),
    Format("gitlab_token", r"gl(?:pat|ptt|dt|rt|oas|cbt)-[A-Za-z0-9_\-]{20,255}",
           lambda s: _random_enough(s[6:]), needles=("gl",)),
    Format("slack_webhook", r"https://hooks\.slack\.com/services/T[A-Z0-9]{6,}/B[A-Z0-9]{6,}/"
           r"(?P<v>[A-Za-z0-9]{20,})", lambda s: _random_enough(s), boundary=False,
           needles=("https://hooks.slack.com/services/T",)),
    Format("slack_token", r"xox[abpsre]-[A-Za-z0-9\-]{10,255}",
           lambda s: _random_enough(s[5:]) and any(c.isdigit() for c in s), needles=("xox",)),
    Format("stripe_key", r"sk_(?:live|test)_[A-Za-z0-9]{20,255}(?![A-Za-z0-9_])",
           lambda s: _random_enough(s[8:]), needles=("sk_live_", "sk_test_")),
    Format("stripe_key", r"rk_(?:live|test)_[A-Za-z0-9]{20,255}(?![A-Za-z0-9_])",
           lambda s: _random_enough(s[8:]), needles=("rk_live_", "rk_test_")),
    Format("google_api_key", r"AIza[A-Za-z0-9_\-]{35}(?![A-Za-z0-9_\-])",
           lambda s: _random_enough(s[4:]), needles=("AIza",)),
    Format("openai_key", r"sk-(?:proj-|svcacct-|admin-|ant-)?[A-Za-z0-9_\-]{20,255}",
           lambda s: _mixed(s), needles=("sk-",)),
    Format("vault_token", r"hv[sbr]\.[A-Za-z0-9_\-]{24,255}", lambda s: _random_enough(s[4:]),
           needles=("hvs.", "hvb.", "hvr.")),
    Format("jwt", r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{10,}",
           lambda s: _random_enough(s), needles=("eyJ",)),
    Format("url_password", r"://[^\s:/?#@'\"\x00]{0,256}:(?P<v>[^\s/?#@'\"\x00]{1,256})@"
           r"(?=[A-Za-z0-9\[])", _url_password, boundary=False, needles=("://",)),
    Format("azure_connection_string", r"AccountKey=(?P<v>[A-Za-z0-9+/%=]{20,})",
           lambda s: _random_enough(s), needles=("AccountKey=",)),
    Format("azure_connection_string", r"SharedAccess(?:Key|Signature)=(?P<v>[A-Za-z0-9+/%=]{20,})",
           lambda s: _random_enough(s), needles=("SharedAccess",)),
    Format("azure_sas_signature", r"sig=(?P<v>[A-Za-z0-9%+/=]{30,})", lambda s: _random_enough(s),
           needles=("sig=",)),
)
# `key=value` / `"key": "value"` inside a text: found from the operator (a literal start,
# fast), then the key before it is judged by the same classifier as JSON keys.
# (Two literal-first regexes: a `[=:]` class start is 10x slower.)
_VALUE = r"[ \t]*[\"']?([^\s\"'<>;&,\x00]{8,256})"
# Every key `is_secret_key` accepts holds one of these (lowercased): a text without any
# has no assignment worth scanning (tests/credentials/test_detect.py checks the cover).
KEY_HINTS = ("pass", "pwd", "secret", "token", "cred", "auth", "key", "cookie")
_ASSIGNMENTS = (("=", re.compile("=" + _VALUE)), (":", re.compile(":(?!//)" + _VALUE)))
_AWS_SECRET = re.compile(r"[A-Za-z0-9/+]{40}\Z")
_COMPILED = tuple((f, re.compile(f.pattern)) for f in FORMATS)
_NEEDLES = tuple((n, i) for i, f in enumerate(FORMATS) for n in f.needles)


def _gates(words: Iterable[str]) -> dict[str, re.Pattern[str]]:
    """One regex per first character of `words`, matching wherever one of them starts.
    A regex that starts with a literal character skips ahead in C: one search per
    group costs about what one `in` costs, so 34 needles are 10 searches, not 34."""
    rests: dict[str, list[str]] = {}
    for w in words:
        rests.setdefault(w[0], []).append(w[1:])
    return {c: re.compile(re.escape(c) + "(?:" + "|".join(
        re.escape(r) for r in sorted(set(rs), key=len, reverse=True)) + ")")
        for c, rs in rests.items()}


# (gate, needles under it): a text the gate does not match holds none of its needles.
_NEEDLE_GROUPS = tuple(
    (gate, tuple((n, i) for n, i in _NEEDLES if n[0] == c))
    for c, gate in _gates(n for n, _ in _NEEDLES).items()
)
_HINT_GATES = tuple(_gates(KEY_HINTS).values())
_WORDCHAR = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def key_kind(key: str, value: str) -> str:
    """Kind for a strong literal under a secret-looking key."""
    if "aws" in key.lower() and _AWS_SECRET.match(value):
        return "aws_secret_access_key"
    return "secret_key_value"


_KEY_REVERSED = re.compile(r"[\"' \t]{0,4}([A-Za-z0-9_.\-]{1,64})")


def _key_before(text: str, at: int) -> str:
    """The key left of an `=`/`:` at `at`, skipping quotes and spaces (`"password": `).
    Matched on the reversed window: one linear `match` instead of a backtracking search."""
    m = _KEY_REVERSED.match(text[max(0, at - 68) : at][::-1])
    return m.group(1)[::-1] if m else ""


def _gated_hint(text: str) -> bool:
    lower = text.lower()
    return any(gate.search(lower) is not None for gate in _HINT_GATES)


def _gated_present(text: str) -> set[int]:
    present: set[int] = set()
    for gate, needles in _NEEDLE_GROUPS:
        if gate.search(text) is not None:
            present.update(i for n, i in needles if n in text)
    return present


def _gated_may_match(text: str) -> bool:
    return any(gate.search(text) is not None for gate, _ in _NEEDLE_GROUPS) or _gated_hint(text)


def _gated_scan(text: str) -> tuple[set[int], bool]:
    return _gated_present(text), _gated_hint(text)


if AhoCorasick is not None:
    # One automaton pass over the text finds every needle (overlapping ones too) and
    # every key hint in any ASCII case: on a 250-character SQL body about a quarter of
    # what the gates cost, on a 2 KB tools/list about a third (callgrind).
    _VARIANTS = sorted({"".join(p) for h in KEY_HINTS
                        for p in product(*((c, c.upper()) for c in h))})
    _HINT = -1
    _MEANING = (*(i for _, i in _NEEDLES), *(_HINT for _ in _VARIANTS))
    _hits = AhoCorasick([*(n for n, _ in _NEEDLES), *_VARIANTS], matchkind=MatchKind.Standard,
                        implementation=Implementation.DFA).find_matches_as_indexes

    # A text with lone surrogates (bad UTF-8 read with surrogateescape) has no UTF-8
    # form for the automaton: it takes the gates. Non-ASCII text can spell a hint that
    # only `lower()` finds (a Kelvin sign for the k of "key"): the gates look again.

    def _scan(text: str) -> tuple[set[int], bool]:
        try:
            meanings = {_MEANING[n] for n, _, _ in _hits(text, overlapping=True)}
        except UnicodeEncodeError:
            return _gated_scan(text)
        hint = _HINT in meanings
        meanings.discard(_HINT)
        return meanings, hint or (not text.isascii() and _gated_hint(text))

    def may_match(text: str) -> bool:
        """False when `find` cannot report anything in `text` (no format's literal
        prefix, no secret-key hint): the cheap half of `find`."""
        try:
            if _hits(text):
                return True
        except UnicodeEncodeError:
            return _gated_may_match(text)
        return not text.isascii() and _gated_hint(text)
else:
    _scan, may_match = _gated_scan, _gated_may_match


def find(text: str) -> list[tuple[str, int, int]]:
    """(kind, start, end) of each credential in `text`; start/end span the secret part.
    A `key=value` assignment is reported only where no known format already is."""
    found: list[tuple[str, int, int]] = []
    present, hint = _scan(text)
    for i in sorted(present):
        fmt, rx = _COMPILED[i]
        for m in rx.finditer(text):
            if fmt.boundary and m.start() and text[m.start() - 1] in _WORDCHAR:
                continue
            start, end = m.span("v") if "v" in rx.groupindex else m.span()
            if fmt.check is None or fmt.check(text[start:end]):
                found.append((fmt.kind, start, end))
    if not hint:
        return found
    for op, rx in _ASSIGNMENTS:
        if op in text:
            for m in rx.finditer(text):
                start, end = m.span(1)
                if any(s < end and start < e for _, s, e in found):
                    continue
                key = _key_before(text, m.start())
                value = m.group(1)
                if key and is_secret_key(key) and is_strong_literal(value):
                    found.append((key_kind(key, value), start, end))
    return found


def first(text: str) -> str | None:
    """Kind of the first credential in `text`, or None."""
    found = find(text)
    return found[0][0] if found else None
