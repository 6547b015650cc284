"""Protocol fields are not secrets by name (issue 29): MCP progress tokens and cursors,
JSON-RPC and session ids, HTTP pagination and continuation tokens, CSRF fields pass the
key-name rule, and still meet every value detector."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from proxy.credentials.detect import Detector, Finding
from proxy.credentials.literals import is_secret_key
from tests.credentials.fakes import github

D = Detector()
CORPUS = json.loads((Path(__file__).parent / "data" / "tool_arguments.json").read_text())


def test_realistic_tool_arguments_are_not_refused() -> None:
    """400 tools/call bodies (tests/credentials/data/make_tool_arguments.py); the old
    key rule refused 189 of them (47%), 171 for `_meta.progressToken` alone."""
    refused = [doc for doc in CORPUS if D.scan_json(doc)]
    assert len(CORPUS) >= 400
    assert refused == []


@pytest.mark.parametrize("token", ["progress-1", "abc123def", "upload-progress-42",
                                   "Zq8rT5vLm3xNp7wK", "tok_9f8e7d6c5b4a"])
def test_string_progress_tokens_pass(token: str) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "x", "arguments": {}, "_meta": {"progressToken": token}}}
    assert D.scan_json(body) == []


@pytest.mark.parametrize("key", [
    "progressToken", "cursor", "nextCursor", "pageToken", "next_page_token", "nextPageToken",
    "continuation", "continuationToken", "ContinuationToken", "NextToken", "resumeToken",
    "syncToken", "$skiptoken", "$deltatoken", "csrf_token", "csrfmiddlewaretoken",
    "authenticity_token", "__RequestVerificationToken", "X-CSRF-Token", "X-XSRF-TOKEN",
    "_csrf", "state", "nonce", "requestId", "sessionId", "Mcp-Session-Id", "Last-Event-ID",
    "idempotency_key", "starting_token",
])
def test_protocol_field_names_are_not_secret_keys(key: str) -> None:
    assert not is_secret_key(key)
    assert D.scan_json({"params": {key: "Zq8rT5vLm3xNp7wK2c"}}) == []


@pytest.mark.parametrize("key", ["access_token", "sessionToken", "refresh_token", "api_key",
                                 "client_secret", "upload_token", "authToken", "password"])
def test_credential_names_stay_secret_keys(key: str) -> None:
    assert is_secret_key(key)


def test_protocol_fields_still_meet_the_value_detectors() -> None:
    token = github()
    body = {"params": {"_meta": {"progressToken": token}, "cursor": "AKIA" + "QX7RT2LMZ4PNV6WY"}}
    assert set(D.scan_json(body)) == {Finding("json /params/_meta/progressToken", "github_token"),
                                      Finding("json /params/cursor", "aws_access_key_id")}
