from __future__ import annotations

import struct

import pytest

from proxy.pgwire import messages as m


@pytest.mark.parametrize(
    ("packet", "expected"),
    [
        (struct.pack("!i", m.SSL_REQUEST), m.SpecialRequest(m.SSL_REQUEST)),
        (struct.pack("!i", m.GSSENC_REQUEST), m.SpecialRequest(m.GSSENC_REQUEST)),
        (struct.pack("!iii", m.CANCEL_REQUEST, 7, -3), m.CancelKey(7, -3)),
        (struct.pack("!i", m.PROTOCOL_3) + b"user\0u\0database\0d\0\0",
         m.Startup(m.PROTOCOL_3, {"user": "u", "database": "d"})),
        (struct.pack("!i", m.PROTOCOL_3 + 2) + b"\0", m.Startup(m.PROTOCOL_3 + 2, {})),
    ],
)
def test_parse_startup_packet(packet: bytes, expected: object) -> None:
    assert m.parse_startup_packet(packet) == expected


@pytest.mark.parametrize(
    "packet",
    [
        b"\0\0",
        struct.pack("!i", 2 << 16) + b"\0",  # protocol 2
        struct.pack("!i", m.PROTOCOL_3) + b"user\0u\0",  # no final NUL
        struct.pack("!i", m.PROTOCOL_3) + b"user\0\0",  # key without value
        struct.pack("!ii", m.CANCEL_REQUEST, 1),
    ],
)
def test_parse_startup_packet_rejects(packet: bytes) -> None:
    with pytest.raises(m.ProtocolError):
        m.parse_startup_packet(packet)


def test_startup_message_round_trip() -> None:
    params = {"user": "u", "application_name": "café"}
    raw = m.startup_message(params)
    assert struct.unpack("!i", raw[:4])[0] == len(raw)
    assert m.parse_startup_packet(raw[4:]) == m.Startup(m.PROTOCOL_3, params)


def test_iter_frames_stops_at_partial_and_checks_size() -> None:
    buf = m.query("SELECT 1") + m.SYNC + m.query("SELECT 2")[:7]
    frames = list(m.iter_frames(buf, 0, 1000))
    assert [bytes(buf[s : s + 1]) for s, _ in frames] == [b"Q", b"S"]
    assert frames[-1][1] == len(m.query("SELECT 1")) + 5
    with pytest.raises(m.ProtocolError):
        list(m.iter_frames(m.query("x" * 100), 0, 50))
    with pytest.raises(m.ProtocolError):
        list(m.iter_frames(b"Q\0\0\0\2", 0, 50))  # length below 4


def test_parse_message_round_trip() -> None:
    msg = m.ParseMsg("s1", "SELECT $1", struct.pack("!hi", 1, 23))
    raw = m.build_parse(msg)
    assert raw[:1] == b"P" and m.parse_parse(raw[5:]) == msg
    assert m.parse_query(m.query("SELECT 'é'")[5:]) == "SELECT 'é'"


def test_error_response_fields() -> None:
    raw = m.error_response("42501", "SQL_BLOCKED: no", detail="d")
    assert raw[:1] == b"E"
    assert m.parse_fields(raw[5:]) == {"S": "ERROR", "V": "ERROR", "C": "42501",
                                       "M": "SQL_BLOCKED: no", "D": "d"}
    assert m.error_response("01000", "w", notice=True)[:1] == b"N"


def test_sasl_initial_response_round_trip() -> None:
    raw = m.sasl_initial_response("SCRAM-SHA-256", b"n,,n=,r=abc")
    assert m.parse_sasl_initial_response(raw[5:]) == ("SCRAM-SHA-256", b"n,,n=,r=abc")


def test_cancel_and_key_data() -> None:
    key = m.CancelKey(12, 34)
    assert m.parse_startup_packet(m.cancel_request(key)[4:]) == key
    assert m.parse_backend_key_data(m.backend_key_data(key)[5:]) == key


@pytest.mark.parametrize("body", [
    b"SELECT 1\0; DELETE FROM t\0",  # a second text after the judged one
    b"SELECT \x95\\'\0",  # SJIS bytes: not UTF-8
    b"SELECT '\xed\xa0\x80'\0",  # a surrogate encoded as UTF-8
    b"SELECT 1",  # unterminated
])
def test_query_text_is_exactly_one_utf8_string(body: bytes) -> None:
    with pytest.raises(m.BadText if body.endswith(b"\0") else m.ProtocolError):
        m.parse_query(body)


@pytest.mark.parametrize("types", [b"", b"\0", b"\0\1", b"\0\1\0\0\0\x17\0", b"\0\0x"])
def test_parse_message_parameter_types_exact(types: bytes) -> None:
    with pytest.raises(m.BadText):
        m.parse_parse(b"s\0SELECT $1\0" + types)
