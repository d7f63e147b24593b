"""Labels at work: kept across restarts, refused input changes nothing, shown in nodes, recipes
and events; and two plugd nodes on loopback learning each other's names without a person."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from websockets.asyncio.client import connect

from plugd.service.daemon import Daemon
from tests.support import NODE_ID, Client, free_port, light_node, send_udp, until

LABEL = {"nodeId": 777, "thingId": 5, "name": "Fridge power", "unit": "W", "kind": "power"}


@asynccontextmanager
async def logged_in(daemon: Daemon, login: bool = True) -> AsyncIterator[Client]:
    async with connect(f"ws://127.0.0.1:{daemon.web.port}/ws") as ws:
        client = Client(ws)
        if login:
            assert (await client.ask({"command": "login", "token": daemon.auth.cli_token}))["success"]
        yield client


def peer_things(nodes: dict[str, Any], node_id: int) -> dict[int, dict[str, Any]]:
    [node] = [n for n in nodes["nodes"] if n["id"] == node_id]
    return {t["id"]: t for t in node["things"]}


async def test_a_label_is_shown_kept_and_survives_a_restart(make_daemon, tmp_path):
    daemon = await make_daemon()
    async with logged_in(daemon) as client:
        send_udp(daemon.config.mesh.udp_port, b"777:Fridge&2:80.00&5:120.00")
        await client.next_push("node_update")
        things = peer_things(await client.ask({"command": "request_nodes"}), 777)
        assert (things[2]["label"], things[2]["unit"], things[2]["origin"]) == ("Power", "W", "assumed")
        assert (things[5]["label"], things[5]["origin"]) == ("value 5", "unlabelled")

        saved = await client.ask({"command": "save_label", "label": LABEL})
        assert saved["success"] and saved["labels"] == [LABEL]
        pushed = await client.next_push("node_update")  # the pages show it at once
        shown = {t["id"]: t for t in pushed["node"]["things"]}[5]
        assert (shown["label"], shown["unit"], shown["kind"], shown["origin"]) == (
            "Fridge power", "W", "power", "label")
        assert json.loads((tmp_path / "state" / "labels.json").read_text()) == [LABEL]
    await daemon.stop()

    again = await make_daemon()
    async with logged_in(again) as client:
        nodes = await client.ask({"command": "request_nodes"})
        assert nodes["labels"] == [LABEL] and "temperature" in nodes["kinds"]
        deleted = await client.ask({"command": "delete_label", "nodeId": 777, "thingId": 5})
        assert deleted["success"] and deleted["labels"] == []
        assert json.loads((tmp_path / "state" / "labels.json").read_text()) == []


async def test_refused_labels_change_nothing_and_say_why(make_daemon, tmp_path):
    daemon = await make_daemon()
    async with logged_in(daemon) as client:
        await client.ask({"command": "save_label", "label": LABEL})
        file = tmp_path / "state" / "labels.json"
        before = file.read_bytes()
        for label, error in (({"kind": "smell"}, "label.kind: must be one of"),
                             ({"name": "Hot & cold"}, "label.name: must not contain '&'"),
                             ({"unit": "m:s"}, "label.unit: must not contain '&' or ':'"),
                             ({"nodeId": NODE_ID}, "label.nodeId: 4242 is this plug")):
            answer = await client.ask({"command": "save_label", "label": {**LABEL, **label}})
            assert answer["command"] == "error" and answer["error"].startswith(error), answer
        answer = await client.ask({"command": "delete_label", "nodeId": 777, "thingId": 6})
        assert answer["error"] == "label: thing 6 of node 777 has no label"
        assert file.read_bytes() == before
        assert (await client.ask({"command": "request_nodes"}))["labels"] == [LABEL]
    async with logged_in(daemon, login=False) as stranger:
        answer = await stranger.ask({"command": "save_label", "label": {**LABEL, "name": "Mine"}})
        assert answer["command"] == "error" and answer["login"] is True
    assert file.read_bytes() == before


async def test_recipes_and_their_events_speak_of_a_labelled_value(daemon, client):
    recipe = {"name": "Fridge guard", "sourceNodeId": 777, "sourceThingId": 5, "relation": 2,
              "targetValue": 100, "localThingId": 1, "localValue": 0}
    await client.ask({"command": "switch", "state": "on"})
    await client.ask({"command": "save_recipe", "recipe": recipe})
    await client.ask({"command": "save_label", "label": LABEL})
    [listed] = (await client.ask({"command": "request_recipes"}))["recipes"]
    assert (listed["source"]["label"], listed["source"]["unit"]) == ("Fridge power", "W")
    assert listed["local"]["label"] == "Plug"
    send_udp(daemon.config.mesh.udp_port, b"777:Kitchen&5:120.00")
    event = await client.next_push("event", lambda m: m["event"]["kind"] == "relay")
    assert event["event"]["message"] == ("Recipe “If Kitchen Fridge power is above 100 W then "
                                         "switch off” switched the plug off")


# --- two plugd nodes on loopback ----------------------------------------------------------




def learned(daemon: Daemon, node_id: int) -> dict[int, tuple[str, str]]:
    peer = daemon.registry.peers.get(node_id)
    return {} if peer is None else {i: (lab.name, lab.unit) for i, lab in peer.learned.items()}


async def test_two_plugd_nodes_learn_each_others_names(tmp_path, factory):
    port = free_port()
    async with light_node(tmp_path, factory, "Hall", 501, port) as hall, \
            light_node(tmp_path, factory, "Kitchen", 502, port, **{"relay.pin": 18}) as kitchen:
        await until(lambda: learned(hall, 502).get(5) == ("Current", "A")
                    and learned(kitchen, 501).get(2) == ("Power", "W"),
                    "the two nodes to learn each other's names")
        assert hall.plug.core.shown(502, 6).label.name == "Energy total"
        assert str(hall.plug.core.shown(502, 6).origin) == "learned"
        async with logged_in(hall) as client:
            await client.ask({"command": "save_label", "label": {
                "nodeId": 502, "thingId": 1, "name": "Kitchen lamp", "kind": "switch"}})
            things = peer_things(await client.ask({"command": "request_nodes"}), 502)
            assert (things[1]["label"], things[1]["origin"]) == ("Kitchen lamp", "label")
            assert (things[4]["label"], things[4]["origin"]) == ("Clock", "learned")


async def test_names_travel_signed_on_a_signed_mesh(tmp_path, factory):
    port = free_port()
    keyed = {"mesh.mesh_key": "k3y-Of-the-h0use-Mesh-2026-xyz"}
    async with light_node(tmp_path, factory, "Hall", 501, port, **keyed) as hall, \
            light_node(tmp_path, factory, "Kitchen", 502, port, **keyed, **{"relay.pin": 18}):
        await until(lambda: learned(hall, 502).get(2) == ("Power", "W"), "the signed names")
        refused = hall.registry.counters.unsigned_refused
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:  # to both, on loopback
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            sock.sendto(b"502:Kitchen&n2:power:W:Spoofed", ("127.255.255.255", port))
        await until(lambda: hall.registry.counters.unsigned_refused > refused,
                    "the unsigned names to be refused")
        assert learned(hall, 502)[2] == ("Power", "W")
