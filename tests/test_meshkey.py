"""The signed mesh: tags, counters, replays, and what ESP8266 nodes make of our datagrams."""

from __future__ import annotations

import asyncio
import ctypes
import socket
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plugd import cli
from plugd.core import meshkey
from plugd.core.meshkey import Guard, Signer, sign, verify
from plugd.core.wire import MAX_DATAGRAM, decode, encode
from plugd.errors import ConfigError, StoreError, WireError
from plugd.service.config import parse
from plugd.service.meshboot import BOOT_FILE, boot_number
from plugd.service.store import StateDir
from tests.support import free_port, light_node, listener, send_udp, until

KEY = b"Kitchen-and-Hall-share-this-7"
OTHER_KEY = b"a key someone guessed wrongly"
PLAIN = b"10223344:SmartPlugEsp&1:1.00&2:1523.75&3:412.30&4:13:05:09 - 24.11.2026"
NAMES = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e, exclude_characters="&:"),
                min_size=1, max_size=24).map(str.strip).filter(bool)
VALUES = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False).map(lambda v: f"{v:.2f}")
COUNTERS = st.integers(min_value=0, max_value=2**63)


@st.composite
def datagrams(draw: Any) -> bytes:
    things = draw(st.dictionaries(st.integers(1, 99), VALUES, max_size=8))
    return encode(draw(st.integers(1, 2**31 - 1)), draw(NAMES), sorted(things.items()))


# --- the pure module --------------------------------------------------------


def test_a_signed_datagram_ends_in_its_counter_and_a_32_hex_digit_tag():
    signed = sign(PLAIN, KEY, 42)
    body, tag = signed.rsplit(b"&sig:", 1)
    assert body == PLAIN + b"&ctr:42"
    assert len(tag) == 32 and tag == tag.lower() and int(tag, 16) >= 0
    assert verify(signed, KEY) == 42
    assert verify(signed, OTHER_KEY) is None and verify(PLAIN, KEY) is None


@given(datagrams(), COUNTERS)
def test_signed_datagrams_stay_well_under_the_firmware_buffer_and_verify(data, counter):
    signed = sign(data, KEY, counter)
    assert len(signed) - len(data) <= len("&ctr:") + 20 + len("&sig:") + 32
    assert verify(signed, KEY) == counter


def test_a_datagram_too_long_once_signed_is_refused_with_a_clear_error():
    with pytest.raises(WireError, match="exceeds 512"):
        sign(b"1:N&" + b"5:1.00&" * 66 + b"5:1.00", KEY, 1)


@settings(max_examples=300)
@given(datagrams(), COUNTERS, st.data())
def test_changing_any_byte_of_a_signed_datagram_is_refused(data, counter, draw):
    signed = bytearray(sign(data, KEY, counter))
    index = draw.draw(st.integers(0, len(signed) - 1))
    signed[index] = draw.draw(st.integers(0, 255).filter(lambda b: b != signed[index]))
    assert verify(bytes(signed), KEY) is None
    node_id = decode(bytes(signed)).node_id if _decodes(bytes(signed)) else 1
    verdict = Guard(KEY).check(bytes(signed), node_id, "127.0.0.1")
    assert verdict.refused in ("bad_tag", "unsigned_refused")


@given(datagrams(), COUNTERS, st.data())
def test_cutting_or_inserting_bytes_is_refused(data, counter, draw):
    signed = sign(data, KEY, counter)
    cut = draw.draw(st.integers(0, len(signed) - 1))
    assert verify(signed[:cut], KEY) is None
    where = draw.draw(st.integers(0, len(signed)))
    extra = draw.draw(st.binary(min_size=1, max_size=4).filter(lambda b: b"\0" not in b))
    assert verify(signed[:where] + extra + signed[where:], KEY) is None


def _decodes(data: bytes) -> bool:
    try:
        decode(data)
    except WireError:
        return False
    return True


@given(datagrams(), COUNTERS)
def test_a_signed_datagram_decodes_to_the_same_packet_as_the_unsigned_one(data, counter):
    plain = decode(data)
    signed = decode(sign(data, KEY, counter))
    assert signed.signed and not plain.signed
    assert signed._replace(signed=False) == plain
    assert plain.rejected == 0


def test_a_replayed_datagram_is_refused_and_counters_must_grow_per_node():
    guard = Guard(KEY)
    first, second = sign(PLAIN, KEY, 10), sign(PLAIN, KEY, 11)
    assert guard.check(first, 10223344, "10.0.0.5").refused is None
    assert guard.check(first, 10223344, "10.0.0.5").refused == "replayed"
    assert guard.check(second, 10223344, "10.0.0.5").refused is None
    assert guard.check(first, 10223344, "10.0.0.5").refused == "replayed"  # older, late
    other = sign(b"77:Hall&1:0.00", KEY, 3)  # another node's counters are its own
    assert guard.check(other, 77, "10.0.0.6").refused is None


@given(st.lists(COUNTERS, min_size=1, max_size=30))
def test_the_guard_accepts_exactly_the_counters_above_every_earlier_accepted_one(counters):
    guard = Guard(KEY)
    highest = -1
    for counter in counters:
        verdict = guard.check(sign(PLAIN, KEY, counter), 10223344, "10.0.0.5")
        assert (verdict.refused is None) == (counter > highest)
        highest = max(highest, counter)


def test_unsigned_datagrams_pass_only_from_trusted_esp_nodes():
    guard = Guard(KEY, trusted=[10223344])
    assert guard.check(PLAIN, 10223344, "10.0.0.5").refused is None
    assert guard.check(PLAIN, 10223344, "10.0.0.5").refused is None  # no counter: no replay check
    assert guard.check(b"66:Spoof&1:1.00", 66, "10.0.0.9").refused == "unsigned_refused"
    forged = PLAIN + b"&ctr:5&sig:" + b"0" * 32  # a trusted id does not excuse a bad tag
    assert guard.check(forged, 10223344, "10.0.0.5").refused == "bad_tag"


def test_a_node_heard_from_a_new_address_is_flagged_once_and_still_accepted():
    guard = Guard(KEY, trusted=[10223344])
    assert guard.check(PLAIN, 10223344, "10.0.0.5") == meshkey.ACCEPTED
    moved = guard.check(PLAIN, 10223344, "10.0.0.7")
    assert (moved.refused, moved.moved_from, moved.report) == (None, "10.0.0.5", True)
    back = guard.check(PLAIN, 10223344, "10.0.0.5")
    assert (back.refused, back.moved_from, back.report) == (None, "10.0.0.7", False)


def test_the_guard_table_is_bounded():
    guard = Guard(KEY, max_senders=2)
    for node_id in (1, 2):
        assert guard.check(sign(b"%d:N" % node_id, KEY, 1), node_id, "a").refused is None
    assert guard.check(sign(b"3:N", KEY, 1), 3, "a").refused == "dropped_full"
    assert guard.check(sign(b"1:N", KEY, 2), 1, "a").refused is None  # known ones go on


def test_the_counter_grows_within_a_start_and_across_restarts_without_a_clock(tmp_path):
    state = StateDir(tmp_path)
    def no_clock():
        return 0.0  # a Pi without RTC, before NTP
    first = Signer(KEY, boot_number(state, no_clock))
    counters = [verify(first.sign(PLAIN), KEY) for _ in range(3)]
    second = Signer(KEY, boot_number(state, no_clock))
    later = verify(second.sign(PLAIN), KEY)
    assert counters == sorted(set(counters)) and later > counters[-1]


def test_a_lost_boot_file_is_covered_by_a_right_clock(tmp_path):
    state = StateDir(tmp_path)
    boot = boot_number(state, lambda: 1_700_000_000.0)
    (tmp_path / BOOT_FILE).write_text("not json")
    assert boot_number(state, lambda: 1_700_000_100.0) > boot


def test_a_clock_past_2106_is_ignored_and_an_unwritable_boot_number_stops_the_start(tmp_path):
    assert boot_number(StateDir(tmp_path), lambda: float(2**40)) == 1
    (tmp_path / "not-a-dir").write_text("")
    with pytest.raises(StoreError, match=r"mesh-boot\.json"):
        boot_number(StateDir(tmp_path / "not-a-dir"), lambda: 0.0)


@pytest.mark.parametrize("text, message", [
    ("[mesh]\nmesh_key = 'short'",
     r"mesh.mesh_key: must be empty \(no signing\) or at least 16 characters, got 5"),
    ("[mesh]\ntrusted_esp_nodes = [0]", "mesh.trusted_esp_nodes: 0 is not a node id"),
    ("[mesh]\ntrusted_esp_nodes = ['1']", r"mesh.trusted_esp_nodes\[0\]: expected an integer"),
])
def test_bad_mesh_key_settings_are_refused_by_name(text, message):
    with pytest.raises(ConfigError, match=message):
        parse(text)


@pytest.mark.parametrize("key, problem", [
    (" " * 16, "white space"),
    ("a" * 24, "about 5 bits, at least 64 needed"),
    ("abababababababababab", "too easy to guess"),
    ("0123456789012345", "about 33 bits"),
    ("kitchen and hall share this", "too easy to guess"),
    (" Kitchen-and-Hall-share-this-7", "white space"),
])
def test_weak_mesh_keys_are_refused_saying_how_many_bits_are_needed(key, problem):
    assert problem in meshkey.key_problem(key)
    with pytest.raises(ConfigError, match=r"mesh\.mesh_key"):
        parse("", {"mesh.mesh_key": key})


def test_gen_key_prints_a_key_the_configuration_takes(capsys):
    assert cli.main(["--gen-key"]) == 0
    key = capsys.readouterr().out.strip()
    assert len(key) == 32 and meshkey.key_problem(key) is None
    assert meshkey.key_bits(key) >= 1.5 * meshkey.MIN_KEY_BITS  # distinct characters vary
    assert parse("", {"mesh.mesh_key": key}).mesh.mesh_key == key


# --- what an ESP8266 makes of it ---------------------------------------------


def _atoi(raw: bytes) -> int:
    """C's atoi, by the C library itself."""
    return ctypes.CDLL(None).atoi(ctypes.c_char_p(raw))


def _atof(raw: bytes) -> float:
    libc = ctypes.CDLL(None)
    libc.atof.restype = ctypes.c_double
    return libc.atof(ctypes.c_char_p(raw))


def esp_parse(data: bytes) -> tuple[int, list[tuple[int, float]]]:
    """The firmware's receive path (PROTOCOL.md 2): strtok on '&', cut at the first ':',
    atoi/atof. A token without ':' makes the firmware read a NULL pointer: fail here."""
    tokens = [t for t in data.split(b"\0", 1)[0].split(b"&") if t]  # strtok skips empty tokens
    head, sep, _ = tokens[0].partition(b":")
    assert sep, "the node header has no ':'"
    fields = []
    for token in tokens[1:]:
        name, sep, value = token.partition(b":")
        assert sep, f"field {token!r} has no ':': the firmware would crash on it"
        fields.append((_atoi(name), _atof(value)))
    return _atoi(head), fields


@given(datagrams(), COUNTERS)
def test_an_esp_reads_our_signed_datagram_as_its_things_plus_thing_zero(data, counter):
    node_id, plain_fields = esp_parse(data)
    signed_id, signed_fields = esp_parse(sign(data, KEY, counter))
    assert signed_id == node_id
    assert signed_fields[:len(plain_fields)] == plain_fields
    assert [thing_id for thing_id, _ in signed_fields[len(plain_fields):]] == [0, 0]


def test_the_esp_parse_reads_the_protocol_example_as_the_firmware_does():
    node_id, fields = esp_parse(PLAIN)
    assert node_id == 10223344 and fields == [(1, 1.0), (2, 1523.75), (3, 412.3), (4, 13.0)]


# --- daemons on loopback ---------------------------------------------------------





def broadcast(port: int, data: bytes, source: str = "127.0.0.1") -> None:
    """To every socket on the mesh port, on loopback only."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.bind((source, 0))
        sock.sendto(data, ("127.255.255.255", port))


async def capture(sock: socket.socket, node_id: int) -> bytes:
    prefix = b"%d:" % node_id
    while not (data := await asyncio.to_thread(sock.recv, 2048)).startswith(prefix):
        pass
    return data


KEYED = {"mesh.mesh_key": KEY.decode(), "mesh.trusted_esp_nodes": [777]}


async def test_signed_daemons_hear_each_other_and_refuse_spoofs_and_replays(tmp_path, factory):
    port = free_port()
    async with light_node(tmp_path, factory, "Hall", 501, port, **KEYED) as hall, \
            light_node(tmp_path, factory, "Kitchen", 502, port, **KEYED, **{"relay.pin": 18}) as kitchen:
        counters = hall.registry.counters
        await until(lambda: hall.registry.is_online(502) and kitchen.registry.is_online(501),
                         "the two signed nodes to hear each other")
        with listener(port) as sock:
            captured = await capture(sock, 502)
        assert b"&ctr:" in captured and b"&sig:" in captured

        broadcast(port, b"999:Spoof&5:1.00")
        await until(lambda: counters.unsigned_refused >= 1, "the unsigned spoof to be refused")
        assert 999 not in hall.registry.peers

        broadcast(port, b"777:Esp&5:21.50")  # unsigned, but a trusted ESP8266 node
        await until(lambda: 777 in hall.registry.peers, "the trusted ESP node to be heard")
        assert hall.registry.peers[777].things[5].value == 21.5

        replayed = counters.replayed
        broadcast(port, captured)
        await until(lambda: counters.replayed > replayed, "the replay to be refused")

        tampered = captured.replace(b"Kitchen", b"Kitchem")
        bad = counters.bad_tag
        broadcast(port, tampered)
        await until(lambda: counters.bad_tag > bad, "the tampered datagram to be refused")
        assert hall.registry.peers[502].name == "Kitchen"

        status = hall.status()
        assert status["signed"] is True
        assert {k: status["counters"][k] > 0 for k in ("unsigned_refused", "replayed", "bad_tag")} \
            == {"unsigned_refused": True, "replayed": True, "bad_tag": True}


async def test_a_node_that_moves_address_is_counted_and_recorded_once(tmp_path, factory):
    port = free_port()
    async with light_node(tmp_path, factory, "Hall", 501, port, **KEYED) as hall:
        counters = hall.registry.counters
        for source in ("127.0.0.1", "127.0.0.2", "127.0.0.1"):
            before = counters.accepted
            broadcast(port, b"777:Esp&5:20.00", source)
            await until(lambda: counters.accepted > before, f"the datagram from {source}")
        assert counters.address_changes == 2
        moves = [e for e in hall.plug.events if "now speaks from" in e.message]
        assert len(moves) == 1 and "127.0.0.2 (was 127.0.0.1" in moves[0].message


async def test_without_a_key_datagrams_are_byte_identical_to_the_unsigned_format(tmp_path, factory):
    port = free_port()
    async with light_node(tmp_path, factory, "Hall", 501, port) as hall:
        assert hall.plug.signer is None and hall.status()["signed"] is False
        plug = hall.plug
        with listener(port) as sock:
            async def same() -> bool:
                captured = await capture(sock, 501)
                expected = encode(plug.node_id, plug.node_name,
                                  [(t.id, plug.wire_text(t)) for t in plug.things.values()
                                   if t.id not in plug.invalid])
                return captured == expected  # differs only when the clock's second turned
            assert any([await same() for _ in range(3)])
        broadcast(port, b"999:Spoof&5:1.00")
        await until(lambda: 999 in hall.registry.peers, "an unsigned node to be heard")
        counters = hall.registry.counters
        assert (counters.unsigned_refused, counters.bad_tag, counters.replayed) == (0, 0, 0)


async def test_a_keyed_daemon_counts_refusals_in_request_status(tmp_path, factory):
    import json

    from websockets.asyncio.client import connect

    port = free_port()
    async with light_node(tmp_path, factory, "Hall", 501, port, **KEYED) as hall:
        send_udp(port, b"999:Spoof&5:1.00")
        await until(lambda: hall.registry.counters.unsigned_refused, "the refusal")
        async with connect(f"ws://127.0.0.1:{hall.web.port}/ws") as ws:
            await ws.send(json.dumps({"command": "request_status"}))
            while (answer := json.loads(await ws.recv()))["command"] != "response_status":
                pass
    assert answer["counters"]["unsigned_refused"] >= 1 and answer["signed"] is True
    assert "mesh_key" not in json.dumps(answer) and KEY.decode() not in json.dumps(answer)


def test_a_datagram_signed_by_plugd_is_not_more_than_the_firmware_buffer():
    assert len(sign(PLAIN, KEY, 2**63)) < MAX_DATAGRAM // 2
