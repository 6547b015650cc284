"""The fast JSON reader and writer must give what the stdlib gives, for every document."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.model.jsonio import dumps, loads

_SCALARS = (st.none() | st.booleans() | st.integers(-(2**80), 2**80)
            | st.floats(allow_nan=False, allow_infinity=False) | st.text())
DOCS = st.recursive(_SCALARS, lambda kids: st.lists(kids, max_size=4)
                    | st.dictionaries(st.text(max_size=8), kids, max_size=4), max_leaves=20)


def _surrogates(doc: object) -> bool:
    if isinstance(doc, str):
        return any(0xD800 <= ord(c) <= 0xDFFF for c in doc)
    if isinstance(doc, list):
        return any(_surrogates(x) for x in doc)
    if isinstance(doc, dict):
        return any(_surrogates(k) or _surrogates(v) for k, v in doc.items())
    return False


@settings(max_examples=400, deadline=None)
@given(DOCS)
def test_same_values_as_the_stdlib(doc: object) -> None:
    if _surrogates(doc):
        return  # not encodable as UTF-8 by either writer
    out = dumps(doc)
    assert json.loads(out) == doc  # big integers stay integers, exactly
    stdlib = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    assert json.loads(out) == json.loads(stdlib)


def test_nan_and_infinity_from_a_stdlib_parse_are_kept() -> None:
    """orjson would write them as null: a source holding the tokens takes the stdlib."""
    for source in (b'{"x": NaN, "y": -Infinity}', '{"x": NaN, "y": -Infinity}'):
        doc = json.loads(source)
        out = json.loads(dumps(doc, source))
        assert math.isnan(out["x"]) and out["y"] == -math.inf


def test_big_integers_are_exact() -> None:
    want = '{"id":1180591620717411303424,"s":"é\u2028"}'.encode()
    assert dumps({"id": 2**70, "s": "é\u2028"}) == want


def _typed(doc: object) -> object:
    """`doc` with every number tagged by its type: 1 and 1.0 must not compare equal."""
    if isinstance(doc, list):
        return [_typed(x) for x in doc]
    if isinstance(doc, dict):
        return {k: _typed(v) for k, v in doc.items()}
    if isinstance(doc, bool) or doc is None or isinstance(doc, str):
        return doc
    return (type(doc).__name__, repr(doc))


@settings(max_examples=400, deadline=None)
@given(DOCS, st.booleans(), st.sampled_from(["", " ", "\n"]))
def test_loads_reads_what_the_stdlib_reads(doc: object, as_bytes: bool, pad: str) -> None:
    if _surrogates(doc):
        return
    text = pad + json.dumps(doc, ensure_ascii=bool(pad)) + pad
    source: bytes | str = text.encode() if as_bytes else text
    assert _typed(loads(source)) == _typed(json.loads(source))


@pytest.mark.parametrize("text", [
    '{"n": 123456789012345678901234567890}', '[18446744073709551616, -9223372036854775809]',
    '{"x": NaN}', "[Infinity]", '"\\ud800"', "\ufeff{}", '{"a": 1, "a": 2}', "[1e400]",
    "[01]", '{"a" 1}', "", "[" * 3000 + "]" * 3000,
])
def test_loads_edge_cases_match_the_stdlib(text: str) -> None:
    for source in (text, text.encode("utf-8", "surrogatepass")):
        try:
            want: object = ("value", _typed(json.loads(source)))
        except (ValueError, RecursionError) as exc:
            want = ("error", type(exc))
        try:
            got: object = ("value", _typed(loads(source)))
        except (ValueError, RecursionError) as exc:
            got = ("error", type(exc))
        assert got == want
