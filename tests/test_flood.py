"""A short flood of the mesh port: the daemon stays in control (behaviour only, no timing ratios).

`plugd --simulate` runs as a process of its own; another process sends mixed
traffic (valid, junk, spoofed node ids) to 127.0.0.1 only, while a WebSocket
client switches the relay and another reads the pushes, as `bench.flood` does.
"""

from __future__ import annotations

import socket

import pytest

from bench import flood
from plugd.doors.udp import kernel_drops

SECONDS = 15.0
RATE = 10_000  # well below the bench's, so the suite on a busy machine still floods for real
MAX_RSS_GROWTH_KIB = 32 * 1024


@pytest.fixture(scope="module")
def outcome() -> flood.Outcome:
    return flood.flood(SECONDS, RATE, idle_switches=20)


def test_every_switch_is_answered_during_the_flood(outcome):
    assert outcome.flood.answered and outcome.flood.missed == 0
    assert len(outcome.flood.pushed) == len(outcome.flood.answered)
    assert outcome.sent.count > RATE  # it was a flood: more than a second's worth arrived


def test_the_page_keeps_getting_pushes_through_the_flood(outcome):
    start, end = outcome.window
    quarter = (end - start) / 4
    per_quarter = [outcome.pushes_in(start + i * quarter, start + (i + 1) * quarter)
                   for i in range(4)]
    assert all(per_quarter), per_quarter


def test_invalid_and_spoofed_datagrams_are_counted(outcome):
    before, after = outcome.before["counters"], outcome.after["counters"]
    assert after["invalid"] > before["invalid"]
    assert after["dropped_full"] > before["dropped_full"]  # spoofed ids beyond max_nodes
    assert after["accepted"] > before["accepted"]
    assert outcome.after["nodesKnown"] <= 256
    assert outcome.after["kernelDrops"] is not None


def test_memory_stays_bounded_and_the_daemon_ends_cleanly(outcome):
    assert len(outcome.rss_kib) >= 2, outcome.rss_kib  # sampled through the flood
    assert max(outcome.rss_kib) - min(outcome.rss_kib) < MAX_RSS_GROWTH_KIB
    assert (outcome.errors, outcome.exit_code) == (0, 0)


def test_kernel_drops_are_read_for_the_socket_that_overflowed():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as full, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        full.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)  # the kernel's minimum
        full.bind(("127.0.0.1", 0))
        assert kernel_drops(full) == 0
        for _ in range(200):  # never read: the queue overflows
            sender.sendto(b"1:Flood&1:1.00" * 30, full.getsockname())
        assert kernel_drops(full) > 0
    assert kernel_drops(full) is None  # closed
