"""mDNS: answer as `<label>.local` and announce the page as an `_http._tcp` service.

The ESP8266 firmware's page opens ws://<nodeName>.local/ws for every node it
learns of, so each node must resolve by its name. A node name may hold spaces
and other characters a host name cannot, so the host name is a DNS label made
from it ("Kitchen Plug" -> kitchen-plug.local). An ESP page therefore reaches
us only when the node name already is a valid label (letters, digits and
hyphens; mDNS ignores case). Everything runs on the event loop, and a failing
mDNS never stops the daemon: it is logged, and the daemon runs on without.
"""

from __future__ import annotations

import asyncio
import logging
import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import ifaddr

from plugd.service import netif

if TYPE_CHECKING:
    # zeroconf is imported where it is used: it holds 3.6 MB resident, which a plug with mDNS
    # off never needs.
    from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

log = logging.getLogger(__name__)

SERVICE_TYPE = "_http._tcp.local."
MAX_LABEL = 63  # bytes (RFC 1035); a service instance name has the same limit
IFF_MULTICAST = 0x1000
HOST_PROBE_MS = 750  # RFC 6762 probes a name three times, 250 ms apart
MAX_TRIES = 10  # "kitchen-plug", then "kitchen-plug-2" up to "-10"


def host_label(name: str, fallback: str = "plugd") -> str:
    """A valid DNS label made from a node name: "Kitchen Plug" -> "kitchen-plug".

    Lowercase letters, digits and hyphens, at most 63: accents are dropped
    ("Küche" -> "kuche"), every other run of characters becomes one hyphen, and
    `fallback` stands in when nothing is left.
    """
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    label = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return label[:MAX_LABEL].rstrip("-") or fallback


def interface_addresses(sys_net: Path = netif.SYS_NET) -> list[str]:
    """The IPv4 addresses of every up, multicast, non-loopback interface: where peers are."""
    found: list[str] = []
    for adapter in ifaddr.get_adapters():
        flags = netif._flags(adapter.name, sys_net)
        if not flags & netif.IFF_UP or not flags & IFF_MULTICAST or flags & netif.IFF_LOOPBACK:
            continue
        found += [ip.ip for ip in adapter.ips if isinstance(ip.ip, str) and ip.ip not in found]
    return found


def _cut(text: str, limit: int) -> str:
    """`text` cut to `limit` bytes of UTF-8, never inside a character."""
    return text.encode()[:limit].decode(errors="ignore")


class Announcer:
    """The node's mDNS records, from start() to close(), following its renames.

    `addresses` are the IPv4 addresses to answer with and the only ones sent
    from; None: those of interface_addresses(), looked up at start.
    """

    def __init__(self, node_id: int, node_name: str, http_port: int, version: str,
                 addresses: Sequence[str] | None = None) -> None:
        self.node_id = node_id
        self.http_port = http_port
        self.version = version
        self.addresses = None if addresses is None else list(addresses)
        self._name = node_name
        self._zc: AsyncZeroconf | None = None
        self._info: AsyncServiceInfo | None = None
        self._lock = asyncio.Lock()  # a rename on SIGHUP may come while start() probes

    @property
    def host(self) -> str | None:
        """The host name claimed ("kitchen-plug.local."), None while not announcing."""
        return None if self._info is None else self._info.server

    @property
    def service(self) -> str | None:
        """The service instance claimed ("Kitchen Plug._http._tcp.local."), None while not announcing."""
        return None if self._info is None else self._info.name

    async def start(self) -> None:
        """Claim the names and announce them; on any error log it and leave mDNS off."""
        async with self._lock:
            if self.addresses is None:
                self.addresses = interface_addresses()
            if not self.addresses:
                log.warning("mDNS off: no IPv4 interface to announce on")
                return
            try:
                from zeroconf.asyncio import AsyncZeroconf

                self._zc = AsyncZeroconf(interfaces=self.addresses)
                await self._register()
            except Exception as err:
                log.warning("mDNS off: %s: %s", type(err).__name__, err)
                await self._shutdown()

    async def rename(self, node_name: str) -> None:
        """Follow a rename: goodbye to the old names, then claim the new ones."""
        async with self._lock:
            if node_name == self._name:
                return
            self._name = node_name
            if self._zc is None or self._info is None:
                return  # not announcing: a later start() takes the new name
            try:
                await (await self._zc.async_unregister_service(self._info))
                self._info = None
                await self._register()
            except Exception as err:
                log.warning("mDNS off: cannot follow the rename to %r: %s: %s",
                            node_name, type(err).__name__, err)
                await self._shutdown()

    async def close(self) -> None:
        """Withdraw the records (goodbye packets) and close zeroconf."""
        async with self._lock:
            await self._shutdown()

    def _names(self, attempt: int) -> tuple[str, str]:
        """The service instance and host label for an attempt: the node's own, then "-2"..."""
        # A dot would split the instance name into two DNS labels on the wire.
        instance = self._name.replace(".", "-")
        label = host_label(self._name, fallback=f"plugd-{self.node_id}")
        if attempt == 1:
            return _cut(instance, MAX_LABEL), label
        suffix = f"-{attempt}"
        return (_cut(instance, MAX_LABEL - len(suffix)) + suffix,
                label[:MAX_LABEL - len(suffix)].rstrip("-") + suffix)

    async def _register(self) -> None:
        """Claim the first pair of names nobody else on the LAN holds."""
        from zeroconf import NonUniqueNameException
        from zeroconf.asyncio import AsyncServiceInfo

        assert self._zc is not None and self.addresses is not None
        for attempt in range(1, MAX_TRIES + 1):
            instance, label = self._names(attempt)
            if await self._host_taken(f"{label}.local."):
                log.warning("mDNS: another host answers to %s.local, trying the next name", label)
                continue
            info = AsyncServiceInfo(
                SERVICE_TYPE, f"{instance}.{SERVICE_TYPE}", port=self.http_port,
                properties={"id": str(self.node_id), "version": self.version, "path": "/"},
                server=f"{label}.local.", parsed_addresses=self.addresses)
            try:
                announced = await self._zc.async_register_service(info)
            except NonUniqueNameException:
                log.warning("mDNS: another host announces %r, trying the next name", instance)
                continue
            await announced
            self._info = info
            log.info("mDNS: %s.local and %r, HTTP port %d, on %s", label, instance,
                     self.http_port, ", ".join(self.addresses))
            return
        raise NonUniqueNameException(f"{MAX_TRIES} names taken, up to {label}.local")

    async def _host_taken(self, host: str) -> bool:
        """Whether another host answers to `host`: zeroconf probes only the service name."""
        from zeroconf import AddressResolverIPv4

        assert self._zc is not None and self.addresses is not None
        resolver = AddressResolverIPv4(host)
        if not await resolver.async_request(self._zc.zeroconf, HOST_PROBE_MS):
            return False
        return not set(resolver.parsed_addresses()) <= set(self.addresses)

    async def _shutdown(self) -> None:
        """Close zeroconf, which says goodbye for what it announced; errors are only logged."""
        zc, self._zc, self._info = self._zc, None, None
        if zc is None:
            return
        try:
            await zc.async_close()
        except Exception as err:
            log.warning("mDNS: closing: %s: %s", type(err).__name__, err)
