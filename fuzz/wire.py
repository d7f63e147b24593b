"""Fuzz harness for the UDP door: `wire.decode` and the whole `Plug.receive` path.

A datagram either decodes or is refused with WireError; fed to a plug with
recipes on it, it never raises, leaves every value finite, and moves the relay
only when a recipe on a field of that very packet asks for it.
"""

from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["plugd"]):
    from gpiozero.pins.mock import MockFactory

    from plugd.core.model import ON, Recipe, Relation, ThingId
    from plugd.core.registry import Registry
    from plugd.core.wire import decode
    from plugd.errors import WireError
    from plugd.hardware.relay import Relay
    from plugd.service.plug import Plug
    from plugd.service.store import StateDir

NODE_ID = 4242
RELAY_PIN = 17
#: Recipes on a peer's things that switch the relay both ways (a hysteresis).
RECIPES = [
    Recipe(1, "heat", 777, 5, 0.0, Relation.SMALLER_THAN, ThingId.PLUG, 19.0, 1.0),
    Recipe(2, "cool", 777, 5, 0.0, Relation.BIGGER_THAN, ThingId.PLUG, 21.0, 0.0),
    Recipe(3, "follow", 12, 1, 0.0, Relation.EQUALS, ThingId.PLUG, 1.0, 1.0),
]


def build_plug(state_dir: Path, factory: MockFactory) -> Plug:
    """A plug on mock pins with the recipes above, as the daemon wires it (minus sockets)."""
    state = StateDir(state_dir)
    state.prepare()
    plug = Plug(node_id=NODE_ID, node_name="FuzzPlug", state=state,
                registry=Registry(NODE_ID, max_nodes=16), power_on_state="off",
                open_relay=lambda on: Relay(RELAY_PIN, active_high=True, initial=on,
                                            pin_factory=factory), save=state.write)
    plug.recipes.replace_all(RECIPES)
    return plug


def check_receive(plug: Plug, factory: MockFactory, data: bytes) -> None:
    """Feed one datagram; raise AssertionError when the plug is left inconsistent."""
    try:
        packet = decode(data)
    except WireError:
        packet = None
    before = plug.things[ThingId.PLUG].value
    plug.receive(data, "127.0.0.1")
    after = plug.things[ThingId.PLUG].value
    for thing in plug.things.values():
        assert math.isfinite(thing.value), thing
    assert factory.pin(RELAY_PIN).state == (after == ON), "the relay pin and the Plug thing disagree"
    if after != before:
        sources = {(r.source_node_id, r.source_thing_id) for r in plug.recipes}
        fed = set() if packet is None else {(packet.node_id, f.thing_id) for f in packet.fields}
        assert sources & fed, f"the relay moved on {data!r} without a recipe asking"


def main() -> None:
    """Fuzz the datagram decoder and the plug's receive path."""
    factory = MockFactory()
    with tempfile.TemporaryDirectory(prefix="plugd-fuzz-wire-") as tmp:
        plug = build_plug(Path(tmp), factory)

        def one_input(data: bytes) -> None:
            check_receive(plug, factory, data)

        atheris.Setup(sys.argv, one_input)
        atheris.Fuzz()


if __name__ == "__main__":
    main()
