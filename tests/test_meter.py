"""The meter in a running daemon: simulated mains -> ADS1115 emulator -> adafruit_ads1x15 ->
sampler -> maths -> things, display (decoded from its pins), protection and faults."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from conftest import Client
from websockets.asyncio.client import connect

from plugd.core.model import ThingId
from plugd.core.wire import decode
from plugd.service.daemon import Daemon
from tests.support import until


@pytest.fixture
async def plug(make_daemon) -> AsyncIterator[Daemon]:
    d = await make_daemon()
    yield d
    await d.stop()


def power(d: Daemon) -> float | None:
    return None if ThingId.POWER in d.plug.invalid else d.plug.things[ThingId.POWER].value


async def readings(d: Daemon, count: int, timeout: float = 30.0) -> list[float]:
    """The next `count` power readings the meter makes (not the zero a switch-off sets)."""
    seen: asyncio.Queue[float] = asyncio.Queue()

    def listen(change) -> None:
        if (change.thing is not None and change.thing.id == ThingId.POWER
                and change.cause.kind == "sensor" and not change.cause.detail):
            seen.put_nowait(change.thing.value)
    d.plug.listeners.append(listen)
    try:
        return [await asyncio.wait_for(seen.get(), timeout) for _ in range(count)]
    finally:
        d.plug.listeners.remove(listen)


async def ask(d: Daemon, request: dict) -> dict:
    async with connect(f"ws://127.0.0.1:{d.web.port}/ws") as ws:
        client = Client(ws)
        await client.ask({"command": "login", "token": d.auth.cli_token})
        return await client.ask(request)


async def test_the_plug_reads_its_load_only_while_the_relay_is_on(plug, factory):
    await until(lambda: power(plug) == 0.0, "a first reading with the relay off")
    await until(lambda: plug.simulation.display.text == "   0", "the display to show 0 W")
    first = asyncio.create_task(readings(plug, 1))
    await ask(plug, {"command": "switch", "state": "on"})
    # the meter starts a new window at the switch: its first reading is of the load alone
    assert (await first)[0] == pytest.approx(1000, rel=0.02)
    assert plug.plug.things[ThingId.CURRENT].value == pytest.approx(1000 / 230, rel=0.02)
    await until(lambda: plug.simulation.display.text == f"{round(power(plug)):4d}", "the display")
    assert plug.simulation.display.brightness == 7 and plug.simulation.display.on
    await ask(plug, {"command": "switch", "state": "off"})
    # no current can flow through an open relay: 0 at once, before any reading
    assert power(plug) == 0.0 and plug.plug.things[ThingId.CURRENT].value == 0.0


async def test_the_simulated_load_follows_the_page(plug):
    await ask(plug, {"command": "switch", "state": "on"})
    answer = await ask(plug, {"command": "simulate_load", "watts": 1500})
    assert answer["success"]
    await until(lambda: (power(plug) or 0) > 1490, "1500 W")
    assert (await readings(plug, 1))[0] == pytest.approx(1500, rel=0.01)
    refused = await ask(plug, {"command": "simulate_load", "watts": -5})
    assert refused["command"] == "error" and "message.watts" in refused["error"]


async def test_calibration_scales_the_reading_and_is_kept(plug):
    await until(lambda: power(plug) == 0.0, "a first reading")
    zero = await ask(plug, {"command": "calibrate", "what": "zero"})
    assert zero["calibration"]["zero_volts"] == pytest.approx(2.5 * 2 / 3, abs=0.002)
    refused = await ask(plug, {"command": "calibrate", "what": "power", "value": 1100})
    assert refused["command"] == "error" and "switch the relay on" in refused["error"]
    await ask(plug, {"command": "switch", "state": "on"})
    await until(lambda: (power(plug) or 0) > 990, "the load")
    await readings(plug, 1)  # a window wholly after the switch, for the calibration to use
    answer = await ask(plug, {"command": "calibrate", "what": "power", "value": 1100})
    assert answer["calibration"]["current_gain"] == pytest.approx(1.1, rel=0.01)
    await until(lambda: (power(plug) or 0) > 1090, "the calibrated reading")
    stored = json.loads((plug.plug.state.path / "calibration.json").read_text())
    assert stored["current_gain"] == pytest.approx(1.1, rel=0.01)
    nonsense = await ask(plug, {"command": "calibrate", "what": "power", "value": 5000})
    assert nonsense["command"] == "error" and "gain" in nonsense["error"]
    await ask(plug, {"command": "calibrate", "what": "reset"})
    assert json.loads((plug.plug.state.path / "calibration.json").read_text())["current_gain"] == 1.0


async def test_overload_trips_the_relay_and_holds_it_off_against_recipes(make_daemon, factory):
    d = await make_daemon(**{"protection.max_power": 1200.0, "protection.hold": 0.0})
    try:
        await ask(d, {"command": "save_recipe", "recipe": {
            "name": "on when warm", "sourceNodeId": 777, "sourceThingId": 5, "relation": 2,
            "targetValue": 10, "localThingId": 1, "localValue": 1}})
        d.simulation.mains.load_watts = 2000
        await ask(d, {"command": "switch", "state": "on"})
        await until(lambda: d.plug.tripped, "the protection to trip")
        assert d.plug.things[ThingId.PLUG].value == 0.0 and factory.pin(17).state is False
        assert "above max_power 1200 W" in d.plug.tripped
        # "OL": on seven segments an O is a 0, and the decoder reads it so
        await until(lambda: d.simulation.display.text == " 0L ", "OL on the display")
        relay_events = [e for e in d.plug.events if e.kind == "relay"]
        assert relay_events[-1].cause.startswith("protection")
        d.plug.receive(b"777:Sensor&5:20.00", "127.0.0.1")  # the recipe matches ...
        assert d.plug.things[ThingId.PLUG].value == 0.0  # ... but may not switch it on
        d.simulation.mains.load_watts = 500
        answer = await ask(d, {"command": "switch", "state": "on"})  # a user clears the trip
        assert answer["relay"] is True and d.plug.tripped is None
        assert len(await readings(d, 3)) == 3  # 500 W for three readings: no new trip
        assert d.plug.things[ThingId.PLUG].value == 1.0 and d.plug.tripped is None
    finally:
        await d.stop()


async def test_a_failing_sensor_marks_values_invalid_never_zero_and_recovers(plug):
    await ask(plug, {"command": "switch", "state": "on"})
    await until(lambda: (power(plug) or 0) > 900, "the load")
    plug.simulation.adc.fault = "nack"
    await until(lambda: power(plug) is None, "power to be invalid")
    things = {t["id"]: t for t in (await ask(plug, {"command": "request_things"}))["things"]}
    assert things[2]["valid"] is False and things[5]["valid"] is False
    assert things[3]["valid"] is True  # energy counted so far is still true
    assert b"&2:" not in plug.plug.datagram() and b"&5:" not in plug.plug.datagram()
    await until(lambda: plug.simulation.display.text.strip() == "Err", "Err on the display")
    faults = [e.message for e in plug.plug.events if e.kind == "fault"]
    assert len(faults) == 1 and "current sensor failed" in faults[0]
    assert plug.plug.things[ThingId.PLUG].value == 1.0  # the relay is still controllable
    assert (await ask(plug, {"command": "switch", "state": "off"}))["relay"] is False
    plug.simulation.adc.fault = None
    await until(lambda: power(plug) == 0.0, "the sensor to come back", timeout=20)
    assert [e.message for e in plug.plug.events if e.kind == "fault"][-1] == "current sensor back"


async def test_energy_is_counted_and_kept_across_a_restart(make_daemon):
    d = await make_daemon(**{"simulate.load_watts": 3600.0})
    await ask(d, {"command": "switch", "state": "on"})
    await until(lambda: d.plug.things[ThingId.ENERGY_TODAY].value > 1.5, "some energy")
    await d.stop()
    kept = json.loads((d.plug.state.path / "energy.json").read_text())
    assert kept["today_wh"] > 1.5
    again = await make_daemon()
    try:
        assert again.plug.things[ThingId.ENERGY_TODAY].value == pytest.approx(kept["today_wh"], abs=0.01)
        assert ThingId.ENERGY_TODAY not in again.plug.invalid
        packet = decode(again.plug.datagram())
        assert any(f.thing_id == 3 and f.value > 1.5 for f in packet.fields)
    finally:
        await again.stop()
