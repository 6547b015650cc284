from __future__ import annotations


async def test_pass_through(upstream, write_rules, start_proxy):
    _up, url = upstream
    px = await start_proxy(
        write_rules([{"name": "api", "match": {"path_prefix": "/api"}, "upstream": url}])
    )
    async with px.session.get(px.url + "/api/hello?x=1", headers={"X-Caller-Role": "a"}) as r:
        assert r.status == 200
        body = await r.json()
    assert body["path"] == "/hello?x=1"
    assert "X-Caller-Role" not in body["headers"]
    async with px.session.get(px.url + "/nope") as r:
        assert r.status == 403
        assert r.headers["X-CallWarden-Error-Code"] == "POLICY_DENY"
