"""Rules files -> one validated `Rules`, or every problem as `file: field.path: message`.

A folder's YAML files are merged: routes are concatenated, other top-level keys may be
set by one file only (or to the same value), so no file silently overrides another.
Per-kind `defaults` are merged into each route's `limits` before validation, so the
models (and everything after them) see final values.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from proxy.config.schema import ROUTE_TAGS, Rules


class RulesError(Exception):
    """Invalid rules; `problems` lists every one, each naming file and field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class LoadedRules:
    rules: Rules
    files: tuple[str, ...]
    digest: str
    """sha256 of the merged, validated rules: what /rules and metrics report."""


def rule_files(path: Path) -> list[Path]:
    if path.is_dir():
        # Hidden entries are skipped: a Kubernetes ConfigMap volume keeps its real files
        # under ..data/ and exposes them through top-level symlinks.
        files = [
            p
            for p in sorted(path.iterdir())
            if p.suffix in (".yaml", ".yml") and not p.name.startswith(".") and p.is_file()
        ]
        if not files:
            raise RulesError([f"{path}: no .yaml or .yml rules files in this folder"])
        return files
    if not path.exists():
        raise RulesError([f"{path}: no such file or folder"])
    return [path]


def _read(file: Path, problems: list[str]) -> dict[str, Any] | None:
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{file}: cannot read: {exc.__class__.__name__}")
        return None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problems.append(f"{file}: {where}invalid YAML: {getattr(exc, 'problem', exc)}")
        return None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        problems.append(f"{file}: the top level must be a mapping")
        return None
    return doc


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _resolve_pins(route: Any, file: Path) -> Any:
    """`mcp.pins` is relative to the rules file's folder, so rules and pins move together;
    a path that exists relative to the working directory instead (SPEC's example,
    `rules/pins/tools.yaml` run from the repository root) is taken as written."""
    mcp = route.get("mcp") if isinstance(route, dict) else None
    pins = mcp.get("pins") if isinstance(mcp, dict) else None
    if not isinstance(pins, str) or Path(pins).is_absolute():
        return route
    beside = file.parent / pins
    if not beside.exists() and Path(pins).exists():
        return route
    return {**route, "mcp": {**mcp, "pins": str(beside)}}


def merge_documents(
    docs: list[tuple[Path, dict[str, Any]]], problems: list[str]
) -> tuple[dict[str, Any], list[tuple[Path, int]]]:
    """Merge file documents; returns the merged dict and each route's (file, index)."""
    merged: dict[str, Any] = {"routes": []}
    setters: dict[str, Path] = {}
    origins: list[tuple[Path, int]] = []
    for file, doc in docs:
        for key, value in doc.items():
            if key == "routes":
                if not isinstance(value, list):
                    problems.append(f"{file}: routes: must be a list")
                    continue
                for i, route in enumerate(value):
                    merged["routes"].append(_resolve_pins(route, file))
                    origins.append((file, i))
            elif key in setters and merged[key] != value:
                problems.append(f"{file}: {key}: also set differently in {setters[key]}")
            else:
                merged[key] = value
                setters.setdefault(key, file)
    defaults = merged.get("defaults")
    if isinstance(defaults, dict):
        routes = []
        for route in merged["routes"]:
            if isinstance(route, dict):
                kind_defaults = defaults.get(route.get("kind", "http"))
                if isinstance(kind_defaults, dict):
                    limits = route.get("limits")
                    route = {
                        **route,
                        "limits": _deep_merge(
                            kind_defaults, limits if isinstance(limits, dict) else {}
                        ),
                    }
            routes.append(route)
        merged["routes"] = routes
    return merged, origins


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _format(exc: ValidationError, first: Path, origins: list[tuple[Path, int]]) -> list[str]:
    problems = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
        if loc[:1] == ("routes",) and len(loc) > 2 and loc[2] in ROUTE_TAGS:
            loc = loc[:2] + loc[3:]  # the union's tag (the route's kind) is not a key
        elif err["type"] == "route_kind":
            loc = (*loc, "kind")
        msg = err["msg"].removeprefix("Value error, ")
        if loc[:1] == ("routes",) and len(loc) > 1 and isinstance(loc[1], int):
            file, idx = origins[loc[1]]
            problems.append(f"{file}: {_loc(('routes', idx, *loc[2:]))}: {msg}")
        elif not loc:
            # Cross-route checks report "routes[i].field: message; ..." themselves.
            for part in msg.split("; "):
                head, _, rest = part.partition("]")
                if head.startswith("routes[") and head[7:].isdigit():
                    file, idx = origins[int(head[7:])]
                    problems.append(f"{file}: routes[{idx}]{rest}")
                else:
                    problems.append(f"{first}: {part}")
        else:
            problems.append(f"{first}: {_loc(loc)}: {msg}")
    return problems


def _raw_cross_checks(routes: list[Any], origins: list[tuple[Path, int]]) -> list[str]:
    problems = []
    names: dict[str, str] = {}
    matches: dict[str, str] = {}
    for i, route in enumerate(routes):
        if not isinstance(route, dict):
            continue
        file, idx = origins[i]
        name = str(route.get("name"))
        if name in names:
            problems.append(f"{file}: routes[{idx}].name: duplicate route name '{name}'")
        names.setdefault(name, name)
        match = route.get("match")
        if route.get("kind") != "postgres" and isinstance(match, dict):
            hosts = match.get("hosts")
            prefix = match.get("path_prefix")
            prefix = prefix.rstrip("/") or "/" if isinstance(prefix, str) else prefix
            key = json.dumps([prefix, sorted(hosts) if isinstance(hosts, list) else hosts])
            if key in matches:
                problems.append(
                    f"{file}: routes[{idx}].match: same match as route '{matches[key]}'"
                )
            matches.setdefault(key, name)
    return problems


REQUIRE_IDENTITY = "CALLWARDEN_REQUIRE_IDENTITY"
"""Set to 1 (the Helm chart's standalone mode does): rules must verify every caller."""


def identity_required_problems(rules: Rules, where: str) -> list[str]:
    """A shared gateway is reached by every pod of the cluster: X-Caller-Role and
    X-Tenant-ID prove nothing there, so every route must take identity from a token."""
    if rules.identity.jwt is None:
        return [f"{where}: identity.jwt: verified caller identity is required here "
                f"({REQUIRE_IDENTITY}=1; the chart's standalone.requireVerifiedIdentity)"]
    return [f"{where}: routes[{i}].identity: 'headers' trusts caller-written headers, "
            f"refused with {REQUIRE_IDENTITY}=1" for i, r in enumerate(rules.routes)
            if r.identity == "headers"]


def load_rules(path: str | Path) -> LoadedRules:
    """Load, merge and validate; raises RulesError listing every problem found."""
    files = rule_files(Path(path))
    problems: list[str] = []
    docs = [(f, d) for f in files if (d := _read(f, problems)) is not None]
    merged, origins = merge_documents(docs, problems)
    if problems:
        raise RulesError(problems)
    try:
        rules = Rules.model_validate(merged)
    except ValidationError as exc:
        found = _format(exc, files[0], origins)
        # Cross-route checks run only once every field is valid; report them anyway.
        found += [p for p in _raw_cross_checks(merged["routes"], origins) if p not in found]
        raise RulesError(found) from None
    if os.environ.get(REQUIRE_IDENTITY) == "1":
        found = identity_required_problems(rules, str(files[0]))
        if found:
            raise RulesError(found)
    digest = hashlib.sha256(
        json.dumps(rules.model_dump(mode="json", by_alias=True), sort_keys=True).encode()
    ).hexdigest()
    return LoadedRules(rules, tuple(str(f) for f in files), digest)


def rules_json_schema() -> dict[str, Any]:
    """The JSON Schema editors use to validate rules files (rules/schema.json)."""
    schema = Rules.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "CallWarden rules"
    return schema
