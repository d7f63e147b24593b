"""MQTT and Home Assistant discovery, against a real mosquitto started by each test.

The daemon under test talks to Debian's mosquitto on a port of the test's own; a plain MQTT
client reads what Home Assistant would read (retained configs, states, availability) and
sends what it would send (commands, its `online` status).
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from plugd.core import discovery
from plugd.core.labels import Label
from plugd.core.model import ON, ThingId
from plugd.core.plug import Cause
from plugd.errors import ConfigError, ValidationError
from plugd.service import config
from plugd.service.daemon import Daemon
from tests.broker import Broker, Seen, have_mosquitto, make_ca, watching
from tests.support import PlugdProcess, free_port, send_udp, until

pytestmark = pytest.mark.skipif(not have_mosquitto(),
                                reason="needs Debian's mosquitto (apt-get install mosquitto)")

PREFIX = "plugd/testplug"
RELAY_CONFIG = "homeassistant/switch/plugd_4242_relay/config"
REQUIRED_SWITCH = {"unique_id", "name", "command_topic", "state_topic", "payload_on",
                   "payload_off", "availability_topic", "device"}
TEMPLATE = re.compile(r"\{\{ value_json\.([a-z0-9_]+) \}\}")


def render(template: str, payload: bytes) -> str:
    """A `{{ value_json.key }}` template rendered as Home Assistant does (null is "None")."""
    match = TEMPLATE.fullmatch(template)
    assert match, f"not a simple value_json template: {template!r}"
    value = json.loads(payload)[match.group(1)]
    return "None" if value is None else str(value)


def configs(seen: list[Seen]) -> dict[str, dict[str, Any]]:
    """The latest non-empty discovery config per topic."""
    found: dict[str, dict[str, Any]] = {}
    for message in seen:
        if message.topic.startswith("homeassistant/") and message.topic.endswith("/config"):
            if message.payload:
                found[message.topic] = json.loads(message.payload)
            else:
                found.pop(message.topic, None)
    return found


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[Broker]:
    """A mosquitto of this test's own, anonymous access allowed."""
    started = Broker(tmp_path / "broker")
    started.start()
    yield started
    started.stop()


@pytest.fixture
async def plug(make_daemon: Callable[..., Awaitable[Daemon]], broker: Broker) -> Daemon:
    """A daemon reporting to `broker`."""
    return await make_daemon(**{"mqtt.host": "127.0.0.1", "mqtt.port": broker.port})


def page_status(port: int) -> int:
    """The page's HTTP status, fetched as a browser would (off the daemon's event loop)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as page:
        return int(page.status)


def relay_on(daemon: Daemon) -> bool:
    relay = daemon.plug.relay
    assert relay is not None
    return bool(relay.is_on)


async def all_configs(broker: Broker, count: int = 8) -> dict[str, dict[str, Any]]:
    """The retained discovery configs a newly started Home Assistant reads."""
    async with watching(broker, "homeassistant/#") as ha:  # announced by now, or live
        await until(lambda: len(configs(ha.seen)) >= count, f"{count} discovery configs")
    async with watching(broker, "homeassistant/#") as later:  # what the broker kept
        await until(lambda: len(configs(later.seen)) >= count, f"{count} retained configs")
        assert all(m.retain for m in later.seen), "discovery configs must be retained"
        return configs(later.seen)


# --- discovery ---------------------------------------------------------------------------


async def test_discovery_is_what_home_assistant_reads(plug: Daemon, broker: Broker) -> None:
    found = await all_configs(broker)
    assert set(found) == {RELAY_CONFIG, *(f"homeassistant/sensor/plugd_4242_{s.key}/config"
                                          for s in discovery.SENSORS)}
    for topic, payload in found.items():
        assert re.fullmatch(r"homeassistant/(switch|sensor)/[a-zA-Z0-9_-]+/config", topic)
        assert payload["device"]["identifiers"] == ["plugd_4242"]
        assert payload["device"]["name"] == "TestPlug"
        assert payload["device"]["manufacturer"] == "plugd"
        assert payload["device"]["configuration_url"] == f"http://127.0.0.1:{plug.web.port}/"
        assert {"model", "sw_version"} <= set(payload["device"])
        assert payload["availability_topic"] == f"{PREFIX}/availability"
        assert (payload["payload_available"], payload["payload_not_available"]) == ("online",
                                                                                    "offline")
    switch = found[RELAY_CONFIG]
    assert set(switch) >= REQUIRED_SWITCH
    assert (switch["command_topic"], switch["state_topic"]) == (f"{PREFIX}/relay/set",
                                                                f"{PREFIX}/relay")
    assert (switch["payload_on"], switch["payload_off"]) == ("ON", "OFF")
    sensor = {p["unique_id"].removeprefix("plugd_4242_"): p for t, p in found.items()
              if "/sensor/" in t}
    assert (sensor["power"]["device_class"], sensor["power"]["unit_of_measurement"]) == ("power", "W")
    assert (sensor["current"]["device_class"], sensor["current"]["unit_of_measurement"]) == (
        "current", "A")
    for key, unit in (("energy_today", "Wh"), ("energy_total", "kWh")):
        assert sensor[key]["device_class"] == "energy"
        assert sensor[key]["unit_of_measurement"] == unit
        assert sensor[key]["state_class"] == "total_increasing"
    for key in ("protection", "faults"):
        assert sensor[key]["entity_category"] == "diagnostic"

    async with watching(broker, f"{PREFIX}/#") as ha:  # the states, retained, read by templates
        state = await ha.wait(f"{PREFIX}/state")
        availability = await ha.wait(f"{PREFIX}/availability")
        relay = await ha.wait(f"{PREFIX}/relay")
    assert state.retain and availability.retain and relay.retain
    assert availability.text == "online" and relay.text == "OFF"
    shown = {key: render(p["value_template"], state.payload) for key, p in sensor.items()}
    assert shown["protection"] == "ok" and shown["faults"] == "none"
    for key in ("power", "current", "energy_today", "energy_total"):
        assert shown[key] == "None" or float(shown[key]) >= 0


async def test_unique_ids_survive_a_restart_and_a_rename(
        make_daemon: Callable[..., Awaitable[Daemon]], broker: Broker) -> None:
    options = {"mqtt.host": "127.0.0.1", "mqtt.port": broker.port}
    daemon = await make_daemon(**options)
    before = await all_configs(broker)
    ids = {topic: payload["unique_id"] for topic, payload in before.items()}

    async with watching(broker, "homeassistant/#") as ha:
        mark = ha.mark()
        await daemon.save_settings({"node.name": "Kitchen Plug"})
        renamed = await ha.wait(RELAY_CONFIG, lambda m: json.loads(m.payload)["device"]["name"]
                                == "Kitchen Plug", since=mark)
    assert json.loads(renamed.payload)["unique_id"] == "plugd_4242_relay"
    assert json.loads(renamed.payload)["command_topic"] == f"{PREFIX}/relay/set"  # until restart

    await daemon.stop()
    await make_daemon(**options)
    async with watching(broker, "homeassistant/#") as ha:
        await ha.wait(RELAY_CONFIG, lambda m: "kitchen-plug" in m.text)
        after = await all_configs(broker)
    assert {topic: payload["unique_id"] for topic, payload in after.items()} == ids
    assert after[RELAY_CONFIG]["device"]["name"] == "Kitchen Plug"
    assert after[RELAY_CONFIG]["device"]["identifiers"] == ["plugd_4242"]
    assert after[RELAY_CONFIG]["command_topic"] == "plugd/kitchen-plug/relay/set"


async def test_home_assistant_online_brings_discovery_back(plug: Daemon, broker: Broker) -> None:
    await all_configs(broker)
    async with watching(broker, "homeassistant/#", f"{PREFIX}/#") as ha:
        await ha.publish(RELAY_CONFIG, b"", retain=True)  # as if the broker had lost it
        await ha.wait(RELAY_CONFIG, lambda m: not m.payload)
        mark = ha.mark()
        await ha.publish("homeassistant/status", "online")
        again = await ha.wait(RELAY_CONFIG, lambda m: bool(m.payload), since=mark)
        await ha.wait(f"{PREFIX}/availability", lambda m: m.text == "online", since=mark)
        await ha.wait(f"{PREFIX}/relay", since=mark)
    assert json.loads(again.payload)["unique_id"] == "plugd_4242_relay"


# --- commands and state --------------------------------------------------------------------


async def test_commands_switch_the_relay_as_a_person_does(plug: Daemon, broker: Broker) -> None:
    async with watching(broker, f"{PREFIX}/relay") as ha:
        await ha.wait(f"{PREFIX}/relay", lambda m: m.text == "OFF")
        for command, expected in (("ON", "ON"), ("OFF", "OFF"), ("TOGGLE", "ON"), ("toggle", "OFF"),
                                  ("on", "ON")):
            mark = ha.mark()
            await ha.publish(f"{PREFIX}/relay/set", command)
            await ha.wait(f"{PREFIX}/relay", lambda m, e=expected: m.text == e, since=mark)
            assert relay_on(plug) == (expected == "ON")
        mark = ha.mark()
        await ha.publish(f"{PREFIX}/relay/set", "BANANA")  # refused, and the state said again
        await ha.wait(f"{PREFIX}/relay", since=mark)
        assert relay_on(plug)
    causes = [e.cause for e in plug.plug.events if e.kind == "relay"]
    assert causes[-1] == f"mqtt 127.0.0.1:{broker.port}"
    assert plug.status()["mqtt"]["commands"] == 6


async def test_a_command_lifts_a_protection_trip_as_a_person_does(plug: Daemon,
                                                                   broker: Broker) -> None:
    async with watching(broker, f"{PREFIX}/#") as ha:
        await ha.wait(f"{PREFIX}/relay")
        mark = ha.mark()
        plug.plug.trip("test overload")
        state = await ha.wait(f"{PREFIX}/state", lambda m: "tripped" in m.text, since=mark)
        assert json.loads(state.payload)["protection"] == "tripped: test overload"
        mark = ha.mark()
        await ha.publish(f"{PREFIX}/relay/set", "ON")
        await ha.wait(f"{PREFIX}/relay", lambda m: m.text == "ON", since=mark)
        await ha.wait(f"{PREFIX}/state", lambda m: json.loads(m.payload)["protection"] == "ok",
                      since=mark)
    assert plug.plug.tripped is None


async def test_a_retained_command_is_ignored(make_daemon: Callable[..., Awaitable[Daemon]],
                                            broker: Broker) -> None:
    async with watching(broker) as someone:  # a stale order, kept by the broker
        await someone.publish(f"{PREFIX}/relay/set", "ON", retain=True)
    daemon = await make_daemon(**{"mqtt.host": "127.0.0.1", "mqtt.port": broker.port})
    async with watching(broker, f"{PREFIX}/relay") as ha:
        await ha.wait(f"{PREFIX}/relay")
        mark = ha.mark()
        await ha.publish(f"{PREFIX}/relay/set", "TOGGLE")  # after the retained one, live
        await ha.wait(f"{PREFIX}/relay", lambda m: m.text == "ON", since=mark)
        await ha.publish(f"{PREFIX}/relay/set", b"", retain=True)
    assert relay_on(daemon) and daemon.status()["mqtt"]["commands"] == 1


async def test_state_is_retained_for_whoever_comes_later(plug: Daemon, broker: Broker) -> None:
    async with watching(broker, f"{PREFIX}/relay") as ha:
        await ha.wait(f"{PREFIX}/relay", lambda m: m.text == "OFF")
        plug.plug.set_thing(ThingId.PLUG, ON, Cause("user", "test"))
        await ha.wait(f"{PREFIX}/relay", lambda m: m.text == "ON")
    async with watching(broker, f"{PREFIX}/relay") as later:
        relay = await later.wait(f"{PREFIX}/relay")
    assert (relay.text, relay.retain) == ("ON", True)


# --- the connection ------------------------------------------------------------------------


async def test_a_clean_stop_says_offline(plug: Daemon, broker: Broker) -> None:
    async with watching(broker, f"{PREFIX}/availability") as ha:
        await ha.wait(f"{PREFIX}/availability", lambda m: m.text == "online")
        await plug.stop()
        await ha.wait(f"{PREFIX}/availability", lambda m: m.text == "offline")
    async with watching(broker, f"{PREFIX}/availability") as later:
        kept = await later.wait(f"{PREFIX}/availability")
    assert kept.text == "offline" and kept.retain


async def test_sigkill_leaves_the_last_will(tmp_path: Path, broker: Broker) -> None:
    async with watching(broker, f"{PREFIX}/availability") as ha:
        process = await asyncio.to_thread(
            PlugdProcess, tmp_path, config={"mqtt": {"host": "127.0.0.1", "port": broker.port}})
        try:
            await ha.wait(f"{PREFIX}/availability", lambda m: m.text == "online")
            shown = (await asyncio.to_thread(process.ctl, "status")).stdout
            assert f"mqtt     connected to 127.0.0.1:{broker.port}" in shown, shown
            mark = ha.mark()
            process.kill()
            await ha.wait(f"{PREFIX}/availability", lambda m: m.text == "offline", since=mark)
        finally:
            await asyncio.to_thread(process.stop)
    async with watching(broker, f"{PREFIX}/availability") as later:
        kept = await later.wait(f"{PREFIX}/availability")
    assert kept.text == "offline" and kept.retain


async def test_a_broker_restart_while_the_relay_changes(plug: Daemon, broker: Broker) -> None:
    async with watching(broker, f"{PREFIX}/relay") as ha:
        await ha.wait(f"{PREFIX}/relay", lambda m: m.text == "OFF")
    connects = plug.status()["mqtt"]["connects"]
    broker.stop()  # it keeps nothing: whatever is retained after the restart was sent again
    await until(lambda: plug.status()["mqtt"]["state"] != "connected", "the plug to notice")
    for _ in range(3):
        plug.plug.set_thing(ThingId.PLUG, ON, Cause("user", "test"))
        plug.plug.set_thing(ThingId.PLUG, 0.0, Cause("user", "test"))
    plug.plug.set_thing(ThingId.PLUG, ON, Cause("user", "test"))
    assert plug.status()["mqtt"]["due"] <= 2  # the latest state of each topic, no queue
    broker.start()
    await until(lambda: plug.status()["mqtt"]["connects"] > connects, "the plug to reconnect")
    async with watching(broker, f"{PREFIX}/relay", f"{PREFIX}/availability") as ha:
        relay = await ha.wait(f"{PREFIX}/relay")
        availability = await ha.wait(f"{PREFIX}/availability")
    assert (relay.text, relay.retain) == ("ON", True)
    assert availability.text == "online"
    assert len(await all_configs(broker)) == 8


async def test_an_absent_broker_stops_nothing(make_daemon: Callable[..., Awaitable[Daemon]],
                                              tmp_path: Path) -> None:
    port = free_port(socket.SOCK_STREAM)
    daemon = await make_daemon(**{"mqtt.host": "127.0.0.1", "mqtt.port": port})
    await until(lambda: daemon.status()["mqtt"]["error"], "a failed try")
    assert await asyncio.to_thread(page_status, daemon.web.port) == 200
    daemon.plug.set_thing(ThingId.PLUG, ON, Cause("user", "test"))
    assert relay_on(daemon)
    late = Broker(tmp_path / "late", port=port)
    late.start()
    try:
        await until(lambda: daemon.status()["mqtt"]["state"] == "connected", "a connection")
        async with watching(late, f"{PREFIX}/relay") as ha:
            assert (await ha.wait(f"{PREFIX}/relay")).text == "ON"
    finally:
        late.stop()


async def test_username_and_password(make_daemon: Callable[..., Awaitable[Daemon]],
                                     tmp_path: Path) -> None:
    secured = Broker(tmp_path / "secured", users={"plug": "s3cret-pass", "ha": "ha-pass"})
    secured.start()
    try:
        password_file = tmp_path / "mqtt-password"
        password_file.write_text("s3cret-pass\n")
        password_file.chmod(0o600)
        options = {"mqtt.host": "127.0.0.1", "mqtt.port": secured.port, "mqtt.username": "plug"}
        wrong = await make_daemon(**options, **{"mqtt.password": "wrong"})
        await until(lambda: wrong.status()["mqtt"]["error"], "a refused login")
        assert wrong.status()["mqtt"]["state"] != "connected"
        assert "not authori" in wrong.status()["mqtt"]["error"].lower()
        await wrong.stop()

        from_file = config.with_secrets(
            config.updated(config.parse(""), {**options, "mqtt.password_file": str(password_file)}),
            None, environ={})
        assert from_file.mqtt.password == "s3cret-pass"
        daemon = await make_daemon(**options, **{"mqtt.password": from_file.mqtt.password})
        async with watching(secured, f"{PREFIX}/availability", username="ha",
                            password="ha-pass") as ha:
            await ha.wait(f"{PREFIX}/availability", lambda m: m.text == "online")
        assert daemon.status()["mqtt"]["state"] == "connected"
    finally:
        secured.stop()


async def test_tls_with_a_ca_of_the_test(make_daemon: Callable[..., Awaitable[Daemon]],
                                         tmp_path: Path) -> None:
    certificates = make_ca(tmp_path / "ca")
    secured = Broker(tmp_path / "tls", tls=certificates)
    secured.start()
    try:
        options = {"mqtt.host": "127.0.0.1", "mqtt.port": secured.port, "mqtt.tls": True}
        untrusting = await make_daemon(**options)  # the system's CAs only
        await until(lambda: untrusting.status()["mqtt"]["error"], "a refused certificate")
        assert "certificate" in untrusting.status()["mqtt"]["error"].lower()
        await untrusting.stop()

        daemon = await make_daemon(**options, **{"mqtt.ca_file": str(certificates.ca)})
        async with watching(secured, f"{PREFIX}/#") as ha:
            await ha.wait(f"{PREFIX}/availability", lambda m: m.text == "online")
            mark = ha.mark()
            await ha.publish(f"{PREFIX}/relay/set", "ON")
            await ha.wait(f"{PREFIX}/relay", lambda m: m.text == "ON", since=mark)
        assert relay_on(daemon) and daemon.status()["mqtt"]["tls"]
    finally:
        secured.stop()


def clients_installed() -> bool:
    return all(Path(f"/usr/bin/{tool}").is_file() for tool in ("mosquitto_sub", "mosquitto_pub"))


@pytest.mark.skipif(not clients_installed(), reason="needs Debian's mosquitto-clients")
async def test_the_documented_removal_leaves_nothing(
        make_daemon: Callable[..., Awaitable[Daemon]], broker: Broker) -> None:
    daemon = await make_daemon(**{"mqtt.host": "127.0.0.1", "mqtt.port": broker.port,
                                  "mqtt.bridge_mesh": True})
    send_udp(daemon.config.mesh.udp_port, b"777:Kitchen Sensor&5:21.50")
    async with watching(broker, "homeassistant/#") as ha:
        await ha.wait("homeassistant/sensor/plugd_4242_peer_777_thing_5/config")
    async with watching(broker) as other:  # another device's config must stay
        await other.publish("homeassistant/switch/other_1/config", b'{"name":"x"}', retain=True)
    await daemon.stop()
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    script = re.search(r"```sh\n(id=10223344 .*?)```", readme, re.S)
    assert script, "the removal commands are in the README"
    command = script.group(1).replace("id=10223344", "id=4242").replace(
        "prefix=plugd/kitchen-plug", f"prefix={PREFIX}").replace(
        '"-h homeassistant.local -u plugd -P secret"', f'"-h 127.0.0.1 -p {broker.port}"')
    process = await asyncio.create_subprocess_shell(command, executable="/bin/bash")
    await process.wait()
    async with watching(broker, "#") as later:
        await later.publish("test/sentinel", b"end")
        await later.wait("test/sentinel")
        left = [m.topic for m in later.seen if m.retain and m.payload]
    assert left == ["homeassistant/switch/other_1/config"]


# --- the mesh as devices -----------------------------------------------------------------------


async def test_bridge_mesh_makes_each_peer_a_device(
        make_daemon: Callable[..., Awaitable[Daemon]], broker: Broker) -> None:
    daemon = await make_daemon(**{"mqtt.host": "127.0.0.1", "mqtt.port": broker.port,
                                  "mqtt.bridge_mesh": True, "mesh.interval": 0.2,
                                  "mesh.offline_after": 2})
    peer_config = "homeassistant/sensor/plugd_4242_peer_777_thing_5/config"
    async with watching(broker, "homeassistant/#", f"{PREFIX}/peers/#") as ha:
        send_udp(daemon.config.mesh.udp_port, b"777:Kitchen Sensor&5:21.50&2:3")
        config_message = await ha.wait(peer_config)
        state = await ha.wait(f"{PREFIX}/peers/777")
        await ha.wait(f"{PREFIX}/peers/777/availability", lambda m: m.text == "online")
        payload = json.loads(config_message.payload)
        assert payload["device"]["name"] == "Kitchen Sensor"
        assert payload["device"]["identifiers"] == ["plugd_4242_peer_777"]
        assert payload["device"]["via_device"] == "plugd_4242"
        assert payload["availability_mode"] == "all"
        assert {a["topic"] for a in payload["availability"]} == {
            f"{PREFIX}/availability", f"{PREFIX}/peers/777/availability"}
        assert render(payload["value_template"], state.payload) == "21.5"
        assert ha.last("homeassistant/sensor/plugd_4242_peer_777_thing_2/config") is not None
        # silent for two intervals: offline, as the page says
        await ha.wait(f"{PREFIX}/peers/777/availability", lambda m: m.text == "offline")
        mark = ha.mark()
        send_udp(daemon.config.mesh.udp_port, b"777:Kitchen Sensor&5:19.25&2:3")
        await ha.wait(f"{PREFIX}/peers/777/availability", lambda m: m.text == "online", since=mark)
        state = await ha.wait(f"{PREFIX}/peers/777", since=mark)
        assert json.loads(state.payload)["thing_5"] == 19.25


async def test_a_bridged_peers_entities_carry_its_labels(
        make_daemon: Callable[..., Awaitable[Daemon]], broker: Broker) -> None:
    daemon = await make_daemon(**{"mqtt.host": "127.0.0.1", "mqtt.port": broker.port,
                                  "mqtt.bridge_mesh": True, "mesh.interval": 0.2})
    topic = "homeassistant/sensor/plugd_4242_peer_777_thing_{}/config"
    async with watching(broker, "homeassistant/#") as ha:
        send_udp(daemon.config.mesh.udp_port, b"777:Kitchen Sensor&5:21.50&2:3")
        assumed = json.loads((await ha.wait(topic.format(2))).payload)
        unnamed = json.loads((await ha.wait(topic.format(5))).payload)
        # Thing 2 as the ESP8266 firmware means it, its unit but no device class (a guess);
        # thing 5 as heard, with neither.
        assert (assumed["name"], assumed["unit_of_measurement"]) == ("Power", "W")
        assert "device_class" not in assumed
        assert unnamed["name"] == "Thing 5" and "unit_of_measurement" not in unnamed
        mark = ha.mark()
        await daemon.plug.save_label(777, 5, Label("Kitchen temperature", "°C", "temperature"))
        labelled = json.loads((await ha.wait(topic.format(5), since=mark)).payload)
        assert (labelled["name"], labelled["unit_of_measurement"], labelled["device_class"]) == (
            "Kitchen temperature", "°C", "temperature")
        assert labelled["unique_id"] == unnamed["unique_id"]  # the same entity, renamed


# --- the mesh across subnets ------------------------------------------------------------------


def relayed_message(node_id: int, via: int, value: float) -> bytes:
    """What the plugd `via` of another subnet publishes for a node it hears there."""
    return json.dumps({"id": node_id, "name": f"node {node_id}", "via": via,
                       "things": [{"id": 5, "value": value, "text": f"{value:.2f}"}]}).encode()


async def test_the_mesh_topics_carry_what_is_heard_here_and_take_in_live_copies_only(
        make_daemon: Callable[..., Awaitable[Daemon]], broker: Broker) -> None:
    async with watching(broker) as other:  # left by a plugd long gone: a snapshot of the past
        await other.publish("plugd/mesh/888", relayed_message(888, 9, 1.0), retain=True)
    daemon = await make_daemon(**{"mqtt.host": "127.0.0.1", "mqtt.port": broker.port,
                                  "mqtt.mesh": True, "mqtt.relay_to_lan": True,
                                  "mesh.interval": 0.2})
    assert daemon.mqtt is not None
    counts, registry = daemon.mqtt.mesh_counts, daemon.registry
    async with watching(broker, "plugd/mesh/#") as mesh:
        own = json.loads((await mesh.wait("plugd/mesh/4242")).payload)
        assert own["via"] == 4242 and own["name"] == "TestPlug"
        assert {t["id"] for t in own["things"]} >= {ThingId.PLUG, ThingId.CLOCK}
        send_udp(daemon.config.mesh.udp_port, b"777:Kitchen Sensor&5:21.50")
        heard = json.loads((await mesh.wait("plugd/mesh/777")).payload)
        assert heard["via"] == 4242 and heard["address"] == "127.0.0.1"
        assert heard["subnet"] == "127.0.0.0/8"
        assert heard["things"] == [{"id": 5, "value": 21.5, "text": "21.50"}]
        await until(lambda: counts["echoes"] > 0, "our own messages to come back, and be dropped")
        assert counts["retained"] == 1 and 888 not in registry.peers

        await mesh.publish("plugd/mesh/999", relayed_message(999, 9, 17.25))
        await until(lambda: 999 in registry.peers, "a live copy to be taken in")
        peer = registry.peers[999]
        assert peer.online and peer.via == 9 and peer.things[5].value == 17.25
        await until(lambda: counts["rebroadcast"] == 1, "the copy to be re-broadcast here")
        # ... and heard back: our own re-broadcast, dropped, never a node of ours.
        await until(lambda: registry.counters.own > 0, "our re-broadcast to come back")
        assert registry.peers[999].via == 9
        mark = mesh.mark()
        await mesh.wait("plugd/mesh/4242", since=mark)  # a later publication of our own
        assert all(json.loads(m.payload)["via"] == 9 for m in mesh.on("plugd/mesh/999"))

        # A node heard here counts once: the copy from the broker is ignored.
        await mesh.publish("plugd/mesh/777", relayed_message(777, 9, 30.0))
        await until(lambda: registry.counters.shadowed == 1, "the copy to be shadowed")
        assert registry.peers[777].via == 0 and registry.peers[777].things[5].value == 21.5

        await mesh.publish("plugd/mesh/5", b"nonsense")
        await until(lambda: counts["invalid"] == 1, "a bad message to be counted")
    status = daemon.status()["mqtt"]["mesh"]
    assert status["enabled"] and status["topics"] == "plugd/mesh/+" and status["error"]


# --- configuration and the pure parts --------------------------------------------------------


def test_the_password_is_kept_like_the_mesh_key(tmp_path: Path) -> None:
    secret = tmp_path / "mqtt-password"
    secret.write_text("from-a-file\n")
    secret.chmod(0o644)
    text = f'[mqtt]\nhost = "broker"\nusername = "plug"\npassword_file = "{secret}"\n'
    with pytest.raises(ConfigError, match=r"mqtt.password_file: .* readable by everyone"):
        config.with_secrets(config.parse(text), None, environ={})
    secret.chmod(0o600)
    assert config.with_secrets(config.parse(text), None, environ={}).mqtt.password == "from-a-file"
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "mqtt_password").write_text("from-systemd")
    loaded = config.with_secrets(config.parse(text), None,
                                 environ={"CREDENTIALS_DIRECTORY": str(credentials)})
    assert loaded.mqtt.password == "from-systemd"
    world = tmp_path / "plugd.toml"
    world.write_text('[mqtt]\nhost = "broker"\nusername = "plug"\npassword = "in-the-file"\n')
    world.chmod(0o644)
    with pytest.raises(ConfigError, match=r"mqtt.password: .* readable by everyone"):
        config.load(world, environ={})
    world.chmod(0o640)
    assert config.load(world, environ={}).mqtt.password == "in-the-file"


@pytest.mark.parametrize(("text", "key"), [
    ("port = 0", "mqtt.port"), ("keepalive = 2", "mqtt.keepalive"),
    ('topic_prefix = "a/+/b"', "mqtt.topic_prefix"), ('topic_prefix = "/a"', "mqtt.topic_prefix"),
    ('discovery_prefix = ""', "mqtt.discovery_prefix"), ('ca_file = "/x"', "mqtt.ca_file"),
    ('password = "p"', "mqtt.password"), ("tls = 1", "mqtt.tls"), ('hots = "x"', "mqtt.hots"),
    ("relay_to_lan = true", "mqtt.relay_to_lan"),
])
def test_bad_mqtt_settings_name_the_key(text: str, key: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(key)):
        config.parse(f"[mqtt]\n{text}\n")


def test_topic_labels_and_object_ids() -> None:
    assert discovery.default_prefix("Küche Plug #2", 5) == "plugd/kuche-plug-2"
    assert discovery.default_prefix("+/#", 5) == "plugd/node-5"
    assert discovery.object_id("plugd", 12, "peer", "a b/c") == "plugd_12_peer_a-b-c"
    topics = discovery.Topics("plugd/x", "homeassistant", 12)
    device = discovery.Device(12, "X", "m", "1", "")
    for topic, payload in discovery.announcements(topics, device):
        assert re.fullmatch(r"[a-zA-Z0-9_-]+", topic.split("/")[2])
        assert payload["unique_id"].startswith("plugd_12_")


def test_commands_parse() -> None:
    assert discovery.parse_command(b"ON", False) is True
    assert discovery.parse_command(b" off\n", True) is False
    assert discovery.parse_command(b"TOGGLE", True) is False
    with pytest.raises(ValidationError, match="command"):
        discovery.parse_command(b"\xff{}", True)


def test_backoff_grows_to_30_seconds_with_jitter() -> None:
    waits = [discovery.backoff(n, 0.999) for n in range(1, 12)]
    assert waits == sorted(waits) and max(waits) <= 30.0 and waits[0] < 1.0
    assert discovery.backoff(20, 0.0) == 15.0


def test_mqtt_is_off_by_default() -> None:
    assert config.parse("").mqtt.host == ""
