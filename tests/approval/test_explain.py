"""`callwarden explain` says a call would need approval, and never holds it."""

from __future__ import annotations

import json

import yaml

from proxy.cli import main

ROUTE = {
    "name": "db",
    "kind": "sql",
    "match": {"path_prefix": "/db"},
    "upstream": "http://127.0.0.1:9",
    "approval": {"approvers": ["dba"], "when": "writes", "timeout_s": 600},
    "sql": {"dialect": "postgres", "read_only": False},
}


def test_explain_names_the_approvers(capsys, tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "routes": [ROUTE]}))
    assert (
        main(["explain", "--rules", str(path), "--route", "db", "--sql", "DELETE FROM t", "--json"])
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == "allow"
    assert out["approval"] == "needs approval by dba (wait mode, expires after 600s)"
    assert (
        main(["explain", "--rules", str(path), "--route", "db", "--sql", "SELECT 1", "--json"]) == 0
    )
    assert json.loads(capsys.readouterr().out)["approval"] is None
