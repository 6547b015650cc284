"""Is this key secret-looking, and is this value a literal credential rather than a
reference, a mask or a placeholder?

Shared by detection, response masking and `callwarden validate`. False positives block
real work, so every "no" here is as deliberate as every "yes": pagination tokens,
`max_tokens`, `token_url`, `password_policy`, UUIDs, paths and placeholders all pass.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from functools import lru_cache

# Words that make a key secret-looking, and word endings (`dbpassword`, `mytoken`).
_SECRET_WORDS = frozenset({
    "password", "passwd", "pwd", "passphrase", "secret", "token", "credential",
    "credentials", "authorization", "auth", "apikey", "accesskey", "secretkey",
    "privatekey", "signingkey", "cookie",
})
_SECRET_ENDINGS = ("password", "passwd", "secret", "token", "apikey", "accesskey",
                   "privatekey", "passphrase")
# `<qualifier>_key` is secret; a bare `key` (cache key, object key) is not.
_KEY_QUALIFIERS = frozenset({
    "api", "access", "secret", "private", "signing", "encryption", "master",
    "subscription", "client", "account", "auth", "shared", "ssh", "hmac", "license",
})
# A last word that makes the key describe a secret rather than hold one.
_METADATA = frozenset({
    "name", "names", "id", "ids", "type", "types", "kind", "count", "counts", "length",
    "len", "size", "url", "uri", "urls", "endpoint", "host", "path", "file", "filename",
    "dir", "policy", "policies", "ttl", "expiry", "expires", "expiration", "expire", "exp",
    "at", "time", "timeout", "age", "hint", "hints", "prompt", "label", "field", "fields",
    "header", "env", "var", "ref", "reference", "source", "provider", "format", "mode",
    "method", "version", "hash", "hashed", "digest", "required", "enabled", "set",
    "present", "rotation", "rotated", "created", "updated", "usage", "used", "limit",
    "limits", "max", "min", "scope", "scopes", "audience", "issuer", "alg", "algorithm",
    "strength", "pattern", "regex", "rule", "rules", "template", "description", "help",
    "placeholder", "location", "status", "state", "store", "manager", "backend", "mount",
    "engine", "arn", "fingerprint", "prefix", "suffix", "index", "position", "budget",
})
# `<qualifier>_token` that is not a credential: paging cursors, LLM token counts, ML vocab.
_TOKEN_QUALIFIERS = frozenset({
    "page", "next", "prev", "previous", "continuation", "pagination", "sync", "resume",
    "cursor", "idempotency", "request", "max", "min", "num", "total", "input", "output",
    "completion", "prompt", "reasoning", "cached", "csrf", "xsrf", "cancellation", "bos",
    "eos", "pad", "unk", "sep", "cls", "mask", "special", "start", "end", "stop", "change",
    "sequence", "marker", "offset", "anti", "forgery", "progress", "skip", "delta",
    "starting", "wait", "after", "before", "watermark", "authenticity", "verification",
})
# Fields the protocols define (MCP, JSON-RPC, HTTP pagination, CSRF defences): never
# payload secrets by name (issue 29); their values still meet every value detector.
# Compared with separators and case removed (`next_page_token` = `nextPageToken`).
PROTOCOL_FIELDS = frozenset({
    "progresstoken", "cursor", "nextcursor", "prevcursor", "pagetoken", "nextpagetoken",
    "prevpagetoken", "previouspagetoken", "continuation", "continuationtoken",
    "nextcontinuationtoken", "resumetoken", "synctoken", "deltatoken", "skiptoken",
    "nexttoken", "paginationtoken", "startingtoken", "nextlink", "csrf", "xsrf", "csrftoken",
    "xcsrftoken", "xsrftoken", "xxsrftoken", "csrfmiddlewaretoken", "authenticitytoken",
    "requestverificationtoken", "antiforgerytoken", "state", "nonce", "requestid",
    "relatedrequestid", "sessionid", "mcpsessionid", "lasteventid", "idempotencykey",
    "traceid", "spanid", "traceparent", "etag", "ifmatch", "ifnonematch",
})
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


@lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    """`client_secret`, `X-Api-Key`, `dbPassword`: yes. `max_tokens`, `token_url`,
    `next_page_token`, `secret_name`, `key`: no. Cached: key names repeat."""
    if "".join(c for c in key.lower() if c.isalnum()) in PROTOCOL_FIELDS:
        return False
    words = [w.lower() for w in _WORD.findall(key)]
    if not words or words[-1] in _METADATA:
        return False
    for i, w in enumerate(words):
        prev = words[i - 1] if i else ""
        if w in ("key", "keys"):
            if prev in _KEY_QUALIFIERS:
                return True
        elif w in _SECRET_WORDS or w.endswith(_SECRET_ENDINGS):
            if w.endswith("token") and prev in _TOKEN_QUALIFIERS:
                continue
            return True
    return False


_REFERENCE_PREFIX = re.compile(
    r"(?:env|vault|file|secret|secretref|op|awssm|aws-sm|gcpsm|gcp-sm|azkv|azure-kv|k8s|"
    r"kubernetes|ssm|sops):\S+\Z"
)
# Terraform/HCL references (`var.db_password`, `module.db.password`, `data.x.y[0]`).
_HCL_REFERENCE = re.compile(
    r"(?:var|local|module|data|each|self|terraform|path)\.[A-Za-z_][\w\-]*(?:\.[\w\-\[\]\"]+)*\Z"
)
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*\Z")
# A whole value that reads a secret from the environment in code.
_CODE_REFERENCE = re.compile(
    r"(?:process\.env\.\w{1,100}|import\.meta\.env\.\w{1,100}|"
    r"os\.environ(?:\[[^\]]{1,100}\]|\.get\([^)]{1,100}\))|(?:os\.)?[Gg]etenv\([^)]{1,100}\)|"
    r"System\.getenv\([^)]{1,100}\)|ENV(?:\[[^\]]{1,100}\]|\.fetch\([^)]{1,100}\))|"
    r"Deno\.env\.get\([^)]{1,100}\)|Environment\.GetEnvironmentVariable\([^)]{1,100}\)|"
    r"secrets\.[A-Z_][A-Z0-9_]{0,100})\Z"
)
_PLACEHOLDER = re.compile(
    r"(?i)(?:<[^>]*>|\[[^\]]*\]|\{[^}]*\}|%[^%]+%|%\(\w+\)s|your[-_ ]?\w*|\w*[-_]here|"
    r"none|null|nil|undefined|true|false|yes|no|on|off|password\d*|secret\d*|token|"
    r"test(?:ing)?[-_]?\d*|todo|tbd|fixme|n/?a|not[-_ ]?set|unset|empty|default|string|"
    r"[:@$?][A-Za-z_]\w*|(?-i:[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)|"  # bind parameters, ENV_VAR_NAMES
    r"[*x.\-_#•0]+)\Z"
)
_PLACEHOLDER_PARTS = ("example", "dummy", "placeholder", "redacted", "changeme", "change_me",
                      "change-me", "your_", "your-", "xxxx", "***", "...", "•", "…", "fake")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                   r"[0-9a-fA-F]{12}\Z")
_PATH_OR_URL = re.compile(r"(?:/|\./|~/)[\w.\-/]*\Z|https?://[^\s@]*\Z")
_AUTH_SCHEME = re.compile(r"(?i)(bearer|basic|token|bot|digest|negotiate|ntlm|apikey|"
                          r"sso-key|aws4-hmac-sha256|splunk|key)\s+(\S.*)\Z")


def is_reference(value: str) -> bool:
    r"""`${env:X}`, `env:X`, `vault:...`, `{{ .Values.x }}`, `$TOKEN`, `$(cat f)`,
    `` `cmd` ``, `var.db_password`, `process.env.X`: the value names a secret kept
    elsewhere. Linear in the value: plain `find`s, anchored matches only (a searched
    `\{\{.*\}\}` was quadratic on a header of braces, issue 21)."""
    i = value.find("${")
    if i >= 0 and value.find("}", i + 2) >= 0:
        return True
    i = value.find("{{")
    while i >= 0:
        eol = value.find("\n", i)
        if value.find("}}", i + 2, eol if eol >= 0 else len(value)) >= 0:
            return True
        i = value.find("{{", eol) if eol >= 0 else -1
    v = value.strip()
    d = v.rfind("$")
    if d >= 0 and _ENV_NAME.match(v, d + 1):
        return True
    # Whole-value forms only: a literal with `$(x)` glued on is still a literal (and the
    # decision log keeps references unmasked).
    if len(v) > 2 and ((v[0] == v[-1] == "`") or (v.startswith("$(") and v[-1] == ")")):
        return True
    return (_REFERENCE_PREFIX.match(v) is not None or _HCL_REFERENCE.match(v) is not None
            or _CODE_REFERENCE.match(v) is not None)


def is_placeholder(value: str) -> bool:
    """Masks (`****`, `xxx`), empty values and documentation fillers (`<token>`,
    `changeme`, `your-api-key-here`, anything saying example/dummy/redacted)."""
    v = value.strip()
    if not v or _PLACEHOLDER.match(v):
        return True
    low = v.lower()
    return any(p in low for p in _PLACEHOLDER_PARTS)


def entropy(value: str) -> float:
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values()) if n else 0.0


_SPACE = re.compile(r"\s")
_DIGIT = re.compile(r"\d")
_LETTER = re.compile(r"[^\W\d_]")


def _classes(value: str) -> int:
    """Lower, upper, digit, other: each told by one C-speed pass."""
    return ((value != value.upper()) + (value != value.lower())
            + (_DIGIT.search(value) is not None) + (not value.isalnum()))


def is_opaque_literal(value: str, min_len: int = 8) -> bool:
    """A literal that could be a credential where one is expected (after `Bearer`, in
    `X-API-Key`): long enough, not a reference, mask or placeholder."""
    v = value.strip()
    return len(v) >= min_len and not is_reference(v) and not is_placeholder(v)


@lru_cache(maxsize=4096)
def is_strong_literal(value: str) -> bool:
    """A literal under a secret-looking key that looks like a real secret: 8+ chars, no
    spaces (prose), a letter and two character classes, some entropy; not a UUID, path,
    plain URL, reference or placeholder. `hunter2x` yes, `changeme`/`mysecret` no.
    Cached: a crafted body repeats one value many times."""
    v = value.strip()
    if len(v) < 8 or len(v) > 16384 or _SPACE.search(v) is not None:
        return False
    if _LETTER.search(v) is None or _classes(v) < 2:
        return False
    if _UUID.match(v) or _PATH_OR_URL.match(v):
        return False
    if is_reference(v) or is_placeholder(v):
        return False
    return entropy(v) >= 2.5


def split_auth_scheme(value: str) -> tuple[str, str] | None:
    """`Bearer abc` -> ("bearer", "abc"); None without a known scheme."""
    m = _AUTH_SCHEME.match(value.strip())
    return (m.group(1).lower(), m.group(2).strip()) if m else None
