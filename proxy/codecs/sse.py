"""Event boundaries in a text/event-stream, for filters that work event by event."""

from __future__ import annotations

import re

_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")


def split_events(buf: bytes) -> tuple[list[bytes], bytes]:
    """Complete events (each with its terminator) and the unfinished tail."""
    events: list[bytes] = []
    pos = 0
    for m in _END.finditer(buf):
        events.append(buf[pos : m.end()])
        pos = m.end()
    return events, buf[pos:]
