"""The UDP mesh codec, byte-compatible with the ESP8266 smart-plug firmware.

A datagram reads `<nodeId>:<nodeName>&<thingId>:<value>&...`. This module has
no sockets and no clock: `decode` turns bytes into a `Packet` or raises
`WireError`, `encode` turns values into bytes. Decoding follows what the
firmware's receiver does (strtok on `&`, cut at the first `:`, atof), and is
lenient where the firmware is sloppy: a bad field is dropped on its own and
never spoils the rest of the packet.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import NamedTuple

from plugd.core.labels import Label, label_problem
from plugd.core.model import MAX_NODE_ID, name_problem
from plugd.errors import WireError

#: The firmware's receive buffer; keep what we send well under it.
MAX_DATAGRAM = 512
#: Names of the fields a signed datagram ends with (see plugd.core.meshkey): not thing values.
SIGNATURE_FIELDS = frozenset({b"ctr", b"sig"})
#: The field a plugd adds to a datagram it re-broadcasts for a node of another subnet (see
#: plugd.core.meshbridge): `&via:<its own node id>`. An ESP8266 reads it as thing 0, which no
#: recipe uses; a plugd learns from it that the node was not heard directly.
VIA_FIELD = b"via"
#: Fields of plugd's that are not thing values: skipped, never counted as refused.
EXTENSION_FIELDS = SIGNATURE_FIELDS | {VIA_FIELD}
#: A plugd tells the others what its things are in a names datagram of its own, sent far more
#: rarely than its values: its usual node header, then `n<thingId>:<kind>:<unit>:<name>` per
#: thing. An ESP8266 reads each such field as thing 0 (`atoi("n2")` is 0), which no recipe
#: uses, and the datagram has no field with a thing id of 1 or more, so it changes nothing an
#: ESP knows but the node's last-seen time, which it sends truthfully.
NAMES_PREFIX = b"n"
#: The names datagram stops adding things at this size, leaving room for a mesh key's fields.
MAX_NAMES_DATAGRAM = 400

# What C's atof accepts as the start of a string, without its nan/inf forms.
_FLOAT_PREFIX = re.compile(rb"[ \t\n\v\f\r]*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)")
_INT = re.compile(rb"[ \t]*([+-]?\d{1,10})[ \t]*")


class Field(NamedTuple):
    """One `<thingId>:<value>` pair. `value` is what the firmware's atof reads; `text` is as sent.

    A named tuple: decoding makes several per datagram, and tuples are the cheapest to build.
    """

    thing_id: int
    value: float
    text: str


class Packet(NamedTuple):
    """A decoded datagram: the sender, its fields, and how many fields were refused."""
    node_id: int
    node_name: str
    fields: tuple[Field, ...]
    #: Fields that could not be read and were dropped (they never spoil the others).
    rejected: int = 0
    #: Whether it ends in a tag field (plugd.core.meshkey; valid or not).
    signed: bool = False
    #: The plugd that re-broadcast it for a node of another subnet (a `via` field); 0: none,
    #: the node sent it itself.
    via: int = 0
    #: What a plugd says its things are (its names datagram): (thing id, label) pairs.
    names: tuple[tuple[int, Label], ...] = ()


def atof_prefix(raw: bytes) -> float | None:
    """The number at the start of `raw` as C's atof reads it, or None if there is none.

    `13:05:09 - 24.11.2026` (a CLOCK value) reads as 13, as it does on an ESP.
    Non-finite results (`1e999`) count as no number.
    """
    match = _FLOAT_PREFIX.match(raw)
    if match is None:
        return None
    value = float(match.group(1))
    return value if math.isfinite(value) else None


def _integer(raw: bytes) -> int | None:
    """A decimal integer as atoi reads a whole field (plain digits take the fast way)."""
    if raw.isdigit() and len(raw) <= 10:
        return int(raw)
    match = _INT.fullmatch(raw)
    return int(match.group(1)) if match else None


def _number(raw: bytes) -> float | None:
    """A field's value as atof reads it; finite or None."""
    if b"_" not in raw:  # float() reads 1_0 as 10, where atof stops at the '_'
        try:
            value = float(raw)
        except ValueError:
            return atof_prefix(raw)
        return value if math.isfinite(value) else None
    return atof_prefix(raw)


def decode(data: bytes) -> Packet:
    """Read one datagram; raise WireError when it has no usable node header."""
    # The firmware's buffer is not cleared between packets: stop at the first NUL.
    end = data.find(b"\0")
    tokens = (data if end < 0 else data[:end]).split(b"&")
    if b"" in tokens:
        tokens = [t for t in tokens if t]  # strtok skips empty tokens
        if not tokens:
            raise WireError("empty datagram")
    head, sep, raw_name = tokens[0].partition(b":")
    if not sep:
        raise WireError("the first field has no ':' between node id and node name")
    node_id = _integer(head)
    if node_id is None:
        raise WireError(f"node id {head[:16]!r} is not a decimal integer")
    if not 0 < node_id <= MAX_NODE_ID:
        raise WireError(f"node id {node_id} is outside 1..{MAX_NODE_ID}")
    name = raw_name.decode("utf-8", "replace").strip()
    problem = name_problem(name)
    if problem:
        raise WireError(f"node name {name[:40]!r} {problem}")
    fields: list[Field] = []
    rejected = 0
    signed = False
    via = 0
    names: list[tuple[int, Label]] = []
    for token in tokens[1:]:
        raw_id, sep, raw_value = token.partition(b":")
        # The common field is digits, ':' and a plain number: read it without the regexes.
        if sep and raw_id.isdigit() and len(raw_id) <= 10:
            thing_id: int | None = int(raw_id)
        else:
            thing_id = _integer(raw_id) if sep else None
        if thing_id is None or not 0 < thing_id <= MAX_NODE_ID:
            if sep and raw_id[:1] == NAMES_PREFIX:
                named = _name_field(raw_id, raw_value)
                if named is None:
                    rejected += 1
                else:
                    names.append(named)
            elif not (sep and raw_id in EXTENSION_FIELDS):
                rejected += 1
            elif raw_id == b"sig":
                signed = True
            elif raw_id == VIA_FIELD:
                relayer = _integer(raw_value)
                via = relayer if relayer is not None and 0 < relayer <= MAX_NODE_ID else via
            continue
        value = _number(raw_value)
        if value is None:
            rejected += 1
            continue
        fields.append(Field(thing_id, value, raw_value.decode("utf-8", "replace").strip()))
    return Packet(node_id, name, tuple(fields), rejected, signed, via, tuple(names))


def _name_field(raw_id: bytes, raw_value: bytes) -> tuple[int, Label] | None:
    """One `n<thingId>:<kind>:<unit>:<name>` field, or None when any part is not valid (a
    name heard is checked as a person's label is)."""
    digits = raw_id[len(NAMES_PREFIX):]
    if not digits.isdigit() or len(digits) > 10:
        return None
    thing_id = int(digits)
    parts = raw_value.decode("utf-8", "replace").split(":", 2)
    if not 0 < thing_id <= MAX_NODE_ID or len(parts) != 3:
        return None
    label = Label(parts[2], parts[1], parts[0])
    return None if label_problem(label) else (thing_id, label)


def format_number(value: float) -> str:
    """A value as the Arduino `String(float)` prints it: two decimals, no exponent."""
    if not math.isfinite(value):
        raise WireError(f"cannot send the non-finite value {value}")
    text = f"{value:.2f}"
    return "0.00" if text == "-0.00" else text


def format_clock(moment: datetime) -> str:
    """A CLOCK value as the firmware prints it: `H:MM:SS - D.M.YYYY`."""
    return (f"{moment.hour}:{moment.minute:02d}:{moment.second:02d} - "
            f"{moment.day}.{moment.month}.{moment.year}")


def encode(node_id: int, node_name: str, values: list[tuple[int, str]], via: int = 0) -> bytes:
    """Build one datagram from already formatted values (see `format_number`, `format_clock`);
    `via` (a plugd's node id) marks it as re-broadcast for a node of another subnet."""
    if not 0 < node_id <= MAX_NODE_ID:
        raise WireError(f"node id {node_id} is outside 1..{MAX_NODE_ID}")
    problem = name_problem(node_name)
    if problem:
        raise WireError(f"node name {node_name!r} {problem}")
    parts = [f"{node_id}:{node_name}"]
    for thing_id, text in values:
        if "&" in text or "\0" in text or not text:
            raise WireError(f"value {text!r} of thing {thing_id} cannot travel on the wire")
        parts.append(f"{thing_id}:{text}")
    if via:
        if not 0 < via <= MAX_NODE_ID:
            raise WireError(f"relaying node id {via} is outside 1..{MAX_NODE_ID}")
        parts.append(f"{VIA_FIELD.decode()}:{via}")
    data = "&".join(parts).encode("utf-8")
    if len(data) > MAX_DATAGRAM:
        raise WireError(f"datagram of {len(data)} bytes exceeds {MAX_DATAGRAM}")
    return data


def encode_names(node_id: int, node_name: str, things: list[tuple[int, Label]]) -> bytes:
    """This node's names datagram (see NAMES_PREFIX): as many of `things` as fit in
    MAX_NAMES_DATAGRAM, in order; a label that cannot travel raises WireError."""
    data = encode(node_id, node_name, [])
    for thing_id, label in things:
        problem = label_problem(label)
        if problem:
            raise WireError(f"the name of thing {thing_id} cannot travel: {problem}")
        field = f"&{NAMES_PREFIX.decode()}{thing_id}:{label.kind}:{label.unit}:{label.name}".encode()
        if len(data) + len(field) > MAX_NAMES_DATAGRAM:
            break
        data += field
    return data
