"""Incremental `text/event-stream` framing, so a stream can be filtered event by event
without buffering it whole (WHATWG HTML "server-sent events" parsing rules).

Every block up to a blank line comes out as an `SseEvent` whose `raw` is the exact bytes
received: forward `raw` untouched and the client sees the upstream's bytes; re-serialise
only the events a filter changed (`SseEvent.with_data`). Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_BOM = b"\xef\xbb\xbf"
DEFAULT_MAX_EVENT_BYTES = 4 * 1024 * 1024


class SseEventTooLarge(ValueError):
    """One event grew past the parser's cap (a stream that never ends an event)."""


@dataclass(frozen=True, slots=True)
class SseEvent:
    raw: bytes
    """Exact received bytes, blank-line terminator included."""
    data: str | None = None
    """Data lines joined with '\\n'; None when the block has no data field."""
    event: str | None = None
    id: str | None = None
    retry: int | None = None
    eol: bytes = b"\n"
    """The line ending this event used (kept when re-serialising)."""

    def with_data(self, data: str) -> SseEvent:
        """This event with new data, serialised with the same fields and line ending."""
        raw = serialize(data, event=self.event, id=self.id, retry=self.retry, eol=self.eol)
        return SseEvent(raw, data, self.event, self.id, self.retry, self.eol)


def serialize(
    data: str | None,
    *,
    event: str | None = None,
    id: str | None = None,
    retry: int | None = None,
    eol: bytes = b"\n",
) -> bytes:
    """One event as bytes (fields in the order event, id, retry, data)."""
    nl = eol.decode("ascii")
    out: list[str] = []
    if event is not None:
        out.append(f"event: {event}{nl}")
    if id is not None:
        out.append(f"id: {id}{nl}")
    if retry is not None:
        out.append(f"retry: {retry}{nl}")
    if data is not None:
        lines = re.split(r"\r\n|\r|\n", data) if "\r" in data else data.split("\n")
        out.extend(f"data: {line}{nl}" for line in lines)
    out.append(nl)
    return "".join(out).encode("utf-8")


class SseParser:
    """feed(bytes) -> complete events; chunk boundaries may fall anywhere, even inside a
    UTF-8 sequence or between the \\r and \\n of one line ending."""

    __slots__ = ("_buf", "_data", "_eol", "_event", "_first", "_id", "_max", "_pos", "_retry")

    def __init__(self, max_event_bytes: int | None = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._max = max_event_bytes
        self._buf = bytearray()
        self._pos = 0  # next unparsed byte in _buf; _buf[:_pos] belongs to the current event
        self._first = True
        self._reset()

    def _reset(self) -> None:
        self._data: list[str] | None = None
        self._event: str | None = None
        self._id: str | None = None
        self._retry: int | None = None
        self._eol: bytes | None = None

    def feed(self, chunk: bytes) -> list[SseEvent]:
        buf = self._buf
        buf += chunk
        if self._first:
            if len(buf) < 3 and _BOM.startswith(buf):
                return []  # might still become a byte-order mark
            self._first = False
            if buf.startswith(_BOM):
                self._pos = 3  # kept in raw, not parsed
        events = self._parse(final=False)
        if self._max is not None and len(buf) > self._max:
            raise SseEventTooLarge(f"SSE event larger than {self._max} bytes")
        return events

    def finish(self) -> tuple[list[SseEvent], bytes]:
        """End of stream: the last events (a final lone '\r' now counts as a line end)
        and the bytes of an unfinished event, to forward or drop."""
        self._first = False
        events = self._parse(final=True)
        rest = bytes(self._buf)
        self._buf.clear()
        self._pos = 0
        self._reset()
        return events, rest

    def _parse(self, *, final: bool) -> list[SseEvent]:
        buf = self._buf
        events: list[SseEvent] = []
        start = 0  # start of the current event in buf
        pos = self._pos
        size = len(buf)
        while True:
            # The next line end (\r\n, \r or \n), found with bytes.find (memchr).
            lf = buf.find(b"\n", pos)
            cr = buf.find(b"\r", pos, size if lf < 0 else lf)
            if cr >= 0:
                line_end, end = cr, cr + 2 if cr + 1 < size and buf[cr + 1] == 10 else cr + 1
                if not final and end == size and end == cr + 1:
                    break  # '\r' at the end may be half of '\r\n'
            elif lf >= 0:
                line_end, end = lf, lf + 1
            else:
                break  # no full line yet
            if self._eol is None:
                self._eol = bytes(buf[line_end:end])
            if line_end == pos:  # blank line: the event is complete
                events.append(self._finish(bytes(buf[start:end])))
                start = end
            else:
                self._field(bytes(buf[pos:line_end]))
            pos = end
        if start:
            del buf[:start]
            pos -= start
        self._pos = pos
        return events

    def _field(self, line: bytes) -> None:
        text = line.decode("utf-8", "replace")
        if text.startswith(":"):
            return  # comment
        name, colon, value = text.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            if self._data is None:
                self._data = []
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self._retry = int(value)

    def _finish(self, raw: bytes) -> SseEvent:
        data = None if self._data is None else "\n".join(self._data)
        ev = SseEvent(raw, data, self._event, self._id, self._retry, self._eol or b"\n")
        self._reset()
        return ev
