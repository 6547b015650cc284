"""A strict raw HTTP/1.1 upstream on h11 (a parser independent of aiohttp's llhttp): it
records every request exactly as it parsed it off the wire, per connection, and every
framing error, so a test sees what an upstream would make of the proxy's bytes."""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field

import h11


@dataclass
class Seen:
    """One request as the upstream parsed it."""

    seq: int
    conn: int
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k == name), None)


@dataclass
class H11Upstream:
    """Keep-alive upstream; answers every request with its sequence number and body."""

    requests: list[Seen] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)
    """(connection, h11 error) for bytes that were not a valid request."""
    incomplete: list[int] = field(default_factory=list)
    """Connections closed by the peer in the middle of a request."""
    connections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: asyncio.Server | None = None
    port: int = 0

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    def snapshot(self) -> tuple[list[Seen], list[tuple[int, str]], list[int]]:
        with self.lock:
            return list(self.requests), list(self.errors), list(self.incomplete)

    def clear(self) -> None:
        with self.lock:
            self.requests.clear()
            self.errors.clear()
            self.incomplete.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with self.lock:
            self.connections += 1
            conn_id = self.connections
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=1 << 20)
        current: h11.Request | None = None
        body = bytearray()
        try:
            while True:
                try:
                    event = conn.next_event()
                except h11.RemoteProtocolError as exc:
                    with self.lock:
                        self.errors.append((conn_id, str(exc)))
                    return
                if event is h11.NEED_DATA:
                    data = await reader.read(65536)
                    if not data and conn.their_state is not h11.IDLE:
                        with self.lock:
                            self.incomplete.append(conn_id)
                        return
                    conn.receive_data(data)
                    continue
                if isinstance(event, h11.Request):
                    current, body = event, bytearray()
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    assert current is not None
                    with self.lock:
                        seq = len(self.requests)
                        self.requests.append(
                            Seen(
                                seq,
                                conn_id,
                                current.method.decode(),
                                current.target.decode(),
                                [(k.decode(), v.decode("latin-1")) for k, v in current.headers],
                                bytes(body),
                            )
                        )
                    path, text = current.target.decode(), body[:4096].decode("latin-1")
                    answer = json.dumps({"seq": seq, "path": path, "body": text}).encode()
                    headers = [
                        ("Content-Type", "application/json"),
                        ("Content-Length", str(len(answer))),
                        ("X-Upstream-Seq", str(seq)),
                    ]
                    writer.write(
                        conn.send(h11.Response(status_code=200, headers=headers))
                        + conn.send(h11.Data(data=answer))
                        + conn.send(h11.EndOfMessage())
                    )
                    await writer.drain()
                    current = None
                    if conn.our_state is h11.MUST_CLOSE:
                        return
                    conn.start_next_cycle()
                elif isinstance(event, h11.ConnectionClosed):
                    return
        except ConnectionError:  # reset by the peer
            if conn.their_state is not h11.IDLE:
                with self.lock:
                    self.incomplete.append(conn_id)
        except h11.LocalProtocolError:
            return
        finally:
            writer.close()
