import json

import pytest

from plugd.core.model import Recipe, Relation, ThingId
from plugd.core.plug import NODE_NEWS_PER_MINUTE, Cause
from plugd.core.registry import Registry
from plugd.errors import HardwareError
from plugd.hardware.relay import Relay
from plugd.service.plug import Plug
from plugd.service.store import StateDir, dump

OWN = 4242
SENSOR = 777
PIN = 17
# 2026-11-24 13:05:09 local time is all the tests need: a fixed wall clock.
WALL = 1_795_000_000.0


class Clock:
    def __init__(self):
        self.mono = 1000.0

    def monotonic(self):
        return self.mono


def make_plug(state_dir, factory, *, power_on_state="last", active_high=True, clock=None):
    clock = clock or Clock()
    return Plug(node_id=OWN, node_name="TestPlug", state=StateDir(state_dir),
                open_relay=lambda on: Relay(PIN, active_high=active_high, initial=on, pin_factory=factory),
                registry=Registry(OWN, offline_after=15.0), power_on_state=power_on_state,
                wall=lambda: WALL, monotonic=clock.monotonic, save=StateDir(state_dir).write)


def pin_history(factory):
    """The levels the relay pin took; a mock pin starts as an input reading low (the first)."""
    pin = factory.pin(PIN)
    assert pin.function == "output"
    return [s.state for s in pin.states]


def heater_recipes():
    return [Recipe(1, "cold", SENSOR, 5, 0.0, Relation.SMALLER_THAN, ThingId.PLUG, 19.0, 1.0),
            Recipe(2, "warm", SENSOR, 5, 0.0, Relation.BIGGER_THAN, ThingId.PLUG, 21.0, 0.0)]


def test_first_start_has_the_esp_things_then_plugds_and_the_relay_off(tmp_path, factory):
    plug = make_plug(tmp_path, factory)
    assert [(t.id, t.name, t.value) for t in plug.things.values()] == [
        (1, "Plug", 0.0), (2, "Wats", 0.0), (3, "Daily Wats/Hour", 0.0), (4, "Clock", 0.0),
        (5, "Current A", 0.0), (6, "Total kWh", 0.0), (7, "Yesterday Wh", 0.0)]
    assert plug.invalid == {2, 3, 5, 6, 7}  # no meter reading yet
    assert pin_history(factory) == [False]


def test_switching_drives_the_pin_persists_and_tells_listeners(tmp_path, factory):
    plug = make_plug(tmp_path, factory)
    heard = []
    plug.listeners.append(heard.append)
    assert plug.set_thing(ThingId.PLUG, 1.0, Cause("user", "test"))
    assert not plug.set_thing(ThingId.PLUG, 1.0, Cause("user", "test"))  # no change, no event
    assert pin_history(factory) == [False, True]
    assert [(c.thing.id, c.thing.value, str(c.cause)) for c in heard if c.thing] == [
        (1, 1.0, "user test")]
    assert [c.event.message for c in heard if c.event] == ["relay on"]
    stored = json.loads((tmp_path / "things.json").read_text())
    assert stored[0]["value"] == 1.0 and stored[0]["last_updated"] > 0
    assert plug.events[-1].message == "relay on" and plug.events[-1].cause == "user test"


def test_active_low_relays_invert_the_pin(tmp_path, factory):
    plug = make_plug(tmp_path, factory, active_high=False)
    plug.set_thing(ThingId.PLUG, 1.0, Cause("user"))
    assert pin_history(factory) == [False, True, False]  # output high (off) at once, then low (on)


@pytest.mark.parametrize("policy, stored, expected", [
    ("last", 1.0, [False, True]), ("last", 0.0, [False]), ("on", 0.0, [False, True]),
    ("off", 1.0, [False])])
def test_power_on_state(tmp_path, factory, policy, stored, expected):
    before = make_plug(tmp_path, factory)
    before.set_thing(ThingId.PLUG, stored, Cause("user"))
    before.relay.close()
    factory.reset()
    after = make_plug(tmp_path, factory, power_on_state=policy)
    assert pin_history(factory) == expected
    assert after.things[ThingId.PLUG].value == float(expected[-1])  # no glitch: the pin starts in its state


def test_a_datagram_drives_a_recipe_that_switches_the_relay(tmp_path, factory):
    plug = make_plug(tmp_path, factory)
    plug.recipes.replace_all(heater_recipes())
    plug.receive(f"{SENSOR}:Kitchen&5:18.00".encode(), "127.0.0.5")
    assert plug.things[ThingId.PLUG].value == 1.0
    plug.receive(f"{SENSOR}:Kitchen&5:20.00".encode(), "127.0.0.5")
    plug.receive(f"{SENSOR}:Kitchen&5:22.00".encode(), "127.0.0.5")
    assert pin_history(factory) == [False, True, False]
    assert [e.cause for e in plug.events if e.kind == "relay"][1:] == [
        "recipe 1, If Kitchen value 5 is below 19 then switch on",
        "recipe 2, If Kitchen value 5 is above 21 then switch off"]


def test_a_persons_switch_holds_until_a_recipes_condition_next_becomes_true(tmp_path, factory):
    plug = make_plug(tmp_path, factory)
    plug.recipes.replace_all(heater_recipes())
    plug.receive(f"{SENSOR}:Kitchen&5:18.00".encode(), "127.0.0.5")
    plug.set_thing(ThingId.PLUG, 0.0, Cause("user", "test"))
    for _ in range(5):  # the node keeps saying it is cold: the person's off holds
        plug.receive(f"{SENSOR}:Kitchen&5:18.00".encode(), "127.0.0.5")
    assert pin_history(factory) == [False, True, False]
    plug.receive(f"{SENSOR}:Kitchen&5:22.00".encode(), "127.0.0.5")
    plug.receive(f"{SENSOR}:Kitchen&5:18.00".encode(), "127.0.0.5")
    assert pin_history(factory) == [False, True, False, True]


async def test_outcomes_are_kept_across_a_restart(tmp_path, factory):
    plug = make_plug(tmp_path, factory)
    await plug.store_recipes(heater_recipes())
    plug.receive(f"{SENSOR}:Kitchen&5:18.00".encode(), "127.0.0.5")
    plug.set_thing(ThingId.PLUG, 0.0, Cause("user", "test"))
    await plug.close()
    plug.relay.close()
    factory.reset()
    again = make_plug(tmp_path, factory)
    again.receive(f"{SENSOR}:Kitchen&5:18.00".encode(), "127.0.0.5")
    assert again.things[ThingId.PLUG].value == 0.0 and pin_history(factory) == [False]


async def test_a_saved_recipe_starts_unknown_and_fires_on_its_next_value(tmp_path, factory):
    plug = make_plug(tmp_path, factory)
    await plug.store_recipes(heater_recipes())
    plug.receive(f"{SENSOR}:Kitchen&5:18.00".encode(), "127.0.0.5")
    plug.set_thing(ThingId.PLUG, 0.0, Cause("user", "test"))
    edited = Recipe(1, "colder", SENSOR, 5, 0.0, Relation.SMALLER_THAN, ThingId.PLUG, 18.5, 1.0)
    await plug.store_recipes(plug.recipes.with_saved(edited, plug.things))
    plug.receive(f"{SENSOR}:Kitchen&5:18.00".encode(), "127.0.0.5")
    assert plug.things[ThingId.PLUG].value == 1.0


def test_override_keeps_recipes_off_and_switching_it_off_hands_back(tmp_path, factory):
    plug = make_plug(tmp_path, factory)
    plug.recipes.replace_all(heater_recipes())
    plug.set_override(ThingId.PLUG, True, Cause("user"))
    plug.receive(f"{SENSOR}:Kitchen&5:18.00".encode(), "a")
    assert plug.things[ThingId.PLUG].value == 0.0
    assert any("override" in e.message for e in plug.events if e.kind == "recipe")
    plug.set_override(ThingId.PLUG, False, Cause("user"))
    assert plug.things[ThingId.PLUG].value == 1.0  # handed back: the recipe whose condition holds


def test_a_recipe_from_an_offline_node_stops_firing(tmp_path, factory):
    clock = Clock()
    plug = make_plug(tmp_path, factory, clock=clock)
    plug.recipes.replace_all(heater_recipes())
    plug.receive(f"{SENSOR}:Kitchen&5:18.00".encode(), "a")
    clock.mono += 16.0
    plug.tick()
    assert not plug.registry.is_online(SENSOR)
    assert any(e.message.endswith("offline") for e in plug.events)
    plug.set_thing(ThingId.PLUG, 0.0, Cause("user"))
    plug.set_override(ThingId.PLUG, True, Cause("user"))
    plug.set_override(ThingId.PLUG, False, Cause("user"))  # nothing seen from it since: no action
    assert plug.things[ThingId.PLUG].value == 0.0


def test_recipes_that_switch_each_other_stop_at_a_bounded_depth(tmp_path, factory):
    plug = make_plug(tmp_path, factory)
    plug.recipes.replace_all([
        Recipe(1, "flip on", OWN, 1, 0.0, Relation.EQUALS, ThingId.PLUG, 0.0, 1.0),
        Recipe(2, "flip off", OWN, 1, 0.0, Relation.EQUALS, ThingId.PLUG, 1.0, 0.0)])
    plug.set_thing(ThingId.PLUG, 1.0, Cause("user"))
    assert any("loop" in e.message for e in plug.events)
    assert len(factory.pin(PIN).states) < 20


def test_own_packets_and_garbage_are_counted_not_registered(tmp_path, factory):
    plug = make_plug(tmp_path, factory)
    plug.receive(plug.datagram(), "127.0.0.1")
    plug.receive(b"\xff\x00garbage", "127.0.0.1")
    counters = plug.registry.counters
    assert (counters.received, counters.own, counters.invalid) == (2, 1, 1)
    assert plug.registry.peers == {}


def test_the_datagram_is_in_the_firmware_format_without_invalid_values(tmp_path, factory):
    plug = make_plug(tmp_path, factory)
    plug.set_thing(ThingId.PLUG, 1.0, Cause("user"))
    assert plug.datagram().decode().split("&")[1::2] == ["1:1.00"]  # 2 and 3 have no reading
    plug.set_thing(ThingId.POWER, 1523.75, Cause("sensor"))
    plug.set_thing(ThingId.ENERGY_TODAY, 0.0, Cause("sensor"))  # 0 is a reading: now valid
    text = plug.datagram().decode()
    head, plug_field, power, energy, clock = text.split("&")
    assert (head, plug_field, power, energy) == (f"{OWN}:TestPlug", "1:1.00", "2:1523.75", "3:0.00")
    hour = clock.split(":")[1]
    assert clock.startswith("4:") and " - " in clock and hour.isdigit() and len(hour) <= 2


def test_a_failing_relay_pin_changes_nothing_and_is_reported(tmp_path, factory):
    plug = make_plug(tmp_path, factory)

    def broken(on):
        raise HardwareError("cannot switch the relay on GPIO17: pin gone")
    plug.relay.set = broken
    with pytest.raises(HardwareError):
        plug.set_thing(ThingId.PLUG, 1.0, Cause("user"))
    assert plug.things[ThingId.PLUG].value == 0.0
    assert plug.events[-1].kind == "fault"


def test_corrupt_state_files_are_set_aside_and_the_plug_starts(tmp_path, factory):
    (tmp_path / "things.json").write_text('[{"id": 1, "name": "Plug"}]')
    (tmp_path / "recipes.json").write_text("[")
    (tmp_path / "nodes.json").write_bytes(b"\x00\x01")
    plug = make_plug(tmp_path, factory)
    assert len(plug.things) == 7 and len(plug.recipes) == 0
    assert len(list(tmp_path.glob("*.corrupt-*"))) == 3


def test_stored_things_keep_their_names_and_extra_things(tmp_path, factory):
    things = [{"id": 1, "name": "Fridge", "type": 1, "value": 1.0, "override": True, "last_updated": 5},
              {"id": 9, "name": "Lamp", "type": 1, "value": 1.0, "override": False, "last_updated": 5}]
    (tmp_path / "things.json").write_bytes(dump(things))
    plug = make_plug(tmp_path, factory)
    assert [(t.id, t.name) for t in plug.things.values()] == [
        (1, "Fridge"), (2, "Wats"), (3, "Daily Wats/Hour"), (4, "Clock"), (5, "Current A"),
        (6, "Total kWh"), (7, "Yesterday Wh"), (9, "Lamp")]
    assert plug.things[1].override and pin_history(factory) == [False, True]


async def test_a_flood_of_node_ids_is_told_in_a_summary_not_event_by_event(tmp_path, factory):
    clock = Clock()
    plug = make_plug(tmp_path, factory, clock=clock)
    for node_id in range(10_000, 10_200):  # 200 ids, each heard once: spoofed
        plug.receive(b"%d:Spoof&1:1.00" % node_id, "10.0.0.66")
    told = [e.message for e in plug.events if e.kind == "node"]
    assert len(told) == NODE_NEWS_PER_MINUTE and told[0] == "node Spoof (10000) online at 10.0.0.66"
    clock.mono += 61.0
    plug.tick()  # the minute is over: the rest in one event; and the 200 went offline meanwhile
    told = [e.message for e in plug.events if e.kind == "node"]
    summary = [m for m in told if m.startswith(f"{200 - NODE_NEWS_PER_MINUTE} more nodes came "
                                               "online or went offline")]
    assert len(summary) == 1  # a new minute: the summary, then offline events within budget
    assert len([m for m in told if m.endswith("offline")]) == NODE_NEWS_PER_MINUTE
    assert len(plug.registry.peers) == 200 and plug.registry.online_count() == 0
    await plug.close()
