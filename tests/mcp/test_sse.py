"""SSE framing: events come out the same whatever the chunk boundaries, raw bytes are
byte-faithful, fields follow the WHATWG rules, and re-serialisation round-trips."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.mcp.sse import SseEvent, SseEventTooLarge, SseParser, serialize

STREAM = (
    b'event: message\r\ndata: {"jsonrpc":"2.0","id":1,"result":{"tools":[]}}\r\n\r\n'
    b": keep-alive comment\n\n"
    b"id: 42\nevent: update\nretry: 1500\ndata: line one\ndata:line two\ndata\n\n"
    b"data: caf\xc3\xa9 \xe2\x9c\x93\r\r"
    b"data: mixed\r\nid: 7\n\n"
)


def _feed_all(chunks: list[bytes]) -> tuple[list[SseEvent], bytes]:
    p = SseParser()
    events: list[SseEvent] = []
    for c in chunks:
        events.extend(p.feed(c))
    last, rest = p.finish()
    return events + last, rest


def _whole() -> list[SseEvent]:
    events, rest = _feed_all([STREAM])
    assert rest == b""
    return events


def test_fields() -> None:
    ev = _whole()
    assert [e.data for e in ev] == [
        '{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}',
        None,
        "line one\nline two\n",
        "café ✓",
        "mixed",
    ]
    assert [e.event for e in ev] == ["message", None, "update", None, None]
    assert [e.id for e in ev] == [None, None, "42", None, "7"]
    assert ev[2].retry == 1500
    assert [e.eol for e in ev] == [b"\r\n", b"\n", b"\n", b"\r", b"\r\n"]


def test_raw_is_byte_faithful() -> None:
    assert b"".join(e.raw for e in _whole()) == STREAM


def test_one_byte_at_a_time() -> None:
    events, rest = _feed_all([STREAM[i : i + 1] for i in range(len(STREAM))])
    assert events == _whole() and rest == b""


def test_random_splits_seeded() -> None:
    rng = random.Random(1234)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(STREAM)), rng.randint(1, 20)))
        chunks = [STREAM[a:b] for a, b in zip([0, *cuts], [*cuts, len(STREAM)], strict=True)]
        assert _feed_all(chunks)[0] == _whole()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(STREAM) - 1), max_size=30))
def test_any_split(cuts: list[int]) -> None:
    cuts = sorted(set(cuts))
    chunks = [STREAM[a:b] for a, b in zip([0, *cuts], [*cuts, len(STREAM)], strict=True)]
    assert _feed_all(chunks)[0] == _whole()


_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=30
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.lists(_text, min_size=1, max_size=3).map("\n".join)),
            st.one_of(st.none(), _text.filter(lambda s: "\0" not in s)),
            st.one_of(st.none(), st.integers(min_value=0, max_value=10**6)),
            st.sampled_from([b"\n", b"\r\n", b"\r"]),
        ),
        min_size=1,
        max_size=5,
    ),
    st.data(),
)
def test_serialize_parse_round_trip(specs: list[tuple], data: st.DataObject) -> None:
    stream = b"".join(
        serialize(d, id=i, retry=r, event="message", eol=eol) for d, i, r, eol in specs
    )
    cuts = sorted(set(data.draw(st.lists(st.integers(1, max(1, len(stream) - 1)), max_size=10))))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    events, rest = _feed_all(chunks)
    assert rest == b""
    assert [(e.data, e.id, e.retry, e.event) for e in events] == [
        (d, i, r, "message") for d, i, r, _ in specs
    ]
    assert b"".join(e.raw for e in events) == stream


def test_with_data_keeps_fields_and_line_ending() -> None:
    first = _whole()[0]
    new = first.with_data('{"x":1}')
    assert new.raw == b'event: message\r\ndata: {"x":1}\r\n\r\n'
    assert SseParser().feed(new.raw)[0].data == '{"x":1}'


def test_multiline_data_serialises_one_line_each() -> None:
    assert serialize("a\nb\r\nc") == b"data: a\ndata: b\ndata: c\n\n"


def test_bom_and_partial_event() -> None:
    p = SseParser()
    assert p.feed(b"\xef\xbb") == []
    (ev,) = p.feed(b"\xbfdata: x\n\ndata: unfinished")
    assert ev.data == "x" and ev.raw.startswith(b"\xef\xbb\xbf")
    assert p.finish() == ([], b"data: unfinished")


def test_trailing_cr_waits_for_the_next_byte() -> None:
    p = SseParser()
    assert p.feed(b"data: a\r\r") == []  # the second '\r' may be half of '\r\n'
    (ev,) = p.feed(b"\n")
    assert ev.raw == b"data: a\r\r\n" and ev.data == "a"
    q = SseParser()
    assert q.feed(b"data: b\r\r") == []
    events, rest = q.finish()
    assert [e.data for e in events] == ["b"] and rest == b""


@pytest.mark.parametrize(
    ("raw", "field", "value"),
    [
        (b"retry: 12x\n\n", "retry", None),
        (b"id: a\x00b\n\n", "id", None),
        (b"id\n\n", "id", ""),
        (b"event:noSpace\n\n", "event", "noSpace"),
        (b"data:  two spaces\n\n", "data", " two spaces"),
        (b"unknown: x\ndata: y\n\n", "data", "y"),
    ],
)
def test_field_rules(raw: bytes, field: str, value: object) -> None:
    (ev,) = SseParser().feed(raw)
    assert getattr(ev, field) == value


def test_event_size_cap() -> None:
    p = SseParser(max_event_bytes=64)
    p.feed(b"data: " + b"x" * 40)
    with pytest.raises(SseEventTooLarge):
        p.feed(b"x" * 40)
    ok = SseParser(max_event_bytes=64)
    for _ in range(10):  # many small events never trip the cap
        assert len(ok.feed(b"data: " + b"x" * 40 + b"\n\n")) == 1
