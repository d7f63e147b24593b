"""The plug core on its own: inputs with the time in, decisions out; no daemon, no clock."""

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from plugd.core.labels import Label
from plugd.core.model import ON, Recipe, Relation, ThingId, default_things
from plugd.core.plug import Cause, Drive, Now, PlugCore
from plugd.core.recipes import RecipeBook
from plugd.core.registry import Registry

OWN = 4242
SENSOR = 777
T0 = Now(1_795_000_000.0, 1000.0)
USER = Cause("user", "127.0.0.1")


def heater():
    return [Recipe(1, "cold", SENSOR, 5, 0.0, Relation.SMALLER_THAN, ThingId.PLUG, 19.0, 1.0),
            Recipe(2, "warm", SENSOR, 5, 0.0, Relation.BIGGER_THAN, ThingId.PLUG, 21.0, 0.0)]


def make_core(recipes=(), *, relay_on=False, outcomes=None):
    return PlugCore(node_id=OWN, node_name="Plug", things=default_things(),
                    recipes=RecipeBook(recipes, outcomes), registry=Registry(OWN), relay_on=relay_on)


class Pin:
    """Runs a core's outputs as the service does: each drive reported back, switched or refused."""

    def __init__(self, core, broken=False):
        self.core, self.broken, self.levels = core, broken, []

    def run(self, out, now=T0):
        index = 0
        while index < len(out.drives):
            drive = out.drives[index]
            index += 1
            if self.broken:
                out.merge(self.core.relay_refused(drive, "pin gone", now))
            else:
                self.levels.append(drive.on)
                out.merge(self.core.relay_switched(drive, now))
        return out


def datagram(value):
    return f"{SENSOR}:Kitchen&5:{value:.2f}".encode()


def relay(core):
    return core.things[ThingId.PLUG].value == ON


def test_the_relay_waits_for_its_pin_before_it_changes():
    core = make_core()
    out = core.set_thing(ThingId.PLUG, 1.0, USER, T0)
    assert out.drives == [Drive(True, USER, 0)] and not relay(core) and out.changes == []
    follow = core.relay_switched(out.drives[0], T0)
    assert relay(core) and follow.changed and "things" in follow.persist and follow.broadcast
    assert [c.event.message for c in follow.changes if c.event] == ["relay on"]


def test_a_refused_pin_leaves_the_relay_and_tells_the_fault_once():
    core = make_core()
    pin = Pin(core, broken=True)
    first = pin.run(core.set_thing(ThingId.PLUG, 1.0, USER, T0))
    again = pin.run(core.set_thing(ThingId.PLUG, 1.0, USER, T0))
    assert not relay(core) and first.refusal == "pin gone"
    assert [c.event.kind for c in first.changes if c.event] == ["fault"]
    assert [c.event for c in again.changes if c.event] == []
    pin.broken = False
    back = pin.run(core.set_thing(ThingId.PLUG, 1.0, USER, T0))
    assert [c.event.message for c in back.changes if c.event] == ["the relay switches again", "relay on"]


def test_a_persons_switch_holds_while_the_recipes_condition_stays_true():
    core = make_core(heater())
    pin = Pin(core)
    pin.run(core.receive(datagram(18), "10.0.0.5", T0))
    assert relay(core)
    pin.run(core.set_thing(ThingId.PLUG, 0.0, USER, T0))
    for value in (18, 17.5, 18.5, 18):  # still cold: the person's off holds
        pin.run(core.receive(datagram(value), "10.0.0.5", T0))
        assert not relay(core)
    pin.run(core.receive(datagram(22), "10.0.0.5", T0))
    pin.run(core.receive(datagram(18), "10.0.0.5", T0))  # cold again: a new edge
    assert relay(core) and pin.levels == [True, False, True]


def test_events_name_the_recipe_and_its_condition():
    core = make_core(heater())
    core.registry.max_nodes = 8
    out = Pin(core).run(core.receive(datagram(18), "10.0.0.5", T0))
    relay_events = [c.event for c in out.changes if c.event and c.event.kind == "relay"]
    sentence = "If Kitchen value 5 is below 19 then switch on"
    assert [(e.message, e.cause) for e in relay_events] == [
        (f"Recipe “{sentence}” switched the plug on", f"recipe 1, {sentence}")]


def test_events_name_a_recipe_by_the_labels_people_gave_its_values():
    core = make_core(heater())
    core.labels = {(SENSOR, 5): Label("Temperature", "°C", "temperature")}
    Pin(core).run(core.receive(datagram(18), "10.0.0.5", T0))
    out = Pin(core).run(core.receive(datagram(22), "10.0.0.5", T0))
    [event] = [c.event for c in out.changes if c.event and c.event.kind == "relay"]
    assert event.message == ("Recipe “If Kitchen Temperature is above 21 °C then switch off” "
                             "switched the plug off")


def test_a_trip_holds_against_recipes_and_a_person_lifts_it():
    core = make_core(heater(), relay_on=True)
    pin = Pin(core)
    pin.run(core.trip("power 3100 W above max_power 3000 W for 2.0 s", T0))
    assert not relay(core) and core.tripped
    out = pin.run(core.receive(datagram(18), "10.0.0.5", T0))
    assert not relay(core) and "protection holds the relay off" in out.refusal
    assert any("stays off" in c.event.message for c in out.changes if c.event)
    pin.run(core.set_thing(ThingId.PLUG, 1.0, USER, T0))
    assert relay(core) and core.tripped is None


def test_override_pins_against_recipes_and_handing_back_applies_the_last_that_holds():
    recipes = [*heater(), Recipe(3, "also cold", SENSOR, 5, 0.0, Relation.SMALLER_THAN,
                                 ThingId.PLUG, 20.0, 0.0)]
    core = make_core(recipes, relay_on=True)
    pin = Pin(core)
    pin.run(core.set_override(ThingId.PLUG, True, USER, T0))
    pin.run(core.receive(datagram(18), "10.0.0.5", T0))
    assert relay(core)  # recipe 3 (last) says off, but the thing is pinned
    pin.run(core.set_override(ThingId.PLUG, False, USER, T0))
    assert not relay(core)  # handed back: recipes 1 and 3 hold now, 3 is last


def test_switching_off_sets_power_and_current_to_zero_at_once():
    core = make_core(relay_on=True)
    pin = Pin(core)
    for thing_id, value in ((ThingId.POWER, 1500.0), (ThingId.CURRENT, 6.5)):
        pin.run(core.set_thing(thing_id, value, Cause("sensor"), T0))
    out = pin.run(core.set_thing(ThingId.PLUG, 0.0, USER, T0))
    assert core.things[ThingId.POWER].value == 0.0 and core.things[ThingId.CURRENT].value == 0.0
    assert {c.thing.id for c in out.changes if c.thing} == {ThingId.PLUG, ThingId.POWER, ThingId.CURRENT}


def test_measured_things_take_only_measurements():
    core = make_core()
    import pytest

    from plugd.errors import ValidationError
    with pytest.raises(ValidationError, match=r"thing 2 .* is measured"):
        core.set_thing(ThingId.POWER, 5.0, USER, T0)
    with pytest.raises(ValidationError, match="not measured"):
        core.set_thing(ThingId.PLUG, 1.0, Cause("sensor"), T0)


def test_a_restart_fires_nothing_that_did_not_change():
    core = make_core(heater())
    pin = Pin(core)
    pin.run(core.receive(datagram(18), "10.0.0.5", T0))
    pin.run(core.set_thing(ThingId.PLUG, 0.0, USER, T0))
    stored = core.recipes.outcomes_json()
    again = make_core(heater(), outcomes={int(k): v for k, v in stored.items()})
    pin = Pin(again)
    pin.run(again.receive(datagram(18), "10.0.0.5", T0))
    assert not relay(again) and pin.levels == []


# --- the rules against a model, for any sequence of inputs ------------------------------

inputs = st.lists(st.one_of(
    st.tuples(st.just("value"), st.sampled_from([17.0, 18.0, 20.0, 22.0, 23.0])),
    st.tuples(st.just("user"), st.booleans()),
    st.tuples(st.just("override"), st.booleans()),
    st.tuples(st.just("trip"), st.just(True)),
), max_size=40)


@given(inputs)
def test_any_sequence_follows_the_authority_table(steps):
    core = make_core(heater())
    pin = Pin(core)
    on, override, tripped, outcome = False, False, False, {1: None, 2: None}
    for kind, arg in steps:
        if kind == "value":
            pin.run(core.receive(datagram(arg), "10.0.0.5", T0))
            fired = {}
            for rid, holds, value in ((1, arg < 19, True), (2, arg > 21, False)):
                if holds and outcome[rid] is not True:
                    fired["plug"] = value
                outcome[rid] = holds
            if "plug" in fired and not override and not (tripped and fired["plug"]):
                on = fired["plug"]
        elif kind == "user":
            pin.run(core.set_thing(ThingId.PLUG, ON if arg else 0.0, USER, T0))
            if arg:
                tripped = False
            on = arg
        elif kind == "override":
            pin.run(core.set_override(ThingId.PLUG, arg, USER, T0))
            if override and not arg:  # handed back: the last recipe whose condition holds
                holding = [v for rid, v in ((1, True), (2, False)) if outcome[rid]]
                if holding and not (tripped and holding[-1]):
                    on = holding[-1]
            override = arg
        else:
            pin.run(core.trip("overload", T0))
            tripped, on = True, False
        assert relay(core) == on, (kind, arg)
        assert (core.tripped is not None) == tripped
        assert replace(core.things[ThingId.PLUG]).override == override
