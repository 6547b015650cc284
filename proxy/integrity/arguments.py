"""`tools/call` arguments against the pinned input schema, with `jsonschema`.

Validators are built once per schema (at rules load) and reused for every call. A failure
reason names the JSON path and the rule that failed, never the value: arguments can carry
anything, secrets included.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError, best_match
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_MAX_NAME = 64


def schema_problem(schema: Any) -> str | None:
    """Why `schema` is not a valid JSON Schema (for its declared draft), or None."""
    if not isinstance(schema, dict | bool):
        return "must be a JSON Schema object"
    try:
        validator_for(schema, default=Draft202012Validator).check_schema(schema)
    except SchemaError as exc:
        where = json_path(exc.absolute_path)
        return f"not a valid JSON Schema at {where}: {exc.message[:200]}"
    return None


def compile_validator(schema: dict[str, Any] | bool) -> Validator:
    """A reusable validator; the schema must already have passed `schema_problem`.
    MCP tools default to 2020-12 when the schema names no `$schema`."""
    cls = validator_for(schema, default=Draft202012Validator)
    return cls(schema)


def json_path(parts: Iterable[Any]) -> str:
    """`$.a[0].b`, quoting odd keys; long keys are cut (they come from the caller)."""
    out = "$"
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENT.match(str(part)) and len(str(part)) <= _MAX_NAME:
            out += f".{part}"
        else:
            out += "[" + repr(str(part)[:_MAX_NAME]) + "]"
    return out


def _detail(error: ValidationError) -> tuple[str, str]:
    """(path, what failed) built from the schema side of the error, never the instance."""
    path = json_path(error.absolute_path)
    keyword = str(error.validator)
    rule = error.validator_value
    if keyword == "type":
        types = rule if isinstance(rule, list) else [rule]
        return path, "expected " + " or ".join(map(str, types))
    if keyword == "required" and isinstance(error.instance, dict) and isinstance(rule, list):
        missing = [str(k) for k in rule if k not in error.instance]
        if missing:
            return json_path([*error.absolute_path, missing[0]]), "required property missing"
    if keyword == "additionalProperties" and isinstance(error.instance, dict):
        allowed = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        extra = [k for k in error.instance if k not in allowed]
        if extra:
            return json_path([*error.absolute_path, extra[0]]), "property not allowed"
    if keyword in ("enum", "const"):
        return path, "not an allowed value"
    return path, f"fails '{keyword}'"


def argument_problem(validator: Validator, arguments: Any) -> str | None:
    """The most relevant failure as `at $.path: what`, or None when the arguments fit."""
    try:
        error = best_match(validator.iter_errors(arguments))
    except Exception:  # SECURITY: an unresolvable $ref or similar fails closed, quietly
        return "arguments could not be checked against the tool's input schema"
    if error is None:
        return None
    path, what = _detail(error)
    return f"arguments do not match the tool's input schema at {path}: {what}"
