"""The mesh across subnets, through the MQTT broker: topics, payloads and the loop rules, no I/O.

UDP broadcasts stop at a router, so two access points on separate subnets, or
a VLAN for IoT, split the mesh. With `[mqtt] mesh = true` every plugd
publishes what it hears on its subnet, and itself, under
`<root>/mesh/<nodeId>` (retained, QoS 0), where `<root>` is the first level of
its topic prefix (`plugd` by default), so that plugd on every subnet meet
there whatever their own prefixes. It feeds what the others publish into its
registry, where recipes use it like a datagram. The MQTT outlet
(`plugd.doors.mqtt`) does the I/O; the rules are here:

- *No loops.* A plugd publishes only nodes it hears directly (`Peer.via` is 0)
  and itself, never a node it learned from the broker or from another plugd's
  re-broadcast. Every payload names the plugd that heard the node (`via`);
  a plugd drops its own messages when they come back.
- *Re-broadcast.* With `relay_to_lan = true` a plugd sends the values it reads
  from the broker onto its own subnet as an ESP8266 datagram with one more
  field, `&via:<its node id>` (plugd.core.wire.VIA_FIELD), which an ESP8266
  reads as thing 0 and ignores. A plugd that hears such a datagram takes the
  values but never publishes them (they are not heard directly), and the
  plugd that sent it drops its own echo.
- *Counts once.* A node has one registry entry however it is heard. Its own
  datagrams win: while it is heard directly and online, relayed copies are
  ignored (counted as `shadowed`); when it falls silent, a relayed copy takes
  over. Retained messages are snapshots of the past (the plugd that published
  them may be gone), so they never feed the registry: only messages that
  arrive live do, which keeps a relayed node online exactly as long as some
  plugd hears it.
- *Signatures.* A copy cannot carry the original node's signature (plugd.core.meshkey),
  so values of a node whose datagrams were signed are never re-broadcast; plugd
  peers meet through the broker, whose login guards that path.
"""

from __future__ import annotations

import ipaddress
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from plugd.core.model import MAX_NODE_ID, name_problem
from plugd.core.wire import MAX_DATAGRAM, Field, Packet, encode
from plugd.errors import ValidationError, WireError

#: The topic level under the root where nodes' values live.
MESH_LEVEL = "mesh"
#: Things one payload carries at most (as the registry keeps per node).
MAX_THINGS = 64
#: The longest value text taken from a payload (a CLOCK is about 20 characters).
MAX_TEXT = 64
#: The largest payload read; larger ones are refused unread.
MAX_PAYLOAD = 8192


def prefix_root(prefix: str) -> str:
    """The first level of a topic prefix ("plugd/kitchen" -> "plugd"): where every plugd's mesh
    topics meet, whatever each plug's own prefix."""
    return prefix.split("/", 1)[0]


def node_topic(root: str, node_id: int) -> str:
    """Where a node's values are published: `<root>/mesh/<nodeId>`."""
    return f"{root}/{MESH_LEVEL}/{node_id}"


def subscription(root: str) -> str:
    """The filter that reads every node's values."""
    return f"{root}/{MESH_LEVEL}/+"


def topic_node_id(root: str, topic: str) -> int | None:
    """The node id of a mesh topic, or None when `topic` is not one."""
    head = f"{root}/{MESH_LEVEL}/"
    if not topic.startswith(head):
        return None
    tail = topic[len(head):]
    if not tail.isdigit() or len(tail) > 10:
        return None
    node_id = int(tail)
    return node_id if 0 < node_id <= MAX_NODE_ID else None


def subnet_of(address: str, networks: Iterable[str]) -> str:
    """The first of `networks` ("10.1.0.0/24") that holds `address`, or "" when none does."""
    try:
        where = ipaddress.ip_address(address)
    except ValueError:
        return ""
    for network in networks:
        try:
            if where in ipaddress.ip_network(network, strict=False):
                return str(ipaddress.ip_network(network, strict=False))
        except ValueError:
            continue
    return ""


def publishes(own_id: int, node_id: int, via: int) -> bool:
    """Whether a plugd publishes this node: itself, or a node it hears directly (`via` 0),
    never one relayed to it; this rule is what keeps values from going round."""
    return node_id == own_id or via == 0


@dataclass(frozen=True, slots=True)
class Relayed:
    """A node's values as one plugd heard them, the content of `<root>/mesh/<nodeId>`."""

    node_id: int
    name: str
    #: (thing id, value, text on the wire), by thing id.
    things: tuple[tuple[int, float, str], ...]
    #: The plugd that heard the node (or is the node): its own messages it drops.
    via: int
    #: Where that plugd heard the node; "" for the plugd itself.
    address: str = ""
    #: The subnet of that address, as the plugd's interfaces say; "" when unknown.
    subnet: str = ""
    #: Whether the node signs its datagrams: such values are never re-broadcast.
    signed: bool = False

    def to_json(self) -> dict[str, Any]:
        """The payload, compact: values as numbers for people and tools, and as texts for the
        wire (a CLOCK's text is the time of day)."""
        return {"id": self.node_id, "name": self.name,
                "things": [{"id": tid, "value": value, "text": text}
                           for tid, value, text in self.things],
                "via": self.via, "address": self.address, "subnet": self.subnet,
                "signed": self.signed}

    def encode(self) -> bytes:
        """The payload as compact JSON."""
        return json.dumps(self.to_json(), separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False).encode()

    def packet(self) -> Packet:
        """The values as a datagram would carry them, marked as relayed by `via`."""
        return Packet(self.node_id, self.name,
                      tuple(Field(tid, value, text) for tid, value, text in self.things),
                      0, self.signed, self.via)


def relayed_from(node_id: int, name: str, things: Mapping[int, tuple[float, str]], via: int,
                 address: str = "", subnet: str = "", signed: bool = False) -> Relayed:
    """A payload from a registry entry or the plug's own things: (value, text) by thing id."""
    items = tuple((tid, value, text) for tid, (value, text) in sorted(things.items())
                  if math.isfinite(value))
    return Relayed(node_id, name, items[:MAX_THINGS], via, address, subnet, signed)


def _int(obj: Mapping[str, Any], key: str, low: int, high: int) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationError(key, f"expected an integer {low}..{high}, got {value!r}")
    return value


def _str(obj: Mapping[str, Any], key: str, limit: int) -> str:
    value = obj.get(key, "")
    if not isinstance(value, str) or len(value) > limit:
        raise ValidationError(key, f"expected a text of at most {limit} characters")
    return value


def parse(root: str, topic: str, data: bytes) -> Relayed | None:
    """Read one message of `<root>/mesh/<nodeId>`; None for an empty one (a cleared topic).
    ValidationError names what is wrong; a bad message never spoils the next."""
    node_id = topic_node_id(root, topic)
    if node_id is None:
        raise ValidationError("topic", f"{topic[:80]!r} is not {subscription(root)}")
    if not data:
        return None
    if len(data) > MAX_PAYLOAD:
        raise ValidationError("payload", f"{len(data)} bytes, at most {MAX_PAYLOAD}")
    try:
        obj = json.loads(data)
    except ValueError as err:  # UnicodeDecodeError included
        raise ValidationError("payload", f"not JSON: {err}") from None
    if not isinstance(obj, dict):
        raise ValidationError("payload", "expected a JSON object")
    if _int(obj, "id", 1, MAX_NODE_ID) != node_id:
        raise ValidationError("id", f"{obj['id']} differs from the topic's node id {node_id}")
    name = _str(obj, "name", 256).strip()
    problem = name_problem(name)
    if problem:
        raise ValidationError("name", problem)
    raw = obj.get("things", [])
    if not isinstance(raw, list) or len(raw) > MAX_THINGS:
        raise ValidationError("things", f"expected a list of at most {MAX_THINGS} things")
    things: dict[int, tuple[float, str]] = {}
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise ValidationError(f"things[{index}]", "expected an object")
        thing_id = _int(item, "id", 1, MAX_NODE_ID)
        value = item.get("value")
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            raise ValidationError(f"things[{index}].value", f"expected a number, got {value!r}")
        text = _str(item, "text", MAX_TEXT) or repr(float(value))
        things[thing_id] = (float(value), text)
    signed = obj.get("signed", False)
    if not isinstance(signed, bool):
        raise ValidationError("signed", "expected true or false")
    return relayed_from(node_id, name, things, _int(obj, "via", 1, MAX_NODE_ID),
                        _str(obj, "address", 64), _str(obj, "subnet", 64), signed)


def _fits(text: str) -> bool:
    return bool(text) and "&" not in text and "\0" not in text


def lan_datagram(relayed: Relayed, own_id: int) -> bytes | None:
    """The ESP8266 datagram a plugd with `relay_to_lan` sends for a node of another subnet,
    marked `&via:<own_id>`; None for a signed node (a copy cannot carry its signature) or
    when nothing can travel. Values that cannot travel are left out; a datagram that would be
    too long loses its last values."""
    if relayed.signed or relayed.node_id == own_id:
        return None
    values = [(tid, text) for tid, _, text in relayed.things if _fits(text)]
    while True:
        try:
            data = encode(relayed.node_id, relayed.name, values, via=own_id)
        except WireError:
            if not values:
                return None
            values.pop()
            continue
        return data if len(data) <= MAX_DATAGRAM else None
