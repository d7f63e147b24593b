"""The mesh's UDP side: the endpoint that hears and speaks, and the rate-limited broadcaster."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Hashable, Iterator
from typing import Any

from plugd.core.registry import Counters
from plugd.errors import PlugdError

log = logging.getLogger(__name__)


#: Datagrams read per wake-up at most, so a flood cannot starve the rest of the loop. Each step
#: of a WebSocket request waits for one such batch under a flood: 16 halves the switch latency of
#: 64 there (bench.flood) at the same datagrams per CPU-second (bench.ingest).
READ_BATCH = 16
MAX_DATAGRAM_READ = 2048


class MeshEndpoint:
    """The UDP socket on the mesh port: hands datagrams to `receive`, sends broadcasts.

    Each time the socket is readable it drains what is waiting (up to
    READ_BATCH), which costs far less per datagram than a callback each.
    While `held` (a person's change runs), the socket is not read: what
    arrives waits in the kernel's buffer, so a flood cannot delay a switch.
    """

    def __init__(self, sock: socket.socket, receive: Callable[[bytes, str], None],
                 counters: Counters, loop: asyncio.AbstractEventLoop) -> None:
        self.socket = sock
        self._receive = receive
        self._counters = counters
        self._loop = loop
        self._holds = 0
        loop.add_reader(sock.fileno(), self._readable)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Leave the socket unread for the duration (nested holds count)."""
        self._holds += 1
        if self._holds == 1:
            self._loop.remove_reader(self.socket.fileno())
        try:
            yield
        finally:
            self._holds -= 1
            if self._holds == 0 and self.socket.fileno() >= 0:
                self._loop.add_reader(self.socket.fileno(), self._readable)

    def _readable(self) -> None:
        recvfrom = self.socket.recvfrom
        for _ in range(READ_BATCH):
            try:
                data, address = recvfrom(MAX_DATAGRAM_READ)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as err:  # an ICMP error queued on the socket, say
                log.debug("mesh socket error: %s", err)
                return
            try:
                self._receive(data, address[0])
            except Exception:  # a packet must never take the daemon down
                log.exception("error handling a datagram from %s", address[0])

    def send(self, data: bytes, addresses: list[str], port: int) -> None:
        """Send one datagram to each address; a failure is counted and logged, never raised."""
        if self.socket.fileno() < 0:
            return
        for address in addresses:
            try:
                self.socket.sendto(data, (address, port))
                self._counters.sent += 1
            except OSError as err:
                self._counters.send_errors += 1
                log.debug("cannot send to %s: %s", address, err)

    def close(self) -> None:
        """Stop listening and close the socket."""
        if self.socket.fileno() >= 0:
            self._loop.remove_reader(self.socket.fileno())
            self.socket.close()


def kernel_drops(sock: socket.socket, table: str = "/proc/net/udp") -> int | None:
    """Datagrams the kernel dropped for `sock` (its queue was full); None if not found.

    Read from the `drops` column of /proc/net/udp, found by the socket's inode:
    no ancillary data per datagram, so the receive path pays nothing for it.
    """
    try:
        inode = str(os.fstat(sock.fileno()).st_ino)
        with open(table, encoding="ascii") as lines:
            for line in lines:
                columns = line.split()
                if len(columns) > 12 and columns[9] == inode:
                    return int(columns[-1])
    except (OSError, ValueError):
        return None
    return None


def open_socket(bind: str, port: int) -> socket.socket:
    """A broadcast-capable UDP socket that other plugd instances on the host can share."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.bind((bind, port))
        sock.setblocking(False)
    except OSError as err:
        sock.close()
        raise PlugdError(f"cannot open the mesh port {bind}:{port}: {err.strerror or err}") from None
    return sock


class Coalescer:
    """Runs `action` at once, or at the end of the current gap after the last run.

    A burst of requests becomes one run at the end of the gap, which sees the
    latest state: at most one run every `min_gap` seconds, and none is lost.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, action: Callable[[], None],
                 min_gap: float) -> None:
        self._loop = loop
        self._action = action
        self.min_gap = min_gap
        self._last = float("-inf")
        self._soon: asyncio.TimerHandle | None = None
        self._stopped = False

    def request(self) -> None:
        """Ask for the action; requests until it runs become one run."""
        if self._soon is not None or self._stopped:
            return
        wait = self._last + self.min_gap - self._loop.time()
        if wait <= 0:
            self.run()
        else:
            self._soon = self._loop.call_later(wait, self.run)

    def run(self) -> None:
        """Run now; a run that was waiting for the gap to end is covered by this one."""
        if self._soon is not None:
            self._soon.cancel()
            self._soon = None
        self._last = self._loop.time()
        try:
            self._action()
        except Exception:
            log.exception("%s failed", getattr(self._action, "__name__", "a coalesced action"))

    def stop(self) -> None:
        """Cancel a pending run."""
        self._stopped = True
        if self._soon is not None:
            self._soon.cancel()


#: A timer may fire a hair before its time; a gap this much short counts as over.
TIMER_SLACK = 1e-3
#: Items run by one call of the loop at most: many keys due at once must not hold it up.
FLUSH_CHUNK = 8


class Throttle:
    """Per key: `action(item)` at once, then at most once every `min_gap` seconds.

    An item that arrives within the gap waits for its end, and a newer item for
    the same key replaces it. Each key keeps its own phase, so a flood of many
    keys is spread out instead of gathered into bursts.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, action: Callable[[Any], None],
                 min_gap: float) -> None:
        self._loop = loop
        self._action = action
        self.min_gap = min_gap
        self._last: dict[Hashable, float] = {}
        self._waiting: dict[Hashable, Any] = {}
        self._timer: asyncio.TimerHandle | None = None

    def request(self, key: Hashable, item: Any) -> None:
        """Ask for the action on `item`; its latest item runs at once or at its next turn."""
        now = self._loop.time()
        last = self._last.get(key)
        if last is None or now - last >= self.min_gap - TIMER_SLACK:
            self._waiting.pop(key, None)
            self._run(key, item, now)
            return
        self._waiting[key] = item
        due = last + self.min_gap
        if self._timer is None or self._timer.when() > due:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._loop.call_at(due, self._flush)

    def _run(self, key: Hashable, item: Any, now: float) -> None:
        self._last[key] = now
        try:
            self._action(item)
        except Exception:
            log.exception("%s failed", getattr(self._action, "__name__", "a throttled action"))

    def _flush(self) -> None:
        self._timer = None
        now = self._loop.time()
        due = [k for k in self._waiting if now - self._last[k] >= self.min_gap - TIMER_SLACK]
        for key in due[:FLUSH_CHUNK]:
            self._run(key, self._waiting.pop(key), now)
        if len(due) > FLUSH_CHUNK:  # the rest after the loop has looked at its sockets again
            self._timer = self._loop.call_at(now, self._flush)
            return
        # Keys quiet for a whole gap are as good as new: forget them, so spoofed keys cannot pile up.
        self._last = {k: t for k, t in self._last.items() if now - t < self.min_gap}
        if self._waiting:
            self._timer = self._loop.call_at(min(self._last[k] for k in self._waiting) + self.min_gap,
                                             self._flush)

    def stop(self) -> None:
        """Cancel the pending runs."""
        self._waiting.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


#: Broadcast intervals from one names datagram (plugd.core.wire.NAMES_PREFIX) to the next:
#: names change rarely, and a plugd that starts later learns them within this many intervals.
NAMES_EVERY = 6


class Every:
    """Calls `action` on the first call and then on every `nth`: a rarer send on the broadcast
    interval's tick (the names datagram)."""

    def __init__(self, nth: int, action: Callable[[], None]) -> None:
        self.nth = nth
        self._action = action
        self._calls = 0

    def __call__(self) -> None:
        """One tick: the action runs on the first and every `nth` one."""
        due = self._calls % self.nth == 0
        self._calls += 1
        if due:
            self._action()


class Broadcaster:
    """Sends this node's datagram every `interval`, and soon after each change.

    Changes are rate-limited to `max_rate` sends a second: a burst of changes
    becomes one datagram at the end of the gap, carrying the latest values.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, send: Callable[[], None], *,
                 interval: float, max_rate: float) -> None:
        self._loop = loop
        self.interval = interval
        self.sends = Coalescer(loop, send, 1.0 / max_rate)
        self._periodic: asyncio.TimerHandle | None = None
        self.on_interval: list[Callable[[], None]] = []

    def start(self) -> None:
        """Begin the periodic broadcasts."""
        self._tick()

    def stop(self) -> None:
        """Stop broadcasting."""
        self.sends.stop()
        if self._periodic is not None:
            self._periodic.cancel()

    def _tick(self) -> None:
        self._periodic = self._loop.call_later(self.interval, self._tick)
        self.sends.run()
        for hook in self.on_interval:
            try:
                hook()
            except Exception:
                log.exception("interval hook failed")

    def changed(self) -> None:
        """A local value changed: send at once, or at the end of the current gap."""
        self.sends.request()
