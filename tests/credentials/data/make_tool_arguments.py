"""Builds tool_arguments.json: realistic tool-call arguments with no credential in them
(what orchestrators send to search, files, git, SQL, tickets, chat and cloud tools),
heavy on the protocol fields and opaque identifiers a name-based rule mistakes for
secrets: progress tokens, cursors, page tokens, continuation and CSRF tokens, request,
session and idempotency ids, digests, ETags. Seeded; rerun to regenerate:

    python tests/credentials/data/make_tool_arguments.py
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import string
import uuid
from pathlib import Path

R = random.Random(20261207)
ALNUM = string.ascii_letters + string.digits


def rnd(n: int, alphabet: str = ALNUM) -> str:
    return "".join(R.choice(alphabet) for _ in range(n))


def uid() -> str:
    return str(uuid.UUID(int=R.getrandbits(128), version=4))


def b64(raw: bytes, url: bool = False) -> str:
    out = base64.urlsafe_b64encode(raw) if url else base64.b64encode(raw)
    return out.decode()


def sha(n: int = 40) -> str:
    return hashlib.sha256(rnd(16).encode()).hexdigest()[:n]


def progress_token() -> str | int:
    return R.choice([
        f"progress-{R.randint(1, 999)}", f"upload-progress-{R.randint(1, 99)}", "abc123def",
        rnd(8, string.ascii_lowercase + string.digits), uid(), f"tok_{rnd(12)}",
        f"{R.choice(['index', 'build', 'sync'])}-{rnd(6, string.digits)}", R.randint(1, 10**6),
    ])


def cursor() -> str:
    return R.choice([
        b64(f"user:U{rnd(9, string.ascii_uppercase + string.digits)}".encode()),
        b64(json.dumps({"offset": R.randint(0, 5000), "ts": R.randint(1.6e9, 1.8e9)}).encode()),
        "Y3Vyc29yOnYyOpK5" + rnd(24, ALNUM + "+/") + "=",
        b64(bytes(R.randrange(256) for _ in range(R.randint(12, 48))), url=True),
        uid(), f"c_{rnd(20)}", str(R.randint(10**5, 10**12)),
    ])


def meta() -> dict[str, object]:
    m: dict[str, object] = {"progressToken": progress_token()}
    if R.random() < 0.3:
        m["io.modelcontextprotocol/related-task"] = {"taskId": uid()}
    return m


GENERATORS = [
    lambda: ("web_search", {"query": R.choice(["kubernetes pod eviction policy",
             "how to rotate postgres passwords safely", "token bucket rate limiting",
             "best practices for api key storage", "oauth2 pkce flow explained"]),
             "num_results": R.randint(3, 20), "pageToken": cursor()}),
    lambda: ("read_file", {"path": R.choice(["/srv/app/config/settings.yaml",
             "src/auth/token_service.py", "docs/secrets-management.md",
             "/var/log/nginx/access.log", "tests/test_password_reset.py"]),
             "offset": R.randint(0, 4000), "limit": R.choice([100, 500, 2000])}),
    lambda: ("list_directory", {"path": "/srv/app", "cursor": cursor(),
             "recursive": R.random() < 0.5}),
    lambda: ("git_log", {"repo": "org/service",
             "ref": R.choice(["main", f"feature/{rnd(6).lower()}"]),
             "since": sha(40), "after": cursor(), "per_page": 50}),
    lambda: ("git_show", {"commit": sha(40), "path": "src/token_store.go"}),
    lambda: ("run_sql", {"query": R.choice([
             "SELECT id, email FROM users WHERE created_at > now() - interval '1 day'",
             "SELECT count(*) FROM sessions WHERE expires_at < now()",
             "UPDATE api_keys SET revoked = true WHERE id = $1",
             "SELECT token_count, model FROM completions ORDER BY id DESC LIMIT 20"]),
             "params": [uid()], "next_page_token": cursor()}),
    lambda: ("create_issue", {"title": R.choice(["Login fails after password change",
             "Refresh token not rotated on logout", "Add CSRF protection to settings form"]),
             "body": "Steps to reproduce:\n1. Log in\n2. Change the password\n3. Reload",
             "labels": ["bug", "auth"], "idempotency_key": uid()}),
    lambda: ("slack_post_message", {
             "channel": f"C{rnd(10, string.ascii_uppercase + string.digits)}",
             "text": "Deploy finished: build " + rnd(7, string.hexdigits.lower()),
             "thread_ts": f"{R.randint(1.6e9, 1.8e9)}.{R.randint(0, 999999):06d}",
             "client_msg_id": uid()}),
    lambda: ("slack_list_messages", {"channel": f"C{rnd(10, string.ascii_uppercase)}",
             "cursor": cursor(), "limit": 200}),
    lambda: ("gdrive_list", {"q": "mimeType='application/pdf'", "pageToken": cursor(),
             "nextPageToken": cursor(), "fields": "files(id,name)"}),
    lambda: ("s3_list_objects", {"Bucket": "reports-prod", "Prefix": "2026/12/",
             "ContinuationToken": b64(bytes(R.randrange(256) for _ in range(60))),
             "StartAfter": "2026/12/01/report.csv"}),
    lambda: ("dynamodb_scan", {"TableName": "orders", "ExclusiveStartKey": {"pk": {"S": uid()}},
             "NextToken": b64(bytes(R.randrange(256) for _ in range(90)))}),
    lambda: ("stripe_list_customers", {"limit": 10, "starting_after": f"cus_{rnd(14)}",
             "ending_before": f"cus_{rnd(14)}"}),
    lambda: ("notion_query", {"database_id": uid(), "start_cursor": uid(), "page_size": 50}),
    lambda: ("graph_list_events", {"$top": 25, "$skiptoken": rnd(40, ALNUM + "-_"),
             "$deltatoken": rnd(44, ALNUM + "-_")}),
    lambda: ("submit_form", {"url": "https://intranet.example.org/settings",
             "fields": {"display_name": "Ops Bot", "csrf_token": rnd(32),
                        "authenticity_token": b64(bytes(R.randrange(256) for _ in range(32))),
                        "csrfmiddlewaretoken": rnd(64),
                        "__RequestVerificationToken": rnd(90, ALNUM + "-_")}}),
    lambda: ("http_request", {"method": "GET",
             "url": f"https://api.example.com/v2/items?page={R.randint(1, 9)}",
             "headers": {"Accept": "application/json", "X-Request-Id": uid(),
                         "If-None-Match": '"' + sha(32) + '"'}}),
    lambda: ("docker_pull", {"image": "registry.example.org/app", "digest": "sha256:" + sha(64)}),
    lambda: ("k8s_get", {"kind": "Secret", "name": "db-credentials", "namespace": "prod",
             "resourceVersion": str(R.randint(10**6, 10**8)), "continue": cursor()}),
    lambda: ("vault_read_metadata", {"path": "secret/data/crm", "version": R.randint(1, 9),
             "secret_name": "crm-api-token", "token_ttl": "1h"}),
    lambda: ("llm_complete", {"model": "gpt-4o-mini", "max_tokens": 1024, "prompt_tokens": 512,
             "stop_token": "<|end|>", "prompt": "Summarise the incident report."}),
    lambda: ("jira_search", {"jql": "project = SEC AND status = Open", "startAt": 0,
             "nextPageToken": cursor(), "fields": ["summary", "status"]}),
    lambda: ("calendar_sync", {"calendarId": "primary", "syncToken": rnd(28, ALNUM + "_-"),
             "pageToken": cursor()}),
    lambda: ("mcp_resume", {"sessionId": uid(), "lastEventId": f"{R.randint(1, 999)}-{rnd(6)}",
             "resumeToken": rnd(24), "requestId": R.randint(1, 10**6)}),
    lambda: ("upload_file", {"filename": "report.pdf", "content_base64": b64(bytes(
             R.randrange(256) for _ in range(240))), "checksum": sha(64),
             "upload_id": rnd(32), "etag": sha(32)}),
    lambda: ("oauth_callback_debug", {"state": rnd(32, ALNUM + "-_"), "nonce": rnd(24),
             "redirect_uri": "https://app.example.org/callback",
             "token_url": "https://auth.example.org/oauth/token"}),
    lambda: ("password_policy_check", {"password_policy": "min12-upper1-digit1",
             "password_min_length": 12, "password_hash_algorithm": "argon2id"}),
    lambda: ("search_logs", {"query": 'level:error AND message:"invalid token"',
             "continuation": rnd(40, ALNUM + "+/="), "from": "now-1h"}),
    lambda: ("translate", {"text": "Your password has been reset. Use the link to sign in.",
             "target": R.choice(["de", "fr", "ja"])}),
]


def build(n: int = 400) -> list[dict[str, object]]:
    out = []
    for i in range(n):
        name, args = GENERATORS[i % len(GENERATORS)]()
        params: dict[str, object] = {"name": name, "arguments": args}
        if R.random() < 0.6:
            params["_meta"] = meta()
        out.append({"jsonrpc": "2.0", "id": R.choice([i, f"req-{i}", uid()]),
                    "method": "tools/call", "params": params})
    return out


if __name__ == "__main__":
    path = Path(__file__).with_name("tool_arguments.json")
    path.write_text(json.dumps(build(), indent=1) + "\n")
    print(f"wrote {path}")
