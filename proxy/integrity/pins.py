"""The pin file: approved MCP tool definitions, one digest per tool (plus, optionally, the
full text a reviewer read). Written by `callwarden pin`, read once per rules load.

```yaml
version: 1
route: tools
tools:
  get_weather:
    digest: sha256:<hex>          # of the canonical JSON of the definition below
    description: Weather for a city.
    inputSchema: {type: object, properties: {city: {type: string}}, required: [city]}
```

The digest covers title, description, inputSchema, outputSchema and annotations: what a
model reads and what a call may carry. Canonical JSON (sorted keys, no spaces, UTF-8, null
members dropped) makes it independent of key order and of how the server serialises.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PIN_VERSION = 1
DEFINITION_KEYS = ("title", "description", "inputSchema", "outputSchema", "annotations")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}\Z")
_TYPES: dict[str, type] = {
    "title": str,
    "description": str,
    "inputSchema": dict,
    "outputSchema": dict,
    "annotations": dict,
}


class PinError(Exception):
    """An unreadable or malformed pin file; `problems` lists each as `file: where: what`."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def definition(tool: Mapping[str, Any]) -> dict[str, Any]:
    """The reviewed part of a tool (wire names, camelCase); absent and null are the same."""
    return {k: tool[k] for k in DEFINITION_KEYS if tool.get(k) is not None}


def canonical_json(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def tool_digest(tool: Mapping[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(canonical_json(definition(tool))).hexdigest()


@dataclass(frozen=True, slots=True)
class PinnedTool:
    name: str
    digest: str
    text: Mapping[str, Any] = field(default_factory=dict)
    """Whatever definition keys the pin holds (all of them when written by `pin`)."""

    @property
    def description(self) -> str | None:
        return self.text.get("description")

    @property
    def input_schema(self) -> dict[str, Any] | None:
        return self.text.get("inputSchema")

    @property
    def has_full_text(self) -> bool:
        """The pin holds the whole definition (inputSchema is mandatory in MCP), so its
        digest can be recomputed from it."""
        return "inputSchema" in self.text


@dataclass(frozen=True, slots=True)
class PinFile:
    route: str | None
    tools: Mapping[str, PinnedTool]


def pin_tool(tool: Mapping[str, Any]) -> PinnedTool:
    return PinnedTool(str(tool["name"]), tool_digest(tool), definition(tool))


def pins_from_tools(route: str, tools: Iterable[Mapping[str, Any]]) -> PinFile:
    pinned = (pin_tool(t) for t in tools)
    return PinFile(route, {p.name: p for p in sorted(pinned, key=lambda p: p.name)})


def parse_pins(doc: Any, where: str) -> PinFile:
    """Validate a loaded YAML document; raises PinError naming every problem."""
    if not isinstance(doc, dict):
        raise PinError([f"{where}: the top level must be a mapping"])
    problems: list[str] = []
    if doc.get("version") != PIN_VERSION:
        problems.append(f"{where}: version: must be {PIN_VERSION}")
    route = doc.get("route")
    if route is not None and not isinstance(route, str):
        problems.append(f"{where}: route: must be a string")
    unknown = set(doc) - {"version", "route", "tools"}
    if unknown:
        problems.append(f"{where}: unknown keys: {', '.join(sorted(map(str, unknown)))}")
    raw_tools = doc.get("tools")
    raw_tools = {} if raw_tools is None else raw_tools
    if not isinstance(raw_tools, dict):
        raise PinError([*problems, f"{where}: tools: must be a mapping of tool name to pin"])
    tools: dict[str, PinnedTool] = {}
    for name, entry in raw_tools.items():
        here = f"{where}: tools.{name}"
        if not isinstance(entry, dict):
            problems.append(f"{here}: must be a mapping with at least 'digest'")
            continue
        digest = entry.get("digest")
        if not isinstance(digest, str) or not _DIGEST.match(digest):
            problems.append(f"{here}.digest: must be 'sha256:' and 64 lowercase hex digits")
        for key in entry.keys() - {"digest", *DEFINITION_KEYS}:
            problems.append(f"{here}.{key}: unknown key")
        for key, kind in _TYPES.items():
            if key in entry and not isinstance(entry[key], kind):
                problems.append(f"{here}.{key}: must be a {'string' if kind is str else 'mapping'}")
        text = {k: entry[k] for k in DEFINITION_KEYS if entry.get(k) is not None}
        tools[str(name)] = PinnedTool(str(name), str(digest), text)
    if problems:
        raise PinError(problems)
    return PinFile(route, dict(sorted(tools.items())))


def load_pins(path: str | Path) -> PinFile:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PinError([f"{path}: cannot read the pin file: {exc.__class__.__name__}"]) from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PinError([f"{path}: invalid YAML: {getattr(exc, 'problem', exc)}"]) from None
    return parse_pins(doc, str(path))


def _sorted(value: Any) -> Any:
    """Recursively key-sorted, so rewritten pin files diff only where servers changed."""
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # Multi-line descriptions as literal blocks: a reviewer reads them as the model will.
    # Other line breaks (CR, NEL, LS, PS) would be folded by a reader: escape them instead.
    if any(c in value for c in "\r\x85\u2028\u2029"):
        style: str | None = '"'
    else:
        style = "|" if "\n" in value and not value.endswith((" ", "\t")) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump_pins(pins: PinFile, as_json: bool = False) -> str:
    """YAML for review, or JSON when the file is named `.json` (both load back)."""
    tools = {
        name: {"digest": p.digest, **{k: _sorted(v) for k, v in p.text.items()}}
        for name, p in sorted(pins.tools.items())
    }
    doc = {"version": PIN_VERSION, "route": pins.route, "tools": tools}
    if as_json:
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def save_pins(path: str | Path, pins: PinFile) -> None:
    """Write atomically: a running proxy reloading rules never reads half a file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(dump_pins(pins, target.suffix.lower() == ".json"), encoding="utf-8")
    tmp.replace(target)


def diff_pins(old: PinFile | None, new: PinFile) -> dict[str, list[str]]:
    """Tool names added, changed, removed and unchanged between two pin sets."""
    before = {n: p.digest for n, p in (old.tools.items() if old else ())}
    after = {n: p.digest for n, p in new.tools.items()}
    return {
        "added": sorted(after.keys() - before.keys()),
        "changed": sorted(n for n in after.keys() & before.keys() if after[n] != before[n]),
        "removed": sorted(before.keys() - after.keys()),
        "unchanged": sorted(n for n in after.keys() & before.keys() if after[n] == before[n]),
    }
