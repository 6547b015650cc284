"""Builds secret_corpus.json: fake credentials generated from providers' published token
formats (prefix, alphabet, length, checksum), each alone and in the contexts it is
usually written in (env files, YAML/TOML/INI/XML, code assignments in several
languages, CLI flags, connection URLs), and look-alikes (failed checksums, documented
example keys, masks, placeholders, references, PEM headers without a key, JWT-shaped
text that does not decode). Generated here, not copied from any rule set. Seeded:

    python tests/credentials/data/make_secret_corpus.py
"""

from __future__ import annotations

import base64
import json
import random
import string
import uuid
import zlib
from collections.abc import Callable
from pathlib import Path

R = random.Random(31)
LOWER, UPPER, DIGITS = string.ascii_lowercase, string.ascii_uppercase, string.digits
ALNUM = LOWER + UPPER + DIGITS
HEX = "0123456789abcdef"
URLSAFE = ALNUM + "-_"
B62 = DIGITS + UPPER + LOWER


def rnd(n: int, alphabet: str = ALNUM) -> str:
    while True:
        s = "".join(R.choice(alphabet) for _ in range(n))
        # what an issuer's generator gives: several classes when the alphabet has them
        if len(alphabet) < 30 or (any(c.isupper() for c in s) + any(c.islower() for c in s)
                                  + any(c.isdigit() for c in s)) >= 2:
            return s


def uid() -> str:
    return str(uuid.UUID(int=R.getrandbits(128), version=4))


def crc_b62(body: str) -> str:
    n, out = zlib.crc32(body.encode()), ""
    while n:
        n, r = divmod(n, 62)
        out = B62[r] + out
    return out.rjust(6, "0")


def github(prefix: str) -> str:
    body = rnd(30)
    return prefix + body + crc_b62(body)


def b64u(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


def jwt() -> str:
    head = b64u({"alg": R.choice(["HS256", "RS256", "ES256"]), "typ": "JWT"})
    body = b64u({"sub": rnd(10), "iat": R.randint(1.6e9, 1.8e9), "scope": "read write"})
    return f"{head}.{body}.{rnd(43, URLSAFE)}"


def pem(label: str, magic: bytes) -> str:
    blob = base64.b64encode(magic + bytes(R.randrange(256) for _ in range(400))).decode()
    lines = "\n".join(blob[i:i + 64] for i in range(0, len(blob), 64))
    return f"-----BEGIN {label}-----\n{lines}\n-----END {label}-----"


# kind -> (generator, usual variable name). Formats as each provider documents them.
SELF: dict[str, tuple[Callable[[], str], str]] = {
    "aws_access_key_id": (lambda: R.choice(["AKIA", "ASIA"]) + rnd(16, UPPER + "234567"),
                          "AWS_ACCESS_KEY_ID"),
    "github_token/ghp": (lambda: github("ghp_"), "GITHUB_TOKEN"),
    "github_token/gho": (lambda: github("gho_"), "GH_OAUTH_TOKEN"),
    "github_token/ghs": (lambda: github("ghs_"), "GITHUB_APP_TOKEN"),
    "github_token/pat": (lambda: "github_pat_" + rnd(22) + "_" + rnd(59), "GH_TOKEN"),
    "gitlab_token": (lambda: "glpat-" + rnd(20, URLSAFE), "GITLAB_TOKEN"),
    "slack_token/bot": (lambda: f"xoxb-{rnd(12, DIGITS)}-{rnd(13, DIGITS)}-{rnd(24)}",
                        "SLACK_BOT_TOKEN"),
    "slack_token/app": (lambda: f"xapp-1-A{rnd(10, UPPER + DIGITS)}-{rnd(13, DIGITS)}-"
                        f"{rnd(64, HEX)}", "SLACK_APP_TOKEN"),
    "slack_webhook": (lambda: f"https://hooks.slack.com/services/T{rnd(8, UPPER + DIGITS)}/"
                      f"B{rnd(8, UPPER + DIGITS)}/{rnd(24)}", "SLACK_WEBHOOK_URL"),
    "stripe_key": (lambda: "sk_live_" + rnd(99), "STRIPE_SECRET_KEY"),
    "stripe_key/restricted": (lambda: "rk_live_" + rnd(99), "STRIPE_RESTRICTED_KEY"),
    "stripe_webhook_secret": (lambda: "whsec_" + rnd(32), "STRIPE_WEBHOOK_SECRET"),
    "google_api_key": (lambda: "AIza" + rnd(35, URLSAFE), "GOOGLE_API_KEY"),
    "google_oauth_secret": (lambda: "GOCSPX-" + rnd(28, URLSAFE), "GOOGLE_CLIENT_SECRET"),
    "google_oauth_token": (lambda: "ya29." + rnd(150, URLSAFE), "GOOGLE_ACCESS_TOKEN"),
    "azure_ad_client_secret": (lambda: rnd(3) + R.choice(DIGITS) + "Q~" + rnd(34, URLSAFE
                               + "~."), "AZURE_CLIENT_SECRET"),
    "azure_connection_string": (lambda: "DefaultEndpointsProtocol=https;AccountName=acct;"
                                f"AccountKey={rnd(86, ALNUM + '+/')}==;EndpointSuffix=core."
                                "windows.net", "AZURE_STORAGE_CONNECTION_STRING"),
    "digitalocean_token": (lambda: "dop_v1_" + rnd(64, HEX), "DIGITALOCEAN_TOKEN"),
    "alibaba_access_key": (lambda: "LTAI" + rnd(20), "ALIBABA_CLOUD_ACCESS_KEY_ID"),
    "heroku_api_key/hrku": (lambda: "HRKU-" + rnd(60, URLSAFE), "HEROKU_API_KEY"),
    "flyio_token": (lambda: "fm2_" + rnd(300, ALNUM + "+/="), "FLY_API_TOKEN"),
    "netlify_token": (lambda: "nfp_" + rnd(36), "NETLIFY_AUTH_TOKEN"),
    "supabase_token": (lambda: "sbp_" + rnd(40, HEX), "SUPABASE_ACCESS_TOKEN"),
    "planetscale_token": (lambda: "pscale_tkn_" + rnd(43, URLSAFE), "PLANETSCALE_TOKEN"),
    "databricks_token": (lambda: "dapi" + rnd(32, HEX), "DATABRICKS_TOKEN"),
    "vault_token": (lambda: "hvs." + rnd(90, URLSAFE), "VAULT_TOKEN"),
    "terraform_cloud_token": (lambda: rnd(14) + ".atlasv1." + rnd(67, URLSAFE),
                              "TFE_TOKEN"),
    "doppler_token": (lambda: "dp.st.prd." + rnd(43), "DOPPLER_TOKEN"),
    "pulumi_token": (lambda: "pul-" + rnd(40, HEX), "PULUMI_ACCESS_TOKEN"),
    "onepassword_token": (lambda: "ops_eyJ" + rnd(500, ALNUM + "+/"), "OP_SERVICE_ACCOUNT_TOKEN"),
    "tailscale_key": (lambda: f"tskey-auth-k{rnd(11)}-{rnd(33)}", "TS_AUTHKEY"),
    "age_secret_key": (lambda: "AGE-SECRET-KEY-1" + rnd(58, "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L"),
                       "SOPS_AGE_KEY"),
    "bitbucket_app_password": (lambda: "ATBB" + rnd(32), "BITBUCKET_APP_PASSWORD"),
    "atlassian_api_token": (lambda: "ATATT3xFfGF0" + rnd(170, URLSAFE + "="), "JIRA_API_TOKEN"),
    "circleci_token": (lambda: "CCIPAT_" + rnd(22) + "_" + rnd(40, HEX), "CIRCLE_TOKEN"),
    "buildkite_token": (lambda: "bkua_" + rnd(40, HEX), "BUILDKITE_API_TOKEN"),
    "npm_token": (lambda: "npm_" + rnd(36), "NPM_TOKEN"),
    "pypi_token": (lambda: "pypi-AgEIcHlwaS5vcmc" + rnd(150, URLSAFE), "PYPI_API_TOKEN"),
    "rubygems_token": (lambda: "rubygems_" + rnd(48, HEX), "GEM_HOST_API_KEY"),
    "nuget_key": (lambda: "oy2" + rnd(43, LOWER + DIGITS), "NUGET_API_KEY"),
    "docker_hub_token": (lambda: "dckr_pat_" + rnd(27, URLSAFE), "DOCKERHUB_TOKEN"),
    "jfrog_token": (lambda: "AKCp" + rnd(69), "JFROG_API_KEY"),
    "postman_key": (lambda: f"PMAK-{rnd(24, HEX)}-{rnd(34, HEX)}", "POSTMAN_API_KEY"),
    "square_token": (lambda: "EAAA" + rnd(60, URLSAFE), "SQUARE_ACCESS_TOKEN"),
    "shopify_token": (lambda: "shpat_" + rnd(32, HEX), "SHOPIFY_ACCESS_TOKEN"),
    "braintree_token": (lambda: f"access_token$production${rnd(16, LOWER + DIGITS)}$"
                        f"{rnd(32, HEX)}", "BRAINTREE_ACCESS_TOKEN"),
    "discord_webhook": (lambda: f"https://discord.com/api/webhooks/{rnd(18, DIGITS)}/"
                        f"{rnd(68, URLSAFE)}", "DISCORD_WEBHOOK_URL"),
    "teams_webhook": (lambda: f"https://contoso.webhook.office.com/webhookb2/{uid()}@{uid()}/"
                      f"IncomingWebhook/{rnd(32, HEX)}/{uid()}", "TEAMS_WEBHOOK_URL"),
    "telegram_bot_token": (lambda: f"{rnd(10, DIGITS)}:AA{rnd(33, URLSAFE)}",
                           "TELEGRAM_BOT_TOKEN"),
    "sendgrid_key": (lambda: f"SG.{rnd(22, URLSAFE)}.{rnd(43, URLSAFE)}", "SENDGRID_API_KEY"),
    "mailchimp_key": (lambda: rnd(32, HEX) + "-us" + str(R.randint(1, 21)), "MAILCHIMP_API_KEY"),
    "linear_api_key": (lambda: "lin_api_" + rnd(40), "LINEAR_API_KEY"),
    "notion_token": (lambda: "ntn_" + rnd(46), "NOTION_TOKEN"),
    "figma_token": (lambda: "figd_" + rnd(40, URLSAFE), "FIGMA_TOKEN"),
    "hubspot_token": (lambda: "pat-na1-" + uid(), "HUBSPOT_ACCESS_TOKEN"),
    "sentry_token": (lambda: "sntrys_eyJ" + rnd(120, ALNUM + "+/=") + "_" + rnd(43),
                     "SENTRY_AUTH_TOKEN"),
    "sentry_token/user": (lambda: "sntryu_" + rnd(64, HEX), "SENTRY_AUTH_TOKEN"),
    "grafana_token": (lambda: "glsa_" + rnd(32) + "_" + rnd(8, HEX), "GRAFANA_TOKEN"),
    "newrelic_key": (lambda: "NRAK-" + rnd(27, UPPER + DIGITS), "NEW_RELIC_API_KEY"),
    "dynatrace_token": (lambda: f"dt0c01.{rnd(24, UPPER + DIGITS)}.{rnd(64, UPPER + DIGITS)}",
                        "DT_API_TOKEN"),
    "openai_key": (lambda: "sk-proj-" + rnd(156, URLSAFE), "OPENAI_API_KEY"),
    "openai_key/legacy": (lambda: "sk-" + rnd(20) + "T3BlbkFJ" + rnd(20), "OPENAI_API_KEY"),
    "anthropic_key": (lambda: "sk-ant-api03-" + rnd(93, URLSAFE) + "AA", "ANTHROPIC_API_KEY"),
    "huggingface_token": (lambda: "hf_" + rnd(34, LOWER + UPPER), "HF_TOKEN"),
    "groq_key": (lambda: "gsk_" + rnd(52), "GROQ_API_KEY"),
    "replicate_token": (lambda: "r8_" + rnd(37), "REPLICATE_API_TOKEN"),
    "perplexity_key": (lambda: "pplx-" + rnd(48), "PERPLEXITY_API_KEY"),
    "xai_key": (lambda: "xai-" + rnd(80), "XAI_API_KEY"),
    "jwt": (jwt, "ACCESS_TOKEN"),
    "jwt/base64": (lambda: base64.b64encode(jwt().encode()).decode(), "ENCODED_TOKEN"),
    "private_key/rsa": (lambda: pem("RSA PRIVATE KEY", b"\x30\x82\x04\xa4"), "PRIVATE_KEY"),
    "private_key/pkcs8": (lambda: pem("PRIVATE KEY", b"\x30\x82\x04\xbe"), "PRIVATE_KEY"),
    "private_key/openssh": (lambda: pem("OPENSSH PRIVATE KEY", b"openssh-key-v1\x00"),
                            "SSH_PRIVATE_KEY"),
    "azure_devops_pat": (lambda: rnd(52) + "AZDO" + rnd(4), "AZURE_DEVOPS_PAT"),
    "azure_sas_signature": (lambda: "https://acct.blob.core.windows.net/c/b.txt?sv=2022-11-02"
                            f"&se=2030-01-01&sp=r&sig={rnd(43, ALNUM)}%3D", "BLOB_SAS_URL"),
    "basic_auth": (lambda: "Basic " + base64.b64encode(f"svc:{rnd(18)}".encode()).decode(),
                   "UPSTREAM_AUTHORIZATION"),
    "clojars_token": (lambda: "CLOJARS_" + rnd(60, LOWER + DIGITS), "CLOJARS_TOKEN"),
    "cloudflare_origin_ca_key": (lambda: f"v1.0-{rnd(24, HEX)}-{rnd(146, HEX)}",
                                 "CF_ORIGIN_CA_KEY"),
    "dropbox_token": (lambda: "sl." + rnd(140, URLSAFE), "DROPBOX_ACCESS_TOKEN"),
    "easypost_key": (lambda: "EZAK" + rnd(54), "EASYPOST_API_KEY"),
    "facebook_token": (lambda: "EAAB" + rnd(180), "FACEBOOK_ACCESS_TOKEN"),
    "flutterwave_key": (lambda: f"FLWSECK-{rnd(32, HEX)}-X", "FLW_SECRET_KEY"),
    "google_refresh_token": (lambda: "1//0" + rnd(100, URLSAFE), "GOOGLE_REFRESH_TOKEN"),
    "launchdarkly_key": (lambda: "sdk-" + uid(), "LAUNCHDARKLY_SDK_KEY"),
    "mapbox_secret_token": (lambda: "sk.eyJ" + rnd(80, URLSAFE) + "." + rnd(22, URLSAFE),
                            "MAPBOX_SECRET_TOKEN"),
    "onepassword_secret_key": (lambda: "A3-" + "-".join(rnd(n, UPPER + DIGITS)
                               for n in (6, 6, 5, 5, 5, 5)), "OP_SECRET_KEY"),
    "prefect_token": (lambda: "pnu_" + rnd(36), "PREFECT_API_KEY"),
    "render_api_key": (lambda: "rnd_" + rnd(32), "RENDER_API_KEY"),
    "shippo_token": (lambda: "shippo_live_" + rnd(40, HEX), "SHIPPO_API_TOKEN"),
    "sourcegraph_token": (lambda: "sgp_" + rnd(16, HEX) + "_" + rnd(40, HEX), "SRC_ACCESS_TOKEN"),
    "tencent_secret_id": (lambda: "AKID" + rnd(32), "TENCENTCLOUD_SECRET_ID"),
    "twitter_bearer": (lambda: "A" * 21 + rnd(80, ALNUM + "%"), "TWITTER_BEARER_TOKEN"),
    "typeform_token": (lambda: "tfp_" + rnd(44, URLSAFE), "TYPEFORM_TOKEN"),
    "url_password/postgres": (lambda: f"postgres://app:{rnd(20)}@db.internal:5432/app",
                              "DATABASE_URL"),
    "url_password/mongodb": (lambda: f"mongodb+srv://svc:{rnd(16)}@cluster0.mongodb.net/db",
                             "MONGODB_URI"),
    "url_password/redis": (lambda: f"redis://:{rnd(24)}@cache:6379/0", "REDIS_URL"),
    "url_password/amqp": (lambda: f"amqp://guest2:{rnd(18)}@mq:5672/", "AMQP_URL"),
}

# Values only a key or keyword says are credentials (the context rules).
CONTEXT_ONLY: dict[str, tuple[Callable[[], str], str]] = {
    "heroku_api_key": (uid, "HEROKU_API_KEY"),
    "snyk_token": (uid, "SNYK_TOKEN"),
    "datadog_key": (lambda: rnd(32, HEX), "DATADOG_API_KEY"),
    "cloudflare_token": (lambda: rnd(40, URLSAFE), "CLOUDFLARE_API_TOKEN"),
    "twilio_token": (lambda: rnd(32, HEX), "TWILIO_AUTH_TOKEN"),
    "discord_token": (lambda: "M" + rnd(25, URLSAFE) + "." + rnd(6, URLSAFE) + "." + rnd(38,
                      URLSAFE), "DISCORD_BOT_TOKEN"),
    "airtable_token": (lambda: "pat" + rnd(14) + "." + rnd(64, HEX), "AIRTABLE_API_KEY"),
    "mailgun_key": (lambda: rnd(32, HEX) + "-" + rnd(8, HEX) + "-" + rnd(8, HEX),
                    "MAILGUN_API_KEY"),
    "pagerduty_token": (lambda: rnd(20, URLSAFE + "+"), "PAGERDUTY_TOKEN"),
    "postmark_token": (uid, "POSTMARK_SERVER_TOKEN"),
    "splunk_token": (uid, "SPLUNK_HEC_TOKEN"),
    "twilio_api_key": (lambda: "SK" + rnd(32, HEX), "TWILIO_API_KEY"),
    "asana_token": (lambda: f"1/{rnd(16, DIGITS)}:{rnd(32, HEX)}", "ASANA_ACCESS_TOKEN"),
    "algolia_key": (lambda: rnd(32, HEX), "ALGOLIA_ADMIN_KEY"),
    "okta_token": (lambda: "00" + rnd(40, URLSAFE), "OKTA_API_TOKEN"),
    "aws_secret_access_key": (lambda: rnd(40, ALNUM + "/+"), "AWS_SECRET_ACCESS_KEY"),
    "secret_key_value/password": (lambda: rnd(16, ALNUM + "!#%&*"), "DB_PASSWORD"),
    "secret_key_value/client": (lambda: rnd(32), "OAUTH_CLIENT_SECRET"),
    "secret_key_value/digits": (lambda: rnd(24, DIGITS + LOWER), "API_KEY"),
}


def camel(name: str) -> str:
    first, *rest = name.lower().split("_")
    return first + "".join(w.title() for w in rest)


def contexts(name: str, value: str) -> list[str]:
    """The same secret as people write it: env, YAML, JSON, TOML/INI, code in several
    languages, XML, CLI flags."""
    low, cm = name.lower(), camel(name)
    one_line = "\n" not in value
    forms = [
        f"export {name}={value}" if one_line else f'export {name}="{value}"',
        f'{name}="{value}"',
        f"{low}: {value}" if one_line else f"{low}: |\n  " + value.replace("\n", "\n  "),
        json.dumps({cm: value}),
        f'{low} = "{value}"',
    ]
    if one_line:
        forms += [
            f'{cm} := "{value}"',
            f"'{low}' => '{value}',",
            f"{name} ?= {value}",
            f'$this->{cm} .= "{value}";',
            f'var {cm} string = "{value}"',
            f'props.setProperty("{low}", "{value}");',
            f"<{cm}>{value}</{cm}>",
            f"--{low.replace('_', '-')} {value}",
            f"--{low.replace('_', '-')}={value}",
            f"const {cm} = '{value}';",
            f'{cm}: "{value}",',
            f"{low}={value}",
        ]
    return forms


def lookalikes() -> list[tuple[str, str]]:
    """(why, text): must pass."""
    out: list[tuple[str, str]] = []
    for _ in range(12):
        bad = github(R.choice(["ghp_", "gho_", "ghs_"]))
        bad = bad[:-6] + rnd(6)  # a checksum that fails
        out.append(("github_bad_checksum", bad))
        out.append(("github_bad_checksum", f"GITHUB_TOKEN={bad}"))
    out += [("documented_example", v) for v in (
        "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "AKIAI44QH8DHBEXAMPLE", "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
        "stripe.api_key = 'sk_test_4eC39HqLyjWDarjtT1zdp7dc'",
    )]
    masks = ["ghp_" + "x" * 36, "ghp_" + "0" * 36, "sk_live_" + "x" * 24, "AKIA" + "X" * 16,
             "xoxb-" + "0" * 12 + "-" + "x" * 24, "glpat-" + "x" * 20, "hf_" + "x" * 34,
             "sk-" + "*" * 40, "AIza" + "X" * 35, "npm_" + "0" * 36, "dop_v1_" + "0" * 64,
             "SG." + "x" * 22 + "." + "x" * 43, "sk-ant-api03-" + "x" * 95,
             "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
             "sk-proj-abcdefghijklmnopqrstuvwxyz123456", "lin_api_" + "abcdef" * 6 + "ghij",
             "pplx-" + "1234567890" * 4 + "abcdefgh", "ghp_abcdefghijklmnopqrstuvwxyz0123456789"]
    out += [("mask", m) for m in masks]
    out += [("placeholder", v) for v in (
        "<your-github-token>", "YOUR_API_KEY", "your-api-key-here", "sk-...", "ghp_...",
        "sk-ant-api03-abc123xyz-...", "xoxb-your-token", "Bearer <token>", "changeme",
        "REPLACE_ME", "********", "[REDACTED]", "TODO", "<insert key>", "{{API_KEY}}",
        "OPENAI_API_KEY=sk-...", "GITHUB_TOKEN=<token>", "password: changeme",
        "api_key: YOUR_API_KEY", "token = \"xxxxxxxxxxxxxxxx\"", "secret: '***'",
        "DATABASE_URL=postgres://user:password@localhost:5432/db",
        "DATABASE_URL=postgres://app:${PG_PASSWORD}@db:5432/app",
        "redis://:****@cache:6379", "test_user_login", "test_suite_runner_config",
    )]
    out += [("reference", v) for v in (
        "GITHUB_TOKEN=${GITHUB_TOKEN}", "token: ${{ secrets.GITHUB_TOKEN }}",
        "password = var.db_password", "password = local.db_password",
        "api_key = module.secrets.api_key", "TOKEN=$(gcloud auth print-access-token)",
        "token=`vault kv get -field=token secret/app`", "password: $DB_PASSWORD",
        "apiKey: process.env.STRIPE_KEY", "secret = os.environ['CLIENT_SECRET']",
        "password := os.Getenv(\"DB_PASSWORD\")", "{{ .Values.apiToken }}",
        "token: {{ vault \"secret/data/app\" \"token\" }}", "password: \"%DB_PASSWORD%\"",
        "auth_token = data.aws_secretsmanager_secret_version.app.secret_string",
        "client_secret: ${env:CLIENT_SECRET}", "api_key=vault:secret/data/crm#key",
        "<password>${db.password}</password>", "--password \"$PGPASSWORD\"",
        "setProperty(\"db.password\", System.getenv(\"DB_PASSWORD\"))",
    )]
    out += [("pem_without_key", v) for v in (
        "-----BEGIN RSA PRIVATE KEY-----",
        "-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----",
        "-----BEGIN OPENSSH PRIVATE KEY-----\n<your key here>\n-----END OPENSSH PRIVATE KEY-----",
        "Paste the text between -----BEGIN PRIVATE KEY----- and -----END PRIVATE KEY-----",
        "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE" + rnd(60, ALNUM + "+/")
        + "\n-----END PUBLIC KEY-----",
    )]
    out += [("jwt_shaped", v) for v in (
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.",
        "eyJxxxxxxxxxx.eyJxxxxxxxxxx.xxxxxxxxxxxx",
        "eyJ" + rnd(30) + ".eyJ" + rnd(40) + "." + rnd(43, URLSAFE),
        "import io.jsonwebtoken.Jwts;", "io.jsonwebtoken.security.Keys",
        "jwt_secret_name: app-jwt-signing", "ZXlK" + rnd(80, ALNUM + "+/"),
    )]
    out += [("identifier", v) for v in (
        uid(), f"request_id={uid()}", f"trace_id: {rnd(32, HEX)}", rnd(40, HEX), rnd(64, HEX),
        f"commit {rnd(40, HEX)}", f"sha256:{rnd(64, HEX)}", f"etag: \"{rnd(32, HEX)}\"",
        f"idempotency_key: {uid()}", f"user_id: {rnd(18, DIGITS)}", f"order #{rnd(12, DIGITS)}",
        "sk-learn", "scikit-learn sk-learn tutorials", "xoxo gossip girl", "AKIA_ROLE_NAME",
        "gl-matrix", "glpat", "hf_transfer enabled", "ghp-pages branch", "secret_sauce_recipe",
        "max_tokens: 4096", "token_url: https://auth.example.com/oauth/token",
        "password_policy: min12-upper1-digit1", "secret_name: db-credentials-v2",
        "authorization_endpoint: https://auth.example.com/authorize",
        f"nextPageToken: {rnd(40, URLSAFE)}", f"progressToken: progress-{R.randint(1, 99)}",
        f"cursor: {base64.b64encode(b'user:U0' + rnd(8, UPPER).encode()).decode()}",
        f"continuation_token: {rnd(24)}", f"csrf_token={rnd(32)}", f"sessionId: {uid()}",
        f"api-version=2024-01-01&sdk-version={rnd(6, DIGITS)}", "Basic authentication",
        "basic settings page", "The Basic plan includes 3 seats",
        f"https://github.com/org/repo/commit/{rnd(40, HEX)}",
        "https://user@github.com/org/repo.git", "http://host:8080@proxy.local/",
        f"image: registry.example.org/app@sha256:{rnd(64, HEX)}",
        "pat-tern matching", "secret_" + "key_rotation_days", "dapi-docs",
        "secret_" + "KeyRotationScheduleForProductionDatabaseXyz",  # 43 letters: an identifier
        "hf_" + "ModelLoadingConfigurationOptionsXy",  # 34 letters
        "rnd_" + "abcdefghijklmnopqrstuvwxyzabcdef",
    )]
    return out


def build() -> dict[str, list[dict[str, str]]]:
    alone, ctx, look = [], [], []
    for kind, (gen, name) in SELF.items():
        for _ in range(4):
            value = gen()
            alone.append({"kind": kind.split("/")[0], "text": value})
            for text in R.sample(contexts(name, value), k=min(6, len(contexts(name, value)))):
                ctx.append({"kind": kind.split("/")[0], "text": text})
    for kind, (gen, name) in CONTEXT_ONLY.items():
        for _ in range(4):
            value = gen()
            forms = contexts(name, value)
            for text in R.sample(forms, k=min(8, len(forms))):
                ctx.append({"kind": kind.split("/")[0], "text": text})
    look = [{"kind": why, "text": text} for why, text in lookalikes()]
    return {"alone": alone, "context": ctx, "lookalike": look}


if __name__ == "__main__":
    path = Path(__file__).with_name("secret_corpus.json")
    path.write_text(json.dumps(build(), indent=1) + "\n")
    print(f"wrote {path}")
