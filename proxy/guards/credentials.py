"""Plaintext credentials in what the caller sends: refused in production (the
orchestrator must hold references, never secrets), forwarded with a warning in
development. Judges the call before anything rewrites it."""

from __future__ import annotations

from dataclasses import dataclass

from proxy.compile import GUARD_BUILDERS, Services
from proxy.config.schema import Route, Rules
from proxy.credentials.detect import Detector, describe
from proxy.guards.base import CallContext
from proxy.model.call import ToolCall
from proxy.model.errors import ErrorCode
from proxy.model.verdict import ALLOW, Deny, Verdict


@dataclass(frozen=True, slots=True)
class CredentialsGuard:
    detector: Detector
    block: bool
    name: str = "credentials"

    async def check(self, call: ToolCall, ctx: CallContext) -> Verdict:
        req = call.request
        findings = self.detector.scan_request(
            req.headers,
            req.query.items() if req.query_string else (),
            req.headers.get("Content-Type", ""),
            req.body,
            json_body=call.json,
        )
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
    detector = Detector(spec.scan_headers, spec.allow, route.limits.max_inspect_bytes)
    return CredentialsGuard(detector, rules.environment == "production")


GUARD_BUILDERS["credentials"] = build
