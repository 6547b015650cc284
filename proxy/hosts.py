"""DNS-rebinding protection on the proxy port: `Host` must name the proxy, and a request
carrying a browser `Origin` must come from an origin the rules list.

The proxy sends each upstream its own `Host`, which defeats the upstream's own check (the
MCP transport spec makes it a server's duty): a web page whose name an attacker points at
127.0.0.1 would otherwise drive tool calls through the proxy, with the credentials the
proxy injects. So the proxy takes that duty over, for every route kind.

A name of the proxy is: `localhost` and `*.localhost` (RFC 6761: they never leave the
machine), a loopback IP literal, the address the connection arrived on (the listen
address), a name a route's `match.hosts` lists (egress-gateway deployments address the
proxy by the upstream's name), and `listen.allowed_hosts`. The port is not judged: a
rebinding attack changes the name, never the port. An absolute-form request target
(`GET http://api.example.com/x`, sent by clients configured to use a proxy) names its
upstream in the target and the router matches on that; browsers never send one to a page's
own server, so only `Origin` is judged there. Pure: the caller reads the headers.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

from proxy.config.schema import Rules
from proxy.model.errors import ErrorCode, ProxyError
from proxy.routing import host_only

LOCAL_NAMES = frozenset({"localhost"})
LOCAL_SUFFIXES = (".localhost",)
MEMO_MAX = 1024
"""Distinct Host values remembered (a handful per deployment; bounded whatever is sent)."""
HOST_REFUSED = ProxyError(
    ErrorCode.HOST_NOT_ALLOWED,
    "Host does not name this proxy (DNS rebinding protection): "
    "add the name to listen.allowed_hosts",
)
ORIGIN_REFUSED = ProxyError(
    ErrorCode.ORIGIN_NOT_ALLOWED,
    "requests from a browser origin are refused unless listed in listen.allowed_origins",
)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _ip(host: str) -> str | None:
    """The canonical text of an IP literal (`[::1]` -> `::1`), else None."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def normalize_origin(value: str) -> str:
    """`Scheme://Host:Port/` -> `scheme://host:port` (origins compare as ASCII lower case)."""
    return value.strip().rstrip("/").lower()


@dataclass(frozen=True, slots=True)
class HostPolicy:
    names: frozenset[str]
    suffixes: tuple[str, ...]
    """`*.example.com` entries, kept as `.example.com`."""
    origins: frozenset[str]
    _memo: dict[str, bool] = field(default_factory=dict, compare=False, repr=False)
    """Host header value -> names the proxy by name (independent of the connection)."""

    @classmethod
    def from_rules(cls, rules: Rules) -> HostPolicy:
        listed = [*rules.listen.allowed_hosts]
        for route in rules.routes:
            listed += route.match.hosts or ()
        return cls.of(listed, rules.listen.allowed_origins)

    @classmethod
    def of(cls, hosts: Iterable[str], origins: Iterable[str]) -> HostPolicy:
        names = set(LOCAL_NAMES)
        suffixes = list(LOCAL_SUFFIXES)
        for h in hosts:
            h = h.lower().rstrip(".")
            if h.startswith("*."):
                suffixes.append(h[1:])
            else:
                names.add(_ip(h) or h)
        return cls(frozenset(names), tuple(suffixes), frozenset(map(normalize_origin, origins)))

    def check(
        self, host_header: str | None, origins: Iterable[str], raw_target: str
    ) -> ProxyError | None:
        """The refusal for this request, or None. `origins`: every `Origin` value sent.
        HOST_REFUSED is final only once `is_listen_address` said no (the caller asks it
        then, so the socket is read only for a Host that names no known name)."""
        for origin in origins:
            # SECURITY: a browser sends Origin on cross-origin and on POST requests; a
            # tool caller (not a browser) sends none. "null" (sandboxed pages, file://)
            # is never an allowed origin.
            if normalize_origin(origin) not in self.origins:
                return ORIGIN_REFUSED
        if host_header is None or raw_target[:1] != "/":
            return None  # no Host (not a browser), or an absolute-form target
        known = self._memo.get(host_header)
        if known is None:
            known = self._names_proxy(host_header)
            if len(host_header) <= 256:
                if len(self._memo) >= MEMO_MAX:
                    self._memo.clear()
                self._memo[host_header] = known
        return None if known else HOST_REFUSED

    @staticmethod
    def is_listen_address(host_header: str | None, local_ip: str | None) -> bool:
        """`Host` is the IP literal of the address the connection arrived on."""
        host = host_only(host_header)
        return host is not None and local_ip is not None and _ip(host) == _ip(local_ip)

    def _names_proxy(self, host_header: str) -> bool:
        host = host_only(host_header)
        if not host:
            return False
        if _loopback(host):
            return True
        host = _ip(host) or host
        return host in self.names or host.endswith(self.suffixes)
