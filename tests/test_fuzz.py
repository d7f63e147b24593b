"""Property-based fuzzing of plugd's three input doors, bounded to run with the suite.

The UDP datagram, the WebSocket frame and the configuration file are where
outside bytes enter plugd. Whatever arrives, each door answers with a value or
with its documented error (WireError, an `error` answer, ConfigError) that
names what was wrong, and a refused input changes nothing stored. The long,
coverage-guided runs live in `fuzz/`; inputs they or these tests found to
break plugd are kept here as explicit examples.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import NODE_ID
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from plugd.cli import main as cli_main
from plugd.core.model import MAX_NAME, ON, Recipe, Relation, ThingId, name_problem
from plugd.core.registry import Registry
from plugd.core.wire import decode
from plugd.doors.api import COMMANDS, Api
from plugd.doors.api.simulation import COMMANDS as SIMULATION
from plugd.errors import ConfigError, WireError
from plugd.hardware.relay import Relay
from plugd.service import config
from plugd.service import settings as plug_settings
from plugd.service.plug import Plug
from plugd.service.store import StateDir

ETC = Path(__file__).resolve().parent.parent / "etc" / "plugd.toml"
#: A fixture built once per test function serves every example of it, on purpose.
REUSED_FIXTURE = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                  HealthCheck.data_too_large]


def bounded(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, suppress_health_check=REUSED_FIXTURE)


# --- the UDP door -------------------------------------------------------------------------

#: Datagrams as real nodes send them: an ESP8266, a peer a recipe listens to, plugd itself.
REAL_DATAGRAMS = [
    b"10223344:SmartPlugEsp&1:1.00&2:1523.75&3:412.30&4:13:05:09 - 24.11.2026",
    b"777:Kitchen&5:18.50&6:45.00",
    b"12:Hall: lamp&1:1.00&2:0.00",
    f"{NODE_ID}:TestPlug&1:0.00&4:9:00:00 - 1.1.2026".encode(),
]
#: What a sloppy sender, a stale ESP buffer or an attacker splices into a datagram.
SPLICES = [b"&", b":", b"\0", b"nan", b"inf", b"-inf", b"1e999", b"-", b".", b"e", b"1_0",
           b"99999999999", b"2147483648", b"0x1F", b" ", b"\t", b"&&", b"\xff\xfe", "é€".encode(),
           b"\x01", b"777:", b"&5:", b"&1:1.00", b"5:" + b"9" * 400]


@st.composite
def mutated_datagrams(draw: st.DrawFn) -> bytes:
    """A real datagram with a few bytes inserted, dropped, changed, repeated or cut off."""
    data = bytearray(draw(st.sampled_from(REAL_DATAGRAMS)))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        operation = draw(st.sampled_from(["insert", "delete", "replace", "repeat", "truncate"]))
        if operation == "insert":
            data[at:at] = draw(st.sampled_from(SPLICES) | st.binary(min_size=1, max_size=4))
        elif operation == "delete":
            del data[at:at + draw(st.integers(1, 8))]
        elif operation == "replace":
            data[at:at + 1] = draw(st.binary(min_size=1, max_size=1))
        elif operation == "repeat":
            data += b"&" + bytes(data[at:at + draw(st.integers(1, 24))])
        else:
            del data[at:]
    return bytes(data)


@bounded(600)
@given(mutated_datagrams())
@example(b"777:Kitchen&5:" + b"9" * 400)  # a value beyond a double
@example(b"777:Kitchen\xff\xfe&5:18.50")  # a name that is not UTF-8
def test_a_mutated_datagram_gives_a_packet_or_a_wire_error(data):
    try:
        packet = decode(data)
    except WireError as err:
        assert str(err)
        return
    assert 0 < packet.node_id < 2**31
    assert name_problem(packet.node_name) is None and len(packet.node_name) <= MAX_NAME
    for field in packet.fields:
        assert 0 < field.thing_id < 2**31 and math.isfinite(field.value)
        assert "&" not in field.text and "\0" not in field.text


RELAY_PIN = 17
#: Recipes that switch the relay both ways on what two peers send.
WIRE_RECIPES = [
    Recipe(1, "heat", 777, 5, 0.0, Relation.SMALLER_THAN, ThingId.PLUG, 19.0, 1.0),
    Recipe(2, "cool", 777, 5, 0.0, Relation.BIGGER_THAN, ThingId.PLUG, 21.0, 0.0),
    Recipe(3, "follow", 12, 1, 0.0, Relation.EQUALS, ThingId.PLUG, 1.0, 1.0),
]


@pytest.fixture
def wired_plug(tmp_path, factory):
    state = StateDir(tmp_path / "state")
    state.prepare()
    plug = Plug(node_id=NODE_ID, node_name="TestPlug", state=state,
                registry=Registry(NODE_ID, max_nodes=4), power_on_state="off",
                open_relay=lambda on: Relay(RELAY_PIN, active_high=True, initial=on,
                                            pin_factory=factory), save=state.write)
    plug.recipes.replace_all(WIRE_RECIPES)
    return plug


@bounded(200)
@given(st.lists(mutated_datagrams() | st.binary(max_size=80) | st.sampled_from(REAL_DATAGRAMS),
                min_size=1, max_size=12))
def test_the_receive_path_never_raises_and_keeps_the_plug_consistent(wired_plug, factory, datagrams):
    plug = wired_plug
    sources = {(r.source_node_id, r.source_thing_id) for r in plug.recipes}
    for data in datagrams:
        try:
            packet = decode(data)
        except WireError:
            packet = None
        counters = plug.registry.counters
        received, invalid = counters.received, counters.invalid
        relay_before = plug.things[ThingId.PLUG].value
        plug.receive(data, "127.0.0.1")
        assert (counters.received, counters.invalid) == (received + 1,
                                                         invalid + (packet is None))
        relay_after = plug.things[ThingId.PLUG].value
        assert all(math.isfinite(t.value) for t in plug.things.values())
        assert factory.pin(RELAY_PIN).state == (relay_after == ON)
        if relay_after != relay_before:  # only a recipe on a field of this very packet may do it
            assert packet is not None and packet.node_id != NODE_ID
            assert sources & {(packet.node_id, f.thing_id) for f in packet.fields}
        assert len(plug.registry.peers) <= 4 and NODE_ID not in plug.registry.peers
        assert all(name_problem(p.name) is None for p in plug.registry.peers.values())
    assert plug.datagram()  # what the plug sends stays sendable


# --- the WebSocket door -------------------------------------------------------------------


class Raw(str):
    """Text put into a request as it is, where json.dumps cannot write it (1e400, deep nesting)."""


RECIPE = {"name": "heat", "sourceNodeId": 777, "sourceThingId": 5, "relation": 3,
          "targetValue": 19, "localThingId": 1, "localValue": 1}
#: A valid request for every command; the fuzzer mutates their fields.
VALID: dict[str, dict[str, Any]] = {
    **{name: {} for name in ("request_nodes", "request_things", "request_recipes", "request_status",
                             "request_events", "request_history", "request_settings",
                             "export_config", "request_session", "logout", "request_tokens")},
    "add_token": {"name": "fuzz"},
    "revoke_token": {"name": "fuzz"},
    "save_thing": {"thing": {"id": 1, "type": 1, "value": 1, "override": False}},
    "save_recipe": {"recipe": RECIPE},
    "delete_recipe": {"id": 1},
    "move_recipe": {"id": 1, "index": 0},
    "switch": {"state": "toggle"},
    "request_energy": {"period": "hour", "from": 0, "to": 2000000000},
    "request_schedules": {},
    "save_schedule": {"schedule": {"enabled": True, "days": [0, 4], "at": "07:00", "offset": -15,
                                   "action": "on"}},
    "delete_schedule": {"id": 1},
    "calibrate": {"what": "voltage", "value": 231.5},
    "save_label": {"label": {"nodeId": 777, "thingId": 5, "name": "Fridge power", "unit": "W",
                             "kind": "power"}},
    "delete_label": {"nodeId": 777, "thingId": 5},
    "simulate_load": {"watts": 500},
    "simulate_fault": {"chip": "adc", "fault": None},
    "login": {"token": "not-the-token"},
    "change_password": {"old": "not-the-password", "new": "something new"},
    "save_settings": {"settings": {"node.name": "Kitchen", "mesh.interval": 5,
                                   "display.mode": "clock", "display.brightness": 3}},
    "import_config": {"config": {"version": 1, "recipes": [{**RECIPE, "id": 2}],
                                 "settings": {"display.brightness": 2},
                                 "things": [{"id": 1, "override": False}], "calibration": None}},
}
#: Blocks the event loop on purpose, for as long as asked: not a door to fuzz.
NOT_FUZZED = {"simulate_hang"}
NESTED = ("thing", "recipe", "settings", "config", "schedule", "label")

#: What replaces a field. Never this plug's node id: a recipe on its own measured things would
#: fire between the two snapshots of a refused request.
junk = st.one_of(
    st.none(), st.booleans(), st.integers().filter(lambda n: n != NODE_ID), st.floats(),
    st.sampled_from([0, -1, 2**31, 2**63, 10**400, -10**400, 1e308, -0.0, 5e-324]),
    st.text(max_size=40),
    st.sampled_from(["", "\0", "a&b", "1:2", "on", "&&", ":", "NaN", "x" * 70_000, "{}", "[]"]),
    st.lists(st.integers(-3, 3), max_size=3), st.dictionaries(st.text(max_size=4), st.integers(),
                                                              max_size=3),
    st.integers(1, 5000).map(lambda n: "[" * n + "]" * n),  # deep JSON inside a JSON string
    st.integers(1, 5000).map(lambda n: Raw("[" * n + "]" * n)),
    st.sampled_from([Raw("1e400"), Raw("-1e400"), Raw("1" + "0" * 5000), Raw("NaN"),
                     Raw("-Infinity")]),
)


def _slots(value: Any, path: tuple = ()) -> list[tuple]:
    """Every (path to a container, key) in a request: where a mutation can land."""
    slots = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(
        value, list) else []
    for key, item in items:
        slots.append((path, key))
        slots += _slots(item, (*path, key))
    return slots


def dump_request(request: dict[str, Any]) -> str:
    """The request as JSON text (NaN and Infinity as Python writes them), Raw values as they are."""
    raws: list[str] = []

    def hold(value: Any) -> Any:
        if isinstance(value, Raw):
            raws.append(value)
            return f"\x01raw{len(raws) - 1}\x01"
        if isinstance(value, dict):
            return {k: hold(v) for k, v in value.items()}
        if isinstance(value, list):
            return [hold(v) for v in value]
        return value

    text = json.dumps(hold(request))
    for i, raw in enumerate(raws):
        text = text.replace(json.dumps(f"\x01raw{i}\x01"), raw)
    return text


@st.composite
def near_valid_requests(draw: st.DrawFn) -> str:
    """A valid request of any command with one to three fields replaced, dropped or added."""
    name = draw(st.sampled_from(sorted(VALID)))
    request = {"command": name, **copy.deepcopy(VALID[name])}
    for _ in range(draw(st.integers(1, 3))):
        path, key = draw(st.sampled_from(_slots(request)))
        container = request
        for step in path:
            container = container[step]
        action = draw(st.sampled_from(["replace", "replace", "drop", "add"]))
        keep = path == () and key == "command"  # a request without one is the test above's
        if action == "replace" and not keep:
            container[key] = draw(junk)
        elif action == "drop" and not keep and isinstance(container, dict):
            container.pop(key)
        elif isinstance(container, dict):
            container[draw(st.text(max_size=12))] = draw(junk)
        else:
            container.append(draw(junk))
    for key in NESTED:  # the firmware's pages may send the nested object as a JSON string
        if isinstance(request.get(key), dict) and draw(st.booleans()):
            request[key] = dump_request(request[key])
    return dump_request(request)


STORED = ("things.json", "recipes.json", "settings.json", "calibration.json", "auth.json",
          "labels.json")


async def snapshot(daemon) -> tuple[Any, ...]:
    """What a refused request must leave as it was, on disk and in memory."""
    plug = daemon.plug
    await plug.writer.flush()
    path = plug.state.path
    files = {name: (path / name).read_bytes() if (path / name).exists() else None
             for name in STORED}
    # Measured values move every second; what users and recipes set must not.
    things = [(t.id, t.override, t.value if plug.settable(t.id) else None)
              for t in plug.things.values()]
    return (files, things, [r.to_json() for r in plug.recipes], dict(daemon.settings),
            plug_settings.view(daemon.config), daemon.meter.calibration)


async def answer_and_check(daemon, text: str | bytes) -> dict[str, Any]:
    """Ask; an answer must come, name its command, travel as JSON; a refusal changes nothing."""
    before = await snapshot(daemon)
    answer = await asyncio.wait_for(Api(daemon, "fuzz", trusted=True).handle(text), 60)
    assert isinstance(answer, dict) and isinstance(answer.get("command"), str), answer
    assert (answer["nodeId"], answer["nodeName"]) == (NODE_ID, daemon.plug.node_name)
    json.dumps(answer, allow_nan=False)  # a browser's JSON.parse reads no NaN
    if answer["command"] == "error":
        error = answer["error"]
        # `<field>: <problem>`; the field may end in a key the request made up (`settings.:`)
        assert error == "the message is not valid JSON" or re.match(
            r"[A-Za-z][\w.\[\]]*(\..*?)?: \S", error, re.S), f"{error!r} names no field"
        assert await snapshot(daemon) == before, f"refused {str(text)[:200]!r} but changed state"
    return answer


def test_every_command_is_fuzzed_from_a_valid_request():
    assert {*COMMANDS, *SIMULATION} - NOT_FUZZED == set(VALID)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["command", "thing", "recipe", "id", "value", "state", "settings"])
        | st.text(max_size=8), inner, max_size=4), max_leaves=12)


@bounded(150)
@given(json_values | json_values.map(lambda v: {"command": v}))
@example({"command": math.inf})  # echoed back in the error answer, which then was no JSON
@example({"command": {"nested": ["junk"]}})
async def test_any_json_value_gets_an_answer_and_a_refusal_changes_nothing(daemon, value):
    await answer_and_check(daemon, json.dumps(value))


@bounded(100)
@given(st.text(max_size=200) | st.binary(max_size=200)
       | st.integers(1, 100_000).map(lambda n: '{"command": ' + "[" * n))
@example("[" * 100_000)  # nesting deeper than the parser's recursion
async def test_any_frame_gets_an_answer(daemon, text):
    await answer_and_check(daemon, text)


@bounded(400)
@given(near_valid_requests())
@example('{"command": "save_settings", "settings": {"\\n": 1}}')  # a made-up key may hold anything
# Each of these broke the handler before it was fixed (an exception escaped `handle`):
@example('{"command": "switch", "state": []}')  # an unhashable state looked up in a dict
@example('{"command": "save_thing", "thing": "' + "[" * 5000 + '"}')  # deep JSON in a string
@example('{"command": "save_thing", "thing": {"id": 1, "value": 1' + "0" * 400 + "}}")  # > float
@example('{"command": "simulate_load", "watts": ' + "9" * 400 + "}")
@example('{"command": "save_settings", "settings": {"mesh.interval": 1' + "0" * 400 + "}}")
@example('{"command": "import_config", "config": {"version": 1, "settings": '
         '{"mesh.interval": 1' + "0" * 400 + "}}}")
async def test_a_near_valid_command_gets_an_answer_and_a_refusal_changes_nothing(daemon, text):
    await answer_and_check(daemon, text)


# --- the configuration door ---------------------------------------------------------------

SECTIONS = {f.name for f in dataclasses.fields(config.Config) if f.name != "simulated"}
TOML_JUNK = ['"x"', "'a&b'", '""', "1" + "0" * 400, "-9223372036854775809", "nan", "-inf", "inf",
             "1e400", "true", '[1, "a"]', "[[[[1]]]]", "{a = 1}", "1979-05-27T07:32:00Z",
             "07:32:00", "0x48", "0o17", "0b1", "3.0", "-1", "0", '"' + "x" * 300 + '"',
             "[" * 3000 + "]" * 3000, "{a = " * 2000 + "1" + "}" * 2000, '"\\u0000"', "'\\x'"]
KEY_LINE = re.compile(r"^#?(\w+) = (.*)$")


@st.composite
def mutated_config_files(draw: st.DrawFn) -> str:
    """The shipped file with keys uncommented, values and names changed, lines moved."""
    lines = []
    for line in ETC.read_text().splitlines():
        match = KEY_LINE.match(line)
        if match and draw(st.booleans()):
            key, value = match.groups()
            if draw(st.integers(0, 3)) == 0:
                value = draw(st.sampled_from(TOML_JUNK) | st.text(max_size=10))
            if draw(st.integers(0, 9)) == 0:
                key = draw(st.sampled_from([key + "s", key.upper(), key[:-1] or "k", f"{key}.x"]))
            line = f"{key} = {value}"
        elif line.startswith("[") and draw(st.integers(0, 9)) == 0:
            line = draw(st.sampled_from([f"[{line}]", line[:-1] + ".x]", "", line + "\n" + line]))
        lines.append(line)
    for _ in range(draw(st.integers(0, 2))):  # a line repeated elsewhere
        lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(lines)))
    return "\n".join(lines)


def parse_or_refuse(text: str, simulate: bool = False) -> config.Config | None:
    """A Config, or None after checking that the ConfigError names a key of the text."""
    try:
        return config.parse(text, simulate=simulate)
    except ConfigError as err:
        if not err.field:
            assert "not valid TOML" in str(err), err
        else:
            assert str(err).startswith(f"{err.field}: ") and err.problem, err
        return None


@bounded(300)
@given(st.text(max_size=300), st.booleans())
def test_any_text_gives_a_config_or_a_config_error(text, simulate):
    parse_or_refuse(text, simulate)


@bounded(300)
@given(mutated_config_files(), st.booleans())
# Each of these raised something else than ConfigError before it was fixed:
@example("[mesh]\ninterval = 1" + "0" * 400, False)  # an integer beyond a float
@example("a = " + "[" * 3000 + "]" * 3000, False)  # nesting deeper than the TOML reader's
@example("a = " + "{b = " * 2000 + "1" + "}" * 2000, False)
@example("[simulate]\nseed = 1" + "0" * 5000, False)  # past Python's integer text limit
@example("[meter]\nmv_per_amp = inf", False)  # a limit that is no number
@example("[protection]\nmax_power = nan", True)
def test_a_mutated_shipped_file_gives_a_config_or_an_error_naming_the_key(text, simulate):
    parsed = parse_or_refuse(text, simulate)
    if parsed is not None:
        floats = [v for section in SECTIONS for v in vars(getattr(parsed, section)).values()
                  if isinstance(v, float)]
        assert all(math.isfinite(v) for v in floats)


@bounded(100)
@given(st.binary(max_size=200) | mutated_config_files().map(str.encode))
@example(b"[node]\nname = '\xff'")  # not UTF-8
def test_the_cli_reads_any_file_into_a_config_or_an_exit_status(tmp_path, capsys, data):
    path = tmp_path / "plugd.toml"
    path.write_bytes(data)
    status = cli_main(["--config", str(path), "--check-config"])
    _out, err = capsys.readouterr()
    assert status in (0, 2)
    if status == 2:
        assert err.startswith("plugd: configuration error: ")
