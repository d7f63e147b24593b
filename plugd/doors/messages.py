"""The WebSocket messages pages are sent, shaped in one place from the plug's state.

Every message names its command and this node (`nodeId`, `nodeName`), as the
ESP8266 firmware's page expects; pushes and answers share the shape.
"""

from __future__ import annotations

from typing import Any

from plugd.core.model import Thing, ThingId, ThingType
from plugd.core.registry import Peer
from plugd.service.plug import Plug


def message(plug: Plug, command: str, **fields: Any) -> dict[str, Any]:
    """A message of `command` from this node, with `fields`."""
    return {"command": command, "nodeId": plug.node_id, "nodeName": plug.node_name, **fields}


def thing_update(plug: Plug, thing: Thing) -> dict[str, Any]:
    """The push that tells pages a thing's new value (a clock's as text too)."""
    update = message(plug, "thing_update", thingId=thing.id, thingName=thing.name,
                     lastUpdate=thing.last_updated, value=thing.value,
                     valid=thing.id not in plug.invalid,
                     **plug.core.shown(plug.node_id, thing.id).to_json())
    if thing.type == ThingType.CLOCK:
        update["text"] = plug.wire_text(thing)
    if thing.id == ThingId.PLUG:  # when the auto-off switches it off (seconds since 1970), or None
        update["autoOffAt"] = plug.off_at
    return update


def node_json(plug: Plug, peer: Peer) -> dict[str, Any]:
    """A peer as pages are shown it: its shape for the firmware's page, and for each value what
    people read (`label`, `unit`, `kind`, `origin`: plugd.core.labels)."""
    node = peer.to_json(plug.monotonic())
    shown = plug.core.shown
    node["things"] = [{**t, **shown(peer.id, t["id"]).to_json()} for t in node["things"]]
    return node
