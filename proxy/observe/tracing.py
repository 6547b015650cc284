"""Optional OpenTelemetry spans, one per call. Off unless the `otel` extra is installed and
the standard OTEL_* variables ask for traces; when off, the pipeline pays one `is None`.

The span is the proxy's hop: its parent is the caller's traceparent, and its span id is
the parent id sent upstream, so the backend's spans hang under CallWarden's.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from proxy.model.record import CallRecord

log = logging.getLogger("callwarden")


class Tracing:
    def __init__(self, tracer: Any) -> None:
        from opentelemetry import trace
        from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

        self._tracer = tracer
        self._trace = trace
        self._ctx = (NonRecordingSpan, SpanContext, TraceFlags)
        self._server = SpanKind.SERVER

    def start(self, trace_id: str, parent_span: str | None, flags: str) -> Any:
        """A started span under the caller's context (a new trace when there is none)."""
        NonRecordingSpan, SpanContext, TraceFlags = self._ctx
        context = None
        if parent_span and len(trace_id) == 32:
            parent = SpanContext(
                int(trace_id, 16), int(parent_span, 16), True, TraceFlags(int(flags, 16))
            )
            context = self._trace.set_span_in_context(NonRecordingSpan(parent))
        return self._tracer.start_span("callwarden", context=context, kind=self._server)

    @staticmethod
    def span_id(span: Any) -> str:
        return f"{span.get_span_context().span_id:016x}"

    @staticmethod
    def finish(span: Any, rec: CallRecord) -> None:
        span.update_name(f"{rec.kind or 'none'} {rec.route or 'unmatched'}")
        span.set_attributes(
            {
                "callwarden.route": rec.route,
                "callwarden.kind": rec.kind,
                "callwarden.outcome": rec.outcome,
                "callwarden.error_code": rec.error_code,
                "callwarden.guard": rec.guard,
                "callwarden.tool": rec.tool or "",
                "callwarden.retries": rec.retries,
                "callwarden.upstream_ms": round(rec.upstream_s * 1000, 3),
                "http.request.method": rec.method,
                "http.response.status_code": rec.status,
            }
        )
        if rec.outcome != "ok":
            from opentelemetry.trace import Status, StatusCode

            span.set_status(Status(StatusCode.ERROR, rec.error_code))
        span.end(end_time=time.time_ns())


def tracing_from_env() -> Tracing | None:
    """Tracing when OTEL_TRACES_EXPORTER (or an OTLP endpoint) is set and the SDK is
    installed; None otherwise (and when OTEL_SDK_DISABLED is true)."""
    env = os.environ
    exporter_name = env.get("OTEL_TRACES_EXPORTER", "")
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true" or exporter_name == "none":
        return None
    if not exporter_name and not env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return None
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError:
        log.warning("OTEL_* is set but the otel extra is not installed: no spans")
        return None
    if exporter_name == "console":
        exporter: Any = ConsoleSpanExporter()
    else:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            log.warning("OTLP exporter not installed (pip install 'callwarden[otel]'): no spans")
            return None
        exporter = OTLPSpanExporter()  # reads OTEL_EXPORTER_OTLP_* itself
    resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME", "callwarden")})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return Tracing(provider.get_tracer("callwarden"))
