"""`callwarden validate` in production: literal credentials in rules are problems."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.config.schema import Rules
from proxy.credentials.rules_check import literal_credentials
from tests.credentials.fakes import github, rnd

ADVICE = "use a ${vault:..}/${env:..}/${file:..} reference"
GH = github()


def _http(credentials: dict[str, Any], upstream: str = "http://crm:8080") -> dict[str, Any]:
    return {"name": "crm", "upstream": upstream, "match": {"path_prefix": "/crm"},
            "credentials": credentials}


CASES = [
    (_http({"inject": {"Authorization": f"Bearer {GH}"}}),
     "routes[0].credentials.inject.Authorization", "github_token"),
    (_http({"inject": {"X-Api-Key": rnd(32)}}), "routes[0].credentials.inject.X-Api-Key",
     "secret_key_value"),
    (_http({"inject": {"Authorization": "Bearer " + rnd(30)}}),
     "routes[0].credentials.inject.Authorization", "bearer_token"),
    (_http({"inject_query": {"api_key": "AIza" + rnd(35)}}),
     "routes[0].credentials.inject_query.api_key", "google_api_key"),
    (_http({}, upstream=f"http://svc:{rnd(12)}9Z@crm:8080"), "routes[0].upstream",
     "url_password"),
    ({"name": "pg", "kind": "postgres", "listen": "127.0.0.1:15432",
      "upstream": "127.0.0.1:5432", "credentials": {"user": "app", "password": "Tr0ub4dor&3x"}},
     "routes[0].credentials.password", "secret_key_value"),
]


@pytest.mark.parametrize(("route", "path", "kind"), CASES)
def test_literal_credentials_reported(route: dict[str, Any], path: str, kind: str) -> None:
    problems = literal_credentials(Rules.model_validate({"routes": [route]}))
    assert problems == [f"{path}: literal credential ({kind}); {ADVICE}"]
    assert GH not in problems[0]


def test_vault_token_literal() -> None:
    rules = Rules.model_validate(
        {"secrets": {"vault": {"address": "http://vault:8200", "token": "hvs." + rnd(24)}}})
    assert literal_credentials(rules) == [
        f"secrets.vault.token: literal credential (vault_token); {ADVICE}"]


CLEAN = [
    _http({"inject": {"Authorization": "Bearer ${vault:secret/data/crm#token}",
                      "X-Api-Key": "${env:CRM_KEY}", "X-Api-Version": "2024-01-01",
                      "Cookie": "session=${file:/var/run/secrets/crm/session}"},
           "allow": ["json /sample/password"], "scan_headers": ["X-Partner-Key"]}),
    {"name": "pg", "kind": "postgres", "listen": "127.0.0.1:15432", "upstream": "127.0.0.1:5432",
     "credentials": {"user": "${env:PG_USER}", "password": "${file:/var/run/secrets/pg/pw}"}},
]


def test_references_are_fine() -> None:
    rules = Rules.model_validate({
        "secrets": {"vault": {"address": "http://vault:8200",
                              "token": "${file:/var/run/secrets/vault/token}"}},
        "routes": CLEAN,
    })
    assert literal_credentials(rules) == []
