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

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import load
from bench.harness import accounted, logged_errors
from bench.report import Row, run_alone
from plugd.service.config import MeshConfig
from tests.support import PlugdProcess, wait_for

NAME = "Footprint"
PACKETS = 1_000_000
NODES = range(300_001, 310_001)  # 10,000 spoofed node ids
RATE = 20_000  # datagrams/s: the ingest target
TARGET_MB = 40
MAX_NODES = MeshConfig().max_nodes  # the default, which the daemon runs with here
IDLE_SECONDS = 10.0  # before the flood: does memory grow with time alone?
#: The daemon's sockets on loopback only, nothing from the LAN reaches it; the default interval.
CONFIG = {"mesh": {"bind": "127.0.0.1"}}


def memory_mb(pid: int, field: str = "VmRSS") -> float:
    """A memory figure of a process from /proc/<pid>/status, in MB (10^6 bytes)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError(f"no {field} for process {pid}")


def status(plug: PlugdProcess) -> dict[str, Any]:
    """The daemon's `request_status` answer."""
    with plug.session(login=False) as ws:
        return ws.ask({"command": "request_status"})


def settled_status(plug: PlugdProcess, before: dict[str, Any], sent: int) -> dict[str, Any]:
    """The daemon's status once every datagram sent since `before` is accounted for."""
    def settled() -> dict[str, Any] | None:
        now = status(plug)
        return now if accounted(before, now, sent) else None
    found: dict[str, Any] = wait_for(settled, f"the daemon to account for {sent:,} datagrams", 120)
    return found


def measure() -> list[Row]:
    """RSS of a `plugd --simulate` process under a flood of node ids."""
    with tempfile.TemporaryDirectory(prefix="plugd-bench-") as tmp:
        plug = PlugdProcess(Path(tmp), name="Bench", config=CONFIG)
        try:
            assert plug.proc is not None
            pid = plug.proc.pid
            at_start = memory_mb(pid)
            time.sleep(IDLE_SECONDS)  # the span measured: growth with time alone
            idle = memory_mb(pid)
            before = status(plug)
            with load.Sender(plug.udp, NODES, count=PACKETS, rate=RATE,
                             max_seconds=PACKETS / RATE * 1.5) as sender:
                sent = sender.wait()
            settled = settled_status(plug, before, sent.count)
            after, peak = memory_mb(pid), memory_mb(pid, "VmHWM")
        except Exception:
            print(plug.tail(), file=sys.stderr)
            raise
        finally:
            exit_code = plug.stop()
        errors = logged_errors(plug.log)

    counters = settled["counters"]
    return [
        Row(NAME, f"RSS after {sent.count:,} datagrams from {len(NODES):,} node ids",
            f"{after:.1f} MB", f"< {TARGET_MB} MB", after < TARGET_MB),
        Row(NAME, f"RSS after start / after {IDLE_SECONDS:g} s idle / peak (VmHWM)",
            f"{at_start:.1f} MB / {idle:.1f} MB / {peak:.1f} MB "
            f"(idle growth {(idle - at_start) / IDLE_SECONDS * 60:+.1f} MB/min)"),
        Row(NAME, "nodes kept by the registry", f"{settled['nodesKnown']}",
            f"≤ max_nodes ({MAX_NODES})", settled["nodesKnown"] <= MAX_NODES),
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
