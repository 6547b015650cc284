"""The one guard and codec table: the chain order, the rules' guard names and the codecs
all come from it, and it is checked against what its builders make."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from proxy import capabilities
from proxy.capabilities import CODECS, GUARD_NAMES, GUARDS, GuardEntry
from proxy.compile import Services, build_chain, compile_route
from proxy.config.schema import KINDS, Rules
from proxy.guards.access import AccessGuard
from proxy.secrets.store import SecretStore

REPO = Path(__file__).resolve().parent.parent


def _rules(route: dict) -> Rules:
    base = {"name": "r", "match": {"path_prefix": "/r"}, "upstream": "http://127.0.0.1:9"}
    return Rules.model_validate({"routes": [{**base, **route}]})


def test_names_are_unique_and_every_guard_gives_its_reason() -> None:
    assert len(set(GUARD_NAMES)) == len(GUARDS)
    assert all(g.reason and callable(g.build) for g in GUARDS)


@pytest.mark.parametrize("name", GUARD_NAMES)
def test_every_guard_name_is_a_guard_modes_key(name: str) -> None:
    assert _rules({"guard_modes": {name: "audit"}}).routes[0].guard_modes == {name: "audit"}


def test_a_name_outside_the_table_is_refused() -> None:
    with pytest.raises(ValidationError, match="unknown guard 'sql_guard'"):
        _rules({"guard_modes": {"sql_guard": "audit"}})


def test_the_editor_schema_lists_the_table_in_chain_order() -> None:
    schema = json.loads((REPO / "rules" / "schema.json").read_text())
    found = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "guard_modes" in node.get("properties", {}):
                found.append(node["properties"]["guard_modes"]["propertyNames"]["enum"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(schema)
    assert found and all(names == list(GUARD_NAMES) for names in found)


def test_every_kind_has_a_codec_entry() -> None:
    assert set(CODECS) == set(KINDS)
    assert CODECS["postgres"] is None  # its listener is its codec


def test_chain_follows_the_table_order() -> None:
    rules = _rules({
        "kind": "sql", "access": {"roles": ["a"]}, "tenant": {"forward_header": "X-T"},
        "credentials": {"inject": {"X-Key": "${env:HOME}"}},
        "limits": {"rate": {"per_second": 5}},
        "sql": {"tenant": {"column": "t", "tables": ["orders"]}},
    })
    services = Services(secrets=SecretStore(rules.secrets))
    names = [g.name for g in build_chain(rules.routes[0], rules, services)]
    assert names == [n for n in GUARD_NAMES if n in names]
    assert names == ["identity", "access", "ratelimit", "credentials", "sql_safety",
                     "tenant_scope", "secrets"]


def test_a_builder_whose_guard_has_another_name_fails_the_load(monkeypatch) -> None:
    def build(route, rules, services):
        return AccessGuard(frozenset({"a"}))

    monkeypatch.setattr(
        "proxy.compile.GUARDS", (GuardEntry("identity", build, "test"), *GUARDS[1:])
    )
    rules = _rules({})
    with pytest.raises(ValueError, match="guard 'identity' built a guard named 'access'"):
        compile_route(rules.routes[0], rules, Services())


def test_a_kind_without_a_codec_fails_the_load(monkeypatch) -> None:
    monkeypatch.setattr(
        "proxy.compile.CODECS", {k: v for k, v in CODECS.items() if k != "graph"}
    )
    rules = _rules({"kind": "graph", "graph": {}})
    with pytest.raises(ValueError, match="kind graph has no codec"):
        compile_route(rules.routes[0], rules, Services())


def test_guard_table_is_what_rules_reports() -> None:
    assert capabilities.guard_table() == [{"name": g.name, "reason": g.reason} for g in GUARDS]
