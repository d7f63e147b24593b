"""mDNS as a peer on the LAN sees it, in a network namespace of each test's own.

Multicast must never reach a real interface, so each scenario runs in a child
process under `unshare --net`: its namespace holds only `lo` (multicast on, one
address per zeroconf instance, so unicast answers reach the one that asked) and
a veth pair "lan" that nothing may be sent on, checked by capturing it. Run
as a script, this file is that child: `test_mdns.py SCENARIO [ARG]`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from zeroconf import AddressResolverIPv4, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from plugd.doors.mdns import SERVICE_TYPE, Announcer, host_label, interface_addresses

ROOT = Path(__file__).resolve().parent.parent
HERE, PEER, OTHER, ASKER = "127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"
LAN = "10.9.9.1"
UNSHARE = ["unshare", "--net", "--mount", "--propagation", "private", "--"]
SETUP = " && ".join([
    "ip link set lo multicast on up",
    *(f"ip addr add {address}/8 dev lo" for address in (PEER, OTHER, ASKER)),
    "ip link add lan type veth peer name lan-peer",
    "ip link set lan-peer up", "ip link set lan multicast on up",
    f"ip addr add {LAN}/24 dev lan",
    "mount -t sysfs sysfs /sys",  # this namespace's interfaces, for interface_addresses
])
WAIT = 5.0  # seconds, for anything a scenario waits for


# --- on the host: pure functions, and each scenario in a namespace -------------

@pytest.mark.parametrize(("name", "label"), [
    ("Kitchen Plug", "kitchen-plug"), ("KitchenPlug", "kitchenplug"), ("Küche 2", "kuche-2"),
    ("  --My_plug!!--  ", "my-plug"), ("東京", "plugd"), ("a" * 62 + " b", "a" * 62),
])
def test_host_label(name: str, label: str) -> None:
    assert host_label(name) == label


def test_names_fit_dns_labels() -> None:
    names = Announcer(7, "Plug v1.5", 80, "1")._names
    assert names(1) == ("Plug v1-5", "plug-v1-5")
    assert names(2) == ("Plug v1-5-2", "plug-v1-5-2")
    long = Announcer(7, "Ä" * 32, 80, "1")._names  # 64 bytes of UTF-8, a label "a" * 32
    assert long(1) == ("Ä" * 31, "a" * 32)
    assert long(10) == ("Ä" * 30 + "-10", "a" * 32 + "-10")
    assert Announcer(7, "***", 80, "1")._names(1)[1] == "plugd-7"


@pytest.fixture(scope="module")
def netns() -> None:
    """Skip, saying why, unless a namespace of our own can be made."""
    try:
        done = subprocess.run([*UNSHARE, "sh", "-c", SETUP], capture_output=True, text=True,
                              timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        pytest.skip(f"mDNS tests need a network namespace of their own: {err}")
    if done.returncode:
        pytest.skip("mDNS tests need a network namespace of their own (root, unshare, iproute2, "
                    f"veth), so as not to multicast on real interfaces: {done.stderr.strip()}")


def in_netns(scenario: str, *args: str) -> str:
    """Run a scenario below in a fresh namespace; what it logged."""
    done = subprocess.run(
        [*UNSHARE, "sh", "-c", f'{SETUP} && exec "$@"', "sh",
         sys.executable, __file__, scenario, *args],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode:
        pytest.fail(f"{scenario} failed in its namespace:\n{done.stderr}", pytrace=False)
    assert "Task was destroyed" not in done.stderr and "never retrieved" not in done.stderr, done.stderr
    return done.stderr


def test_announce_rename_close(netns: None) -> None:
    in_netns("announce_rename_close")


@pytest.mark.parametrize("taken", ["host", "service"])
def test_a_name_taken_on_the_lan_gets_a_suffix(netns: None, taken: str) -> None:
    log = in_netns("name_taken", taken)
    assert "trying the next name" in log


def test_zeroconf_failures_leave_mdns_off(netns: None) -> None:
    log = in_netns("failures")
    assert "mDNS off: ValueError" in log and "mDNS off: OSError" in log


def test_a_start_cancelled_while_probing_is_closed_cleanly(netns: None) -> None:
    in_netns("cancelled_start")


def test_default_addresses_are_the_lan_interfaces(netns: None) -> None:
    in_netns("interfaces")


# --- in the namespace ---------------------------------------------------------

class Peer:
    """Another node on the LAN: its own zeroconf, and the _http._tcp services it sees."""

    def __init__(self) -> None:
        self.zc = AsyncZeroconf(interfaces=[PEER])
        self.events: asyncio.Queue[tuple[ServiceStateChange, str]] = asyncio.Queue()
        self.browser = AsyncServiceBrowser(self.zc.zeroconf, SERVICE_TYPE,
                                           handlers=[self._changed])

    def _changed(self, zeroconf: Zeroconf, service_type: str, name: str,
                 state_change: ServiceStateChange) -> None:
        self.events.put_nowait((state_change, name))

    async def sees(self, change: ServiceStateChange, name: str) -> None:
        async with asyncio.timeout(WAIT):
            while await self.events.get() != (change, name):
                pass

    async def info(self, name: str) -> AsyncServiceInfo:
        info = AsyncServiceInfo(SERVICE_TYPE, name)
        assert await info.async_request(self.zc.zeroconf, WAIT * 1000), f"{name} not resolved"
        return info

    async def close(self) -> None:
        await self.browser.async_cancel()
        await self.zc.async_close()


async def resolve(host: str, timeout: float = WAIT) -> list[str]:
    """`host`'s addresses, asked by a zeroconf with an empty cache: what a newcomer hears."""
    asker = AsyncZeroconf(interfaces=[ASKER])
    try:
        resolver = AddressResolverIPv4(host)
        await resolver.async_request(asker.zeroconf, timeout * 1000)
        return resolver.parsed_addresses()
    finally:
        await asker.async_close()


async def announce_rename_close() -> None:
    announcer = Announcer(4242, "Kitchen Plug", 8080, "1.2.3", addresses=[HERE])
    peer = Peer()
    try:
        await announcer.start()
        kitchen = "Kitchen Plug._http._tcp.local."
        assert (announcer.host, announcer.service) == ("kitchen-plug.local.", kitchen)
        await peer.sees(ServiceStateChange.Added, kitchen)
        info = await peer.info(kitchen)
        assert info.port == 8080
        assert info.properties == {b"id": b"4242", b"version": b"1.2.3", b"path": b"/"}
        assert info.server == "kitchen-plug.local."
        assert await resolve("kitchen-plug.local.") == [HERE]

        await announcer.rename("Living Room")
        living = "Living Room._http._tcp.local."
        await peer.sees(ServiceStateChange.Removed, kitchen)
        await peer.sees(ServiceStateChange.Added, living)
        assert (await peer.info(living)).server == "living-room.local."
        assert await resolve("living-room.local.") == [HERE]
        assert await resolve("kitchen-plug.local.", timeout=1.0) == []

        await announcer.close()
        await peer.sees(ServiceStateChange.Removed, living)
        assert announcer.host is None
        assert await resolve("living-room.local.", timeout=1.0) == []
    finally:
        await announcer.close()
        await peer.close()


async def name_taken(taken: str) -> None:
    """Another host holds the host name ("host") or the service name ("service")."""
    other = AsyncZeroconf(interfaces=[OTHER])
    server = "kitchen-plug.local." if taken == "host" else "esp-kitchen.local."
    instance = "Garage" if taken == "host" else "Kitchen Plug"
    await (await other.async_register_service(AsyncServiceInfo(
        SERVICE_TYPE, f"{instance}.{SERVICE_TYPE}", port=80, server=server,
        parsed_addresses=[OTHER])))
    announcer = Announcer(4242, "Kitchen Plug", 8080, "1.2.3", addresses=[HERE])
    try:
        await announcer.start()
        assert announcer.host == "kitchen-plug-2.local."
        assert announcer.service == f"Kitchen Plug-2.{SERVICE_TYPE}"
        assert await resolve("kitchen-plug-2.local.") == [HERE]
        if taken == "host":
            assert await resolve("kitchen-plug.local.") == [OTHER]
        else:
            assert await resolve("kitchen-plug.local.", timeout=1.0) == []
    finally:
        await announcer.close()
        await other.async_close()


async def failures() -> None:
    for addresses in (["not-an-address"], ["192.0.2.1"]):  # the second is on no interface
        announcer = Announcer(4242, "Kitchen Plug", 8080, "1.2.3", addresses=addresses)
        await announcer.start()
        assert announcer.host is None
        await announcer.rename("Living Room")
        await announcer.close()


async def cancelled_start() -> None:
    """The daemon starts mDNS as a task of its own, which stop() cancels before close(): once
    while it asks whether the host name is taken, once while it probes the service name (each
    moment seen as it comes, through the real calls)."""
    announcer = Announcer(4242, "Kitchen Plug", 8080, "1.2.3", addresses=[HERE])
    asking, probing = asyncio.Event(), asyncio.Event()
    host_taken = announcer._host_taken
    register = AsyncZeroconf.async_register_service

    async def ask(host: str) -> bool:
        asking.set()
        return await host_taken(host)

    async def probe(zc: AsyncZeroconf, *args: Any, **kwargs: Any) -> Awaitable[None]:
        announced = await register(zc, *args, **kwargs)  # its probes are under way
        probing.set()
        return announced

    announcer._host_taken = ask  # type: ignore[method-assign]
    AsyncZeroconf.async_register_service = probe  # type: ignore[method-assign,assignment]
    try:
        for moment in (asking, probing):
            task = asyncio.create_task(announcer.start())
            await asyncio.wait_for(moment.wait(), WAIT)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await announcer.close()
            assert announcer.host is None
            assert await resolve("kitchen-plug.local.", timeout=1.0) == []
    finally:
        AsyncZeroconf.async_register_service = register  # type: ignore[method-assign]


async def interfaces() -> None:
    assert interface_addresses() == [LAN]  # not lo's, nor lan-peer, which has no IPv4


def captured(sniffer: socket.socket) -> list[bytes]:
    frames = []
    while True:
        try:
            frame, (_, protocol, *_) = sniffer.recvfrom(65536)
        except BlockingIOError:
            return frames
        if protocol == 0x0800:  # IPv4: the kernel's own IPv6 chatter on a new link is not ours
            frames.append(frame)


def main(scenario: Callable[..., Awaitable[None]], *args: str) -> None:
    names = {name for _, name in socket.if_nameindex()}
    assert names == {"lo", "lan", "lan-peer"}, f"not in a namespace of our own: {names}"
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3)) as sniffer:  # ETH_P_ALL
        sniffer.bind(("lan", 0))
        sniffer.setblocking(False)
        asyncio.run(asyncio.wait_for(scenario(*args), 45))
        leaked = captured(sniffer)
    assert not leaked, f"{len(leaked)} IPv4 frames sent on lan, the first: {leaked[0].hex()}"


if __name__ == "__main__":
    main(globals()[sys.argv[1]], *sys.argv[2:])
