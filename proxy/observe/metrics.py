"""Every CallWarden metric, declared here and only here.

Labels are bounded by the rules (route names, error codes, guard names, tools named in
rules); tenant appears only where a route opts in, capped. Trace ids go in exemplars.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector

from proxy.observe.families import CounterFamily as Counter
from proxy.observe.families import GaugeFamily as Gauge
from proxy.observe.families import HistogramFamily as Histogram

# Sub-millisecond (proxy overhead) to a minute (slow SQL): one set for every duration.
BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
OVERHEAD_BUCKETS = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1.0,
)


class Metrics:
    """One instance per process (tests make their own registry)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry if registry is not None else CollectorRegistry()
        # The standard process_* (CPU, memory, open fds) and python_info series the usual
        # Grafana panels read; they cost nothing until a scrape.
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        p = "callwarden_"
        self.requests = Counter(
            p + "requests",
            "Calls handled, by outcome (ok; denied: the proxy refused; error: the proxy could not "
            "complete it; upstream_error: the upstream answered 5xx or broke mid-answer) and "
            "error code.",
            ["route", "kind", "outcome", "error_code"],
            registry=r,
        )
        self.request_duration = Histogram(
            p + "request_duration_seconds",
            "Whole call as the caller sees it.",
            ["route", "kind"],
            buckets=BUCKETS,
            registry=r,
        )
        self.upstream_duration = Histogram(
            p + "upstream_duration_seconds",
            "Upstream exchange, all attempts included.",
            ["route", "kind"],
            buckets=BUCKETS,
            registry=r,
        )
        self.proxy_overhead = Histogram(
            p + "proxy_overhead_seconds",
            "Time spent in CallWarden itself, upstream excluded.",
            ["route", "kind"],
            buckets=OVERHEAD_BUCKETS,
            registry=r,
        )
        self.denials = Counter(
            p + "denials",
            "Calls refused by a guard.",
            ["route", "guard", "error_code"],
            registry=r,
        )
        self.audit_would_deny = Counter(
            p + "audit_would_deny",
            "Denials that audit mode let through.",
            ["route", "guard", "error_code"],
            registry=r,
        )
        self.rate_limited = Counter(
            p + "rate_limited",
            "Calls refused by a rate limit or concurrency cap.",
            ["route"],
            registry=r,
        )
        self.breaker_state = Gauge(
            p + "breaker_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
            ["route"],
            registry=r,
        )
        self.breaker_transitions = Counter(
            p + "breaker_transitions",
            "Circuit breaker state changes, by new state.",
            ["route", "state"],
            registry=r,
        )
        self.retries = Counter(p + "retries", "Upstream retries.", ["route"], registry=r)
        self.timeouts = Counter(
            p + "timeouts",
            "Calls that timed out, by phase (route = the route's own timeout).",
            ["route", "phase"],
            registry=r,
        )
        self.inflight = Gauge(
            p + "inflight_requests",
            "Calls in flight.",
            ["route"],
            registry=r,
        )
        self.sql_inspection = Histogram(
            p + "sql_inspection_seconds",
            "SQL guard time per statement (parse, judge, rewrite).",
            ["route"],
            buckets=OVERHEAD_BUCKETS,
            registry=r,
        )
        self.budget_remaining = Histogram(
            p + "budget_remaining_seconds",
            "Caller's remaining budget on arrival.",
            ["route"],
            buckets=BUCKETS,
            registry=r,
        )
        self.rules_reloads = Counter(
            p + "rules_reloads",
            "Rules loads, by result (ok, error).",
            ["result"],
            registry=r,
        )
        self.rules_info = Gauge(
            p + "rules_info",
            "Digest of the rules in force (value 1).",
            ["digest"],
            registry=r,
        )
        self.credential_findings = Counter(
            p + "credential_findings",
            "Plaintext credentials seen in calls.",
            ["route", "kind", "action"],
            registry=r,
        )
        self.secrets_masked = Counter(
            p + "secrets_masked",
            "Secrets masked in upstream responses.",
            ["route"],
            registry=r,
        )
        self.filter_refusals = Counter(
            p + "filter_refusals",
            "Upstream answers refused because a response filter the route asked for could "
            "not run on them (filter: mask, row_cap, tools_list; reason: encoding, "
            "undecodable, too_large, unreadable, partial).",
            ["route", "filter", "reason"],
            registry=r,
        )
        self.pg_catalog_reads = Counter(
            p + "pg_catalog_reads",
            "Reads of an upstream's user functions by a postgres route (outcome: ok, "
            "error, timeout, too_large; on failure unknown functions are refused).",
            ["route", "outcome"],
            registry=r,
        )
        self.mcp_tool_calls = Counter(
            p + "mcp_tool_calls",
            "MCP tools/call requests.",
            ["route", "tool", "outcome"],
            registry=r,
        )
        self.mcp_tool_duration = Histogram(
            p + "mcp_tool_duration_seconds",
            "MCP tools/call duration.",
            ["route", "tool"],
            buckets=BUCKETS,
            registry=r,
        )
        self.tool_integrity = Counter(
            p + "tool_integrity_events",
            "Tool definition changes and schema failures.",
            ["route", "tool", "event"],
            registry=r,
        )
        self.approvals_pending = Gauge(
            p + "approvals_pending",
            "Approvals waiting for a person (in this process's store view).",
            ["route"],
            registry=r,
        )
        self.approval_decisions = Counter(
            p + "approval_decisions",
            "Approvals decided, by result (approved, denied, expired).",
            ["route", "result"],
            registry=r,
        )
        self.approval_decision_seconds = Histogram(
            p + "approval_decision_seconds",
            "Time from an approval's creation to its decision (or expiry).",
            ["route"],
            buckets=(1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0),
            registry=r,
        )
        self.approval_notify_failures = Counter(
            p + "approval_notify_failures",
            "Approval webhooks that could not be delivered.",
            ["route"],
            registry=r,
        )
        self.tenant_requests = Counter(
            p + "tenant_requests",
            "Calls per tenant, on routes that opt in (capped).",
            ["route", "tenant", "outcome"],
            registry=r,
        )
