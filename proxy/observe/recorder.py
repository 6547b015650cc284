"""One call's record -> metric updates. Label children are cached by their values
(`.labels()` costs more than the update itself); every label is bounded by the rules,
and the tenant label, where a route opts in, is capped (`other` beyond the cap)."""

from __future__ import annotations

from typing import Any

from proxy.model.record import CallRecord
from proxy.observe.metrics import Metrics


class CallMetrics:
    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics
        self._children: dict[tuple[str, ...], Any] = {}
        self._bundles: dict[tuple[str, str, str, str, str | None], tuple[Any, ...]] = {}
        self._tenants: dict[str, set[str]] = {}

    def child(self, metric: Any, *labels: str) -> Any:
        key = (metric._name, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def tenant_label(self, route: str, tenant: str, cap: int) -> str:
        seen = self._tenants.setdefault(route, set())
        if tenant in seen:
            return tenant
        if len(seen) < cap:
            seen.add(tenant)
            return tenant
        return "other"

    def _bundle(
        self, route: str, kind: str, outcome: str, code: str, tool: str | None
    ) -> tuple[Any, ...]:
        """The children every call of this shape updates, found once (all labels are
        bounded, so are the bundles)."""
        m, child = self.m, self.child
        return (
            child(m.requests, route, kind, outcome, code),
            child(m.request_duration, route, kind),
            child(m.upstream_duration, route, kind),
            child(m.proxy_overhead, route, kind),
            None if tool is None else child(m.mcp_tool_calls, route, tool, outcome),
            None if tool is None else child(m.mcp_tool_duration, route, tool),
            child(m.sql_inspection, route) if kind in ("sql", "postgres") else None,
        )

    def record(self, rec: CallRecord, duration: float, tenant_cap: int | None) -> None:
        """`tenant_cap`: the cap when the route opted in to a tenant label, else None."""
        m, child = self.m, self.child
        route, kind = rec.route or "none", rec.kind or "none"
        key = (route, kind, rec.outcome, rec.error_code, rec.tool)
        every = self._bundles.get(key)
        if every is None:
            every = self._bundles[key] = self._bundle(*key)
        requests, total, upstream, overhead, tool_calls, tool_duration, sql = every
        requests.inc()
        total.observe(duration, {"trace_id": rec.trace_id})
        if rec.upstream_s:
            upstream.observe(rec.upstream_s)
        overhead.observe(max(0.0, duration - rec.upstream_s))
        if tool_calls is not None:  # MCP tools/call; the label is bounded by the rules
            tool_calls.inc()
            tool_duration.observe(duration)
        if rec.budget_ms is not None:
            child(m.budget_remaining, route).observe(rec.budget_ms / 1000)
        if rec.tenant is not None and tenant_cap is not None:
            label = self.tenant_label(route, rec.tenant, tenant_cap)
            child(m.tenant_requests, route, label, rec.outcome).inc()
        if rec.sql_s is not None:
            (sql or child(m.sql_inspection, route)).observe(rec.sql_s)
        for finding, action in rec.findings:
            child(m.credential_findings, route, finding, action).inc()
        if rec.masked:
            child(m.secrets_masked, route).inc(rec.masked)
        for name, reason in rec.filter_refusals:
            child(m.filter_refusals, route, name, reason).inc()
        if rec.outcome == "denied":
            child(m.denials, route, rec.guard or "routing", rec.error_code).inc()
        for guard, code, _ in rec.would_deny:
            child(m.audit_would_deny, route, guard, code).inc()
