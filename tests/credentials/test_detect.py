"""Plaintext credential detection: every fake in every location is caught, every
look-alike passes, and findings never carry the value."""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from proxy.credentials import formats, literals
from proxy.credentials.detect import Detector, Finding, describe
from proxy.credentials.formats import FORMATS as FORMAT_SPECS
from proxy.credentials.formats import Format
from tests.credentials.fakes import LOOKALIKES, format_fakes, github, keyed_fakes, rnd

FORMATS = format_fakes()
KEYED = keyed_fakes()
D = Detector()


def test_corpus_sizes() -> None:
    assert len(FORMATS) + len(KEYED) >= 80
    assert len(LOOKALIKES) >= 60


def _no_value(findings: list[Finding], value: str) -> None:
    text = describe(findings) + repr(findings)
    for piece in (value, value[-12:]):
        assert piece not in text


@pytest.mark.parametrize(("kind", "value"), FORMATS)
def test_format_in_json(kind: str, value: str) -> None:
    body = {"task": {"steps": [{"note": "hello"}, {"note": value}]}}
    found = D.scan_json(body)
    assert found == [Finding("json /task/steps/1/note", kind)]
    _no_value(found, value)


@pytest.mark.parametrize(("kind", "value"), FORMATS)
def test_format_in_query_form_text_and_mcp_arguments(kind: str, value: str) -> None:
    assert D.scan_query([("q", "x"), ("note", value)]) == [Finding("query note", kind)]
    form = urlencode({"a": "1", "note": value}).encode()
    assert D.scan_body("application/x-www-form-urlencoded", form) == [Finding("form note", kind)]
    assert D.scan_body("text/plain", f"see:\n{value}\n".encode()) == [Finding("body", kind)]
    args = {"path": "/tmp", "opts": {"note": value}}
    assert D.scan_mapping(args, "/params/arguments") == [
        Finding("json /params/arguments/opts/note", kind)
    ]


@pytest.mark.parametrize(("kind", "value"), [(k, v) for k, v in FORMATS if "\n" not in v])
def test_format_in_any_header(kind: str, value: str) -> None:
    headers = CIMultiDict([("Accept", "application/json"), ("X-Debug-Context", value)])
    assert D.scan_headers(headers) == [Finding("header X-Debug-Context", kind)]


@pytest.mark.parametrize(("key", "value", "kind"), KEYED)
def test_literal_under_secret_key(key: str, value: str, kind: str) -> None:
    assert D.scan_json({"config": {key: value}}) == [Finding(f"json /config/{key}", kind)]
    assert D.scan_query([(key, value)]) == [Finding(f"query {key}", kind)]
    form = urlencode({key: value}).encode()
    assert D.scan_form(form) == [Finding(f"form {key}", kind)]
    found = D.scan_body("text/plain", f"{key}={value}".encode())
    assert [f.kind for f in found] == [kind] or kind == "bearer_token"


@pytest.mark.parametrize(("key", "value"), LOOKALIKES)
def test_lookalike_passes(key: str, value: str) -> None:
    assert D.scan_json({"data": {key: value}}) == []
    assert D.scan_query([(key, value)]) == []
    assert D.scan_body("text/plain", f"{key}: {value}".encode()) == []


BASIC = base64.b64encode(b"deploy:" + rnd(14).encode()).decode()
HEADER_CASES = [
    ({"Authorization": f"Bearer {rnd(32)}"}, "header Authorization", "bearer_token"),
    ({"authorization": f"Bearer {FORMATS[2][1]}"}, "header authorization", "github_token"),
    ({"Authorization": f"token {rnd(40)}"}, "header Authorization", "bearer_token"),
    ({"Authorization": f"Basic {BASIC}"}, "header Authorization", "basic_auth"),
    ({"Authorization": rnd(40)}, "header Authorization", "bearer_token"),
    ({"Proxy-Authorization": f"Basic {BASIC}"}, "header Proxy-Authorization", "basic_auth"),
    ({"X-API-Key": rnd(24)}, "header X-API-Key", "api_key"),
    ({"Private-Token": "glpat-" + rnd(20)}, "header Private-Token", "gitlab_token"),
    ({"X-Vault-Token": "hvs." + rnd(24)}, "header X-Vault-Token", "vault_token"),
    ({"Cookie": f"theme=dark; sessionid={rnd(32)}"}, "header Cookie", "session_cookie"),
    ({"X-Client-Secret-Value": rnd(30)}, "header X-Client-Secret-Value", "secret_key_value"),
]


@pytest.mark.parametrize(("headers", "location", "kind"), HEADER_CASES)
def test_header_credentials(headers: dict[str, str], location: str, kind: str) -> None:
    assert D.scan_headers(headers) == [Finding(location, kind)]


HEADER_LOOKALIKES = [
    {"Authorization": "Bearer ${env:CRM_TOKEN}"},
    {"Authorization": ""},
    {"Authorization": "Bearer ****"},
    {"Authorization": "Bearer <token>"},
    {"Authorization": "Basic " + base64.b64encode(b"user:").decode()},
    {"X-API-Key": "********"},
    {"X-API-Key": "vault:secret/data/crm#key"},
    {"Cookie": "theme=dark; lang=en; consent=yes"},
    {"X-Request-ID": "6f1c2a9e-8f0b-4c1e-9a55-3f2b7d9e0c11"},
    {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
    {"If-None-Match": '"d41d8cd98f00b204e9800998ecf8427e"'},
    {"X-Token-Count": "12345678"},
    {"User-Agent": "orchestrator/1.4 (+https://example.com/bot)"},
]


@pytest.mark.parametrize("headers", HEADER_LOOKALIKES)
def test_header_lookalikes(headers: dict[str, str]) -> None:
    assert D.scan_headers(headers) == []


def test_extra_headers_and_allowlist() -> None:
    headers = {"X-Partner-Key": rnd(24), "X-Debug-Token": github()}
    assert D.scan_headers({"X-Partner-Key": "abc-123-def-456"}) == []
    d = Detector(extra_headers=["x-partner-key"], allow=["header x-debug-token"])
    assert d.scan_headers(headers) == [Finding("header X-Partner-Key", "api_key")]
    d = Detector(allow=["json /samples/*", "query sample"])
    body = {"samples": {"a": {"password": "Tr0ub4dor&3x"}}, "password": "Tr0ub4dor&3x"}
    assert d.scan_json(body) == [Finding("json /password", "secret_key_value")]
    assert d.scan_query([("sample", github())]) == []


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b'{"a": "\xff\xfe broken utf-8", "b": [1, 2'),
        ("application/json", b"not json at all"),
        ("application/json", b""),
        ("application/octet-stream", b"\x00\x01" + github().encode()),
        ("image/png", b"\x89PNG\r\n\x1a\n" + bytes(range(256))),
        ("text/plain; charset=latin-1", "caf\xe9 cr\xe8me".encode("latin-1")),
        ("", b"[1, 2, 3]"),
        ("application/x-www-form-urlencoded", b"%zz=%ff&a=&=b"),
    ],
)
def test_bad_bodies_do_not_crash(content_type: str, body: bytes) -> None:
    assert D.scan_body(content_type, body) == []


def test_broken_json_still_scanned_as_text() -> None:
    token = github()
    body = b'{"note": "' + token.encode() + b'", "x": '
    assert D.scan_body("application/json", body) == [Finding("body", "github_token")]


def test_scan_size_is_bounded() -> None:
    d = Detector(max_scan_bytes=1000)
    late = json.dumps({"pad": "x" * 2000, "password": "Tr0ub4dor&3x"}).encode()
    assert d.scan_body("application/json", late) == []  # beyond the cap: not read
    early = json.dumps({"note": github(), "pad": "x" * 2000}).encode()
    assert d.scan_body("application/json", early) == [Finding("body", "github_token")]


def test_deep_and_wide_json_is_bounded() -> None:
    deep: object = github()
    for _ in range(500):
        deep = [deep]
    assert D.scan_json(deep) == []  # beyond MAX_DEPTH: not walked, and no RecursionError
    wide = {f"k{i}": "v" for i in range(50_000)}
    wide["zz"] = github()
    assert D.scan_json(wide) == [Finding("json /zz", "github_token")]


def test_pointer_escaping_and_list_keys() -> None:
    body = {"a/b": {"m~n": github()}, "api_keys": ["short", rnd(32)]}
    assert D.scan_json(body) == [
        Finding("json /a~1b/m~0n", "github_token"),
        Finding("json /api_keys/1", "secret_key_value"),
    ]


def test_scan_request_combines_locations() -> None:
    found = D.scan_request(
        {"Authorization": "Bearer " + rnd(30)},
        [("api_key", rnd(30))],
        "application/json",
        json.dumps({"password": "Tr0ub4dor&3x"}).encode(),
    )
    assert describe(found) == (
        "plaintext credential in header Authorization (bearer_token), "
        "query api_key (secret_key_value), json /password (secret_key_value)"
    )


def _without_lookarounds(pattern: str) -> str:
    return re.sub(r"\(\?[=!][^()]*(?:\[[^\]]*\][^()]*)*\)", "", pattern)


@pytest.mark.parametrize("fmt", FORMAT_SPECS, ids=lambda f: f.kind)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_needles_cover_every_match(fmt: Format, data: st.DataObject) -> None:
    """A format is skipped for a text holding none of its needles: every text the
    pattern matches must hold one, or a credential would pass unseen."""
    text = data.draw(st.from_regex(_without_lookarounds(fmt.pattern), fullmatch=True))
    assert any(n in text for n in fmt.needles), text


@pytest.mark.parametrize(("kind", "value"), FORMATS)
def test_needles_change_no_finding(kind: str, value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    text = f"before {value} after"
    with_needles = formats.find(text)
    monkeypatch.setattr(formats, "_scan", lambda _: (set(range(len(FORMAT_SPECS))), True))
    assert formats.find(text) == with_needles != []


_KEY_PIECES = sorted(
    literals._SECRET_WORDS | literals._KEY_QUALIFIERS | literals._METADATA
    | literals._TOKEN_QUALIFIERS | {"key", "keys", "Key", "KEY", "Token", "PASSWORD", "x", "db"}
)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_KEY_PIECES), min_size=1, max_size=4),
       st.sampled_from(["_", "-", ".", "", "camel"]))
def test_key_hints_cover_every_secret_key(words: list[str], sep: str) -> None:
    """The assignment scan is skipped for texts without a hint: every key the
    classifier calls secret must hold one."""
    key = ("".join(w[:1].upper() + w[1:] for w in words) if sep == "camel"
           else sep.join(words))
    if literals.is_secret_key(key):
        assert any(h in key.lower() for h in formats.KEY_HINTS), key


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40), st.text(max_size=40), st.data())
def test_gates_find_every_needle_and_hint(before: str, after: str, data: st.DataObject) -> None:
    """A needle group is skipped when its gate finds nothing: the gate must find every
    needle of its group (and the hint gates every hint) wherever it sits."""
    needle, index = data.draw(st.sampled_from(formats._NEEDLES))
    text = before + needle + after
    groups = [members for gate, members in formats._NEEDLE_GROUPS if gate.search(text)]
    assert any((needle, index) in members for members in groups)
    assert formats._gated_may_match(text) and formats.may_match(text)
    assert index in formats._scan(text)[0]
    hint = data.draw(st.sampled_from(formats.KEY_HINTS))
    cased = "".join(c.upper() if data.draw(st.booleans()) else c for c in hint)
    assert formats._gated_hint(before + cased + after)
    assert formats._scan(before + cased + after)[1]


_PIECES = st.sampled_from([
    *(n for n, _ in formats._NEEDLES), *formats.KEY_HINTS, "KEY", "Token", "\u212aey",
    "\u212a", "ey", "é", "\udcff", "sk", "-", "gh", "p_", " ", "x", "İ", "PASS"])


@pytest.mark.fast_path
@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(_PIECES, st.text(max_size=3)), max_size=12).map("".join))
def test_the_automaton_agrees_with_the_gates(text: str) -> None:
    """The one-pass automaton (the `speed` extra) and the per-character gates are two
    prefilters for the same thing: they must agree on every text, non-ASCII ones (a
    Kelvin sign lowers to k) and lone surrogates (no UTF-8 form) included."""
    assert formats._scan(text) == formats._gated_scan(text)
    assert formats.may_match(text) == formats._gated_may_match(text)


def test_the_speed_extra_is_installed() -> None:
    """CI installs the `speed` extra: the automaton path is the one under test."""
    assert formats.AhoCorasick is not None


_JSON_KEYS = st.sampled_from(["note", "dbPassword", "api_key", "X-Api-Key", "tokens", "name",
                              "client_secret", "\u212aey", "q"])
_JSON_VALUES = st.one_of(
    st.sampled_from([v for _, v in FORMATS] + ["Zq8-rT5v-Lm3x-Np7w", "hello", "é", ""]),
    st.text(max_size=12))
_DOCS = st.recursive(
    st.dictionaries(_JSON_KEYS, _JSON_VALUES, max_size=4),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(_JSON_KEYS, inner, max_size=3)),
    max_leaves=8)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_DOCS, st.booleans())
def test_a_clean_raw_body_means_a_clean_document(doc: object, ascii_only: bool) -> None:
    """`json_clean` lets the guard skip the document walk: it may say clean only when
    the walk finds nothing."""
    body = json.dumps(doc, ensure_ascii=ascii_only).encode()
    findings = Detector().scan_json(json.loads(body))
    if Detector.json_clean(body):
        assert findings == [], body
    if findings and b"\\" not in body:
        assert not Detector.json_clean(body)
