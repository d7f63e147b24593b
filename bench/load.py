"""Mesh traffic from other processes: ESP8266-format datagrams sent to 127.0.0.1.

The benchmarks need senders that do not share the measured process's CPU time
or event loop, so each sender runs in a child process (the `spawn` start method:
nothing of the parent's event loop or threads is inherited). Sends go only to
127.0.0.1, from an unbound socket, and stop after a fixed count or time,
whichever comes first.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
import socket
import time
from dataclasses import dataclass
from multiprocessing.queues import SimpleQueue
from types import TracebackType

from plugd.core import meshkey

#: The only address the benchmarks ever send to.
TARGET = "127.0.0.1"
#: Stale values are fine; the daemon only parses them.
CLOCK_TEXT = "13:05:09 - 24.11.2026"
#: Pre-built datagrams per sender; more variety costs memory, not realism.
MAX_PREBUILT = 20_000


def esp_datagram(node_id: int, power: float, energy: float, relay: bool = True) -> bytes:
    """What an ESP8266 smart plug broadcasts: its four things, values printed as `String(float)`."""
    return (f"{node_id}:Esp{node_id}&1:{1.0 if relay else 0.0:.2f}&2:{power:.2f}"
            f"&3:{energy:.2f}&4:{CLOCK_TEXT}").encode("ascii")


def datagrams(node_ids: range) -> list[bytes]:
    """A round over `node_ids` per variant; values differ from one round to the next."""
    variants = max(1, min(16, MAX_PREBUILT // len(node_ids)))
    return [esp_datagram(node_id, power=100.0 + 7.5 * variant + node_id % 100,
                         energy=400.0 + variant, relay=variant % 2 == 0)
            for variant in range(variants) for node_id in node_ids]


@dataclass(frozen=True)
class Sent:
    """How many datagrams a sender sent, and in how long."""
    count: int
    seconds: float  # from the first send to the end of the last

    @property
    def rate(self) -> float:
        """Datagrams per second."""
        return self.count / self.seconds if self.seconds > 0 else 0.0


def send(port: int, node_ids: range, count: int, rate: float | None, max_seconds: float,
         results: SimpleQueue[Sent] | None = None, key: bytes | None = None) -> Sent:
    """Send `count` datagrams cycling over `node_ids` to 127.0.0.1:`port`.

    With `rate` (datagrams per second) the sends are spread evenly in time, so
    with `rate == len(node_ids)` every node speaks once a second; without it,
    they go as fast as the socket takes them. Stops at `max_seconds` anyway.
    With `key`, each is signed for the signed mesh as it is sent, with a counter
    that grows from one datagram to the next and from one sender to the next, so none
    is a replay.
    """
    packets: list[bytes] | _Signed = datagrams(node_ids)
    if key is not None:
        packets = _Signed(packets, key, time.time_ns() // 1000)
    address = (TARGET, port)
    batch = max(1, int(rate // 1000)) if rate else 1000  # pace in ~1 ms steps
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sendto = sock.sendto
    sent = 0
    start = time.monotonic()
    deadline = start + max_seconds
    try:
        while sent < count:
            now = time.monotonic()
            if now >= deadline:
                break
            if rate:
                ahead = start + sent / rate - now
                if ahead > 0:
                    time.sleep(ahead)
            for _ in range(min(batch, count - sent)):
                sendto(packets[sent % len(packets)], address)
                sent += 1
    finally:
        sock.close()
    outcome = Sent(sent, time.monotonic() - start)
    if results is not None:
        results.put(outcome)
    return outcome


class _Signed:
    """The prebuilt datagrams, each signed when it is taken: `packets[n]` carries counter
    `first + n`. A sender starts at the clock's microseconds, above any earlier sender's
    last counter at rates below a million a second."""

    def __init__(self, packets: list[bytes], key: bytes, first: int) -> None:
        self._packets = packets
        self._key = key
        self._first = first

    def __len__(self) -> int:
        return 1 << 62  # indices never wrap: each counter is used once

    def __getitem__(self, index: int) -> bytes:
        return meshkey.sign(self._packets[index % len(self._packets)], self._key,
                            self._first + index)


def _child(port: int, node_ids: range, count: int, rate: float | None, max_seconds: float,
           results: SimpleQueue[Sent], key: bytes | None) -> None:
    """The child's entry: Ctrl-C is for the parent, which ends the child itself."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    send(port, node_ids, count, rate, max_seconds, results, key)


class Sender:
    """`send` in a child process, ended for sure when the `with` block is left.

        with Sender(port, range(1000, 1500), count=5000, rate=500) as sender:
            sent = sender.wait()  # or, on an event loop: await sender.finished()
    """

    def __init__(self, port: int, node_ids: range, *, count: int, rate: float | None = None,
                 max_seconds: float = 10.0, key: bytes | None = None) -> None:
        context = multiprocessing.get_context("spawn")
        self._results = context.SimpleQueue()
        self._process = context.Process(
            target=_child, args=(port, node_ids, count, rate, max_seconds, self._results, key),
            name="bench-sender", daemon=True)
        self.max_seconds = max_seconds
        self._stopped = False

    def __enter__(self) -> Sender:
        self._process.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the sending process still runs."""
        return self._process.is_alive()

    def wait(self, timeout: float | None = None) -> Sent:
        """Wait for the sender to finish (blocking); its count and duration."""
        self._process.join(self.max_seconds + 10.0 if timeout is None else timeout)
        if self._process.is_alive() or self._results.empty():
            raise RuntimeError(f"the sender did not finish (exit code {self._process.exitcode})")
        return self._results.get()

    async def finished(self) -> Sent:
        """`wait` for code on an event loop, which keeps running meanwhile."""
        await asyncio.to_thread(self._process.join, self.max_seconds + 10.0)
        return self.wait(timeout=1.0)

    def stop(self) -> None:
        """End the child (politely, then not) and release its resources; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        process = self._process
        if process.pid is not None:  # it was started
            if process.is_alive():
                process.terminate()
                process.join(2.0)
            if process.is_alive():
                process.kill()
                process.join(2.0)
            process.close()
        self._results.close()
