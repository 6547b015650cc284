"""`${file:/path}` secrets, re-read when the file changes.

Kubernetes rotates a mounted Secret or ConfigMap by swapping a `..data` symlink, so the
path is stat'ed *through* links and compared by (device, inode, mtime, size); any change
re-reads it. Checks happen at most every `poll_s` per file, so the hot path is one dict
lookup. Reads are synchronous: secret files are tiny and on tmpfs.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from proxy.model.errors import ErrorCode, ProxyError
from proxy.secrets.secret import Secret

log = logging.getLogger("callwarden.secrets")
MAX_FILE_BYTES = 65536

_Key = tuple[int, int, int, int]


@dataclass(slots=True)
class _Entry:
    key: _Key
    value: Secret
    checked: float


def _stat_key(st: os.stat_result) -> _Key:
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


class FileSecrets:
    __slots__ = ("_cache", "_clock", "poll_s", "reads")

    def __init__(self, poll_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.poll_s = poll_s
        self._clock = clock
        self._cache: dict[str, _Entry] = {}
        self.reads = 0
        """Files actually read (tests and metrics: rotation re-reads, polling does not)."""

    def get(self, path: str) -> Secret:
        now = self._clock()
        entry = self._cache.get(path)
        if entry is not None and now - entry.checked < self.poll_s:
            return entry.value
        try:
            key = _stat_key(os.stat(path))  # follows symlinks: sees a swapped ..data
            if entry is not None and entry.key == key:
                entry.checked = now
                return entry.value
            value, key = self._read(path)
        except (OSError, UnicodeDecodeError, ValueError):
            raise ProxyError(
                ErrorCode.INTERNAL_ERROR, f"secret ${{file:{path}}} cannot be read"
            ) from None
        if entry is not None:
            log.info("secret file ${file:%s} changed; re-read", path)
        self._cache[path] = _Entry(key, value, now)
        return value

    def _read(self, path: str) -> tuple[Secret, _Key]:
        with open(path, "rb") as f:
            key = _stat_key(os.fstat(f.fileno()))  # the file we read, not a later swap
            data = f.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise ValueError("secret file too large")
        self.reads += 1
        # A trailing newline is an artefact of `echo` / editors, never part of a token.
        return Secret(data.decode("utf-8").rstrip("\r\n")), key
