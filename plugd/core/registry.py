"""The mesh registry: who is out there, as plain data.

The registry is plain data with time passed in (monotonic seconds for
durations, wall time only for display). It is bounded, and a flood of new node
ids cannot push out the nodes that matter; the admission rules:

- at most `max_nodes` nodes are kept;
- a node heard within `keep_offline` seconds (10 minutes), or known from
  nodes.json for that long after start, is never evicted by a new id;
- at a full table a newcomer must be heard twice before it takes a slot (the
  first time it is remembered on probation, at most PROBATION ids, oldest
  forgotten first); it then takes the place of the node longest offline, if
  that one is past `keep_offline`; otherwise it is dropped, and counted.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from plugd.core.labels import Label
from plugd.core.model import MAX_NODE_ID, read_int, read_name, require_object
from plugd.core.wire import Packet
from plugd.errors import ValidationError

MAX_THINGS_PER_NODE = 64
#: Seconds an offline node keeps its place in a full table before a new node may take it.
KEEP_OFFLINE = 600.0
#: Newcomers remembered while they wait to be heard again at a full table.
PROBATION = 1024


@dataclass(slots=True)
class PeerThing:
    """A peer's value as last heard: the number, its text on the wire, and when (monotonic)."""
    value: float
    text: str
    updated: float  # monotonic


@dataclass(slots=True)
class Peer:
    """A node heard on the mesh, or known from nodes.json."""
    id: int
    name: str
    address: str = ""
    last_seen: float | None = None  # monotonic; None: known from disk, not heard since start
    last_seen_esp: int = 0  # seconds since 2000, for people and for nodes.json
    online: bool = False
    things: dict[int, PeerThing] = field(default_factory=dict)
    #: 0: heard directly on this subnet; else the plugd that relayed its values from another
    #: subnet (through the broker or re-broadcast here), which this node never publishes again.
    via: int = 0
    #: Whether its last datagram was signed (plugd.core.meshkey): such values are never
    #: re-broadcast, since a copy cannot carry the node's signature.
    signed: bool = False
    #: What its plugd says its things are (its names datagram), at most MAX_THINGS_PER_NODE:
    #: bounded with the table, so spoofed ids and names cannot grow memory without limit.
    learned: dict[int, Label] = field(default_factory=dict)

    def to_json(self, now: float) -> dict[str, Any]:
        """The ESP shape (`id`, `name`) plus `nodeId`/`nodeName` for the firmware's page, plus ours."""
        return {
            "id": self.id, "name": self.name, "nodeId": self.id, "nodeName": self.name,
            "online": self.online, "address": self.address, "lastSeen": self.last_seen_esp,
            "via": self.via,
            "age": None if self.last_seen is None else round(now - self.last_seen, 1),
            "things": [{"id": tid, "value": t.value, "text": t.text,
                        "age": round(now - t.updated, 1)} for tid, t in sorted(self.things.items())],
        }

    def to_record(self) -> dict[str, Any]:
        """What nodes.json keeps of a node (its values are not kept: they go stale)."""
        return {"id": self.id, "name": self.name, "address": self.address,
                "lastSeen": self.last_seen_esp}

    @classmethod
    def from_record(cls, obj: Any, where: str) -> Peer:
        """Read one entry of nodes.json; ValidationError names the field."""
        obj = require_object(obj, where)
        address = obj.get("address", "")
        if not isinstance(address, str):
            raise ValidationError(f"{where}.address", "expected a string")
        return cls(id=read_int(obj, "id", where, low=1, high=MAX_NODE_ID),
                   name=read_name(obj, "name", where), address=address,
                   last_seen_esp=read_int(obj, "lastSeen", where) if "lastSeen" in obj else 0)


@dataclass(slots=True)
class Counters:
    """What the mesh's door saw, for `request_status` and the benchmarks."""
    received: int = 0
    accepted: int = 0
    invalid: int = 0
    rejected_fields: int = 0
    own: int = 0
    dropped_full: int = 0
    evicted: int = 0
    sent: int = 0
    send_errors: int = 0
    # With a mesh key (plugd.core.meshkey): refused datagrams, and node ids heard from a new address.
    unsigned_refused: int = 0
    bad_tag: int = 0
    replayed: int = 0
    address_changes: int = 0
    #: Newcomers heard once at a full table (they need a second datagram for a slot).
    probation: int = 0
    #: Values of nodes of other subnets taken in (through the broker or a plugd's re-broadcast).
    relayed: int = 0
    #: Relayed values ignored because the node is heard directly (it counts once).
    shadowed: int = 0


class Heard(NamedTuple):
    """What one accepted packet changed in the registry (a tuple: one is made per packet)."""

    peer: Peer
    is_new: bool
    came_online: bool
    renamed: bool


class Registry:
    """Known nodes, at most `max_nodes`, admitted by the rules in the module's docstring:
    spoofed ids then cannot evict a real node, and each costs a lookup, not a scan."""

    def __init__(self, own_id: int, *, max_nodes: int = 256, offline_after: float = 15.0,
                 keep_offline: float = KEEP_OFFLINE) -> None:
        self.own_id = own_id
        self.max_nodes = max_nodes
        self.offline_after = offline_after
        self.keep_offline = keep_offline
        self.peers: dict[int, Peer] = {}
        self.counters = Counters()
        #: Offline nodes in the order they went offline (known from disk first); entries of
        #: nodes since back online or gone are skipped when met.
        self._offline: deque[Peer] = deque()
        #: Newcomers heard once at a full table, in the order first heard.
        self._probation: dict[int, None] = {}
        #: When the nodes known from disk were loaded: they count as heard then.
        self._loaded_at = float("-inf")

    @property
    def on_probation(self) -> int:
        """How many newcomers wait to be heard again for a slot."""
        return len(self._probation)

    def load(self, records: list[Peer], now: float) -> None:
        """The nodes known from nodes.json: offline until heard, kept as if heard at `now`."""
        self._loaded_at = now
        for peer in records[: self.max_nodes]:
            if peer.id != self.own_id:
                self.peers[peer.id] = peer
                self._offline.append(peer)

    def is_online(self, node_id: int) -> bool:
        """Whether the node is heard now (this node always is): recipes use only live values."""
        if node_id == self.own_id:
            return True
        peer = self.peers.get(node_id)
        return peer is not None and peer.online

    def heard(self, packet: Packet, address: str, now: float, esp_now: int) -> Heard | None:
        """Register a packet from `address`; None when it was ours, the table is full, or it
        was relayed (`packet.via`) for a node heard directly and online: a node counts once, and
        its own datagrams win over any copy."""
        if packet.node_id == self.own_id or packet.via == self.own_id:
            self.counters.own += 1
            return None
        peer = self.peers.get(packet.node_id)
        if packet.via:
            if peer is not None and peer.online and not peer.via:
                self.counters.shadowed += 1
                return None
            self.counters.relayed += 1
        is_new = peer is None
        if peer is None:
            if len(self.peers) >= self.max_nodes and not self._admit(packet.node_id, now):
                self.counters.dropped_full += 1
                return None
            peer = self.peers[packet.node_id] = Peer(packet.node_id, packet.node_name)
        self.counters.accepted += 1
        renamed = peer.name != packet.node_name
        came_online = not peer.online
        peer.name, peer.address = packet.node_name, address
        peer.last_seen, peer.last_seen_esp, peer.online = now, esp_now, True
        peer.via, peer.signed = packet.via, packet.signed
        for item in packet.fields:
            thing = peer.things.get(item.thing_id)
            if thing is not None:
                thing.value, thing.text, thing.updated = item.value, item.text, now
            elif len(peer.things) < MAX_THINGS_PER_NODE:
                peer.things[item.thing_id] = PeerThing(item.value, item.text, now)
        for thing_id, label in packet.names:
            if thing_id in peer.learned or len(peer.learned) < MAX_THINGS_PER_NODE:
                peer.learned[thing_id] = label
        return Heard(peer, is_new, came_online, renamed)

    def _admit(self, node_id: int, now: float) -> bool:
        """A newcomer at a full table: heard before, and a slot that may be freed."""
        if node_id not in self._probation:
            self._probation[node_id] = None
            if len(self._probation) > PROBATION:
                del self._probation[next(iter(self._probation))]
            self.counters.probation += 1
            return False
        if not self._evict_one(now):
            return False
        del self._probation[node_id]
        return True

    def _evict_one(self, now: float) -> bool:
        offline = self._offline
        while offline:
            oldest = offline[0]
            if oldest.online or self.peers.get(oldest.id) is not oldest:
                offline.popleft()  # back online since, or already gone
                continue
            seen = self._loaded_at if oldest.last_seen is None else oldest.last_seen
            if now - seen < self.keep_offline:
                return False
            offline.popleft()
            del self.peers[oldest.id]
            self.counters.evicted += 1
            return True
        return False

    def sweep(self, now: float) -> list[Peer]:
        """Mark nodes unheard for `offline_after` seconds offline; return those newly so."""
        gone = []
        for peer in self.peers.values():
            if peer.online and peer.last_seen is not None and now - peer.last_seen > self.offline_after:
                peer.online = False
                peer.things.clear()
                gone.append(peer)
        gone.sort(key=lambda p: p.last_seen or 0.0)
        self._offline.extend(gone)
        return gone

    def online_count(self) -> int:
        """How many nodes are online now."""
        return sum(1 for p in self.peers.values() if p.online)


def parse_records(obj: Any) -> list[Peer]:
    """nodes.json: a list of known nodes."""
    if not isinstance(obj, list):
        raise ValidationError("nodes", "expected a list")
    return [Peer.from_record(item, f"nodes[{i}]") for i, item in enumerate(obj)]
