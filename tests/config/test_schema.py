"""Route kinds are a discriminated union: a kind-specific key on another kind is refused
(the editor schema says so too), errors keep their `routes[i].a.b: message` path, and
every field carries the description an editor shows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from proxy.config.load import RulesError, load_rules
from proxy.config.schema import (
    GraphRoute,
    HttpRoute,
    McpRoute,
    PostgresRoute,
    Rules,
    SqlRoute,
)

REPO = Path(__file__).resolve().parents[2]
HTTP = {"name": "a", "match": {"path_prefix": "/a"}, "upstream": "http://127.0.0.1:1"}
PG = {"name": "pg", "kind": "postgres", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:5432"}
SECTIONS: dict[str, dict[str, Any]] = {
    "sql": {"sql": {}},
    "graph": {"graph": {}},
    "mcp": {"mcp": {}},
    "postgres": {"postgres": {}},
    "listen": {"listen": "127.0.0.1:0"},
}
TAKES = {
    "http": set(),
    "sql": {"sql"},
    "graph": {"graph"},
    "mcp": {"mcp"},
    "postgres": {"sql", "postgres", "listen"},
}


def problems(write_rules, routes: list[dict[str, Any]]) -> list[str]:
    path = write_rules(routes)
    with pytest.raises(RulesError) as info:
        load_rules(path)
    return [p.removeprefix(f"{path}: ") for p in info.value.problems]


def _route(kind: str) -> dict[str, Any]:
    if kind == "postgres":
        return dict(PG)
    base = {**HTTP, "kind": kind}
    return {**base, **SECTIONS.get(kind, {})} if kind in ("sql", "graph") else base


@pytest.mark.parametrize(
    ("kind", "section"),
    [(k, s) for k in TAKES for s in SECTIONS if s not in TAKES[k]],
)
def test_a_section_of_another_kind_is_refused(write_rules, kind: str, section: str) -> None:
    route = {**_route(kind), **SECTIONS[section]}
    assert problems(write_rules, [route]) == [
        f"routes[0]: '{section}' section on a route of kind {kind}"
    ]


@pytest.mark.parametrize(
    ("route", "path"),
    [
        ({**HTTP, "tenant": {"startup_parameter": "user"}}, "routes[0].tenant.startup_parameter"),
        ({**HTTP, "credentials": {"user": "${env:U}"}}, "routes[0].credentials.user"),
        ({**HTTP, "credentials": {"password": "${env:P}"}}, "routes[0].credentials.password"),
        ({**HTTP, "kind": "mcp", "tenant": {"startup_parameter": "options"}},
         "routes[0].tenant.startup_parameter"),
        ({**HTTP, "kind": "sql", "sql": {}, "credentials": {"user": "${env:U}"}},
         "routes[0].credentials.user"),
    ],
)
def test_postgres_keys_are_refused_on_http_kinds(write_rules, route, path) -> None:
    assert problems(write_rules, [route]) == [f"{path}: Extra inputs are not permitted"]


def test_postgres_routes_take_their_keys() -> None:
    rules = Rules.model_validate({"routes": [{
        **PG, "tenant": {"startup_parameter": "application_name"},
        "credentials": {"user": "${env:U}", "password": "${env:P}"},
        "sql": {"tenant": {"column": "t", "tables": ["x"]}}, "postgres": {"sslmode": "prefer"},
    }]})
    route = rules.routes[0]
    assert isinstance(route, PostgresRoute)
    assert route.tenant is not None and route.tenant.startup_parameter == "application_name"
    assert route.credentials.user == "${env:U}" and route.mcp is None and route.graph is None


def test_each_kind_gets_its_model_and_absent_sections_read_as_none() -> None:
    rules = Rules.model_validate({"routes": [
        HTTP, {**_route("sql"), "name": "s", "match": {"path_prefix": "/s"}},
        {**_route("graph"), "name": "g", "match": {"path_prefix": "/g"}},
        {**_route("mcp"), "name": "m", "match": {"path_prefix": "/m"}}, PG,
    ]})
    types = [type(r) for r in rules.routes]
    assert types == [HttpRoute, SqlRoute, GraphRoute, McpRoute, PostgresRoute]
    http = rules.routes[0]
    assert (http.kind, http.sql, http.graph, http.mcp, http.postgres, http.listen) == (
        "http", None, None, None, None, None
    )


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        ({**HTTP, "kind": "ftp"}, "routes[0].kind: kind must be one of http, sql, graph, mcp, "
                                  "postgres"),
        ({**HTTP, "kind": 5}, "routes[0].kind: kind must be one of http, sql, graph, mcp, "
                              "postgres"),
        ({**HTTP, "kind": "sql"}, "routes[0]: a sql route needs a 'sql' section"),
        ({**HTTP, "kind": "graph"}, "routes[0]: a graph route needs a 'graph' section"),
        ({k: v for k, v in PG.items() if k != "listen"},
         "routes[0]: a postgres route needs 'listen'"),
        ({**_route("sql"), "limits": {"rate": {"per_second": 0}}},
         "routes[0].limits.rate.per_second: Input should be greater than 0"),
        ({**_route("sql"), "sql": {"max_rows": 0}},
         "routes[0].sql.max_rows: Input should be greater than 0"),
        ({**PG, "sql": {"read_only": "maybe"}},
         "routes[0].sql.read_only: Input should be a valid boolean, unable to interpret input"),
        ({**_route("mcp"), "mcp": {"tools": {"t": {"roles": "a"}}}},
         "routes[0].mcp.tools.t.roles: Input should be a valid list"),
    ],
)
def test_errors_name_the_key_not_the_kind_model(write_rules, route, expected) -> None:
    assert problems(write_rules, [route]) == [expected]


def test_every_field_has_a_description() -> None:
    schema = json.loads((REPO / "rules" / "schema.json").read_text())
    missing = [
        f"{name}.{key}"
        for name, model in [("Rules", schema), *schema["$defs"].items()]
        for key, prop in model.get("properties", {}).items()
        if not prop.get("description")
    ]
    assert missing == []


def test_the_editor_schema_refuses_other_kinds_keys() -> None:
    defs = json.loads((REPO / "rules" / "schema.json").read_text())["$defs"]
    assert "startup_parameter" not in defs["TenantSpec"]["properties"]
    assert "user" not in defs["CredentialsSpec"]["properties"]
    assert defs["HttpRoute"]["additionalProperties"] is False
    assert not {"sql", "graph", "mcp", "postgres", "listen"} & set(defs["HttpRoute"]["properties"])
    assert defs["PostgresRoute"]["properties"]["kind"]["const"] == "postgres"


@pytest.mark.parametrize("path", sorted((REPO / "rules").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_rules_stay_valid(path: Path) -> None:
    assert load_rules(path).rules.routes
