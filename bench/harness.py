"""What the benchmarks share: a daemon on mock pins, a plugd process's configuration, percentiles.

The daemon is the real `plugd.service.daemon.Daemon` (mesh socket, recipes, web
server, timers) with gpiozero's MockFactory for pins, a throw-away state
directory, and every socket on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpiozero.pins.mock import MockFactory

from bench.report import Row
from plugd.doors.api import Api
from plugd.service.config import Config
from plugd.service.daemon import Daemon
from tests import support
from tests.support import sim_config

#: The daemon's own node, as the benchmarks configure it.
NODE_ID = support.NODE_ID
#: After stop, timers the daemon left behind get this long to fire while errors are counted.
SETTLE = 0.3
#: Asked of the kernel for every measured receive socket (capped by net.core.rmem_max).
RECEIVE_BUFFER = 4 << 20
#: The configuration of the benchmarks that run `plugd --simulate` as a process of its own
#: (tests.support.PlugdProcess): everything on loopback, a broadcast and a round of pushes
#: every second, and room for every reader, all of which come from one address.
PROCESS_CONFIG = {"mesh": {"interval": 1.0, "bind": "127.0.0.1"},
                  "http": {"max_connections": 2048, "max_connections_per_client": 2048}}
#: Its log level: warnings and errors only, which the benchmarks count.
QUIET = ("--log-level", "warning")


#: The small board's share of one core, for the benchmarks that run the daemon limited.
QUOTA = 0.25
#: The CPU quota's period, in microseconds (the kernel's default).
QUOTA_PERIOD = 100_000


@dataclass(frozen=True)
class Limit:
    """A way to run a process as on a smaller board: its name and the command that wraps it
    (it execs the process, which keeps its pid)."""

    label: str
    prefix: tuple[str, ...]


@contextmanager
def cpu_limits() -> Iterator[tuple[list[Limit], list[str]]]:
    """The limits this machine allows beside full speed: pinned to one core (`taskset -c 0`)
    and a quarter of a core (`systemd-run --scope -p CPUQuota=25%`, else a cgroup of the
    bench's own with its quota written directly, v2's cpu.max or v1's cpu.cfs_quota_us).
    Yields them and, for each that cannot be had here, why; the cgroup goes on the way out."""
    limits = [Limit("full speed", ())]
    missing = []
    if shutil.which("taskset"):
        limits.append(Limit("one core (taskset -c 0)", ("taskset", "-c", "0")))
    else:
        missing.append("one core: no taskset")
    quarter = f"{QUOTA:.0%} of a core"
    scope = ("systemd-run", "--scope", "--quiet", "-p", f"CPUQuota={QUOTA:.0%}", "--")
    made: Path | None = None
    if shutil.which("systemd-run") and subprocess.run(
            [*scope, "true"], capture_output=True, check=False).returncode == 0:
        limits.append(Limit(f"{quarter} (systemd-run CPUQuota)", scope))
    else:
        made, why = _quota_cgroup()
        if made is not None:
            limits.append(Limit(f"{quarter} (cgroup {why})",
                                ("sh", "-c", 'echo $$ > "$0" && exec "$@"',
                                 str(made / "cgroup.procs"))))
        else:
            missing.append(f"{quarter}: systemd-run cannot make a scope here, and {why}")
    try:
        yield limits, missing
    finally:
        if made is not None:
            with contextlib.suppress(OSError):
                made.rmdir()


def _quota_cgroup() -> tuple[Path | None, str]:
    """A cgroup with a quarter of a core: its directory and its kind, or None and why not."""
    quota = round(QUOTA * QUOTA_PERIOD)
    v2, v1 = Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/cpu")
    name = f"plugd-bench-{os.getpid()}"
    try:
        controllers = v2 / "cgroup.controllers"
        if controllers.exists() and "cpu" in controllers.read_text().split():
            (v2 / "cgroup.subtree_control").write_text("+cpu")
            made = v2 / name
            made.mkdir()
            (made / "cpu.max").write_text(f"{quota} {QUOTA_PERIOD}")
            return made, "v2 cpu.max"
        if (v1 / "cpu.cfs_quota_us").exists():
            made = v1 / name
            made.mkdir()
            (made / "cpu.cfs_period_us").write_text(str(QUOTA_PERIOD))
            (made / "cpu.cfs_quota_us").write_text(str(quota))
            return made, "v1 cpu.cfs_quota_us"
    except OSError as err:
        return None, f"no cgroup could be made ({err})"
    return None, "no cgroup CPU controller is mounted"


#: The niceness the latency benchmarks run at when they may (as root): other work on a shared
#: machine then disturbs what is measured less. Children inherit it.
NICENESS = -10


@contextmanager
def raised_priority() -> Iterator[str]:
    """Run this thread, and the processes and threads it starts, at NICENESS if allowed.
    Yields what was done, for the report."""
    before = os.getpriority(os.PRIO_PROCESS, 0)
    try:
        os.setpriority(os.PRIO_PROCESS, 0, NICENESS)
    except OSError:
        yield f"at niceness {before} (not allowed to raise it)"
        return
    try:
        yield f"at niceness {NICENESS}, servers and readers alike"
    finally:
        os.setpriority(os.PRIO_PROCESS, 0, before)


def enlarge_receive_buffer(sock: Any) -> int:
    """Ask for RECEIVE_BUFFER bytes of receive queue; return what the kernel granted."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile: the smallest value with `fraction` of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def daemon_config(state_dir: str, udp_port: int, **overrides: Any) -> Config:
    """The benchmark daemon's configuration: simulated, our ports, every socket on loopback;
    `overrides` as dotted keys ("mqtt.host")."""
    return sim_config(Path(state_dir), **{"mesh.udp_port": udp_port, "mesh.bind": "127.0.0.1",
                                          "node.name": "Bench", **overrides})


def accounted(before: dict[str, Any], now: dict[str, Any], sent: int) -> bool:
    """Whether two `request_status` answers show every datagram sent between them taken in by
    the daemon or dropped by the kernel (its queue overflowed): nothing is queued any more."""
    took = now["counters"]["received"] - before["counters"]["received"]
    dropped = (now["kernelDrops"] or 0) - (before["kernelDrops"] or 0)
    return took + dropped >= sent


def logged_errors(log: Path) -> int:
    """ERROR and CRITICAL lines in a plugd process's log (plugd logs as `LEVEL name: message`)."""
    return sum(line.startswith(("ERROR", "CRITICAL"))
               for line in log.read_text(errors="replace").splitlines())


class ErrorCount(logging.StreamHandler):
    """Shows the daemon's warnings and errors on stderr, and counts the errors.

    A figure measured while the daemon logs errors is suspect, so the count is reported.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self.setLevel(logging.WARNING)
        self.setFormatter(logging.Formatter("plugd under bench: %(levelname)s %(name)s: "
                                            "%(message)s"))
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        """Show the record, and count it if it is an error."""
        if record.levelno >= logging.ERROR:
            self.count += 1
        super().emit(record)


@dataclass(frozen=True)
class Running:
    """A daemon started for a benchmark, its pins and its error count."""
    daemon: Daemon
    pins: MockFactory
    errors: ErrorCount

    def error_row(self, benchmark: str) -> Row:
        """Whether the daemon logged errors during the benchmark, its stop included."""
        return Row(benchmark, "errors logged by the daemon", str(self.errors.count), "0",
                   self.errors.count == 0)


@asynccontextmanager
async def running_daemon(udp_port: int, **overrides: Any) -> AsyncIterator[Running]:
    """A started Daemon on this event loop, stopped on the way out.

    The daemon takes over SIGINT and SIGTERM; when one arrives, the benchmark
    is cancelled and KeyboardInterrupt raised, so Ctrl-C still ends the run.
    Errors it logs, until it has stopped, are counted in `errors`.
    """
    errors = ErrorCount()
    logger = logging.getLogger("plugd")
    logger.addHandler(errors)
    with tempfile.TemporaryDirectory(prefix="plugd-bench-") as state_dir:
        factory = MockFactory()
        try:
            async with support.running_daemon(daemon_config(state_dir, udp_port, **overrides),
                                              factory) as daemon:
                body = asyncio.current_task()
                assert body is not None
                stopped = asyncio.create_task(daemon.run(), name="bench-stop-watch")
                stopped.add_done_callback(lambda task: task.cancelled() or body.cancel())
                try:
                    yield Running(daemon, factory, errors)
                except asyncio.CancelledError:
                    if stopped.done() and not stopped.cancelled():
                        raise KeyboardInterrupt from None
                    raise
                finally:
                    stopped.cancel()
            await asyncio.sleep(SETTLE)
        finally:
            logger.removeHandler(errors)


async def save_recipe(daemon: Daemon, recipe: dict[str, Any]) -> None:
    """Add a recipe the way a page does, through the WebSocket API."""
    answer = await Api(daemon, "bench", trusted=True).handle(
        json.dumps({"command": "save_recipe", "recipe": recipe}))
    if not answer.get("success"):
        raise RuntimeError(f"the daemon refused recipe {recipe['name']!r}: {answer}")
