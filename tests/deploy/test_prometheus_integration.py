"""The dashboard and alert rules against a real Prometheus (Debian package) scraping a real
`callwarden run` while traffic flows: every PromQL expression runs through the HTTP API, and
those the traffic must produce return data. This is how we know the dashboard works."""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from tests.deploy.deploy_assets import (
    ALERTS,
    dashboard_exprs,
    label_values_query,
    load_alert_groups,
    load_dashboard,
    metric_names,
    rule_exprs,
    substitute,
)

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
WAIT_S = 30.0
RATE_INTERVAL = "15s"
LABELS = {"namespace": "agents", "pod": "callwarden-0"}

# Metrics the traffic below must produce; an expression using only these must return data.
PRODUCED = {
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_open_fds",
    "process_max_fds",
    "callwarden_requests_total",
    "callwarden_request_duration_seconds",
    "callwarden_upstream_duration_seconds",
    "callwarden_proxy_overhead_seconds",
    "callwarden_denials_total",
    "callwarden_audit_would_deny_total",
    "callwarden_rate_limited_total",
    "callwarden_timeouts_total",
    "callwarden_retries_total",
    "callwarden_breaker_state",
    "callwarden_breaker_transitions_total",
    "callwarden_inflight_requests",
    "callwarden_budget_remaining_seconds",
    "callwarden_rules_info",
}
# Rule outputs the traffic must produce (the `down` route fails every call: fast burn fires).
RULES_WITH_DATA = {
    "callwarden:requests:rate5m",
    "callwarden:request_errors:ratio_rate5m",
    "callwarden:request_errors:ratio_rate1h",
    "callwarden:request_duration_seconds:p99_5m",
    "callwarden:proxy_overhead_seconds:p99_5m",
    "CallWardenErrorBudgetFastBurn",
}

DASH_EXPRS = dashboard_exprs(load_dashboard())
RULE_EXPRS = rule_exprs(load_alert_groups())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def wait_for(what: str, ok: Callable[[], bool], timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.25)


class Upstream(threading.Thread):
    """A loopback aiohttp backend in its own thread: /ok, /slow (past the route timeout),
    /fail (503)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.port = free_port()
        self.ready = threading.Event()
        self.loop = asyncio.new_event_loop()

    def run(self) -> None:
        async def ok(_: web.Request) -> web.Response:
            return web.json_response({"ok": True})

        async def slow(_: web.Request) -> web.Response:
            await asyncio.sleep(2)
            return web.json_response({"ok": True})

        async def fail(_: web.Request) -> web.Response:
            return web.json_response({"error": "down for maintenance"}, status=503)

        app = web.Application()
        app.router.add_get("/ok", ok)
        app.router.add_get("/slow", slow)
        app.router.add_get("/fail", fail)
        runner = web.AppRunner(app, access_log=None)
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(runner.setup())
        self.loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self.ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(runner.cleanup())

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.join(timeout=5)


def rules_for(upstream: int, closed: int) -> dict[str, Any]:
    up = f"http://127.0.0.1:{upstream}"

    def route(name: str, **extra: Any) -> dict[str, Any]:
        return {"name": name, "kind": "http", "match": {"path_prefix": f"/{name}"},
                "upstream": up, **extra}

    return {"version": 1, "mode": "enforce", "routes": [
        route("api", access={"roles": ["admin"]}, limits={"timeout_ms": 300}),
        route("flaky", limits={"retries": {"max": 1, "backoff_ms": 1, "max_backoff_ms": 5},
                               "breaker": {"failures": 3, "reset_after_s": 1}}),
        route("down", upstream=f"http://127.0.0.1:{closed}"),
        route("limited", limits={"rate": {"per_second": 1}}),
        route("shadow", mode="audit", access={"roles": ["admin"]}),
    ]}


def send_round(proxy: str) -> None:
    """Allowed, denied and erroring calls, one of each kind."""
    admin = {"X-Caller-Role": "admin"}
    for _ in range(3):
        http_get(f"{proxy}/api/ok", {**admin, "X-Request-Budget-Ms": "5000"})
    http_get(f"{proxy}/api/ok", {"X-Caller-Role": "guest"})  # PERMISSION_DENIED
    http_get(f"{proxy}/nowhere")  # POLICY_DENY
    http_get(f"{proxy}/api/slow", admin)  # TOOL_TIMEOUT (route phase)
    http_get(f"{proxy}/api/slow", {**admin, "X-Request-Budget-Ms": "100",
                                   "X-Orchestration-Phase": "execute"})  # EXECUTE_TIMEOUT
    http_get(f"{proxy}/down/ok")  # UPSTREAM_UNAVAILABLE
    for _ in range(2):
        http_get(f"{proxy}/flaky/fail")  # retries, then the breaker opens
    for _ in range(3):
        http_get(f"{proxy}/limited/ok")  # RATE_LIMITED after the first
    http_get(f"{proxy}/shadow/ok", {"X-Caller-Role": "guest"})  # audit: would deny


@dataclass(frozen=True)
class Stack:
    prometheus: str
    admin: str

    def query(self, expr: str) -> dict[str, Any]:
        url = f"{self.prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        status, body = http_get(url)
        assert body, f"no answer from Prometheus (HTTP {status})"
        return json.loads(body)

    def api(self, path: str) -> dict[str, Any]:
        status, body = http_get(f"{self.prometheus}{path}")
        assert status == 200, (status, body[:500])
        return json.loads(body)


def has_data(answer: dict[str, Any]) -> bool:
    data = answer.get("data", {})
    return answer.get("status") == "success" and bool(data.get("result"))


def finite(answer: dict[str, Any]) -> bool:
    """At least one sample is a number (histogram_quantile over no traffic gives NaN)."""
    result = answer["data"]["result"]
    samples = [r["value"][1] for r in result] if answer["data"]["resultType"] == "vector" else []
    return any(not math.isnan(float(v)) for v in samples) if samples else bool(result)


def must_have_data(expr: str) -> bool:
    names = metric_names(expr)
    return bool(names) and names <= PRODUCED


def prometheus_config(tmp: Path, admin_port: int) -> Path:
    """Scrape every second; the shipped rules with their group interval shortened to 1s."""
    groups = load_alert_groups()
    for group in groups:
        group["interval"] = "1s"
    rules = tmp / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": groups}))
    config = tmp / "prometheus.yml"
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "scrape_timeout": "900ms",
                   "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": [{"job_name": "callwarden", "static_configs": [
            {"targets": [f"127.0.0.1:{admin_port}"], "labels": LABELS}]}],
    }))
    return config


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not Path(PROMETHEUS).exists():
        pytest.skip("prometheus not installed (Debian package prometheus)")
    tmp = tmp_path_factory.mktemp("prom")
    upstream = Upstream()
    upstream.start()
    assert upstream.ready.wait(10)
    rules = tmp / "callwarden.yaml"
    rules.write_text(yaml.safe_dump(rules_for(upstream.port, free_port())))
    listen, admin_port, prom_port = free_port(), free_port(), free_port()
    exe = Path(sys.executable).parent / "callwarden"
    proxy = subprocess.Popen(
        [str(exe), "run", "--rules", str(rules), "--listen", f"127.0.0.1:{listen}",
         "--admin", f"127.0.0.1:{admin_port}"],
        stdout=subprocess.DEVNULL, stderr=(tmp / "callwarden.log").open("wb"))
    prometheus = subprocess.Popen(
        [PROMETHEUS, f"--config.file={prometheus_config(tmp, admin_port)}",
         f"--storage.tsdb.path={tmp / 'data'}", f"--web.listen-address=127.0.0.1:{prom_port}",
         "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=(tmp / "prometheus.log").open("wb"))
    stack = Stack(f"http://127.0.0.1:{prom_port}", f"http://127.0.0.1:{admin_port}")
    stopping = threading.Event()

    def traffic() -> None:
        while not stopping.is_set():
            send_round(f"http://127.0.0.1:{listen}")
            stopping.wait(0.2)

    sender = threading.Thread(target=traffic, daemon=True)
    try:
        def proxy_healthy() -> bool:
            assert proxy.poll() is None, (tmp / "callwarden.log").read_text()[-3000:]
            return http_get(f"{stack.admin}/healthz")[0] == 200

        wait_for("callwarden /healthz", proxy_healthy)
        sender.start()
        wait_for("Prometheus to scrape callwarden", lambda: has_data(stack.query(
            f'sum(rate(callwarden_requests_total[{RATE_INTERVAL}])) > 0')))
        core = [e for _, e in DASH_EXPRS if must_have_data(e) and not label_values_query(e)]
        core += [e for name, e in RULE_EXPRS if name in RULES_WITH_DATA]
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            if all(has_data(stack.query(substitute(e, RATE_INTERVAL))) for e in core):
                break
            time.sleep(0.5)
        yield stack
    finally:
        stopping.set()
        if sender.is_alive():
            sender.join(timeout=10)
        stop(prometheus)
        stop(proxy)
        upstream.stop()


@pytest.mark.parametrize(("panel", "expr"), DASH_EXPRS, ids=[p for p, _ in DASH_EXPRS])
def test_dashboard_expression(stack: Stack, panel: str, expr: str) -> None:
    selector = label_values_query(expr)
    if selector is not None:  # a template variable: what Grafana asks for
        label = expr.rstrip().rstrip(")").rsplit(",", 1)[1].strip()
        answer = stack.api(f"/api/v1/label/{label}/values?" + urllib.parse.urlencode(
            {"match[]": substitute(selector)}))
        assert answer["status"] == "success"
        expected = {"namespace": LABELS["namespace"], "pod": LABELS["pod"], "route": "api"}
        assert expected[label] in answer["data"], (label, answer["data"])
        return
    answer = stack.query(substitute(expr, RATE_INTERVAL))
    assert answer["status"] == "success", answer
    if must_have_data(expr):
        assert has_data(answer), f"{panel}: no data for {substitute(expr, RATE_INTERVAL)}"
        assert finite(answer), f"{panel}: only NaN for {expr}"


@pytest.mark.parametrize(("rule", "expr"), RULE_EXPRS, ids=[r for r, _ in RULE_EXPRS])
def test_rule_expression(stack: Stack, rule: str, expr: str) -> None:
    answer = stack.query(expr)
    assert answer["status"] == "success", answer
    if rule in RULES_WITH_DATA:
        assert has_data(answer), f"{rule}: no data"


def test_prometheus_evaluates_the_rules_without_errors(stack: Stack) -> None:
    groups = stack.api("/api/v1/rules")["data"]["groups"]
    loaded = {r["name"]: r for g in groups for r in g["rules"]}
    assert set(loaded) == {name for name, _ in RULE_EXPRS}
    for name, rule in loaded.items():
        assert rule["health"] in {"ok", "unknown"}, (name, rule.get("lastError"))
    recorded = stack.query("callwarden:requests:rate5m")
    assert has_data(recorded), "recording rules produced no series"

    def burning() -> set[str]:  # pending or firing
        alerts = stack.api("/api/v1/alerts")["data"]["alerts"]
        return {a["labels"]["route"] for a in alerts
                if a["labels"]["alertname"] == "CallWardenErrorBudgetFastBurn"}

    # Rules are evaluated on their own interval: wait (bounded) for the first evaluation
    # that sees the failing route, rather than racing it.
    wait_for("the fast-burn alert for route 'down'", lambda: "down" in burning())
    assert "shadow" not in burning(), "audit-mode denials are not errors"


def test_scraped_series_carry_discovery_labels(stack: Stack) -> None:
    answer = stack.query('callwarden_rules_info{namespace="agents", pod="callwarden-0"}')
    assert has_data(answer)
    assert ALERTS.exists()
