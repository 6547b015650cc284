"""Keys made at test time and tokens signed with them (PyJWT), for the identity tests."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

ISSUER = "https://issuer.test"
AUDIENCE = "callwarden"


@dataclass
class SigningKey:
    kid: str
    alg: str
    private: Any

    @classmethod
    def make(cls, kid: str, alg: str = "RS256") -> SigningKey:
        if alg.startswith(("RS", "PS")):
            private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif alg == "ES256":
            private = ec.generate_private_key(ec.SECP256R1())
        elif alg == "ES384":
            private = ec.generate_private_key(ec.SECP384R1())
        else:
            private = ed25519.Ed25519PrivateKey.generate()
        return cls(kid, alg, private)

    def jwk(self) -> dict[str, Any]:
        pub = self.private.public_key()
        if self.alg.startswith(("RS", "PS")):
            d = RSAAlgorithm.to_jwk(pub, as_dict=True)
        elif self.alg.startswith("ES"):
            d = ECAlgorithm.to_jwk(pub, as_dict=True)
        else:
            d = OKPAlgorithm.to_jwk(pub, as_dict=True)
        return {**d, "kid": self.kid, "use": "sig"}

    def sign(self, claims: dict[str, Any] | None = None, *, kid: str | bool | None = True,
             alg: str | None = None, **over: Any) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "user-1", "iat": now, "exp": now + 300,
                **(claims or {}), **over}
        body = {k: v for k, v in body.items() if v is not None}
        headers = {} if kid is False else {"kid": self.kid if kid is True else kid}
        return jwt.encode(body, self.private, algorithm=alg or self.alg, headers=headers)


def jwks(*keys: SigningKey) -> bytes:
    return json.dumps({"keys": [k.jwk() for k in keys]}).encode()
