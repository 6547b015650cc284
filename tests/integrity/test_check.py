"""Publication checks: `callwarden validate` refuses pins with invalid JSON Schemas and
warns on tools pinned without a description; pin paths follow the rules file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from proxy.cli import main
from proxy.config.load import load_rules
from proxy.integrity.check import pin_problems
from proxy.integrity.pins import pins_from_tools, save_pins

GOOD = {"name": "get_weather", "description": "Weather.", "inputSchema": {"type": "object"}}


def rules_with_pins(write_rules: Any, pins: str = "pins/tools.yaml") -> Path:
    path: Path = write_rules(
        [
            {
                "name": "tools",
                "kind": "mcp",
                "match": {"path_prefix": "/mcp"},
                "upstream": "http://127.0.0.1:9/mcp",
                "mcp": {"default": "allow", "pins": pins},
            }
        ]
    )
    return path


@pytest.mark.parametrize(
    ("tools", "route", "errors", "warnings"),
    [
        ([GOOD], "tools", [], []),
        ([{**GOOD, "description": "  "}], "tools", [], ["tools.get_weather: pinned without"]),
        ([{"name": "t", "inputSchema": {"type": "object"}}], "tools", [], ["tools.t: pinned"]),
        (
            [{**GOOD, "inputSchema": {"type": "objekt"}}],
            "tools",
            ["tools.get_weather.inputSchema: not a valid JSON Schema at $.type"],
            [],
        ),
        (
            [{**GOOD, "outputSchema": {"properties": {"a": {"type": 1}}}}],
            "tools",
            ["tools.get_weather.outputSchema: not a valid JSON Schema"],
            [],
        ),
        ([GOOD], "elsewhere", ["route: pins are for route 'elsewhere', not 'tools'"], []),
    ],
)
def test_pin_problems(
    write_rules: Any, tools: list[Any], route: str, errors: list[str], warnings: list[str]
) -> None:
    path = rules_with_pins(write_rules)
    save_pins(path.parent / "pins" / "tools.yaml", pins_from_tools(route, tools))
    found_errors, found_warnings = pin_problems(load_rules(path).rules)
    assert len(found_errors) == len(errors) and len(found_warnings) == len(warnings)
    for needle, found in [
        *zip(errors, found_errors, strict=True),
        *zip(warnings, found_warnings, strict=True),
    ]:
        assert needle in found and found.startswith(str(path.parent / "pins" / "tools.yaml"))


def test_hand_edited_text_is_flagged(write_rules: Any) -> None:
    path = rules_with_pins(write_rules)
    pin_file = path.parent / "pins" / "tools.yaml"
    save_pins(pin_file, pins_from_tools("tools", [GOOD]))
    pin_file.write_text(pin_file.read_text().replace("Weather.", "Weather, reviewed."))
    errors, warnings = pin_problems(load_rules(path).rules)
    assert errors == [] and "does not match its digest" in warnings[0]


def test_missing_pin_file_is_an_error(write_rules: Any) -> None:
    path = rules_with_pins(write_rules)
    errors, _ = pin_problems(load_rules(path).rules)
    assert len(errors) == 1 and "cannot read the pin file" in errors[0]


def test_absolute_pin_path_is_kept(write_rules: Any, tmp_path: Path) -> None:
    elsewhere = tmp_path / "abs" / "p.yaml"
    save_pins(elsewhere, pins_from_tools("tools", [GOOD]))
    rules = load_rules(rules_with_pins(write_rules, str(elsewhere))).rules
    assert rules.routes[0].mcp is not None and rules.routes[0].mcp.pins == str(elsewhere)
    assert pin_problems(rules) == ([], [])


def test_validate_command(write_rules: Any, capsys: Any) -> None:
    path = rules_with_pins(write_rules)
    pin_file = path.parent / "pins" / "tools.yaml"
    save_pins(pin_file, pins_from_tools("tools", [{**GOOD, "description": ""}]))
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "warning:" in out and "pinned without a description" in out and "ok:" in out
    save_pins(pin_file, pins_from_tools("tools", [{**GOOD, "inputSchema": {"required": 1}}]))
    assert main(["validate", str(path)]) == 1
    assert "tools.get_weather.inputSchema: not a valid JSON Schema" in capsys.readouterr().out
