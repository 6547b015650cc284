"""The fast JSON writer must write the values the stdlib writes, for every document."""

from __future__ import annotations

import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.model.jsonout import dumps

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
