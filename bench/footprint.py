"""Footprint: the daemon's resident memory after start and after a flood of spoofed nodes.

A plug runs on a small board beside everything else, and anyone on the LAN
can send datagrams with made-up node ids; the registry is bounded
(`mesh.max_nodes`), so memory must stay flat however many ids show up. The
real `plugd` command runs as a child process (its own interpreter, as
deployed); its RSS is read from /proc, and what it counted from its own
status over the WebSocket API.

The flood is paced at the ingest target rate, so the daemon can take in the
packets rather than the kernel dropping most of them unseen. Before it, the
daemon idles a few seconds, so growth with time alone (a leak in a timer or
thread) is told apart from growth with packets.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import harness, load
from bench.report import Row, run_alone
from plugd.ctl import ask
from plugd.service.config import MeshConfig
from tests.support import free_port, stop_process

NAME = "Footprint"
PACKETS = 1_000_000
NODES = range(300_001, 310_001)  # 10,000 spoofed node ids
RATE = 20_000  # datagrams/s: the ingest target
TARGET_MB = 40
MAX_NODES = MeshConfig().max_nodes  # the default, which the daemon runs with here
IDLE_SECONDS = 10.0  # before the flood: does memory grow with time alone?
START_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0
#: The daemon's sockets on loopback only: nothing from the LAN reaches it.
CONFIG = '[mesh]\nbind = "127.0.0.1"\n[http]\nbind = "127.0.0.1"\n'


def plugd_command() -> list[str]:
    """The installed `plugd` next to this interpreter, else the module."""
    script = Path(sys.executable).with_name("plugd")
    return [str(script)] if script.exists() else [sys.executable, "-m", "plugd"]


def memory_mb(pid: int, field: str = "VmRSS") -> float:
    """A memory figure of a process from /proc/<pid>/status, in MB (10^6 bytes)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError(f"no {field} for process {pid}")


def wait_listening(process: subprocess.Popen[bytes], port: int) -> None:
    """Until the daemon's HTTP port takes a connection (it opens it last but the timers)."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"plugd exited at start with code {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"plugd did not open its HTTP port within {START_TIMEOUT:g} s")


def settled_status(http_port: int) -> dict[str, Any]:
    """The daemon's status once its received counter stops moving (its queue is drained)."""
    url = f"ws://127.0.0.1:{http_port}/ws"
    status = ask(url, {"command": "request_status"}, 5.0, [])
    for _ in range(20):
        time.sleep(0.5)
        latest = ask(url, {"command": "request_status"}, 5.0, [])
        if latest["counters"]["received"] == status["counters"]["received"]:
            return latest
        status = latest
    return status


def logged_errors(log: Path) -> int:
    """ERROR lines in the daemon's stderr (plugd logs as `LEVEL name: message`)."""
    return sum(1 for line in log.read_text(errors="replace").splitlines()
               if line.startswith(("ERROR ", "CRITICAL ")))


@contextmanager
def plugd_process(tmp: Path, udp_port: int, http_port: int) -> Iterator[subprocess.Popen[bytes]]:
    """`plugd --simulate` on our ports, listening; killed on the way out if still running.

    Its stderr goes to tmp/plugd.log; on an error here, the end of it is shown.
    """
    config = tmp / "plugd.toml"
    config.write_text(CONFIG)
    command = [*plugd_command(), "--simulate", "--config", str(config),
               "--state-dir", str(tmp / "state"), "--udp-port", str(udp_port),
               "--http-port", str(http_port), "--node-id", str(harness.NODE_ID),
               "--node-name", "Bench", "--broadcast", "127.255.255.255"]
    with open(tmp / "plugd.log", "wb") as log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=log)
    try:
        wait_listening(process, http_port)
        yield process
    except Exception:
        print((tmp / "plugd.log").read_text(errors="replace")[-2000:], file=sys.stderr)
        raise
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def measure() -> list[Row]:
    """RSS of a `plugd --simulate` process under a flood of node ids."""
    udp_port, http_port = free_port(), free_port(socket.SOCK_STREAM)
    with tempfile.TemporaryDirectory(prefix="plugd-bench-") as tmp:
        with plugd_process(Path(tmp), udp_port, http_port) as process:
            at_start = memory_mb(process.pid)
            time.sleep(IDLE_SECONDS)
            idle = memory_mb(process.pid)
            with load.Sender(udp_port, NODES, count=PACKETS, rate=RATE,
                             max_seconds=PACKETS / RATE * 1.5) as sender:
                sent = sender.wait()
            status = settled_status(http_port)
            after, peak = memory_mb(process.pid), memory_mb(process.pid, "VmHWM")
            exit_code = stop_process(process, STOP_TIMEOUT)
        errors = logged_errors(Path(tmp, "plugd.log"))

    counters = status["counters"]
    return [
        Row(NAME, f"RSS after {sent.count:,} datagrams from {len(NODES):,} node ids",
            f"{after:.1f} MB", f"< {TARGET_MB} MB", after < TARGET_MB),
        Row(NAME, f"RSS after start / after {IDLE_SECONDS:g} s idle / peak (VmHWM)",
            f"{at_start:.1f} MB / {idle:.1f} MB / {peak:.1f} MB "
            f"(idle growth {(idle - at_start) / IDLE_SECONDS * 60:+.1f} MB/min)"),
        Row(NAME, "nodes kept by the registry", f"{status['nodesKnown']}",
            f"≤ max_nodes ({MAX_NODES})", status["nodesKnown"] <= MAX_NODES),
        Row(NAME, "datagrams counted by the daemon",
            f"{counters['received']:,} of {sent.count:,} sent at {sent.rate:,.0f}/s "
            f"({counters['accepted']:,} accepted, "
            f"{counters['dropped_full']:,} dropped: table full, "
            f"{counters['evicted']:,} evicted, {counters['invalid']} invalid)"),
        Row(NAME, "errors logged by the daemon", str(errors), "0", errors == 0),
        Row(NAME, "exit code after SIGTERM", "killed" if exit_code is None else str(exit_code),
            "0", exit_code == 0),
    ]


def run() -> list[Row]:
    """The footprint rows."""
    return measure()


if __name__ == "__main__":
    run_alone(run)
