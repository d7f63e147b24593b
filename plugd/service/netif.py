"""What the host's network interfaces tell: broadcast addresses and a stable node id."""

from __future__ import annotations

import hashlib
import ipaddress
from pathlib import Path

import ifaddr

SYS_NET = Path("/sys/class/net")
IFF_UP = 0x1
IFF_BROADCAST = 0x2
IFF_LOOPBACK = 0x8


def _flags(name: str, sys_net: Path) -> int:
    try:
        return int((sys_net / name / "flags").read_text().strip(), 16)
    except (OSError, ValueError):
        return 0


def broadcast_addresses(sys_net: Path = SYS_NET) -> list[str]:
    """The directed broadcast address of every up, non-loopback IPv4 interface."""
    found: list[str] = []
    for adapter in ifaddr.get_adapters():
        flags = _flags(adapter.name, sys_net)
        if not flags & IFF_UP or flags & IFF_LOOPBACK or not flags & IFF_BROADCAST:
            continue
        for ip in adapter.ips:
            if not isinstance(ip.ip, str) or ip.network_prefix >= 31:
                continue
            network = ipaddress.IPv4Network(f"{ip.ip}/{ip.network_prefix}", strict=False)
            address = str(network.broadcast_address)
            if address not in found:
                found.append(address)
    return found


def networks() -> list[str]:
    """Every IPv4 network ("10.1.0.0/24") an interface of the host is on: which subnet a node
    was heard on, for the plugd of other subnets."""
    found: list[str] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str):
                network = str(ipaddress.IPv4Network(f"{ip.ip}/{ip.network_prefix}", strict=False))
                if network not in found:
                    found.append(network)
    return found


def _default_route_interface() -> str | None:
    try:
        lines = Path("/proc/net/route").read_text().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        parts = line.split()
        if len(parts) > 2 and parts[1] == "00000000":
            return parts[0]
    return None


def _mac(name: str, sys_net: Path) -> int | None:
    try:
        text = (sys_net / name / "address").read_text().strip()
        mac = int(text.replace(":", ""), 16)
    except (OSError, ValueError):
        return None
    return mac or None


def derive_node_id(sys_net: Path = SYS_NET, machine_id: Path = Path("/etc/machine-id")) -> int:
    """The ESP8266 way: the lower 24 bits of the primary interface's MAC address.

    The primary interface is the one with the default route, else the first
    non-loopback one by name. Without any MAC (a container, say) the id comes
    from the machine id, so it is still stable across restarts. Always 1..2^24-1.
    """
    names = sorted(p.name for p in sys_net.iterdir()) if sys_net.is_dir() else []
    preferred = _default_route_interface()
    if preferred in names:
        names.remove(preferred)
        names.insert(0, preferred)
    for name in names:
        if name == "lo" or _flags(name, sys_net) & IFF_LOOPBACK:
            continue
        mac = _mac(name, sys_net)
        if mac is not None and mac & 0xFFFFFF:
            return mac & 0xFFFFFF
    try:
        seed = machine_id.read_bytes()
    except OSError:
        seed = b"plugd"
    return int.from_bytes(hashlib.sha256(seed).digest()[:3], "big") or 1
