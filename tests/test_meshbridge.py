"""The mesh across subnets, without a broker: topics, payloads, the wire's `via` field, and the
rules that keep values from going round and count a node once (plugd.core.meshbridge)."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugd.core import meshbridge
from plugd.core.meshbridge import Relayed, lan_datagram, parse, relayed_from
from plugd.core.model import ON, Recipe, Relation, ThingId, default_things
from plugd.core.plug import Now, PlugCore
from plugd.core.recipes import RecipeBook
from plugd.core.registry import Registry
from plugd.core.wire import MAX_DATAGRAM, decode, encode
from plugd.errors import ValidationError
from tests.mesh.esp_node import heard as esp_heard

OWN, ORIGIN, SENSOR = 4242, 1001, 777
ROOT = "plugd"
T0 = Now(1_795_000_000.0, 1000.0)

node_ids = st.integers(1, 2**31 - 1)
names = st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="&"),
                min_size=1, max_size=24)
texts = st.from_regex(r"[0-9]{1,4}\.[0-9]{2}", fullmatch=True)
things = st.dictionaries(st.integers(1, 200), st.tuples(
    st.floats(allow_nan=False, allow_infinity=False, width=32), texts), max_size=8)


def relayed(node_id=SENSOR, values=None, via=ORIGIN, signed=False):
    values = {1: (17.25, "17.25"), 2: (45.0, "45.00")} if values is None else values
    return relayed_from(node_id, "esp-living", values, via, "10.1.0.21", "10.1.0.0/24", signed)


# --- topics ------------------------------------------------------------------------------------


def test_the_root_is_the_first_level_of_the_prefix():
    assert meshbridge.prefix_root("plugd/kitchen-plug") == "plugd"
    assert meshbridge.prefix_root("house/plugs/kitchen") == "house"
    assert meshbridge.prefix_root("plugd") == "plugd"
    assert meshbridge.node_topic("plugd", 2001) == "plugd/mesh/2001"
    assert meshbridge.subscription("plugd") == "plugd/mesh/+"


@given(node_ids)
def test_a_topic_gives_back_its_node_id(node_id):
    assert meshbridge.topic_node_id(ROOT, meshbridge.node_topic(ROOT, node_id)) == node_id


@pytest.mark.parametrize("topic", ["plugd/mesh/", "plugd/mesh/x", "plugd/mesh/0", "plugd/mesh/-1",
                                   "plugd/mesh/2147483648", "other/mesh/5", "plugd/mesh/5/x"])
def test_other_topics_have_no_node_id(topic):
    assert meshbridge.topic_node_id(ROOT, topic) is None


def test_the_subnet_is_the_interface_network_holding_the_address():
    networks = ["127.0.0.0/8", "10.1.0.0/24", "10.2.0.0/16"]
    assert meshbridge.subnet_of("10.1.0.21", networks) == "10.1.0.0/24"
    assert meshbridge.subnet_of("10.2.7.1", networks) == "10.2.0.0/16"
    assert meshbridge.subnet_of("192.168.1.2", networks) == ""
    assert meshbridge.subnet_of("", networks) == ""


# --- payloads ----------------------------------------------------------------------------------


@given(node_ids, names, things, node_ids, st.booleans())
def test_a_payload_reads_back_as_it_was_published(node_id, name, values, via, signed):
    sent = relayed_from(node_id, name, values, via, "10.1.0.21", "10.1.0.0/24", signed)
    assert parse(ROOT, meshbridge.node_topic(ROOT, node_id), sent.encode()) == sent


def test_the_payload_names_the_node_its_values_and_who_heard_it_where():
    assert json.loads(relayed().encode()) == {
        "id": SENSOR, "name": "esp-living", "via": ORIGIN, "address": "10.1.0.21",
        "subnet": "10.1.0.0/24", "signed": False,
        "things": [{"id": 1, "value": 17.25, "text": "17.25"}, {"id": 2, "value": 45.0, "text": "45.00"}]}


def test_an_empty_message_is_a_cleared_topic():
    assert parse(ROOT, "plugd/mesh/5", b"") is None


@pytest.mark.parametrize("payload, where", [
    (b"{", "payload"), (b"[]", "payload"), (b"\xff", "payload"),
    (b'{"id":6,"name":"n","via":1}', "id"),
    (b'{"id":5,"name":"a&b","via":1}', "name"),
    (b'{"id":5,"name":"n","via":0}', "via"),
    (b'{"id":5,"name":"n","via":true}', "via"),
    (b'{"id":5,"name":"n","via":1,"things":{}}', "things"),
    (b'{"id":5,"name":"n","via":1,"things":[{"id":1,"value":"1"}]}', "things[0].value"),
    (b'{"id":5,"name":"n","via":1,"things":[{"id":0,"value":1}]}', "id"),
    (b'{"id":5,"name":"n","via":1,"things":[{"id":1,"value":1e999}]}', "things[0].value"),
    (b'{"id":5,"name":"n","via":1,"signed":1}', "signed"),
])
def test_a_bad_message_is_refused_with_its_field(payload, where):
    with pytest.raises(ValidationError) as caught:
        parse(ROOT, "plugd/mesh/5", payload)
    assert caught.value.field == where


def test_too_many_things_are_refused():
    many = [{"id": i, "value": 1} for i in range(1, meshbridge.MAX_THINGS + 2)]
    with pytest.raises(ValidationError):
        parse(ROOT, "plugd/mesh/5", json.dumps({"id": 5, "name": "n", "via": 1, "things": many}).encode())


def test_a_plugd_publishes_itself_and_what_it_hears_directly_never_a_relayed_node():
    assert meshbridge.publishes(OWN, OWN, 0)
    assert meshbridge.publishes(OWN, SENSOR, 0)
    assert not meshbridge.publishes(OWN, SENSOR, ORIGIN)


# --- the wire's via field and the re-broadcast -----------------------------------------------------


def test_a_relayed_datagram_is_the_esp_format_with_a_via_field_an_esp_reads_as_thing_0():
    data = lan_datagram(relayed(), OWN)
    assert data == f"{SENSOR}:esp-living&1:17.25&2:45.00&via:{OWN}".encode()
    packet = decode(data)
    assert (packet.node_id, packet.via, packet.rejected, packet.signed) == (SENSOR, OWN, 0, False)
    assert [(f.thing_id, f.text) for f in packet.fields] == [(1, "17.25"), (2, "45.00")]
    node_id, name, values = esp_heard(data)  # split as the firmware splits it
    assert (node_id, name, values) == (SENSOR, "esp-living", {1: "17.25", 2: "45.00"})


def test_a_signed_node_and_our_own_are_never_re_broadcast():
    assert lan_datagram(relayed(signed=True), OWN) is None
    assert lan_datagram(relayed(node_id=OWN), OWN) is None


def test_a_clock_value_travels_as_its_text_and_what_cannot_travel_is_left_out():
    values = {1: (13.0, "13:05:09 - 24.11.2026"), 2: (1.0, "a&b")}
    assert lan_datagram(relayed(values=values), OWN) == \
        f"{SENSOR}:esp-living&1:13:05:09 - 24.11.2026&via:{OWN}".encode()


@given(st.dictionaries(st.integers(1, 2**31 - 1), st.tuples(st.just(1.0), texts), max_size=64))
def test_a_re_broadcast_always_fits_the_firmware_buffer(values):
    data = lan_datagram(relayed(values=values), OWN)
    assert data is not None and len(data) <= MAX_DATAGRAM
    assert decode(data).via == OWN


def test_a_bad_via_field_is_ignored_and_never_spoils_the_packet():
    packet = decode(b"7:n&1:1.00&via:abc&via:0")
    assert packet.via == 0 and packet.rejected == 0 and len(packet.fields) == 1
    assert encode(7, "n", [(1, "1.00")], via=9).endswith(b"&via:9")


# --- counted once, and never round ---------------------------------------------------------------


def test_a_node_heard_directly_wins_over_its_relayed_copies():
    registry = Registry(OWN, offline_after=15.0)
    direct = decode(f"{SENSOR}:esp&1:17.00".encode())
    assert registry.heard(direct, "10.1.0.21", now=10.0, esp_now=0) is not None
    assert registry.heard(relayed(values={1: (30.0, "30.00")}).packet(), "x", 11.0, 0) is None
    peer = registry.peers[SENSOR]
    assert peer.via == 0 and peer.things[1].value == 17.0 and registry.counters.shadowed == 1
    registry.sweep(30.0)  # silent here: a relayed copy takes over, in the same one entry
    heard = registry.heard(relayed().packet(), "10.1.0.21", now=31.0, esp_now=0)
    assert heard is not None and heard.came_online and not heard.is_new
    assert peer.via == ORIGIN and peer.things[1].value == 17.25 and registry.counters.relayed == 1
    assert registry.heard(direct, "10.1.0.21", now=32.0, esp_now=0) is not None
    assert peer.via == 0 and list(registry.peers) == [SENSOR]


def test_our_own_re_broadcast_heard_back_is_dropped():
    registry = Registry(OWN)
    assert registry.heard(decode(lan_datagram(relayed(), OWN)), "10.2.0.12", 0.0, 0) is None
    assert registry.peers == {} and registry.counters.own == 1


def heater_core():
    recipes = [Recipe(1, "cold", SENSOR, 1, 0.0, Relation.SMALLER_THAN, ThingId.PLUG, 19.0, 1.0)]
    return PlugCore(node_id=OWN, node_name="Plug", things=default_things(),
                    recipes=RecipeBook(recipes), registry=Registry(OWN), relay_on=False)


def test_relayed_values_drive_recipes_like_a_datagram():
    core = heater_core()
    out = core.receive_relayed(relayed().packet(), "10.1.0.21", T0)
    assert [d.on for d in out.drives] == [True]
    core.relay_switched(out.drives[0], T0)
    assert core.things[ThingId.PLUG].value == ON
    assert core.registry.peers[SENSOR].via == ORIGIN


def test_a_relayed_copy_of_a_node_heard_here_drives_nothing():
    core = heater_core()
    core.receive(f"{SENSOR}:esp&1:20.00".encode(), "10.1.0.21", T0)
    out = core.receive_relayed(relayed().packet(), "10.1.0.21", T0)
    assert out.drives == [] and out.changes == []


def test_a_datagram_we_re_broadcast_does_not_come_back_in():
    core = heater_core()
    out = core.receive(lan_datagram(relayed(), OWN), "10.2.0.12", T0)
    assert out.drives == [] and core.registry.peers == {} and core.registry.counters.own == 1


def test_values_with_no_relaying_plugd_are_refused():
    with pytest.raises(ValidationError):
        heater_core().receive_relayed(decode(b"777:n&1:1.00"), "x", T0)


@given(st.lists(st.sampled_from(["direct", "broker", "lan", "own-echo"]), max_size=40))
def test_whatever_the_order_a_node_has_one_entry_and_only_direct_values_are_published(events):
    """The loop rule over any mix of ways to hear one node: the registry keeps one entry, and a
    plugd publishes the node exactly when its latest accepted values were its own hearing."""
    registry = Registry(OWN, offline_after=1e9)
    ways = {"direct": decode(f"{SENSOR}:esp&1:1.00".encode()),
            "broker": relayed(via=ORIGIN).packet(),
            "lan": decode(lan_datagram(relayed(), 3003)),
            "own-echo": decode(lan_datagram(relayed(), OWN))}
    ever_direct = False
    for event in events:
        registry.heard(ways[event], "a", 0.0, 0)
        ever_direct = ever_direct or event == "direct"
        assert len(registry.peers) <= 1
        peer = registry.peers.get(SENSOR)
        if peer is not None:
            # Once heard directly (and online), no copy ever takes its place.
            assert (peer.via == 0) == ever_direct
            assert meshbridge.publishes(OWN, peer.id, peer.via) == ever_direct


def test_relayed_from_drops_non_finite_values_and_keeps_the_order():
    made = relayed_from(5, "n", {3: (1.0, "1.00"), 1: (float("nan"), "nan")}, 9)
    assert made == Relayed(5, "n", ((3, 1.0, "1.00"),), 9)
