"""OpenTelemetry spans: off unless OTEL_* asks; when on, one span per call, parented on
the caller's traceparent, and its id is the parent id the upstream receives."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from proxy.observe.tracing import Tracing, tracing_from_env

CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_off_without_otel_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    assert tracing_from_env() is None
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert tracing_from_env() is None
    monkeypatch.setenv("OTEL_SDK_DISABLED", "false")
    assert tracing_from_env() is not None


async def test_span_per_call_linked_to_caller_and_upstream(upstream, write_rules, start_proxy):
    _up, url = upstream
    px = await start_proxy(
        write_rules([{"name": "api", "match": {"path_prefix": "/api"}, "upstream": url}])
    )
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    px.state.tracing = Tracing(provider.get_tracer("test"))
    async with px.session.get(px.url + "/api/x", headers={"traceparent": CALLER}) as r:
        sent = (await r.json())["headers"]["traceparent"]
    async with px.session.get(px.url + "/nope") as r:
        assert r.status == 403
    first, second = exporter.get_finished_spans()
    ctx = first.get_span_context()
    assert f"{ctx.trace_id:032x}" == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert f"{first.parent.span_id:016x}" == "00f067aa0ba902b7"
    assert sent == f"00-4bf92f3577b34da6a3ce929d0e0e4736-{ctx.span_id:016x}-01"
    assert first.name == "http api" and first.attributes["callwarden.outcome"] == "ok"
    assert second.attributes["callwarden.error_code"] == "POLICY_DENY"
    assert second.status.status_code.name == "ERROR"
