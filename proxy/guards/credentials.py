"""Plaintext credentials in what the caller sends: refused in production (the
orchestrator must hold references, never secrets), forwarded with a warning in
development. Judges the call before anything rewrites it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from proxy.config.schema import Route, Rules
from proxy.credentials.detect import Detector, Finding, describe
from proxy.guards.base import CallContext
from proxy.model.call import ToolCall
from proxy.model.errors import ErrorCode
from proxy.model.verdict import ALLOW, Deny, Verdict
from proxy.services import Services

CLEAN_CACHE = 4096
"""Header (name, value) pairs known clean; the same few headers arrive on every call."""


class _Items:
    __slots__ = ("pairs",)

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.pairs = pairs

    def items(self) -> list[tuple[str, str]]:
        return self.pairs


@dataclass(frozen=True, slots=True)
class CredentialsGuard:
    detector: Detector
    block: bool
    name: str = "credentials"
    clean: dict[tuple[str, str], None] = field(default_factory=dict)

    def _scan_headers(self, headers: Any) -> list[Finding]:
        """Scan only header values not seen clean before: a pure function of (name,
        value), so a clean verdict can be remembered."""
        clean = self.clean
        fresh = [(k, v) for k, v in headers.items() if (k, v) not in clean]
        if not fresh:
            return []
        findings = self.detector.scan_headers(_Items(fresh))
        flagged = {f.location for f in findings}
        if len(clean) + len(fresh) > CLEAN_CACHE:
            clean.clear()
        for k, v in fresh:
            if f"header {k}" not in flagged:
                clean[(k, v)] = None
        return findings

    async def check(self, call: ToolCall, ctx: CallContext) -> Verdict:
        req = call.request
        findings = self._scan_headers(req.headers)
        if req.path:
            # SECURITY: a token in a path segment reaches the upstream (and both logs).
            findings += self.detector.scan_path(req.path)
        if req.query_string:
            findings += self.detector.scan_query(req.query.items())
        if call.json is not None:
            # The raw body answers for a document it was parsed into, not for one an
            # earlier guard rewrote (those set rewritten_body).
            if call.rewritten_body is not None or not req.body \
                    or not self.detector.json_clean(req.body):
                findings += self.detector.scan_json(call.json)
        elif req.body:
            findings += self.detector.scan_body(req.headers.get("Content-Type", ""), req.body)
        if not findings:
            return ALLOW
        action = "blocked" if self.block else "warned"
        ctx.record.findings.extend((f.kind, action) for f in findings)
        # SECURITY: describe() names locations and kinds, never values.
        reason = describe(findings)
        if self.block:
            return Deny(ErrorCode.POLICY_DENY, reason)
        ctx.record.warnings.append(reason)
        return ALLOW


def build(route: Route, rules: Rules, services: Services) -> CredentialsGuard | None:
    if route.kind == "postgres":
        return None  # the wire listener judges startup and password messages itself
    spec = route.credentials
    allow = list(spec.allow)
    jwt = rules.identity.jwt
    if jwt is not None and route.identity != "headers":
        # The identity token is the proxy's own (verified, then dropped unless the route
        # forwards it): not a plaintext credential sent to the tool.
        allow.append(f"header {jwt.header}")
    detector = Detector(spec.scan_headers, allow, route.limits.max_inspect_bytes)
    return CredentialsGuard(detector, rules.environment == "production")

