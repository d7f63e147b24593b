from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugd.core.model import MAX_NAME, name_problem
from plugd.core.wire import (
    MAX_DATAGRAM,
    Field,
    Packet,
    atof_prefix,
    decode,
    encode,
    format_clock,
    format_number,
)
from plugd.errors import WireError

EXAMPLE = b"10223344:SmartPlugEsp&1:1.00&2:1523.75&3:412.30&4:13:05:09 - 24.11.2026"


def test_the_protocol_example_decodes():
    packet = decode(EXAMPLE)
    assert packet == Packet(10223344, "SmartPlugEsp", (
        Field(1, 1.0, "1.00"), Field(2, 1523.75, "1523.75"), Field(3, 412.3, "412.30"),
        Field(4, 13.0, "13:05:09 - 24.11.2026")), 0)


def test_the_protocol_example_encodes_byte_for_byte():
    moment = datetime(2026, 11, 24, 13, 5, 9)
    values = [(1, format_number(1)), (2, format_number(1523.75)), (3, format_number(412.3)),
              (4, format_clock(moment))]
    assert encode(10223344, "SmartPlugEsp", values) == EXAMPLE


@pytest.mark.parametrize("value, text", [(0, "0.00"), (1, "1.00"), (-0.001, "0.00"),
                                         (1523.75, "1523.75"), (2.5e9, "2500000000.00"),
                                         (-3.14159, "-3.14")])
def test_numbers_print_as_arduino_string_float(value, text):
    assert format_number(value) == text


def test_clock_pads_minutes_and_seconds_only():
    assert format_clock(datetime(2026, 1, 2, 3, 4, 5)) == "3:04:05 - 2.1.2026"
    assert format_clock(datetime(2026, 12, 31, 23, 59, 0)) == "23:59:00 - 31.12.2026"


def test_stale_bytes_after_a_nul_are_ignored():
    assert decode(EXAMPLE + b"\0\0junk&9:99") == decode(EXAMPLE)


def test_a_name_may_hold_colons_and_spaces():
    packet = decode(b"7:Kitchen: fridge 2&5:4.50")
    assert packet.node_name == "Kitchen: fridge 2"
    assert packet.fields == (Field(5, 4.5, "4.50"),)


@pytest.mark.parametrize("bad", [b"5:", b"5:abc", b"5:nan", b"5:inf", b"5:-inf", b"x:1.0",
                                 b"5", b"0:1.0", b"-3:1.0", b"5:1e999", b"99999999999:1"])
def test_a_bad_field_is_dropped_and_spoils_nothing(bad):
    packet = decode(b"7:Sensor&1:1.00&" + bad + b"&2:20.50")
    assert packet.fields == (Field(1, 1.0, "1.00"), Field(2, 20.5, "20.50"))
    assert packet.rejected == 1


def test_atof_reads_a_leading_number_like_c():
    assert atof_prefix(b"  12.5abc") == 12.5
    assert atof_prefix(b"-.5") == -0.5
    assert atof_prefix(b"1e3") == 1000.0
    assert atof_prefix(b"abc") is None
    assert atof_prefix(b"") is None


@pytest.mark.parametrize("bad, why", [
    (b"", "empty"), (b"\0garbage", "empty"), (b"&&&", "empty"),
    (b"12345", "no ':'"), (b"abc:Name", "not a decimal integer"),
    (b"0:Name", "outside"), (b"2147483648:Name", "outside"), (b"12:", "empty"),
    (b"12:" + b"n" * (MAX_NAME + 1), "at most"), (b"12:a\x01b", "control"),
])
def test_a_datagram_without_a_usable_header_is_refused_with_the_reason(bad, why):
    with pytest.raises(WireError, match=why):
        decode(bad)


def test_encode_refuses_what_an_esp_could_not_parse():
    with pytest.raises(WireError, match="&"):
        encode(1, "a&b", [])
    with pytest.raises(WireError):
        encode(1, "ok", [(1, "1&2")])
    with pytest.raises(WireError, match="exceeds"):
        encode(1, "ok", [(i, "1234567.00") for i in range(1, 60)])
    with pytest.raises(WireError):
        format_number(float("nan"))


names = st.text(st.characters(codec="utf-8", exclude_characters="&"), min_size=1,
                max_size=MAX_NAME).map(str.strip).filter(lambda n: name_problem(n) is None)
values = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False)


@given(node_id=st.integers(1, 2**31 - 1), name=names,
       things=st.lists(st.tuples(st.integers(1, 2**31 - 1), values), max_size=8))
def test_encode_then_decode_gives_the_values_to_two_decimals(node_id, name, things):
    data = encode(node_id, name, [(t, format_number(v)) for t, v in things])
    packet = decode(data)
    assert (packet.node_id, packet.node_name, packet.rejected) == (node_id, name, 0)
    assert [(f.thing_id, f.value) for f in packet.fields] == [
        (t, float(format_number(v))) for t, v in things]
    assert len(data) <= MAX_DATAGRAM


@given(st.binary(max_size=600))
def test_any_bytes_give_a_packet_or_a_wire_error(data):
    try:
        packet = decode(data)
    except WireError:
        return
    assert 0 < packet.node_id < 2**31
    assert name_problem(packet.node_name) is None
    for field in packet.fields:
        assert 0 < field.thing_id < 2**31 and field.value == field.value  # never NaN


@given(st.lists(st.sampled_from([b"1", b":", b"&", b"\0", b".", b"-", b"e", b"9", b" ", b"x"]),
                max_size=60).map(b"".join))
def test_wire_alphabet_soup_gives_a_packet_or_a_wire_error(data):
    try:
        decode(b"42:soup&" + data)
    except WireError:
        pytest.fail("a valid header must never be refused because of its fields")
