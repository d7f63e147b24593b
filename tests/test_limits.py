"""Login limits: counted before the check, per address, per IPv6 /64 and in total, and a
locked-out address stays locked however many others fail."""

import asyncio

from conftest import Client
from hypothesis import given
from hypothesis import strategies as st
from websockets.asyncio.client import connect

from plugd.doors.limits import PER_ADDRESS, PER_NETWORK, TOTAL, LoginLimits, network_of


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
