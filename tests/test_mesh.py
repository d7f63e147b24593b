import heapq

import pytest

from plugd.core.registry import Peer, Registry, parse_records
from plugd.core.wire import decode
from plugd.doors.udp import Broadcaster, Throttle
from plugd.errors import ValidationError

OWN = 4242


def packet(node_id, name="Node", fields="&1:1.00"):
    return decode(f"{node_id}:{name}{fields}".encode())


def test_a_peer_is_registered_with_its_things_address_and_time():
    registry = Registry(OWN)
    heard = registry.heard(packet(7, "Kitchen", "&5:18.50&6:40.00"), "127.0.0.9", now=10.0, esp_now=500)
    assert heard.is_new and heard.came_online and not heard.renamed
    peer = registry.peers[7]
    assert (peer.name, peer.address, peer.last_seen, peer.last_seen_esp) == ("Kitchen", "127.0.0.9", 10.0,
                                                                            500)
    assert {i: t.value for i, t in peer.things.items()} == {5: 18.5, 6: 40.0}
    again = registry.heard(packet(7, "Kitchen 2", "&5:19.00"), "127.0.0.9", now=11.0, esp_now=501)
    assert not again.is_new and not again.came_online and again.renamed
    assert peer.things[5].value == 19.0 and peer.things[6].value == 40.0


def test_our_own_packets_are_not_a_peer():
    registry = Registry(OWN)
    assert registry.heard(packet(OWN), "127.0.0.1", 0, 0) is None
    assert registry.peers == {} and registry.counters.own == 1
    assert registry.is_online(OWN)


def test_a_silent_node_goes_offline_after_the_timeout_and_comes_back():
    registry = Registry(OWN, offline_after=15.0)
    registry.heard(packet(7), "a", now=100.0, esp_now=0)
    assert registry.sweep(115.0) == [] and registry.is_online(7)
    (gone,) = registry.sweep(115.5)
    assert gone.id == 7 and not registry.is_online(7) and gone.things == {}
    assert registry.sweep(200.0) == []  # reported once
    assert registry.heard(packet(7), "a", now=201.0, esp_now=0).came_online


def test_a_full_table_admits_a_newcomer_heard_twice_in_the_place_of_one_long_offline():
    registry = Registry(OWN, max_nodes=3, offline_after=10.0, keep_offline=30.0)
    for node_id, now in ((1, 0.0), (2, 5.0), (3, 9.0)):
        registry.heard(packet(node_id), "a", now=now, esp_now=0)
    assert registry.heard(packet(4), "a", now=9.5, esp_now=0) is None  # full: on probation
    assert registry.counters.probation == 1 and registry.on_probation == 1
    registry.sweep(16.0)  # 1 and 2 are offline now, but may be rebooting: they keep their place
    assert registry.heard(packet(4), "a", now=16.0, esp_now=0) is None
    assert registry.counters.dropped_full == 2
    assert registry.heard(packet(4), "a", now=31.0, esp_now=0).is_new  # 1 unheard for 31 s
    assert sorted(registry.peers) == [2, 3, 4] and registry.counters.evicted == 1
    assert registry.on_probation == 0
    assert registry.heard(packet(5), "a", now=34.0, esp_now=0) is None  # heard once
    assert registry.heard(packet(5), "a", now=34.5, esp_now=0) is None  # 2: only 29.5 s
    assert registry.heard(packet(5), "a", now=35.5, esp_now=0).is_new
    assert sorted(registry.peers) == [3, 4, 5]


def test_a_flood_of_new_ids_never_evicts_a_node_heard_recently():
    registry = Registry(OWN, max_nodes=4, offline_after=10.0)
    for node_id in (1, 2, 3, 4):
        registry.heard(packet(node_id), "a", now=0.0, esp_now=0)
    registry.sweep(60.0)  # all four offline, heard a minute ago
    for round_ in range(3):  # every spoofed id twice, even
        for node_id in range(100, 2100):
            registry.heard(packet(node_id), "a", now=61.0 + round_, esp_now=0)
    assert sorted(registry.peers) == [1, 2, 3, 4] and registry.counters.evicted == 0
    assert registry.on_probation <= 1024


def test_nodes_known_from_disk_keep_their_place_after_a_restart_and_come_back():
    registry = Registry(OWN, max_nodes=2, offline_after=10.0, keep_offline=30.0)
    registry.load([Peer(1, "old"), Peer(2, "older")], now=100.0)
    for _ in range(2):
        assert registry.heard(packet(3), "a", now=101.0, esp_now=0) is None
    assert sorted(registry.peers) == [1, 2]
    registry.heard(packet(2), "a", now=102.0, esp_now=0)  # back: 2 is a node like any other
    assert registry.heard(packet(3), "a", now=131.0, esp_now=0).is_new  # 1: unheard 31 s since start
    assert sorted(registry.peers) == [2, 3]


def test_spoofed_ids_cannot_grow_the_table():
    registry = Registry(OWN, max_nodes=256)
    for node_id in range(1, 10_001):
        registry.heard(packet(node_id), "a", now=0.0, esp_now=0)
    assert len(registry.peers) == 256 and registry.counters.own == 1  # 4242 is in the range
    assert registry.counters.dropped_full == 10_000 - 256 - 1


def test_things_per_node_are_bounded():
    registry = Registry(OWN)
    fields = "".join(f"&{i}:1" for i in range(1, 100))
    registry.heard(packet(7, fields=fields), "a", 0, 0)
    assert len(registry.peers[7].things) == 64


def test_known_nodes_round_trip_through_their_records():
    registry = Registry(OWN)
    registry.heard(packet(7, "Kitchen"), "127.0.0.9", now=1.0, esp_now=600)
    records = parse_records([p.to_record() for p in registry.peers.values()])
    restored = Registry(OWN)
    restored.load([*records, Peer(OWN, "me")], now=0.0)
    peer = restored.peers[7]
    assert (peer.name, peer.address, peer.last_seen_esp, peer.online) == ("Kitchen", "127.0.0.9", 600, False)
    assert OWN not in restored.peers


def test_bad_records_are_refused_naming_the_entry():
    with pytest.raises(ValidationError, match=r"nodes\[1\].name"):
        parse_records([{"id": 1, "name": "a"}, {"id": 2, "name": "b&c"}])


class FakeLoop:
    """Just enough of an event loop for the Broadcaster and the Throttle: time moves when the
    test says."""

    def __init__(self):
        self.now = 0.0
        self.timers = []
        self.count = 0

    def time(self):
        return self.now

    def call_later(self, delay, callback):
        return self.call_at(self.now + delay, callback)

    def call_at(self, when, callback):
        self.count += 1
        timer = [when, self.count, callback, False]
        heapq.heappush(self.timers, timer)

        class Handle:
            def cancel(self_inner):
                timer[3] = True

            def when(self_inner):
                return timer[0]
        return Handle()

    def advance(self, seconds):
        end = self.now + seconds
        while self.timers and self.timers[0][0] <= end:
            when, _, callback, cancelled = heapq.heappop(self.timers)
            self.now = when
            if not cancelled:
                callback()
        self.now = end


def test_broadcasts_go_every_interval_and_soon_after_changes_at_most_ten_a_second():
    loop = FakeLoop()
    sent = []
    b = Broadcaster(loop, lambda: sent.append(loop.now), interval=5.0, max_rate=10.0)
    b.start()
    assert sent == [0.0]
    loop.advance(1.0)
    b.changed()  # quiet for a while: goes at once
    assert sent == [0.0, 1.0]
    for _ in range(50):  # a burst: one more datagram at the end of the gap
        loop.advance(0.001)
        b.changed()
    loop.advance(0.2)
    assert sent == [0.0, 1.0, pytest.approx(1.1)]
    loop.advance(4.0)
    assert sent[-1] == 5.0
    b.stop()
    loop.advance(20.0)
    assert sent[-1] == 5.0


def test_a_periodic_send_covers_a_waiting_change_and_nothing_fires_after_stop():
    loop = FakeLoop()
    sent = []
    b = Broadcaster(loop, lambda: sent.append(loop.now), interval=1.0, max_rate=2.0)
    b.start()
    loop.advance(0.9)
    b.changed()  # sent at once: the gap since 0.0 is over
    b.changed()  # waits for the gap to end, at 1.4
    loop.advance(0.2)  # the periodic send at 1.0 goes out and carries the change
    assert sent == [0.0, 0.9, 1.0]
    b.changed()
    b.stop()
    loop.advance(10.0)
    assert sent == [0.0, 0.9, 1.0]
    assert all(timer[3] for timer in loop.timers)  # every timer left was cancelled


def test_the_throttle_runs_each_key_at_once_then_its_latest_item_at_the_end_of_its_gap():
    loop = FakeLoop()
    ran = []
    t = Throttle(loop, lambda item: ran.append((loop.now, item)), min_gap=0.5)
    t.request("a", 1)  # new: at once
    loop.advance(0.2)
    t.request("b", 1)  # another key keeps its own phase
    for item in (2, 3, 4):  # a burst within a's gap: only the latest, at 0.5
        t.request("a", item)
        loop.advance(0.05)
    loop.advance(1.0)
    assert ran == [(0.0, 1), (0.2, 1), (0.5, 4)]
    t.request("b", 2)  # quiet for longer than the gap: at once
    assert ran[-1] == (1.35, 2)


def test_the_throttle_keeps_the_order_of_a_key_and_forgets_quiet_keys():
    loop = FakeLoop()
    ran = []
    t = Throttle(loop, lambda item: ran.append(item), min_gap=0.5)
    t.request("a", 1)
    loop.advance(0.3)
    t.request("a", 2)  # waits for 0.5
    loop.now = 0.6  # the timer is late: a newer item arrives first, and the waiting one is dropped
    t.request("a", 3)
    loop.advance(2.0)
    assert ran == [1, 3]
    for key in range(1000):  # spoofed keys, each heard once
        t.request(key, key)
    loop.advance(1.0)
    t.request("x", 0)
    t.request("x", 1)
    loop.advance(1.0)
    assert len(t._last) <= 1  # the thousand quiet keys were forgotten at the flush
    t.request("y", 0)
    t.request("y", 1)
    t.stop()
    loop.advance(5.0)
    assert ran[-1] == 0 and all(timer[3] for timer in loop.timers)


def test_many_keys_due_at_once_are_run_a_few_at_a_time():
    loop = FakeLoop()
    ran = []
    t = Throttle(loop, ran.append, min_gap=0.5)
    for key in range(20):
        t.request(key, (key, "first"))
    for key in range(20):
        t.request(key, (key, "latest"))  # all wait for the end of their gap, at 0.5
    timers = loop.count
    loop.advance(0.5)
    assert ran[20:] == [(key, "latest") for key in range(20)]
    assert loop.count - timers == 2  # in three calls, 8 + 8 + 4: the loop polls in between
