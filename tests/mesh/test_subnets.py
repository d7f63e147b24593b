"""The mesh across two subnets, through one MQTT broker ([mqtt] mesh and relay_to_lan).

Two bridges in a hub namespace make two subnets that nothing routes between (a new
namespace forwards nothing), so no broadcast crosses; mosquitto runs in the hub, on an
address of each subnet. Subnet 1 holds plug-a (mesh), plug-c (mesh, relay_to_lan) and an
ESP8266-format sensor; subnet 2 holds plug-b (mesh, relay_to_lan) and a plain UDP listener.
A subscriber in the hub records every message on the mesh topics.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mesh import netns
from mesh.conftest import EspNode, PlugNode, in_namespace
from mesh.esp_node import heard as esp_heard
from plugd.core.model import Relation
from tests.broker import MOSQUITTO, Broker, have_mosquitto
from tests.support import PlugdProcess, wait_for

PROBLEM = netns.unusable() or (None if have_mosquitto() else "mosquitto is not installed")
if PROBLEM:
    pytest.skip(f"the two-subnet mesh needs root, `ip netns` and mosquitto: {PROBLEM}",
                allow_module_level=True)
SUBNETS = ("10.79.1.0/24", "10.79.2.0/24")
CLASH = next(filter(None, (netns.host_uses(s) for s in SUBNETS)), None)
if CLASH:
    pytest.skip(f"the two-subnet mesh uses {SUBNETS}, but {CLASH}", allow_module_level=True)

PREFIX = f"plugdnet{os.getpid()}"
STALE = r"plugdnet(\d+)-.*"
HUB = f"{PREFIX}-hub"
#: The broker's address on each subnet (the hub's end of each bridge).
HUB_ADDRESS = {1: "10.79.1.1", 2: "10.79.2.1"}
MQTT_PORT = 1883
UDP_PORT = 2390
HTTP_PORT = 8080
INTERVAL = 1.0
OFFLINE_AFTER = 3
A_ID, B_ID, C_ID, ESP_ID = 1101, 1102, 1103, 2101
TEMPERATURE = 1  # the ESP sensor node's thing (esp_node.py)
PLUG = 1


@dataclass
class SubnetPlug(PlugNode):
    """A plugd on one of the subnets, with its [mqtt] table."""

    subnet: int = 1
    mqtt: dict[str, Any] = field(default_factory=dict)

    @property
    def namespace(self) -> str:
        return f"{PREFIX}-{self.key}"

    def start(self, directory: Path) -> None:
        self.process = PlugdProcess(
            directory, node_id=self.node_id, name=self.name, key=self.key, udp_port=UDP_PORT,
            http_port=HTTP_PORT, prefix=in_namespace(self.namespace),
            config={"mesh": {"interval": INTERVAL, "offline_after": OFFLINE_AFTER, "broadcast": []},
                    "state": {"dir": str(self.state)},
                    "mqtt": {"host": HUB_ADDRESS[self.subnet], "port": MQTT_PORT, **self.mqtt}},
            start=False)
        self.process.spawn()
        self.log = self.process.log

    def status(self) -> dict[str, Any]:
        return self.ask({"command": "request_status"})

    def mesh_counts(self) -> dict[str, Any]:
        mesh: dict[str, Any] = self.status()["mqtt"]["mesh"]
        return mesh


@dataclass
class SubnetEsp(EspNode):
    @property
    def namespace(self) -> str:
        return f"{PREFIX}-{self.key}"


class HubBroker(Broker):
    """mosquitto in the hub namespace, on every address there."""

    def start(self) -> None:
        self.proc = subprocess.Popen(in_namespace(HUB, MOSQUITTO, "-c", str(self.config)),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

        def listening() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"mosquitto exited with {self.proc.returncode}: {self.tail()}")

            def probe() -> bool:
                with socket.socket() as sock:
                    return sock.connect_ex(("127.0.0.1", self.port)) == 0
            return netns.in_netns(HUB, probe)
        wait_for(listening, "mosquitto to listen in the hub")


class Recorder:
    """mosquitto_sub in the hub: every message on the mesh topics, as (retained, topic, payload)."""

    def __init__(self) -> None:
        self.messages: list[tuple[bool, str, dict[str, Any] | None]] = []
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(
            in_namespace(HUB, "mosquitto_sub", "-h", "127.0.0.1", "-p", str(MQTT_PORT),
                         "-t", "plugd/mesh/#", "-F", "%r %t %p"),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            retained, topic, payload = line.decode().rstrip("\n").split(" ", 2)
            with self._lock:
                self.messages.append((retained == "1", topic, json.loads(payload) if payload else None))

    def on(self, node_id: int) -> list[dict[str, Any]]:
        """The payloads published for one node, oldest first."""
        with self._lock:
            return [p for _, t, p in self.messages if t == f"plugd/mesh/{node_id}" and p]

    def topics(self) -> set[str]:
        with self._lock:
            return {t for _, t, _ in self.messages}

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(15)
        self._thread.join(5)


class Listener:
    """A plain UDP socket on the mesh port, opened inside a namespace: what a node there hears."""

    def __init__(self, namespace: str) -> None:
        def open_socket() -> socket.socket:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("0.0.0.0", UDP_PORT))
            return sock
        self.socket = netns.in_netns(namespace, open_socket)
        self.socket.settimeout(0.2)

    def next_from(self, node_id: int) -> bytes | None:
        """The next datagram of `node_id`, or None when none came just now."""
        try:
            data, _ = self.socket.recvfrom(2048)
        except TimeoutError:
            return None
        return data if data.startswith(f"{node_id}:".encode()) else None


@dataclass
class Subnets:
    plugs: dict[str, SubnetPlug]
    esp: SubnetEsp
    broker: HubBroker
    recorder: Recorder | None = None
    listener: Listener | None = None
    namespaces: list[str] = field(default_factory=list)

    def build(self, directory: Path) -> None:
        netns.ip("netns", "add", HUB)
        self.namespaces.append(HUB)
        netns.ip("-n", HUB, "link", "set", "lo", "up")
        for number, address in HUB_ADDRESS.items():
            bridge = f"br{number}"
            netns.ip("-n", HUB, "link", "add", bridge, "type", "bridge")
            netns.ip("-n", HUB, "addr", "add", f"{address}/24", "brd", "+", "dev", bridge)
            netns.ip("-n", HUB, "link", "set", bridge, "up")
        members = [(p.namespace, p.key, p.address, p.subnet) for p in self.plugs.values()]
        members += [(self.esp.namespace, self.esp.key, self.esp.address, 1),
                    (f"{PREFIX}-l", "l", "10.79.2.31", 2)]
        for namespace, key, address, subnet in members:
            netns.ip("netns", "add", namespace)
            self.namespaces.append(namespace)
            netns.ip("-n", HUB, "link", "add", f"p-{key}", "type", "veth",
                     "peer", "name", "eth0", "netns", namespace)
            netns.ip("-n", HUB, "link", "set", f"p-{key}", "master", f"br{subnet}", "up")
            netns.ip("-n", namespace, "link", "set", "lo", "up")
            netns.ip("-n", namespace, "addr", "add", f"{address}/24", "brd", "+", "dev", "eth0")
            netns.ip("-n", namespace, "link", "set", "eth0", "up")
        self.broker.start()
        self.recorder = Recorder()
        self.listener = Listener(f"{PREFIX}-l")
        for plug in self.plugs.values():
            plug.start(directory)
        self.esp.start(directory, temperature=20.0)

    def close(self) -> None:
        for plug in self.plugs.values():
            plug.stop()
        self.esp.stop()
        if self.recorder is not None:
            self.recorder.close()
        if self.listener is not None:
            self.listener.socket.close()
        self.broker.stop()
        failures = []
        for namespace in self.namespaces:
            try:
                netns.ip("netns", "del", namespace)
            except RuntimeError as err:
                failures.append(str(err))
        assert not failures, f"namespaces left behind: {failures}"


@pytest.fixture(scope="module")
def subnets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Subnets]:
    netns.remove_stale(STALE)
    directory = tmp_path_factory.mktemp("subnets")

    def plug(key: str, node_id: int, address: str, subnet: int, **mqtt: Any) -> SubnetPlug:
        return SubnetPlug(key, address, directory / f"plugd-{key}.log", name=f"plug-{key}",
                          node_id=node_id, state=directory / f"{key}-state", subnet=subnet,
                          mqtt={"mesh": True, **mqtt})

    built = Subnets(
        plugs={"a": plug("a", A_ID, "10.79.1.11", 1),
               "c": plug("c", C_ID, "10.79.1.13", 1, relay_to_lan=True),
               "b": plug("b", B_ID, "10.79.2.12", 2, relay_to_lan=True)},
        esp=SubnetEsp("e1", "10.79.1.21", directory / "e1.log", node_id=ESP_ID, name="esp-living",
                      temperature_file=directory / "e1.temp", nodes_file=directory / "e1.nodes"),
        broker=HubBroker(directory / "broker", port=MQTT_PORT, bind=""))
    try:
        built.build(directory)
        for each in built.plugs.values():
            assert each.process is not None
            each.process.ready()
        yield built
    finally:
        built.close()


def recipe(recipe_id: int, source: int, thing: int, relation: Relation, target: float,
           local_value: float) -> dict[str, object]:
    return {"command": "save_recipe", "recipe": {
        "id": recipe_id, "name": f"rule {recipe_id}", "sourceNodeId": source,
        "sourceThingId": thing, "relation": int(relation), "targetValue": target,
        "localThingId": PLUG, "localValue": local_value}}


def test_a_recipe_on_subnet_2_acts_on_an_esp_node_of_subnet_1(subnets: Subnets) -> None:
    b, esp = subnets.plugs["b"], subnets.esp
    b.ask({"command": "switch", "state": "off"})
    b.ask(recipe(1, ESP_ID, TEMPERATURE, Relation.SMALLER_THAN, 19, 1))
    b.ask(recipe(2, ESP_ID, TEMPERATURE, Relation.BIGGER_THAN, 21, 0))
    node = wait_for(lambda: b.nodes().get(ESP_ID, {}).get("online") and b.nodes()[ESP_ID],
                    "plug-b to list the ESP node of subnet 1 online")
    assert node["name"] == "esp-living" and node["via"] in (A_ID, C_ID)
    assert node["address"] == esp.address  # where it was heard, on its own subnet

    esp.set_temperature(17.25)
    wait_for(lambda: b.relay() == 1, "the cold reading on subnet 1 to switch plug-b on")
    esp.set_temperature(22.75)
    wait_for(lambda: b.relay() == 0, "the warm reading on subnet 1 to switch plug-b off")


def test_plugd_peers_meet_across_the_subnets(subnets: Subnets) -> None:
    a, b = subnets.plugs["a"], subnets.plugs["b"]
    wait_for(lambda: a.nodes().get(B_ID, {}).get("online"), "plug-a to list plug-b online")
    wait_for(lambda: b.nodes().get(A_ID, {}).get("online"), "plug-b to list plug-a online")
    # plug-a publishes itself; plug-c, on its subnet, hears it directly and publishes it too.
    assert b.nodes()[A_ID]["via"] in (A_ID, C_ID)
    b.ask({"command": "switch", "state": "off"})
    a.ask(recipe(3, B_ID, PLUG, Relation.EQUALS, 1, 1))
    a.ask(recipe(4, B_ID, PLUG, Relation.EQUALS, 0, 0))
    wait_for(lambda: a.relay() == 0, "plug-a to follow plug-b off")
    b.ask({"command": "switch", "state": "on"})
    wait_for(lambda: a.relay() == 1, "plug-a to follow plug-b on, across the subnets")


def test_relay_to_lan_brings_the_esp_node_to_subnet_2_in_the_esp_format(subnets: Subnets) -> None:
    listener = subnets.listener
    assert listener is not None
    datagram = wait_for(lambda: listener.next_from(ESP_ID), "the ESP node's values on subnet 2")
    parsed = esp_heard(datagram)  # read as an ESP8266 reads it
    assert parsed is not None and parsed[0] == ESP_ID and parsed[1] == "esp-living"
    assert {1, 2} <= set(parsed[2]) and parsed[2][2] == "45.00"
    assert datagram.endswith(f"&via:{B_ID}".encode())  # thing 0 to an ESP: no recipe uses it
    # plug-c relays plug-b onto subnet 1, where the ESP node hears it as it hears any node.
    heard = wait_for(lambda: subnets.esp.heard().get(B_ID), "the ESP node to hear plug-b")
    assert heard["name"] == "plug-b" and heard["things"]["1"] in ("0.00", "1.00")


def test_a_node_heard_both_ways_counts_once(subnets: Subnets) -> None:
    c = subnets.plugs["c"]
    # plug-c hears the ESP node and plug-a on its subnet, and reads them from the broker too.
    wait_for(lambda: c.mesh_counts()["received"] > 0 and c.status()["counters"]["shadowed"] > 0,
             "plug-c to read copies of nodes it hears itself")
    nodes = c.nodes()
    assert nodes[ESP_ID]["via"] == 0 and nodes[A_ID]["via"] == 0
    assert nodes[ESP_ID]["address"] == subnets.esp.address
    assert list(nodes).count(ESP_ID) == 1


def test_nothing_goes_round(subnets: Subnets) -> None:
    recorder = subnets.recorder
    assert recorder is not None
    a, b, c = (subnets.plugs[k] for k in "abc")
    # Every plugd's own datagram counters move on: count a few more ESP datagrams at plug-a.
    accepted = a.status()["counters"]["accepted"]
    published = len(recorder.on(ESP_ID))
    wait_for(lambda: a.status()["counters"]["accepted"] >= accepted + 12,
             "plug-a to hear a dozen more datagrams")
    after = a.status()["counters"]["accepted"]
    # One topic per node, and only the plugd that heard a node directly (or is it) publish it.
    assert recorder.topics() == {f"plugd/mesh/{n}" for n in (A_ID, B_ID, C_ID, ESP_ID)}
    assert {p["via"] for p in recorder.on(ESP_ID)} <= {A_ID, C_ID}
    assert {p["via"] for p in recorder.on(A_ID)} <= {A_ID, C_ID}  # both hear plug-a directly
    assert {p["via"] for p in recorder.on(B_ID)} == {B_ID}  # alone on subnet 2: never relayed back
    assert all(p["subnet"] == SUBNETS[0] for p in recorder.on(ESP_ID))
    # Bounded: at most one publication per datagram heard, from each of the two hearing plugd
    # (plug-a and plug-c hear the ESP node and plug-a's datagrams; each may publish per datagram).
    assert len(recorder.on(ESP_ID)) - published <= 2 * (after - accepted) + 4
    # plug-b re-broadcast values, heard its own copies back and dropped them, and never
    # published a node of subnet 1; nor did anyone take back their own messages.
    counts = b.mesh_counts()
    assert counts["rebroadcast"] > 0
    assert b.status()["counters"]["own"] > 0
    for plug in (a, b, c):
        counts = plug.mesh_counts()
        assert counts["echoes"] > 0 and counts["invalid"] == 0, (plug.name, counts)

