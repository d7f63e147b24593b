"""Shared fixtures: free ports, a daemon on simulated pins, and a WebSocket client."""

from __future__ import annotations

import asyncio
import gc
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from gpiozero.pins.mock import MockFactory
from websockets.asyncio.client import ClientConnection, connect

from plugd.service.config import Config, parse
from plugd.service.daemon import Daemon
from plugd.hardware.sim.gpio import StandInGPIO, install

# Tests check behaviour, never timings: no deadline, and no health check that a busy machine fails.
settings.register_profile("plugd", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("plugd")

NODE_ID = 4242
#: What the daemon sends unasked; a request's answer is the first other message.
PUSHES = ("thing_update", "node_update", "event")


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    """Poll `check` until it gives something true (for processes of their own, off any loop)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


async def until(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """`wait_for` for tests on the event loop: polls without blocking the daemon under test."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (result := check()):
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
    return result


def sim_config(state_dir: Path, **overrides: Any) -> Config:
    """A simulated plug on loopback with ports of its own."""
    values = {"state.dir": str(state_dir), "http.port": 0, "http.bind": "127.0.0.1",
              "mesh.udp_port": free_port(), "mesh.broadcast": ["127.255.255.255"],
              "node.id": NODE_ID, "node.name": "TestPlug", "mdns.enabled": False}
    values.update(overrides)
    return parse("", values, simulate=True)


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    """A clean mock pin factory (gpiozero's mock factories share one table of pins)."""
    mock = MockFactory()
    mock.reset()
    yield mock
    mock.reset()


@pytest.fixture
def make_daemon(tmp_path: Path, factory: MockFactory) -> Callable[..., Awaitable[Daemon]]:
    """Start a daemon on simulated chips with configuration overrides; the test stops it."""

    async def start(**overrides: Any) -> Daemon:
        d = Daemon(sim_config(tmp_path / "state", **overrides), pin_factory=factory)
        await d.start()
        return d
    return start


@pytest.fixture
async def daemon(tmp_path: Path, factory: MockFactory) -> AsyncIterator[Daemon]:
    d = Daemon(sim_config(tmp_path / "state"), pin_factory=factory)
    await d.start()
    try:
        yield d
    finally:
        await d.stop()


@pytest.fixture
def gpio() -> Iterator[StandInGPIO]:
    """The RPi.GPIO stand-in, fresh."""
    gc.collect()  # a tm1637.TM1637 left over cleans its pins up when collected: not in here
    stand_in = install()
    stand_in.reset()
    yield stand_in
    stand_in.reset()


class Client:
    """A WebSocket client that sends a request and waits for its answer."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.pushed: list[dict[str, Any]] = []

    async def ask(self, request: dict[str, Any] | str, answer: str | None = None) -> dict[str, Any]:
        await self.ws.send(request if isinstance(request, str) else json.dumps(request))
        while True:
            message = json.loads(await self.ws.recv())
            if message["command"] in PUSHES:
                self.pushed.append(message)
                continue
            if answer is None or message["command"] in (answer, "error"):
                return message

    async def next_push(self, command: str) -> dict[str, Any]:
        while True:
            message = json.loads(await self.ws.recv())
            if message["command"] == command:
                return message


@pytest.fixture
async def client(daemon: Daemon) -> AsyncIterator[Client]:
    """A client logged in with the daemon's token file, as plugctl does."""
    async with connect(f"ws://127.0.0.1:{daemon.web.port}/ws") as ws:
        client = Client(ws)
        answer = await client.ask({"command": "login", "token": daemon.auth.cli_token})
        assert answer["success"], answer
        yield client


def send_udp(port: int, data: bytes) -> None:
    """A datagram to the daemon, from an unbound socket (never one bound to its port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(data, ("127.0.0.1", port))


def listener(port: int, timeout: float = 15.0) -> socket.socket:
    """A socket on the mesh port beside the daemons (SO_REUSEADDR): hears the loopback
    broadcasts, as a node on the LAN or a capturing attacker would."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("0.0.0.0", port))
    sock.settimeout(timeout)
    return sock
