"""Known credential formats: one table, one prefilter pass, linear-time matching.

Each format has a kind (what a refusal and a metric name), an RE2 pattern (every repeat
bounded, so no pattern can make a scan super-linear), the literal needles every match
holds (the prefilter: a text holding none of a format's needles is not matched against
it), a `check` that throws out look-alikes the pattern alone would take (documentation
fillers, masks) and, for detection, a `verify` that decides by structure: a checksum
(GitHub's CRC32 tail), a body that decodes (PEM keys, JWT segments, Basic credentials).

SECURITY: patterns run on RE2 (google-re2), whose matching time is linear in the text
whatever the input; Python's backtracking `re` made one crafted 100 KB value cost
seconds (issue 21). The needles run through one Aho-Corasick automaton (the `speed`
extra) or, without it, through per-first-character gates held equal to it by a test.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import json
import re
import zlib
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate, product

import re2

from proxy.reference import REFERENCE

try:  # the `speed` extra: all needles in one linear pass (Rust Aho-Corasick)
    from ahocorasick_rs import AhoCorasick, Implementation, MatchKind
except ImportError:  # the gates below (tested against the automaton) do it
    AhoCorasick = None

from proxy.credentials.literals import (
    is_placeholder,
    is_reference,
    is_secret_key,
    is_strong_literal,
)

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ASCENDING = frozenset(_B62[i:i + 6] for i in range(len(_B62) - 5)) | frozenset(
    "abcdefghijklmnopqrstuvwxyz"[i:i + 6] for i in range(21))
DOCUMENTED_EXAMPLES = frozenset({
    # Published in providers' own documentation as sample values (never issued).
    "AKIAIOSFODNN7EXAMPLE", "AKIAI44QH8DHBEXAMPLE", "ASIAIOSFODNN7EXAMPLE",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
    "sk_test_4eC39HqLyjWDarjtT1zdp7dc", "pk_test_TYooMQauvdEDq54NiTphI7jx",
})


_MASK_RUN = re.compile(r"(.)\1{4}|" + "|".join(sorted(_ASCENDING)))


@lru_cache(maxsize=4096)
def generated(body: str, distinct: int = 8) -> bool:
    """Issued tokens are random: enough distinct characters, no run of 5 identical
    characters (`xxxxx`, `00000`, `*****`), no 6-long ascending sequence (`abcdef`,
    `123456`; chance in a generated token ~1e-5), not a documented example. A placeholder
    *word* inside an otherwise valid token does not make it a placeholder (issue 31):
    only its structure does. One C-speed search; cached (crafted bodies repeat)."""
    return (len(set(body)) >= min(distinct, len(body)) and _MASK_RUN.search(body) is None
            and body not in DOCUMENTED_EXAMPLES)


def _b62(n: int) -> str:
    out = ""
    while n:
        n, r = divmod(n, 62)
        out = _B62[r] + out
    return out.rjust(6, "0")


def github_checksum_ok(token: str) -> bool:
    """`ghp_` + 30 random base62 + the base62 CRC32 of those 30, zero-padded to 6
    (GitHub's published token format)."""
    body = token[4:]
    return len(body) == 36 and _b62(zlib.crc32(body[:30].encode())) == body[30:]


def _b64decode(text: str) -> bytes | None:
    s = "".join(text.split()).replace("\\n", "").replace("\\r", "")
    s = s.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(s + "=" * (-len(s) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def _json_segment(seg: str) -> dict[str, object] | None:
    raw = _b64decode(seg)
    if raw is None:
        return None
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return obj if isinstance(obj, dict) else None


def jwt_ok(token: str) -> bool:
    """Header and payload segments decode to JSON objects, the header names an `alg`,
    and there is a signature (an unsigned `alg: none` token grants nothing)."""
    parts = token.split(".")
    if len(parts) != 3 or len(parts[2]) < 16:
        return False
    header = _json_segment(parts[0])
    return (header is not None and "alg" in header
            and _json_segment(parts[1]) is not None and generated(parts[2]))


_JWT_IN = re.compile(r"eyJ[A-Za-z0-9_\-]{8,4000}\.eyJ[A-Za-z0-9_\-]{8,8000}\."
                     r"[A-Za-z0-9_\-]{16,1000}")


def wrapped_jwt_ok(blob: str) -> bool:
    """A JWT wrapped in base64 (`ZXlK...`, what `base64 <<< $TOKEN` gives)."""
    raw = _b64decode(blob)
    if raw is None:
        return False
    m = _JWT_IN.match(raw.decode("ascii", "replace"))
    return m is not None and jwt_ok(m.group())


_PEM_HEADER_LINE = re.compile(r"[A-Za-z\-]{2,40}:[^\n]{0,200}")
_B64_LINE = re.compile(r"[A-Za-z0-9+/]{1,200}={0,2}")
_OPENSSH_MAGIC = b"openssh-key-v1\x00"


def pem_body_ok(body: str) -> bool:
    """The text after a BEGIN header decodes to a key: DER (a SEQUENCE, 0x30), an
    OpenSSH key blob, or a PGP packet; at least 64 bytes. Read up to the first line that
    is not base64, so a key cut before its END line still counts."""
    lines = body.replace("\\r", "").replace("\\n", "\n").replace("\r", "").split("\n")
    b64: list[str] = []
    for raw_line in lines:
        line = raw_line.strip()
        if not line or (not b64 and _PEM_HEADER_LINE.fullmatch(line)):
            continue
        if (line.startswith("=") and len(line) <= 6) or not _B64_LINE.fullmatch(line):
            break  # PGP armour checksum, or the end of the body
        b64.append(line)
    text = "".join(b64).rstrip("=")
    text = text[: len(text) - len(text) % 4]
    raw = _b64decode(text)
    if raw is None or len(raw) < 64:
        return False
    return raw[0] == 0x30 or raw.startswith(_OPENSSH_MAGIC) or raw[0] & 0x80 != 0


def basic_ok(blob: str) -> bool:
    """`Basic` credentials: base64 of `user:password` with a literal password."""
    raw = _b64decode(blob)
    if raw is None:
        return False
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        return False
    _user, sep, password = text.partition(":")
    return bool(sep and password.strip()) and not is_reference(password) \
        and not is_placeholder(password) and text.isprintable()


def _mixed(token: str) -> bool:
    """Generated `sk-` keys mix cases and digits; `sk-my-long-css-class-name` does not."""
    body = token[3:]
    return (generated(body) and any(c.isupper() for c in body)
            and any(c.islower() for c in body) and any(c.isdigit() for c in body))


def _url_password(pw: str) -> bool:
    # `host:8080@` is not a password; `${env:PW}`, `****`, `<password>` are not literals.
    return not (pw.isdigit() and len(pw) <= 5) and not is_reference(pw) and not is_placeholder(pw)


def _after(n: int, distinct: int = 8) -> Callable[[str], bool]:
    """The part after an `n`-character prefix looks generated."""
    return lambda s: generated(s[n:], distinct)


def _after_mixed(n: int) -> Callable[[str], bool]:
    """Generated, and random in its classes: digits among letters, or (letters only)
    upper and lower case in even measure. A long random base62 token almost surely is;
    an identifier (`secret_KeyRotationSchedule...`, snake or camel case) is not."""
    def check(s: str) -> bool:
        body = s[n:]
        if not body or not generated(body):
            return False
        if any(c.isdigit() for c in body):
            return any(c.isalpha() for c in body)
        upper = sum(c.isupper() for c in body) / len(body)
        return 0.2 <= upper <= 0.8
    return check


def _after_sep(sep: str, distinct: int = 8) -> Callable[[str], bool]:
    return lambda s: generated(s.split(sep, 1)[-1], distinct)


@dataclass(frozen=True, slots=True)
class Format:
    kind: str
    """The detector id errors and metrics name (never the value)."""
    pattern: str
    """RE2 syntax, every repeat bounded. A `v` group, when present, is the secret part."""
    needles: tuple[str, ...]
    """Literal texts every match contains (one of them): the prefilter."""
    check: Callable[[str], bool] | None = None
    """secret text -> keep? Throws out masks and fillers; masking and detection."""
    verify: Callable[[str], bool] | None = None
    """secret text -> a real one? Structure (checksum, decoding); detection only."""
    boundary: bool = True
    """The match must not follow a word character (`ghp_` yes, `xghp_` no)."""
    tail: str = ""
    """Characters that must not follow the match (a token longer than its format)."""


_AN = "A-Za-z0-9"
_W = "A-Za-z0-9_"
_WD = r"A-Za-z0-9_\-"
_ANW = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_WORD = _ANW | {"_"}
_WORDD = _WORD | {"-"}


def _f(kind: str, pattern: str, needles: Iterable[str] | str, check: Callable[[str], bool] | None,
       verify: Callable[[str], bool] | None = None, boundary: bool = True,
       tail: frozenset[str] | str = "") -> Format:
    return Format(kind, pattern, (needles,) if isinstance(needles, str) else tuple(needles),
                  check, verify, boundary, "".join(sorted(tail)))


_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_AWS_PREFIXES = ("AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA", "AIPA", "ANPA", "ANVA",
                 "APKA", "AROA", "ASCA")

# The table: written from each provider's published token format. Detection-only
# structure goes in `verify`; `check` is shared with response masking.
FORMATS: tuple[Format, ...] = (
    # -- private keys and signed tokens --------------------------------------------------
    _f("private_key", r"-----BEGIN[ A-Z0-9]{0,30}PRIVATE KEY(?: BLOCK)?-----", "-----BEGIN",
       None, boundary=False),
    _f("jwt", r"eyJ[A-Za-z0-9_\-]{8,1000}\.eyJ[A-Za-z0-9_\-]{8,1000}\.[A-Za-z0-9_\-]{10,1000}",
       "eyJ", lambda s: generated(s), jwt_ok, tail=_WORDD),
    _f("jwt", r"ZXlK[A-Za-z0-9+/]{60,1000}={0,2}", "ZXlK", wrapped_jwt_ok,
       tail=_ANW | {"+", "/"}),
    _f("basic_auth", r"(?:Basic|basic|BASIC)[ \t]{1,4}(?P<v>[A-Za-z0-9+/]{6,1000}={0,2})",
       ("Basic", "basic", "BASIC"), basic_ok, tail=_ANW | {"+", "/"}),
    # -- cloud ---------------------------------------------------------------------------
    _f("aws_access_key_id", "(?:" + "|".join(_AWS_PREFIXES) + ")[A-Z0-9]{16}", _AWS_PREFIXES,
       lambda s: generated(s[4:]) and not s.endswith("EXAMPLE"), tail=_ANW),
    _f("google_api_key", r"AIza[A-Za-z0-9_\-]{35}", "AIza", _after(4), tail=_WORDD),
    _f("google_oauth_secret", r"GOCSPX-[A-Za-z0-9_\-]{28}", "GOCSPX-", _after(7), tail=_WORDD),
    _f("google_oauth_token", r"ya29\.[A-Za-z0-9_\-]{30,1000}", "ya29.", _after(5)),
    _f("google_refresh_token", r"1//0[A-Za-z0-9_\-]{40,400}", "1//0", _after(4)),
    _f("azure_ad_client_secret", r"[A-Za-z0-9_~.\-]{3}[0-9]Q~[A-Za-z0-9_~.\-]{31,34}", "Q~",
       _after(6), tail=_WORDD | {"~", "."}),
    _f("azure_connection_string", r"AccountKey=(?P<v>[A-Za-z0-9+/%=]{20,1000})", "AccountKey=",
       lambda s: generated(s)),
    _f("azure_connection_string",
       r"SharedAccess(?:Key|Signature)=(?P<v>[A-Za-z0-9+/%=]{20,1000})", "SharedAccess",
       lambda s: generated(s)),
    _f("azure_sas_signature", r"sig=(?P<v>[A-Za-z0-9%+/=]{30,1000})", "sig=",
       lambda s: generated(s)),
    _f("azure_devops_pat", r"[A-Za-z0-9]{52}AZDO[A-Za-z0-9]{4}", "AZDO", _after(0), tail=_ANW),
    _f("digitalocean_token", r"do[por]_v1_[a-f0-9]{64}", ("dop_v1_", "doo_v1_", "dor_v1_"),
       _after(7), tail=_ANW),
    _f("alibaba_access_key", r"LTAI[A-Za-z0-9]{12,20}", "LTAI", _after(4), tail=_ANW),
    _f("tencent_secret_id", r"AKID[A-Za-z0-9]{32}", "AKID", _after(4), tail=_ANW),
    _f("heroku_api_key", r"HRKU-[A-Za-z0-9_\-]{40,80}", "HRKU-", _after(5), tail=_WORDD),
    _f("flyio_token", r"fm[12][ar]?_[A-Za-z0-9+/=_\-]{40,1000}", ("fm1_", "fm2_", "fm1a_",
       "fm2a_", "fm1r_", "fm2r_"), _after_sep("_")),
    _f("flyio_token", r"fo1_[A-Za-z0-9_\-]{43}", "fo1_", _after(4), tail=_WORDD),
    _f("cloudflare_origin_ca_key", r"v1\.0-[a-f0-9]{24}-[a-f0-9]{146}", "v1.0-", _after(5)),
    _f("netlify_token", r"nfp_[A-Za-z0-9]{36}", "nfp_", _after(4), tail=_ANW),
    _f("render_api_key", r"rnd_[A-Za-z0-9]{32}", "rnd_", _after_mixed(4), tail=_ANW),
    _f("supabase_token", r"sbp_[a-f0-9]{40}", "sbp_", _after(4), tail=_ANW),
    _f("supabase_token", r"sb_secret_[A-Za-z0-9_\-]{31,64}", "sb_secret_", _after(10)),
    _f("planetscale_token", r"pscale_(?:tkn|pw|oauth)_[A-Za-z0-9_.\-]{32,64}", "pscale_",
       _after_sep("_", 8)),
    _f("databricks_token", r"dapi[a-f0-9]{32}(?:-[0-9])?", "dapi", _after(4), tail=_ANW),
    _f("vault_token", r"hv[sbr]\.[A-Za-z0-9_\-]{24,1000}", ("hvs.", "hvb.", "hvr."), _after(4)),
    _f("terraform_cloud_token", r"[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_\-=]{60,70}", ".atlasv1.",
       _after_sep(".atlasv1.")),
    _f("doppler_token", r"dp\.(?:pt|st|sa|ct|scim|audit)\.(?:[a-z0-9_\-]{2,35}\.)?"
       r"[A-Za-z0-9]{40,44}", "dp.",
       _after_sep(".", 8)),
    _f("pulumi_token", r"pul-[a-f0-9]{40}", "pul-", _after(4), tail=_ANW),
    _f("onepassword_token", r"ops_eyJ[A-Za-z0-9+/=_\-]{100,1000}", "ops_eyJ", _after(4)),
    _f("onepassword_secret_key",
       r"A3-[A-Z0-9]{6}-[A-Z0-9]{6}-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5}", "A3-",
       _after(3), tail=_ANW),
    _f("tailscale_key", r"tskey-(?:auth|api|client|webhook|scim)-[A-Za-z0-9]{6,20}-"
       r"[A-Za-z0-9]{20,64}", "tskey-", _after_sep("-")),
    _f("age_secret_key", r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}",
       "AGE-SECRET-KEY-1", _after(16)),
    # -- version control, CI, package registries ----------------------------------------
    _f("github_token", r"gh[pousr]_[A-Za-z0-9]{36,251}", tuple(f"gh{c}_" for c in "pousr"),
       _after(4), lambda s: len(s) != 40 or github_checksum_ok(s), tail=_WORD),
    _f("github_token", r"github_pat_[A-Za-z0-9_]{50,251}", "github_pat_", _after(11),
       tail=_WORD),
    _f("gitlab_token", r"gl(?:pat|ptt|dt|rt|oas|cbt|imt|agent|ft|soat|ffct|wt)-"
       r"[A-Za-z0-9_.\-]{20,255}", "gl", _after_sep("-")),
    _f("bitbucket_app_password", r"ATBB[A-Za-z0-9_=.\-]{32}", "ATBB", _after(4), tail=_WORDD),
    _f("atlassian_api_token", r"AT(?:ATT|CTT|OAT)[A-Za-z0-9_\-=]{100,300}",
       ("ATATT", "ATCTT", "ATOAT"), _after(5)),
    _f("circleci_token", r"CCIPAT_[A-Za-z0-9]{22}_[a-f0-9]{40}", "CCIPAT_", _after(7)),
    _f("buildkite_token", r"bkua_[a-f0-9]{40}", "bkua_", _after(5), tail=_ANW),
    _f("sourcegraph_token", r"sgp_(?:[a-f0-9]{16}_)?[a-f0-9]{40}", "sgp_", _after(4), tail=_ANW),
    _f("npm_token", r"npm_[A-Za-z0-9]{36}", "npm_", _after(4), tail=_ANW),
    _f("pypi_token", r"pypi-AgE(?:IcHlwaS5vcmc|NdGVzdC5weXBpLm9yZw)[A-Za-z0-9_\-]{50,1000}",
       "pypi-AgE", _after(5)),
    _f("rubygems_token", r"rubygems_[a-f0-9]{48}", "rubygems_", _after(9), tail=_ANW),
    _f("nuget_key", r"oy2[a-z0-9]{43}", "oy2", _after(3), tail=_ANW),
    _f("docker_hub_token", r"dckr_(?:pat|oat)_[A-Za-z0-9_\-]{27}", "dckr_", _after(9),
       tail=_WORDD),
    _f("jfrog_token", r"AKCp[A-Za-z0-9]{69}", "AKCp", _after(4), tail=_ANW),
    _f("jfrog_token", r"cmVmdGtu[A-Za-z0-9]{56}", "cmVmdGtu", _after(8), tail=_ANW),
    _f("clojars_token", r"CLOJARS_[a-z0-9]{60}", "CLOJARS_", _after(8), tail=_ANW),
    _f("prefect_token", r"pnu_[A-Za-z0-9]{36}", "pnu_", _after(4), tail=_ANW),
    _f("postman_key", r"PMAK-[a-f0-9]{24}-[a-f0-9]{34}", "PMAK-", _after(5)),
    # -- payments, commerce ---------------------------------------------------------------
    _f("stripe_key", r"[sr]k_(?:live|test)_[A-Za-z0-9]{20,255}",
       ("sk_live_", "sk_test_", "rk_live_", "rk_test_"), _after(8), tail=_WORD),
    _f("stripe_webhook_secret", r"whsec_[A-Za-z0-9]{32,64}", "whsec_", _after(6), tail=_ANW),
    _f("square_token", r"sq0(?:atp|csp)-[A-Za-z0-9_\-]{22,43}", "sq0", _after(7)),
    _f("square_token", r"EAAA[A-Za-z0-9_\-]{60}", "EAAA", _after(4), tail=_WORDD),
    _f("shopify_token", r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}", "shp", _after(6), tail=_ANW),
    _f("braintree_token", r"access_token\$production\$[a-z0-9]{16}\$[a-f0-9]{32}",
       "access_token$production$", _after(24)),
    _f("flutterwave_key", r"FLWSECK(?:_TEST)?-[a-f0-9]{32}-X", "FLWSECK", _after_sep("-")),
    _f("shippo_token", r"shippo_(?:live|test)_[a-f0-9]{40}", "shippo_", _after(12)),
    _f("easypost_key", r"EZ[AT]K[A-Za-z0-9]{54}", ("EZAK", "EZTK"), _after(4), tail=_ANW),
    # -- messaging, productivity -------------------------------------------------------------
    _f("slack_webhook", r"https://hooks\.slack\.com/(?:services|workflows|triggers)/"
       r"T[A-Z0-9]{6,16}/[A-Z0-9]{6,16}/(?P<v>[A-Za-z0-9]{20,64})",
       "https://hooks.slack.com/", lambda s: generated(s), boundary=False),
    _f("slack_token", r"xox[abpsre]-[A-Za-z0-9\-]{10,255}", "xox",
       lambda s: generated(s[5:]) and any(c.isdigit() for c in s)),
    _f("slack_token", r"xapp-[0-9]-[A-Z0-9]{9,12}-[0-9]{10,16}-[a-f0-9]{64}", "xapp-",
       _after(5)),
    _f("discord_webhook", r"https://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/"
       r"[0-9]{17,20}/(?P<v>[A-Za-z0-9_\-]{60,68})", "discord", lambda s: generated(s),
       boundary=False),
    _f("teams_webhook", r"https://[A-Za-z0-9\-]{1,63}\.webhook\.office\.com/webhookb2/"
       r"(?P<v>[A-Za-z0-9@\-/]{40,300})", ".webhook.office.com/webhookb2/",
       lambda s: generated(s), boundary=False),
    _f("telegram_bot_token", r"[0-9]{8,10}:AA[A-Za-z0-9_\-]{33}", ":AA", _after_sep(":"),
       tail=_WORDD),
    _f("sendgrid_key", r"SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}", "SG.", _after(3),
       tail=_WORDD),
    _f("mailchimp_key", r"[a-f0-9]{32}-us[0-9]{1,2}", "-us", _after(0), tail=_ANW),
    _f("linear_api_key", r"lin_api_[A-Za-z0-9]{40}", "lin_api_", _after(8), tail=_ANW),
    _f("notion_token", r"ntn_[A-Za-z0-9]{46}", "ntn_", _after(4), tail=_ANW),
    _f("notion_token", r"secret_[A-Za-z0-9]{43}", "secret_", _after_mixed(7), tail=_ANW),
    _f("figma_token", r"figd_[A-Za-z0-9_\-]{40}", "figd_", _after(5), tail=_WORDD),
    _f("typeform_token", r"tfp_[A-Za-z0-9_\-.]{40,60}", "tfp_", _after(4)),
    _f("dropbox_token", r"sl\.[A-Za-z0-9_\-]{130,160}", "sl.", _after_mixed(3), tail=_WORDD),
    _f("hubspot_token", r"pat-(?:na|eu)[0-9]-" + _UUID, "pat-", _after(8), tail=_ANW),
    _f("launchdarkly_key", r"sdk-" + _UUID, "sdk-", _after(4), tail=_ANW),
    _f("facebook_token", r"EAA[BCDGIJ][A-Za-z0-9]{80,400}", "EAA", _after_mixed(4), tail=_ANW),
    _f("twitter_bearer", r"AAAAAAAAAAAAAAAAAAAAA[A-Za-z0-9%]{30,200}", "AAAAAAAAAAAAAAAAAAAAA",
       _after(21)),
    _f("mapbox_secret_token", r"sk\.eyJ[A-Za-z0-9_\-]{50,400}\.[A-Za-z0-9_\-]{20,40}", "sk.eyJ",
       _after(3)),
    # -- observability ---------------------------------------------------------------------
    _f("sentry_token", r"sntrys_eyJ[A-Za-z0-9+/=_\-]{50,1000}", "sntrys_", _after(7)),
    _f("sentry_token", r"sntryu_[a-f0-9]{64}", "sntryu_", _after(7), tail=_ANW),
    _f("grafana_token", r"glsa_[A-Za-z0-9]{32}_[a-f0-9]{8}", "glsa_", _after(5), tail=_ANW),
    _f("grafana_token", r"glc_[A-Za-z0-9+/]{32,400}={0,2}", "glc_", _after(4)),
    _f("newrelic_key", r"NR(?:AK|II|AA|SP)-[A-Z0-9]{27}", ("NRAK-", "NRII-", "NRAA-", "NRSP-"),
       _after(5), tail=_ANW),
    _f("dynatrace_token", r"dt0c01\.[A-Z0-9]{24}\.[A-Z0-9]{64}", "dt0c01.", _after(7)),
    # -- AI providers ----------------------------------------------------------------------
    _f("anthropic_key", r"sk-ant-(?:api|admin|sid)[0-9]{2}-[A-Za-z0-9_\-]{40,200}", "sk-ant-",
       _after_sep("-", 8), tail=_WORDD),
    _f("openai_key", r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,255}", "sk-",
       lambda s: _mixed(s) and not s.startswith("sk-ant-")),
    _f("huggingface_token", r"(?:hf|api_org)_[A-Za-z]{34}", ("hf_", "api_org_"),
       lambda s: _after_mixed(0)(s.split("_")[-1]), tail=_W),
    _f("groq_key", r"gsk_[A-Za-z0-9]{52}", "gsk_", _after(4), tail=_ANW),
    _f("replicate_token", r"r8_[A-Za-z0-9]{37}", "r8_", _after(3), tail=_ANW),
    _f("perplexity_key", r"pplx-[A-Za-z0-9]{48}", "pplx-", _after(5), tail=_ANW),
    _f("xai_key", r"xai-[A-Za-z0-9]{80}", "xai-", _after(4), tail=_ANW),
    # -- connection strings ------------------------------------------------------------------
    _f("url_password", r"://[^\s:/?#@'\"\x00]{0,256}:(?P<v>[^\s/?#@'\"\x00]{1,256})@"
       r"[A-Za-z0-9\[]", "://", _url_password, boundary=False),
)

# Formats that only mean something next to a keyword: judged where a key names them
# (`HEROKU_API_KEY=<uuid>`), over every assignment syntax the text scan reads.
# (keyword in the key, value shape, kind)
CONTEXT: tuple[tuple[str, re.Pattern[str], str], ...] = tuple(
    (kw, re.compile(shape + r"\Z"), kind) for kw, shape, kind in (
        ("heroku", _UUID, "heroku_api_key"),
        ("snyk", _UUID, "snyk_token"),
        ("hubspot", _UUID, "hubspot_token"),
        ("postmark", _UUID, "postmark_token"),
        ("splunk", _UUID, "splunk_token"),
        ("pagerduty", r"[A-Za-z0-9_+\-]{20}", "pagerduty_token"),
        ("datadog", r"[a-f0-9]{32}|[a-f0-9]{40}", "datadog_key"),
        ("dd_api", r"[a-f0-9]{32}", "datadog_key"),
        ("dd_app", r"[a-f0-9]{40}", "datadog_key"),
        ("cloudflare", r"[A-Za-z0-9_\-]{37,40}", "cloudflare_token"),
        ("twilio", r"[a-f0-9]{32}", "twilio_token"),
        ("discord", r"[MNO][A-Za-z0-9_\-]{23,27}\.[A-Za-z0-9_\-]{6}\."
         r"[A-Za-z0-9_\-]{27,38}", "discord_token"),
        ("asana", r"[0-9]{1}/[0-9]{13,16}(?:/[0-9]{13,16})?:[a-f0-9]{32}|[0-9]{16}", "asana_token"),
        ("algolia", r"[a-f0-9]{32}", "algolia_key"),
        ("mailgun", r"(?:key-)?[a-f0-9]{32}(?:-[a-f0-9]{8}-[a-f0-9]{8})?", "mailgun_key"),
        ("okta", r"00[A-Za-z0-9_\-]{40}", "okta_token"),
        ("airtable", r"pat[A-Za-z0-9]{14}\.[a-f0-9]{64}|key[A-Za-z0-9]{14}", "airtable_token"),
        ("twilio", r"SK[a-f0-9]{32}", "twilio_api_key"),
    )
)
CONTEXT_WORDS = tuple(kw for kw, _, _ in CONTEXT)


def context_kind(key: str, value: str) -> str | None:
    """A provider-shaped value under a key naming that provider (a UUID under
    `HEROKU_API_KEY`): caught where the generic rule passes UUIDs and digits."""
    low = key.lower()
    if not any(h in low for h in KEY_HINTS):
        return None  # SECURITY: keeps `may_match` a cover (a finding needs a hint or needle)
    for kw, shape, kind in CONTEXT:
        if kw in low and shape.match(value) and generated(value, 6):
            return kind
    return None


# The key-value rule in text: `key <op> value` for every assignment syntax the
# issue lists (`=`, `:`, `:=`, `=>`, `?=`, `.=`, `+=`, `var k string = v`), XML elements,
# call arguments (`setProperty("K", "v")`) and long CLI flags (`--password v`).
_VAL = r"([^\s\"'`<>;,()\x00]{8,256})"
_NEXT_PAIR = re.compile(r"[\w.\-\[\]]{1,64}=")
# Every key `is_secret_key` accepts holds one of these (lowercased): a text without any
# has no assignment worth scanning (tests/credentials/test_detect.py checks the cover).
KEY_HINTS = ("pass", "pwd", "secret", "token", "cred", "auth", "key", "cookie")
# A key is only taken when it holds a hint: the engine skips every other `k=v`.
_KEY = (r"([A-Za-z0-9_.\-]{0,63}(?i:" + "|".join(KEY_HINTS) + r")[A-Za-z0-9_.\-]{0,63})")
_ASSIGN_PATTERNS = (
    _KEY + r"[\"'\]]?[ \t]{0,8}(?:[A-Za-z_][A-Za-z0-9_.\[\]]{0,24}[ \t]{1,4})?"
    r"(?:=>|:=|\?=|\.=|\+=|=|:)[ \t]{0,8}(?:[\"'`]|[A-Za-z]{0,2}[\"'])?" + _VAL,
    r"<" + _KEY + r"(?:[ \t][^<>]{0,256})?>[ \t]{0,8}(?:<!\[CDATA\[)?" + _VAL
    + r"[ \t]{0,8}(?:\]\]>)?</",
    r"\([ \t]{0,8}[\"']" + _KEY + r"[\"'][ \t]{0,8},[ \t]{0,8}[\"']" + _VAL + r"[\"']",
    r"--" + _KEY + r"[ \t]{1,4}[\"']?" + _VAL,
)
MAX_ASSIGNMENTS = 4096
"""Assignments judged in one text; past this a strict scan reports `unjudged_values`
(refused: a guard never switches off under load it cannot judge)."""
_OPTIONS = re2.Options()
_OPTIONS.max_mem = 64 << 20
_ASSIGN = tuple(re2.compile(p, _OPTIONS) for p in _ASSIGN_PATTERNS)
_AWS_SECRET = re.compile(r"[A-Za-z0-9/+]{40}\Z")
_COMPILED = tuple((f, re2.compile(f.pattern, _OPTIONS), frozenset(f.tail)) for f in FORMATS)
_NEEDLES = tuple((n, i) for i, f in enumerate(FORMATS) for n in f.needles)
_UNANCHORED = re2._Anchor.UNANCHORED


def _ascii_error(err: UnicodeError) -> tuple[str, int]:
    # One DEL per character keeps offsets: no format matches across it.
    return "\x7f" * (err.end - err.start), err.end  # type: ignore[attr-defined]


codecs.register_error("callwarden-del", _ascii_error)


def _as_bytes(text: str) -> bytes:
    """One byte per character (non-ASCII becomes DEL): RE2 offsets are str offsets."""
    return text.encode("ascii", "callwarden-del")


def _gates(words: Iterable[str]) -> dict[str, re.Pattern[str]]:
    """One regex per first character of `words`, matching wherever one of them starts
    (literals only: C-speed, linear). The fallback when the automaton is missing."""
    rests: dict[str, list[str]] = {}
    for w in words:
        rests.setdefault(w[0], []).append(w[1:])
    return {c: re.compile(re.escape(c) + "(?:" + "|".join(
        re.escape(r) for r in sorted(set(rs), key=len, reverse=True)) + ")")
        for c, rs in rests.items()}


# (gate, needles under it): a text the gate does not match holds none of its needles.
_NEEDLE_GROUPS = tuple(
    (gate, tuple((n, i) for n, i in _NEEDLES if n[0] == c))
    for c, gate in _gates(n for n, _ in _NEEDLES).items()
)
_HINT_GATES = tuple(_gates(KEY_HINTS).values())


def key_kind(key: str, value: str) -> str:
    """Kind for a strong literal under a secret-looking key."""
    if "aws" in key.lower() and _AWS_SECRET.match(value):
        return "aws_secret_access_key"
    return "secret_key_value"


def _gated_hint(text: str) -> bool:
    lower = text.lower()
    return any(gate.search(lower) is not None for gate in _HINT_GATES)


def _matches(rx: re2._Regexp, data: bytes, floor: list[int] | None = None,
             ) -> Iterator[tuple[tuple[int, int], ...]]:
    """Every non-overlapping match of `rx` in `data`, as RE2's (start, end) spans (the
    whole match, then the groups), left to right in one linear pass; `floor[0]`, when the
    caller raises it, is where the next search starts at the earliest."""
    pos, end = 0, len(data)
    match = rx._regexp.Match
    while pos < end:
        spans = match(_UNANCHORED, data, pos, end)
        ms, me = spans[0]
        if ms < 0:
            return
        pos = me if me > ms else ms + 1
        yield spans
        if floor is not None and floor[0] > pos:
            pos = floor[0]


def _gated_present(text: str) -> set[int]:
    present: set[int] = set()
    for gate, needles in _NEEDLE_GROUPS:
        if gate.search(text) is not None:
            present.update(i for n, i in needles if n in text)
    return present


def _gated_may_match(text: str) -> bool:
    return any(gate.search(text) is not None for gate, _ in _NEEDLE_GROUPS) or _gated_hint(text)


def _gated_scan(text: str) -> tuple[set[int], bool]:
    return _gated_present(text), _gated_hint(text)


if AhoCorasick is not None:
    # One automaton pass over the text finds every needle (overlapping ones too) and
    # every key hint in any ASCII case.
    _VARIANTS = sorted({"".join(p) for h in KEY_HINTS
                        for p in product(*((c, c.upper()) for c in h))})
    _HINT = -1
    _MEANING = (*(i for _, i in _NEEDLES), *(_HINT for _ in _VARIANTS))
    _hits = AhoCorasick([*(n for n, _ in _NEEDLES), *_VARIANTS], matchkind=MatchKind.Standard,
                        implementation=Implementation.DFA).find_matches_as_indexes

    # A text with lone surrogates (bad UTF-8 read with surrogateescape) has no UTF-8
    # form for the automaton: it takes the gates. Non-ASCII text can spell a hint that
    # only `lower()` finds (a Kelvin sign for the k of "key"): the gates look again.

    def _scan(text: str) -> tuple[set[int], bool]:
        try:
            meanings = {_MEANING[n] for n, _, _ in _hits(text, overlapping=True)}
        except UnicodeEncodeError:
            return _gated_scan(text)
        hint = _HINT in meanings
        meanings.discard(_HINT)
        return meanings, hint or (not text.isascii() and _gated_hint(text))

    def may_match(text: str) -> bool:
        """False when `find` cannot report anything in `text` (no format's literal
        prefix, no secret-key hint): the cheap half of `find`."""
        try:
            if _hits(text):
                return True
        except UnicodeEncodeError:
            return _gated_may_match(text)
        return not text.isascii() and _gated_hint(text)
else:
    _scan, may_match = _gated_scan, _gated_may_match

if REFERENCE:  # no prefilter: every format's pattern and the key scan run on every text
    _EVERY = frozenset(range(len(FORMATS)))

    def _scan(text: str) -> tuple[set[int], bool]:
        return set(_EVERY), True

    def may_match(text: str) -> bool:
        return True


_PEM_WINDOW = 65536


def _pem_end(text: str, header_end: int) -> tuple[int, int]:
    """(body end, key end) of the key whose BEGIN header ends at `header_end`; key end
    -1 without an END line. Looks only up to the next `-----` (a key body has no dashes), so each
    character is read once however many headers a text holds."""
    nxt = text.find("-----", header_end, header_end + _PEM_WINDOW)
    if nxt < 0:
        return min(len(text), header_end + _PEM_WINDOW), -1
    if not text.startswith("-----END", nxt):
        return nxt, -1
    close = text.find("-----", nxt + 8, nxt + 60)
    if close < 0 or "PRIVATE KEY" not in text[nxt:close]:
        return nxt, -1
    return nxt, close + 5


def find(text: str, strict: bool = False) -> list[tuple[str, int, int]]:
    """(kind, start, end) of each credential in `text`; start/end span the secret part.
    `strict` (detection): a format also passes its `verify` (checksum, decoding) and a
    private key needs a body that decodes; masking takes every format-shaped match.
    A `key=value` assignment is reported only where no known format already is."""
    return scan(text, strict)[0]


Span = tuple[int, int]


def scan(text: str, strict: bool = False) -> tuple[list[tuple[str, int, int]], list[Span]]:
    """`find`, plus the spans of look-alikes a format judged and threw out (a failed
    checksum, a documented example, a mask): the key-name rule does not judge those
    again (`GITHUB_TOKEN=ghp_<bad checksum>` is a look-alike, not a password)."""
    found: list[tuple[str, int, int]] = []
    judged: list[Span] = []
    present, hint = _scan(text)
    data: bytes | None = None
    for i in sorted(present):
        fmt, rx, tail = _COMPILED[i]
        if data is None:
            data = _as_bytes(text)
        floor = [0]
        for spans in _matches(rx, data, floor):
            ms, me = spans[0]
            if fmt.boundary and ms and text[ms - 1] in _WORD:
                continue
            if tail and me < len(text) and text[me] in tail:
                continue
            start, stop = spans[1] if len(spans) > 1 and spans[1][0] >= 0 else (ms, me)
            if fmt.kind == "private_key":
                body_end, close = _pem_end(text, me)
                if close >= 0:
                    stop = close
                    floor[0] = close  # the next match starts after the key's END line
                # SECURITY (look-alikes): a header alone, or a body that is no key; a
                # body cut before its END line is still judged.
                # (a key is 64+ bytes: 86+ base64 characters before the next dash)
                if strict and (body_end - me < 86 or not pem_body_ok(text[me:body_end])):
                    judged.append((start, stop))
                    continue
            secret = text[start:stop]
            if (secret in DOCUMENTED_EXAMPLES
                    or (fmt.check is not None and not fmt.check(secret))
                    or (strict and fmt.verify is not None and not fmt.verify(secret))):
                judged.append((start, stop))
                continue
            found.append((fmt.kind, start, stop))
    if not hint:
        return found, judged
    if data is None:
        data = _as_bytes(text)
    # Overlap with a format's verdict, in log time: spans by start, running max of ends.
    taken = sorted([(s, e) for _, s, e in found] + judged)
    starts = [s for s, _ in taken]
    max_end = list(accumulate((e for _, e in taken), max))
    budget = MAX_ASSIGNMENTS
    for rx in _ASSIGN:
        for spans in _matches(rx, data):
            ms, me = spans[0]
            budget -= 1
            if budget < 0:
                # SECURITY: bounded work, and what was not judged is not passed.
                if strict:
                    found.append(("unjudged_values", ms, me))
                return found, judged
            (ks, ke), (start, stop) = spans[1], spans[2]
            n = bisect_left(starts, stop)
            if n and max_end[n - 1] > start:
                continue
            if (stop < len(text) and text[stop] == "(") or text[stop - 1] == "[":
                continue  # an expression, not a literal: `getToken(..)`, `os.environ['X']`
            value = text[start:stop]
            amp = value.find("&")
            while amp >= 0:  # `a=b&next=c`: a query string's next pair ends the value
                if _NEXT_PAIR.match(value, amp + 1):
                    value = value[:amp]
                    break
                amp = value.find("&", amp + 1)
            kind = pair_kind(text[ks:ke], value)
            if kind:
                found.append((kind, start, start + len(value)))
    return found, judged


def pair_kind(key: str, value: str) -> str | None:
    """A literal under a key: provider context first, then the generic rule."""
    if not key:
        return None
    kind = context_kind(key, value)
    if kind:
        return kind
    if is_secret_key(key) and is_strong_literal(value):
        return key_kind(key, value)
    return None


def first(text: str, strict: bool = True) -> str | None:
    """Kind of the first credential in `text`, or None."""
    found = find(text, strict)
    return found[0][0] if found else None
