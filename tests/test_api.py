"""The WebSocket API, spoken over a real connection to a daemon on simulated pins."""

import json

import pytest
from conftest import NODE_ID
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError

from plugd.core.model import ThingId
from plugd.errors import StoreError
from tests.support import send_udp, until

RECIPE = {"name": "heat", "sourceNodeId": 777, "sourceThingId": 5, "relation": 3,
          "targetValue": 19, "localThingId": 1, "localValue": 1}


async def stored(daemon, name):
    await daemon.plug.writer.flush()
    return json.loads((daemon.plug.state.path / name).read_text())


async def test_every_answer_names_its_command_and_this_node(client):
    for request, answer in [("request_nodes", "response_nodes"), ("request_things", "response_things"),
                            ("request_recipes", "response_recipes"), ("no_such_thing", "response_default"),
                            ("request_status", "response_status"), ("request_events", "response_events")]:
        message = await client.ask({"command": request})
        assert message["command"] == answer
        assert (message["nodeId"], message["nodeName"]) == (NODE_ID, "TestPlug")


async def test_things_come_in_the_firmware_shape(client):
    things = (await client.ask({"command": "request_things"}))["things"]
    assert [t["id"] for t in things] == [1, 2, 3, 4, 5, 6, 7]
    assert set(things[0]) == {"id", "name", "type", "value", "override", "last_updated", "valid",
                              "label", "unit", "kind", "origin"}
    # The wire names stay (ESP pages read them); people read the names and units beside them.
    assert [(t["name"], t["label"], t["unit"]) for t in things[1:3]] == [
        ("Wats", "Power", "W"), ("Daily Wats/Hour", "Energy today", "Wh")]


async def test_nodes_carry_both_key_pairs_for_both_kinds_of_page(client, daemon):
    send_udp(daemon.config.mesh.udp_port, b"777:Kitchen&5:18.50")
    message = await client.next_push("node_update")
    assert message["node"]["id"] == 777
    nodes = (await client.ask({"command": "request_nodes"}))["nodes"]
    own, peer = nodes
    assert (own["id"], own["nodeId"], own["name"], own["nodeName"]) == (NODE_ID, NODE_ID, "TestPlug",
                                                                      "TestPlug")
    assert (peer["id"], peer["nodeId"], peer["name"], peer["nodeName"]) == (777, 777, "Kitchen", "Kitchen")
    assert peer["online"] and peer["things"][0]["value"] == 18.5


async def test_a_burst_of_datagrams_becomes_a_few_node_pushes_with_the_latest_values(client, daemon):
    port = daemon.config.mesh.udp_port
    for value in range(1, 201):
        send_udp(port, b"777:Kitchen&5:%d.00" % value)
    await until(lambda: daemon.registry.counters.received >= 200, "the 200 datagrams taken in")
    pushes = []
    while not pushes or pushes[-1]["node"]["things"][0]["value"] != 200.0:
        pushes.append(await client.next_push("node_update"))
    # One push at once, then at most one per half second: not 200 messages to every page.
    assert len(pushes) <= 4, [p["node"]["things"][0]["value"] for p in pushes]


async def test_save_thing_switches_the_relay_and_answers_success(client, daemon, factory):
    answer = await client.ask({"command": "save_thing", "thing": {"id": 1, "type": 1, "value": 1,
                                                                   "override": True}})
    assert answer["command"] == "response_save_thing" and answer["success"] is True
    assert factory.pin(17).state is True
    assert (await stored(daemon, "things.json"))[0]["override"] is True


async def test_save_thing_accepts_the_thing_as_a_json_string(client, factory):
    thing = json.dumps({"id": 1, "value": 1})
    assert (await client.ask({"command": "save_thing", "thing": thing}))["success"]
    assert factory.pin(17).state is True


async def test_a_change_is_pushed_to_every_client(client, daemon):
    async with connect(f"ws://127.0.0.1:{daemon.web.port}/ws") as other:
        await client.ask({"command": "switch", "state": "on"})
        while True:
            message = json.loads(await other.recv())
            if message["command"] == "thing_update" and message["thingId"] == 1:
                break
    assert message["value"] == 1.0 and message["thingName"] == "Plug"
    assert message["nodeId"] == NODE_ID and message["lastUpdate"] > 0


@pytest.mark.parametrize("request_text, error", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "message: expected an object"),
    ('{"cmd": 1}', "command: is missing"),
    ('{"command": 5}', "command: expected a string"),
    ('{"command": "save_thing"}', "thing: is missing"),
    ('{"command": "save_thing", "thing": "{oops"}', "thing: is a string that is not valid JSON"),
    ('{"command": "save_thing", "thing": {"value": 1}}', "thing.id: is missing"),
    ('{"command": "save_thing", "thing": {"id": 99, "value": 1}}', "thing.id: there is no local thing 99"),
    ('{"command": "save_thing", "thing": {"id": 1, "value": "on"}}', "thing.value: expected a number"),
    ('{"command": "save_thing", "thing": {"id": 1, "value": 2}}', "thing.value: thing 1 (Plug) is a switch"),
    ('{"command": "save_thing", "thing": {"id": 1, "type": 6}}', "thing.type: thing 1 (Plug) is a SWITCH"),
    ('{"command": "save_thing", "thing": {"id": 2, "value": 100}}',
     "thing.value: thing 2 (Wats) is measured"),
    ('{"command": "save_thing", "thing": {"id": 1, "override": "yes"}}',
     "thing.override: expected true or false"),
    ('{"command": "switch", "state": "up"}', 'state: expected "on", "off" or "toggle"'),
    ('{"command": "delete_recipe", "id": 5}', "id: there is no recipe 5"),
    ('{"command": "move_recipe", "id": 5, "index": 0}', "id: there is no recipe 5"),
])
async def test_bad_requests_get_an_error_naming_the_field_and_change_nothing(client, daemon, request_text,
                                                                           error):
    exists = (daemon.plug.state.path / "things.json").exists()
    things_before = await stored(daemon, "things.json") if exists else None
    answer = await client.ask(request_text)
    assert answer["command"] == "error" and error in answer["error"], answer
    assert (answer["nodeId"], answer["nodeName"]) == (NODE_ID, "TestPlug")
    assert daemon.plug.things[ThingId.PLUG].value == 0.0
    assert not daemon.plug.things[ThingId.PLUG].override
    assert (await stored(daemon, "things.json") if things_before is not None else None) == things_before
    # the connection stays usable
    assert (await client.ask({"command": "request_things"}))["command"] == "response_things"


@pytest.mark.parametrize("change, error", [
    ({"relation": 7}, "recipe.relation: must be between 0 and 5"),
    ({"localThingId": 42}, "recipe.localThingId: there is no local thing 42"),
    ({"localThingId": 2}, "recipe.localThingId: thing 2 (Wats) is measured"),
    ({"localValue": 3}, "recipe.localValue: thing 1 (Plug) is a switch"),
    ({"targetValue": "warm"}, "recipe.targetValue: expected a number"),
    ({"name": "x&y"}, "recipe.name: must not contain '&'"),
])
async def test_a_refused_recipe_leaves_the_stored_ones_unchanged(client, daemon, change, error):
    assert (await client.ask({"command": "save_recipe", "recipe": RECIPE}))["success"]
    before = await stored(daemon, "recipes.json")
    answer = await client.ask({"command": "save_recipe", "recipe": {**RECIPE, "id": 1, **change}})
    assert answer["command"] == "error" and error in answer["error"], answer
    assert await stored(daemon, "recipes.json") == before
    assert [r.to_json() for r in daemon.plug.recipes] == before


async def test_recipes_are_created_replaced_moved_and_deleted(client, daemon):
    first = await client.ask({"command": "save_recipe", "recipe": RECIPE})
    cool = {**RECIPE, "name": "cool", "relation": 2, "targetValue": 21, "localValue": 0}
    second = await client.ask({"command": "save_recipe", "recipe": json.dumps(cool)})
    assert (first["recipe"]["id"], second["recipe"]["id"]) == (1, 2)
    await client.ask({"command": "save_recipe", "recipe": {**RECIPE, "id": 1, "name": "heat more"}})
    moved = await client.ask({"command": "move_recipe", "id": 2, "index": 0})
    assert [r["name"] for r in moved["recipes"]] == ["cool", "heat more"]
    assert [r["name"] for r in await stored(daemon, "recipes.json")] == ["cool", "heat more"]
    await client.ask({"command": "delete_recipe", "id": 2})
    listed = (await client.ask({"command": "request_recipes"}))["recipes"]
    assert [(r["id"], r["name"], r["matching"], r["seen"]) for r in listed] == [(1, "heat more", False, None)]


async def test_a_recipe_saved_over_the_api_drives_the_relay_from_a_datagram(client, daemon, factory):
    await client.ask({"command": "save_recipe", "recipe": RECIPE})
    send_udp(daemon.config.mesh.udp_port, b"777:Kitchen&5:18.00")
    update = await client.next_push("thing_update")
    while update["thingId"] != 1:
        update = await client.next_push("thing_update")
    assert update["value"] == 1.0 and factory.pin(17).state is True
    listed = (await client.ask({"command": "request_recipes"}))["recipes"]
    assert listed[0]["matching"] and listed[0]["seen"] == 18.0 and listed[0]["sourceValue"] == 18.0
    events = (await client.ask({"command": "request_events"}))["events"]
    sentence = "If Kitchen value 5 is below 19 then switch on"
    assert events[-1]["message"] == f"Recipe “{sentence}” switched the plug on"
    assert events[-1]["cause"] == f"recipe 1, {sentence}"


async def test_switch_and_toggle(client, factory):
    assert (await client.ask({"command": "switch", "state": "toggle"}))["relay"] is True
    assert (await client.ask({"command": "switch", "state": "off"}))["relay"] is False
    assert [s.state for s in factory.pin(17).states][-2:] == [True, False]


async def test_frames_over_64_kib_are_refused(daemon):
    async with connect(f"ws://127.0.0.1:{daemon.web.port}/ws", max_size=None) as ws:
        await ws.send(json.dumps({"command": "request_things", "pad": "x" * 70_000}))
        with pytest.raises(ConnectionClosedError) as closed:
            await ws.recv()
    assert closed.value.rcvd.code == 1009  # message too big


async def test_settings_are_checked_applied_at_once_and_kept(client, daemon):
    answer = await client.ask({"command": "request_settings"})
    assert answer["settings"] == {"node.name": "TestPlug", "mesh.interval": 5.0,
                                  "display.mode": "power", "display.brightness": 7,
                                  "mqtt.host": "", "mqtt.port": 1883, "mqtt.username": "",
                                  "mqtt.tls": False, "mqtt.discovery_prefix": "homeassistant",
                                  "mqtt.bridge_mesh": False, "location.latitude": 0.0,
                                  "location.longitude": 0.0, "relay.power_on_state": "last",
                                  "relay.stop_state": "off", "protection.max_power": 0.0,
                                  "protection.max_current": 0.0, "protection.hold": 2.0,
                                  "protection.retry_after": 0.0, "energy.price_per_kwh": 0.0,
                                  "energy.currency": ""}
    # whether set, never the value
    assert answer["secrets"] == {"mqtt.password": False, "mesh.mesh_key": False}
    assert answer["fixed"] == {}
    saved = await client.ask({"command": "save_settings", "settings": {
        "node.name": "Kitchen Plug", "display.brightness": 2}})
    assert saved["success"] and saved["nodeName"] == "Kitchen Plug"
    assert daemon.display.brightness == 2 and daemon.plug.node_name == "Kitchen Plug"
    assert b":Kitchen Plug&" in daemon.plug.datagram()
    await daemon.plug.writer.flush()
    kept = json.loads((daemon.plug.state.path / "settings.json").read_text())
    assert kept == {"node.name": "Kitchen Plug", "display.brightness": 2}
    for bad, error in [({"display.brightness": 9}, "display.brightness: must be between 0 and 7"),
                       ({"relay.pin": 4}, "settings.relay.pin: cannot be changed here"),
                       ({"node.name": "a&b"}, "node.name: must not contain '&'"),
                       ({"mqtt.port": 0}, "settings.mqtt.port"),
                       ({"mqtt.password": "pw"}, "settings.mqtt.password: needs a username")]:
        answer = await client.ask({"command": "save_settings", "settings": bad})
        assert answer["command"] == "error" and error in answer["error"], answer
    assert json.loads((daemon.plug.state.path / "settings.json").read_text()) == kept


async def test_export_then_import_round_trips_and_a_bad_import_changes_nothing(client, daemon):
    await client.ask({"command": "save_recipe", "recipe": RECIPE})
    exported = (await client.ask({"command": "export_config"}))["config"]
    assert exported["version"] == 1 and [r["name"] for r in exported["recipes"]] == ["heat"]
    await client.ask({"command": "delete_recipe", "id": 1})
    bad = {**exported, "recipes": exported["recipes"] + [{**RECIPE, "id": 2, "relation": 9}]}
    refused = await client.ask({"command": "import_config", "config": bad})
    assert refused["command"] == "error" and "config.recipes[1].relation" in refused["error"]
    assert len(daemon.plug.recipes) == 0
    assert (await client.ask({"command": "import_config", "config": exported}))["success"]
    assert [r.name for r in daemon.plug.recipes] == ["heat"]


@pytest.mark.parametrize("change, error", [
    ({"version": 2}, "config.version: expected 1, got 2"),
    ({"recipes": {}}, "config.recipes: expected a list, got an object"),
    ({"settings": {"display.brightness": 9}}, "config.settings.display.brightness: must be between"),
    ({"settings": {"relay.pin": 4}}, "config.settings.relay.pin: cannot be changed here"),
    ({"settings": {"node.name": "a&b"}}, "config.settings.node.name: must not contain '&'"),
    ({"settings": []}, "config.settings: expected an object"),
    ({"things": {}}, "config.things: expected a list"),
    ({"things": [7]}, "config.things[0]: expected an object"),
    ({"things": [{"override": True}]}, "config.things[0].id: is missing"),
    ({"things": [{"id": 99, "override": True}]}, "config.things[0].id: there is no local thing 99"),
    ({"things": [{"id": 1, "type": 0, "override": True}]},
     "config.things[0].type: thing 1 (Plug) is a SWITCH"),
    ({"things": [{"id": 2, "override": True}, {"id": 1, "override": "yes"}]},
     "config.things[1].override: expected true or false"),
    ({"calibration": {"current_gain": 9, "voltage": 230, "power_factor": 1}},
     "config.calibration.current_gain: must be between"),
    ({"calibration": {"current_gain": 1, "power_factor": 1}}, "config.calibration.voltage: is missing"),
    ({"calibration": "230 V"}, "config.calibration: expected an object"),
])
async def test_an_import_checks_each_part_as_its_own_command_does_and_changes_nothing(
        client, daemon, change, error):
    await client.ask({"command": "save_recipe", "recipe": RECIPE})
    await client.ask({"command": "save_settings", "settings": {"display.brightness": 3}})
    exported = (await client.ask({"command": "export_config"}))["config"]
    await daemon.plug.writer.flush()
    files = {p.name: p.read_bytes() for p in daemon.plug.state.path.glob("*.json")}
    good = {**exported, "recipes": [{**RECIPE, "id": 5, "name": "new"}],
            "settings": {"mesh.interval": 7}, "things": [{"id": 1, "override": True}]}
    refused = await client.ask({"command": "import_config", "config": {**good, **change}})
    assert refused["command"] == "error" and refused["error"].startswith(error), refused
    await daemon.plug.writer.flush()
    assert {p.name: p.read_bytes() for p in daemon.plug.state.path.glob("*.json")} == files
    assert [r.id for r in daemon.plug.recipes] == [1] and daemon.config.mesh.interval == 5
    assert not daemon.plug.things[ThingId.PLUG].override
    # the same import without the fault goes through, part by part
    assert (await client.ask({"command": "import_config", "config": good}))["success"]
    assert [r.id for r in daemon.plug.recipes] == [5] and daemon.config.mesh.interval == 7
    assert daemon.plug.things[ThingId.PLUG].override


async def test_an_import_cut_short_by_the_disk_says_what_was_stored(client, daemon, monkeypatch):
    await client.ask({"command": "switch", "state": "on"})  # things.json on disk, override off
    await client.ask({"command": "save_recipe", "recipe": RECIPE})
    exported = (await client.ask({"command": "export_config"}))["config"]
    exported["settings"] = {"node.name": "Imported"}
    state = daemon.plug.state
    write = state.write

    def settings_fail(name: str, data: bytes, mode: int = 0o640) -> None:
        if name == "settings.json":
            raise StoreError(f"cannot write {state.path / name}: No space left on device")
        write(name, data, mode)

    monkeypatch.setattr(state, "write", settings_fail)
    refused = await client.ask({"command": "import_config", "config": exported})
    assert refused["command"] == "error", refused
    assert "the import stopped (the recipes stored, the rest not)" in refused["error"]
    assert "No space left on device" in refused["error"]
    assert daemon.node_name == "TestPlug"
    # Cut short at the last part: an override flag, which lives only in things.json, is put back.
    exported["settings"] = {}
    exported["things"] = [{"id": 1, "override": True}]
    failing = "things.json"

    def things_fail(name: str, data: bytes, mode: int = 0o640) -> None:
        if name == failing:
            raise StoreError(f"cannot write {state.path / name}: No space left on device")
        write(name, data, mode)

    monkeypatch.setattr(state, "write", things_fail)
    refused = await client.ask({"command": "import_config", "config": exported})
    assert "(the recipes and the settings and the calibration stored, the rest not)" in refused["error"]
    assert daemon.plug.things[ThingId.PLUG].override is False
    failing = ""
    await daemon.plug.writer.flush()
    assert json.loads((state.path / "things.json").read_text())[0]["override"] is False


async def test_events_are_pushed_and_the_power_history_is_kept(client, daemon):
    await client.ask({"command": "switch", "state": "on"})
    pushed = [m for m in client.pushed if m["command"] == "event"]
    event = pushed[-1] if pushed else await client.next_push("event")
    assert event["event"]["message"] == "relay on" and event["event"]["cause"].startswith("user")
    await until(lambda: len(daemon.history()) >= 2, "two seconds of power history")
    history = (await client.ask({"command": "request_history"}))["history"]
    assert len(history) >= 2 and all(len(point) == 2 for point in history)
    assert history[-1][0] >= history[0][0]
