"""Multipart and XML bodies read as (name, value) pairs for the credential scan.

Both readers are single linear passes with bounded counts: a body is judged, never
interpreted (no entity expansion, no external references, no nesting limits to blow).
"""

from __future__ import annotations

import re

MAX_PARTS = 1000
MAX_PAIRS = 100_000

_BOUNDARY = re.compile(r'(?i)boundary="?([^";,]{1,200})"?')
_DISPOSITION_NAME = re.compile(r'(?i)(?:^|;)\s*name\*?="?([^";]{0,200})"?')
_XML_TOKEN = re.compile(
    r"<(?P<name>[A-Za-z_][\w.\-:]{0,99})(?P<attrs>(?:[ \t\r\n/][^<>]{0,4096})?)>"
    r"|(?P<text>[^<]{1,65536})"
)
_ATTR_NAME = re.compile(r"[ \t\r\n]{0,8}([\w.\-:]{1,100})")
_ATTR_VALUE = re.compile(r"[ \t\r\n]{0,8}(?:\"([^\"]*)\"|'([^']*)')")


def _attributes(attrs: str) -> list[tuple[str, str]]:
    """`name="value"` pairs, found from each `=`: the name read backwards (bounded),
    the value up to its closing quote. Each character is read a bounded number of times."""
    out: list[tuple[str, str]] = []
    pos = attrs.find("=")
    while pos >= 0:
        m = _ATTR_NAME.match(attrs[max(0, pos - 108):pos][::-1])
        v = _ATTR_VALUE.match(attrs, pos + 1)
        if m and v:
            out.append((m.group(1)[::-1], v.group(1) if v.group(1) is not None else v.group(2)))
            pos = attrs.find("=", v.end())
        else:
            pos = attrs.find("=", pos + 1)
    return out


def multipart_parts(content_type: str, body: bytes) -> list[tuple[str, str, str]]:
    """(field name, part content type, value as text) of each part, in order. A
    missing boundary reads as one unnamed text part (the caller also scans the
    whole body for formats)."""
    m = _BOUNDARY.search(content_type)
    text = body.decode("utf-8", "replace")
    if m is None:
        return [("", "", text)]
    delim = "--" + m.group(1).strip()
    out: list[tuple[str, str, str]] = []
    for chunk in text.split(delim)[1:MAX_PARTS + 1]:
        if chunk.startswith("--"):
            break  # the closing delimiter
        head, sep, value = chunk.lstrip("\r\n").partition("\r\n\r\n")
        if not sep:
            head, sep, value = chunk.lstrip("\n").partition("\n\n")
        name, ptype = "", ""
        for line in head.splitlines():
            field, _, rest = line.partition(":")
            low = field.strip().lower()
            if low == "content-disposition":
                n = _DISPOSITION_NAME.search(rest)
                name = n.group(1) if n else ""
            elif low == "content-type":
                ptype = rest.strip()
        if value.endswith("\r\n"):
            value = value[:-2]
        elif value.endswith("\n"):
            value = value[:-1]
        out.append((name, ptype, value))
    return out


def xml_pairs(text: str) -> list[tuple[str, str]]:
    """(element name, its leading text) and (attribute name, value) pairs. Text is
    paired with the element opened just before it (`<password>v</password>`)."""
    out: list[tuple[str, str]] = []
    current = ""
    for m in _XML_TOKEN.finditer(text):
        if len(out) >= MAX_PAIRS:
            break
        name = m.group("name")
        if name is not None:
            attrs = m.group("attrs")
            current = "" if attrs.endswith("/") else name
            out += _attributes(attrs)
            continue
        value = m.group("text").strip()
        if current and value:
            if value.startswith("<![CDATA["):
                value = value[9:]
            out.append((current, _unescape(value)))
        current = ""
    return out


_ENTITIES = {"&lt;": "<", "&gt;": ">", "&amp;": "&", "&quot;": '"', "&apos;": "'"}
_ENTITY = re.compile(r"&(?:lt|gt|amp|quot|apos);")


def _unescape(value: str) -> str:
    return _ENTITY.sub(lambda m: _ENTITIES[m.group()], value) if "&" in value else value
