"""Login limits: counted before the check, per address, per IPv6 /64 and in total, and a
locked-out address stays locked however many others fail."""

import asyncio

import pytest
from conftest import Client
from hypothesis import given
from hypothesis import strategies as st
from websockets.asyncio.client import connect

from plugd.doors.limits import (
    PER_ADDRESS,
    PER_NETWORK,
    TOTAL,
    ConnectionCounter,
    LoginLimits,
    TokenBucket,
    client_key,
    network_of,
)


def fail(limits, address, now):
    assert limits.begin(address, now) == 0.0
    limits.end(address, False, now)


def test_parallel_attempts_are_counted_before_any_check_ends():
    limits = LoginLimits()
    begun = [limits.begin("10.0.0.9", 1.0) for _ in range(PER_ADDRESS.free + 3)]
    assert begun[:PER_ADDRESS.free] == [0.0] * PER_ADDRESS.free
    assert all(wait > 0 for wait in begun[PER_ADDRESS.free:])  # they never reach the check


def test_a_success_clears_its_address():
    limits = LoginLimits()
    for now in range(PER_ADDRESS.free - 1):
        fail(limits, "10.0.0.9", float(now))
    assert limits.begin("10.0.0.9", 10.0) == 0.0
    limits.end("10.0.0.9", True, 10.0)
    assert limits.wait("10.0.0.9", 10.0) == 0.0 and len(limits) == 0


def test_an_ipv6_64_counts_as_one_guesser():
    limits = LoginLimits()
    assert network_of("2001:db8:1:2::7") == "2001:db8:1:2::/64" and network_of("10.0.0.1") is None
    for i in range(PER_NETWORK.free):
        fail(limits, f"2001:db8:1:2::{i + 1:x}", 1.0)  # each address fails once only
    assert limits.wait("2001:db8:1:2::ffff", 1.0) > 0
    assert limits.wait("2001:db8:1:3::1", 1.0) == 0.0  # the next /64 is someone else


def test_failures_in_total_slow_everyone_but_not_for_long():
    limits = LoginLimits()
    for i in range(TOTAL.free):
        fail(limits, f"10.1.{i // 250}.{i % 250}", 1.0)
    wait = limits.wait("192.168.1.20", 1.0)
    assert 0 < wait <= TOTAL.max_wait


def test_failures_expire():
    limits = LoginLimits()
    for _ in range(PER_ADDRESS.free + 2):
        limits.begin("10.0.0.9", 1.0)
    assert limits.wait("10.0.0.9", 1.5) > 0
    assert limits.wait("10.0.0.9", 1.0 + 301.0) == 0.0


@given(st.integers(1, 5000))
def test_a_locked_out_address_stays_locked_however_many_others_fail(others):
    limits = LoginLimits(max_entries=64)
    for _ in range(PER_ADDRESS.free):
        limits.begin("10.0.0.9", 1.0)
    locked = limits.wait("10.0.0.9", 1.5)
    assert locked > 0
    for i in range(others):  # token logins from many addresses, each failing once
        limits.begin(f"172.16.{i // 250}.{i % 250}", 1.5)
        limits.end(f"172.16.{i // 250}.{i % 250}", False, 1.5)
    assert limits.wait("10.0.0.9", 1.5) >= locked  # (the total limit may add to it)
    assert len(limits) <= 64


async def test_parallel_guesses_over_the_api_do_not_all_reach_the_password_check(daemon):
    async def guess() -> str:
        async with connect(f"ws://127.0.0.1:{daemon.web.port}/ws") as ws:
            return (await Client(ws).ask({"command": "login", "password": "a guess"}))["error"]

    errors = await asyncio.gather(*(guess() for _ in range(PER_ADDRESS.free * 3)))
    assert errors.count("wrong password") == PER_ADDRESS.free  # the rest never reached scrypt
    assert all(e.startswith("too many failed attempts") for e in errors if e != "wrong password")


def test_connections_are_capped_per_client_and_in_total():
    counter = ConnectionCounter(total=10, per_client=3)
    assert [counter.admit("10.0.0.9") for _ in range(3)] == [None] * 3
    assert "10.0.0.9 already holds 3" in counter.admit("10.0.0.9")
    # An IPv6 /64 is one client, however many addresses it uses.
    assert [counter.admit(f"2001:db8::{i + 1:x}") for i in range(3)] == [None] * 3
    assert "2001:db8::/64" in counter.admit("2001:db8::ffff")
    assert [counter.admit(f"10.0.1.{i}") for i in range(4)] == [None] * 4
    assert "all 10 connections" in counter.admit("10.0.2.1") and len(counter) == 10
    counter.release("10.0.0.9")
    assert counter.admit("10.0.2.1") is None and "all 10" in counter.admit("10.0.0.9")


@given(st.lists(st.tuples(st.booleans(), st.sampled_from(["10.0.0.1", "10.0.0.2", "2001:db8::1",
                                                          "2001:db8::2", "2001:db8:0:1::1"]))))
def test_the_connection_count_is_what_was_admitted_less_what_closed(steps):
    counter = ConnectionCounter(total=6, per_client=2)
    held: list[str] = []
    for opening, address in steps:
        if opening:
            if counter.admit(address) is None:
                held.append(address)
        elif address in held:
            held.remove(address)
            counter.release(address)
        assert len(counter) == len(held) <= 6
        per_client: dict[str, int] = {}
        for a in held:
            per_client[client_key(a)] = per_client.get(client_key(a), 0) + 1
        assert all(n <= 2 for n in per_client.values())


def test_a_token_bucket_allows_its_burst_then_its_rate():
    bucket = TokenBucket(rate=10.0, burst=5.0, now=0.0)
    assert [bucket.take(0.0) for _ in range(5)] == [0.0] * 5
    assert bucket.take(0.0) == pytest.approx(0.1)   # the sixth waits for its token
    assert bucket.take(0.0) == pytest.approx(0.2)   # and the seventh for the next
    assert bucket.take(1.0) == 0.0                  # a second later, the debt is paid
    assert bucket.take(100.0) == 0.0 and [bucket.take(100.0) for _ in range(4)] == [0.0] * 4


@given(st.lists(st.floats(min_value=0.0, max_value=2.0, allow_nan=False), min_size=1, max_size=200))
def test_a_client_that_waits_as_told_keeps_the_average_rate(gaps):
    bucket = TokenBucket(rate=20.0, burst=4.0, now=0.0)
    now = 0.0
    for gap in gaps:
        now += gap
        now += bucket.take(now)  # it waits what it is told, then goes on
    assert len(gaps) <= 4 + 20.0 * now + 1e-6
