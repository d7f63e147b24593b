"""Network namespaces for the mesh tests: `ip` commands, sockets opened inside a namespace,
and a packet counter that shows where the mesh's traffic went.

A socket belongs to the namespace of the thread that opened it, so `in_netns` runs a call in
a short-lived thread that joined the namespace first: the test process reaches a daemon's
127.0.0.1 inside its namespace without a helper process per request.
"""

from __future__ import annotations

import ctypes
import ipaddress
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
SO_ATTACH_FILTER = 26
PACKET_OUTGOING = 4

_libc = ctypes.CDLL(None, use_errno=True)


def ip(*args: str) -> str:
    """Run `ip` with `args`; a failure names the command and what `ip` said."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


def links(namespace: str | None = None) -> dict[str, dict[str, Any]]:
    """The network interfaces of a namespace (None: the host's), by name, as `ip -j` gives them."""
    where = ["-n", namespace] if namespace else []
    return {link["ifname"]: link for link in json.loads(ip(*where, "-j", "link", "show"))}


def unusable() -> str | None:
    """Why namespaces cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "not running as root"
    for command, package in (("ip", "iproute2"), ("setpriv", "util-linux")):
        if shutil.which(command) is None:
            return f"the `{command}` command ({package}) is missing"
    probe = f"plugdprobe{os.getpid()}"
    try:
        ip("netns", "add", probe)
        ip("netns", "del", probe)
    except (RuntimeError, OSError) as err:
        return f"`ip netns` does not work: {err}"
    return None


def host_uses(network: str) -> str | None:
    """What on the host already has an address in `network` (its traffic would count as ours)."""
    subnet = ipaddress.IPv4Network(network)
    for link in json.loads(ip("-j", "-4", "addr", "show")):
        for info in link.get("addr_info", []):
            if ipaddress.IPv4Interface(f"{info['local']}/{info['prefixlen']}").network.overlaps(subnet):
                return f"the host's {link['ifname']} has {info['local']}/{info['prefixlen']}"
    return None


def remove_stale(prefix_pattern: str) -> list[str]:
    """Delete namespaces named by `prefix_pattern` (a regex with the owner's pid as group 1)
    whose process is gone: what an earlier run killed mid-way left behind."""
    removed = []
    for path in NETNS_DIR.glob("*") if NETNS_DIR.is_dir() else []:
        match = re.fullmatch(prefix_pattern, path.name)
        if match and not Path(f"/proc/{match.group(1)}").exists():
            ip("netns", "del", path.name)
            removed.append(path.name)
    return removed


def in_netns(namespace: str | None, call: Callable[[], T]) -> T:
    """`call()` from a thread that joined `namespace` (None: the host's); its sockets stay there."""
    if namespace is None:
        return call()
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            with open(NETNS_DIR / namespace, "rb") as handle:
                if _libc.setns(handle.fileno(), CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns into {namespace}: {os.strerror(err)}")
            outcome["value"] = call()
        except BaseException as err:  # handed to the caller's thread
            outcome["error"] = err

    worker = threading.Thread(target=run, name=f"netns-{namespace}")
    worker.start()
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _subnet_filter(network: ipaddress.IPv4Network) -> bytes:
    """A classic BPF program: keep IPv4 and ARP packets from or to `network`, drop the rest.

    The kernel runs it, so a host busy with other traffic costs the counting thread nothing.
    Offsets are into the network header (the socket is SOCK_DGRAM).
    """
    net, mask = int(network.network_address), int(network.netmask)
    ld_half, ld_word, alu_and, jeq, ret = 0x28, 0x20, 0x54, 0x15, 0x06
    skf_ad_protocol = 0xFFFFF000  # the ancillary "protocol" field: the packet's ethertype

    def in_net(offset: int, otherwise: str | None) -> list[Any]:
        return [(ld_word, offset), (alu_and, mask), (jeq, net, "keep", otherwise)]

    # Instructions are (code, k[, jump if true, jump if false]); a string is a label,
    # a jump of None goes on to the next instruction.
    source: list[Any] = [
        (ld_half, skf_ad_protocol), (jeq, ETH_P_IP, "ip", None), (jeq, ETH_P_ARP, "arp", "drop"),
        "ip", *in_net(12, None), *in_net(16, "drop"),  # IPv4 source, destination
        "arp", *in_net(14, None), *in_net(24, "drop"),  # ARP sender, target address
        "drop", (ret, 0),
        "keep", (ret, 0xFFFF),
    ]
    labels: dict[str, int] = {}
    instructions = []
    for item in source:
        if isinstance(item, str):
            labels[item] = len(instructions)
        else:
            instructions.append(item)
    code = b""
    for pc, (op, k, *jumps) in enumerate(instructions):
        offsets = [0 if to is None else labels[to] - pc - 1 for to in jumps] or [0, 0]
        code += struct.pack("HBBI", op, *offsets, k)
    return code


def _addresses(proto: int, packet: bytes) -> tuple[str, str] | None:
    """(source, destination) of an IPv4 packet or an ARP message, read from its header."""
    if proto == ETH_P_IP and len(packet) >= 20:
        return socket.inet_ntoa(packet[12:16]), socket.inet_ntoa(packet[16:20])
    if proto == ETH_P_ARP and len(packet) >= 28:
        return socket.inet_ntoa(packet[14:18]), socket.inet_ntoa(packet[24:28])
    return None


class PacketCounter:
    """Counts the packets from or to a subnet on every interface of one namespace.

    Each packet is counted once, as it arrives on an interface (outgoing copies of a
    packet that also arrives elsewhere are left out); the kernel filter keeps the rest away
    and the addresses are checked again here, since packets queued before the filter was
    attached pass unfiltered.
    """

    def __init__(self, network: str, namespace: str | None = None) -> None:
        self.network = ipaddress.IPv4Network(network)
        self.namespace = namespace
        self.by_source: Counter[str] = Counter()
        self.samples: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._socket = in_netns(namespace, self._open)
        self._thread = threading.Thread(target=self._read, name=f"count-{namespace or 'host'}",
                                        daemon=True)
        self._thread.start()

    def _open(self) -> socket.socket:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
        code = _subnet_filter(self.network)
        buffer = ctypes.create_string_buffer(code)
        program = struct.pack("HL", len(code) // 8, ctypes.addressof(buffer))
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, program)
        sock.settimeout(0.2)
        return sock

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                packet, (ifname, proto, kind, *_) = self._socket.recvfrom(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            found = _addresses(proto, packet)
            if kind == PACKET_OUTGOING or found is None:
                continue
            if not any(ipaddress.IPv4Address(a) in self.network for a in found):
                continue
            with self._lock:
                self.by_source[found[0]] += 1
                if len(self.samples) < 5:
                    self.samples.append(f"{ifname}: {found[0]} -> {found[1]} (ethertype {proto:#06x})")

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.by_source.values())

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._socket.close()
