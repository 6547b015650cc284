"""One JSON line per call. Bodies and header values are never logged; reasons come from
guards, which never put a secret in them. Caller-controlled values are written only
validated (tenant and role, by the pipeline's grammar; the method) or masked (the path:
credential-looking parts)."""

from __future__ import annotations

import json
import logging
import random
import time

from proxy.config.schema import AccessLogSpec
from proxy.model.record import CallRecord
from proxy.observe.decision_log import log_method, log_path, log_text

log = logging.getLogger("callwarden.access")


class AccessLog:
    def __init__(self, spec: AccessLogSpec) -> None:
        self.sample = spec.sample
        self.level = logging.getLevelName(spec.level.upper())
        # Decided once: the rules set the level and the CLI the logger's; a reload
        # builds a new AccessLog.
        self.enabled = spec.enabled and log.isEnabledFor(self.level)

    def emit(self, rec: CallRecord, duration_s: float) -> None:
        if not self.enabled:
            return
        # Refusals and errors are always logged; sampling only thins successful calls.
        if rec.outcome == "ok" and self.sample < 1.0 and random.random() >= self.sample:
            return
        line = {
            "time": round(time.time(), 3),
            "trace_id": rec.trace_id,
            "tenant": rec.tenant,
            "role": rec.roles,
            "route": rec.route,
            "kind": rec.kind,
            "method": log_method(rec.method),
            "path": log_path(rec.path),
            "tool": rec.tool_name or rec.tool,
            "verdict": rec.outcome,
            "error_code": rec.error_code or None,
            "reason": log_text(rec.reason) if rec.reason else None,
            "guard": rec.guard or None,
            "status": rec.status,
            "duration_ms": round(duration_s * 1000, 3),
            "upstream_ms": round(rec.upstream_s * 1000, 3),
            "retries": rec.retries,
            "budget_ms": rec.budget_ms,
        }
        if rec.approval:
            line["approval"] = rec.approval.id
        if rec.would_deny:
            line["would_deny"] = [
                {"guard": g, "code": c, "reason": log_text(r)} for g, c, r in rec.would_deny
            ]
        if rec.warnings:
            line["warnings"] = rec.warnings
        log.log(self.level, json.dumps(line, separators=(",", ":")))
