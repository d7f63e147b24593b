"""Fuzz harness for the WebSocket door: `Api.handle` on any frame.

The commands run against a plug on mock pins with a meter, on one event loop
reused across inputs. Every frame gets an answer naming its command; a refused
one (`"command": "error"`) leaves the state directory and the plug's things,
recipes, settings and calibration exactly as they were.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import atheris

with atheris.instrument_imports(include=["plugd"]):
    from gpiozero.pins.mock import MockFactory

    from plugd.core.registry import Registry
    from plugd.doors.api import COMMANDS, Api
    from plugd.doors.auth import Auth
    from plugd.hardware.relay import Relay
    from plugd.service import settings
    from plugd.service.config import Config, parse
    from plugd.service.meter import Meter
    from plugd.service.plug import Plug
    from plugd.service.scheduler import Scheduler
    from plugd.service.store import StateDir, dump

NODE_ID = 4242
#: Commands that are slow on purpose (a password hash, a simulated hang): not fuzzed here.
SLOW = frozenset({"login", "change_password", "simulate_hang"})


class Host:
    """What the commands need from a daemon, without its sockets, timers and sampler."""

    def __init__(self, state_dir: Path, loop: asyncio.AbstractEventLoop) -> None:
        self.config: Config = parse("", {"state.dir": str(state_dir), "node.id": NODE_ID,
                                         "node.name": "FuzzPlug", "mdns.enabled": False},
                                    simulate=True)
        state = StateDir(state_dir)
        state.prepare()
        self.factory = MockFactory()
        relay = self.config.relay
        self.plug = Plug(node_id=NODE_ID, node_name="FuzzPlug", state=state,
                         registry=Registry(NODE_ID), power_on_state="off",
                         open_relay=lambda on: Relay(relay.pin, active_high=True, initial=on,
                                                     pin_factory=self.factory))
        self.meter: Meter | None = Meter(self.plug, self.config, loop, time.time)
        self.simulation = None
        self.commands = COMMANDS  # no simulated chips here: their commands are not answered
        self.auth = Auth(state)
        self.settings: dict[str, Any] = {}
        self.scheduler = Scheduler(state, None)
        self.scheduler.plug = self.plug  # stored and planned; no task runs them here

    def status(self) -> dict[str, Any]:
        """A status answer with what the checks compare."""
        return {"relay": self.plug.things[1].value == 1.0, "recipes": len(self.plug.recipes)}

    def sessions_ended(self) -> None:
        """No connections to close here."""

    def history(self) -> list[list[float | None]]:
        """No power history here."""
        return []

    async def save_settings(self, changes: dict[str, Any]) -> None:
        """Settings kept as the daemon keeps them."""
        merged = {**self.settings, **changes}
        new = settings.apply(self.config, changes)
        await self.plug.writer.save(settings.SETTINGS_FILE, dump(merged))
        self.settings, self.config = merged, new


async def snapshot(host: Host) -> tuple[Any, ...]:
    """Everything a refused request must leave alone."""
    await host.plug.writer.flush()
    files = {p.name: p.read_bytes() for p in sorted(host.plug.state.path.glob("*.json"))}
    meter = host.meter
    return (files, host.plug.things_json(), [r.to_json() for r in host.plug.recipes],
            settings.view(host.config), None if meter is None else meter.calibration)


async def check_handle(api: Api, host: Host, data: bytes) -> dict[str, Any]:
    """Answer one frame; raise AssertionError when the answer or the state is wrong."""
    before = await snapshot(host)
    answer = await asyncio.wait_for(api.handle(data), 30)
    assert isinstance(answer, dict) and isinstance(answer.get("command"), str), answer
    assert (answer["nodeId"], answer["nodeName"]) == (host.plug.node_id, host.plug.node_name)
    if answer["command"] == "error":
        assert isinstance(answer.get("error"), str) and answer["error"], answer
        assert await snapshot(host) == before, f"refused {data!r} but changed the state"
    json.dumps(answer, allow_nan=False)  # every answer must travel as strict JSON
    return answer


def is_slow(data: bytes) -> bool:
    """Whether the input asks for a command that is slow on purpose."""
    try:
        msg = json.loads(data)
    except (ValueError, RecursionError):
        return False
    return isinstance(msg, dict) and isinstance(msg.get("command"), str) and msg["command"] in SLOW


def main() -> None:
    """Fuzz the WebSocket commands."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    with tempfile.TemporaryDirectory(prefix="plugd-fuzz-api-") as tmp:
        host = Host(Path(tmp), loop)
        api = Api(host, "fuzz", trusted=True)  # type: ignore[arg-type]

        def one_input(data: bytes) -> None:
            if not is_slow(data):
                loop.run_until_complete(check_handle(api, host, data))

        atheris.Setup(sys.argv, one_input)
        atheris.Fuzz()


if __name__ == "__main__":
    main()
