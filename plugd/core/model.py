"""The mesh entities (nodes, things, recipes) in the JSON shapes of the ESP8266 firmware.

Parsing is strict: every `from_json` names the field that is missing or wrong,
so the API and the state loader can refuse bad input without guessing.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Any

from plugd.errors import ValidationError

#: The ESP8266 firmware counts time in seconds since 2000-01-01 00:00:00.
ESP_EPOCH = 946_684_800
#: Node ids travel through the ESP's signed 32-bit `long`.
MAX_NODE_ID = 2**31 - 1
MAX_NAME = 32

ON = 1.0
OFF = 0.0


class ThingType(IntEnum):
    """The kinds of value a thing holds, as the firmware numbers them (pages pick units by it)."""
    LONG = 0
    SWITCH = 1
    TEMP = 2
    HUMID = 3
    PRESS = 4
    PERCENT = 5
    GENERIC = 6
    CLOCK = 7


class Relation(IntEnum):
    """How a recipe compares its source value with its target, as the firmware numbers them."""
    EQUALS = 0
    NOT_EQUALS = 1
    BIGGER_THAN = 2
    SMALLER_THAN = 3
    NOT_BIGGER_THAN = 4
    NOT_SMALLER_THAN = 5

    def holds(self, left: float, right: float) -> bool:
        """Whether `left <relation> right`, as the firmware compares floats."""
        match self:
            case Relation.EQUALS:
                return left == right
            case Relation.NOT_EQUALS:
                return left != right
            case Relation.BIGGER_THAN:
                return left > right
            case Relation.SMALLER_THAN:
                return left < right
            case Relation.NOT_BIGGER_THAN:
                return left <= right
            case Relation.NOT_SMALLER_THAN:
                return left >= right
        raise AssertionError(self)


class ThingId(IntEnum):
    """Ids of the smart plug's own things; ESP pages hard-code 1 to 4, 5 on are plugd's."""

    PLUG = 1
    POWER = 2
    ENERGY_TODAY = 3
    CLOCK = 4
    CURRENT = 5
    ENERGY_TOTAL = 6
    ENERGY_YESTERDAY = 7


#: Things the meter sets; they are invalid (not sent, shown as faults) until it has a reading.
METERED = frozenset({ThingId.POWER, ThingId.ENERGY_TODAY, ThingId.CURRENT, ThingId.ENERGY_TOTAL,
                     ThingId.ENERGY_YESTERDAY})
#: Things whose value a sensor or the clock sets; people and recipes cannot.
MEASURED = METERED | {ThingId.CLOCK}


def esp_time(unix: float | None = None) -> int:
    """Seconds since the firmware's epoch (2000-01-01) for a Unix time."""
    return int((time.time() if unix is None else unix) - ESP_EPOCH)


# --- strict field readers, shared by every parser of outside input ----------


def _get(obj: dict[str, Any], key: str, where: str) -> Any:
    if key not in obj:
        raise ValidationError(f"{where}.{key}", "is missing")
    return obj[key]


def read_int(obj: dict[str, Any], key: str, where: str, *, low: int | None = None,
             high: int | None = None) -> int:
    """An integer field (a float with no fraction is accepted, as JSON writers differ)."""
    value = _get(obj, key, where)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{where}.{key}", f"expected an integer, got {describe(value)}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValidationError(f"{where}.{key}", f"must be between {low} and {high}, got {value}")
    return value


def finite(value: int | float) -> float:
    """A JSON or TOML number as a float; ValueError, naming it, for inf, NaN or an integer
    longer than any float (both formats allow them, and no value of plugd's is one)."""
    try:
        number = float(value)
    except OverflowError:
        raise ValueError(f"an integer of {len(str(abs(value)))} digits") from None
    if not math.isfinite(number):
        raise ValueError(str(value))
    return number


def read_float(obj: dict[str, Any], key: str, where: str) -> float:
    """A finite number field."""
    value = _get(obj, key, where)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(f"{where}.{key}", f"expected a number, got {describe(value)}")
    try:
        return finite(value)
    except ValueError as err:
        raise ValidationError(f"{where}.{key}", f"must be a finite number, got {err}") from None


def read_bool(obj: dict[str, Any], key: str, where: str) -> bool:
    """A boolean field; 0 and 1 pass too, since the firmware's pages send either."""
    value = _get(obj, key, where)
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValidationError(f"{where}.{key}", f"expected true or false, got {describe(value)}")


def read_name(obj: dict[str, Any], key: str, where: str) -> str:
    """A name that can travel in a datagram: no `&`, no control characters, 1..32 long."""
    value = _get(obj, key, where)
    if not isinstance(value, str):
        raise ValidationError(f"{where}.{key}", f"expected a string, got {describe(value)}")
    problem = name_problem(value)
    if problem:
        raise ValidationError(f"{where}.{key}", problem)
    return value


def name_problem(name: str) -> str | None:
    """Why `name` cannot be used on the wire, or None when it can."""
    if not name.strip():
        return "must not be empty"
    if len(name) > MAX_NAME:
        return f"must be at most {MAX_NAME} characters, got {len(name)}"
    if "&" in name:
        return "must not contain '&' (it separates fields on the wire)"
    if not name.isprintable():
        return "must not contain control characters"
    return None


def sanitize_name(name: str, fallback: str = "plugd") -> str:
    """Make any text (a hostname, say) into a valid wire name."""
    cleaned = "".join(c for c in name if c != "&" and 32 <= ord(c) != 127).strip()
    return cleaned[:MAX_NAME].strip() or fallback


def describe(value: Any) -> str:
    """A short description of a JSON value for error messages."""
    kind = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "an object", type(None): "null"}.get(type(value), type(value).__name__)
    if isinstance(value, (bool, int, float)) or value is None:
        return f"{kind} ({json_text(value)})"
    if isinstance(value, str):
        shown = value if len(value) <= 20 else value[:17] + "..."
        return f"{kind} ({shown!r})"
    return kind


def json_text(value: Any) -> str:
    """A JSON value as JSON writes it, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def require_object(value: Any, where: str) -> dict[str, Any]:
    """`value` as an object, or a ValidationError naming `where`."""
    if not isinstance(value, dict):
        raise ValidationError(where, f"expected an object, got {describe(value)}")
    return value


# --- entities ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Thing:
    """One value a node owns (the relay, the power, a temperature), in the firmware's shape."""
    id: int
    name: str
    type: ThingType
    value: float = 0.0
    override: bool = False
    last_updated: int = 0

    def to_json(self) -> dict[str, Any]:
        """The firmware's shape, as stored and sent."""
        return {"id": self.id, "name": self.name, "type": int(self.type), "value": self.value,
                "override": self.override, "last_updated": self.last_updated}

    @classmethod
    def from_json(cls, obj: Any, where: str = "thing") -> Thing:
        """Parse a stored or submitted thing; ValidationError names the field."""
        obj = require_object(obj, where)
        return cls(
            id=read_int(obj, "id", where, low=1, high=MAX_NODE_ID),
            name=read_name(obj, "name", where),
            type=ThingType(read_int(obj, "type", where, low=0, high=len(ThingType) - 1)),
            value=read_float(obj, "value", where),
            override=read_bool(obj, "override", where),
            last_updated=read_int(obj, "last_updated", where),
        )

    def with_value(self, value: float, now: int) -> Thing:
        """The thing with a new value taken at `now` (seconds since 2000)."""
        return replace(self, value=value, last_updated=now)


@dataclass(frozen=True, slots=True)
class Recipe:
    """IF a source thing stands in a relation to a target THEN set a local thing (firmware's shape)."""
    id: int
    name: str
    source_node_id: int
    source_thing_id: int
    source_value: float
    relation: Relation
    local_thing_id: int
    target_value: float
    local_value: float
    last_updated: int = 0

    def to_json(self) -> dict[str, Any]:
        """The firmware's shape, as stored, exported and sent to pages."""
        return {"id": self.id, "name": self.name, "sourceNodeId": self.source_node_id,
                "sourceThingId": self.source_thing_id, "sourceValue": self.source_value,
                "relation": int(self.relation), "localThingId": self.local_thing_id,
                "targetValue": self.target_value, "localValue": self.local_value,
                "last_updated": self.last_updated}

    @classmethod
    def from_json(cls, obj: Any, where: str = "recipe") -> Recipe:
        """Parse a stored or submitted recipe; `sourceValue` and `last_updated` may be absent."""
        obj = require_object(obj, where)
        return cls(
            id=read_int(obj, "id", where, low=1, high=MAX_NODE_ID),
            name=read_name(obj, "name", where),
            source_node_id=read_int(obj, "sourceNodeId", where, low=1, high=MAX_NODE_ID),
            source_thing_id=read_int(obj, "sourceThingId", where, low=1, high=MAX_NODE_ID),
            source_value=read_float(obj, "sourceValue", where) if "sourceValue" in obj else 0.0,
            relation=Relation(read_int(obj, "relation", where, low=0, high=len(Relation) - 1)),
            local_thing_id=read_int(obj, "localThingId", where, low=1, high=MAX_NODE_ID),
            target_value=read_float(obj, "targetValue", where),
            local_value=read_float(obj, "localValue", where),
            last_updated=read_int(obj, "last_updated", where) if "last_updated" in obj else 0,
        )

    def matches(self, value: float) -> bool:
        """Whether a source value satisfies this recipe's condition."""
        return self.relation.holds(value, self.target_value)


def default_things() -> list[Thing]:
    """The smart plug's own things, with the ids and names ESP pages expect."""
    return [
        Thing(ThingId.PLUG, "Plug", ThingType.SWITCH),
        Thing(ThingId.POWER, "Wats", ThingType.GENERIC),
        Thing(ThingId.ENERGY_TODAY, "Daily Wats/Hour", ThingType.GENERIC),
        Thing(ThingId.CLOCK, "Clock", ThingType.CLOCK),
        Thing(ThingId.CURRENT, "Current A", ThingType.GENERIC),
        Thing(ThingId.ENERGY_TOTAL, "Total kWh", ThingType.GENERIC),
        Thing(ThingId.ENERGY_YESTERDAY, "Yesterday Wh", ThingType.GENERIC),
    ]
