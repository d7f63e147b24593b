"""Ingest: how many valid mesh datagrams a second the daemon can take in.

The daemon's rate (`Plug.receive`: decode, registry, recipes, listeners, as
wired by the real Daemon) is set beside a bare asyncio receiver that only
counts, on the same loop, kernel and sender, so the ratio says how much of the
event loop's capacity plugd's own work leaves.

A sender process blasts faster than either can receive, so both run
saturated. A rate is the count processed per second of processing: counts
are sampled every few milliseconds on the receiving loop itself, and the
rate is taken between the first and the last sample that saw new datagrams,
so start-up and idle tails are not counted. What the kernel dropped (queue
full) is reported, not hidden, and so is the CPU share the receiving thread
got: the simulated ADC's threads take a few percent of it; much less than
~90% means something else on the machine took the CPU.
Trials alternate bare/daemon; medians count.

At a fixed rate (PACED_RATE, what a busy LAN might send) the figure is the CPU
the receiving thread spends per datagram, the daemon's beside the bare
receiver's; both include the daemon's own idle work on that loop, so the
difference is what plugd spends on each datagram. Both figures are taken again
with the signed mesh on: a daemon with a `mesh_key`, a sender that signs each
datagram with growing counters (the bare receiver only counts, signed or not).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import harness, load
from bench.report import Row, run_alone
from plugd.core.model import Relation, ThingId
from plugd.doors.udp import open_socket
from plugd.service.daemon import Daemon
from tests.broker import Broker, have_mosquitto
from tests.support import free_port

NAME = "Ingest"
TRIALS = 5
PACKETS = 400_000  # per trial; at ~300k/s from one sender, a bit over a second of sending
SEND_SECONDS = 5.0  # the sender stops here even if it has not sent them all
NODES = range(200_001, 200_201)  # 200 distinct remote nodes
SAMPLE_EVERY = 0.002
QUIET = 0.3  # no new datagram for this long after the sender ended: drained
TARGET_RATE = 20_000
TARGET_RATIO = 0.5
PACED_RATE = 20_000
PACED_SECONDS = 3.0
PACED_TRIALS = 3
#: The signed mesh's key for the signed trials (random letters: strong enough to be accepted).
MESH_KEY = "q7Vx2LmP9sKd4RtW8nZb3YcH"


@dataclass(frozen=True)
class Trial:
    """One ingest trial: datagrams processed, the time and CPU it took."""
    processed: int  # between the first and the last sample that saw new datagrams
    seconds: float
    cpu_seconds: float  # of the event loop's thread over the same span
    sent: load.Sent
    lost: int  # sent but never received: the kernel dropped them (queue full)

    @property
    def rate(self) -> float:
        """Datagrams processed per second."""
        return self.processed / self.seconds

    @property
    def per_cpu_second(self) -> float:
        """Datagrams per second of CPU the receiving thread got: what other load does not skew."""
        return self.processed / self.cpu_seconds

    def __str__(self) -> str:
        """The rate, how much of a CPU the receiver got (below ~90%: disturbed), and losses."""
        return (f"{self.rate:,.0f}/s (CPU {self.cpu_seconds / self.seconds:.0%}, "
                f"{self.lost / self.sent.count:.0%} lost)")


class Counting(asyncio.DatagramProtocol):
    """The bare receiver: asyncio's datagram path and nothing else."""

    def __init__(self) -> None:
        self.count = 0

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        """Count a datagram, and nothing else: the bare baseline's work."""
        self.count += 1


async def trial(port: int, count: Callable[[], int], key: bytes | None = None) -> Trial:
    """Blast datagrams at `port` (signed with `key`); watch `count` (datagrams taken in) from
    this loop."""
    base = count()
    samples: list[tuple[float, float, int]] = []  # (time, thread CPU time, count)
    with load.Sender(port, NODES, count=PACKETS, max_seconds=SEND_SECONDS, key=key) as sender:
        deadline = time.monotonic() + SEND_SECONDS + 10.0
        while time.monotonic() < deadline:
            await asyncio.sleep(SAMPLE_EVERY)
            now, cpu, seen = time.monotonic(), time.thread_time(), count()
            if not samples or seen != samples[-1][2]:
                samples.append((now, cpu, seen))
            if not sender.running and seen > base and now - samples[-1][0] > QUIET:
                break
        sent = await sender.finished()
    moving = [sample for sample in samples if sample[2] > base]
    if len(moving) < 2:
        raise RuntimeError(f"the receiver on port {port} saw almost nothing ({count() - base})")
    (first_t, first_cpu, first_n), (last_t, last_cpu, last_n) = moving[0], moving[-1]
    return Trial(last_n - first_n, last_t - first_t, last_cpu - first_cpu, sent,
                 sent.count - (count() - base))


@dataclass(frozen=True)
class Paced:
    """A trial at a fixed rate: datagrams taken in, and the receiving thread's CPU meanwhile."""
    processed: int
    cpu_seconds: float
    seconds: float

    @property
    def micros(self) -> float:
        """CPU microseconds of the receiving thread per datagram."""
        return self.cpu_seconds / max(1, self.processed) * 1e6

    def __str__(self) -> str:
        """Per datagram, and the share of a core at this rate."""
        return f"{self.micros:.1f} µs ({self.cpu_seconds / self.seconds:.0%} of a core)"


async def paced(port: int, count: Callable[[], int], key: bytes | None = None) -> Paced:
    """Send PACED_RATE datagrams a second for PACED_SECONDS to `port`; the thread's CPU over
    the datagrams `count` saw."""
    base = count()
    with load.Sender(port, NODES, count=int(PACED_RATE * PACED_SECONDS), rate=PACED_RATE,
                     max_seconds=PACED_SECONDS + 2.0, key=key) as sender:
        while count() == base:  # the sender has started
            await asyncio.sleep(SAMPLE_EVERY)
        began, cpu, first = time.monotonic(), time.thread_time(), count()
        last, changed, spent = first, began, 0.0
        while sender.running or time.monotonic() - changed < QUIET:
            await asyncio.sleep(SAMPLE_EVERY)
            if count() != last:  # the span ends at the last datagram seen
                last, changed, spent = count(), time.monotonic(), time.thread_time() - cpu
        await sender.finished()
    return Paced(last - first, spent, changed - began)


async def install_recipes(daemon: Daemon) -> None:
    """A few recipes on some of the senders: one never matches, one always does (and holds)."""
    for source in NODES[::50]:
        await harness.save_recipe(daemon, {
            "name": f"never {source}", "sourceNodeId": source, "sourceThingId": int(ThingId.POWER),
            "relation": int(Relation.BIGGER_THAN), "targetValue": 1e6,
            "localThingId": int(ThingId.PLUG), "localValue": 0})
        await harness.save_recipe(daemon, {
            "name": f"always {source}", "sourceNodeId": source, "sourceThingId": int(ThingId.POWER),
            "relation": int(Relation.NOT_SMALLER_THAN), "targetValue": 0,
            "localThingId": int(ThingId.PLUG), "localValue": 1})


async def measure(trials: int = TRIALS) -> list[Row]:
    """The daemon's and a bare receiver's rate at saturation, in alternating trials."""
    loop = asyncio.get_running_loop()
    bare_port, daemon_port = free_port(), free_port()
    bare_socket = open_socket("127.0.0.1", bare_port)  # the daemon's own socket set-up
    granted = harness.enlarge_receive_buffer(bare_socket)
    bare_transport, bare = await loop.create_datagram_endpoint(Counting, sock=bare_socket)
    try:
        async with harness.running_daemon(daemon_port) as running:
            daemon = running.daemon
            await install_recipes(daemon)
            mesh_socket = daemon.endpoint.socket
            if harness.enlarge_receive_buffer(mesh_socket) != granted:
                raise RuntimeError("the two receivers got different receive buffers")
            counters = daemon.registry.counters
            bare_trials, daemon_trials = [], []
            for _ in range(trials):
                bare_trials.append(await trial(bare_port, lambda: bare.count))
                daemon_trials.append(await trial(daemon_port, lambda: counters.received))
            bare_paced, daemon_paced = [], []
            for _ in range(PACED_TRIALS):
                bare_paced.append(await paced(bare_port, lambda: bare.count))
                daemon_paced.append(await paced(daemon_port, lambda: counters.received))
            invalid, accepted = counters.invalid, counters.accepted
        signed = await _signed(trials, bare_port, lambda: bare.count)
        mqtt_trials = await _with_mqtt(trials)
    finally:
        bare_transport.close()

    bare_rate = statistics.median(t.rate for t in bare_trials)
    daemon_rate = statistics.median(t.rate for t in daemon_trials)
    send_rate = statistics.median(t.sent.rate for t in bare_trials + daemon_trials)
    ratio = daemon_rate / bare_rate
    bare_cpu = statistics.median(t.per_cpu_second for t in bare_trials)
    daemon_cpu = statistics.median(t.per_cpu_second for t in daemon_trials)

    return [
        Row(NAME, "daemon (Plug.receive), median", f"{daemon_rate:,.0f} datagrams/s",
            f"≥ {TARGET_RATE:,}/s", daemon_rate >= TARGET_RATE),
        Row(NAME, "daemon / bare asyncio receiver", f"{ratio:.2f}", f"≥ {TARGET_RATIO}",
            ratio >= TARGET_RATIO),
        Row(NAME, "bare asyncio receiver, median", f"{bare_rate:,.0f} datagrams/s"),
        Row(NAME, "per CPU-second of the receiving thread, median",
            f"daemon {daemon_cpu:,.0f}, bare {bare_cpu:,.0f}, ratio {daemon_cpu / bare_cpu:.2f}"),
        Row(NAME, "daemon trials", ", ".join(map(str, daemon_trials))),
        Row(NAME, "bare trials", ", ".join(map(str, bare_trials))),
        Row(NAME, "sender, median",
            f"{send_rate:,.0f} datagrams/s, {PACKETS:,} per trial from {len(NODES)} nodes; "
            f"receive buffer {granted // 1024} KiB; "
            f"daemon: {accepted:,} accepted, {invalid} invalid"),
        running.error_row(NAME),
        *_paced_rows("", bare_paced, daemon_paced),
        *signed,
        Row(NAME, "daemon with the MQTT outlet on (bridge_mesh: every peer published), median",
            "not measured: no mosquitto" if not mqtt_trials else
            f"{statistics.median(t.rate for t in mqtt_trials):,.0f} datagrams/s, "
            f"{statistics.median(t.rate for t in mqtt_trials) / daemon_rate:.2f} of the rate "
            f"without ({', '.join(map(str, mqtt_trials))})"),
    ]


def _paced_rows(label: str, bare: list[Paced], daemon: list[Paced]) -> list[Row]:
    """CPU per datagram at PACED_RATE, the daemon's beside the bare receiver's."""
    ours = statistics.median(t.micros for t in daemon)
    theirs = statistics.median(t.micros for t in bare)
    return [Row(NAME, f"CPU per datagram at {PACED_RATE:,}/s{label}, median: daemon / bare",
                f"{ours:.1f} µs / {theirs:.1f} µs = {ours / theirs:.1f}x; plugd's own "
                f"{ours - theirs:.1f} µs, {(ours - theirs) * PACED_RATE / 1e4:.0f} % of a core "
                f"at this rate"),
            Row(NAME, f"paced trials{label}", f"daemon {', '.join(map(str, daemon))}; "
                                              f"bare {', '.join(map(str, bare))}")]


async def _signed(trials: int, bare_port: int, bare_count: Callable[[], int]) -> list[Row]:
    """The saturation and paced trials again with the signed mesh: a daemon with MESH_KEY, a
    sender that signs. The bare receiver's figures are taken beside them, alternating."""
    key = MESH_KEY.encode()
    port = free_port()
    async with harness.running_daemon(port, **{"mesh.mesh_key": MESH_KEY}) as running:
        daemon = running.daemon
        harness.enlarge_receive_buffer(daemon.endpoint.socket)
        await install_recipes(daemon)
        counters = daemon.registry.counters
        rates, bare_paced, daemon_paced = [], [], []
        for _ in range(trials):
            rates.append(await trial(port, lambda: counters.received, key))
        for _ in range(PACED_TRIALS):
            bare_paced.append(await paced(bare_port, bare_count, key))
            daemon_paced.append(await paced(port, lambda: counters.received, key))
        accepted, received = counters.accepted, counters.received
    rate = statistics.median(t.rate for t in rates)
    return [
        Row(NAME, "daemon, signed mesh on (every datagram's tag and counter checked), median",
            f"{rate:,.0f} datagrams/s ({', '.join(map(str, rates))}); {accepted:,} of "
            f"{received:,} received accepted", f"≥ {TARGET_RATE:,}/s", rate >= TARGET_RATE),
        *_paced_rows(", signed mesh on", bare_paced, daemon_paced),
        running.error_row(NAME),
    ]


async def _with_mqtt(trials: int) -> list[Trial]:
    """The daemon's trials again, reporting every peer it hears to a broker of its own."""
    if not have_mosquitto():
        return []
    with tempfile.TemporaryDirectory(prefix="plugd-ingest-broker-") as tmp:
        broker = Broker(Path(tmp))
        broker.start()
        try:
            port = free_port()
            async with harness.running_daemon(port, **{
                    "mqtt.host": "127.0.0.1", "mqtt.port": broker.port,
                    "mqtt.bridge_mesh": True}) as running:
                daemon = running.daemon
                harness.enlarge_receive_buffer(daemon.endpoint.socket)
                await install_recipes(daemon)
                counters = daemon.registry.counters
                return [await trial(port, lambda: counters.received) for _ in range(trials)]
        finally:
            broker.stop()


def run() -> list[Row]:
    """The ingest rows."""
    return asyncio.run(measure())


if __name__ == "__main__":
    run_alone(run)
