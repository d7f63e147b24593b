"""What people read for each value: a thing's shown name, unit and kind, and where they came from.

The mesh's datagrams carry only numbers, so a value's meaning comes from one
of four places, the first found winning:

1. a label a person gave it (`labels.json`, kept per node and thing id);
2. a name its plugd sent in its names datagram (see `plugd.core.wire`);
3. the meaning the ESP8266 plug firmware gives things 1 to 4 (assumed, and
   shown as such, since a node may use those ids otherwise);
4. nothing: the value is shown as unlabelled, with an invitation to name it.

This plug's own things keep their firmware names on the wire ("Wats"); people
read the names of `OWN` instead. Pure: no I/O; the caller keeps the files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from plugd.core.model import (
    MAX_NODE_ID,
    ThingId,
    ThingType,
    describe,
    name_problem,
    read_int,
    require_object,
)
from plugd.errors import ValidationError

#: The kinds a value may be labelled with, and the Home Assistant device class of each (None:
#: a plain sensor). A kind says what the number measures, so the bridge and the page agree.
KINDS: Mapping[str, str | None] = {
    "generic": None, "switch": None, "clock": None, "percent": None,
    "power": "power", "energy": "energy", "current": "current", "voltage": "voltage",
    "temperature": "temperature", "humidity": "humidity", "pressure": "pressure",
    "illuminance": "illuminance",
}
#: A unit is short ("W", "°C", "kWh"): it follows every value on a small screen.
MAX_UNIT = 8
#: Labels kept at most: a person names things one by one, and a file without bound is a risk.
MAX_LABELS = 512


class Origin(StrEnum):
    """Where a shown name came from; the page marks all but a person's own label."""

    LABEL = "label"
    OWN = "own"
    LEARNED = "learned"
    ASSUMED = "assumed"
    UNLABELLED = "unlabelled"


@dataclass(frozen=True, slots=True)
class Label:
    """A value's meaning for people: its name, unit ("" for none) and kind (a key of KINDS)."""

    name: str
    unit: str = ""
    kind: str = "generic"

    def to_json(self) -> dict[str, Any]:
        """The shape pages and labels.json use (without the node and thing ids)."""
        return {"name": self.name, "unit": self.unit, "kind": self.kind}


@dataclass(frozen=True, slots=True)
class Shown:
    """What people read for one value: the winning label and where it came from."""

    label: Label
    origin: Origin

    @property
    def device_class(self) -> str | None:
        """The Home Assistant device class of its kind (None: a plain sensor)."""
        return KINDS.get(self.label.kind)

    def to_json(self) -> dict[str, Any]:
        """The fields a page adds to a value: `label`, `unit`, `kind`, `origin`."""
        return {"label": self.label.name, "unit": self.label.unit, "kind": self.label.kind,
                "origin": str(self.origin)}


#: This plug's own things as people read them; the wire keeps the firmware's names.
OWN: Mapping[int, Label] = {
    ThingId.PLUG: Label("Plug", "", "switch"),
    ThingId.POWER: Label("Power", "W", "power"),
    ThingId.ENERGY_TODAY: Label("Energy today", "Wh", "energy"),
    ThingId.CLOCK: Label("Clock", "", "clock"),
    ThingId.CURRENT: Label("Current", "A", "current"),
    ThingId.ENERGY_TOTAL: Label("Energy total", "kWh", "energy"),
    ThingId.ENERGY_YESTERDAY: Label("Energy yesterday", "Wh", "energy"),
}
#: What the ESP8266 plug firmware's things 1 to 4 mean (its pages hard-code the ids); a peer's
#: value with one of these ids is shown so until labelled, marked as assumed.
ASSUMED: Mapping[int, Label] = {
    1: Label("Switch", "", "switch"),
    2: Label("Power", "W", "power"),
    3: Label("Energy today", "Wh", "energy"),
    4: Label("Clock", "", "clock"),
}
#: Units and kinds of the firmware's thing types, for things of ours beyond OWN.
_TYPE_LABELS: Mapping[ThingType, tuple[str, str]] = {
    ThingType.SWITCH: ("", "switch"), ThingType.TEMP: ("°C", "temperature"),
    ThingType.HUMID: ("%", "humidity"), ThingType.PRESS: ("hPa", "pressure"),
    ThingType.PERCENT: ("%", "percent"), ThingType.CLOCK: ("", "clock"),
}


def unit_problem(unit: str) -> str | None:
    """Why `unit` cannot be a label's unit, or None ("" is no unit)."""
    if len(unit) > MAX_UNIT:
        return f"must be at most {MAX_UNIT} characters, got {len(unit)}"
    if unit != unit.strip():
        return "must not begin or end with white space"
    if not unit.isprintable():
        return "must not contain control characters"
    if any(c in unit for c in "&:"):
        return "must not contain '&' or ':' (they separate fields on the wire)"
    return None


def kind_problem(kind: str) -> str | None:
    """Why `kind` is not a known kind, or None."""
    if kind in KINDS:
        return None
    return f"must be one of {', '.join(sorted(KINDS))}, got {kind[:20]!r}"


def label_problem(label: Label) -> str | None:
    """Why `label` cannot be kept or sent, naming the field, or None: one check for every door
    (a person's label and a name heard on the mesh)."""
    for field, problem in (("name", name_problem(label.name)), ("unit", unit_problem(label.unit)),
                           ("kind", kind_problem(label.kind))):
        if problem:
            return f"{field} {problem}"
    if label.name != label.name.strip():
        return "name must not begin or end with white space"
    return None


def _text(obj: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
    if key not in obj and default is not None:
        return default
    if key not in obj:
        raise ValidationError(f"{where}.{key}", "is missing")
    value = obj[key]
    if not isinstance(value, str):
        raise ValidationError(f"{where}.{key}", f"expected a string, got {describe(value)}")
    return value


def parse_label(obj: Any, where: str = "label") -> tuple[int, int, Label]:
    """A person's label as sent or stored: (node id, thing id, label); ValidationError names
    the field. `unit` and `kind` may be absent (none, generic)."""
    obj = require_object(obj, where)
    node_id = read_int(obj, "nodeId", where, low=1, high=MAX_NODE_ID)
    thing_id = read_int(obj, "thingId", where, low=1, high=MAX_NODE_ID)
    label = Label(_text(obj, "name", where), _text(obj, "unit", where, ""),
                  _text(obj, "kind", where, "generic"))
    problem = label_problem(label)
    if problem:
        field, _, why = problem.partition(" ")
        raise ValidationError(f"{where}.{field}", why)
    return node_id, thing_id, label


Labels = Mapping[tuple[int, int], Label]


def with_label(labels: Labels, node_id: int, thing_id: int, label: Label) -> dict[tuple[int, int], Label]:
    """The labels with one added or replaced; ValidationError when the book is full."""
    if (node_id, thing_id) not in labels and len(labels) >= MAX_LABELS:
        raise ValidationError("label", f"at most {MAX_LABELS} labels are kept; delete one first")
    return {**labels, (node_id, thing_id): label}


def without_label(labels: Labels, node_id: int, thing_id: int) -> dict[tuple[int, int], Label]:
    """The labels without that one; ValidationError when there is none to delete."""
    if (node_id, thing_id) not in labels:
        raise ValidationError("label", f"thing {thing_id} of node {node_id} has no label")
    return {key: label for key, label in labels.items() if key != (node_id, thing_id)}


def labels_json(labels: Labels) -> list[dict[str, Any]]:
    """The labels as labels.json keeps them and pages read them, in id order."""
    return [{"nodeId": node, "thingId": thing, **label.to_json()}
            for (node, thing), label in sorted(labels.items())]


def parse_labels(obj: Any) -> dict[tuple[int, int], Label]:
    """labels.json: a list of labels, each checked as a person's would be."""
    if not isinstance(obj, list):
        raise ValidationError("labels", f"expected a list, got {describe(obj)}")
    if len(obj) > MAX_LABELS:
        raise ValidationError("labels", f"at most {MAX_LABELS} labels, got {len(obj)}")
    found: dict[tuple[int, int], Label] = {}
    for index, item in enumerate(obj):
        node_id, thing_id, label = parse_label(item, f"labels[{index}]")
        found[(node_id, thing_id)] = label
    return found


def own_label(thing_id: int, wire_name: str, thing_type: ThingType) -> Label:
    """How people read one of this plug's things: OWN's name, else its own name with the unit
    and kind of its type."""
    known = OWN.get(thing_id)
    if known is not None:
        return known
    unit, kind = _TYPE_LABELS.get(thing_type, ("", "generic"))
    return Label(wire_name.strip(), unit, kind)


def resolve(thing_id: int, labelled: Label | None, learned: Label | None) -> Shown:
    """A peer's value as people read it: a person's label, else the name its plugd sent,
    else the firmware's meaning of ids 1 to 4, else unlabelled ("value 5")."""
    if labelled is not None:
        return Shown(labelled, Origin.LABEL)
    if learned is not None:
        return Shown(learned, Origin.LEARNED)
    assumed = ASSUMED.get(thing_id)
    if assumed is not None:
        return Shown(assumed, Origin.ASSUMED)
    return Shown(Label(f"value {thing_id}"), Origin.UNLABELLED)


def with_unit(number: str, label: Label) -> str:
    """A number as people read it with its label's unit: "19 °C", "100 W", "3"."""
    return f"{number} {label.unit}" if label.unit else number
