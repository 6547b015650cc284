"""CALLWARDEN_REQUIRE_IDENTITY=1 (the chart's standalone mode): rules must verify tokens."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.config.load import RulesError, load_rules

ROUTE = {"name": "crm", "match": {"path_prefix": "/crm"}, "upstream": "http://127.0.0.1:1"}
JWT = {"jwt": {"issuer": "https://i", "audiences": ["a"], "jwks_file": "/x/jwks.json"}}


def test_required_identity(write_rules, monkeypatch: pytest.MonkeyPatch) -> None:
    plain: Path = write_rules([ROUTE])
    load_rules(plain)  # sidecar: headers are fine
    monkeypatch.setenv("CALLWARDEN_REQUIRE_IDENTITY", "1")
    with pytest.raises(RulesError, match=r"identity\.jwt: verified caller identity is required"):
        load_rules(plain)
    load_rules(write_rules([ROUTE], identity=JWT))
    opted_out = write_rules([{**ROUTE, "identity": "headers"}], identity=JWT)
    with pytest.raises(RulesError, match=r"routes\[0\].identity"):
        load_rules(opted_out)
