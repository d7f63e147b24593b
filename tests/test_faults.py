"""Chips that fail, injected at the chip: the ADS1115 emulator's faults, the GPIO stand-in
under the TM1637 library, and a relay pin under gpiozero that refuses writes.

For each, a running daemon keeps answering, marks what it no longer knows as invalid
(on the page and on the mesh), tells the page and the journal once, retries a dead bus
ever more slowly, and recovers by itself when the chip answers again.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import math
import random
import socket
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory, MockPin
from websockets.asyncio.client import connect

from plugd.core.metering import CurrentMeter
from plugd.core.model import ThingId
from plugd.core.wire import decode
from plugd.errors import ValidationError
from plugd.hardware.adc import Sampler
from plugd.hardware.sim.ads1115 import ADS1115Emulator
from plugd.service.daemon import Daemon
from plugd.service.meter import current_meter
from tests.support import Client, Heard, sim_config, until, wait_for

LOAD = 1000.0
#: The sampler's waits between attempts on a dead bus run this much faster in the daemon tests
#: (what it asks for is recorded and checked; how long threading.Event waits is Python's).
HASTE = 10.0


class Backoff(threading.Event):
    """A sampler's stop event that records each wait between attempts (a second or more; the
    waits for the next block are shorter) and makes it HASTE times shorter."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        if timeout is not None and timeout >= 1.0:
            self.waits.append(timeout)
            timeout /= HASTE
        return super().wait(timeout)


@asynccontextmanager
async def page(d: Daemon) -> AsyncIterator[tuple[Client, list[dict[str, Any]]]]:
    """A logged-in client for requests, and every message pushed to a second one."""
    url = f"ws://127.0.0.1:{d.web.port}/ws"
    async with connect(url) as ws, connect(url) as watcher_ws:
        client, watcher = Client(ws), Client(watcher_ws)
        assert (await client.ask({"command": "login", "token": d.auth.cli_token}))["success"]
        assert (await watcher.ask({"command": "login", "token": d.auth.cli_token}))["success"]
        pushed: list[dict[str, Any]] = []

        async def watch() -> None:
            async for frame in watcher_ws:
                pushed.append(json.loads(frame))

        task = asyncio.create_task(watch())
        try:
            yield client, pushed
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def readings(d: Daemon, count: int) -> None:
    """Wait until the meter has made `count` more readings (windows) than it had."""
    first = d.meter.last
    start = first.end if first is not None else float("-inf")
    await until(lambda: (w := d.meter.last) is not None and w.end >= start + count - 0.5,
                f"{count} more readings")


def power(d: Daemon) -> float | None:
    return None if ThingId.POWER in d.plug.invalid else d.plug.things[ThingId.POWER].value


def records(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(text in r.getMessage() for r in caplog.records)


def events(pushed: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    return [m["event"] for m in pushed if m["command"] == "event" and text in m["event"]["message"]]


def power_updates(pushed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in pushed if m["command"] == "thing_update" and m["thingId"] == ThingId.POWER]


@pytest.mark.parametrize("fault", ["nack", "gone", "garbage", "stuck"])
async def test_a_failing_current_sensor_is_shown_invalid_retried_and_recovers(
        fault, make_daemon, factory, caplog):
    caplog.set_level(logging.INFO)
    d = await make_daemon(**{"simulate.load_watts": LOAD})
    mesh = Heard(d.config.mesh.udp_port)
    try:
        async with page(d) as (client, pushed):
            assert (await client.ask({"command": "switch", "state": "on"}))["relay"] is True
            await until(lambda: (power(d) or 0) > 0.9 * LOAD, "a first reading of the load")
            backoff = d.sampler._stop = Backoff()  # read again each block: in force at once
            adc = d.simulation.adc
            adc.fault = fault
            await until(lambda: power(d) is None, "power to be marked invalid")
            failed_at = len(pushed)

            # The page: request_things, a thing_update, the status, an event.
            things = {t["id"]: t for t in (await client.ask({"command": "request_things"}))["things"]}
            assert things[ThingId.POWER]["valid"] is False and things[ThingId.CURRENT]["valid"] is False
            assert things[ThingId.PLUG]["valid"] is True
            await until(lambda: [m for m in power_updates(pushed) if m["valid"] is False],
                        "a thing_update saying the power is invalid")
            status = await client.ask({"command": "request_status"})
            assert status["valid"] == {str(int(ThingId.POWER)): False, str(int(ThingId.CURRENT)): False}
            assert status["meter"]["fault"] and "sensor fault" in d._status_line()
            await until(lambda: events(pushed, "current sensor failed"), "the fault event")

            # The mesh: a datagram sent after the fault carries neither power nor current.
            sent_before = len(mesh.heard)
            packet = await until(lambda: mesh.heard[sent_before:] and mesh.heard[-1],
                                 "a broadcast during the fault")
            ids = [f.thing_id for f in decode(packet).fields]
            assert ThingId.PLUG in ids and ThingId.POWER not in ids and ThingId.CURRENT not in ids

            # The relay stays controllable, and the load follows it.
            off = await client.ask({"command": "switch", "state": "off"})
            assert off["relay"] is False and factory.pin(d.config.relay.pin).state is False
            on = await client.ask({"command": "switch", "state": "on"})
            assert on["relay"] is True and factory.pin(d.config.relay.pin).state is True

            if fault in ("nack", "gone"):
                # Retries after 1, 2 and 4 s: each waits twice as long as the last.
                await until(lambda: len(backoff.waits) >= 4, "three retries, each failed")
                assert backoff.waits[:4] == [1.0, 2.0, 4.0, 8.0]
            else:
                # The bus answers, so the sampler reads on (no backoff), and every window is
                # refused as implausible.
                read = adc.transfers
                await until(lambda: adc.transfers > read + 100, "the sampler to read on")
                assert d.meter.fault.startswith("implausible readings")
            assert power(d) is None
            assert records(caplog, "current sensor failed") == 1
            assert len(events(pushed, "current sensor failed")) == 1
            # Never a number from a dead sensor: every power update since says invalid.
            during = await until(lambda: power_updates(pushed[failed_at:]),
                                 "a power update pushed during the fault")
            assert all(m["valid"] is False for m in during)
            assert all(ThingId.POWER not in [f.thing_id for f in decode(p).fields]
                       for p in mesh.heard[sent_before:])

            adc.fault = None
            await until(lambda: (power(d) or 0) > 0.9 * LOAD, "the sensor to come back")
            await until(lambda: events(pushed, "current sensor back"), "the event saying so")
            assert records(caplog, "current sensor back") == 1
            things = {t["id"]: t for t in (await client.ask({"command": "request_things"}))["things"]}
            assert things[ThingId.POWER]["valid"] is True
            assert (await client.ask({"command": "request_status"}))["meter"]["fault"] is None
            # Still reading on the conversion-ready pin, not fallen back to polling.
            assert d.sampler is not None and not d.sampler.single_shot
    finally:
        mesh.close()
        await d.stop()


class FailingPin(MockPin):
    """A mock GPIO whose writes fail while `fail` is set, as a pin whose driver went bad."""

    fail = False

    def _set_state(self, value: bool) -> None:
        if self.fail:
            raise OSError(errno.EIO, "simulated GPIO write failure")
        super()._set_state(value)


async def test_a_relay_pin_that_refuses_writes(tmp_path, factory: MockFactory, caplog):
    caplog.set_level(logging.INFO)
    config = sim_config(tmp_path / "state", **{"simulate.load_watts": LOAD})
    pin = factory.pin(config.relay.pin, pin_class=FailingPin)
    d = Daemon(config, pin_factory=factory)
    await d.start()
    mesh = Heard(config.mesh.udp_port)
    try:
        async with page(d) as (client, pushed):
            await until(lambda: power(d) == 0.0, "a first reading, relay off")
            pin.fail = True
            answer = await client.ask({"command": "switch", "state": "on"})
            assert answer["command"] == "error"
            assert f"cannot switch the relay on GPIO{config.relay.pin}" in answer["error"]
            assert "simulated GPIO write failure" in answer["error"]
            # The value does not claim what the relay did not do, here or on the mesh.
            assert d.plug.things[ThingId.PLUG].value == 0.0 and pin.state is False
            things = {t["id"]: t for t in (await client.ask({"command": "request_things"}))["things"]}
            assert things[ThingId.PLUG]["value"] == 0.0
            sent = len(mesh.heard)
            packet = await until(lambda: mesh.heard[sent:] and mesh.heard[-1], "a broadcast")
            assert decode(packet).fields[0].thing_id == ThingId.PLUG
            assert decode(packet).fields[0].value == 0.0
            await until(lambda: events(pushed, "cannot switch the relay"), "the fault event")
            status = await client.ask({"command": "request_status"})
            assert "cannot switch the relay" in status["relayFault"] and status["relay"] is False
            # save_thing goes the same way; a recipe that keeps trying does not flood the log.
            saved = await client.ask({"command": "save_thing", "thing": {"id": 1, "value": 1}})
            assert saved["command"] == "error" and "cannot switch the relay" in saved["error"]
            recipe = await client.ask({"command": "save_recipe", "recipe": {
                "name": "on when warm", "sourceNodeId": 777, "sourceThingId": 5, "relation": 2,
                "targetValue": 10, "localThingId": 1, "localValue": 1}})
            assert recipe["success"] is True
            counters = d.registry.counters
            received = counters.received
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
                sender.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
                for _ in range(3):
                    sender.sendto(b"777:Sensor&5:20.00", ("127.255.255.255", config.mesh.udp_port))
            await until(lambda: counters.received >= received + 3, "the sensor's datagrams")
            assert d.plug.things[ThingId.PLUG].value == 0.0 and pin.state is False
            assert records(caplog, "cannot switch the relay") == 1
            assert len(events(pushed, "cannot switch the relay")) == 1
            # The sensor still reads (no load: the relay never closed).
            await readings(d, 1)
            assert power(d) == 0.0

            pin.fail = False
            assert (await client.ask({"command": "switch", "state": "on"}))["relay"] is True
            assert pin.state is True
            await until(lambda: events(pushed, "the relay switches again"), "the event saying so")
            assert (await client.ask({"command": "request_status"}))["relayFault"] is None
            await until(lambda: (power(d) or 0) > 0.9 * LOAD, "the load once the relay closed")
    finally:
        mesh.close()
        await d.stop()


async def test_an_overload_keeps_trying_a_relay_pin_that_refuses_to_open(tmp_path, factory, caplog):
    caplog.set_level(logging.INFO)
    config = sim_config(tmp_path / "state", **{"simulate.load_watts": 500.0,
                                               "protection.max_power": 1200.0,
                                               "protection.hold": 0.0})
    pin = factory.pin(config.relay.pin, pin_class=FailingPin)
    d = Daemon(config, pin_factory=factory)
    await d.start()
    try:
        async with page(d) as (client, pushed):
            assert (await client.ask({"command": "switch", "state": "on"}))["relay"] is True
            await until(lambda: (power(d) or 0) > 450, "the small load")
            pin.fail = True
            d.simulation.mains.load_watts = 2000.0
            await until(lambda: d.plug.tripped, "the protection to trip")
            await readings(d, 3)  # readings go on, each trying to open the relay
            # The relay did not open, and nothing says it did.
            assert pin.state is True and d.plug.things[ThingId.PLUG].value == 1.0
            status = await client.ask({"command": "request_status"})
            assert status["relay"] is True and status["tripped"] and status["relayFault"]
            assert records(caplog, "cannot switch the relay") == 1
            assert records(caplog, "protection tripped") == 1
            assert not [r for r in caplog.records if r.levelname == "ERROR"]
            pin.fail = False
            await until(lambda: pin.state is False, "the relay open at the next reading")
            assert d.plug.things[ThingId.PLUG].value == 0.0 and d.plug.tripped
            await until(lambda: events(pushed, "the relay switches again"), "the event saying so")
    finally:
        await d.stop()


async def test_a_display_whose_gpio_fails_is_reported_once_and_comes_back(make_daemon, caplog):
    caplog.set_level(logging.INFO)
    d = await make_daemon(**{"simulate.load_watts": LOAD})
    try:
        async with page(d) as (client, pushed):
            chip = d.simulation.display
            await until(lambda: chip.text == "   0", "the display showing 0 W")
            d.simulation.gpio.fail = True
            # The library only writes what changed, so the failure shows at the next new value.
            assert (await client.ask({"command": "switch", "state": "on"}))["relay"] is True
            await until(lambda: events(pushed, "display failed"), "the display fault event", 30)
            frames = chip.frames
            await readings(d, 3)  # new readings to draw
            assert (await client.ask({"command": "request_things"}))["command"] == "response_things"
            assert chip.frames == frames  # nothing reached the chip
            assert records(caplog, "display failed") == 1
            status = await client.ask({"command": "request_status"})
            assert "simulated GPIO fault" in status["displayFault"]  # the page's notice shows it
            await until(lambda: (power(d) or 0) > 0.9 * LOAD, "the meter, which needs no display")
            d.simulation.gpio.fail = False
            await until(lambda: events(pushed, "display back"), "the display back", 30)
            assert (await client.ask({"command": "request_status"}))["displayFault"] is None
            await until(lambda: chip.frames > frames, "frames on the chip again")
            assert records(caplog, "display back") == 1
    finally:
        await d.stop()


# --- what the meter can tell from the samples alone --------------------------------------------


@pytest.fixture
def meter(tmp_path):
    return current_meter(sim_config(tmp_path))


def feed(meter, volts: Callable[[int], float], seconds: float = 2.2, rate: float = 860.0):
    return meter.add_many([i / rate for i in range(int(seconds * rate))],
                          [volts(i) for i in range(int(seconds * rate))])


def code_volts(code: int) -> float:
    """What adafruit_ads1x15 makes of a conversion code at ±4.096 V."""
    return code * 4.096 / 32767


def test_live_readings_are_plausible(meter):
    rng = random.Random(1)
    windows = feed(meter, lambda i: 1.667 + 0.3 * math.sin(2 * math.pi * 50 * i / 860)
                   + rng.gauss(0, 0.0012))
    assert windows and all(w.implausible == "" for w in windows)


def test_a_quiet_idle_sensor_is_still_plausible(meter):
    rng = random.Random(2)  # the ACS712's own noise, about 10 codes rms through the divider
    windows = feed(meter, lambda i: code_volts(13337 + round(rng.gauss(0, 10))))
    assert windows and all(w.implausible == "" for w in windows)


@pytest.mark.parametrize(("what", "volts", "why"), [
    ("random bytes off the bus", lambda rng, i: code_volts(rng.randrange(-32768, 32768)),
     "outside"),
    ("a stuck bus reading zeros", lambda rng, i: 0.0, "all"),
    ("the positive rail", lambda rng, i: code_volts(32767), "outside"),
    ("the configuration register read back (0x8583)", lambda rng, i: code_volts(0x8583 - 65536),
     "outside"),
    ("a frozen conversion", lambda rng, i: code_volts(13337), "all"),
])
def test_implausible_readings_are_flagged(meter, what, volts, why):
    rng = random.Random(3)
    windows = feed(meter, lambda i: volts(rng, i))
    assert windows and all(why in w.implausible for w in windows), what


@pytest.mark.parametrize(("field", "limits"), [("valid_low", {"valid_low": 0.01}),
                                               ("valid_high", {"valid_high": 3.0}),
                                               ("valid_low", {"valid_low": math.nan})])
def test_plausibility_limits_must_lie_beyond_the_clipping_ones(field, limits):
    with pytest.raises(ValidationError, match=f"^{field}: must be"):
        CurrentMeter(volts_per_amp=0.1, frequency=50, clip_low=0.01, clip_high=3.2, **limits)


def test_the_emulators_stuck_bus_raises_nothing_reads_zeros_and_loses_writes():
    class Steady:
        def volts(self, channel: int, t0: float, t1: float) -> float:
            return 1.0

    emu = ADS1115Emulator(Steady())
    config = bytearray(2)
    emu.writeto_then_readfrom(0x48, bytes([1]), config)
    emu.fault = "stuck"
    before = emu.transfers
    emu.writeto(0x4B, bytes([1, 0x00, 0x00]))  # a wrong address: acknowledged all the same
    out = bytearray(b"\xff\xff")
    emu.writeto_then_readfrom(0x48, bytes([1]), out)
    assert out == bytearray(2) and emu.transfers == before + 2
    emu.fault = None
    again = bytearray(2)
    emu.writeto_then_readfrom(0x48, bytes([1]), again)
    assert again == config  # the write never reached the chip


def test_retries_double_up_to_the_cap_and_start_afresh_after_a_recovery():
    """The sampler's waits between attempts on a failing bus, read off its stop event."""

    class Steady:
        def volts(self, channel: int, t0: float, t1: float) -> float:
            return 1.6

    emu = ADS1115Emulator(Steady())
    emu.fault = "nack"
    handed: list[int] = []
    faults: list[str | None] = []
    sampler = Sampler(lambda: emu, address=0x48, channel="A0", full_scale=4.096, data_rate=860,
                      alert_pin=0, pin_factory=None, consume=lambda t, v: handed.append(len(t)),
                      on_fault=faults.append)
    waits: list[float] = []

    class Waits(threading.Event):
        """Records each wait and makes it short; after the 7th the chip answers again."""

        def wait(self, timeout: float | None = None) -> bool:
            waits.append(timeout)
            if len(waits) == 7:
                emu.fault = None
            return super().wait(0.001)

    sampler._stop = Waits()
    sampler.start()
    try:
        wait_for(lambda: handed, "samples once the chip answers")
        emu.fault = "nack"
        wait_for(lambda: len(waits) >= 9, "two more retries")
    finally:
        sampler.stop()
    assert waits[:9] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 1.0, 2.0]
    assert faults[0] and faults[1] is None and faults[2]


async def test_simulate_fault_breaks_the_chips_and_names_what_is_wrong(make_daemon):
    d = await make_daemon()
    try:
        async with page(d) as (client, _pushed):
            for request, error in [({"chip": "relay", "fault": True}, "message.chip: expected 'adc'"),
                                   ({"chip": "adc", "fault": "melted"}, "message.fault: expected one of"),
                                   ({"chip": "display", "fault": "yes"}, "message.fault")]:
                answer = await client.ask({"command": "simulate_fault", **request})
                assert answer["command"] == "error" and error in answer["error"], answer
            assert d.simulation.adc.fault is None and d.simulation.gpio.fail is False
            assert (await client.ask({"command": "simulate_fault", "chip": "adc",
                                      "fault": "gone"}))["success"]
            assert d.simulation.adc.fault == "gone"
            assert (await client.ask({"command": "simulate_fault", "chip": "display",
                                      "fault": True}))["success"]
            assert d.simulation.gpio.fail is True
            assert (await client.ask({"command": "simulate_fault", "chip": "adc",
                                      "fault": None}))["success"]
            assert d.simulation.adc.fault is None
    finally:
        await d.stop()
