"""The metric set: Prometheus naming conventions (promtool), tenant label opt-in with a cap."""

from __future__ import annotations

import shutil
import subprocess

import pytest


async def test_promtool_check_metrics_is_clean(upstream, write_rules, start_proxy):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian package prometheus) not installed")
    _up, url = upstream
    px = await start_proxy(
        write_rules(
            [
                {
                    "name": "api",
                    "match": {"path_prefix": "/api"},
                    "upstream": url,
                    "access": {"roles": ["a"]},
                }
            ]
        )
    )
    for role in ("a", "b"):
        async with px.session.get(px.url + "/api/x", headers={"X-Caller-Role": role}):
            pass
    async with px.session.get(px.admin + "/metrics") as r:
        text = await r.text()
    res = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert res.returncode == 0 and not res.stdout.strip() and not res.stderr.strip(), (
        res.stdout + res.stderr
    )


async def test_tenant_label_only_where_opted_in_and_capped(upstream, write_rules, start_proxy):
    _up, url = upstream
    px = await start_proxy(
        write_rules(
            [
                {
                    "name": "labelled",
                    "match": {"path_prefix": "/l"},
                    "upstream": url,
                    "tenant": {"label": True},
                },
                {"name": "plain", "match": {"path_prefix": "/p"}, "upstream": url, "tenant": {}},
            ],
            observability={"tenant_label_cap": 2},
        )
    )
    for tenant in ("t1", "t2", "t3", "t4"):
        for prefix in ("/l", "/p"):
            async with px.session.get(px.url + prefix + "/x", headers={"X-Tenant-ID": tenant}) as r:
                assert r.status == 200
    m = px.metric
    assert m("callwarden_tenant_requests_total", route="labelled", tenant="t1", outcome="ok") == 1
    assert m("callwarden_tenant_requests_total", route="labelled", tenant="t2", outcome="ok") == 1
    assert (
        m("callwarden_tenant_requests_total", route="labelled", tenant="other", outcome="ok") == 2
    )
    assert m("callwarden_tenant_requests_total", route="plain", tenant="t1", outcome="ok") == 0
