"""Static checks of the Grafana dashboard and the alert rules the chart ships: shape, the
metric contract, and `promtool check rules`. The expressions are executed against a real
Prometheus in test_prometheus_integration.py."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.deploy.deploy_assets import (
    ALERTS,
    CONTRACT,
    TARGET_LABELS,
    dashboard_exprs,
    graph_panels,
    load_alert_groups,
    load_dashboard,
    metric_names,
    rule_exprs,
    selector_labels,
)

DASH = load_dashboard()
GROUPS = load_alert_groups()
EXPRS = dashboard_exprs(DASH) + rule_exprs(GROUPS)


def test_dashboard_identity_and_variables() -> None:
    assert DASH["uid"] == "callwarden"
    assert DASH["title"] == "CallWarden"
    variables = {v["name"]: v for v in DASH["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("namespace", "pod", "route"):
        var = variables[name]
        assert var["type"] == "query"
        assert var["definition"].startswith("label_values(")
        assert var["definition"].rstrip(")").endswith(name)
        assert var["includeAll"] and var["multi"] and var["allValue"] == ".*"


def test_every_panel_has_datasource_and_targets() -> None:
    ids = set()
    for panel in graph_panels(DASH):
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"]["uid"] == "${datasource}"
        assert panel["id"] not in ids
        ids.add(panel["id"])
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24


PANELS_REQUIRED = {
    "request rate": {"callwarden_requests_total"},
    "latency p50 / p95 / p99": {"callwarden_request_duration_seconds"},
    "proxy overhead": {"callwarden_proxy_overhead_seconds"},
    "by code": {"callwarden_requests_total"},
    "denials by guard": {"callwarden_denials_total"},
    "rate limited": {"callwarden_rate_limited_total"},
    "breaker state": {"callwarden_breaker_state"},
    "timeouts by phase": {"callwarden_timeouts_total"},
    "retries": {"callwarden_retries_total"},
    "in-flight": {"callwarden_inflight_requests"},
    "sql inspection": {"callwarden_sql_inspection_seconds"},
    "tool calls": {"callwarden_mcp_tool_calls_total"},
    "tool latency": {"callwarden_mcp_tool_duration_seconds"},
}


@pytest.mark.parametrize("title_part", sorted(PANELS_REQUIRED))
def test_required_panel_present(title_part: str) -> None:
    matches = [p for p in graph_panels(DASH) if title_part in p["title"].lower()]
    assert matches, f"no panel titled like {title_part!r}"
    used = set().union(*(metric_names(t["expr"]) for p in matches for t in p["targets"]))
    assert PANELS_REQUIRED[title_part] <= used


def test_panels_filter_by_template_variables() -> None:
    """Every panel query honours namespace and pod (and route where the metric has it)."""
    for panel in graph_panels(DASH):
        for target in panel["targets"]:
            for metric, labels in selector_labels(target["expr"]):
                assert {"namespace", "pod"} <= labels, (panel["title"], metric)
                if "route" in CONTRACT[metric][1]:
                    assert "route" in labels, (panel["title"], metric)


@pytest.mark.parametrize(("where", "expr"), EXPRS, ids=[w for w, _ in EXPRS])
def test_expressions_use_contract_metrics_and_labels(where: str, expr: str) -> None:
    names = metric_names(expr)
    assert names or "callwarden:" in expr, where
    unknown = names - CONTRACT.keys()
    assert not unknown, f"{where}: metrics outside the contract {unknown}"
    for metric, labels in selector_labels(expr):
        allowed = CONTRACT[metric][1] | TARGET_LABELS | {"le"}
        assert labels <= allowed, f"{where}: {metric} has no label {labels - allowed}"
    grouped = set()
    for clause in re.findall(r"\bby\s*\(([^)]*)\)", expr):
        grouped |= {label.strip() for label in clause.split(",") if label.strip()}
    known = set().union(*(CONTRACT[m][1] for m in names), TARGET_LABELS, {"le"})
    assert grouped <= known, f"{where}: grouping by unknown labels {grouped - known}"


def test_histogram_queries_use_buckets_and_le() -> None:
    for where, expr in EXPRS:
        if "histogram_quantile" in expr:
            assert "_bucket" in expr and re.search(r"by \([^)]*\ble\b", expr), where


def test_dashboard_covers_every_contract_metric() -> None:
    used = set().union(*(metric_names(e) for _, e in dashboard_exprs(DASH)))
    assert used == set(CONTRACT)


ALERTS_REQUIRED = {
    "CallWardenErrorBudgetFastBurn",
    "CallWardenErrorBudgetSlowBurn",
    "CallWardenHighLatencyP99",
    "CallWardenCircuitBreakerOpen",
    "CallWardenRulesReloadFailing",
}


def test_alerts_shape() -> None:
    alerts = {r["alert"]: r for g in GROUPS for r in g["rules"] if "alert" in r}
    assert alerts.keys() >= ALERTS_REQUIRED
    records = {r["record"] for g in GROUPS for r in g["rules"] if "record" in r}
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        assert re.fullmatch(r"\d+[smh]", rule.get("for", "0s")), name
        for used in re.findall(r"\bcallwarden:[a-z0-9_:]+", rule["expr"]):
            assert used in records, f"{name} uses unknown recording rule {used}"
    for record in records:
        assert re.fullmatch(r"callwarden:[a-z0-9_]+:[a-z0-9_]+", record), record


def test_promtool_check_rules() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus)")
    proc = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout
