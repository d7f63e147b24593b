"""Settings from the page: every key it may change is checked by the file's rules, applied while
the plug runs, kept across a restart; the ones `[page] fixed` pins keep the file's value."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from plugd.core import meshkey
from plugd.core.model import ThingId, sanitize_name
from plugd.errors import ConfigError
from plugd.service import config as plug_config
from plugd.service import settings
from plugd.service.daemon import Daemon
from tests.support import Client, free_port, running_daemon, until

KEY = "Kq3Vx9Lm2Rt7Wz4Bn8Hc5Jd"  # well over the 64 bits a key needs
OTHER_KEY = "Yp6Gs1Nf8Tq3Xv7Mk2Lr9Dw"
EVERY_NEW_KEY = {"relay.power_on_state": "schedule", "relay.stop_state": "keep",
                 "protection.max_power": 2500.0, "protection.max_current": 11.5,
                 "protection.hold": 1.5, "protection.retry_after": 30.0,
                 "energy.price_per_kwh": 0.31, "energy.currency": "EUR",
                 "display.mode": "clock", "display.brightness": 3,
                 "location.latitude": 52.52, "location.longitude": 13.4}


@contextlib.asynccontextmanager
async def logged_in(daemon: Daemon) -> AsyncIterator[Client]:
    """A WebSocket client of `daemon`, logged in with its token, as plugctl is."""
    async with connect(f"ws://127.0.0.1:{daemon.web.port}/ws") as ws:
        client = Client(ws)
        assert (await client.ask({"command": "login", "token": daemon.auth.cli_token}))["success"]
        yield client


def stored(daemon: Daemon) -> dict[str, Any]:
    path = daemon.plug.state.path / settings.SETTINGS_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def counter(daemon: Daemon, key: str) -> int | None:
    """The counter of the datagram the plug sends now, when it is signed with `key`."""
    return meshkey.verify(daemon.plug.datagram(), key.encode())


def file_config(tmp_path: Path, text: str, **overrides: Any) -> plug_config.Config:
    """A simulated plug's configuration read from a file, as `plugd --config` reads it."""
    path = tmp_path / "plugd.toml"
    path.write_text(text)
    path.chmod(0o600)  # a mesh key may be in it
    values = {"state.dir": str(tmp_path / "state"), "http.port": 0, "http.bind": "127.0.0.1",
              "mesh.udp_port": free_port(), "mesh.broadcast": ["127.255.255.255"],
              "node.id": 4242, "mdns.enabled": False, **overrides}
    return plug_config.load(path, values, simulate=True)


async def test_every_new_key_is_taken_applied_and_kept(client, daemon):
    saved = await client.ask({"command": "save_settings", "settings": EVERY_NEW_KEY})
    assert saved["success"], saved
    assert {key: saved["settings"][key] for key in EVERY_NEW_KEY} == EVERY_NEW_KEY
    assert stored(daemon) == EVERY_NEW_KEY
    assert daemon.config.relay.power_on_state == "schedule" and daemon.config.relay.stop_state == "keep"
    assert daemon.display.mode == "clock" and daemon.display.brightness == 3
    limits = daemon.meter.protection
    assert (limits.max_power, limits.max_current, limits.hold, limits.retry_after) == (2500, 11.5, 1.5, 30)
    energy = await client.ask({"command": "request_energy", "period": "day"})
    assert (energy["pricePerKwh"], energy["currency"]) == (0.31, "EUR")


async def test_a_limit_set_on_the_page_protects_at_once(client, daemon):
    await client.ask({"command": "simulate_load", "watts": 1000})
    await client.ask({"command": "switch", "state": "on"})
    saved = await client.ask({"command": "save_settings",
                              "settings": {"protection.max_power": 400, "protection.hold": 0}})
    assert saved["success"], saved
    await until(lambda: daemon.plug.tripped, "the protection to trip on 1000 W above 400 W")
    assert daemon.plug.things[ThingId.PLUG].value == 0.0
    assert "above max_power 400 W" in daemon.plug.tripped


@pytest.mark.parametrize("key, value, problem", [
    ("relay.power_on_state", "maybe", "must be one of 'off', 'on', 'last', 'schedule'"),
    ("relay.stop_state", "on", "must be one of 'off', 'keep'"),
    ("protection.max_power", -1, "must be 0 (off) or a power in W"),
    ("protection.max_current", "7", "expected a number, got a string"),
    ("protection.hold", 601, "must be between 0 and 600 seconds"),
    ("protection.retry_after", -5, "must be 0 (never) or seconds"),
    ("energy.price_per_kwh", 2000, "must be 0 (no costs) up to 1000"),
    ("energy.currency", " EUR", "must be a short printable name"),
    ("mesh.mesh_key", "short", "at least 16 characters"),
    ("mesh.mesh_key", "abababababababababab", "is too easy to guess"),
    ("location.latitude", 91, "must be between -90 and 90"),
    ("node.name", "a&b", "must not contain '&'"),
])
async def test_a_bad_value_is_refused_by_name_and_nothing_changes(client, daemon, key, value, problem):
    await client.ask({"command": "save_settings", "settings": {"display.brightness": 4}})
    await daemon.plug.writer.flush()
    before, kept = daemon.config, stored(daemon)
    answer = await client.ask({"command": "save_settings",
                               "settings": {"display.brightness": 2, key: value}})
    assert answer["command"] == "error" and answer["error"].startswith(f"settings.{key}: "), answer
    assert problem in answer["error"]
    await daemon.plug.writer.flush()
    assert daemon.config == before and stored(daemon) == kept and daemon.display.brightness == 4
    assert daemon.plug.signer is None


async def test_settings_and_the_mesh_key_survive_a_restart(make_daemon):
    first = await make_daemon()
    async with logged_in(first) as client:
        saved = await client.ask({"command": "save_settings",
                                  "settings": {**EVERY_NEW_KEY, "mesh.mesh_key": KEY}})
        assert saved["secrets"]["mesh.mesh_key"] is True
        assert KEY not in json.dumps(saved)  # whether set, never the key
        sent = counter(first, KEY)
    await first.stop()
    first.plug.relay.close()  # stop_state "keep" left the pin as it was; the process exit frees it
    second = await make_daemon()
    async with logged_in(second) as client:
        answer = await client.ask({"command": "request_settings"})
        assert {key: answer["settings"][key] for key in EVERY_NEW_KEY} == EVERY_NEW_KEY
        assert answer["secrets"]["mesh.mesh_key"] is True and KEY not in json.dumps(answer)
        assert "mesh.mesh_key" not in json.dumps(await client.ask({"command": "export_config"}))
    assert second.meter.protection.max_power == 2500
    assert sent is not None and (counter(second, KEY) or 0) > sent


async def test_a_mesh_key_set_or_cleared_on_the_page_signs_at_once(client, daemon):
    status = await client.ask({"command": "request_status"})
    assert status["signed"] is False and counter(daemon, KEY) is None
    await client.ask({"command": "save_settings", "settings": {"mesh.mesh_key": KEY}})
    first = counter(daemon, KEY)
    assert first is not None and (await client.ask({"command": "request_status"}))["signed"]
    # Another key signs from a new boot number: above every counter the old one sent, so no
    # peer takes the new datagrams for replays.
    answer = await client.ask({"command": "save_settings", "settings": {"mesh.mesh_key": OTHER_KEY}})
    assert answer["secrets"]["mesh.mesh_key"] is True
    assert counter(daemon, KEY) is None and (counter(daemon, OTHER_KEY) or 0) > first
    answer = await client.ask({"command": "save_settings", "settings": {"mesh.mesh_key": ""}})
    assert answer["secrets"]["mesh.mesh_key"] is False
    assert b"&sig:" not in daemon.plug.datagram()
    assert (await client.ask({"command": "request_status"}))["signed"] is False


async def test_a_reload_applies_a_new_mesh_key_and_keeps_the_pages_settings(tmp_path, factory):
    files = [file_config(tmp_path, f'[mesh]\nmesh_key = "{KEY}"\n[display]\nbrightness = 1\n'),
             file_config(tmp_path, f'[mesh]\nmesh_key = "{KEY}"\ntrusted_esp_nodes = [77]\n')]
    async with running_daemon(file_config(tmp_path, ""), factory,
                              reload_config=lambda: files.pop(0)) as daemon:
        await daemon.save_settings({"display.brightness": 5})
        daemon.reload()
        signed = counter(daemon, KEY)
        assert signed is not None and daemon.display.brightness == 5
        daemon.reload()  # the same key, an ESP8266 node trusted: the same signer signs on
        assert daemon.plug.guard.trusted == {77} and counter(daemon, KEY) == signed + 1


async def test_the_name_in_use_is_shown_when_the_hostname_gives_it(make_daemon):
    daemon = await make_daemon(**{"node.name": ""})
    async with logged_in(daemon) as client:
        answer = await client.ask({"command": "request_settings"})
        assert answer["settings"]["node.name"] == sanitize_name(socket.gethostname()) != ""
        exported = (await client.ask({"command": "export_config"}))["config"]
    assert exported["settings"]["node.name"] == ""  # still the hostname's on another plug


PINS = '[page]\nfixed = ["protection", "relay.power_on_state", "mesh.mesh_key"]\n' \
       f'[protection]\nmax_power = 3000.0\n[mesh]\nmesh_key = "{KEY}"\n'


async def test_a_setting_the_file_pins_is_shown_as_such_and_not_changed(tmp_path, factory):
    config = file_config(tmp_path, PINS)
    where = str(tmp_path / "plugd.toml")
    state = tmp_path / "state"
    state.mkdir(mode=0o700)  # a value kept from before it was pinned waits, unused
    (state / settings.SETTINGS_FILE).write_text(json.dumps({"protection.max_power": 100,
                                                            "display.brightness": 2}))
    async with running_daemon(config, factory) as daemon, logged_in(daemon) as client:
        assert daemon.meter.protection.max_power == 3000 and daemon.display.brightness == 2
        answer = await client.ask({"command": "request_settings"})
        assert answer["fixed"] == {key: where for key in (
            "mesh.mesh_key", "relay.power_on_state", "protection.max_power",
            "protection.max_current", "protection.hold", "protection.retry_after")}
        assert answer["settings"]["protection.max_power"] == 3000
        for change in [{"protection.max_power": 200}, {"relay.power_on_state": "on"},
                       {"mesh.mesh_key": KEY}, {"mesh.mesh_key": ""}]:  # a secret is never compared
            [(key, _)] = change.items()
            refused = await client.ask({"command": "save_settings",
                                        "settings": {"display.brightness": 6, **change}})
            assert refused["command"] == "error", refused
            assert refused["error"] == (f"settings.{key}: is fixed in {where} ([page] fixed): "
                                        "change it there, not here")
        assert daemon.display.brightness == 2 and counter(daemon, KEY) is not None
        # The form as it was shown: a pinned value left as it is changes nothing, and is not kept.
        same = await client.ask({"command": "save_settings", "settings": {
            "protection.max_power": 3000, "relay.power_on_state": "last", "display.brightness": 6}})
        assert same["success"] and daemon.display.brightness == 6
        await daemon.plug.writer.flush()
        assert stored(daemon) == {"protection.max_power": 100, "display.brightness": 6}
        exported = (await client.ask({"command": "export_config"}))["config"]
        assert not set(exported["settings"]) & set(answer["fixed"])  # the file's, not the page's
        assert (await client.ask({"command": "import_config", "config": exported}))["success"]
        refused = await client.ask({"command": "import_config", "config": {
            **exported, "settings": {"protection.hold": 9}}})
        assert refused["error"].startswith("config.settings.protection.hold: is fixed in ")
        assert daemon.meter.protection.hold == 2.0


def test_a_pin_names_a_setting_the_page_changes():
    with pytest.raises(ConfigError, match=r"^page.fixed: 'relay.pin' is not a setting the page "):
        plug_config.parse('[page]\nfixed = ["relay.pin"]\n')
    with pytest.raises(ConfigError, match=r"^page.fixed: expected a list of strings"):
        plug_config.parse('[page]\nfixed = "protection"\n')
    assert settings.fixed(plug_config.parse('[page]\nfixed = ["energy"]\n')) == {
        "energy.price_per_kwh": "the configuration", "energy.currency": "the configuration"}
