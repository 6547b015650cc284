"""Route lookup: a pure function over a table compiled from the rules.

Paths are normalised before matching (percent-decoding once, resolving `.`/`..`,
merging `//`), so no spelling of a path can leave the prefix it matched; what is left
ambiguous after one decoding (an encoded `%`, `/` or `\\`) is refused, not guessed.
The normalised path is what the upstream receives, so the route's prefix match is the
path the upstream resolves. Path parameters are refused (a raw `;`: Tomcat and Spring
drop `;...` from each segment before resolving dots, so `/public/..;/admin` is `/admin`
to them but under `/public` to a router), as are fragments; an encoded `%3B` is data to
every server and stays encoded.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import quote, unquote, urlsplit

from proxy.model.errors import ErrorCode, ProxyError
from proxy.reference import REFERENCE

T = TypeVar("T")

_PATH_SAFE = "/:@!$&'()*+,=-._~"
"""Re-encoding keeps `;` encoded: decoded from `%3B` it is data, not a parameter."""
# Already normal: no percent-escapes, no empty, "." or ".." segments. Most paths are.
_SIMPLE = re.compile(r"(?:/(?!\.\.?(?:/|\Z))[A-Za-z0-9._~!$&'()*+,=:@-]+)*/?\Z")


def _bad(reason: str) -> ProxyError:
    return ProxyError(ErrorCode.TOOL_BAD_REQUEST, f"bad request path: {reason}")


def normalize_path(raw: str) -> str:
    """Decode once, resolve dot segments, merge slashes; re-encode for forwarding."""
    if _SIMPLE.match(raw):
        return raw
    if not raw.startswith("/"):
        raise _bad("must start with '/'")
    if ";" in raw:
        # SECURITY: servers disagree on path parameters (Tomcat/Spring strip them, so
        # `/public/..;/admin` resolves to /admin there): refused, not guessed.
        raise _bad("path parameters (';') are not accepted")
    if "#" in raw:
        raise _bad("a fragment ('#') does not belong in a request")
    try:
        decoded = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise _bad("not valid UTF-8 after percent-decoding") from None
    # SECURITY: a second decoding by the upstream must not reveal new separators.
    lowered = decoded.lower()
    if "%2e" in lowered or "%2f" in lowered or "%5c" in lowered or "%25" in lowered:
        raise _bad("double percent-encoding")
    if "\\" in decoded or any(ord(c) < 0x20 or ord(c) == 0x7F for c in decoded):
        raise _bad("backslash or control character")
    out: list[str] = []
    for seg in decoded.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if not out:
                raise _bad("'..' above the root")
            out.pop()
        elif seg.partition(";")[0] in ("", ".", ".."):
            # `%2e%2e%3b`: a dot segment to a server that decodes before it strips
            raise _bad("a dot segment with path parameters")
        else:
            out.append(seg)
    path = "/" + "/".join(out)
    if decoded.endswith("/") and out:
        path += "/"
    return quote(path, safe=_PATH_SAFE)


def split_target(raw_target: str) -> tuple[str | None, str, str]:
    """(host from an absolute-form target or None, raw path, raw query)."""
    host = None
    if raw_target.startswith(("http://", "https://")):
        parts = urlsplit(raw_target)
        host = parts.hostname
        path, query = parts.path or "/", parts.query
    else:
        path, _, query = raw_target.partition("?")
    return host, path, query


def host_only(value: str | None) -> str | None:
    """Host header -> lower-case host without port."""
    if not value:
        return None
    value = value.strip().lower()
    if value.startswith("["):
        return value[: value.find("]") + 1]
    return value.rsplit(":", 1)[0].rstrip(".") if value.count(":") <= 1 else value


@dataclass(frozen=True, slots=True)
class RouteEntry(Generic[T]):
    prefix: str | None
    hosts: frozenset[str] | None
    wildcard_hosts: tuple[str, ...]
    """`*.example.com` entries, kept as `.example.com` suffixes."""
    strip: bool
    target: T

    def host_matches(self, host: str | None) -> bool:
        if self.hosts is None:
            return True
        if host is None:
            return False
        return host in self.hosts or any(host.endswith(s) for s in self.wildcard_hosts)

    def prefix_matches(self, path: str) -> bool:
        p = self.prefix
        if p is None or p == "/":
            return True
        return path.startswith(p) and (len(path) == len(p) or path[len(p)] == "/")


def make_entry(
    prefix: str | None, hosts: Sequence[str] | None, strip: bool, target: T
) -> RouteEntry[T]:
    exact = None if hosts is None else frozenset(h for h in hosts if not h.startswith("*."))
    wild = tuple(h[1:] for h in hosts or () if h.startswith("*."))
    return RouteEntry(prefix, exact, wild, strip, target)


MEMO_MAX = 4096
"""Distinct (path, Host) pairs remembered per table; agents call a few URLs over and over."""
MEMO_KEY_MAX = 512
"""Longer targets are looked up every time: the memo stays small whatever callers send."""


class RouteTable(Generic[T]):
    """Longest prefix wins; on equal prefixes a host-specific route beats a host-less one."""

    def __init__(self, entries: Sequence[RouteEntry[T]]) -> None:
        self._entries = sorted(
            entries, key=lambda e: (-len(e.prefix or ""), e.hosts is None)
        )
        self._memo: dict[tuple[str, str | None], tuple[str, str | None, tuple[T, str] | None]] = {}

    def resolve(
        self, raw_target: str, host_header: str | None
    ) -> tuple[str, str | None, str, tuple[T, str] | None]:
        """A request target and Host header -> (normalised path, host, raw query, match).
        The answer is a pure function of (target without its query, Host), so it is
        remembered per table (a reload compiles a new table); a bad path is not."""
        head, _, query = raw_target.partition("?")
        key = (head, host_header)
        hit = None if REFERENCE else self._memo.get(key)
        if hit is None:
            host, raw_path, _ = split_target(head)
            path = normalize_path(raw_path)
            host = host or host_only(host_header)
            hit = (path, host, self.match(host, path))
            if not REFERENCE and len(head) + len(host_header or "") <= MEMO_KEY_MAX:
                if len(self._memo) >= MEMO_MAX:
                    self._memo.clear()
                self._memo[key] = hit
        return hit[0], hit[1], query, hit[2]

    def match(self, host: str | None, path: str) -> tuple[T, str] | None:
        """Returns (target, path to forward) or None (deny by default)."""
        for e in self._entries:
            if e.prefix_matches(path) and e.host_matches(host):
                if e.strip and e.prefix and e.prefix != "/":
                    return e.target, path[len(e.prefix) :] or "/"
                return e.target, path
        return None
