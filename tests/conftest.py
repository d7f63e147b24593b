"""Shared fixtures: free ports, a daemon on simulated pins, and a WebSocket client."""

from __future__ import annotations

import gc
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory
from hypothesis import HealthCheck, settings
from websockets.asyncio.client import ClientConnection, connect

from plugd.hardware.sim.gpio import StandInGPIO, install
from plugd.service.config import Config, parse
from plugd.service.daemon import Daemon
from tests.support import free_port

# Tests check behaviour, never timings: no deadline, and no health check that a busy machine fails.
settings.register_profile("plugd", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("plugd")

NODE_ID = 4242
#: In CI, and in `make test` as root, a skip is a failure: a harness that could not run proved
#: nothing. A developer without root may still skip, and is told why.
STRICT_SKIPS = os.environ.get("PLUGD_STRICT_SKIPS") == "1"


def _strict(report: pytest.CollectReport | pytest.TestReport) -> None:
    if STRICT_SKIPS and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped, a failure with PLUGD_STRICT_SKIPS=1: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A skipped test fails in strict mode."""
    outcome = yield
    _strict(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    """A module skipped whole fails in strict mode."""
    outcome = yield
    _strict(outcome.get_result())
#: What the daemon sends unasked; a request's answer is the first other message.
PUSHES = ("thing_update", "node_update", "event")


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
async def make_daemon(tmp_path: Path,
                      factory: MockFactory) -> AsyncIterator[Callable[..., Awaitable[Daemon]]]:
    """Start daemons on simulated chips with configuration overrides; each is stopped at the
    end (a test may stop one itself, to restart on the same state)."""
    started: list[Daemon] = []

    async def start(**overrides: Any) -> Daemon:
        d = Daemon(sim_config(tmp_path / "state", **overrides), pin_factory=factory)
        await d.start()
        started.append(d)
        return d
    yield start
    for d in started:
        await d.stop()


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
