"""A stand-alone ESP8266-format sensor node, written from the wire contract (PROTOCOL.md §2),
not from plugd's codec, so the mesh tests check plugd against the format rather than itself.

Like the firmware it takes its own IP address, sets the last octet to 255 and broadcasts
`<nodeId>:<nodeName>&1:<temperature>&2:<humidity>&3:<clock>` there every interval, on the
port it also listens on. The temperature is read from a file before every send, so a test
changes the sensor by writing the file. Every node it hears is written, as JSON, to the
nodes file: what the firmware keeps in its node list.

    python esp_node.py --id 2001 --name esp-living --ip 10.77.0.21 \\
        --temperature-file t.txt --nodes-file nodes.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import signal
import socket
import time
from datetime import datetime
from pathlib import Path
from typing import Any

PORT = 2390
TEMPERATURE, HUMIDITY, CLOCK = 1, 2, 3


def arduino_float(value: float) -> str:
    """As the Arduino `String(float)` prints: two decimals, no exponent."""
    return f"{value:.2f}"


def clock_text(now: datetime) -> str:
    """`H:MM:SS - D.M.YYYY`: hour, day and month unpadded."""
    return f"{now.hour}:{now.minute:02d}:{now.second:02d} - {now.day}.{now.month}.{now.year}"


def subnet_broadcast(address: str) -> str:
    """The firmware's broadcast address: its own with the last octet set to 255 (it assumes /24)."""
    return ".".join([*address.split(".")[:3], "255"])


def datagram(node_id: int, name: str, temperature: float, humidity: float, now: datetime) -> bytes:
    fields = [f"{node_id}:{name}", f"{TEMPERATURE}:{arduino_float(temperature)}",
              f"{HUMIDITY}:{arduino_float(humidity)}", f"{CLOCK}:{clock_text(now)}"]
    return "&".join(fields).encode("ascii")


def heard(data: bytes) -> tuple[int, str, dict[int, str]] | None:
    """Node id, name and raw thing values of a datagram, split the firmware's way: on `&`,
    each token cut at its first `:`. None when the first token has no node id."""
    tokens = [t for t in data.split(b"\0", 1)[0].decode("ascii", "replace").split("&") if t]
    if not tokens or ":" not in tokens[0]:
        return None
    node, _, name = tokens[0].partition(":")
    if not node.strip().isdigit():
        return None
    things = {}
    for token in tokens[1:]:
        thing, _, value = token.partition(":")
        if thing.strip().isdigit():
            things[int(thing)] = value
    return int(node), name, things


def write_atomically(path: Path, data: Any) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(temporary, path)


def read_temperature(path: Path, last: float) -> float:
    """The value in the file; the last one while the file is missing or half-written."""
    try:
        return float(path.read_text().strip())
    except (OSError, ValueError):
        return last


def run(args: argparse.Namespace) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    sock.bind(("0.0.0.0", args.port))
    target = (subnet_broadcast(args.ip), args.port)
    nodes: dict[str, dict[str, Any]] = {}
    temperature = read_temperature(args.temperature_file, 20.0)
    next_send = time.monotonic()
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    while not stopping:
        now = time.monotonic()
        if now >= next_send:
            temperature = read_temperature(args.temperature_file, temperature)
            with contextlib.suppress(OSError):  # the link is down: the firmware tries again
                sock.sendto(datagram(args.id, args.name, temperature, args.humidity, datetime.now()),
                            target)
            next_send = now + args.interval
        readable, _, _ = select.select([sock], [], [], max(0.0, next_send - time.monotonic()))
        if not readable:
            continue
        data, (address, _) = sock.recvfrom(512)
        packet = heard(data)
        if packet is None or packet[0] == args.id:
            continue
        node_id, name, things = packet
        # Each value stays until its thing is heard again, as the firmware's recipes keep it: a
        # datagram without values (a plugd's names datagram) takes none away.
        known = nodes.get(str(node_id), {}).get("things", {})
        nodes[str(node_id)] = {"name": name, "address": address, "things": {**known, **things}}
        if args.nodes_file is not None:
            write_atomically(args.nodes_file, nodes)
    sock.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--id", type=int, required=True, help="the node id (an ESP's chip id)")
    p.add_argument("--name", required=True)
    p.add_argument("--ip", required=True, help="this node's address; the broadcast goes to its x.y.z.255")
    p.add_argument("--port", type=int, default=PORT)
    p.add_argument("--interval", type=float, default=5.0, help="seconds between broadcasts")
    p.add_argument("--temperature-file", type=Path, required=True)
    p.add_argument("--humidity", type=float, default=45.0)
    p.add_argument("--nodes-file", type=Path, help="where the nodes heard are written")
    run(p.parse_args())


if __name__ == "__main__":
    main()
