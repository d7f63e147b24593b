"""Kill a working plugd with SIGKILL at random moments; after each restart check what it kept.

Several clients send a stream of changes (relay, override, recipes added,
replaced and deleted, settings); after a random delay the process is killed,
its state directory is checked file by file, it is started again on the same
directory, and the values it shows are checked against the ledger. The next
stream then runs on the restarted daemon, so kills also hit a daemon that
itself came back from one.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.exceptions import ConnectionClosed

from tests.support import Client, PlugdProcess

from .ledger import ABSENT, Key, Ledger

#: Everything on loopback; no mDNS (the process's defaults) and the mesh bound to loopback too.
CONFIG = {"mesh": {"bind": "127.0.0.1"}}
#: Recipes listen to this node, which never speaks: they never switch anything.
SILENT_NODE = 777
MAX_RECIPES = 12
#: The settings the stream changes (two keys, so concurrent saves of different keys meet).
BRIGHTNESS = ("setting", "display.brightness")
NAME = ("setting", "node.name")


@dataclass
class Summary:
    seed: int
    kills: int = 0
    acknowledged: int = 0
    sent: int = 0
    keys: int = 0
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def __str__(self) -> str:
        return (f"seed {self.seed}: {self.kills} kills, {self.sent} changes sent, "
                f"{self.acknowledged} acknowledged and checked, {self.keys} key checks, "
                f"{len(self.failures)} failures, {self.seconds:.0f} s")


async def observe(client: Client) -> dict[Key, Any]:
    """The daemon's state, as the ledger names it."""
    things = (await client.ask({"command": "request_things"}))["things"]
    plug = next(t for t in things if t["id"] == 1)
    recipes = (await client.ask({"command": "request_recipes"}))["recipes"]
    settings = (await client.ask({"command": "request_settings"}))["settings"]
    state: dict[Key, Any] = {("relay",): plug["value"], ("override",): plug["override"],
                             NAME: settings["node.name"], BRIGHTNESS: settings["display.brightness"]}
    state.update({("recipe", r["id"]): r["name"] for r in recipes})
    return state


def check_files(state: Path, live: int | None = None) -> list[str]:
    """Every JSON file parses and none was set aside; with the `live` daemon's pid, no
    temporary file of a dead one is left (it removes them when it starts)."""
    problems = []
    for path in sorted(state.iterdir()):
        if ".corrupt-" in path.name:
            problems.append(f"{path.name}: a file was found unreadable and set aside")
        elif path.name.endswith(".tmp"):
            if live is not None and not path.name.endswith(f".{live}.tmp"):
                problems.append(f"{path.name}: a dead process's temporary file is left")
        elif path.suffix == ".json":
            try:
                json.loads(path.read_bytes())
            except ValueError as err:
                problems.append(f"{path.name} does not parse: {err}")
    return problems


def recipe(recipe_id: int, name: str) -> dict[str, Any]:
    return {"id": recipe_id, "name": name, "sourceNodeId": SILENT_NODE, "sourceThingId": 1,
            "relation": 0, "targetValue": 1, "localThingId": 1, "localValue": 1}


class Stream:
    """One client's changes; each is in the ledger before it is sent."""

    def __init__(self, client: Client, ledger: Ledger, rng: random.Random,
                 names: itertools.count[int], recipes: set[int]) -> None:
        self.client = client
        self.ledger = ledger
        self.rng = rng
        self.names = names
        self.recipes = recipes  # ids believed present, shared by the streams

    def pick(self) -> tuple[Key | None, Any, dict[str, Any]]:
        rng, n = self.rng, next(self.names)
        kind = rng.choice(["switch", "switch", "value", "override", "new", "new", "replace",
                           "delete", "name", "brightness"])
        if kind in ("replace", "delete") and not self.recipes:
            kind = "new"
        if kind == "new" and len(self.recipes) >= MAX_RECIPES:
            kind = "delete"
        if kind == "switch":
            on = rng.random() < 0.5
            return ("relay",), float(on), {"command": "switch", "state": "on" if on else "off"}
        if kind == "value":
            value = float(rng.random() < 0.5)
            return ("relay",), value, {"command": "save_thing", "thing": {"id": 1, "value": value}}
        if kind == "override":
            flag = rng.random() < 0.5
            return ("override",), flag, {"command": "save_thing",
                                         "thing": {"id": 1, "override": flag}}
        if kind == "new":
            return None, f"c{n}", {"command": "save_recipe", "recipe": recipe(0, f"c{n}")}
        if kind == "name":
            return NAME, f"Crash{n}", {"command": "save_settings",
                                       "settings": {"node.name": f"Crash{n}"}}
        if kind == "brightness":
            level = rng.randrange(8)
            return BRIGHTNESS, level, {"command": "save_settings",
                                       "settings": {"display.brightness": level}}
        recipe_id = rng.choice(sorted(self.recipes))
        if kind == "replace":
            return ("recipe", recipe_id), f"c{n}", {"command": "save_recipe",
                                                   "recipe": recipe(recipe_id, f"c{n}")}
        return ("recipe", recipe_id), ABSENT, {"command": "delete_recipe", "id": recipe_id}

    async def run(self) -> None:
        """Until the connection dies with the daemon."""
        try:
            while True:
                key, value, request = self.pick()
                change = self.ledger.send(key, value)
                answer = await self.client.ask(request)
                ok = answer.get("success") is True
                if ok and key is None:
                    key = ("recipe", answer["recipe"]["id"])
                self.ledger.answer(change, ok, key)
                if ok and key is not None and key[0] == "recipe":
                    (self.recipes.discard if value is ABSENT else self.recipes.add)(key[1])
        except (ConnectionClosed, ConnectionError):
            return


async def run(work: Path, kills: int, seed: int, *, clients: int = 3, max_delay: float = 1.0,
              progress: Callable[[str], None] | None = None) -> Summary:
    """Kill and restart a plugd `kills` times; the summary lists every failed check."""
    started = time.monotonic()
    summary = Summary(seed)
    rng = random.Random(seed)
    names = itertools.count(1)
    plugd = PlugdProcess(work, config=CONFIG, start=False)
    await asyncio.to_thread(plugd.start)
    try:
        reader = await plugd.client()
        baseline = await observe(reader)
        await reader.close()
        for kill in range(1, kills + 1):
            ledger = Ledger(baseline)
            recipes = {key[1] for key in baseline if key[0] == "recipe"}
            streams = [Stream(await plugd.client(), ledger, random.Random(rng.random()), names,
                              recipes) for _ in range(clients)]
            tasks = [asyncio.create_task(s.run()) for s in streams]
            await asyncio.sleep(rng.uniform(0.0, max_delay))
            plugd.kill()
            await asyncio.to_thread(plugd.wait)
            await asyncio.gather(*tasks)
            for stream in streams:
                await stream.client.close()
            problems = check_files(plugd.state)
            await asyncio.to_thread(plugd.start)
            assert plugd.proc is not None
            problems += check_files(plugd.state, plugd.proc.pid)
            reader = await plugd.client()
            baseline = await observe(reader)
            await reader.close()
            problems += ledger.check(baseline)
            summary.kills = kill
            summary.sent += len(ledger.changes)
            summary.acknowledged += len(ledger.acknowledged)
            summary.keys += len(baseline)
            summary.failures += [f"kill {kill}: {p}" for p in problems]
            if progress and (problems or kill % 50 == 0):
                progress(f"kill {kill}: {len(problems)} problems" +
                         "".join(f"\n  {p}" for p in problems))
    finally:
        await asyncio.to_thread(plugd.stop)
        summary.seconds = time.monotonic() - started
    return summary
