"""Leak masking: exact injected values first, token formats second, and streams that
never let a secret out in two halves."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.credentials.formats import find
from proxy.credentials.mask import (
    REDACTED,
    ByteMasker,
    ByteStreamMasker,
    Masker,
    StreamMasker,
    masker_for,
)
from tests.credentials.fakes import LOOKALIKES, format_fakes, rnd

SECRET = "crm-" + rnd(24) + "/+=x"
GH = "ghp_" + rnd(36)


def test_json_body_exact_and_formats() -> None:
    body = json.dumps({"echo": SECRET, "nested": [{"t": GH}], "ok": "fine"}).encode()
    masked, n = Masker([SECRET]).mask_bytes(body)
    assert n == 2
    assert json.loads(masked) == {"echo": REDACTED, "nested": [{"t": REDACTED}], "ok": "fine"}


@pytest.mark.parametrize(
    "rendering",
    [SECRET, SECRET.replace("/", "\\/"), "crm-" + SECRET[4:].replace("/", "%2F")
     .replace("+", "%2B").replace("=", "%3D")],
)
def test_escaped_renderings_are_masked(rendering: str) -> None:
    text, n = Masker([SECRET], formats=False).mask_text(f'{{"v": "{rendering}"}}')
    assert (text, n) == (f'{{"v": "{REDACTED}"}}', 1)


@pytest.mark.parametrize(("kind", "value"), format_fakes()[:29])
def test_every_format_masked(kind: str, value: str) -> None:
    text, n = Masker([]).mask_text(f"result: {value} end")
    assert n >= 1 and REDACTED in text
    for found_kind, start, end in find(value):
        assert found_kind == kind
        assert value[start:end] not in text


@pytest.mark.parametrize(("key", "value"), LOOKALIKES)
def test_lookalikes_untouched(key: str, value: str) -> None:
    text = json.dumps({key: value})
    assert Masker([]).mask_text(text) == (text, 0)


def test_url_password_masks_only_the_password() -> None:
    pw = "Pw" + rnd(12) + "9"
    text, _ = Masker([]).mask_text(f"dsn=postgres://app:{pw}@db:5432/x")
    assert text == f"dsn=postgres://app:{REDACTED}@db:5432/x"


def test_short_values_not_exact_masked_and_bytes_preserved() -> None:
    masker = Masker(["abc", SECRET], formats=False)
    data = b"\xff\xfeabc " + SECRET.encode() + b" \x80"
    out, n = masker.mask_bytes(data)
    assert (out, n) == (b"\xff\xfeabc " + REDACTED.encode() + b" \x80", 1)
    assert masker.mask_bytes(b"nothing here") == (b"nothing here", 0)


def test_masker_for_is_cached() -> None:
    assert masker_for(frozenset({SECRET})) is masker_for(frozenset({SECRET}))


def _sse(n: int) -> bytes:
    events = [f'event: message\ndata: {{"i": {i}, "v": "{SECRET if i % 2 else GH}"}}\n\n'
              for i in range(n)]
    return "".join(events).encode()


def _stream(masker: Masker, body: bytes, cuts: list[int], sse: bool) -> bytes:
    sm = StreamMasker(masker, sse=sse)
    out, pos = b"", 0
    for cut in [*cuts, len(body)]:
        out += sm.feed(body[pos:cut])
        pos = cut
    return out + sm.flush()


@pytest.mark.parametrize("sse", [True, False])
def test_stream_split_at_every_position(sse: bool) -> None:
    masker = Masker([SECRET])
    body = _sse(2) + "é €".encode()
    whole, _ = masker.mask_bytes(body)
    for cut in range(1, len(body)):
        out = _stream(masker, body, [cut], sse)
        assert out == whole, cut
        assert SECRET.encode() not in out and GH.encode() not in out


@pytest.mark.parametrize("sse", [True, False])
def test_stream_in_tiny_chunks(sse: bool) -> None:
    masker = Masker([SECRET])
    body = _sse(6)
    assert _stream(masker, body, list(range(3, len(body), 3)), sse) == masker.mask_bytes(body)[0]


def test_sse_events_go_out_when_complete() -> None:
    sm = StreamMasker(Masker([SECRET]), sse=True)
    first = f"data: {SECRET}\n\n".encode()
    assert sm.feed(first + b"data: par") == f"data: {REDACTED}\n\n".encode()
    assert sm.feed(b"tial\n\n") == b"data: partial\n\n"
    assert sm.flush() == b"" and sm.count == 1


def test_plain_stream_holds_only_a_tail() -> None:
    sm = StreamMasker(Masker([SECRET]))
    out = sm.feed(b"x" * 5000)
    assert 4000 <= len(out) < 5000
    assert len(out) + len(sm.flush()) == 5000


_PIECES = [SECRET, json.dumps(SECRET)[1:-1], GH, "password=", "Hunter2-Correct-Horse", " ",
           "\n\n", "data: ", '{"token": "', "ok", "é", "AKIA", "ghp_"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=8), st.integers(0, 200), st.integers(0, 200))
def test_clean_whole_means_clean_parts(pieces: list[str], a: int, b: int) -> None:
    """A complete answer that `clean` passes is sent without per-event masking, so
    `clean` must hold only where masking the text, or any part of it, changes nothing."""
    masker = masker_for(frozenset({SECRET}))
    text = "".join(pieces)
    if masker.clean(text):
        part = text[min(a, b):max(a, b)]
        assert masker.mask_text(text)[1] == 0 and masker.mask_text(part)[1] == 0
    if masker.mask_text(text)[1]:
        assert not masker.clean(text)


def _u(s: str) -> str:
    return "".join(f"\\u{ord(c):04x}" for c in s)


@pytest.mark.parametrize(
    "spelled",
    [
        _u(SECRET),  # every character escaped
        _u(SECRET).upper().replace("\\U", "\\u"),  # upper-case hex
        SECRET[:5] + _u(SECRET[5:9]) + SECRET[9:].replace("/", "\\/"),  # a mix
    ],
)
def test_unicode_escaped_secret_is_masked(spelled: str) -> None:
    """A JSON client reads any of these back as the secret."""
    body = f'{{"v": "{spelled}", "w": "\\u00e9t\\u00e9"}}'
    assert json.loads(body)["v"] == SECRET
    text, n = Masker([SECRET], formats=False).mask_text(body)
    assert n == 1 and json.loads(text) == {"v": REDACTED, "w": "\u00e9t\u00e9"}
    assert not Masker([SECRET], formats=False).clean(body)


def test_unicode_escaped_secret_masked_in_a_stream() -> None:
    body = f'{{"v": "{_u(SECRET)}"}}'.encode()
    sm = StreamMasker(Masker([SECRET], formats=False))
    out = b"".join(sm.feed(body[i : i + 7]) for i in range(0, len(body), 7)) + sm.flush()
    assert json.loads(out) == {"v": REDACTED} and sm.count == 1


def test_astral_characters_escaped_as_surrogate_pairs() -> None:
    secret = "key-\U0001f511-" + rnd(8)
    body = json.dumps({"v": secret})  # ensure_ascii: the emoji becomes a surrogate pair
    assert "\\ud83d\\udd11" in body
    text, n = Masker([secret], formats=False).mask_text(body)
    assert n == 1 and json.loads(text) == {"v": REDACTED}


def _byte_stream(masker: ByteMasker, body: bytes, cuts: list[int]) -> bytes:
    sm = ByteStreamMasker(masker)
    out, pos = b"", 0
    for cut in [*sorted(cuts), len(body)]:
        out += sm.feed(body[pos:cut])
        pos = cut
    return out + sm.flush()


def test_byte_stream_split_at_every_position() -> None:
    masker = ByteMasker([SECRET])
    body = b"\x00\xff" + SECRET.encode() + b"\x80" * 50 + SECRET.encode() + b"\x01"
    whole, n = masker.mask_bytes(body)
    assert n == 2 and SECRET.encode() not in whole
    for cut in range(len(body) + 1):
        assert _byte_stream(masker, body, [cut]) == whole, cut
    assert _byte_stream(masker, body, list(range(0, len(body), 3))) == whole


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from([SECRET.encode(), b"\x00", b"crm-", b"x" * 40, b"\xff\xfe"]),
             max_size=30),
    st.lists(st.integers(0, 2000), max_size=10),
)
def test_byte_stream_equals_whole_body(pieces: list[bytes], cuts: list[int]) -> None:
    masker = ByteMasker([SECRET])
    body = b"".join(pieces)
    cuts = [c for c in cuts if c <= len(body)]
    assert _byte_stream(masker, body, cuts) == masker.mask_bytes(body)[0]


@pytest.mark.parametrize("kind", ["text", "bytes"])
def test_stream_masking_is_linear_in_tiny_chunks(kind: str) -> None:
    """An upstream dribbling its body a few bytes at a time costs each byte a bounded
    number of searches: 4x the body is about 4x the time (quadratic would be 16x)."""
    import time

    def run(size: int) -> float:
        sm = (StreamMasker(Masker([SECRET])) if kind == "text"
              else ByteStreamMasker(ByteMasker([SECRET])))
        body = (b'{"v": "' + SECRET.encode()[:-1] + b'"} ') * (size // 40)
        t = time.perf_counter()
        for i in range(0, len(body), 3):
            sm.feed(body[i : i + 3])
        sm.flush()
        return time.perf_counter() - t

    run(20_000)  # warm-up
    small = min(run(100_000) for _ in range(2))
    big = min(run(400_000) for _ in range(2))
    assert big / small < 10, (small, big)
