"""MQTT and Home Assistant discovery: topic names, ids and payloads, with no I/O.

The MQTT outlet (`plugd.doors.mqtt`) publishes what these functions build, so
the shapes Home Assistant reads are checked here, in one place, and tests can
build them without a broker. Ids come from node ids only, never from names:
a rename changes what people read, not what Home Assistant keys on.

Layout under the plug's topic prefix (`plugd/kitchen-plug` by default):

    <prefix>/availability          online | offline (retained; offline is the last will)
    <prefix>/relay                 ON | OFF (retained)
    <prefix>/relay/set             ON | OFF | TOGGLE (commands; retained ones are ignored)
    <prefix>/state                 JSON: power, current, energy, protection, faults (retained)
    <prefix>/peers/<id>            JSON: a mesh peer's things, {"thing_5": 21.5} (bridge_mesh)
    <prefix>/peers/<id>/availability   online | offline (bridge_mesh)

and one retained config per entity under `<discovery>/<component>/<object id>/config`.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from plugd.core.labels import Origin, Shown
from plugd.errors import ValidationError

ONLINE = "online"
OFFLINE = "offline"
PAYLOAD_ON = "ON"
PAYLOAD_OFF = "OFF"
PAYLOAD_TOGGLE = "TOGGLE"
#: Home Assistant keeps a sensor's state to 255 characters; longer texts are cut.
MAX_STATE = 255
#: The longest wait between two tries to reach the broker, in seconds.
MAX_BACKOFF = 30.0
#: The first wait after a failed try; each failure doubles it up to MAX_BACKOFF.
FIRST_BACKOFF = 1.0

_NOT_TOPIC_SAFE = re.compile(r"[^a-z0-9_-]+")
_NOT_ID_SAFE = re.compile(r"[^a-zA-Z0-9_-]+")


def topic_label(name: str, fallback: str) -> str:
    """A node name made fit for one topic level: "Küche Plug 2" -> "kuche-plug-2".

    Lowercase letters, digits, `_` and `-`: no `/`, `+`, `#` or spaces, which
    split or widen topics. `fallback` stands in when nothing is left.
    """
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    label = _NOT_TOPIC_SAFE.sub("-", ascii_name.lower()).strip("-")
    return label[:64].rstrip("-") or fallback


def object_id(*parts: object) -> str:
    """An object id (and unique id) from its parts: only `[a-zA-Z0-9_-]`, joined by `_`."""
    return "_".join(_NOT_ID_SAFE.sub("-", str(part)).strip("-") for part in parts)


def default_prefix(node_name: str, node_id: int) -> str:
    """The topic prefix when none is configured: `plugd/<node name made fit for a topic>`."""
    return f"plugd/{topic_label(node_name, f'node-{node_id}')}"


def prefix_problem(prefix: str) -> str | None:
    """Why `prefix` cannot begin plugd's topics, or None when it can ("" is the default)."""
    if not prefix:
        return None
    if any(c in prefix for c in "+#\0"):
        return f"must not contain the wildcards + or # (or NUL), got {prefix!r}"
    if prefix.startswith(("/", "$")) or prefix.endswith("/") or "//" in prefix:
        return f"must not begin with / or $, end with / or hold an empty level, got {prefix!r}"
    if len(prefix.encode()) > 1024:
        return "must be at most 1024 bytes"
    return None


def backoff(failures: int, spread: float) -> float:
    """Seconds to wait after `failures` failed tries in a row; `spread` in [0, 1) is the jitter
    (a random number from the caller), so plugs that lost one broker do not all return at once."""
    ceiling = min(MAX_BACKOFF, FIRST_BACKOFF * 2.0 ** max(0, failures - 1))
    return ceiling * (0.5 + 0.5 * spread)


@dataclass(frozen=True, slots=True)
class Topics:
    """Every topic of one plug, from its prefix, the discovery prefix and its node id."""

    prefix: str
    discovery: str
    node_id: int

    @property
    def availability(self) -> str:
        """`online` while connected; the broker publishes `offline` (the last will) when not."""
        return f"{self.prefix}/availability"

    @property
    def relay(self) -> str:
        """The relay's state, ON or OFF."""
        return f"{self.prefix}/relay"

    @property
    def command(self) -> str:
        """Where ON, OFF and TOGGLE switch the relay."""
        return f"{self.prefix}/relay/set"

    @property
    def state(self) -> str:
        """The measured values and diagnostics, as one JSON object."""
        return f"{self.prefix}/state"

    @property
    def ha_status(self) -> str:
        """Home Assistant's own status: `online` when it (re)starts and wants discovery again."""
        return f"{self.discovery}/status"

    def peer(self, peer_id: int) -> str:
        """A mesh peer's things, as one JSON object."""
        return f"{self.prefix}/peers/{peer_id}"

    def peer_availability(self, peer_id: int) -> str:
        """A mesh peer's online/offline, as this plug hears it."""
        return f"{self.prefix}/peers/{peer_id}/availability"

    def config(self, component: str, object_id: str) -> str:
        """Where Home Assistant reads an entity's discovery config."""
        return f"{self.discovery}/{component}/{object_id}/config"


@dataclass(frozen=True, slots=True)
class Device:
    """What Home Assistant shows of this plug: its name, model, version and page."""

    node_id: int
    name: str
    model: str
    version: str
    url: str

    @property
    def identifier(self) -> str:
        """The device's id in Home Assistant: from the node id, so stable across renames."""
        return object_id("plugd", self.node_id)

    def to_json(self) -> dict[str, Any]:
        """The `device` block every entity of this plug carries."""
        block: dict[str, Any] = {"identifiers": [self.identifier], "name": self.name,
                                 "manufacturer": "plugd", "model": self.model,
                                 "sw_version": self.version}
        if self.url:
            block["configuration_url"] = self.url
        return block


@dataclass(frozen=True, slots=True)
class Sensor:
    """One sensor of the plug: its key in the state JSON and how Home Assistant shows it."""

    key: str
    name: str
    unit: str | None = None
    device_class: str | None = None
    state_class: str | None = None
    precision: int | None = None
    diagnostic: bool = False
    icon: str | None = None


#: The plug's sensors, each read from the state JSON with `{{ value_json.<key> }}`.
SENSORS = (
    Sensor("power", "Power", "W", "power", "measurement", 0),
    Sensor("current", "Current", "A", "current", "measurement", 2),
    Sensor("energy_today", "Energy today", "Wh", "energy", "total_increasing", 0),
    Sensor("energy_total", "Energy total", "kWh", "energy", "total_increasing", 3),
    Sensor("energy_yesterday", "Energy yesterday", "Wh", "energy", None, 0),
    Sensor("protection", "Protection", diagnostic=True, icon="mdi:shield-alert-outline"),
    Sensor("faults", "Sensor faults", diagnostic=True, icon="mdi:alert-circle-outline"),
)


def _origin(version: str) -> dict[str, Any]:
    return {"name": "plugd", "sw_version": version}


def _availability(topics: Topics) -> dict[str, Any]:
    return {"availability_topic": topics.availability, "payload_available": ONLINE,
            "payload_not_available": OFFLINE}


def announcements(topics: Topics, device: Device) -> list[tuple[str, dict[str, Any]]]:
    """The plug's discovery configs, as (config topic, payload): the relay's switch and a
    sensor for each of SENSORS, all on one device."""
    base = {**_availability(topics), "device": device.to_json(), "origin": _origin(device.version)}
    relay_id = object_id("plugd", topics.node_id, "relay")
    configs = [(topics.config("switch", relay_id), {
        "name": "Relay", "unique_id": relay_id,
        "command_topic": topics.command, "state_topic": topics.relay,
        "payload_on": PAYLOAD_ON, "payload_off": PAYLOAD_OFF, "qos": 1, "retain": False,
        "icon": "mdi:power-socket-eu", **base})]
    for sensor in SENSORS:
        unique = object_id("plugd", topics.node_id, sensor.key)
        payload: dict[str, Any] = {"name": sensor.name, "unique_id": unique, "state_topic": topics.state,
                                   "value_template": f"{{{{ value_json.{sensor.key} }}}}",
                                   "qos": 1, **base}
        extra = {"unit_of_measurement": sensor.unit, "device_class": sensor.device_class,
                 "state_class": sensor.state_class, "suggested_display_precision": sensor.precision,
                 "entity_category": "diagnostic" if sensor.diagnostic else None,
                 "icon": sensor.icon}
        payload.update({k: v for k, v in extra.items() if v is not None})
        configs.append((topics.config("sensor", unique), payload))
    return configs


def peer_thing_key(thing_id: int) -> str:
    """A peer thing's key in the peer's state JSON."""
    return f"thing_{thing_id}"


def peer_announcements(topics: Topics, device: Device, peer_id: int, peer_name: str,
                       thing_ids: Iterable[int], shown: Mapping[int, Shown] | None = None,
                       ) -> list[tuple[str, dict[str, Any]]]:
    """A mesh peer as a device of its own, heard through this plug: a sensor per thing,
    available while this plug is connected and the peer online. `shown` (plugd.core.labels)
    names each thing: a label's or a learned name brings its unit and device class, an assumed
    one its unit only (a guess must not make Home Assistant refuse the entity)."""
    peer_device = {"identifiers": [object_id("plugd", topics.node_id, "peer", peer_id)],
                   "name": peer_name, "model": "mesh node", "manufacturer": "plugd mesh",
                   "via_device": device.identifier}
    availability = {"availability": [
        {"topic": topics.availability, "payload_available": ONLINE,
         "payload_not_available": OFFLINE},
        {"topic": topics.peer_availability(peer_id), "payload_available": ONLINE,
         "payload_not_available": OFFLINE}], "availability_mode": "all"}
    configs = []
    for thing_id in sorted(thing_ids):
        unique = object_id("plugd", topics.node_id, "peer", peer_id, "thing", thing_id)
        config: dict[str, Any] = {
            "name": f"Thing {thing_id}", "unique_id": unique, "state_topic": topics.peer(peer_id),
            "value_template": f"{{{{ value_json.{peer_thing_key(thing_id)} }}}}", "qos": 1,
            "device": peer_device, "origin": _origin(device.version), **availability}
        meaning = None if shown is None else shown.get(thing_id)
        if meaning is not None and meaning.origin != Origin.UNLABELLED:
            config["name"] = meaning.label.name
            if meaning.label.unit:
                config["unit_of_measurement"] = meaning.label.unit
            if meaning.device_class is not None and meaning.origin != Origin.ASSUMED:
                config["device_class"] = meaning.device_class
        configs.append((topics.config("sensor", unique), config))
    return configs


def relay_payload(on: bool) -> str:
    """The relay's state as the switch reads it."""
    return PAYLOAD_ON if on else PAYLOAD_OFF


def parse_command(payload: bytes, on: bool) -> bool:
    """Whether the relay is to be on after the command `payload` (ON, OFF or TOGGLE, any case;
    `on` is its state now); ValidationError for anything else."""
    text = payload.decode("utf-8", "replace").strip().upper()
    if text == PAYLOAD_ON:
        return True
    if text == PAYLOAD_OFF:
        return False
    if text == PAYLOAD_TOGGLE:
        return not on
    shown = payload[:20].decode("utf-8", "replace")
    raise ValidationError("command", f'expected "ON", "OFF" or "TOGGLE", got {shown!r}')


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _cut(text: str) -> str:
    return text if len(text) <= MAX_STATE else text[:MAX_STATE - 3] + "..."


def state_payload(*, power: float | None, current: float | None, energy_today: float | None,
                  energy_total: float | None, energy_yesterday: float | None,
                  tripped: str | None, faults: Iterable[str]) -> dict[str, Any]:
    """The state JSON: a value that is not valid now (a failed sensor) is null, which Home
    Assistant shows as unknown; protection and faults as words."""
    found = [f for f in faults if f]
    return {"power": _rounded(power, 1), "current": _rounded(current, 3),
            "energy_today": _rounded(energy_today, 1), "energy_total": _rounded(energy_total, 4),
            "energy_yesterday": _rounded(energy_yesterday, 1),
            "protection": "ok" if tripped is None else _cut(f"tripped: {tripped}"),
            "faults": _cut("; ".join(found)) if found else "none"}


def peer_payload(things: Mapping[int, float]) -> dict[str, Any]:
    """A peer's state JSON: each thing's latest value by `thing_<id>`."""
    return {peer_thing_key(tid): value for tid, value in sorted(things.items())}


def encode(obj: Any) -> bytes:
    """A payload as compact JSON."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
