"""The SQL guard: one call per request, `judge(sql, tenant) -> SqlDecision`.

Speed comes from caches. The exact text of a query maps to its finished rewrite (a dict
lookup). A new text is tokenized once; its digest (literals as placeholders) maps to a
cached Plan, so orchestrators that resend one query shape with new ids and dates pay a
tokenize, not a parse. Plain texts skip even that: a cheap split finds their segments
and literals, and once sqlglot has confirmed that split for one text of the shape, the
next ones are bound from the segments (see `digest.fast_digest`). The few shapes served
last are also kept as anchored regexes (`_Shape`), so a hot shape costs one C match per
text instead of the Python split. The tenant goes in as a value at the very end, so one
entry serves every tenant. Not thread-safe: one guard per event loop.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import secrets
from bisect import bisect_right
from collections import OrderedDict
from typing import Generic, NamedTuple, TypeVar

from sqlglot import exp
from sqlglot import tokens as sqlglot_tokens
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import Token, TokenType

from proxy import reference
from proxy.model.errors import ErrorCode
from proxy.sql.digest import MARK, FastDigest, comment_hazard, digest, fast_digest
from proxy.sql.pg import hook as pg_hook
from proxy.sql.pg.userfns import NO_USER_FUNCTIONS, UserFunctions
from proxy.sql.plan import (
    Parts,
    Plan,
    apply_edits,
    blocked,
    edit_spots,
)
from proxy.sql.policy import SqlPolicy
from proxy.sql.rewrite import Context, plan
from proxy.sql.safety import QUERY_ROOTS, Judgement, judge
from proxy.sql.tenant import column_sql, quote_tenant

REFERENCE: bool = reference.REFERENCE or os.environ.get("CALLWARDEN_SQL_REFERENCE") == "1"
"""Reference mode: no fast paths, no digest or fingerprint reuse (every new text is
parsed). Tests hold its verdicts equal to the fast ones; CI runs the suite with it on."""

COMPILED: bool = bool(getattr(sqlglot_tokens, "SQLGLOTC_INSTALLED", False))
"""sqlglotc (the mypyc-compiled sqlglot) is active: parsing is ~3x faster."""

# SECURITY: sqlglot logs the text of SQL it cannot model; SQL may carry personal data.
logging.getLogger("sqlglot").setLevel(logging.ERROR)

_NO_LIMIT_DIALECTS = frozenset({"tsql", "oracle", "teradata", "fabric"})
BLOCKED = ErrorCode.SQL_BLOCKED

K = TypeVar("K")
V = TypeVar("V")


class SqlDecision(NamedTuple):
    code: ErrorCode | None  # None = allowed; else SQL_BLOCKED / TENANT_MISMATCH / AUTH_FAILED
    reason: str  # never contains the SQL text or a literal value
    sql: str  # the SQL to send: rewritten, or the original text unchanged
    rewritten: bool
    statement_kind: str  # "select", "insert", ...
    read_only: bool  # the statement cannot write (the retry layer uses this)
    tables: tuple[str, ...] | None = None
    """Tables the statement names (lower case, `db.name` when qualified; no CTEs), for
    `sql.allow_tables` and `when`; None when this judgement did not list them."""
    columns: tuple[str, ...] | None = None
    """Columns named (`table.column` when qualified, `*` for a star), for `when`."""


class _Prepared(NamedTuple):
    """A plan bound to one exact text: the rewrite as the text around its tenant slots,
    so binding a tenant is one `quoted.join(segments)`."""

    plan: Plan
    segments: tuple[str, ...] | None  # None: nothing rewritten
    checks: tuple[str, ...]  # literal values that must equal the tenant


class _Shape(NamedTuple):
    """A fast-digest key as one anchored regex: each literal as the pattern of its kind
    (a pinned one verbatim), short stretches of the text between them verbatim, long ones
    as groups of fixed width compared after the match (one `startswith` per stretch). A
    text that passes has exactly that key (tests/sql/test_digest.py checks it against the
    split), so it is judged by one C match, not a Python scan."""

    rx: re.Pattern[str]
    runs: tuple[tuple[int, str], ...]  # group where a long stretch starts, its text
    plan: Plan
    checks: tuple[int | str, ...]  # group of a literal (or fixed value) that must be tenant
    groups: tuple[int, ...]  # groups of the kept text that holds literals, in order
    consts: tuple[str, ...] | None  # the rest of the rewrite around them (MARK: tenant)
    """None: nothing rewritten. Kept text without a literal is the template's, so it is
    folded in here with the edits: binding is a concatenation or two."""
    bound: dict[str | None, tuple[str, ...]]  # tenant -> consts with it quoted in

    def match(self, sql: str) -> re.Match[str] | None:
        m = self.rx.fullmatch(sql)
        if m is None or not self.runs_hold(sql, m):
            return None
        return m

    def runs_hold(self, sql: str, m: re.Match[str]) -> bool:
        """The long stretches the regex matched by width are the shape's text."""
        for group, text in self.runs:  # noqa: SIM110 (a loop: no generator per call)
            if not sql.startswith(text, m.start(group)):
                return False
        return True


class _Fast(NamedTuple):
    """A plan bound to a fast-digest key: positions are (literal index, offset past its
    end), so they carry over to texts whose literals have other lengths."""

    plan: Plan
    pinned: tuple[tuple[int, str], ...]  # literal index, the text it must have
    checks: tuple[int | str, ...]  # literal index (or fixed value) that must equal tenant
    spots: tuple[tuple[int, int, int, int, str], ...]
    """(k, rel, k, rel, inserted text) of edit_spots; MARK in the text is the tenant slot."""
    shape: _Shape | None = None  # built when a second text of the key arrives


_NOT_FAST = _Fast(blocked(BLOCKED, ""), (), (), ())  # this shape needs the tokenizer
_NO_SHAPE = _Shape(re.compile("(?!)"), (), _NOT_FAST.plan, (), (), None, {})  # no regex fits
MAX_SHAPES = 8
"""Shapes tried by regex before the split: a miss costs a failed match each."""
# What fast_digest accepts as a literal of each kind: ASCII digits (flag a), strings
# without a quote, backslash, $ or MARK (fast_digest refuses those anywhere, and the
# text between literals is the template's, which it accepted).
_LITERAL_RX = {"'": "'[^'\\\\$\x1e\x00]*'", "i": r"\d+", "d": r"\d+\.\d+"}
_SPELLED = 32
"""A stretch of text between literals up to this long goes into the regex verbatim;
a longer one is matched by width and compared after: spelled out, a regex costs about
2 us per character to compile, and a TPC-DS query has kilobytes of it."""
_BOUND = 64  # per shape: tenants with the rewrite's text quoted in
_new_decision = tuple.__new__  # a NamedTuple without its Python __new__ (the hot path)


def _find_shape(shapes: list[_Shape], sql: str) -> tuple[_Shape, re.Match[str]] | None:
    """The shape whose key the split would give `sql` (moved to the front), if any."""
    for i, shape in enumerate(shapes):
        m = shape.match(sql)
        if m is not None:
            if i:
                shapes.insert(0, shapes.pop(i))
            return shape, m
    return None


def _shape(sql: str, fd: FastDigest, entry: _Fast) -> _Shape | None:
    """The regex of `fd.key` (as `_bind_fast` would serve it) with a capturing group
    for each stretch of text the rewrite keeps; None if an edit cuts into a literal."""
    cuts = [0]
    inserts = []
    for k, rel, k2, rel2, text in entry.spots:
        cuts += (fd.ends[k] + rel, fd.ends[k2] + rel2)
        inserts.append(text)
    cuts.append(len(sql))
    pinned = dict(entry.pinned)
    wanted = {c for c in entry.checks if isinstance(c, int)}
    spans = fd.spans()
    # The pattern as items: (True, fixed text) or (False, regex); a stretch is the fixed
    # text between two literals, whatever group boundaries fall inside it.
    items: list[tuple[bool, str]] = []
    stretch: list[int] = []  # item indexes of the stretch being built
    stretches: list[list[int]] = []

    def fixed(text: str) -> None:
        if text:
            stretch.append(len(items))
            items.append((True, text))

    def literal(rx: str) -> None:
        if stretch:
            stretches.append(stretch[:])
            stretch.clear()
        items.append((False, rx))

    pieces: list[str | int] = []  # the rewrite: text (MARK: tenant) or a copy group
    k = 0
    for r in range(len(cuts) - 1):
        a, b = cuts[r], cuts[r + 1]
        variable = r % 2 == 0 and k < len(spans) and spans[k][0] < b
        if r % 2:
            pieces.append(inserts[r // 2])
        elif variable:
            items.append((False, f"(?P<c{r // 2}>"))
            pieces.append(r // 2)
        else:
            pieces.append(sql[a:b])  # no literal inside: the same in every text
        cur = a
        while k < len(spans) and spans[k][1] <= b:
            start, end = spans[k]
            if start < a:
                return None
            lit = sql[start:end]
            kind = "'" if lit[0] == "'" else "d" if "." in lit else "i"
            body = re.escape(lit) if k in pinned else _LITERAL_RX[kind]
            fixed(sql[cur:start])
            literal(f"(?P<l{k}>{body})" if k in wanted else body)
            cur = end
            k += 1
        if k < len(spans) and spans[k][0] < b:
            return None
        fixed(sql[cur:b])
        if variable:
            items.append((False, ")"))
    if stretch:
        stretches.append(stretch)
    if not stretches:
        return None
    out = [rx for _, rx in items]
    runs: list[tuple[str, str]] = []
    for n, members in enumerate(stretches):
        text = "".join(items[i][1] for i in members)
        if len(text) <= _SPELLED:
            for i in members:
                out[i] = re.escape(items[i][1])
            continue
        runs.append((f"s{n}", text))
        for j, i in enumerate(members):
            width = f".{{{len(items[i][1])}}}"
            out[i] = f"(?P<s{n}>{width})" if j == 0 else width
    rx = re.compile("(?sa)" + "".join(out))
    groups = rx.groupindex
    checks = tuple(c if isinstance(c, str) else groups[f"l{c}"] for c in entry.checks)
    consts: list[str] = [""]
    copies: list[int] = []
    for piece in pieces:
        if isinstance(piece, str):
            consts[-1] += piece
        else:
            copies.append(groups[f"c{piece}"])
            consts.append("")
    return _Shape(rx, tuple((groups[g], t) for g, t in runs), entry.plan, checks,
                  tuple(copies), tuple(consts) if inserts else None, {})


def _segments(parts: Parts) -> tuple[str, ...]:
    """Parts (text and tenant slots) as the texts between the slots."""
    out: list[str] = []
    cur: list[str] = []
    for p in parts:
        if p is None:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(p)
    out.append("".join(cur))
    return tuple(out)


def _mismatch(sql: str, p: Plan) -> SqlDecision:
    return SqlDecision(ErrorCode.TENANT_MISMATCH, "INSERT carries another tenant id", sql,
                       False, p.kind, p.read_only, p.tables, p.columns)


def _unquotable(sql: str, p: Plan) -> SqlDecision:
    return SqlDecision(ErrorCode.AUTH_FAILED, "tenant id cannot be used in SQL", sql, False,
                       p.kind, p.read_only, p.tables, p.columns)


def _literal_value(raw: str) -> str:
    """What sqlglot's token text is for a fast-digest literal (no escapes inside)."""
    return raw[1:-1] if raw[0] == "'" else raw


class _Lru(Generic[K, V]):
    __slots__ = ("_data", "_size")

    def __init__(self, size: int) -> None:
        self._data: OrderedDict[K, V] = OrderedDict()
        self._size = max(1, size)

    def get(self, key: K) -> V | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._data[key] = value
        if len(self._data) > self._size:
            self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)

    def clear(self) -> None:
        self._data.clear()


class SqlGuard:
    def __init__(self, policy: SqlPolicy, cache_size: int = 4096,
                 fast: bool | None = None,
                 user_functions: UserFunctions = NO_USER_FUNCTIONS) -> None:
        if fast is None:
            fast = not REFERENCE
        self.policy = policy
        self._reuse = fast  # digest plans serve other texts of the shape
        self._cache_size = cache_size
        self.user_functions = user_functions
        self._variants: OrderedDict[UserFunctions, SqlGuard] = OrderedDict()
        # --- PostgreSQL: libpg_query decides (proxy/sql/pg); sqlglot only rewrites ---
        self._pg = pg_hook.judge_for(policy, cache_size, cached=fast,
                                     user_functions=user_functions)
        self.parser = pg_hook.parser_for(policy.dialect)
        """Which parser judges this route's text (callwarden explain shows it)."""
        self._pg_only = self._pg is not None and pg_hook.decides_alone(policy)
        # --- end PostgreSQL ---
        dialect = Dialect.get_or_raise(policy.dialect)
        self._dialect = dialect
        self._tokenizer = dialect.tokenizer()
        self._parser = dialect.parser()
        self._commands = frozenset(dialect.tokenizer_class.COMMANDS)
        marker = exp.Literal.string(f"cwtenant{secrets.token_hex(8)}")
        self._ctx = Context(
            policy=policy,
            dialect=dialect,
            column=column_sql(policy.tenant_column, dialect) if policy.tenant_column else "",
            marker_sql=marker.sql(dialect=dialect),
            marker=marker,
            limit_suffix=policy.dialect.lower() not in _NO_LIMIT_DIALECTS,
        )
        self._texts: _Lru[str, _Prepared] = _Lru(cache_size)
        self._pins: _Lru[str, tuple[int, ...]] = _Lru(cache_size)
        self._plans: _Lru[tuple[str, tuple[int, ...], tuple[str, ...]], Plan] = _Lru(cache_size)
        self._fast: _Lru[str, _Fast] | None = _Lru(cache_size) if fast else None
        self._shapes: list[_Shape] = []  # most recently used first
        self._quoted: dict[str, str | None] = {}
        self.cold = 0  # full parses so far (tests and metrics)
        self._split_hits = 0  # texts bound from the fast split
        self.shape_hits = 0  # texts a shape regex matched (no split either)
        self._tenant_required = bool(policy.tenant_column)

    def with_user_functions(self, table: UserFunctions) -> SqlGuard:
        """This policy judged with an upstream's user-function table (the wire listener
        reads it): a guard of its own, with its own caches, since verdicts differ."""
        if table == self.user_functions or self._pg is None:
            return self
        guard = self._variants.get(table)
        if guard is None:
            guard = SqlGuard(self.policy, self._cache_size, self._reuse, table)
            self._variants[table] = guard
            if len(self._variants) > 8:  # databases behind one route: few
                self._variants.popitem(last=False)
        return guard

    def clear(self) -> None:
        """Forget every cached verdict (benchmarks; a reload builds a new guard anyway)."""
        for cache in (self._texts, self._pins, self._plans, self._fast):
            if cache is not None:
                cache.clear()
        self._shapes.clear()

    @property
    def fast_hits(self) -> int:
        """Texts bound without a tokenize (tests and benchmarks)."""
        return self._split_hits + self.shape_hits

    @property
    def cached(self) -> int:
        fast = len(self._fast) if self._fast is not None else 0
        return len(self._texts) + len(self._plans) + len(self._pins) + fast

    def judge(self, sql: str, tenant: str | None) -> SqlDecision:
        """Never raises: an unexpected failure is a refusal (fail closed)."""
        try:
            shapes = self._shapes
            if shapes and (tenant or not self._tenant_required):
                first = shapes[0]  # the hot shape, matched here: no call frame more
                m = first.rx.fullmatch(sql)
                if m is not None:
                    for group, text in first.runs:  # what _Shape.runs_hold checks
                        if not sql.startswith(text, m.start(group)):
                            break
                    else:
                        return self._shape_decision(first, m, sql, tenant)
            return self._judge(sql, tenant)
        except Exception:
            return SqlDecision(BLOCKED, "SQL could not be judged", sql, False, "unknown", False)

    def _judge(self, sql: str, tenant: str | None) -> SqlDecision:
        if self.policy.tenant_column and not tenant:
            return SqlDecision(ErrorCode.AUTH_FAILED, "this route requires a tenant id", sql,
                               False, "unknown", False)
        shapes = self._shapes
        if len(shapes) > 1:  # the first was tried in judge()
            hit = _find_shape(shapes, sql)
            if hit is not None:
                return self._shape_decision(*hit, sql, tenant)
        prep = self._texts.get(sql)
        if prep is None:
            fd = fast_digest(sql) if self._fast is not None else None
            prep = self._bind_fast(sql, fd) if fd is not None else None
            if prep is None:
                prep = self._prepare(sql, fd)
            self._texts.put(sql, prep)
        p = prep.plan
        if p.code is not None:
            return SqlDecision(p.code, p.reason, sql, False,
                               p.kind, p.read_only, p.tables, p.columns)
        for value in prep.checks:
            if value != tenant:
                return _mismatch(sql, p)
        segments = prep.segments
        if segments is None:
            return SqlDecision(None, "", sql, False, p.kind, p.read_only, p.tables, p.columns)
        if len(segments) == 1:
            return SqlDecision(None, "", segments[0], True,
                               p.kind, p.read_only, p.tables, p.columns)
        quoted = self._quote(tenant or "")
        if quoted is None:
            return _unquotable(sql, p)
        return SqlDecision(None, "", quoted.join(segments), True,
                           p.kind, p.read_only, p.tables, p.columns)

    def _shape_decision(self, shape: _Shape, m: re.Match[str], sql: str,
                        tenant: str | None) -> SqlDecision:
        """What `_bind_fast` and the tail of `_judge` give the text a shape matched, read
        from the match: its kept text that holds literals, between the rest of the
        rewrite with this tenant already quoted in."""
        self.shape_hits += 1
        p = shape.plan
        if p.code is not None:
            return SqlDecision(p.code, p.reason, sql, False,
                               p.kind, p.read_only, p.tables, p.columns)
        for c in shape.checks:
            if (c if isinstance(c, str) else _literal_value(m.group(c))) != tenant:
                return _mismatch(sql, p)
        consts = shape.consts
        if consts is None:
            return SqlDecision(None, "", sql, False, p.kind, p.read_only, p.tables, p.columns)
        bound = shape.bound.get(tenant)
        if bound is None:
            if any(MARK in text for text in consts):
                quoted = self._quote(tenant or "")
                if quoted is None:
                    return _unquotable(sql, p)
                # No MARK in a matched text (fast_digest refused it in the template, the
                # literal patterns refuse it), so each one is a slot.
                consts = tuple(text.replace(MARK, quoted) for text in consts)
            if len(shape.bound) >= _BOUND:
                shape.bound.clear()
            bound = shape.bound[tenant] = consts
        copies = shape.groups
        if len(copies) == 1:
            text = bound[0] + m.group(copies[0]) + bound[1]
        elif not copies:
            text = bound[0]
        else:
            parts = [""] * (2 * len(copies) + 1)
            parts[0::2] = bound
            parts[1::2] = m.group(*copies)
            text = "".join(parts)
        return _new_decision(SqlDecision, (None, "", text, True,
                                           p.kind, p.read_only, p.tables, p.columns))

    def _learn(self, sql: str, fd: FastDigest, entry: _Fast) -> None:
        """Put the key's shape first in line: compiled on the shape's second text (about
        a third of a cold parse) and kept with the fast entry, so a shape that drops out
        of line comes back without a compile."""
        shape = entry.shape
        if shape is None:
            shape = _shape(sql, fd, entry) or _NO_SHAPE
            self._fast.put(fd.key, entry._replace(shape=shape))  # type: ignore[union-attr]
        shapes = self._shapes
        if shape is not _NO_SHAPE and all(s is not shape for s in shapes):
            shapes.insert(0, shape)
            for dropped in shapes[MAX_SHAPES:]:
                dropped.bound.clear()  # only shapes in line keep them (memory)
            del shapes[MAX_SHAPES:]

    def _quote(self, tenant: str) -> str | None:
        if tenant in self._quoted:
            return self._quoted[tenant]
        if len(self._quoted) > 4096:
            self._quoted.clear()
        quoted = self._quoted[tenant] = quote_tenant(tenant, self._dialect, self._tokenizer)
        return quoted

    def _prepare(self, sql: str, fd: FastDigest | None = None) -> _Prepared:
        pg_plan = None
        if self._pg is not None:  # PostgreSQL's parser first: its refusal is final
            pg_plan = pg_hook.verdict_plan(self._pg, sql, self._pg_only)
            if pg_plan.code is not None or self._pg_only:
                if fd is not None and self._fast is not None:
                    alike = pg_hook.lexes_alike(sql, fd)
                    self._fast.put(fd.key, _Fast(pg_plan, (), (), ()) if alike else _NOT_FAST)
                return _Prepared(pg_plan, None, ())
        try:
            tokens = self._tokenizer.tokenize(sql)
        except TokenError:
            return _Prepared(blocked(BLOCKED, "SQL could not be tokenized"), None, ())
        if not tokens:
            return _Prepared(blocked(BLOCKED, "empty SQL"), None, ())
        dig = digest(tokens, self._commands, sql)
        chosen = None
        if dig is not None and self._reuse:
            pins = self._pins.get(dig[0])
            if pins is not None:
                chosen = self._plans.get((dig[0], pins, tuple(tokens[i].text for i in pins)))
        if chosen is None:
            chosen = self._cold(sql, tokens, pg_plan)
            if dig is not None and chosen.reusable:
                self._pins.put(dig[0], chosen.pinned)
                values = tuple(tokens[i].text for i in chosen.pinned)
                self._plans.put((dig[0], chosen.pinned, values), chosen)
        prep = self._bind(chosen, sql, tokens)
        if pg_plan is not None and prep.segments is not None and not pg_hook.faithful(
                sql, prep.segments, self._ctx.marker_sql, self.policy):
            chosen = blocked(BLOCKED, "query could not be rewritten safely", chosen.kind)
            prep = _Prepared(chosen, None, ())
        if fd is not None and self._fast is not None:
            lits = dig[1] if dig is not None and chosen.reusable else None
            entry = self._admit(fd, tokens, lits, chosen)
            if pg_plan is not None and entry is not _NOT_FAST \
                    and not pg_hook.lexes_alike(sql, fd):
                entry = _NOT_FAST  # PostgreSQL cuts other literals than the split
            self._fast.put(fd.key, entry)
        return prep

    @staticmethod
    def _admit(fd: FastDigest, tokens: list[Token], lits: tuple[int, ...] | None,
               p: Plan) -> _Fast:
        """SECURITY: a shape is served from its fast digest only if sqlglot cut exactly
        the same literals, of the same kinds, out of this text; else every text of the
        shape keeps going through the tokenizer."""
        spans = fd.spans()
        if lits is None or len(lits) != len(spans):
            return _NOT_FAST
        raw = fd.parts[1::2]
        for i, (start, end), text in zip(lits, spans, raw, strict=True):
            tok = tokens[i]
            want = TokenType.STRING if text[0] == "'" else TokenType.NUMBER
            if (tok.start, tok.end + 1) != (start, end) or tok.token_type is not want \
                    or tok.text != _literal_value(text):
                return _NOT_FAST
        index = {t: k for k, t in enumerate(lits)}
        pinned = tuple((index[i], raw[index[i]]) for i in p.pinned if i in index)
        checks = tuple(index.get(i, tokens[i].text) for i in p.tenant_checks)
        ends = [0, *(end for _, end in spans)]

        def at(pos: int) -> tuple[int, int]:
            k = bisect_right(ends, pos) - 1
            return k, pos - ends[k]

        spots = []
        for pos, resume, parts in edit_spots(tokens, p.edits):
            if any(part is not None and MARK in part for part in parts):
                return _NOT_FAST  # the slot marker must mean the slot
            text = "".join(MARK if part is None else part for part in parts)
            spots.append((*at(pos), *at(resume), text))
        return _Fast(p, pinned, checks, tuple(spots))

    def _bind_fast(self, sql: str, fd: FastDigest) -> _Prepared | None:
        entry = self._fast.get(fd.key) if self._fast is not None else None
        if entry is None or entry is _NOT_FAST:
            return None
        parts = fd.parts
        for k, raw in entry.pinned:
            if parts[2 * k + 1] != raw:
                return None
        self._split_hits += 1
        self._learn(sql, fd, entry)
        p = entry.plan
        if p.code is not None:
            return _Prepared(p, None, ())
        checks = tuple(c if isinstance(c, str) else _literal_value(parts[2 * c + 1])
                       for c in entry.checks)
        if not entry.spots:
            return _Prepared(p, None, checks)
        ends = fd.ends
        out = []
        cur = 0
        for k, rel, k2, rel2, text in entry.spots:
            out += (sql[cur : ends[k] + rel], text)
            cur = ends[k2] + rel2
        out.append(sql[cur:])
        # No MARK in a fast text (fast_digest refuses it), so each one is a slot.
        return _Prepared(p, tuple("".join(out).split(MARK)), checks)

    @staticmethod
    def _bind(p: Plan, sql: str, tokens: list[Token]) -> _Prepared:
        if p.code is not None:
            return _Prepared(p, None, ())
        if p.template is not None:
            parts: Parts | None = p.template
        else:
            parts = apply_edits(sql, tokens, p.edits) if p.edits else None
        segments = _segments(parts) if parts is not None else None
        return _Prepared(p, segments, tuple(tokens[i].text for i in p.tenant_checks))

    def _parse_one(self, sql: str, tokens: list[Token]) -> exp.Expression | Plan:
        try:
            stmts = [s for s in self._parser.parse(tokens, sql) if s is not None]
        except ParseError as e:
            where = e.errors[0] if e.errors else {}
            return blocked(BLOCKED, f"SQL does not parse (line {where.get('line', '?')}, "
                           f"column {where.get('col', '?')})", reusable=False)
        if not stmts:
            return blocked(BLOCKED, "empty SQL")
        if len(stmts) > 1:
            return blocked(BLOCKED, f"stacked statements ({len(stmts)}) are not allowed")
        return stmts[0]

    def _cold(self, sql: str, tokens: list[Token], pg_plan: Plan | None = None) -> Plan:
        self.cold += 1
        hazard = comment_hazard(sql, tokens)  # text outside literals: part of the digest
        if hazard is not None:
            return blocked(BLOCKED, hazard)
        if tokens[0].text.upper() == "EXPLAIN":
            return self._explain(sql, tokens)
        root = self._parse_one(sql, tokens)
        if isinstance(root, Plan):
            return root
        if pg_plan is not None:  # judged by PostgreSQL's parser; sqlglot only rewrites
            j = Judgement(None, pg_plan.kind, pg_plan.read_only)
        else:
            j = judge(root, sql, self.policy)
        if j.reason is not None:
            return blocked(BLOCKED, j.reason, j.kind)
        return plan(sql, tokens, root, j, self._ctx)

    def _explain(self, sql: str, tokens: list[Token]) -> Plan:
        """EXPLAIN's target is judged and rewritten as a statement of its own. SECURITY:
        where sqlglot packed the rest of the text into one string, the whole rest is
        tokenized again in place, so a second statement behind it is seen (and refused);
        EXPLAIN ANALYZE runs its target, so anything but a read is a write (and a
        read-only route refuses it whole)."""
        toks = tokens
        if len(tokens) > 1 and tokens[1].token_type is TokenType.STRING \
                and tokens[0].token_type is TokenType.COMMAND:
            cut = tokens[0].end + 1
            try:
                toks = [tokens[0], *self._tokenizer.tokenize(" " * cut + sql[cut:])]
            except TokenError:
                return blocked(BLOCKED, "SQL could not be tokenized", "explain")
            hazard = comment_hazard(sql, toks)
            if hazard is not None:
                return blocked(BLOCKED, hazard, "explain")
        i, analyze = _explain_options(toks)
        if i is None:
            return blocked(BLOCKED, "EXPLAIN option not understood", "explain")
        if i >= len(toks) or toks[i].token_type is TokenType.SEMICOLON:
            return blocked(BLOCKED, "EXPLAIN without a statement", "explain")
        root = self._parse_one(sql, toks[i:])
        if isinstance(root, Plan):
            return dataclasses.replace(root, kind="explain", reusable=False)
        j = judge(root, sql, self.policy)
        if j.reason is not None:
            return blocked(BLOCKED, j.reason, "explain", reusable=False)
        reads = j.read_only
        if analyze and self.policy.read_only:
            # Runs the statement: its cost and timing are not a read-only route's to spend.
            return blocked(BLOCKED, "EXPLAIN ANALYZE executes the statement", "explain",
                           reusable=False)
        if self.policy.tenant_column and not isinstance(root, QUERY_ROOTS):
            return blocked(BLOCKED, "EXPLAIN of a write is not supported on a tenant route",
                           "explain", reusable=False)
        ctx = dataclasses.replace(self._ctx, policy=dataclasses.replace(self.policy,
                                                                          max_rows=None))
        checked = plan(sql, toks, root, j, ctx)  # tenant filters, allowed_tables
        if checked.code is not None:
            return dataclasses.replace(checked, kind="explain", reusable=False)
        template = checked.template
        if template is not None:  # AST mode renders the target alone
            template = (sql[: toks[i].start] + (template[0] or ""), *template[1:])
        elif checked.edits:
            template = apply_edits(sql, toks, checked.edits)
        # The plan's token positions are those of `toks`: valid for this text only.
        return Plan(None, "", "explain", reads or not analyze, template=template,
                    reusable=False, tables=checked.tables, columns=checked.columns)


_EXPLAIN_WORDS = frozenset({
    "ANALYZE", "ANALYSE", "VERBOSE", "QUERY", "PLAN", "FORMAT", "=", "TEXT", "JSON", "TREE",
    "TRADITIONAL", "EXTENDED", "PARTITIONS", "XML", "YAML", "GRAPHVIZ",
})


def _explain_options(tokens: list[Token]) -> tuple[int | None, bool]:
    """(index of the statement EXPLAIN applies to or None when an option is not
    understood, whether it runs it). Options in parentheses are skipped whole; an
    ANALYZE anywhere among them counts (even `ANALYZE false`: fail closed)."""
    i, analyze = 1, False
    while i < len(tokens):
        tok = tokens[i]
        word = tok.text.upper()
        if tok.token_type is TokenType.L_PAREN and i == 1:
            depth = 0
            for k in range(i, len(tokens)):
                kind = tokens[k].token_type
                depth += (kind is TokenType.L_PAREN) - (kind is TokenType.R_PAREN)
                analyze |= tokens[k].text.upper() in ("ANALYZE", "ANALYSE")
                if depth == 0:
                    break
            else:
                return None, analyze
            i = k + 1
            continue
        if word not in _EXPLAIN_WORDS or tok.token_type is TokenType.STRING:
            return i, analyze
        analyze |= word in ("ANALYZE", "ANALYSE")
        i += 1
    return i, analyze
