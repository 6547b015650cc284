"""Argument validation: failing paths named, values never shown, schemas checked."""

from __future__ import annotations

from typing import Any

import pytest

from proxy.integrity.arguments import (
    argument_problem,
    compile_validator,
    json_path,
    schema_problem,
)

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 20},
        "days": {"type": "integer", "minimum": 1},
        "units": {"enum": ["C", "F"]},
        "stops": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"name": {"type": "string"}},
                "required": ["name"],
            },
        },
    },
    "required": ["city"],
    "additionalProperties": False,
}
SECRET = "hunter2-SECRET"


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"city": "Oslo"}, None),
        ({"city": "Oslo", "days": 3, "units": "C", "stops": [{"name": "a"}]}, None),
        ({}, "at $.city: required property missing"),
        ({"city": 5}, "at $.city: expected string"),
        ({"city": SECRET * 3}, "at $.city: fails 'maxLength'"),
        ({"city": "x", "days": 0}, "at $.days: fails 'minimum'"),
        ({"city": "x", "units": SECRET}, "at $.units: not an allowed value"),
        ({"city": "x", "stops": [{"name": "a"}, {}]}, "at $.stops[1].name: required property"),
        ({"city": "x", "stops": [{"name": SECRET}, {"name": 7}]}, "at $.stops[1].name: expected"),
        ({"city": "x", "password": SECRET}, "at $.password: property not allowed"),
        ({"city": "x", "odd key!": 1}, "at $['odd key!']: property not allowed"),
        ([SECRET], "at $: expected object"),
    ],
)
def test_argument_problems(arguments: Any, expected: str | None) -> None:
    problem = argument_problem(compile_validator(SCHEMA), arguments)
    if expected is None:
        assert problem is None
        return
    assert problem is not None and expected in problem
    assert SECRET not in problem and "hunter2" not in problem


def test_declared_draft_is_honoured() -> None:
    # draft-04 exclusiveMaximum is a boolean; under 2020-12 it would be a schema error
    schema = {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "type": "object",
        "properties": {"n": {"type": "number", "maximum": 5, "exclusiveMaximum": True}},
    }
    assert schema_problem(schema) is None
    assert argument_problem(compile_validator(schema), {"n": 5}) is not None
    assert argument_problem(compile_validator(schema), {"n": 4}) is None


def test_unresolvable_ref_fails_closed() -> None:
    schema = {"type": "object", "properties": {"a": {"$ref": "https://example.invalid/s.json"}}}
    problem = argument_problem(compile_validator(schema), {"a": 1})
    assert problem is not None and "could not be checked" in problem


@pytest.mark.parametrize(
    ("schema", "needle"),
    [
        ({"type": "object"}, None),
        (True, None),
        ({"type": "objekt"}, "not a valid JSON Schema at $.type"),
        ({"properties": {"a": {"type": 5}}}, "at $.properties.a.type"),
        ({"required": "city"}, "at $.required"),
        ({"minimum": "1"}, "at $.minimum"),
        ("string", "must be a JSON Schema object"),
    ],
)
def test_schema_problem(schema: Any, needle: str | None) -> None:
    problem = schema_problem(schema)
    assert (problem is None) if needle is None else (problem is not None and needle in problem)


@pytest.mark.parametrize(
    ("parts", "path"),
    [
        ([], "$"),
        (["a", 0, "b_1"], "$.a[0].b_1"),
        (["x y"], "$['x y']"),
        (["k" * 100], "$['" + "k" * 64 + "']"),
    ],
)
def test_json_path(parts: list[Any], path: str) -> None:
    assert json_path(parts) == path
