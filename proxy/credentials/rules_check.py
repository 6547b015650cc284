"""`callwarden validate` in production: rules files must hold references, not secrets.

Every string in the rules is judged like a request value: known token formats anywhere,
strong literals under secret-looking keys (`password`, `token`, `Authorization`). Only the
literal parts of a template count, so `Bearer ${vault:secret/data/crm#token}` is fine.
The caller decides when to apply it (`rules.environment == "production"`).
"""

from __future__ import annotations

from typing import Any

from proxy.config.refs import parse_template
from proxy.config.schema import Rules
from proxy.credentials import formats
from proxy.credentials.detect import key_value_kind
from proxy.credentials.literals import is_secret_key

ADVICE = "use a ${vault:..}/${env:..}/${file:..} reference"


def _literal_text(value: str) -> str:
    """The template's literal parts, references removed (bad syntax: the whole string,
    schema validation reports the syntax error itself)."""
    try:
        return "".join(p for p in parse_template(value) if isinstance(p, str))
    except ValueError:
        return value


def _kind(key: str, value: str) -> str | None:
    text = _literal_text(value)
    if not text.strip():
        return None
    found = formats.first(text)
    if found:
        return found
    if key and is_secret_key(key) and text == value:
        return key_value_kind(key, text)
    return None


def _walk(node: Any, path: str, key: str, out: list[str]) -> None:
    if isinstance(node, str):
        kind = _kind(key, node)
        if kind:
            out.append(f"{path}: literal credential ({kind}); {ADVICE}")
    elif isinstance(node, dict):
        for k, v in node.items():
            _walk(v, f"{path}.{k}" if path else str(k), str(k), out)
    elif isinstance(node, list | tuple):
        for i, v in enumerate(node):
            _walk(v, f"{path}[{i}]", key, out)


def literal_credentials(rules: Rules) -> list[str]:
    """Problems like `routes[0].credentials.inject.Authorization: literal credential
    (github_token); use a ... reference`, in rules order; [] when clean."""
    out: list[str] = []
    _walk(rules.model_dump(mode="python", by_alias=True, exclude_defaults=True), "", "", out)
    return out
