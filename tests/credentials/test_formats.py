"""The detector table, detector by detector: a true sample of each kind is found as that
kind, and the same sample masked is not; structure decides (checksums, bodies that
decode), never a placeholder word inside an otherwise valid token."""

from __future__ import annotations

import base64
import json
import re
import zlib
from pathlib import Path

import pytest

from proxy.credentials import formats
from proxy.credentials.detect import Detector, Finding
from tests.credentials.fakes import github, jwt, pem, rnd

D = Detector()
CORPUS = json.loads((Path(__file__).parent / "data" / "secret_corpus.json").read_text())
FIRST: dict[str, str] = {}
for _s in CORPUS["alone"]:
    FIRST.setdefault(_s["kind"], _s["text"])
KINDS = sorted({f.kind for f in formats.FORMATS})


def _kinds(text: str) -> list[str]:
    return [f.kind for f in D.scan_json({"note": text})]


def test_every_format_kind_has_a_sample() -> None:
    assert set(KINDS) <= set(FIRST), sorted(set(KINDS) - set(FIRST))


@pytest.mark.parametrize("kind", KINDS)
def test_true_sample_found_as_its_kind(kind: str) -> None:
    assert _kinds(FIRST[kind]) == [kind]


@pytest.mark.parametrize("kind", KINDS)
def test_masked_sample_is_a_lookalike(kind: str) -> None:
    """Every letter and digit outside the detector's literal needle becomes `x`."""
    text = FIRST[kind]
    needle = next(n for f in formats.FORMATS if f.kind == kind for n in f.needles if n in text)
    i = text.find(needle)
    masked = (re.sub(r"[A-Za-z0-9]", "x", text[:i]) + needle
              + re.sub(r"[A-Za-z0-9]", "x", text[i + len(needle):]))
    assert _kinds(masked) == []


def test_github_checksum_decides() -> None:
    token = github()
    assert formats.github_checksum_ok(token) and _kinds(token) == ["github_token"]
    flipped = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
    assert not formats.github_checksum_ok(flipped) and _kinds(flipped) == []
    # a failed checksum under a secret-looking key is still a look-alike, not a password
    assert D.scan_json({"GITHUB_TOKEN": flipped}) == []
    assert D.scan_json({"GITHUB_TOKEN": token}) == [Finding("json /GITHUB_TOKEN", "github_token")]


def test_placeholder_words_inside_a_valid_token_do_not_hide_it() -> None:
    for word in ("example", "fake", "dummy", "xxxx", "EXAMPLE", "test"):
        word = "Q7" + word + "Z3"  # a random neighbour could make `xxxx` a 5-run (a mask)
        body = (rnd(8) + word + rnd(30))[:30]
        n, tail = zlib.crc32(body.encode()), ""
        alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
        while n:
            n, r = divmod(n, 62)
            tail = alphabet[r] + tail
        assert _kinds("ghp_" + body + tail.rjust(6, "0")) == ["github_token"], word
        assert _kinds("sk_live_" + rnd(12) + word + rnd(12)) == ["stripe_key"], word
        assert _kinds(jwt()[:-8] + word) == ["jwt"], word


def test_private_keys_need_a_body_that_decodes() -> None:
    key = pem("RSA PRIVATE KEY")
    assert _kinds(key) == ["private_key"]
    assert _kinds(key.split("-----END")[0]) == ["private_key"]  # cut before its END line
    assert _kinds("-----BEGIN RSA PRIVATE KEY-----") == []
    assert _kinds("-----BEGIN PRIVATE KEY-----\n" + "this is not a key at all\n" * 3
                  + "-----END PRIVATE KEY-----") == []
    assert _kinds("-----BEGIN PRIVATE KEY-----\n" + rnd(64, "ABCDEFGH") + "\n"
                  "-----END PRIVATE KEY-----") == []  # decodes, but to no key structure
    escaped = json.dumps(key)[1:-1]  # a key inside raw JSON text: `\n` escapes
    assert D.scan_body("text/plain", escaped.encode()) == [Finding("body", "private_key")]


def test_jwts_need_segments_that_decode() -> None:
    token = jwt()
    assert _kinds(token) == ["jwt"]
    assert _kinds(base64.b64encode(token.encode()).decode()) == ["jwt"]
    assert _kinds("eyJ" + rnd(30) + ".eyJ" + rnd(40) + "." + rnd(43)) == []
    head, body, _sig = token.split(".")
    assert _kinds(f"{head}.{body}.") == []  # unsigned


@pytest.mark.parametrize(("key", "value", "kind"), [
    ("HEROKU_API_KEY", "6f1c2a9e-8f0b-4c1e-9a55-3f2b7d9e0c11", "heroku_api_key"),
    ("snykToken", "6f1c2a9e-8f0b-4c1e-9a55-3f2b7d9e0c11", "snyk_token"),
    ("DATADOG_API_KEY", "9f86d081884c7d659a2feaa0c55ad015", "datadog_key"),
    ("asana_access_token", "1/1208153972046381:9f86d081884c7d659a2feaa0c55ad015", "asana_token"),
    ("request_id", "6f1c2a9e-8f0b-4c1e-9a55-3f2b7d9e0c11", None),
    ("heroku_app_id", "6f1c2a9e-8f0b-4c1e-9a55-3f2b7d9e0c11", None),
    ("datadog_trace_id", "9f86d081884c7d659a2feaa0c55ad015", None),
])
def test_context_rules(key: str, value: str, kind: str | None) -> None:
    assert _kinds(f"{key}={value}") == ([kind] if kind else [])
    assert [f.kind for f in D.scan_json({key: value})] == ([kind] if kind else [])


@pytest.mark.parametrize("line", [
    "x := \"{v}\"", "'password' => '{v}',", "PASSWORD ?= {v}", "$password .= \"{v}\";",
    "var password string = \"{v}\"", "props.setProperty(\"db.password\", \"{v}\");",
    "<password>{v}</password>", "--password {v}", "--db-password={v}", "password: {v}",
])
def test_assignment_syntaxes(line: str) -> None:
    value = "Zq8rT5v&Lm3xNp7w"
    text = line.replace("{v}", value)
    if line.startswith("x :="):
        assert _kinds(text) == []  # `x` is no secret-looking key
    else:
        assert _kinds(text) == ["secret_key_value"], text
