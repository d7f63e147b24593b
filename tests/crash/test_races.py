"""Acknowledged changes that two clients make at once are both kept, in memory and on disk.

Found by the kill harness: a change computed from a list another change was
still writing dropped that change, though both had been acknowledged.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from plugd.doors.api import Api
from plugd.service.daemon import Daemon
from plugd.service.store import StateDir


def recipe(name: str, recipe_id: int = 0) -> str:
    return json.dumps({"command": "save_recipe", "recipe": {
        "id": recipe_id, "name": name, "sourceNodeId": 777, "sourceThingId": 1, "relation": 0,
        "targetValue": 1, "localThingId": 1, "localValue": 1}})


async def test_new_recipes_saved_at_once_get_their_own_ids(daemon: Daemon) -> None:
    first, second = Api(daemon, "a", trusted=True), Api(daemon, "b", trusted=True)
    answers = await asyncio.gather(first.handle(recipe("first")), second.handle(recipe("second")))
    assert all(a["success"] for a in answers), answers
    ids = {a["recipe"]["id"] for a in answers}
    assert len(ids) == 2
    stored = json.loads((Path(daemon.config.state.dir) / "recipes.json").read_bytes())
    assert sorted(r["name"] for r in stored) == ["first", "second"]
    assert sorted(r.name for r in daemon.plug.recipes) == ["first", "second"]


async def test_a_delete_and_a_save_at_once_keep_both(daemon: Daemon) -> None:
    api = Api(daemon, "a", trusted=True)
    assert (await api.handle(recipe("doomed")))["success"]
    answers = await asyncio.gather(
        api.handle(json.dumps({"command": "delete_recipe", "id": 1})),
        Api(daemon, "b", trusted=True).handle(recipe("kept")))
    assert all(a["success"] for a in answers), answers
    stored = json.loads((Path(daemon.config.state.dir) / "recipes.json").read_bytes())
    assert [r["name"] for r in stored] == ["kept"]
    assert [r.name for r in daemon.plug.recipes] == ["kept"]


async def test_settings_saved_at_once_are_all_kept(daemon: Daemon) -> None:
    def save(key: str, value: object) -> str:
        return json.dumps({"command": "save_settings", "settings": {key: value}})

    answers = await asyncio.gather(Api(daemon, "a", trusted=True).handle(save("node.name", "Both")),
                                   Api(daemon, "b", trusted=True).handle(save("display.brightness", 2)))
    assert all(a["success"] for a in answers), answers
    stored = json.loads((Path(daemon.config.state.dir) / "settings.json").read_bytes())
    assert stored == {"node.name": "Both", "display.brightness": 2}
    assert daemon.settings == stored
    assert (daemon.config.node.name, daemon.config.display.brightness) == ("Both", 2)


def test_a_killed_writers_temporary_files_are_removed_at_start(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    state.prepare()
    left = [tmp_path / ".things.json.999999.tmp", tmp_path / ".recipes.json.1.tmp"]
    for path in left:
        path.write_bytes(b'[{"half": ')
    mine = tmp_path / f".nodes.json.{os.getpid()}.tmp"  # a write of this process, under way
    mine.write_bytes(b"[")
    state.write("things.json", b"[]\n")
    state.prepare()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, "things.json"])
