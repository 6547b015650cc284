"""Whether a tools/call answer is a failure: a JSON-RPC error, or a tool result with
`isError: true`. The proxy passes either on unchanged, yet the SLO alerts and the per-tool
error ratio must count them (`upstream_error`), or a failing tool looks healthy.

A watcher, not a filter: it changes no byte, never refuses, and reads only answers that
spell a failure at all (one regex scan first, the JSON parse only then). It rides along
only where the route already filters answers (MCP routes mask by default), so it never
moves an answer off the pass-through path. A large answer streamed in pieces is not read
(tool answers are small and arrive whole)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from proxy.mcp.sse import SseEvent, SseParser
from proxy.model.jsonio import loads
from proxy.model.record import CallRecord

_FAILS = re.compile(rb'"isError"\s*:\s*true|"error"\s*:\s*\{')
"""What a failure spells (one C scan): most answers say `"isError":false`, and a parse
per answer would cost more than the rest of the call's policy."""


def failed(doc: Any) -> bool:
    """A JSON-RPC response (or batch) that reports a failure."""
    if isinstance(doc, list):
        return any(failed(d) for d in doc)
    if not isinstance(doc, dict):
        return False
    if "error" in doc and "result" not in doc:
        return True
    result = doc.get("result")
    return isinstance(result, dict) and result.get("isError") is True


def _may_fail(data: bytes) -> bool:
    return _FAILS.search(data) is not None


@dataclass(slots=True)
class ToolOutcome:
    record: CallRecord
    name: str = "tool_outcome"
    watch_only: bool = True
    """Never the reason an answer is refused, nor named among the filters that were."""

    def _see(self, text: bytes | str) -> None:
        try:
            doc = loads(text)
        except ValueError:
            return  # not ours to judge: the filters that read the answer refuse it
        if failed(doc):
            self.record.outcome = "upstream_error"

    def whole(self, content_type: str) -> bool:
        return False  # watching needs no buffering

    def body(self, data: bytes, content_type: str) -> bytes:
        if _may_fail(data) and "event-stream" not in content_type:
            self._see(data)
        return data

    def event(self, data: bytes, parsed: SseEvent | None = None) -> bytes | None:
        if _may_fail(data):
            if parsed is None or parsed.raw is not data:
                events = SseParser(None).feed(data)
                parsed = events[0] if len(events) == 1 else None
            if parsed is not None and parsed.data:
                self._see(parsed.data)
        return data

    def passes(self, data: bytes) -> bool:
        if _may_fail(data):  # a stream complete on arrival: read its events here
            parser = SseParser(None)
            events = parser.feed(data)
            events += parser.finish()[0]
            for ev in events:
                if ev.data:
                    self._see(ev.data)
        return True  # changes nothing
