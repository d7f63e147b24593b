"""Shared fixtures: a daemon on simulated pins, a logged-in WebSocket client, the GPIO stand-in;
and strict skips (the helpers themselves are in tests/support.py)."""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory
from hypothesis import HealthCheck, settings
from websockets.asyncio.client import connect

from plugd.hardware.sim.gpio import StandInGPIO, install
from plugd.service.daemon import Daemon
from tests.support import NODE_ID, Client, running_daemon, sim_config

#: What the other test modules take from here.
__all__ = ["NODE_ID", "Client", "sim_config"]

# Tests check behaviour, never timings: no deadline, and no health check that a busy machine fails.
settings.register_profile("plugd", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("plugd")

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
    async with contextlib.AsyncExitStack() as started:
        async def start(**overrides: Any) -> Daemon:
            return await started.enter_async_context(
                running_daemon(sim_config(tmp_path / "state", **overrides), factory))
        yield start


@pytest.fixture
async def daemon(tmp_path: Path, factory: MockFactory) -> AsyncIterator[Daemon]:
    """A started daemon on simulated chips."""
    async with running_daemon(sim_config(tmp_path / "state"), factory) as started:
        yield started


@pytest.fixture
def gpio() -> Iterator[StandInGPIO]:
    """The RPi.GPIO stand-in, fresh."""
    gc.collect()  # a tm1637.TM1637 left over cleans its pins up when collected: not in here
    stand_in = install()
    stand_in.reset()
    yield stand_in
    stand_in.reset()


@pytest.fixture
async def client(daemon: Daemon) -> AsyncIterator[Client]:
    """A client logged in with the daemon's token file, as plugctl does."""
    async with connect(f"ws://127.0.0.1:{daemon.web.port}/ws") as ws:
        client = Client(ws)
        answer = await client.ask({"command": "login", "token": daemon.auth.cli_token})
        assert answer["success"], answer
        yield client
