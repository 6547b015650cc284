"""Shared by the deploy tests: the metric contract, and the PromQL expressions of the Grafana
dashboard and the alert rules, read from the files the chart ships."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "callwarden"
DASHBOARD = CHART / "dashboards" / "callwarden.json"
ALERTS = CHART / "alerts" / "callwarden-rules.yaml"

# name -> (type, labels): the contract of SPEC.md and issue 5 that dashboards and alerts use.
CONTRACT: dict[str, tuple[str, frozenset[str]]] = {
    name: (kind, frozenset(labels.split()))
    for name, kind, labels in (
        ("callwarden_requests_total", "counter", "route kind outcome error_code"),
        ("callwarden_request_duration_seconds", "histogram", "route kind"),
        ("callwarden_upstream_duration_seconds", "histogram", "route kind"),
        ("callwarden_proxy_overhead_seconds", "histogram", "route kind"),
        ("callwarden_denials_total", "counter", "route guard error_code"),
        ("callwarden_audit_would_deny_total", "counter", "route guard error_code"),
        ("callwarden_rate_limited_total", "counter", "route"),
        ("callwarden_breaker_state", "gauge", "route"),
        ("callwarden_breaker_transitions_total", "counter", "route state"),
        ("callwarden_retries_total", "counter", "route"),
        ("callwarden_timeouts_total", "counter", "route phase"),
        ("callwarden_inflight_requests", "gauge", "route"),
        ("callwarden_sql_inspection_seconds", "histogram", "route"),
        ("callwarden_budget_remaining_seconds", "histogram", "route"),
        ("callwarden_rules_reloads_total", "counter", "result"),
        ("callwarden_rules_info", "gauge", "digest"),
        ("callwarden_credential_findings_total", "counter", "route kind action"),
        ("callwarden_secrets_masked_total", "counter", "route"),
        ("callwarden_mcp_tool_calls_total", "counter", "route tool outcome"),
        ("callwarden_mcp_tool_duration_seconds", "histogram", "route tool"),
        ("callwarden_approvals_pending", "gauge", "route"),
        ("callwarden_approval_decisions_total", "counter", "route result"),
        ("callwarden_approval_decision_seconds", "histogram", "route"),
        # prometheus_client's standard process collector
        ("process_cpu_seconds_total", "counter", ""),
        ("process_resident_memory_bytes", "gauge", ""),
        ("process_open_fds", "gauge", ""),
        ("process_max_fds", "gauge", ""),
    )
}
# Added by Prometheus service discovery / scraping, valid on every series.
TARGET_LABELS = frozenset({"namespace", "pod", "job", "instance"})

_METRIC = re.compile(r"\b(?:callwarden|process)_[a-z0-9_]+")
_SELECTOR = re.compile(r"\b((?:callwarden|process)_[a-z0-9_]+)\s*\{([^}]*)\}")
_MATCHER_KEY = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
_HISTOGRAM_SUFFIX = re.compile(r"_(bucket|sum|count)$")


def load_dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def load_alert_groups() -> list[dict[str, Any]]:
    return yaml.safe_load(ALERTS.read_text())["groups"]


def graph_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Panels that draw data (rows flattened, row headers left out)."""
    out: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        if panel.get("type") == "row":
            out.extend(panel.get("panels", []))
        else:
            out.append(panel)
    return out


def dashboard_exprs(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) for every target, plus the template variables' queries."""
    exprs = [(p["title"], t["expr"]) for p in graph_panels(dashboard) for t in p["targets"]]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            exprs.append((f"variable {var['name']}", var["definition"]))
    return exprs


def rule_exprs(groups: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(record or alert name, PromQL) for every rule."""
    return [(r.get("record") or r["alert"], r["expr"]) for g in groups for r in g["rules"]]


def base_metric(name: str) -> str:
    """callwarden_x_seconds_bucket -> callwarden_x_seconds when x_seconds is a histogram."""
    stripped = _HISTOGRAM_SUFFIX.sub("", name)
    if stripped != name and CONTRACT.get(stripped, ("",))[0] == "histogram":
        return stripped
    return name


def metric_names(expr: str) -> set[str]:
    return {base_metric(m) for m in _METRIC.findall(expr)}


def selector_labels(expr: str) -> list[tuple[str, set[str]]]:
    """(base metric, label names matched in its {...} selector) for each selector in expr."""
    return [
        (base_metric(m.group(1)), set(_MATCHER_KEY.findall(m.group(2))))
        for m in _SELECTOR.finditer(expr)
    ]


def label_values_query(expr: str) -> str | None:
    """label_values(selector, label) -> the selector, for running a variable query."""
    m = re.fullmatch(r"\s*label_values\((.*),\s*([a-zA-Z_]+)\)\s*", expr, re.S)
    return m.group(1) if m else None


def substitute(expr: str, rate_interval: str = "15s") -> str:
    """Grafana variables -> values Prometheus accepts, as Grafana would send them with
    "All" selected."""
    for var in ("namespace", "pod", "route"):
        expr = expr.replace(f"${var}", ".*").replace(f"${{{var}}}", ".*")
    return expr.replace("$__rate_interval", rate_interval).replace("$__interval", "5s")
