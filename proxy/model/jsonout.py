"""Compact JSON out, fast: orjson writes a 2 KB tools/list 20x faster than the stdlib.

Parsing stays with the stdlib (orjson reads integers past 64 bits as floats, which would
change a body the proxy re-encodes). Writing goes through orjson only where it writes
the same values: it refuses integers past 64 bits (the stdlib then writes them), and it
writes NaN and Infinity, which only a stdlib parse of a source holding those tokens can
produce, as null, so such sources take the stdlib as well.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_STDLIB = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _finite(source: bytes | str) -> bool:
    if isinstance(source, bytes):
        return b"NaN" not in source and b"Infinity" not in source
    return "NaN" not in source and "Infinity" not in source


def dumps(doc: Any, source: bytes | str = b"") -> bytes:
    """`doc` as compact UTF-8 JSON (what `json.dumps(..., separators=(",", ":"),
    ensure_ascii=False)` writes, up to the spelling of floats). `source`: the text `doc`
    was parsed from, when it was."""
    if _finite(source):
        try:
            return orjson.dumps(doc)
        except TypeError:  # orjson.JSONEncodeError: a big integer, a lone surrogate
            pass
    return _STDLIB.encode(doc).encode("utf-8")
