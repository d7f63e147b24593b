"""Control latency: a remote node's datagram -> recipe -> relay pin change.

The figure that matters to someone whose heater follows a thermometer on
another node: how long from the thermometer's datagram leaving its socket to
the relay pin moving. Two recipes (value above 50 -> relay on, below 50 -> off)
make every trigger flip the pin. It is measured idle, then while 500 other
nodes each broadcast once a second from another process.

The clock starts right before `sendto` and stops at the mock pin's own
timestamp of its change, so polling slack in this benchmark is not counted.
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass

from bench import harness, load
from bench.report import Row, run_alone
from plugd.core.model import Relation, ThingId
from plugd.service.daemon import Daemon
from tests.support import free_port

NAME = "Control latency"
SENSOR_NODE, SENSOR_THING = 777, 5
HIGH = f"{SENSOR_NODE}:Sensor&{SENSOR_THING}:80.00".encode("ascii")  # relay on
LOW = f"{SENSOR_NODE}:Sensor&{SENSOR_THING}:20.00".encode("ascii")  # relay off
SAMPLES = 400
GAP = 0.025  # seconds between triggers: the daemon is idle again long before the next one
GIVE_UP = 1.0  # a trigger that moved nothing after this long counts as missed
BACKGROUND_NODES = 500
BACKGROUND_FIRST_ID = 100_000
WARMUP = 2.0  # seconds of background load before sampling: every node is known by then
TARGET_P99_MS = 2.0


@dataclass(frozen=True)
class Latencies:
    """Switch-to-push delays of one run, and how many never came."""
    seconds: list[float]
    missed: int

    def ms(self, fraction: float) -> float:
        """A percentile in ms."""
        return harness.percentile(self.seconds, fraction) * 1000.0

    def summary(self) -> str:
        """p50, p99 and max as the table shows them."""
        missed = f", {self.missed} missed" if self.missed else ""
        return (f"p50 {self.ms(0.5):.3f} ms, p99 {self.ms(0.99):.3f} ms, "
                f"max {self.ms(1.0):.3f} ms ({len(self.seconds)} samples{missed})")


async def install_recipes(daemon: Daemon) -> None:
    """Relay on above 50, off below 50: each trigger below flips it."""
    for name, relation, local_value in (("bench above", Relation.BIGGER_THAN, 1),
                                        ("bench below", Relation.SMALLER_THAN, 0)):
        await harness.save_recipe(daemon, {
            "name": name, "sourceNodeId": SENSOR_NODE, "sourceThingId": SENSOR_THING,
            "relation": int(relation), "targetValue": 50, "localThingId": int(ThingId.PLUG),
            "localValue": local_value})


async def sample(running: harness.Running, port: int, count: int) -> Latencies:
    """Send `count` triggers, each the one that flips the relay; time each pin change."""
    relay = running.daemon.plug.relay
    assert relay is not None
    pin = running.pins.pin(relay.pin)
    seconds: list[float] = []
    missed = 0

    def changed_at() -> float:
        return pin._last_change  # MockPin's time.monotonic() of its last change (gpiozero 2.0)

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:  # unbound: an ephemeral port
        for _ in range(count):
            datagram = LOW if relay.is_on else HIGH
            before = changed_at()
            sent_at = time.monotonic()
            sock.sendto(datagram, (load.TARGET, port))
            await asyncio.sleep(GAP)
            while changed_at() == before and time.monotonic() - sent_at < GIVE_UP:
                await asyncio.sleep(0.001)
            if changed_at() == before:
                missed += 1
            else:
                seconds.append(changed_at() - sent_at)
    return Latencies(seconds, missed)


async def measure(samples: int = SAMPLES) -> list[Row]:
    """Control latency idle and with 500 nodes broadcasting; rows against the target."""
    port = free_port()
    async with harness.running_daemon(port) as running:
        daemon = running.daemon
        await install_recipes(daemon)
        idle = await sample(running, port, samples)

        duration = WARMUP + samples * GAP * 2 + 5.0  # outlasts the sampling; ended after it anyway
        background = range(BACKGROUND_FIRST_ID, BACKGROUND_FIRST_ID + BACKGROUND_NODES)
        with load.Sender(port, background, count=int(BACKGROUND_NODES * duration),
                         rate=BACKGROUND_NODES, max_seconds=duration) as sender:
            await asyncio.sleep(WARMUP)
            counters = daemon.registry.counters
            received, began = counters.received, time.monotonic()
            loaded = await sample(running, port, samples)
            heard_rate = (counters.received - received - samples) / (time.monotonic() - began)
            load_lasted = sender.running
        kept, dropped = len(daemon.registry.peers), counters.dropped_full

    p99 = loaded.ms(0.99)
    return [
        Row(NAME, f"p99, {BACKGROUND_NODES} nodes broadcasting 1/s", f"{p99:.3f} ms",
            f"≤ {TARGET_P99_MS:g} ms", p99 <= TARGET_P99_MS and load_lasted and not loaded.missed),
        Row(NAME, f"under load ({BACKGROUND_NODES} nodes)", loaded.summary()),
        Row(NAME, "idle baseline", idle.summary()),
        Row(NAME, "background heard while sampling",
            f"{heard_rate:.0f} datagrams/s; registry kept {kept} nodes, "
            f"{dropped} datagrams dropped (table full)"
            + ("" if load_lasted else "; LOAD ENDED EARLY")),
        running.error_row(NAME),
    ]


def run() -> list[Row]:
    """The control latency rows."""
    return asyncio.run(measure())


if __name__ == "__main__":
    run_alone(run)
