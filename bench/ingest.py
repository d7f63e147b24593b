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


async def trial(port: int, count: Callable[[], int]) -> Trial:
    """Blast datagrams at `port`; watch `count` (datagrams taken in) from this loop."""
    base = count()
    samples: list[tuple[float, float, int]] = []  # (time, thread CPU time, count)
    with load.Sender(port, NODES, count=PACKETS, max_seconds=SEND_SECONDS) as sender:
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
            invalid, accepted = counters.invalid, counters.accepted
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
        Row(NAME, "daemon with the MQTT outlet on (bridge_mesh: every peer published), median",
            "not measured: no mosquitto" if not mqtt_trials else
            f"{statistics.median(t.rate for t in mqtt_trials):,.0f} datagrams/s, "
            f"{statistics.median(t.rate for t in mqtt_trials) / daemon_rate:.2f} of the rate "
            f"without ({', '.join(map(str, mqtt_trials))})"),
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
