"""Password authentication, sans-I/O: SCRAM-SHA-256 (RFC 5802 / RFC 7677, no channel
binding) both as client (proxy -> PostgreSQL) and server (client -> proxy), and md5.

The proxy holds the upstream password so that the orchestrator never has to; nothing
here logs or raises with a password, a proof or a salted key in the message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import stringprep
import unicodedata
from dataclasses import dataclass

MECHANISM = "SCRAM-SHA-256"
_GS2 = b"n,,"  # no channel binding; PostgreSQL ignores the SCRAM user name


class AuthError(Exception):
    """Authentication failed; the message is safe to show and to log."""


def saslprep(password: str) -> str:
    """RFC 4013 as PostgreSQL applies it: on any prohibited character, the raw password."""
    mapped = "".join(
        " " if stringprep.in_table_c12(c) else c
        for c in password
        if not stringprep.in_table_b1(c)
    )
    norm = unicodedata.normalize("NFKC", mapped)
    prohibited = (
        stringprep.in_table_c12, stringprep.in_table_c21_c22, stringprep.in_table_c3,
        stringprep.in_table_c4, stringprep.in_table_c5, stringprep.in_table_c6,
        stringprep.in_table_c7, stringprep.in_table_c8, stringprep.in_table_c9,
    )
    if any(test(c) for c in norm for test in prohibited):
        return password
    return norm


def _hmac(key: bytes, msg: bytes) -> bytes:
    return hmac.digest(key, msg, "sha256")


def _attrs(message: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in message.decode("utf-8", "replace").split(","):
        if len(part) >= 2 and part[1] == "=":
            out.setdefault(part[0], part[2:])
    return out


def _nonce() -> str:
    return base64.b64encode(secrets.token_bytes(18)).decode()


@dataclass(frozen=True, slots=True)
class ScramKeys:
    """What a server stores for one password (as pg_authid does)."""

    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes


def scram_keys(password: str, salt: bytes | None = None, iterations: int = 4096) -> ScramKeys:
    salt = salt or secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", saslprep(password).encode(), salt, iterations)
    client_key = _hmac(salted, b"Client Key")
    return ScramKeys(salt, iterations, hashlib.sha256(client_key).digest(),
                     _hmac(salted, b"Server Key"))


class ScramClient:
    """Client side: first() -> server-first -> final() -> server-final -> verify()."""

    def __init__(self, password: str) -> None:
        self._password = password
        self._bare = f"n=,r={_nonce()}".encode()
        self._server_signature = b""

    def first(self) -> bytes:
        return _GS2 + self._bare

    def final(self, server_first: bytes) -> bytes:
        attrs = _attrs(server_first)
        nonce, salt, iters = attrs.get("r", ""), attrs.get("s", ""), attrs.get("i", "")
        client_nonce = _attrs(self._bare)["r"]
        if not nonce.startswith(client_nonce) or not salt or not iters.isdigit():
            raise AuthError("malformed SCRAM server-first message")
        salted = hashlib.pbkdf2_hmac(
            "sha256", saslprep(self._password).encode(), base64.b64decode(salt), int(iters)
        )
        without_proof = b"c=" + base64.b64encode(_GS2) + b",r=" + nonce.encode()
        auth_message = self._bare + b"," + server_first + b"," + without_proof
        client_key = _hmac(salted, b"Client Key")
        signature = _hmac(hashlib.sha256(client_key).digest(), auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        self._server_signature = _hmac(_hmac(salted, b"Server Key"), auth_message)
        return without_proof + b",p=" + base64.b64encode(proof)

    def verify(self, server_final: bytes) -> None:
        attrs = _attrs(server_final)
        if "e" in attrs:
            raise AuthError("upstream rejected the SCRAM exchange")
        got = base64.b64decode(attrs.get("v", ""))
        if not self._server_signature or not hmac.compare_digest(got, self._server_signature):
            raise AuthError("upstream SCRAM server signature does not match")


class ScramServer:
    """Server side for one exchange against fixed keys; refuses channel binding."""

    def __init__(self, keys: ScramKeys) -> None:
        self._keys = keys
        self._client_bare = b""
        self._server_first = b""
        self._nonce = ""

    def server_first(self, client_first: bytes) -> bytes:
        if not client_first.startswith((b"n,", b"y,")):
            raise AuthError("SCRAM channel binding is not supported")
        parts = client_first.split(b",", 2)
        if len(parts) != 3 or (parts[1] and not parts[1].startswith(b"a=")):
            raise AuthError("malformed SCRAM client-first message")
        self._client_bare = parts[2]
        client_nonce = _attrs(self._client_bare).get("r", "")
        if not client_nonce:
            raise AuthError("malformed SCRAM client-first message")
        self._nonce = client_nonce + _nonce()
        salt = base64.b64encode(self._keys.salt).decode()
        self._server_first = f"r={self._nonce},s={salt},i={self._keys.iterations}".encode()
        return self._server_first

    def server_final(self, client_final: bytes) -> bytes:
        """The server-final message; raises AuthError on a wrong proof."""
        head, sep, proof_b64 = client_final.rpartition(b",p=")
        attrs = _attrs(head)
        if not sep or attrs.get("r") != self._nonce:
            raise AuthError("password authentication failed")
        auth_message = self._client_bare + b"," + self._server_first + b"," + head
        signature = _hmac(self._keys.stored_key, auth_message)
        try:
            proof = base64.b64decode(proof_b64, validate=True)
        except ValueError:
            raise AuthError("password authentication failed") from None
        if len(proof) != len(signature):
            raise AuthError("password authentication failed")
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        # SECURITY: constant-time comparison of the derived key.
        if not hmac.compare_digest(hashlib.sha256(client_key).digest(), self._keys.stored_key):
            raise AuthError("password authentication failed")
        return b"v=" + base64.b64encode(_hmac(self._keys.server_key, auth_message))


def md5_password(user: str, password: str, salt: bytes) -> bytes:
    """The md5 PasswordMessage payload (NUL-terminated)."""
    inner = hashlib.md5((password + user).encode()).hexdigest()
    return b"md5" + hashlib.md5(inner.encode() + salt).hexdigest().encode() + b"\0"
