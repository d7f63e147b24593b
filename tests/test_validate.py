"""One validator per kind of input: every recipe `save_recipe` refuses, an import refuses too,
naming the same field, and nothing stored changes; the files read at start go through it."""

import json
import subprocess
import sys

import pytest

from plugd.core import validate
from plugd.core.metering import Calibration
from plugd.core.model import ThingId, ThingType, default_things
from plugd.core.recipes import MAX_RECIPES
from plugd.doors.api import Api
from plugd.errors import ValidationError
from plugd.service.config import parse
from plugd.service.daemon import Daemon
from tests.support import free_port, until

RECIPE = {"id": 1, "name": "heat", "sourceNodeId": 777, "sourceThingId": 5, "relation": 3,
          "targetValue": 19, "localThingId": 1, "localValue": 1}
THINGS = {t.id: t for t in default_things()}

#: (what is changed in a valid recipe, the field named ("" for the recipe itself), words of the
#: problem): every way `save_recipe` refuses a recipe.
REFUSED = [
    ({"relation": 7}, "relation", "must be between 0 and 5"),
    ({"relation": -1}, "relation", "must be between 0 and 5"),
    ({"relation": "below"}, "relation", "expected an integer"),
    ({"localThingId": 42}, "localThingId", "there is no local thing 42"),
    ({"localThingId": 1.5}, "localThingId", "expected an integer"),
    ({"localThingId": ThingId.POWER}, "localThingId", "is measured"),
    ({"localThingId": ThingId.CLOCK}, "localThingId", "is measured"),
    ({"localValue": 0.5}, "localValue", "is a switch: 0 or 1, got 0.5"),
    ({"localValue": 3}, "localValue", "is a switch"),
    ({"localValue": None}, "localValue", "expected a number"),
    ({"localValue": float("nan")}, "localValue", "finite"),
    ({"targetValue": "warm"}, "targetValue", "expected a number"),
    ({"targetValue": float("inf")}, "targetValue", "finite"),
    ({"targetValue": float("nan")}, "targetValue", "finite"),
    ({"targetValue": True}, "targetValue", "expected a number"),
    ({"sourceValue": float("-inf")}, "sourceValue", "finite"),
    ({"sourceNodeId": 0}, "sourceNodeId", "must be between"),
    ({"sourceNodeId": 2**31}, "sourceNodeId", "must be between"),
    ({"sourceThingId": 1.5}, "sourceThingId", "expected an integer"),
    ({"id": -1}, "id", "must be between"),
    ({"id": "one"}, "id", "expected an integer"),
    ({"last_updated": "today"}, "last_updated", "expected an integer"),
    ({"name": "x&y"}, "name", "must not contain '&'"),
    ({"name": ""}, "name", "must not be empty"),
    ({"name": "n" * 33}, "name", "at most 32"),
    ({"name": "a\nb"}, "name", "control characters"),
    ({"name": None}, "name", "expected a string"),
]
MISSING = ["name", "sourceNodeId", "sourceThingId", "relation", "localThingId", "targetValue",
           "localValue"]


def cases():
    """(a recipe `save_recipe` refuses, the field its error names, words of the problem)."""
    for change, field, words in REFUSED:
        yield {**RECIPE, **change}, field, words
    for key in MISSING:
        yield {k: v for k, v in RECIPE.items() if k != key}, key, "is missing"
    yield [RECIPE], "", "expected an object, got a list"


def named(where, field):
    return f"{where}.{field}: " if field else f"{where}: "


@pytest.mark.parametrize("obj, field, words", list(cases()))
def test_the_recipe_validator_names_the_field(obj, field, words):
    with pytest.raises(ValidationError, match=words) as err:
        validate.recipe(json.loads(json.dumps(obj)), THINGS, "recipe")
    assert str(err.value).startswith(named("recipe", field))


def test_lists_refuse_duplicates_and_length():
    with pytest.raises(ValidationError, match=r"recipes\[1\].id: recipe id 1 is used twice"):
        validate.recipes([RECIPE, RECIPE], THINGS)
    with pytest.raises(ValidationError, match=f"at most {MAX_RECIPES}"):
        validate.recipes([{**RECIPE, "id": i} for i in range(1, MAX_RECIPES + 2)], THINGS)
    with pytest.raises(ValidationError, match=r"things\[0\]\.value: thing 1 \(Plug\) is a switch"):
        validate.things([{**THINGS[1].to_json(), "value": 0.5}])
    assert len(validate.recipes([{**RECIPE, "id": i} for i in range(1, MAX_RECIPES + 1)],
                                THINGS)) == MAX_RECIPES


@pytest.mark.parametrize("obj, error", [
    ({"value": 1}, "thing.id: is missing"),
    ({"id": 0}, "thing.id: must be between"),
    ({"id": 99}, "thing.id: there is no local thing 99"),
    ({"id": 1, "type": ThingType.GENERIC}, "thing.type: thing 1 (Plug) is a SWITCH"),
    ({"id": 1, "override": "yes"}, "thing.override: expected true or false"),
    ({"id": 1, "value": 0.5}, "thing.value: thing 1 (Plug) is a switch: 0 or 1, got 0.5"),
    ({"id": 1, "value": float("inf")}, "thing.value: must be a finite number"),
    ({"id": ThingId.POWER, "value": 5}, "thing.value: thing 2 (Wats) is measured"),
    ("1", "thing: expected an object"),
])
def test_a_thing_update_names_the_field(obj, error):
    with pytest.raises(ValidationError) as err:
        validate.thing_update(obj, THINGS, "thing")
    assert str(err.value).startswith(error), err.value


def test_a_thing_update_reads_what_it_is_given():
    assert validate.thing_update({"id": 1, "value": 1}, THINGS) == validate.ThingUpdate(THINGS[1], 1.0)
    assert validate.thing_update({"id": 1, "override": 1}, THINGS).override is True
    # a page sends the whole thing back: its unchanged measured value is no attempt to set it
    power = THINGS[ThingId.POWER].to_json()
    assert validate.thing_update(power, THINGS).value == power["value"]
    # an import's things carry the values their plug saw: only the override flag is read
    seen = {**power, "value": 1234, "override": True}
    assert validate.thing_override(seen, THINGS) == validate.ThingUpdate(THINGS[ThingId.POWER],
                                                                         override=True)


def test_a_calibration_names_its_field_where_it_sits():
    good = Calibration(current_gain=1.5).to_json()
    assert validate.calibration(good, "config.calibration") == Calibration(current_gain=1.5)
    with pytest.raises(ValidationError, match=r"^config\.calibration\.voltage: must be between"):
        validate.calibration({**good, "voltage": 5}, "config.calibration")
    with pytest.raises(ValidationError, match=r"^config\.calibration\.power_factor: is missing"):
        validate.calibration({"current_gain": 1, "voltage": 230}, "config.calibration")
    with pytest.raises(ValidationError, match=r"^config\.calibration: expected an object"):
        validate.calibration([], "config.calibration")


def state_files(daemon):
    return {p.name: p.read_bytes() for p in daemon.plug.state.path.iterdir() if p.suffix == ".json"
            and p.name not in ("auth.json", "nodes.json", "energy.json")}


async def stored_state(daemon):
    await daemon.plug.writer.flush()
    return state_files(daemon)


async def test_every_recipe_save_refuses_an_import_refuses_and_nothing_changes(client, daemon):
    assert (await client.ask({"command": "save_recipe", "recipe": {**RECIPE, "id": 9}}))["success"]
    await until(lambda: daemon.meter.last, "a first reading, for a calibration")
    assert (await client.ask({"command": "calibrate", "what": "voltage", "value": 231}))["success"]
    assert (await client.ask({"command": "save_settings", "settings": {"display.brightness": 3}}))[
        "success"]
    assert (await client.ask({"command": "switch", "state": "off"}))["success"]
    exported = (await client.ask({"command": "export_config"}))["config"]
    before = await stored_state(daemon)
    assert {"recipes.json", "things.json", "calibration.json", "settings.json"} <= set(before)
    refused = 0
    for obj, field, words in [*cases(), ({**RECIPE, "id": 9}, "id", "used twice")]:
        saved = await client.ask({"command": "save_recipe", "recipe": obj})
        if field != "id" or words != "used twice":  # a save of an existing id replaces it
            assert saved["command"] == "error" and named("recipe", field) in saved["error"], saved
            assert words in saved["error"]
        config = {**exported, "recipes": [*exported["recipes"], obj],
                  "things": [{"id": 1, "override": True}], "settings": {"mesh.interval": 7},
                  "calibration": {**exported["calibration"], "voltage": 120}}
        imported = await client.ask({"command": "import_config", "config": config})
        assert imported["command"] == "error", (obj, imported)
        assert named("config.recipes[1]", field) in imported["error"], imported
        assert words in imported["error"]
        assert await stored_state(daemon) == before, obj
        assert not daemon.plug.things[ThingId.PLUG].override and daemon.config.mesh.interval != 7
        assert daemon.meter.calibration.voltage == 231
        refused += 1
    assert refused == len(REFUSED) + len(MISSING) + 2


async def test_too_many_recipes_are_refused_by_a_save_and_by_an_import(client, daemon):
    full = [{**RECIPE, "id": i, "name": f"r{i}"} for i in range(1, MAX_RECIPES + 1)]
    exported = (await client.ask({"command": "export_config"}))["config"]
    assert (await client.ask({"command": "import_config", "config": {**exported, "recipes": full}}))[
        "success"]
    before = await stored_state(daemon)
    saved = await client.ask({"command": "save_recipe", "recipe": {**RECIPE, "id": 0}})  # a new one
    assert saved["command"] == "error" and f"already {MAX_RECIPES} recipes" in saved["error"]
    more = [*full, {**RECIPE, "id": MAX_RECIPES + 1}]
    imported = await client.ask({"command": "import_config", "config": {**exported, "recipes": more}})
    assert imported["command"] == "error"
    assert imported["error"].startswith(f"config.recipes: at most {MAX_RECIPES} recipes")
    assert await stored_state(daemon) == before and len(daemon.plug.recipes) == MAX_RECIPES


async def test_a_stored_recipe_that_breaks_a_rule_is_set_aside_at_start(tmp_path, make_daemon):
    state = tmp_path / "state"
    state.mkdir()
    (state / "recipes.json").write_text(json.dumps([{**RECIPE, "localValue": 0.5}]))
    d = await make_daemon()
    try:
        assert len(d.plug.recipes) == 0
        assert list(state.glob("recipes.json.corrupt-*"))
    finally:
        await d.stop()


def test_production_code_never_loads_the_simulation():
    code = ("import sys, plugd.cli, plugd.ctl, plugd.service.daemon, plugd.doors.api, plugd.doors.web\n"
            "print([m for m in sys.modules if m.startswith(('plugd.hardware.sim', "
            "'plugd.doors.api.simulation'))])")
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "[]"


async def test_simulation_commands_exist_only_under_simulate(tmp_path, factory, client):
    assert (await client.ask({"command": "simulate_load", "watts": 100}))["success"]
    real = Daemon(parse("", {"state.dir": str(tmp_path / "real"), "http.port": 0,
                             "http.bind": "127.0.0.1", "mesh.udp_port": free_port(),
                             "mesh.broadcast": ["127.255.255.255"], "node.id": 77,
                             "mdns.enabled": False, "adc.enabled": False,
                             "display.enabled": False, "relay.pin": 5}), pin_factory=factory)
    await real.start()
    try:
        assert real.simulation is None
        answer = await Api(real, "test", trusted=True).handle('{"command": "simulate_load", "watts": 1}')
        assert answer["command"] == "response_default"  # as any command this plug does not know
    finally:
        await real.stop()
