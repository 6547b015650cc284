"""The fast JSON reader and writer must give what the stdlib gives, for every document."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.model.jsonio import DuplicateKeyError, dumps, loads, loads_unique

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


# -- loads_unique ----------------------------------------------------------------------

_KEYS = st.sampled_from(["a", "b", "\\u0061", "a:b", "::", "ü"])
_VALUES = st.sampled_from(['1', '"x"', '"a:b"', '"http://h:1/"', "null", "[]", "{}", '"\\u003a"'])


@st.composite
def _texts(draw: st.DrawFn, depth: int = 0) -> str:
    """JSON objects written by hand, so the same key can appear twice (spelled alike or
    escaped differently) and colons sit in keys and values."""
    members = []
    for _ in range(draw(st.integers(0, 4))):
        key = draw(_KEYS)
        nested = depth < 2 and draw(st.booleans())
        value = draw(_texts(depth + 1)) if nested else draw(_VALUES)
        members.append(f'"{key}"{draw(st.sampled_from([":", " : "]))}{value}')
    text = "{" + ",".join(members) + "}"
    return f"[{text}, 0]" if draw(st.booleans()) else text


def _strict(text: str) -> object:
    def pairs(items: list[tuple[str, object]]) -> dict[str, object]:
        if len(dict(items)) != len(items):
            raise DuplicateKeyError("dup")
        return dict(items)
    return json.loads(text, object_pairs_hook=pairs)


@settings(max_examples=500, deadline=None)
@given(_texts(), st.sampled_from(["str", "utf-8", "utf-16"]))
def test_loads_unique_refuses_exactly_the_duplicates(text: str, form: str) -> None:
    """UTF-16 too: the stdlib parser reads it, and its bytes hold colons (0x3A) that are
    no colon, so the colon count must not decide for it."""
    source: bytes | str = text if form == "str" else text.encode(form)
    try:
        want: object = ("value", _typed(_strict(text)))
    except DuplicateKeyError:
        want = "duplicate"
    try:
        got: object = ("value", _typed(loads_unique(source)))
    except DuplicateKeyError:
        got = "duplicate"
    assert got == want


@pytest.mark.parametrize("text", [
    '{"query": "DROP TABLE t", "query": "SELECT 1"}',  # judged by one copy, run by the other
    '{"a": 1, "\\u0061": 2}',  # the same key spelled two ways
    '[{"x": {"k": 1, "k": 2}}]',
    '{"t": "10:00", "t": 1}',  # a colon in a string must not hide the duplicate
])
def test_loads_unique_duplicates(text: str) -> None:
    for source in (text, text.encode()):
        with pytest.raises(DuplicateKeyError):
            loads_unique(source)


@pytest.mark.parametrize("text", [
    '{"q": "SELECT x::int, \'10:00\'"}', '"a:b"', "[1, 2]", "7", '{"a": {"b": {"c": []}}}',
    '{"u": "\\u003a"}',
])
def test_loads_unique_reads_what_loads_reads(text: str) -> None:
    assert _typed(loads_unique(text)) == _typed(loads(text))
    assert _typed(loads_unique(text.encode())) == _typed(loads(text.encode()))


def test_loads_unique_deep_nesting_and_errors_as_loads() -> None:
    deep = '{"a":' * 900 + "1" + "}" * 900  # deeper than orjson writes: the stdlib decides
    doc = loads_unique(deep)
    for _ in range(900):
        doc = doc["a"]
    assert doc == 1
    with pytest.raises(DuplicateKeyError):
        loads_unique('{"a":' * 900 + '{"b": 1, "b": 1}' + "}" * 900)
    for bad in ("", "{", '{"a" 1}'):
        with pytest.raises(ValueError):
            loads_unique(bad)
