"""A person's change goes before the mesh: while a command that changes something runs, the mesh
socket is left unread (its datagrams wait in the kernel, none lost), so a flood of datagrams
cannot delay a switch. Reading commands do not hold the mesh."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

from conftest import Client

from plugd.service.daemon import Daemon
from tests.support import send_udp, until

HELD_NODE = 3131  # not the test daemon's own id


def waiting_in_kernel(sock: socket.socket) -> bytes:
    try:
        return sock.recv(2048, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return b""


async def test_a_held_mesh_leaves_datagrams_in_the_kernel_and_takes_them_after(daemon: Daemon):
    datagram = f"{HELD_NODE}:Held&1:1.00".encode()
    with daemon.endpoint.held():
        send_udp(daemon.config.mesh.udp_port, datagram)
        for _ in range(100):  # turns of the loop, in which an unheld socket would be read
            await asyncio.sleep(0)
        assert waiting_in_kernel(daemon.endpoint.socket) == datagram
        assert HELD_NODE not in daemon.registry.peers
    await until(lambda: HELD_NODE in daemon.registry.peers, "the held datagram taken in")
    assert waiting_in_kernel(daemon.endpoint.socket) == b""


async def test_a_change_holds_the_mesh_and_a_read_does_not(daemon: Daemon, client: Client,
                                                           monkeypatch):
    held: list[bool] = []
    changing = daemon.changing

    @contextlib.contextmanager
    def recorded() -> Iterator[None]:
        with changing():
            held.append(True)
            yield

    monkeypatch.setattr(daemon, "changing", recorded)
    await client.ask({"command": "request_status"})
    await client.ask({"command": "request_things"})
    assert held == []
    answer = await client.ask({"command": "switch", "state": "on"})
    assert answer["command"] == "response_switch", answer
    assert held == [True]
    # After the change the socket is read again.
    send_udp(daemon.config.mesh.udp_port, f"{HELD_NODE}:After&1:0.00".encode())
    await until(lambda: HELD_NODE in daemon.registry.peers, "a datagram after the change")
