"""Names and units for people (plugd.core.labels), and the names datagram on the wire, read
beside a parser that does what the ESP8266 firmware does with it."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugd.core.labels import (
    ASSUMED,
    KINDS,
    MAX_LABELS,
    OWN,
    Label,
    Origin,
    label_problem,
    labels_json,
    own_label,
    parse_label,
    parse_labels,
    resolve,
    with_label,
    without_label,
)
from plugd.core.meshkey import sign
from plugd.core.model import ThingId, ThingType, default_things
from plugd.core.registry import MAX_THINGS_PER_NODE, Registry
from plugd.core.wire import MAX_NAMES_DATAGRAM, decode, encode, encode_names
from plugd.errors import ValidationError, WireError

FRIDGE = Label("Fridge power", "W", "power")


# --- what people read ---------------------------------------------------------------------


@pytest.mark.parametrize("thing_id", [1, 2, 3, 4, 5, 21])
@pytest.mark.parametrize("labelled", [None, Label("Mine", "°C", "temperature")])
@pytest.mark.parametrize("learned", [None, Label("Sent", "A", "current")])
def test_a_label_wins_over_a_learned_name_which_wins_over_the_assumed_meaning(thing_id, labelled,
                                                                           learned):
    shown = resolve(thing_id, labelled, learned)
    if labelled is not None:
        assert (shown.label, shown.origin) == (labelled, Origin.LABEL)
    elif learned is not None:
        assert (shown.label, shown.origin) == (learned, Origin.LEARNED)
    elif thing_id in ASSUMED:
        assert (shown.label, shown.origin) == (ASSUMED[thing_id], Origin.ASSUMED)
    else:
        assert shown.origin == Origin.UNLABELLED and shown.label.name == f"value {thing_id}"


def test_the_assumed_meanings_are_the_firmwares_things_1_to_4():
    assert {i: (a.name, a.unit) for i, a in ASSUMED.items()} == {
        1: ("Switch", ""), 2: ("Power", "W"), 3: ("Energy today", "Wh"), 4: ("Clock", "")}
    assert resolve(2, None, None).device_class == "power"


def test_this_plugs_things_have_names_for_people_and_keep_their_wire_names():
    things = {t.id: t for t in default_things()}
    assert things[ThingId.POWER].name == "Wats"  # what ESP pages read
    shown = {t.id: own_label(t.id, t.name, t.type) for t in things.values()}
    assert shown == dict(OWN)
    assert (shown[2].name, shown[2].unit, shown[3].name, shown[5].unit) == ("Power", "W",
                                                                            "Energy today", "A")
    assert own_label(9, "Boiler", ThingType.TEMP) == Label("Boiler", "°C", "temperature")
    assert own_label(10, "Pump", ThingType.GENERIC) == Label("Pump", "", "generic")


@pytest.mark.parametrize(("label", "error"), [
    ({"name": ""}, "label.name: must not be empty"),
    ({"name": "x" * 33}, "label.name: must be at most 32 characters, got 33"),
    ({"name": "Hot & cold"}, "label.name: must not contain '&'"),
    ({"name": "Bell\x07"}, "label.name: must not contain control characters"),
    ({"name": " Padded"}, "label.name: must not begin or end with white space"),
    ({"name": 5}, "label.name: expected a string, got an integer (5)"),
    ({"unit": "kilowatts"}, "label.unit: must be at most 8 characters, got 9"),
    ({"unit": "m:s"}, "label.unit: must not contain '&' or ':'"),
    ({"unit": " W"}, "label.unit: must not begin or end with white space"),
    ({"kind": "smell"}, "label.kind: must be one of clock, current, energy"),
    ({"nodeId": 0}, "label.nodeId: must be between 1 and"),
    ({"thingId": "5"}, "label.thingId: expected an integer, got a string ('5')"),
])
def test_a_bad_label_is_refused_naming_its_field(label, error):
    good = {"nodeId": 777, "thingId": 5, "name": "Fridge power", "unit": "W", "kind": "power"}
    with pytest.raises(ValidationError) as caught:
        parse_label({**good, **label})
    assert str(caught.value).startswith(error)


def test_unit_and_kind_may_be_left_out():
    assert parse_label({"nodeId": 7, "thingId": 5, "name": "Door"}) == (7, 5, Label("Door"))


def test_the_book_is_bounded_and_a_delete_names_what_is_missing():
    book = {(1, i): FRIDGE for i in range(1, MAX_LABELS + 1)}
    assert len(with_label(book, 1, 1, Label("Again"))) == MAX_LABELS  # a replacement fits
    with pytest.raises(ValidationError, match=f"at most {MAX_LABELS} labels"):
        with_label(book, 2, 1, FRIDGE)
    with pytest.raises(ValidationError, match="thing 9 of node 3 has no label"):
        without_label(book, 3, 9)
    assert (1, 4) not in without_label(book, 1, 4)
    with pytest.raises(ValidationError, match="labels: at most"):
        parse_labels([*labels_json(book), {"nodeId": 9, "thingId": 9, "name": "x"}])


# Text a label may hold: printable, no '&' (and no ':' in a unit), no blanks at the ends.
names = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters="&"),
                min_size=1, max_size=32).map(str.strip).filter(lambda s: s and s.isprintable())
units = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters="&:"),
                max_size=8).map(str.strip).filter(str.isprintable)
labels = st.builds(Label, names, units, st.sampled_from(sorted(KINDS)))


@given(st.dictionaries(st.tuples(st.integers(1, 2**31 - 1), st.integers(1, 2**31 - 1)), labels,
                       max_size=20))
def test_the_labels_file_reads_back_what_was_written(book):
    assert parse_labels(labels_json(book)) == book


# --- the names datagram, and what an ESP8266 makes of it ----------------------------------


def esp_fields(buffer: bytes) -> tuple[int, list[tuple[int, float]]]:
    """What the firmware's receiver reads: strtok on '&', the header cut at its first ':' into
    node id (atol), every further token cut at its first ':' into thing id (atoi) and value
    (atof). Returns the node id and the (thing id, value) pairs it would feed its recipes."""
    def atoi(raw: bytes) -> int:
        match = re.match(rb"\s*([+-]?\d+)", raw)
        return int(match.group(1)) if match else 0

    def atof(raw: bytes) -> float:
        match = re.match(rb"\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)", raw)
        value = float(match.group(1)) if match else 0.0
        return value if math.isfinite(value) else 0.0

    tokens = [t for t in buffer.split(b"\0", 1)[0].split(b"&") if t]
    head, _, _ = tokens[0].partition(b":")
    fields = []
    for token in tokens[1:]:
        if b":" in token:  # the firmware skips a token without its ':'
            raw_id, _, raw_value = token.partition(b":")
            fields.append((atoi(raw_id), atof(raw_value)))
    return atoi(head), fields


def own_names():
    return [(t.id, own_label(t.id, t.name, t.type)) for t in default_things()]


def test_a_plugd_sends_what_its_things_are_and_a_plugd_reads_it():
    data = encode_names(4242, "Kitchen Plug", own_names())
    assert data.startswith(b"4242:Kitchen Plug&n1:switch::Plug&n2:power:W:Power&")
    packet = decode(data)
    assert (packet.node_id, packet.fields, packet.rejected) == (4242, (), 0)
    assert dict(packet.names) == dict(OWN)


def test_an_esp8266_reads_every_names_field_as_thing_0_which_no_recipe_uses():
    node, fields = esp_fields(encode_names(4242, "Kitchen Plug", own_names()))
    assert node == 4242 and fields and {thing for thing, _ in fields} == {0}


@given(st.lists(st.tuples(st.integers(1, 2**31 - 1), labels), max_size=30),
       st.lists(st.tuples(st.integers(1, 99), st.floats(0, 1e6)), min_size=1, max_size=8),
       st.booleans())
def test_an_esp8266_never_reads_a_value_from_a_names_datagram(names_, values, signed):
    """Alone, signed or not, or as the stale tail an ESP's uncleared buffer keeps after a shorter
    datagram of values: every thing id it reads is 0 or one the values datagram sent."""
    data = encode_names(4242, "Plug", names_)
    if signed:
        data = sign(data, b"k" * 16, 7)
    assert len(data) <= 512
    node, fields = esp_fields(data)
    assert node == 4242 and all(thing == 0 for thing, _ in fields)
    sent = encode(4242, "Plug", [(i, f"{v:.2f}") for i, v in values])
    stale = sent + data[len(sent):]
    _, fields = esp_fields(stale)
    assert {thing for thing, _ in fields} <= {i for i, _ in values} | {0}


@given(st.lists(st.tuples(st.integers(1, 2**31 - 1), labels), max_size=30))
def test_names_read_back_as_sent_as_many_as_fit(names_):
    data = encode_names(4242, "Plug", names_)
    assert len(data) <= MAX_NAMES_DATAGRAM
    decoded = decode(data).names
    assert list(decoded) == names_[:len(decoded)]
    if len(decoded) < len(names_):  # the next one would not have fitted
        thing_id, label = names_[len(decoded)]
        field = f"&n{thing_id}:{label.kind}:{label.unit}:{label.name}".encode()
        assert len(data) + len(field) > MAX_NAMES_DATAGRAM


@pytest.mark.parametrize("field", [b"n5:smell::Door", b"n5:power:W", b"n0:power:W:Zero",
                                   b"nx:power:W:Power", b"n5:power:toolongunit:Power",
                                   b"n5:power:W:" + b"x" * 33])
def test_a_bad_names_field_is_dropped_on_its_own(field):
    packet = decode(b"777:Kitchen&5:21.50&" + field + b"&n6:temperature:\xc2\xb0C:Room")
    assert packet.rejected == 1 and packet.fields[0].value == 21.5
    assert packet.names == ((6, Label("Room", "°C", "temperature")),)


def test_a_name_that_cannot_travel_is_refused_when_sending():
    with pytest.raises(WireError, match="thing 2 cannot travel: unit must not contain"):
        encode_names(1, "Plug", [(2, Label("Power", "W:s", "power"))])


def test_learned_names_are_bounded_per_node_whatever_a_spoofer_sends():
    registry = Registry(4242, max_nodes=4)
    for start in range(1, 400, 10):
        fields = "".join(f"&n{i}:generic::Spoof {i}" for i in range(start, start + 10))
        registry.heard(decode(f"777:Spoofer{fields}".encode()), "10.0.0.9", 1.0, 0)
    peer = registry.peers[777]
    assert len(peer.learned) == MAX_THINGS_PER_NODE
    registry.heard(decode(b"777:Spoofer&n1:power:W:Renamed"), "10.0.0.9", 2.0, 0)
    assert peer.learned[1] == Label("Renamed", "W", "power")  # a known id is updated


def test_every_kind_is_a_label_kind():
    for kind in KINDS:
        assert label_problem(Label("x", "", kind)) is None
