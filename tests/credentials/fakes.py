"""Generated fake credentials (never real ones) and look-alikes, shared by the tests.

Seeded, so a failure names the same value every run.
"""

from __future__ import annotations

import base64
import json
import random
import string
import zlib
from urllib.parse import quote

_R = random.Random(20240601)
ALNUM = string.ascii_letters + string.digits
B64 = ALNUM + "+/"
URLSAFE = ALNUM + "-_"


def rnd(n: int, alphabet: str = ALNUM) -> str:
    return "".join(_R.choice(alphabet) for _ in range(n))


def mixed(n: int) -> str:
    """Random with at least one upper, lower and digit (what issuers generate)."""
    return rnd(n - 3) + _R.choice(string.ascii_uppercase) + _R.choice("abcdef") + _R.choice("123")


def b64url(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


def jwt() -> str:
    header = b64url({"alg": "HS256", "typ": "JWT"})
    payload = b64url({"sub": rnd(8), "iat": _R.randint(1_600_000_000, 1_700_000_000)})
    return f"{header}.{payload}.{rnd(43, URLSAFE)}"


def pem(label: str) -> str:
    """A body that decodes as a key would: DER (a SEQUENCE) or an OpenSSH blob."""
    head = b"openssh-key-v1\x00" if "OPENSSH" in label else b"\x30\x82\x04\xa4"
    blob = base64.b64encode(head + bytes(_R.randrange(256) for _ in range(300))).decode()
    lines = "\n".join(blob[i:i + 64] for i in range(0, len(blob), 64))
    return f"-----BEGIN {label}-----\n{lines}\n-----END {label}-----\n"


_B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase


def github(prefix: str = "ghp_") -> str:
    """30 random base62 and their CRC32 in base62, as GitHub issues them."""
    body = rnd(30)
    n, tail = zlib.crc32(body.encode()), ""
    while n:
        n, r = divmod(n, 62)
        tail = _B62[r] + tail
    return prefix + body + tail.rjust(6, "0")


def format_fakes() -> list[tuple[str, str]]:
    """(kind, value): credentials in a known format, caught under any key."""
    out: list[tuple[str, str]] = []
    for _ in range(3):
        out += [
            ("aws_access_key_id", "AKIA" + rnd(16, string.ascii_uppercase + "234567")),
            ("aws_access_key_id", "ASIA" + rnd(16, string.ascii_uppercase + "234567")),
            ("github_token", github("ghp_")),
            ("github_token", github("gho_")),
            ("github_token", github("ghs_")),
            ("github_token", "github_pat_" + rnd(22) + "_" + rnd(59)),
            ("gitlab_token", "glpat-" + rnd(20, URLSAFE)),
            ("slack_token", "xoxb-" + rnd(12, string.digits) + "-" + rnd(13, string.digits)
             + "-" + rnd(24)),
            ("slack_token", "xoxp-" + rnd(12, string.digits) + "-" + rnd(32)),
            ("slack_webhook", "https://hooks.slack.com/services/T" + rnd(8, string.ascii_uppercase)
             + "/B" + rnd(8, string.ascii_uppercase) + "/" + rnd(24)),
            ("stripe_key", "sk_live_" + rnd(24)),
            ("stripe_key", "rk_live_" + rnd(24)),
            ("google_api_key", "AIza" + rnd(35, URLSAFE)),
            ("openai_key", "sk-" + mixed(48)),
            ("openai_key", "sk-proj-" + mixed(80)),
            ("anthropic_key", "sk-ant-api03-" + mixed(93)),
            ("vault_token", "hvs." + rnd(24)),
            ("jwt", jwt()),
            ("private_key", pem("RSA PRIVATE KEY")),
            ("private_key", pem("OPENSSH PRIVATE KEY")),
            ("private_key", pem("PRIVATE KEY")),
            ("url_password", f"postgres://app:{mixed(14)}@db.internal:5432/app"),
            ("url_password", f"https://deploy:{rnd(10)}@registry.example.org/v2/"),
            ("url_password", f"redis://:{mixed(16)}@cache:6379/0"),
            ("azure_connection_string", "DefaultEndpointsProtocol=https;AccountName=acct;"
             f"AccountKey={rnd(86, B64)}==;EndpointSuffix=core.windows.net"),
            ("azure_connection_string", "Endpoint=sb://ns.servicebus.windows.net/;"
             f"SharedAccessKeyName=send;SharedAccessKey={rnd(43, B64)}="),
            ("azure_sas_signature", "https://acct.blob.core.windows.net/c/b.txt?sv=2022-11-02"
             f"&se=2030-01-01&sp=r&sig={quote(rnd(43, B64) + '=', safe='')}"),
            ("github_token", f"export GITHUB_TOKEN={github()}"),
            ("secret_key_value", f"mysql -u app --password={mixed(14)} -h db"),
        ]
    return out


def keyed_fakes() -> list[tuple[str, str, str]]:
    """(key, value, kind): literals caught because of the key they sit under."""
    return [
        ("password", "Tr0ub4dor&3" + rnd(3), "secret_key_value"),
        ("db_password", mixed(12), "secret_key_value"),
        ("client_secret", rnd(32), "secret_key_value"),
        ("api_key", rnd(32), "secret_key_value"),
        ("apiKey", mixed(40), "secret_key_value"),
        ("access_token", rnd(40, URLSAFE), "secret_key_value"),
        ("refresh_token", mixed(64), "secret_key_value"),
        ("private_key", mixed(64), "secret_key_value"),
        ("aws_secret_access_key", rnd(40, B64), "aws_secret_access_key"),
        ("secret", mixed(20), "secret_key_value"),
        ("passphrase", "Correct-Horse-" + mixed(8), "secret_key_value"),
        ("X-Service-Token", rnd(30), "secret_key_value"),
        ("token", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
         "secret_key_value"),
        ("authorization", "Bearer " + rnd(30), "bearer_token"),
        ("credentials", "svc:" + mixed(16), "secret_key_value"),
    ]


_UUID = "6f1c2a9e-8f0b-4c1e-9a55-3f2b7d9e0c11"
LOOKALIKES: list[tuple[str, str]] = [
    ("sha256", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"),
    ("commit", "3f2b7d9e0c116f1c2a9e8f0b4c1e9a553f2b7d9e"),
    ("etag", "d41d8cd98f00b204e9800998ecf8427e"),
    ("request_id", _UUID),
    ("idempotency_key", _UUID),
    ("token", _UUID),
    ("client_token", _UUID),
    ("page_token", "CiAKGjBpNDd2Nmp2Zml2cXRwYjBpOXA3"),
    ("nextPageToken", "CAESBggDEKCNBg=="),
    ("continuation_token", "1vGQkL3mXe9zT0Q5b2Rk"),
    ("max_tokens", "4096"),
    ("token_type", "Bearer"),
    ("token_url", "https://auth.example.com/oauth/token"),
    ("password_policy", "min12-upper1-digit1"),
    ("secret_name", "db-credentials-v2"),
    ("secretRef", "crm-api-token-2024"),
    ("password", ""),
    ("password", "********"),
    ("password", "${env:DB_PASSWORD}"),
    ("api_key", "env:OPENAI_API_KEY"),
    ("token", "vault:secret/data/crm#token"),
    ("secret", "file:/var/run/secrets/db/password"),
    ("password", "{{ .Values.db.password }}"),
    ("password", "$DB_PASSWORD"),
    ("password", "changeme"),
    ("password", "<your-password>"),
    ("api_key", "YOUR_API_KEY_HERE"),
    ("token", "xxxxxxxxxxxxxxxx"),
    ("password", "true"),
    ("token", "null"),
    ("password", "mysecretpassword"),
    ("password", "password123"),
    ("secret", "REDACTED"),
    ("secret", "[REDACTED]"),
    ("note", "AKIAIOSFODNN7EXAMPLE"),
    ("note", "AKIAXXXXXXXXXXXXXXXX"),
    ("note", "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
    ("note", "sk_live_xxxxxxxxxxxxxxxxxxxxxxxx"),
    ("webhook", "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"),
    ("url", "https://example.com/path?q=1&page=2"),
    ("dsn", "postgres://app@db:5432/app"),
    ("dsn", "postgres://app:${env:PG_PASSWORD}@db:5432/app"),
    ("dsn", "redis://:****@cache:6379"),
    ("dsn", "http://host:8080@proxy.local/"),
    ("css_class", "sk-my-long-css-class-name-here"),
    ("branch", "feature/ghp-token-rotation"),
    ("description", "The password must be at least 12 characters long"),
    ("message", "Set GITHUB_TOKEN in your environment, then rerun"),
    ("text", "token: see the docs for how to get one"),
    ("path", "/var/run/secrets/kubernetes.io/serviceaccount/token"),
    ("token_file", "/var/run/secrets/token"),
    ("secret", "/etc/secrets/db"),
    ("key", "users/42/avatar-3f2b7d9e.png"),
    ("cache_key", "user:42:profile:v3:9a55"),
    ("public_key", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx4bX9qZ2Vw ops@host"),
    ("pem", "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n"
            "-----END PUBLIC KEY-----"),
    ("cert", "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----"),
    ("version", "v1.2.3-rc.1+build.77"),
    ("created", "2024-01-01T00:00:00Z"),
    ("email", "ops@example.com"),
    ("git_url", "git@github.com:org/repo.git"),
    ("ssh_url", "ssh://git@github.com/org/repo.git"),
    ("header_part", "eyJhbGciOiJIUzI1NiJ9"),
    ("model", "gpt-4o-mini-2024-07-18"),
    ("sql", "SELECT password_hash FROM users WHERE id = 1"),
    ("password_hash", "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW"),
    ("token", "Bearer ${env:TOKEN}"),
    ("authorization", "Bearer <token>"),
    ("image", "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6"),
    ("trace", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    ("arn", "arn:aws:iam::123456789012:role/app-reader"),
    ("query", "password=:password AND user=:user"),
    ("shell", "export DB_PASSWORD=${DB_PASSWORD}"),
    ("channel", "#xoxo-friends-and-family"),
    ("doc", "https://github.com/org/repo/blob/main/docs/ghp_notes.md"),
    ("secret_key", "SECRET_KEY"),
    ("jwt_alg", "HS256"),
]
