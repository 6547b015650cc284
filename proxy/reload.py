"""Hot reload: watch the rules path, reload on change or SIGHUP, swap only a rule set that
loaded and compiled completely. A bad file keeps the old rules live and says why.

Polling (stat every second) rather than inotify: Kubernetes ConfigMap volumes change by
re-pointing a `..data` symlink to a new timestamped folder, which inotify on the files
themselves never sees; a stat of the files *and* of the `..data` link catches both that
and plain edits, on every platform, for a few syscalls a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

from proxy.config.load import RulesError, load_rules

if TYPE_CHECKING:
    from proxy.app import ProxyState

log = logging.getLogger("callwarden")
Fingerprint = tuple[tuple[str, str, int, int, int], ...]


def _entry(path: Path) -> tuple[str, str, int, int, int]:
    """(name, link target, mtime_ns, size, inode) of what `path` resolves to now."""
    try:
        link = os.readlink(path) if path.is_symlink() else ""
    except OSError:
        link = ""
    try:
        st = path.stat()
        return (str(path), link, st.st_mtime_ns, st.st_size, st.st_ino)
    except OSError:
        return (str(path), link, -1, -1, -1)


def fingerprint(path: str | Path) -> Fingerprint:
    """What changes when any rules file, or the ConfigMap's `..data` link, changes."""
    p = Path(path)
    folder = p if p.is_dir() else p.parent
    entries = [_entry(folder / "..data"), _entry(p)]
    if p.is_dir():
        with contextlib.suppress(OSError):
            entries += [_entry(c) for c in sorted(p.iterdir()) if c.suffix in (".yaml", ".yml")]
    return tuple(entries)


def poll_interval() -> float:
    """Seconds between checks of the rules path: CALLWARDEN_RULES_POLL_S, default 1; 0 turns
    polling off (reload on SIGHUP only)."""
    try:
        return max(0.0, float(os.environ.get("CALLWARDEN_RULES_POLL_S", "1")))
    except ValueError:
        return 1.0


class RulesWatcher:
    """Owns the reload loop of one process; `reload()` is also what SIGHUP calls."""

    def __init__(self, state: ProxyState, path: str, interval_s: float | None = None) -> None:
        self.state = state
        self.path = path
        self.interval_s = poll_interval() if interval_s is None else interval_s
        self._seen = fingerprint(path)
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[bool]] = set()
        self._poller: asyncio.Task[None] | None = None
        self._signal = False

    def start(self, sighup: bool = True) -> None:
        if self.interval_s > 0:
            self._poller = asyncio.create_task(self._poll())
        if sighup:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._on_sighup)
                self._signal = True

    def _on_sighup(self) -> None:
        task = asyncio.create_task(self.reload("SIGHUP"))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        if self._signal:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.check()
            except Exception as exc:  # the watcher must outlive any one bad check
                log.error("rules watcher: %s", exc.__class__.__name__)

    async def check(self) -> bool:
        """Reload when the fingerprint changed and has settled (no half-written file)."""
        now = await asyncio.to_thread(fingerprint, self.path)
        if now == self._seen:
            return False
        await asyncio.sleep(min(0.2, self.interval_s / 4))
        if await asyncio.to_thread(fingerprint, self.path) != now:
            return False  # still being written: look again next time
        self._seen = now  # a bad file is reported once, not every second
        return await self.reload("file change")

    async def reload(self, why: str) -> bool:
        """Load, validate and compile fully, then swap; on any failure keep the old rules."""
        async with self._lock:
            state = self.state
            metrics = state.metrics
            old = state.compiled.loaded.digest
            try:
                loaded = await asyncio.to_thread(load_rules, self.path)
                if loaded.digest == old:
                    log.info("rules reload (%s): unchanged, digest %s", why, old[:12])
                    state.last_error = None  # the file is back to the rules in force
                    return True
                state.swap(loaded)  # compiles first; raises before swapping on a bad route
            except RulesError as exc:
                return self._failed(why, "; ".join(exc.problems), old)
            except Exception as exc:
                # SECURITY: messages name files, routes and fields; never a secret value.
                return self._failed(why, f"{self.path}: {exc}", old)
            state.last_error = None
            state.last_reload = time.time()
            metrics.rules_reloads.labels("ok").inc()
            log.info(
                "rules reloaded (%s): digest %s -> %s, %d routes",
                why, old[:12], loaded.digest[:12], len(state.compiled.routes),
            )
            return True

    def _failed(self, why: str, problem: str, digest: str) -> bool:
        self.state.last_error = problem
        self.state.metrics.rules_reloads.labels("error").inc()
        log.error("rules reload failed (%s), keeping digest %s: %s", why, digest[:12], problem)
        return False
