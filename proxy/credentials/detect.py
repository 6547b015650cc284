"""Plaintext credential detection in outbound calls: headers, query, JSON, form, text.

Pure and bounded: a Detector is built once per route (its header names and allowlist),
then each scan is a few regex passes over the call's strings. Findings name a location
and a kind, never the value, so a refusal reason can be shown and logged as is.
"""

from __future__ import annotations

import base64
import binascii
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, unquote

from proxy.credentials import formats
from proxy.credentials.bodies import multipart_parts, xml_pairs
from proxy.credentials.literals import (
    is_opaque_literal,
    is_secret_key,
    split_auth_scheme,
)
from proxy.model.jsonio import loads_unique
from proxy.reference import REFERENCE

AUTH_HEADERS = frozenset({"authorization", "proxy-authorization"})
KEY_HEADERS = frozenset({
    "x-api-key", "api-key", "apikey", "x-auth-token", "x-access-token", "private-token",
    "x-vault-token", "x-goog-api-key", "ocp-apim-subscription-key", "x-functions-key",
    "x-amz-security-token", "x-github-token", "x-gitlab-token", "x-consul-token",
    "x-nomad-token", "x-api-token", "x-client-secret",
})
COOKIE_HEADERS = frozenset({"cookie"})
_SESSION_COOKIE_WORDS = ("session", "sess", "sid", "auth", "token", "jwt", "secret", "login")
_SEP = "\x00"  # joins many strings into one scan; no pattern matches across it
MAX_SCAN_BYTES = 1_048_576
MAX_NODES = 100_000
MAX_DEPTH = 64
MAX_FINDINGS = 32
"""One finding refuses a call; past this many the reason names no more (and the
duplicate check stays constant-time however many values a crafted body holds)."""
_TEXT_TYPES = ("text/", "json", "xml", "javascript", "yaml", "x-www-form-urlencoded",
               "multipart/", "graphql", "sql", "csv", "x-ndjson")


@dataclass(frozen=True, slots=True)
class Finding:
    location: str
    """`header Authorization`, `query api_key`, `json /config/password`, `form password`."""
    kind: str
    """`github_token`, `jwt`, `secret_key_value`, `bearer_token` ... never the value."""


def describe(findings: Iterable[Finding]) -> str:
    """One refusal reason for all findings (locations and kinds only)."""
    parts = [f"{f.location} ({f.kind})" for f in findings]
    return "plaintext credential in " + ", ".join(parts) if parts else ""


def _pointer_token(key: str) -> str:
    if "~" in key or "/" in key:
        return key.replace("~", "~0").replace("/", "~1")
    return key


def _normalise(location: str) -> str:
    # Header names are case-insensitive; everything else is matched as written.
    return location.lower() if location.startswith("header ") else location


@lru_cache(maxsize=4096)
def _KEY_SCAN(key: str) -> bool:
    """Is a value under this key judged by key (a secret-looking key, or one naming a
    provider whose shape the context rules know)? Cached: key names repeat."""
    if is_secret_key(key):
        return True
    low = key.lower()
    return any(kw in low for kw in formats.CONTEXT_WORDS)


_Leaf = tuple[str, Any, str, str]
"""(parent pointer, key or index, key that judges it, string value)"""


def _walk(node: dict[Any, Any] | list[Any], pointer: str, key: str, depth: int,
          leaves: list[_Leaf]) -> None:
    """Collect string leaves in document order; recursive (faster than an explicit stack
    in CPython), bounded by MAX_DEPTH and MAX_NODES strings. List items inherit their
    container's key: {"tokens": [...]} judges each item as a token."""
    if len(leaves) > MAX_NODES:
        return
    if type(node) is dict:
        for k, v in node.items():
            tv = type(v)
            if tv is str:
                if v:
                    leaves.append((pointer, k, k, v))
            elif (tv is dict or tv is list) and depth < MAX_DEPTH:
                _walk(v, pointer + "/" + _pointer_token(str(k)), str(k), depth + 1, leaves)
    else:
        for i, v in enumerate(node):
            tv = type(v)
            if tv is str:
                if v:
                    leaves.append((pointer, i, key, v))
            elif (tv is dict or tv is list) and depth < MAX_DEPTH:
                _walk(v, f"{pointer}/{i}", key, depth + 1, leaves)


def _first(leaf: _Leaf) -> str:
    return str(leaf[0])


def _child_location(leaf: _Leaf) -> str:
    return f"{leaf[0]}/{_pointer_token(str(leaf[1]))}"


def _leaf_location(leaf: _Leaf) -> str:
    return f"json {leaf[0]}/{_pointer_token(str(leaf[1]))}"


class Detector:
    """Scans one route's calls. `extra_headers`: more header names that carry credentials
    (`credentials.scan_headers`); `allow`: locations never reported (`credentials.allow`),
    exact, or a prefix when the entry ends in `/*` (`json /samples/*`)."""

    __slots__ = ("_allow_exact", "_allow_prefix", "_key_headers", "max_scan_bytes")

    def __init__(self, extra_headers: Iterable[str] = (), allow: Iterable[str] = (),
                 max_scan_bytes: int = MAX_SCAN_BYTES) -> None:
        self._key_headers = KEY_HEADERS | {h.lower() for h in extra_headers}
        allow = [_normalise(a.strip()) for a in allow]
        self._allow_exact = frozenset(a for a in allow if not a.endswith("/*"))
        self._allow_prefix = tuple(a[:-1] for a in allow if a.endswith("/*"))
        self.max_scan_bytes = max_scan_bytes

    # -- results -----------------------------------------------------------------------
    def _keep(self, out: list[Finding], location: str, kind: str) -> None:
        norm = _normalise(location)
        if norm in self._allow_exact or (self._allow_prefix
                                         and norm.startswith(self._allow_prefix)):
            return
        finding = Finding(location, kind)
        if len(out) < MAX_FINDINGS and finding not in out:
            out.append(finding)

    def _scan_leaves(self, out: list[Finding], leaves: list[_Leaf],
                     where: Callable[[_Leaf], str]) -> None:
        """One format pass over all values joined, then the key rule for each value under
        a secret-looking key; `where` names a leaf's location (built only for findings)."""
        if not leaves:
            return
        starts: list[int] = []
        pos = 0
        for leaf in leaves:
            starts.append(pos)
            pos += len(leaf[3]) + 1
        text = _SEP.join([leaf[3] for leaf in leaves])
        hit: set[int] = set()
        found, judged = formats.scan(text, strict=True)
        for kind, start, _ in found:
            i = bisect_right(starts, start) - 1
            hit.add(i)
            self._keep(out, where(leaves[i]), kind)
        for start, stop in judged:  # a look-alike a format judged: not a password
            i = bisect_right(starts, start) - 1
            if start == starts[i] and stop == starts[i] + len(leaves[i][3]):
                hit.add(i)
        budget = formats.MAX_ASSIGNMENTS
        for i, leaf in enumerate(leaves):
            key = leaf[2]
            if key and i not in hit and _KEY_SCAN(str(key)):
                budget -= 1
                if budget < 0:
                    # SECURITY: bounded work; what was not judged is not passed.
                    self._keep(out, where(leaf), "unjudged_values")
                    return
                kind = key_value_kind(str(key), leaf[3])
                if kind:
                    self._keep(out, where(leaf), kind)

    # -- locations ---------------------------------------------------------------------
    def scan_headers(self, headers: Mapping[str, str] | Any) -> list[Finding]:
        out: list[Finding] = []
        leaves: list[_Leaf] = []
        for name, value in headers.items():
            low = name.lower()
            location = f"header {name}"
            if low in AUTH_HEADERS:
                kind = _authorization_kind(value)
                if kind:
                    self._keep(out, location, kind)
            elif low in self._key_headers:
                kind = formats.first(value) or _words_kind(value, "api_key")
                if kind:
                    self._keep(out, location, kind)
            elif low in COOKIE_HEADERS:
                kind = _cookie_kind(value)
                if kind:
                    self._keep(out, location, kind)
            else:
                leaves.append((location, name, name, value))
        self._scan_leaves(out, leaves, _first)
        return out

    def scan_query(self, pairs: Iterable[tuple[str, str]]) -> list[Finding]:
        return self._pairs(pairs, "query")

    def scan_path(self, path: str) -> list[Finding]:
        """The URL path, percent-decoded as the upstream's router will read it: tokens
        in a segment (`/hooks/<token>`), `;key=value` parameters, userinfo in a path
        that holds a URL. Findings say `path`, never the path itself."""
        text = unquote(path[: self.max_scan_bytes])
        out: list[Finding] = []
        if not formats.may_match(text):
            return out
        for kind, _, _ in formats.find(text, strict=True):
            self._keep(out, "path", kind)
        return out

    def scan_form(self, body: bytes) -> list[Finding]:
        text = body[: self.max_scan_bytes].decode("utf-8", "replace")
        return self._pairs(parse_qsl(text, keep_blank_values=True), "form")

    def _pairs(self, pairs: Iterable[tuple[str, str]], where: str) -> list[Finding]:
        out: list[Finding] = []
        self._scan_leaves(out, [(f"{where} {k}", k, k, v) for k, v in pairs], _first)
        return out

    @staticmethod
    def json_clean(body: bytes) -> bool:
        """`scan_json` of the document parsed from `body` finds nothing, told from the
        raw text in one pass: without a backslash (escapes) or a NUL byte (UTF-16/32,
        which the stdlib parser reads too) every key and string of the document is in
        `body` as written, and a finding needs a format's literal prefix in a value or a
        key holding a key hint (tests/credentials/test_detect.py holds both)."""
        if REFERENCE or b"\\" in body or b"\x00" in body:
            return False
        return not formats.may_match(body.decode("utf-8", "surrogateescape"))

    def scan_json(self, obj: Any, base: str = "") -> list[Finding]:
        """Walk a decoded JSON value (at most MAX_NODES containers and strings, MAX_DEPTH
        levels); locations are JSON pointers under `base`."""
        out: list[Finding] = []
        if isinstance(obj, str):
            self._scan_leaves(out, [(f"json {base or '/'}", "", "", obj)], _first)
        elif isinstance(obj, dict | list):
            leaves: list[_Leaf] = []
            _walk(obj, base, "", 0, leaves)
            self._scan_leaves(out, leaves, _leaf_location)
        return out

    def scan_mapping(self, args: Mapping[str, Any], base: str = "") -> list[Finding]:
        """MCP tool arguments; `base` is where they sit in the body (`/params/arguments`),
        so locations match a whole-body scan."""
        return self.scan_json(dict(args), base)

    def scan_text(self, text: str, location: str = "body") -> list[Finding]:
        out: list[Finding] = []
        for kind, _, _ in formats.find(text, strict=True):
            self._keep(out, location, kind)
        return out

    def scan_body(self, content_type: str, body: bytes) -> list[Finding]:
        """Dispatch on content type; the first `max_scan_bytes` only; bad UTF-8 or JSON
        falls back to a text scan; binary types are not scanned."""
        if not body:
            return []
        ct = content_type.split(";", 1)[0].strip().lower()
        data = body[: self.max_scan_bytes]
        if ct == "application/x-www-form-urlencoded":
            return self.scan_form(data)
        if ct == "multipart/form-data":
            return self.scan_multipart(content_type, data)
        text = data.decode("utf-8", "replace")
        if ct.endswith("xml"):
            return self.scan_xml(text)
        if "json" in ct or (not ct and text.lstrip()[:1] in ("{", "[")):
            if len(data) == len(body):
                try:
                    return self.scan_json(loads_unique(text))  # a repeated key: text scan
                except ValueError:
                    pass
            return self.scan_text(text)
        if ct and not ct.startswith(_TEXT_TYPES):
            return []
        return self.scan_text(text)

    def scan_multipart(self, content_type: str, body: bytes) -> list[Finding]:
        """Each part judged as a form field under its name (JSON parts walked, binary
        files skipped), plus one format pass over the whole body: whatever the parser
        makes of a malformed part, a token in it is still seen."""
        out: list[Finding] = []
        parts = multipart_parts(content_type, body)
        leaves: list[_Leaf] = []
        for name, ptype, value in parts:
            pct = ptype.split(";", 1)[0].strip().lower()
            if pct and "json" in pct:
                try:
                    doc = loads_unique(value)
                except ValueError:
                    doc = None
                if isinstance(doc, dict | list):
                    sub: list[_Leaf] = []
                    _walk(doc, f"multipart {name}", "", 0, sub)
                    self._scan_leaves(out, sub, _child_location)
                    continue
            if pct and not pct.startswith(_TEXT_TYPES):
                continue  # a binary file: its bytes are not text anyone reads as a key
            leaves.append((f"multipart {name}", name, name, value))
        self._scan_leaves(out, leaves, _first)
        if not out:
            for kind, _, _ in formats.find(body.decode("utf-8", "replace"), strict=True):
                self._keep(out, "body", kind)
        return out

    def scan_xml(self, text: str) -> list[Finding]:
        """Element text under the element's name, attributes under theirs (one linear
        pass, no entity expansion: nothing is resolved), then the text scan for
        formats and assignments anywhere."""
        out: list[Finding] = []
        self._scan_leaves(out, [(f"xml {k}", k, k, v) for k, v in xml_pairs(text)], _first)
        for kind, _, _ in formats.find(text, strict=True):
            self._keep(out, "body", kind)
        return out

    def scan_request(self, headers: Mapping[str, str] | Any, query: Iterable[tuple[str, str]],
                     content_type: str = "", body: bytes | None = None,
                     json_body: Any = None, path: str = "") -> list[Finding]:
        """Everything a caller sent. Pass `json_body` when a codec already decoded it."""
        out = self.scan_headers(headers) + self.scan_query(query)
        if path:
            out += self.scan_path(path)
        if json_body is not None:
            out += self.scan_json(json_body)
        elif body:
            out += self.scan_body(content_type, body)
        return out


def key_value_kind(key: str, value: str) -> str | None:
    """A literal under a key: `Bearer x` judged as a header would be, a provider's
    shape under a key naming it, a strong literal under a secret-looking key."""
    if is_secret_key(key) and split_auth_scheme(value) is not None:
        return _authorization_kind(value)
    return formats.pair_kind(key, value)


def _words_kind(value: str, kind: str) -> str | None:
    """A header that carries one credential: each whitespace-separated word judged on
    its own, so a placeholder word (`example`, `xxxx`) or a reference beside a real
    token does not hide it (issue 21: `Bearer <token> example`)."""
    for word in value.split():
        if is_opaque_literal(word.strip("\"',;")):
            return kind
    return None


def _authorization_kind(value: str) -> str | None:
    value = value.strip()
    if not value:
        return None
    split = split_auth_scheme(value)
    scheme, token = split if split else ("", value)
    if scheme == "basic":
        return _basic_kind(token)
    found = formats.first(value)
    if found:
        return found
    return _words_kind(token, "bearer_token" if scheme in ("", "bearer", "token", "bot")
                       else "authorization")


def _basic_kind(token: str) -> str | None:
    """Basic credentials decoded and judged: a known format in the user or password
    names itself; any other literal password is `basic_auth`."""
    word = token.split()[0] if token.split() else ""
    try:
        text = base64.b64decode(word + "=" * (-len(word) % 4), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return _words_kind(token, "basic_auth")
    found = formats.first(text)
    if found:
        return found
    _user, sep, password = text.partition(":")
    if sep and _words_kind(password, "basic_auth"):
        return "basic_auth"
    return _words_kind(token[len(word):], "basic_auth")


def _cookie_kind(value: str) -> str | None:
    for part in value.split(";"):
        name, _, val = part.strip().partition("=")
        val = val.strip().strip('"')
        if not val:
            continue
        found = formats.first(val)
        if found:
            return found
        low = name.lower()
        if "csrf" in low or "xsrf" in low:
            continue  # csrftoken, XSRF-TOKEN: a CSRF defence, not a session
        if any(w in low for w in _SESSION_COOKIE_WORDS) and is_opaque_literal(val, 16):
            return "session_cookie"
    return None
