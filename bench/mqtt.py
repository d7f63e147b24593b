"""MQTT command latency: a command published to the broker -> the relay pin -> the state topic.

What someone whose Home Assistant switches the plug waits for. A client
publishes TOGGLE on the plug's command topic through a real mosquitto (Debian's,
started on a port of its own); the clock stops at the mock relay pin's own
timestamp of its change, and again when the new state arrives back at the
client. Beside it, the bare baseline: one plain client's message through the
same broker to another plain client, measured the same way, so the figure
says what plugd adds to the broker's own round trip. Also measured: how long
after start the whole discovery is at the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt

from bench import harness
from bench.latency import Latencies
from bench.report import Row, run_alone
from plugd.core import discovery
from plugd.doors.mqtt import NO_DELAY
from tests.broker import Broker, have_mosquitto
from tests.support import free_port

NAME = "MQTT latency"
SAMPLES = 300
GAP = 0.02  # seconds between commands: the plug is idle again long before the next one
GIVE_UP = 2.0  # a command that moved nothing after this long counts as missed
TARGET_P99_MS = 10.0
TARGET_DISCOVERY_S = 15.0
PREFIX = "plugd/bench"


class Arrivals:
    """Messages a client reads, each with its monotonic arrival time, for awaiting."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.times: dict[str, list[float]] = {}
        self.changed = asyncio.Event()

    async def read(self) -> None:
        """Record every message until cancelled."""
        async for message in self.client.messages:
            self.times.setdefault(message.topic.value, []).append(time.monotonic())
            self.changed.set()

    async def next(self, topic: str, count: int, limit: float) -> float | None:
        """The arrival time of message number `count` + 1 on `topic`, or None after `limit` s."""
        deadline = time.monotonic() + limit
        while len(self.times.get(topic, ())) <= count:
            self.changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)
        return self.times[topic][count]


@contextlib.asynccontextmanager
async def reading(port: int, *topics: str) -> AsyncIterator[Arrivals]:
    """A plain client on the broker, subscribed to `topics`, recording arrivals (without
    Nagle's delay, as plugd's own client)."""
    async with aiomqtt.Client("127.0.0.1", port, socket_options=[NO_DELAY]) as client:
        arrivals = Arrivals(client)
        reader = asyncio.create_task(arrivals.read())
        try:
            if topics:
                await client.subscribe([(t, 1) for t in topics])
            yield arrivals
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await reader


async def baseline(port: int, samples: int) -> Latencies:
    """One plain client to another through the broker: publish to arrival."""
    topic = "bench/baseline"
    seconds: list[float] = []
    missed = 0
    async with reading(port, topic) as receiver, reading(port) as sender:
        for index in range(samples):
            sent_at = time.monotonic()
            await sender.client.publish(topic, b"ON", qos=1)
            arrived = await receiver.next(topic, index, GIVE_UP)
            if arrived is None:
                missed += 1
                break  # the counts no longer line up
            seconds.append(arrived - sent_at)
            await asyncio.sleep(GAP)
    return Latencies(seconds, missed)


async def measure(samples: int = SAMPLES) -> list[Row]:
    """Command to relay and to state topic, the bare baseline, discovery after start."""
    if not have_mosquitto():
        return [Row(NAME, "run", "skipped: needs Debian's mosquitto (apt-get install mosquitto)",
                    "completes", False)]
    with tempfile.TemporaryDirectory(prefix="plugd-bench-mqtt-") as directory:
        broker = Broker(Path(directory))
        broker.start()
        try:
            return await _measure(broker, samples)
        finally:
            broker.stop()


async def _measure(broker: Broker, samples: int) -> list[Row]:
    bare = await baseline(broker.port, samples)
    configs = f"{discovery.Topics(PREFIX, 'homeassistant', harness.NODE_ID).discovery}/#"
    async with reading(broker.port, configs, f"{PREFIX}/relay") as watcher:
        began = time.monotonic()
        async with harness.running_daemon(free_port(), **{
                "mqtt.host": "127.0.0.1", "mqtt.port": broker.port,
                "mqtt.topic_prefix": PREFIX}) as running:
            wanted = len(discovery.SENSORS) + 1
            while sum(t.endswith("/config") for t in watcher.times) < wanted:
                if time.monotonic() - began > 60:
                    raise RuntimeError("the discovery never arrived at the broker")
                watcher.changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(watcher.changed.wait(), 1.0)
            discovered = max(v[0] for t, v in watcher.times.items() if t.endswith("/config")) - began
            relay = running.daemon.plug.relay
            assert relay is not None
            pin = running.pins.pin(relay.pin)
            to_pin: list[float] = []
            to_state: list[float] = []
            missed = 0
            async with reading(broker.port) as commander:
                state_topic = f"{PREFIX}/relay"
                for _ in range(samples):
                    before = pin._last_change  # MockPin's time.monotonic() of its last change
                    seen = len(watcher.times.get(state_topic, ()))
                    sent_at = time.monotonic()
                    await commander.client.publish(f"{PREFIX}/relay/set", b"TOGGLE", qos=1)
                    arrived = await watcher.next(state_topic, seen, GIVE_UP)
                    if arrived is None or pin._last_change == before:
                        missed += 1
                    else:
                        to_pin.append(pin._last_change - sent_at)
                        to_state.append(arrived - sent_at)
                    await asyncio.sleep(GAP)
            status = running.daemon.status()["mqtt"]
        error_row = running.error_row(NAME)
    pin_figures, state_figures = Latencies(to_pin, missed), Latencies(to_state, missed)
    p99 = pin_figures.ms(0.99) if to_pin else float("inf")
    return [
        Row(NAME, "p99, MQTT command to relay pin (loopback broker)", f"{p99:.2f} ms",
            f"≤ {TARGET_P99_MS:g} ms", p99 <= TARGET_P99_MS and not missed),
        Row(NAME, "command to relay pin", pin_figures.summary()),
        Row(NAME, "command to the new state at a client (the whole round trip)",
            state_figures.summary()),
        Row(NAME, "bare baseline: one client to another through the same broker",
            bare.summary()),
        Row(NAME, "start to the whole discovery at the broker", f"{discovered:.2f} s",
            f"≤ {TARGET_DISCOVERY_S:g} s", discovered <= TARGET_DISCOVERY_S),
        Row(NAME, "outlet", f"{status['published']} messages published, {status['commands']} "
                            f"commands, {status['connects']} connection(s)"),
        error_row,
    ]


def run() -> list[Row]:
    """The MQTT latency rows."""
    return asyncio.run(measure())


if __name__ == "__main__":
    run_alone(run)
