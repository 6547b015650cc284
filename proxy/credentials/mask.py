"""Leak masking in upstream responses: the exact values this route injected first (no
false positives), then the known token formats, each replaced by `[REDACTED]`.

Whole bodies go through `Masker.mask_bytes`; streams through `StreamMasker`, which never
lets a secret out in two halves: SSE streams are masked event by event (each event is
sent as soon as it is complete), other streams keep back a tail long enough to hold any
secret that may still be arriving.
"""

from __future__ import annotations

import codecs
import json
import re
import warnings
from collections.abc import Iterable
from functools import lru_cache
from urllib.parse import quote

from proxy.credentials import formats as token_formats

REDACTED = "[REDACTED]"
MIN_EXACT_LEN = 6
"""Shorter injected values are not masked by exact match: masking `abc` everywhere would
corrupt responses more than it protects (and such a value is no credential)."""
FORMAT_HOLD = 512
"""Characters a stream keeps back for token formats (longer than their minimal match)."""
MAX_HOLD = 1_048_576
"""A stream never keeps back more than this (a huge SSE event is then cut and masked)."""
_SSE_END = re.compile(r"\r\n\r\n|\n\n|\r\r")


def _variants(value: str) -> set[str]:
    """The value as it appears raw, JSON-escaped and URL-encoded in a response."""
    escaped = json.dumps(value)[1:-1]
    out = {value, escaped, escaped.replace("/", "\\/"), quote(value, safe="")}
    return {v for v in out if len(v) >= MIN_EXACT_LEN}


_SHORT_ESCAPES = {
    '"': '\\"', "\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
    "\t": "\\t",
}
UNICODE_ESCAPE_LEN = 12
"""Characters one character of a value may take in JSON: a surrogate pair of \\u escapes."""


def _u_escape(code: int) -> str:
    hexes = "".join(f"[{h}{h.upper()}]" if h.isalpha() else h for h in f"{code:04x}")
    return re.escape("\\u") + hexes


def _any_spelling(value: str) -> str:
    """A pattern for every way JSON may spell `value`: each character as itself, as its
    \\u escape (either hex case, a surrogate pair beyond the BMP) or its short escape.
    SECURITY: a server that escapes a secret character by character would otherwise
    echo it past an exact match, and a JSON client reads it back as the secret."""
    parts = []
    for c in value:
        code = ord(c)
        if code > 0xFFFF:
            hi, lo = divmod(code - 0x10000, 0x400)
            u = _u_escape(0xD800 + hi) + _u_escape(0xDC00 + lo)
        else:
            u = _u_escape(code)
        forms = [re.escape(c), u]
        if c in _SHORT_ESCAPES:
            forms.append(re.escape(_SHORT_ESCAPES[c]))
        parts.append("(?:" + "|".join(forms) + ")")
    return "".join(parts)


class Masker:
    __slots__ = ("_ascii", "_escaped", "_exact", "_formats", "longest")

    def __init__(self, exact_values: Iterable[str], formats: bool = True) -> None:
        values: set[str] = set()
        raw = {v for v in exact_values if len(v) >= MIN_EXACT_LEN}
        for v in exact_values:
            values |= _variants(v)
        ordered = sorted(values, key=len, reverse=True)  # longest first: no partial masks
        self._exact = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        # Only a text holding a \u escape needs (and pays for) the slower any-spelling
        # search; it finds everything the exact one does.
        spelled = [_any_spelling(v) for v in sorted(raw, key=len, reverse=True)]
        spelled += [re.escape(v) for v in ordered]
        self._escaped = re.compile("|".join(spelled)) if ordered else None
        self._ascii = all(v.isascii() for v in raw)
        self._formats = formats
        longest_raw = max((len(v) for v in raw), default=0)
        self.longest = max(len(ordered[0]) if ordered else 0, longest_raw * UNICODE_ESCAPE_LEN)

    def _exact_for(self, text: str) -> re.Pattern[str] | None:
        """The any-spelling search (20x slower) only for a text where undoing its escapes
        (in C: ASCII values are found in the latin-1 reading) reveals a value."""
        exact = self._exact
        if exact is None or "\\u" not in text:
            return exact
        if self._ascii:
            data = text.replace("\\/", "/").encode("utf-8", "surrogateescape")
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)  # "\\p" and such
                    plain = codecs.decode(data, "unicode_escape")
            except UnicodeDecodeError:  # a stray backslash at the end: no cheap look
                return self._escaped
            if exact.search(plain) is None:
                return exact
        return self._escaped

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Merged (start, end) of everything to mask, in order."""
        found: list[tuple[int, int]] = []
        exact = self._exact_for(text)
        if exact is not None:
            found += [m.span() for m in exact.finditer(text)]
        if self._formats:
            found += [(s, e) for _, s, e in token_formats.find(text)]
        if len(found) < 2:
            return found
        found.sort()
        merged = [found[0]]
        for s, e in found[1:]:
            if s <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(e, merged[-1][1]))
            else:
                merged.append((s, e))
        return merged

    def clean(self, text: str) -> bool:
        """Nothing in `text` would be masked, nor in any part of it: a literal search
        and the format prefilters find in a part whatever they find in the whole."""
        exact = self._exact_for(text)
        if exact is not None and exact.search(text) is not None:
            return False
        return not self._formats or not token_formats.may_match(text)

    def mask_text(self, text: str) -> tuple[str, int]:
        spans = self.spans(text)
        if not spans:
            return text, 0
        parts: list[str] = []
        pos = 0
        for s, e in spans:
            parts += (text[pos:s], REDACTED)
            pos = e
        parts.append(text[pos:])
        return "".join(parts), len(spans)

    def mask_bytes(self, data: bytes) -> tuple[bytes, int]:
        # surrogateescape: invalid UTF-8 passes through byte for byte.
        text, n = self.mask_text(data.decode("utf-8", "surrogateescape"))
        return (text.encode("utf-8", "surrogateescape"), n) if n else (data, 0)


@lru_cache(maxsize=256)
def masker_for(values: frozenset[str], formats: bool = True) -> Masker:
    """Masker for a route's current secret values, built once per value set (regex
    compilation is too slow for every response; values change only on rotation)."""
    return Masker(values, formats)


class StreamMasker:
    """Masks a response body that arrives in chunks. `feed` returns what may be sent now,
    `flush` the rest at the end; `count` is the number of values masked so far."""

    __slots__ = ("_buf", "_decoder", "_hold", "_masker", "_sse", "count")

    def __init__(self, masker: Masker, sse: bool = False) -> None:
        self._masker = masker
        self._sse = sse
        self._hold = max(masker.longest - 1, FORMAT_HOLD)
        self._decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self._buf = ""
        self.count = 0

    def _emit(self, text: str) -> bytes:
        masked, n = self._masker.mask_text(text)
        self.count += n
        return masked.encode("utf-8", "surrogateescape")

    def feed(self, chunk: bytes) -> bytes:
        self._buf += self._decoder.decode(chunk)
        buf = self._buf
        if self._sse:
            end = 0
            for m in _SSE_END.finditer(buf):
                end = m.end()
            if end:  # complete events go out now: an SSE client waits for them
                self._buf = buf[end:]
                out = self._emit(buf[:end])
                return out + self._cut() if len(self._buf) > MAX_HOLD else out
            return self._cut() if len(buf) > MAX_HOLD else b""
        return self._cut()

    def _cut(self) -> bytes:
        """Send all but a tail that could hold the start of a secret still arriving; never
        cut through a value already found (hold it whole instead).
        SECURITY (linear time): the buffer is searched only once it holds at least a
        hold's worth past the tail, so each character is searched a bounded number of
        times however small the chunks an upstream sends."""
        buf = self._buf
        cut = len(buf) - self._hold
        if cut < self._hold and len(buf) <= MAX_HOLD:
            return b""
        spans = self._masker.spans(buf)
        for s, e in spans:
            if s < cut < e:
                cut = s
                break
        if cut <= 0:
            if len(buf) <= MAX_HOLD:
                return b""
            cut = len(buf)  # one giant value: mask what there is rather than buffer more
        self._buf = buf[cut:]
        return self._emit_spans(buf[:cut], [(s, e) for s, e in spans if e <= cut])

    def _emit_spans(self, text: str, spans: list[tuple[int, int]]) -> bytes:
        """`text` with `spans` (found in a text it begins) masked: not searched again."""
        if not spans:
            return text.encode("utf-8", "surrogateescape")
        parts: list[str] = []
        pos = 0
        for s, e in spans:
            parts += (text[pos:s], REDACTED)
            pos = e
        parts.append(text[pos:])
        self.count += len(spans)
        return "".join(parts).encode("utf-8", "surrogateescape")

    def flush(self) -> bytes:
        rest = self._buf + self._decoder.decode(b"", final=True)
        self._buf = ""
        return self._emit(rest) if rest else b""
