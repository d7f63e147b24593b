"""plugd as a user runs it: `plugd --simulate` processes, `plugctl`, datagrams on loopback."""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import time

import pytest

from plugd.core.wire import decode
from tests.support import BIN, PlugdProcess, free_port, listener, send_udp, wait_for


@pytest.fixture
def running(tmp_path):
    started: list[PlugdProcess] = []

    def start(*extra: str, name: str | None = "SimPlug", **kwargs) -> PlugdProcess:
        started.append(PlugdProcess(tmp_path, *extra, name=name, **kwargs))
        return started[-1]
    yield start
    for r in started:
        r.stop()


def test_simulated_plug_broadcasts_esp_datagrams_on_loopback(running, tmp_path):
    udp = free_port()
    with listener(udp) as sock:
        plug = running(udp_port=udp)
        first, (address, _) = sock.recvfrom(2048)
        # Power and current are sent once the meter has its first reading, a second on.
        data = wait_for(lambda: d if b"&2:" in (d := sock.recvfrom(2048)[0]) else None, "power")
    packet = decode(first)
    assert (packet.node_id, packet.node_name) == (4242, "SimPlug") and packet.rejected == 0
    assert [f.thing_id for f in packet.fields] == [1, 3, 4, 6, 7] and address == "127.0.0.1"
    packet = decode(data)
    assert [f.thing_id for f in packet.fields] == [1, 2, 3, 4, 5, 6, 7]
    assert data.split(b"&")[1:4] == [b"1:0.00", b"2:0.00", b"3:0.00"]  # relay off: 0 W exactly
    assert plug.stop() == 0


def test_an_esp_datagram_shows_the_node_and_its_recipe_switches_the_relay(running):
    plug = running()
    send_udp(plug.udp, b"10223344:SmartPlugEsp&1:1.00&2:1523.75&3:412.30&4:13:05:09 - 24.11.2026")
    table = wait_for(lambda: "SmartPlugEsp" in (out := plug.ctl("nodes").stdout) and out, "the node")
    assert "10223344" in table and "online" in table and "13:05:09 - 24.11.2026" in table
    nodes = json.loads(plug.ctl("--json", "nodes").stdout)["nodes"]
    assert {n["id"] for n in nodes} == {4242, 10223344}

    with plug.session() as ws:
        answer = ws.ask({"command": "save_recipe", "recipe": {
            "name": "follow", "sourceNodeId": 10223344, "sourceThingId": 2, "relation": 2,
            "targetValue": 1000, "localThingId": 1, "localValue": 1}})
    assert answer["success"], answer
    assert plug.status()["relay"] is False
    send_udp(plug.udp, b"10223344:SmartPlugEsp&2:1600.00")
    wait_for(lambda: plug.status()["relay"], "the recipe to switch the relay on")
    recipes = plug.ctl("recipes").stdout
    assert "follow" in recipes and "is above 1000" in recipes and "yes (1600)" in recipes
    assert plug.stop() == 0


def test_plugctl_switches_and_the_state_survives_a_restart(running, tmp_path):
    plug = running()
    assert plug.ctl("on").stdout.strip() == "relay on"
    assert plug.ctl("toggle").stdout.strip() == "relay off"
    assert plug.ctl("toggle").stdout.strip() == "relay on"
    status = plug.ctl("status").stdout
    assert "relay    on" in status and "SimPlug (id 4242)" in status
    assert plug.stop() == 0
    things = json.loads((plug.state / "things.json").read_text())
    assert things[0]["value"] == 1.0
    again = running()  # power_on_state = last
    assert again.status()["relay"] is True
    assert again.stop() == 0


def test_plugctl_says_when_it_cannot_reach_the_daemon():
    done = subprocess.run([str(BIN / "plugctl"), "--port", str(free_port(socket.SOCK_STREAM)), "status"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 3 and "cannot reach plugd" in done.stderr


def test_two_simulated_plugs_mesh_over_loopback(running):
    udp = free_port()
    a = running(udp_port=udp, node_id=1001, name="PlugA")
    b = running(udp_port=udp, node_id=1002, name="PlugB")
    for plug, other in ((a, "PlugB"), (b, "PlugA")):
        wait_for(lambda: other in plug.ctl("nodes").stdout, f"{other} in the other's nodes")
    assert a.stop() == 0 and b.stop() == 0


def test_sighup_reloads_and_a_bad_file_keeps_the_running_configuration(running):
    plug = running(name="Before")
    assert plug.status()["nodeName"] == "Before"
    plug.configure({"node": {"name": "After"}})
    plug.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: len(plug.said("READY=1")) == 2, "the reload to say READY=1")
    assert plug.said("RELOADING=1") and plug.status()["nodeName"] == "After"
    plug.config_file.write_text("[node]\nname = 5\n")
    plug.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "node.name: expected a string" in plug.log.read_text(), "the refusal")
    assert plug.status()["nodeName"] == "After"
    assert plug.stop() == 0


def test_sigterm_saves_and_exits_cleanly(running):
    plug = running()
    send_udp(plug.udp, b"555:Garage&5:3.00")
    wait_for(lambda: plug.status()["nodesOnline"] == 1, "the node")
    plug.proc.send_signal(signal.SIGTERM)
    assert plug.proc.wait(timeout=10) == 0
    nodes = json.loads((plug.state / "nodes.json").read_text())
    assert [(n["id"], n["name"]) for n in nodes] == [(555, "Garage")]
    assert "plugd stopped" in plug.log.read_text()


def test_a_corrupt_state_file_is_kept_and_the_daemon_starts(running, tmp_path):
    state = tmp_path / "state-4242"
    state.mkdir()
    (state / "recipes.json").write_text("{{{ not json")
    plug = running()
    assert plug.status()["recipes"] == 0
    (aside,) = state.glob("recipes.json.corrupt-*")
    assert aside.read_text() == "{{{ not json"
    assert "recipes.json is unreadable" in plug.log.read_text()
    assert plug.stop() == 0


def test_a_configuration_error_stops_the_start_with_the_key(tmp_path):
    config = tmp_path / "plugd.toml"
    config.write_text("[mesh]\nudp_port = 'x'\n")
    done = subprocess.run([str(BIN / "plugd"), "--config", str(config)], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 2 and "mesh.udp_port: expected an integer" in done.stderr


def test_a_port_in_use_is_a_clear_error(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run([str(BIN / "plugd"), "--simulate", "--http-port", str(port),
                               "--udp-port", str(free_port()), "--state-dir", str(tmp_path)],
                              capture_output=True, text=True, timeout=30, env={**os.environ})
    assert done.returncode == 1 and "cannot start" in done.stderr


def test_systemd_sees_ready_status_and_watchdog_pings_that_stop_while_the_loop_hangs(running):
    plug = running(env={"WATCHDOG_USEC": "200000"})  # a ping every 0.1 s
    ready = next(m for _, m in plug.notices if b"READY=1" in m.split(b"\n"))
    assert b"STATUS=relay off" in ready and b"nodes online" in ready
    wait_for(lambda: len(plug.said("WATCHDOG=1")) >= 5, "five watchdog pings")
    with plug.session() as ws:
        asked = time.monotonic()
        answer = ws.ask({"command": "simulate_hang", "seconds": 2})
        answered = time.monotonic()
    assert answer["command"] == "response_simulate_hang", answer
    # The loop was blocked for 2 s in between: the pings stopped, and they come back.
    wait_for(lambda: sum(t > answered for t in plug.said("WATCHDOG=1")) >= 3, "pings after the hang")
    pings = plug.said("WATCHDOG=1")
    silent_from, silent_to = max(itertools.pairwise(pings), key=lambda gap: gap[1] - gap[0])
    assert silent_from < answered and silent_to > asked, (asked, answered, pings)
    assert silent_to - silent_from > 1.5, pings  # silence while it hung: systemd would restart it
    assert plug.stop() == 0
    assert plug.said("STOPPING=1")
