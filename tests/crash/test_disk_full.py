"""A full disk: every change is refused and says why, the old files stay whole, the daemon serves.

The state directory sits on a tmpfs of its own, mounted under the test's
directory and unmounted afterwards, filled to the last byte by a big file.
A refused change must not be in force either, with one exception: the relay
is switched when asked (the load feels it at once); the answer then says
the switch could not be saved, and the relay is left as it is.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory
from websockets.asyncio.client import connect

from plugd.service.daemon import Daemon
from tests.support import Client, running_daemon, sim_config

RELAY_PIN = 17
NO_SPACE = os.strerror(errno.ENOSPC)  # "No space left on device"
DISK_BYTES = 256 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs (the disk to fill) needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES},mode=0700", "plugd-test",
                           str(mount)], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Write until the disk refuses; the file that took the space."""
    filler = disk / "filler"
    chunk = b"\0" * 4096
    with filler.open("wb", buffering=0) as out:
        try:
            for _ in range(4 * DISK_BYTES // len(chunk)):
                out.write(chunk)
        except OSError as err:
            assert err.errno == errno.ENOSPC, err
            return filler
    raise AssertionError(f"{4 * DISK_BYTES} bytes written to a {DISK_BYTES}-byte disk: not full")


def stored(state: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(state.iterdir())}


@pytest.fixture
async def daemon_on_small_disk(small_disk: Path, factory: MockFactory) -> AsyncIterator[Daemon]:
    async with running_daemon(sim_config(small_disk / "state"), factory) as daemon:
        try:
            yield daemon
        finally:
            (small_disk / "filler").unlink(missing_ok=True)  # stopping saves everything


async def refused(client: Client, request: dict[str, Any]) -> str:
    answer = await client.ask(request)
    assert answer["command"] == "error" and answer["request"] == request["command"], answer
    assert NO_SPACE in answer["error"] and "cannot write" in answer["error"], answer
    return answer["error"]


async def test_a_full_disk_refuses_changes_and_keeps_the_old_files(
        daemon_on_small_disk: Daemon, small_disk: Path, factory: MockFactory) -> None:
    daemon, plug = daemon_on_small_disk, daemon_on_small_disk.plug
    state = Path(daemon.config.state.dir)
    async with connect(f"ws://127.0.0.1:{daemon.web.port}/ws") as ws:
        client = Client(ws)
        assert (await client.ask({"command": "login", "token": daemon.auth.cli_token}))["success"]
        recipe = {"name": "kept", "sourceNodeId": 777, "sourceThingId": 1, "relation": 0,
                  "targetValue": 1, "localThingId": 1, "localValue": 1}
        assert (await client.ask({"command": "save_recipe", "recipe": recipe}))["success"]
        assert (await client.ask({"command": "save_settings",
                                  "settings": {"node.name": "Before"}}))["success"]
        await plug.writer.flush()
        before = stored(state)
        recipes_before = list(plug.recipes)

        filler = await asyncio.to_thread(fill, small_disk)

        error = await refused(client, {"command": "switch", "state": "on"})
        assert "the relay is switched on, but that could not be saved" in error
        assert factory.pin(RELAY_PIN).state is True  # switched all the same
        error = await refused(client, {"command": "save_thing", "thing": {"id": 1, "override": True}})
        assert error.startswith("nothing changed")
        assert plug.things[1].override is False
        await refused(client, {"command": "save_recipe", "recipe": {**recipe, "name": "new"}})
        await refused(client, {"command": "save_recipe", "recipe": {**recipe, "id": 1, "name": "x"}})
        await refused(client, {"command": "delete_recipe", "id": 1})
        assert list(plug.recipes) == recipes_before
        await refused(client, {"command": "save_settings", "settings": {"node.name": "After"}})
        assert daemon.config.node.name == plug.node_name == "Before"
        assert daemon.settings == {"node.name": "Before"}

        async with connect(f"ws://127.0.0.1:{daemon.web.port}/ws") as late_ws:
            late = Client(late_ws)
            await refused(late, {"command": "login", "token": daemon.auth.cli_token})
            answer = await late.ask({"command": "switch", "state": "off"})
            assert answer.get("login") is True, answer  # the refused login left it logged out
        assert factory.pin(RELAY_PIN).state is True

        status = await client.ask({"command": "request_status"})  # still serving
        assert status["command"] == "response_status" and status["relay"] is True
        await plug.writer.flush()
        assert stored(state) == before  # byte for byte: nothing half-written, nothing left over
        for name, data in before.items():
            if name.endswith(".json"):
                json.loads(data)

        await asyncio.to_thread(filler.unlink)
        answer = await client.ask({"command": "save_recipe", "recipe": {**recipe, "name": "new"}})
        assert answer["success"], answer
        assert (await client.ask({"command": "switch", "state": "on"}))["success"]
        assert (await client.ask({"command": "save_settings",
                                  "settings": {"node.name": "After"}}))["success"]
    things = json.loads((state / "things.json").read_bytes())
    assert next(t for t in things if t["id"] == 1)["value"] == 1.0
    assert [r["name"] for r in json.loads((state / "recipes.json").read_bytes())] == ["kept", "new"]
    assert json.loads((state / "settings.json").read_bytes()) == {"node.name": "After"}
