"""Detection is linear-time on any input up to the inspection cap (issue 21): crafted
worst cases at 1 MiB, in a body of every scanned type, in 100 headers of 8 KiB and in a
query string, each judged within 2 s on a busy 2-core box (typically well under 1 s).
The old patterns took ~4 s at 100 KB (an unbounded repeat after `eyJ`, a searched
`{{.*}}`)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from urllib.parse import quote

import pytest

from proxy.credentials import formats
from proxy.credentials.detect import MAX_SCAN_BYTES, Detector

MIB = MAX_SCAN_BYTES
BOUND_S = 2.0
"""Typical worst unit: 0.3-0.7 s with 2 cores shared by several test runs; quadratic
matching at this size takes minutes (the old code: ~6 s for the 100 headers alone)."""
D = Detector()


def _fill(unit: str, size: int = MIB) -> str:
    return (unit * (size // len(unit) + 1))[:size]


# Each unit repeated to the cap: prefixes that start a match which then fails late,
# references and braces, assignment operators without values, nested-looking markup.
_NEEDLE_SOUP = "".join(n + "A1b2C3d4" for n, _ in formats._NEEDLES)
UNITS = {
    "jwt_prefix": "eyJa",
    "jwt_two_segments": "eyJabcdefghij.eyJabcdefghij.",
    "braces": "{{",
    "dollar_brace": "${",
    "dollar_paren": "$(",
    "colons": ":",
    "equals_spaces": "= \t ",
    "assignments": "password=",
    "json_keys": '"token": "',
    "xml_open": "<password>",
    "xml_attrs": '<a b="',
    "cli_flags": "--password ",
    "basic": "Basic QUJD",
    "pem_headers": "-----BEGIN PRIVATE KEY-----\nMIIB",
    "url_userinfo": "://a:",
    "slack": "https://hooks.slack.com/services/TABCDEF",
    "aws": "AKIAAAAAAAAA",
    "github": "ghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "azure_q": "abc1Q~",
    "telegram": "123456789:AA",
    "all_needles": _NEEDLE_SOUP,
}


def _timed(fn: Callable[[], object]) -> float:
    """Best of two runs: another process taking the core for a moment is not the scan."""
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
        if best < BOUND_S / 2:
            break
    return best


@pytest.mark.parametrize("unit", list(UNITS.values()), ids=list(UNITS))
def test_bodies_at_the_cap(unit: str) -> None:
    text = _fill(unit)
    data = text.encode()
    doc = {"note": text[: MIB - 20], "password": text[:16384]}
    form = ("a=" + quote(text[: MIB // 3])).encode()
    path = "/" + quote(text[: MIB // 3])
    cases = {
        "text": lambda: D.scan_body("text/plain", data),
        "json_string": lambda: D.scan_json(doc),
        "form": lambda: D.scan_body("application/x-www-form-urlencoded", form),
        "xml": lambda: D.scan_body("application/xml", data),
        "multipart": lambda: D.scan_body("multipart/form-data; boundary=xyz", data),
        "path": lambda: D.scan_path(path),
    }
    for name, fn in cases.items():
        took = _timed(fn)
        assert took < BOUND_S, (name, took)


@pytest.mark.parametrize("unit", list(UNITS.values()), ids=list(UNITS))
def test_headers_and_query_at_the_cap(unit: str) -> None:
    value = _fill(unit, 8192)
    headers = {f"X-Custom-{i}": value for i in range(98)}
    headers["Authorization"] = "Bearer " + value
    headers["Cookie"] = "session=" + value
    took = _timed(lambda: D.scan_headers(headers))
    assert took < BOUND_S, took
    pairs = [(f"k{i}", value) for i in range(MIB // 8192)]
    took = _timed(lambda: D.scan_query(pairs))
    assert took < BOUND_S, took


def test_a_deep_document_of_every_unit() -> None:
    doc = {k: _fill(v, MIB // len(UNITS) // 2) for k, v in UNITS.items()}
    assert len(json.dumps(doc)) <= 2 * MIB
    took = _timed(lambda: D.scan_json(doc))
    assert took < BOUND_S, took
