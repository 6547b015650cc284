"""The Helm chart, linted and rendered with Helm's Go SDK (helm-python-sdk, no helm binary,
no cluster) in each mode, and every manifest validated against the Kubernetes schemas."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from proxy.config.schema import Rules
from tests.deploy.deploy_assets import ALERTS, CHART, DASHBOARD

CRD_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
KUBE_VERSIONS = ("1.25.0", kubernetes_validate.latest_version() + ".0")
NATIVE_SIDECAR_MIN = "1.29.0"

RULES_A = {"version": 1, "routes": [{"name": "crm", "kind": "http",
                                     "match": {"path_prefix": "/crm"},
                                     "upstream": "http://crm.internal:8080"}]}
RULES_B = {"version": 1, "mode": "audit", "routes": RULES_A["routes"]}
SECRET = {"name": "crm", "secretName": "crm-api", "mountPath": "/var/run/secrets/crm"}

# case -> (values, kinds rendered: kind -> count)
CASES: dict[str, tuple[dict[str, Any], dict[str, int]]] = {
    "default": ({}, {"ConfigMap": 2}),
    "sidecar-example": (
        {"example": {"enabled": True}, "rules": RULES_A, "secretMounts": [SECRET],
         "metrics": {"podMonitor": {"enabled": True}}, "prometheusRule": {"enabled": True}},
        {"ConfigMap": 2, "Deployment": 1, "ServiceAccount": 1, "PodMonitor": 1,
         "PrometheusRule": 1},
    ),
    "sidecar-native": (
        {"example": {"enabled": True}, "sidecar": {"native": True}},
        {"ConfigMap": 2, "Deployment": 1, "ServiceAccount": 1},
    ),
    "standalone-hpa-pdb": (
        {"mode": "standalone", "rules": RULES_A, "secretMounts": [SECRET],
         "standalone": {"autoscaling": {"enabled": True, "targetMemoryUtilizationPercentage": 80}},
         "metrics": {"serviceMonitor": {"enabled": True}}},
        {"ConfigMap": 2, "Deployment": 1, "Service": 1, "PodDisruptionBudget": 1,
         "HorizontalPodAutoscaler": 1, "ServiceAccount": 1, "ServiceMonitor": 1},
    ),
    "standalone-existing-configmap": (
        {"mode": "standalone", "existingConfigMap": "team-rules",
         "standalone": {"podDisruptionBudget": {"maxUnavailable": 1}}},
        {"ConfigMap": 1, "Deployment": 1, "Service": 1, "PodDisruptionBudget": 1,
         "ServiceAccount": 1},
    ),
    "monitoring-all": (
        {"mode": "standalone", "hotReload": True, "metrics": {
            "serviceMonitor": {"enabled": True, "labels": {"release": "kps"}},
            "podMonitor": {"enabled": True}},
         "prometheusRule": {"enabled": True, "labels": {"release": "kps"}},
         "dashboard": {"namespace": "grafana", "annotations": {"grafana_folder": "CallWarden"}}},
        {"ConfigMap": 2, "Deployment": 1, "Service": 1, "PodDisruptionBudget": 1,
         "ServiceAccount": 1, "ServiceMonitor": 1, "PodMonitor": 1, "PrometheusRule": 1},
    ),
    "monitoring-off": (
        {"dashboard": {"enabled": False}, "serviceAccount": {"create": False}},
        {"ConfigMap": 1},
    ),
}


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def render(chart: helm.Chart, values: dict[str, Any]) -> list[dict[str, Any]]:
    out = chart.render(values, name="shop", namespace="agents", is_install=True)
    docs = []
    for path, text in sorted(out.items()):
        if path.endswith("NOTES.txt"):
            continue
        docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def proxy_container(pod: dict[str, Any]) -> dict[str, Any]:
    containers = pod.get("initContainers", []) + pod["containers"]
    (found,) = [c for c in containers if c["name"] == "callwarden"]
    return found


def env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container["env"]}


@pytest.mark.parametrize("case", CASES)
def test_lint_strict(case: str) -> None:
    report = helm.lint(CHART, CASES[case][0], strict=True, namespace="agents")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("case", CASES)
def test_rendered_kinds(chart: helm.Chart, case: str) -> None:
    values, expected = CASES[case]
    docs = render(chart, values)
    kinds: dict[str, int] = {}
    for doc in docs:
        kinds[doc["kind"]] = kinds.get(doc["kind"], 0) + 1
    assert kinds == expected


@pytest.mark.parametrize("case", CASES)
def test_manifests_validate(chart: helm.Chart, case: str) -> None:
    versions = (NATIVE_SIDECAR_MIN, KUBE_VERSIONS[1]) if "native" in case else KUBE_VERSIONS
    for doc in render(chart, CASES[case][0]):
        assert doc["metadata"]["name"] and len(doc["metadata"]["name"]) <= 63
        if doc["kind"] in CRD_KINDS:
            check_crd_shape(doc)
            continue
        for version in versions:
            kubernetes_validate.validate(doc, version, strict=True)


def check_crd_shape(doc: dict[str, Any]) -> None:
    """No schema for prometheus-operator CRDs here: check the fields the operator needs."""
    assert doc["apiVersion"] == "monitoring.coreos.com/v1"
    spec = doc["spec"]
    if doc["kind"] == "PrometheusRule":
        assert spec == yaml.safe_load(ALERTS.read_text())
        return
    endpoints = spec["endpoints" if doc["kind"] == "ServiceMonitor" else "podMetricsEndpoints"]
    assert endpoints == [{"port": "cw-admin", "path": "/metrics", "interval": "15s",
                          "scrapeTimeout": "10s"}]
    assert spec["selector"]["matchLabels"]
    assert spec["namespaceSelector"] == {"matchNames": ["agents"]}


def workloads(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d["spec"]["template"] for d in by_kind(docs, "Deployment")]


@pytest.mark.parametrize("case", [c for c, (_, kinds) in CASES.items() if "Deployment" in kinds])
def test_proxy_container_hardening(chart: helm.Chart, case: str) -> None:
    templates = workloads(render(chart, CASES[case][0]))
    assert templates
    for template in templates:
        pod = template["spec"]
        sc = proxy_container(pod)["securityContext"]
        assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 10001
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        container = proxy_container(pod)
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        assert mounts["/tmp"]["name"] == "callwarden-tmp"
        assert mounts["/etc/callwarden/rules"]["readOnly"] is True
        assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
        probes = {k: container[k]["httpGet"] for k in ("livenessProbe", "readinessProbe")}
        assert probes == {"livenessProbe": {"path": "/healthz", "port": "cw-admin"},
                          "readinessProbe": {"path": "/readyz", "port": "cw-admin"}}
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"cw-proxy": 15001, "cw-admin": 15090}


@pytest.mark.parametrize(
    ("values", "listen"),
    [
        ({"example": {"enabled": True}}, "127.0.0.1:15001"),
        ({"mode": "standalone"}, "0.0.0.0:15001"),
        ({"mode": "standalone", "proxy": {"listenAddress": "127.0.0.1", "port": 8080}},
         "127.0.0.1:8080"),
        ({"example": {"enabled": True}, "proxy": {"listenAddress": "0.0.0.0"}}, "0.0.0.0:15001"),
    ],
)
def test_listen_address_by_mode(chart: helm.Chart, values: dict[str, Any], listen: str) -> None:
    (template,) = workloads(render(chart, values))
    variables = env(proxy_container(template["spec"]))
    assert variables["CALLWARDEN_LISTEN"] == listen
    assert variables["CALLWARDEN_ADMIN"] == "0.0.0.0:15090"
    assert variables["CALLWARDEN_RULES"] == "/etc/callwarden/rules"


def checksum(chart: helm.Chart, values: dict[str, Any]) -> str | None:
    (template,) = workloads(render(chart, {"mode": "standalone", **values}))
    return template["metadata"]["annotations"].get("checksum/callwarden-rules")


def test_checksum_rolls_pods_when_rules_change(chart: helm.Chart) -> None:
    a, a_again, b = (checksum(chart, {"rules": r}) for r in (RULES_A, RULES_A, RULES_B))
    assert a and b and a == a_again and a != b
    assert checksum(chart, {"rules": RULES_A, "hotReload": True}) is None
    assert checksum(chart, {"existingConfigMap": "team-rules"}) is None


@pytest.mark.parametrize(
    "rules", [RULES_A, yaml.safe_dump(RULES_B), {"version": 1, "routes": []}], ids=str
)
def test_rules_configmap_holds_valid_rules(chart: helm.Chart, rules: Any) -> None:
    docs = render(chart, {"rules": rules})
    (cm,) = [d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-rules")]
    loaded = yaml.safe_load(cm["data"]["rules.yaml"])
    assert loaded == (yaml.safe_load(rules) if isinstance(rules, str) else rules)
    Rules.model_validate(loaded)


def test_default_rules_are_valid(chart: helm.Chart) -> None:
    Rules.model_validate(chart.values["rules"])


def test_existing_configmap_is_mounted(chart: helm.Chart) -> None:
    docs = render(chart, {"mode": "standalone", "existingConfigMap": "team-rules"})
    (template,) = workloads(docs)
    volumes = {v["name"]: v for v in template["spec"]["volumes"]}
    assert volumes["callwarden-rules"]["configMap"]["name"] == "team-rules"
    assert not [d for d in by_kind(docs, "ConfigMap") if "rules" in d["metadata"]["name"]]


def test_secrets_mounted_as_files(chart: helm.Chart) -> None:
    secret = {**SECRET, "items": [{"key": "token", "path": "token"}]}
    (template,) = workloads(render(chart, {"mode": "standalone", "secretMounts": [secret]}))
    volumes = {v["name"]: v for v in template["spec"]["volumes"]}
    assert volumes["callwarden-secret-crm"]["secret"] == {
        "secretName": "crm-api", "defaultMode": 0o444, "items": secret["items"]}
    mounts = {m["name"]: m for m in proxy_container(template["spec"])["volumeMounts"]}
    assert mounts["callwarden-secret-crm"] == {
        "name": "callwarden-secret-crm", "mountPath": "/var/run/secrets/crm", "readOnly": True}


def test_native_sidecar_is_an_init_container(chart: helm.Chart) -> None:
    (template,) = workloads(render(chart, {"example": {"enabled": True},
                                           "sidecar": {"native": True}}))
    (init,) = template["spec"]["initContainers"]
    assert init["name"] == "callwarden" and init["restartPolicy"] == "Always"
    assert [c["name"] for c in template["spec"]["containers"]] == ["orchestrator"]


def test_standalone_scaling(chart: helm.Chart) -> None:
    fixed = by_kind(render(chart, {"mode": "standalone"}), "Deployment")[0]
    assert fixed["spec"]["replicas"] == 2
    docs = render(chart, CASES["standalone-hpa-pdb"][0])
    assert "replicas" not in by_kind(docs, "Deployment")[0]["spec"]
    (hpa,) = by_kind(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "shop-callwarden"
    assert {m["resource"]["name"] for m in hpa["spec"]["metrics"]} == {"cpu", "memory"}
    (service,) = by_kind(docs, "Service")
    deployment = by_kind(docs, "Deployment")[0]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    (pdb,) = by_kind(docs, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_podmonitor_selects_sidecar_pods(chart: helm.Chart) -> None:
    docs = render(chart, CASES["sidecar-example"][0])
    (monitor,) = by_kind(docs, "PodMonitor")
    (template,) = workloads(docs)
    selected = monitor["spec"]["selector"]["matchLabels"]
    assert selected.items() <= template["metadata"]["labels"].items()


def test_dashboard_configmap(chart: helm.Chart) -> None:
    docs = render(chart, CASES["monitoring-all"][0])
    (cm,) = [d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("dashboard")]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["namespace"] == "grafana"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "CallWarden"}
    assert json.loads(cm["data"]["callwarden.json"]) == json.loads(DASHBOARD.read_text())


def test_monitoring_labels(chart: helm.Chart) -> None:
    docs = render(chart, CASES["monitoring-all"][0])
    for kind in ("ServiceMonitor", "PrometheusRule"):
        assert by_kind(docs, kind)[0]["metadata"]["labels"]["release"] == "kps"


def test_servicemonitor_needs_standalone(chart: helm.Chart) -> None:
    docs = render(chart, {"metrics": {"serviceMonitor": {"enabled": True}}})
    assert by_kind(docs, "ServiceMonitor") == []


PARENT_TEMPLATE = """\
{{- $cw := dict "root" $ "values" .Values.callwarden }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-agent
spec:
  selector:
    matchLabels: {app: agent}
  template:
    metadata:
      labels:
        app: agent
        {{- include "callwarden.sidecarPodLabels" $cw | nindent 8 }}
      annotations:
        {{- include "callwarden.sidecarPodAnnotations" $cw | nindent 8 }}
    spec:
      containers:
        - name: agent
          image: example/agent:1.0.0
        {{- include "callwarden.sidecar" $cw | nindent 8 }}
      volumes:
        {{- include "callwarden.sidecarVolumes" $cw | nindent 8 }}
"""


def test_named_templates_from_a_parent_chart(tmp_path: Path) -> None:
    """An orchestrator chart with callwarden as a dependency adds the sidecar to its pods; the
    volume points at the ConfigMap the subchart renders."""
    parent = tmp_path / "agent"
    (parent / "templates").mkdir(parents=True)
    (parent / "Chart.yaml").write_text(yaml.safe_dump({
        "apiVersion": "v2", "name": "agent", "version": "1.0.0",
        "dependencies": [{"name": "callwarden", "version": "0.1.0"}]}))
    (parent / "values.yaml").write_text(yaml.safe_dump({"callwarden": {"rules": RULES_A}}))
    (parent / "templates" / "deployment.yaml").write_text(PARENT_TEMPLATE)
    shutil.copytree(CHART, parent / "charts" / "callwarden")
    with helm.Chart.load(parent) as loaded:
        docs = render(loaded, {})
    (deployment,) = by_kind(docs, "Deployment")
    (rules_cm,) = [d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("rules")]
    assert deployment["metadata"]["name"] == "shop-agent"
    for version in KUBE_VERSIONS:
        kubernetes_validate.validate(deployment, version, strict=True)
    pod = deployment["spec"]["template"]
    assert [c["name"] for c in pod["spec"]["containers"]] == ["agent", "callwarden"]
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["callwarden-rules"]["configMap"]["name"] == rules_cm["metadata"]["name"]
    assert yaml.safe_load(rules_cm["data"]["rules.yaml"]) == RULES_A
    assert pod["metadata"]["annotations"]["checksum/callwarden-rules"]
    assert env(proxy_container(pod["spec"]))["CALLWARDEN_LISTEN"] == "127.0.0.1:15001"


def test_standalone_rules_name_the_service_as_a_proxy_host(chart: helm.Chart) -> None:
    """DNS-rebinding protection: callers reach a standalone gateway by its Service names,
    so each is in listen.allowed_hosts (with the user's own), and the rules stay valid."""
    rules = {"version": 1, "listen": {"allowed_hosts": ["gw.example.com"]}}
    docs = render(chart, {"mode": "standalone", "rules": rules})
    (cm,) = [d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-rules")]
    loaded = yaml.safe_load(cm["data"]["rules.yaml"])
    assert loaded["listen"]["allowed_hosts"] == [
        "gw.example.com",
        "shop-callwarden",
        "shop-callwarden.agents",
        "shop-callwarden.agents.svc",
        "shop-callwarden.agents.svc.cluster.local",
    ]
    Rules.model_validate(loaded)
    # sidecars are reached on loopback: nothing added
    docs = render(chart, {"rules": rules})
    (cm,) = [d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-rules")]
    assert yaml.safe_load(cm["data"]["rules.yaml"]) == rules


def test_standalone_requires_verified_identity_by_default(chart: helm.Chart) -> None:
    """A shared gateway is reachable by every pod: its proxy must refuse rules that take
    X-Caller-Role on trust, unless the operator opts out in so many words."""

    def variables(values: dict[str, Any]) -> dict[str, str]:
        (template,) = workloads(render(chart, values))
        return env(proxy_container(template["spec"]))

    assert variables({"mode": "standalone"}).get("CALLWARDEN_REQUIRE_IDENTITY") == "1"
    off = {"mode": "standalone", "standalone": {"requireVerifiedIdentity": False}}
    assert "CALLWARDEN_REQUIRE_IDENTITY" not in variables(off)
    assert "CALLWARDEN_REQUIRE_IDENTITY" not in variables({"example": {"enabled": True}})
