"""The mesh under test: three `plugd --simulate` processes and two ESP8266-format sensor nodes,
each in a network namespace of its own, on veths to one bridge that sits in a further
namespace, so nothing they send can reach an interface of the host.

Namespaces are named `plugdmesh<pid>-<node>` and deleted in teardown, whatever happened;
ones left by a run that was killed are deleted at the next start.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mesh import netns
from tests.support import PlugdProcess, session, stop_process

HERE = Path(__file__).parent
SUBNET = "10.77.0.0/24"
#: Sent to only by the processes started inside the namespaces (`in_namespace`), never the host.
BROADCAST = "10.77.0.255"
UDP_PORT = 2390
HTTP_PORT = 8080
#: Seconds between broadcasts, and how many silent intervals make a node offline.
INTERVAL = 1.0
OFFLINE_AFTER = 3
PREFIX = f"plugdmesh{os.getpid()}"
STALE = r"plugdmesh(\d+)-.*"
BRIDGE = "br0"


def in_namespace(namespace: str, *command: str) -> list[str]:
    """`command` run in `namespace`; it gets SIGTERM if the test run dies without its teardown."""
    return ["setpriv", "--pdeathsig", "SIGTERM", "ip", "netns", "exec", namespace, *command]


@dataclass
class Node:
    """One namespace on the bridge: `port` is its veth's end on the bridge."""

    key: str
    address: str
    log: Path
    name: str = ""
    #: 0 (plugd only): derived from the MAC, as an ESP8266's chip id is.
    node_id: int = 0
    mac: str = ""
    proc: subprocess.Popen[bytes] | None = None

    @property
    def namespace(self) -> str:
        return f"{PREFIX}-{self.key}"

    @property
    def port(self) -> str:
        return f"p-{self.key}"

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=15)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@dataclass
class PlugNode(Node):
    """A plugd daemon."""

    #: Empty: plugd finds the interface's directed broadcast itself (plugd.service.netif).
    broadcast: list[str] = field(default_factory=list)
    state: Path = Path()
    process: PlugdProcess | None = None

    def start(self, directory: Path) -> None:
        """Start plugd in the node's namespace; `process.ready()` waits for it."""
        self.process = PlugdProcess(
            directory, node_id=self.node_id or None, name=self.name, key=self.key,
            udp_port=UDP_PORT, http_port=HTTP_PORT, prefix=in_namespace(self.namespace),
            config={"mesh": {"interval": INTERVAL, "offline_after": OFFLINE_AFTER,
                             "broadcast": self.broadcast},
                    "state": {"dir": str(self.state)}},
            start=False)
        self.process.spawn()
        self.log = self.process.log

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def ask(self, request: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        """One request over the WebSocket API, logged in with the daemon's token file."""
        assert self.process is not None
        sock = netns.in_netns(self.namespace, lambda: socket.create_connection(
            ("127.0.0.1", HTTP_PORT), timeout=timeout))
        with session(HTTP_PORT, self.process.token, sock=sock, timeout=timeout) as ws:
            answer = ws.ask(request)
        if answer["command"] == "error":
            raise AssertionError(f"{self.name} refused {request['command']}: {answer['error']}")
        return answer

    def nodes(self) -> dict[int, dict[str, Any]]:
        """The nodes it lists, itself left out, by id."""
        return {n["id"]: n for n in self.ask({"command": "request_nodes"})["nodes"] if not n.get("self")}

    def relay(self) -> float:
        things = self.ask({"command": "request_things"})["things"]
        return next(t["value"] for t in things if t["id"] == 1)

    def recipes(self) -> dict[int, dict[str, Any]]:
        return {r["id"]: r for r in self.ask({"command": "request_recipes"})["recipes"]}


@dataclass
class EspNode(Node):
    """An ESP8266-format sensor node (esp_node.py)."""

    temperature_file: Path = Path()
    nodes_file: Path = Path()

    def start(self, directory: Path, temperature: float) -> None:
        self.set_temperature(temperature)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                in_namespace(self.namespace, sys.executable, str(HERE / "esp_node.py"),
                             "--id", str(self.node_id), "--name", self.name, "--ip", self.address,
                             "--port", str(UDP_PORT), "--interval", str(INTERVAL),
                             "--temperature-file", str(self.temperature_file),
                             "--nodes-file", str(self.nodes_file)),
                stdout=subprocess.DEVNULL, stderr=log)

    def set_temperature(self, value: float) -> None:
        temporary = self.temperature_file.with_suffix(".tmp")
        temporary.write_text(f"{value}\n")
        os.replace(temporary, self.temperature_file)

    def heard(self) -> dict[int, dict[str, Any]]:
        """The nodes it heard, by id (none until it heard one)."""
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
        try:
            return {int(k): v for k, v in json.loads(self.nodes_file.read_text()).items()}
        except (OSError, ValueError):
            return {}


@dataclass
class Mesh:
    plugs: dict[str, PlugNode]
    esps: dict[str, EspNode]
    #: Packets of the mesh's subnet seen on the host's interfaces (none, we expect) and on the bridge's.
    host_counter: netns.PacketCounter
    bridge_counter: netns.PacketCounter | None = None
    #: The host's interfaces before the mesh was built.
    host_links_before: set[str] = field(default_factory=set)

    @property
    def bridge_namespace(self) -> str:
        return f"{PREFIX}-bridge"

    @property
    def nodes(self) -> list[Node]:
        return [*self.plugs.values(), *self.esps.values()]

    def cut(self, node: Node) -> None:
        netns.ip("-n", self.bridge_namespace, "link", "set", node.port, "down")

    def restore(self, node: Node) -> None:
        netns.ip("-n", self.bridge_namespace, "link", "set", node.port, "up")

    def build(self, directory: Path) -> None:
        bridge = self.bridge_namespace
        netns.ip("netns", "add", bridge)
        netns.ip("-n", bridge, "link", "add", BRIDGE, "type", "bridge")
        netns.ip("-n", bridge, "link", "set", BRIDGE, "up")
        for node in self.nodes:
            netns.ip("netns", "add", node.namespace)
            # Made inside the bridge's namespace with the peer placed straight into the node's:
            # neither end ever exists in the host's.
            netns.ip("-n", bridge, "link", "add", node.port, "type", "veth",
                     "peer", "name", "eth0", "netns", node.namespace)
            netns.ip("-n", bridge, "link", "set", node.port, "master", BRIDGE, "up")
            netns.ip("-n", node.namespace, "link", "set", "lo", "up")
            if node.mac:
                netns.ip("-n", node.namespace, "link", "set", "eth0", "address", node.mac)
            netns.ip("-n", node.namespace, "addr", "add", f"{node.address}/24", "brd", "+", "dev", "eth0")
            netns.ip("-n", node.namespace, "link", "set", "eth0", "up")
        self.bridge_counter = netns.PacketCounter(SUBNET, bridge)
        for plug in self.plugs.values():
            plug.start(directory)
        for i, esp in enumerate(self.esps.values()):
            esp.start(directory, temperature=20.0 + i)

    def close(self) -> None:
        """Stop every process and delete every namespace, even when one of them fails."""
        for node in self.nodes:
            node.stop()
        if self.bridge_counter is not None:
            self.bridge_counter.close()
        failures = []
        for namespace in [self.bridge_namespace, *(n.namespace for n in self.nodes)]:
            if (netns.NETNS_DIR / namespace).exists():
                try:
                    netns.ip("netns", "del", namespace)
                except RuntimeError as err:
                    failures.append(str(err))
        assert not failures, f"namespaces left behind: {failures}"


def mac_node_id(mac: str) -> int:
    """An ESP8266's chip id: the lower 24 bits of its MAC address."""
    return int(mac.replace(":", ""), 16) & 0xFFFFFF


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    netns.remove_stale(STALE)
    directory = tmp_path_factory.mktemp("mesh")
    host_links_before = set(netns.links())
    # Counting starts before anything is built, so it covers the whole life of the mesh.
    mesh = Mesh(
        plugs={
            "a": PlugNode("a", "10.77.0.11", directory / "plugd-a.log", node_id=1001, name="plug-a",
                          state=directory / "a-state"),
            "b": PlugNode("b", "10.77.0.12", directory / "plugd-b.log", node_id=1002, name="plug-b",
                          broadcast=[BROADCAST], state=directory / "b-state"),
            "c": PlugNode("c", "10.77.0.13", directory / "plugd-c.log", mac="02:77:00:0c:0d:0e",
                          name="plug-c", state=directory / "c-state"),
        },
        esps={
            "e1": EspNode("e1", "10.77.0.21", directory / "e1.log", node_id=2001, name="esp-living",
                          temperature_file=directory / "e1.temp", nodes_file=directory / "e1.nodes"),
            "e2": EspNode("e2", "10.77.0.22", directory / "e2.log", node_id=2002, name="esp-garden",
                          temperature_file=directory / "e2.temp", nodes_file=directory / "e2.nodes"),
        },
        host_counter=netns.PacketCounter(SUBNET), host_links_before=host_links_before)
    try:
        mesh.build(directory)
        for plug in mesh.plugs.values():
            assert plug.process is not None
            plug.process.ready()
        yield mesh
    finally:
        mesh.close()
        mesh.host_counter.close()
