"""Durable JSON files in the state directory.

A write goes to a temporary file, is fsynced, renamed over the old file, and
the directory is fsynced: after a power cut a file is either the old or the
new version, never a mix; the temporary file a killed process leaves is
removed at the next start. A file that cannot be read at start is moved aside
with its time, never deleted, and its defaults are used.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from plugd.errors import PlugdError, StoreError

log = logging.getLogger(__name__)
T = TypeVar("T")


class StateDir:
    """The state directory: durable files, read strictly, written atomically."""
    def __init__(self, path: Path) -> None:
        self.path = path

    def prepare(self) -> None:
        """Make the directory, and remove what a killed writer left."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(f"cannot create the state directory {self.path}: {err}") from None
        self._remove_leftovers()

    def _remove_leftovers(self) -> None:
        """A process killed in the middle of a write leaves its temporary file: remove those."""
        mine = f".{os.getpid()}.tmp"
        for path in self.path.glob(".*.tmp"):
            if not path.name.endswith(mine):
                try:
                    path.unlink()
                except OSError as err:
                    log.warning("cannot remove the leftover %s: %s", path, err)

    def load(self, name: str, parse: Callable[[Any], T], default: Callable[[], T]) -> T:
        """Read and parse `name`; a missing file gives the default, a bad one is set aside."""
        path = self.path / name
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return default()
        except OSError as err:
            log.error("cannot read %s (%s); starting with defaults", path, err)
            return default()
        try:
            return parse(json.loads(raw))
        except (ValueError, PlugdError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            aside = path.with_name(f"{name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
            try:
                path.rename(aside)
            except OSError as move_err:
                log.error("%s is unreadable (%s) and could not be moved aside (%s); "
                          "starting with defaults", path, err, move_err)
            else:
                log.error("%s is unreadable (%s); kept as %s, starting with defaults",
                          path, err, aside)
            return default()

    def write(self, name: str, data: bytes, mode: int = 0o640) -> None:
        """Replace `name` atomically and durably with `data` (secrets pass mode 0o600)."""
        path = self.path / name
        tmp = path.with_name(f".{name}.{os.getpid()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
            dir_fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as err:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise StoreError(f"cannot write {path}: {err.strerror or err}") from None


def dump(value: Any) -> bytes:
    """JSON as the state files keep it: indented, UTF-8, one newline at the end."""
    return json.dumps(value, indent=1, ensure_ascii=False).encode("utf-8") + b"\n"


class Writer:
    """Writes files off the event loop, one at a time per file, the newest content winning.

    `save` returns once a version at least as new as the caller's is on disk,
    so an acknowledgement always follows the write it acknowledges. Saves that
    arrive while a write runs are coalesced into the next one.
    """

    def __init__(self, state: StateDir) -> None:
        self._state = state
        self._pending: dict[str, tuple[int, bytes]] = {}
        self._written: dict[str, int] = {}
        self._failed: dict[str, tuple[int, StoreError]] = {}
        self._generation = 0
        self._running: dict[str, asyncio.Task[None]] = {}
        self._changed = asyncio.Condition()

    async def save(self, name: str, data: bytes) -> None:
        """Write `data` as `name`; raise StoreError if that version could not be written."""
        self._generation += 1
        mine = self._generation
        self._pending[name] = (mine, data)
        if name not in self._running:
            self._running[name] = asyncio.create_task(self._drain(name))
        async with self._changed:
            await self._changed.wait_for(lambda: self._written.get(name, 0) >= mine
                                         or self._failed.get(name, (0,))[0] >= mine)
        failed = self._failed.get(name)
        if failed and failed[0] >= mine and self._written.get(name, 0) < mine:
            raise failed[1]

    async def _drain(self, name: str) -> None:
        try:
            while name in self._pending:
                generation, data = self._pending.pop(name)
                try:
                    await asyncio.to_thread(self._state.write, name, data)
                except StoreError as err:
                    log.error("%s", err)
                    self._failed[name] = (generation, err)
                else:
                    self._written[name] = generation
                async with self._changed:
                    self._changed.notify_all()
        finally:
            del self._running[name]

    async def flush(self) -> None:
        """Wait until every save so far has been written (or has failed)."""
        while self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)
