"""DNS-rebinding protection on the proxy port (proxy/hosts.py): a table of Host and Origin
values, and end to end through the proxy in front of the SDK's MCP server (which would
refuse `Host: evil.example.com` itself if the proxy did not send it its own Host)."""

from __future__ import annotations

import json
import logging

import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from proxy.config.schema import Rules
from proxy.hosts import HOST_REFUSED, ORIGIN_REFUSED, HostPolicy
from tests.mcp.sdk_server import start_server

RULES = Rules.model_validate(
    {
        "listen": {
            "allowed_hosts": ["callwarden.tools.svc", "*.gw.internal"],
            "allowed_origins": ["https://Console.Example.com:8443/"],
        },
        "routes": [
            {"name": "api", "match": {"hosts": ["api.example.com"]}, "upstream": "http://u"},
            {"name": "mcp", "kind": "mcp", "match": {"path_prefix": "/mcp"}, "upstream": "http://u"},
        ],
    }
)


@pytest.mark.parametrize(
    ("host", "origins", "target", "refusal"),
    [
        ("127.0.0.1:15001", (), "/mcp", None),
        ("127.0.0.2", (), "/mcp", None),  # all of 127/8 is loopback
        ("localhost:15001", (), "/mcp", None),
        ("LOCALHOST.", (), "/mcp", None),
        ("agent.localhost", (), "/mcp", None),  # RFC 6761
        ("[::1]:15001", (), "/mcp", None),
        ("api.example.com", (), "/x", None),  # a route's hosts name the proxy
        ("callwarden.tools.svc:15001", (), "/mcp", None),
        ("a.gw.internal", (), "/mcp", None),
        (None, (), "/mcp", None),  # no Host: not a browser
        ("evil.example.com", (), "/mcp", HOST_REFUSED),
        ("evil.example.com:15001", (), "/mcp", HOST_REFUSED),
        ("localhost.evil.example.com", (), "/mcp", HOST_REFUSED),
        ("gw.internal", (), "/mcp", HOST_REFUSED),  # the wildcard is for subdomains
        ("127.0.0.1.nip.io", (), "/mcp", HOST_REFUSED),
        ("evil.example.com@127.0.0.1", (), "/mcp", HOST_REFUSED),
        ("", (), "/mcp", HOST_REFUSED),
        ("10.0.0.7", (), "/mcp", HOST_REFUSED),  # another address: not ours (see listen)
        # absolute-form targets name their upstream; Host is not the proxy's
        ("api.example.com", (), "http://api.example.com/x", None),
        # Origin: refused unless listed, whatever the Host
        ("localhost", ("http://evil.example.com",), "/mcp", ORIGIN_REFUSED),
        ("localhost", ("http://localhost:15001",), "/mcp", ORIGIN_REFUSED),
        ("localhost", ("null",), "/mcp", ORIGIN_REFUSED),
        ("localhost", ("https://console.example.com:8443",), "/mcp", None),
        ("localhost", ("HTTPS://console.example.com:8443/",), "/mcp", None),
        ("localhost", ("https://console.example.com",), "/mcp", ORIGIN_REFUSED),
        (
            "localhost",
            ("https://console.example.com:8443", "http://evil.example.com"),
            "/mcp",
            ORIGIN_REFUSED,
        ),
        ("api.example.com", ("http://evil",), "http://api.example.com/x", ORIGIN_REFUSED),
    ],
)
def test_host_and_origin_table(host, origins, target, refusal) -> None:
    policy = HostPolicy.from_rules(RULES)
    assert policy.check(host, origins, target) is refusal
    assert policy.check(host, origins, target) is refusal  # remembered: the same answer


def test_the_listen_address_names_the_proxy() -> None:
    assert HostPolicy.is_listen_address("10.0.0.7:15001", "10.0.0.7")
    assert HostPolicy.is_listen_address("[fd00::7]:15001", "fd00:0::7")
    assert not HostPolicy.is_listen_address("evil.example.com", "10.0.0.7")
    assert not HostPolicy.is_listen_address("10.0.0.8", "10.0.0.7")


@pytest.mark.parametrize(
    "listen",
    [
        {"allowed_hosts": ["a b"]},
        {"allowed_hosts": ["host:80"]},
        {"allowed_origins": ["console.example.com"]},
        {"allowed_origins": ["https://console.example.com/app"]},
        {"allowed_origins": ["null"]},
        {"allowed_origins": ["*"]},
    ],
)
def test_bad_listen_settings_are_refused(listen) -> None:
    with pytest.raises(ValueError):
        Rules.model_validate({"listen": listen})


@pytest.fixture(scope="module")
def sdk_server():
    server = start_server(stateless=True, json_response=True)
    yield server
    server.stop()


LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


async def test_rebinding_refused_end_to_end(sdk_server, write_rules, start_proxy, caplog) -> None:
    route = {
        "name": "tools",
        "kind": "mcp",
        "match": {"path_prefix": "/mcp"},
        "upstream": sdk_server.url,
        "mcp": {"default": "allow"},
    }
    caplog.set_level(logging.INFO, logger="callwarden.access")  # before: decided at start
    px = await start_proxy(
        write_rules([route], listen={"allowed_origins": ["https://console.example.com"]})
    )
    cases = [
        ({"Host": "evil.example.com"}, 421, "HOST_NOT_ALLOWED"),
        ({"Origin": "http://evil.example.com"}, 403, "ORIGIN_NOT_ALLOWED"),
        ({"Host": "evil.example.com", "Origin": "http://evil.example.com"}, 403, None),
    ]
    for extra, status, code in cases:
        async with px.session.post(
            px.url + "/mcp", json=LIST, headers={**HEADERS, **extra}
        ) as r:
            assert r.status == status, extra
            if code:
                assert r.headers["X-CallWarden-Error-Code"] == code
                assert (await r.json())["error"]["code"] == code
    lines = [json.loads(rec.getMessage()) for rec in caplog.records if rec.name.endswith("access")]
    assert [line["error_code"] for line in lines] == [
        "HOST_NOT_ALLOWED",
        "ORIGIN_NOT_ALLOWED",
        "ORIGIN_NOT_ALLOWED",
    ]
    assert all(line["verdict"] == "denied" for line in lines)
    # the proxy's own names and a listed origin are served, by the official SDK client too
    for extra in ({}, {"Host": f"localhost:{px.url.rsplit(':', 1)[1]}"}):
        async with px.session.post(
            px.url + "/mcp", json=LIST, headers={**HEADERS, **extra}
        ) as r:
            assert r.status == 200 and "tools" in (await r.json())["result"]
    # a listed origin passes the proxy (forwarded: the server applies its own rule too)
    async with px.session.post(
        px.url + "/mcp", json=LIST, headers={**HEADERS, "Origin": "https://console.example.com"}
    ) as r:
        assert "X-CallWarden-Error-Code" not in r.headers
    async with Client(streamable_http_client(px.url + "/mcp")) as client:
        assert "add" in [t.name for t in (await client.list_tools()).tools]
