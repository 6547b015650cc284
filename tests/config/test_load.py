from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from proxy.config.load import RulesError, load_rules, rules_json_schema

REPO = Path(__file__).resolve().parents[2]
ROUTE = {"name": "a", "match": {"path_prefix": "/a"}, "upstream": "http://127.0.0.1:1"}


def problems(path: Path) -> list[str]:
    with pytest.raises(RulesError) as info:
        load_rules(path)
    return info.value.problems


def test_example_rules_are_valid() -> None:
    loaded = load_rules(REPO / "rules")
    assert {r.name for r in loaded.rules.routes} >= {"crm", "analytics"}
    assert len(loaded.digest) == 64


def test_defaults_merge_into_routes(write_rules) -> None:
    path = write_rules(
        [
            ROUTE,
            {**ROUTE, "name": "b", "match": {"path_prefix": "/b"}, "limits": {"timeout_ms": 5}},
        ],
        defaults={"http": {"timeout_ms": 1234, "retries": {"max": 2}}},
    )
    a, b = load_rules(path).rules.routes
    assert (a.limits.timeout_ms, a.limits.retries.max) == (1234, 2)
    assert (b.limits.timeout_ms, b.limits.retries.max) == (5, 2)


def test_every_problem_named_with_file_and_field(write_rules) -> None:
    path = write_rules(
        [
            ROUTE,
            {
                **ROUTE,
                "name": "b",
                "match": {"path_prefix": "/b"},
                "limits": {"rate": {"per_second": -1}},
            },
            {**ROUTE, "name": "c", "match": {"path_prefix": "/c"}, "bogus": 1},
            {
                **ROUTE,
                "name": "d",
                "match": {"path_prefix": "/d"},
                "credentials": {"inject": {"Authorization": "Bearer ${vault:nokey}"}},
            },
        ]
    )
    found = problems(path)
    assert f"{path}: routes[1].limits.rate.per_second: Input should be greater than 0" in found
    assert any(p.startswith(f"{path}: routes[2].bogus:") for p in found)
    assert any(p.startswith(f"{path}: routes[3].credentials") and "vault" in p for p in found)
    assert len(found) == 3


def test_folder_merge_and_cross_file_duplicates(tmp_path: Path, write_rules) -> None:
    write_rules([ROUTE], name="one.yaml")
    write_rules([{**ROUTE, "match": {"path_prefix": "/z"}}], name="two.yaml")
    (tmp_path / ".hidden.yaml").write_text("not: [valid")
    found = problems(tmp_path)
    assert found == [f"{tmp_path / 'two.yaml'}: routes[0].name: duplicate route name 'a'"]


def test_identical_match_is_an_error(write_rules) -> None:
    path = write_rules([ROUTE, {**ROUTE, "name": "b"}])
    assert problems(path) == [f"{path}: routes[1].match: same match as route 'a'"]


def test_conflicting_top_level_keys(tmp_path: Path, write_rules) -> None:
    write_rules([ROUTE], name="one.yaml", mode="audit")
    write_rules(
        [{**ROUTE, "name": "b", "match": {"path_prefix": "/b"}}], name="two.yaml", mode="enforce"
    )
    assert problems(tmp_path) == [
        f"{tmp_path / 'two.yaml'}: mode: also set differently in {tmp_path / 'one.yaml'}"
    ]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("routes: [", "invalid YAML"),
        ("- a\n- b\n", "top level must be a mapping"),
        ("version: 2\n", "version"),
        (
            "routes:\n  - name: x\n    kind: sql\n    upstream: http://h\n"
            "    match: {path_prefix: /x}\n",
            "needs a 'sql' section",
        ),
        ("routes:\n  - name: x\n    upstream: ftp://h\n    match: {path_prefix: /x}\n", "http://"),
        (
            "routes:\n  - name: x\n    upstream: http://h\n    match: {path_prefix: /x/../y}\n",
            "normalised",
        ),
        ("routes:\n  - name: x\n    upstream: http://h\n", "path_prefix and/or hosts"),
    ],
)
def test_invalid_files(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(text)
    found = problems(path)
    assert found and all(p.startswith(str(path)) for p in found)
    assert any(needle in p for p in found), found


def test_schema_json_is_fresh() -> None:
    on_disk = json.loads((REPO / "rules" / "schema.json").read_text())
    assert on_disk == json.loads(json.dumps(rules_json_schema())), (
        "rules/schema.json is stale: python -m proxy.config > rules/schema.json"
    )


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "proxy.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_validate_cli(write_rules) -> None:
    ok = _cli("validate", str(REPO / "rules"))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = write_rules([ROUTE, {**ROUTE, "name": "b", "limits": {"timeout_ms": 0}}])
    res = _cli("validate", str(bad))
    assert res.returncode == 1
    lines = res.stdout.strip().splitlines()
    assert f"{bad}: routes[1].limits.timeout_ms: Input should be greater than 0" in lines
    assert f"{bad}: routes[1].match: same match as route 'a'" in lines
