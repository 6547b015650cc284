"""Secret reference syntax: ${env:NAME}, ${file:/abs/path}, ${vault:mount/path#key}.

Only the syntax lives here (rules validation needs it); resolving is proxy.secrets'.
`$${` is a literal `${`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_REF = re.compile(r"\$\$\{|\$\{([^}]*)\}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True, slots=True)
class SecretRef:
    scheme: str
    """env | file | vault"""
    target: str
    """NAME, /path, or mount/path (vault)"""
    key: str = ""
    """vault field name"""

    def __str__(self) -> str:  # the reference text, never a value
        return "${{{}:{}{}}}".format(self.scheme, self.target, f"#{self.key}" if self.key else "")


Template = tuple[str | SecretRef, ...]


def parse_ref(body: str) -> SecretRef:
    scheme, sep, rest = body.partition(":")
    if not sep:
        raise ValueError(f"secret reference '${{{body}}}' needs a scheme: env, file or vault")
    if scheme == "env":
        if not _ENV_NAME.match(rest):
            raise ValueError(f"'${{env:{rest}}}' is not a valid environment variable name")
        return SecretRef("env", rest)
    if scheme == "file":
        if not rest.startswith("/"):
            raise ValueError(f"'${{file:{rest}}}' must name an absolute path")
        return SecretRef("file", rest)
    if scheme == "vault":
        path, sep, key = rest.partition("#")
        if not sep or not path.strip("/") or not key:
            raise ValueError(f"'${{vault:{rest}}}' must look like ${{vault:mount/path#key}}")
        return SecretRef("vault", path.strip("/"), key)
    raise ValueError(f"unknown secret scheme '{scheme}' (env, file or vault)")


def parse_template(text: str) -> Template:
    """Split a string into literal parts and references; raises ValueError on bad syntax."""
    parts: list[str | SecretRef] = []
    pos = 0
    for m in _REF.finditer(text):
        if m.start() > pos:
            parts.append(text[pos : m.start()])
        if m.group(0) == "$${":
            parts.append("${")
        else:
            parts.append(parse_ref(m.group(1)))
        pos = m.end()
    tail = text[pos:]
    if "${" in tail:
        raise ValueError("unterminated secret reference '${'")
    if tail:
        parts.append(tail)
    return tuple(parts)


def has_refs(template: Template) -> bool:
    return any(isinstance(p, SecretRef) for p in template)
