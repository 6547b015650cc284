"""A secret the rules inject but nobody can resolve is found at start: /readyz says which
reference (never a value) and `validate --resolve` refuses the rules. A call never
discovers it as a 500."""

from __future__ import annotations

import pytest

from proxy.cli import main

VAR = "CALLWARDEN_TEST_READINESS_TOKEN"


def crm(url: str) -> dict:
    return {
        "name": "crm", "match": {"path_prefix": "/crm"}, "upstream": url,
        "credentials": {"inject": {"Authorization": f"Bearer ${{env:{VAR}}}"}},
    }


async def test_readyz_names_the_missing_reference_until_it_resolves(
    upstream, write_rules, start_proxy, monkeypatch
):
    _, url = upstream
    monkeypatch.delenv(VAR, raising=False)
    px = await start_proxy(write_rules([crm(url)]))
    async with px.session.get(px.admin + "/readyz") as r:
        body = await r.json()
        assert r.status == 503 and body["ready"] is False
        assert body["secrets"] == [f"secret ${{env:{VAR}}} is not set"]
    monkeypatch.setenv(VAR, "s3cr3t-value-for-readiness")
    px.state.secrets_checked = 0.0  # the next probe re-resolves (normally every 5 s)
    async with px.session.get(px.admin + "/readyz") as r:
        body = await r.json()
        assert r.status == 200 and body["ready"] is True and "secrets" not in body
        assert "s3cr3t" not in str(body)


def test_validate_resolve(write_rules, monkeypatch, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(write_rules([crm("http://127.0.0.1:9")]))
    monkeypatch.delenv(VAR, raising=False)
    assert main(["validate", path]) == 0  # the shape is fine
    assert main(["validate", "--resolve", path]) == 1
    assert f"secret: secret ${{env:{VAR}}} is not set" in capsys.readouterr().out
    monkeypatch.setenv(VAR, "s3cr3t-value-for-readiness")
    assert main(["validate", "--resolve", path]) == 0
    assert "s3cr3t" not in capsys.readouterr().out
