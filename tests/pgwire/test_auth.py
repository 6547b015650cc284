from __future__ import annotations

import base64
import hashlib

import pytest

from proxy.pgwire.auth import (
    AuthError,
    ScramClient,
    ScramServer,
    md5_password,
    saslprep,
    scram_keys,
)


@pytest.mark.parametrize(
    ("client_pw", "server_pw", "ok"),
    [("s3cret", "s3cret", True), ("s3cret", "s3cret!", False), ("", "", True),
     ("p\u00e4ss", "pa\u0308ss", True)],  # SASLprep: NFKC makes both spellings equal
)
def test_scram_round_trip(client_pw: str, server_pw: str, ok: bool) -> None:
    client, server = ScramClient(client_pw), ScramServer(scram_keys(server_pw))
    first = server.server_first(client.first())
    final = client.final(first)
    if not ok:
        with pytest.raises(AuthError):
            server.server_final(final)
        return
    client.verify(server.server_final(final))


def test_scram_client_rejects_forged_server_signature() -> None:
    client, server = ScramClient("pw"), ScramServer(scram_keys("pw"))
    client.final(server.server_first(client.first()))
    with pytest.raises(AuthError):
        client.verify(b"v=" + base64.b64encode(b"x" * 32))
    with pytest.raises(AuthError):
        client.verify(b"e=invalid-proof")


@pytest.mark.parametrize("first", [b"p=tls-server-end-point,,n=,r=abc", b"n,,n=", b"junk"])
def test_scram_server_rejects_bad_client_first(first: bytes) -> None:
    with pytest.raises(AuthError):
        ScramServer(scram_keys("pw")).server_first(first)


def test_scram_server_rejects_replayed_nonce() -> None:
    client, server = ScramClient("pw"), ScramServer(scram_keys("pw"))
    server.server_first(client.first())
    with pytest.raises(AuthError):
        server.server_final(b"c=biws,r=other,p=" + base64.b64encode(b"x" * 32))


def test_scram_keys_match_rfc7677_construction() -> None:
    keys = scram_keys("pencil", base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096)
    salted = hashlib.pbkdf2_hmac("sha256", b"pencil", keys.salt, 4096)
    assert len(keys.stored_key) == 32 and keys.iterations == 4096
    assert salted.hex().startswith("c4a49510")  # RFC 7677 SaltedPassword


def test_md5_password() -> None:
    inner = hashlib.md5(b"pwuser").hexdigest()
    want = b"md5" + hashlib.md5(inner.encode() + b"salt").hexdigest().encode() + b"\0"
    assert md5_password("user", "pw", b"salt") == want


@pytest.mark.parametrize(
    ("raw", "prepared"),
    [("plain", "plain"), ("a\u00a0b", "a b"), ("a\u00adb", "ab"), ("\u2168", "IX"),
     ("bad\u0007", "bad\u0007")],  # prohibited character: the raw password, as PostgreSQL
)
def test_saslprep(raw: str, prepared: str) -> None:
    assert saslprep(raw) == prepared
