"""Footprint: the daemon's resident memory with its outlets loaded, after pages and floods.

A plug runs on a small board beside everything else. The real `plugd` command
runs as a child process (its own interpreter, as deployed) with the HTTP server
and the MQTT outlet connected to a real mosquitto (Debian's, on a port of its
own); its RSS is read from /proc. Then, in turn: it idles (growth with time
alone, a leak in a timer or thread, is told apart from growth with load);
200 and then 1,000 WebSocket pages come and go, each asking for the things, the
nodes and the history as the page does; and a flood of datagrams from 10,000
spoofed node ids arrives, which the bounded registry (`mesh.max_nodes`) must
absorb. Last it idles again, so memory that only a burst's leftovers hold (and
that must not creep) shows.

The flood is paced at the ingest target rate, so the daemon can take in the
packets rather than the kernel dropping most of them unseen.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from bench import load
from bench.harness import PROCESS_CONFIG, QUIET, accounted, logged_errors
from bench.report import Row, run_alone
from plugd.service.config import MeshConfig
from tests.broker import Broker, have_mosquitto
from tests.support import PlugdProcess, merged, wait_for

NAME = "Footprint"
PACKETS = 1_000_000
NODES = range(300_001, 310_001)  # 10,000 spoofed node ids
RATE = 20_000  # datagrams/s: the ingest target
TARGET_MB = 48
MAX_NODES = MeshConfig().max_nodes  # the default, which the daemon runs with here
IDLE_SECONDS = 10.0  # before the load: does memory grow with time alone?
AFTER_SECONDS = 30.0  # after it: do a burst's leftovers creep?
PAGES = (200, 1000)  # pages that come and go, in two rounds
AT_ONCE = 100  # of them open at the same time
#: The daemon's sockets on loopback only, nothing from the LAN reaches it; room for every page.
CONFIG = PROCESS_CONFIG


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


async def page(uri: str) -> None:
    """One page's visit: connect, ask what the page asks at load, read the answers, leave."""
    async with connect(uri, open_timeout=30, max_size=None) as ws:
        for command in ("request_things", "request_nodes", "request_history"):
            await ws.send(json.dumps({"command": command}))
            answer = "response_" + command.removeprefix("request_")
            while json.loads(await asyncio.wait_for(ws.recv(), 30)).get("command") != answer:
                pass


async def pages(uri: str, count: int) -> None:
    """`count` pages, AT_ONCE of them open at a time."""
    gate = asyncio.Semaphore(AT_ONCE)

    async def one() -> None:
        async with gate:
            await page(uri)
    await asyncio.gather(*(one() for _ in range(count)))


def closed_everywhere(plug: PlugdProcess) -> dict[str, Any]:
    """The daemon's status once only the asking connection is left."""
    def alone() -> dict[str, Any] | None:
        now = status(plug)
        return now if now.get("clients", 1) <= 1 else None
    found: dict[str, Any] = wait_for(alone, "the daemon to drop the pages that left", 60)
    return found


def measure(broker_port: int) -> list[Row]:
    """RSS of a `plugd --simulate` process with its outlets, through pages and a flood."""
    config = merged(CONFIG, {"mqtt": {"host": "127.0.0.1", "port": broker_port}})
    rss: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="plugd-bench-") as tmp:
        plug = PlugdProcess(Path(tmp), *QUIET, name="Bench", config=config)
        try:
            assert plug.proc is not None
            pid = plug.proc.pid
            rss["start"] = memory_mb(pid)
            time.sleep(IDLE_SECONDS)  # the span measured: growth with time alone
            rss["idle"] = memory_mb(pid)
            uri = f"ws://127.0.0.1:{plug.http}/ws"
            for count in PAGES:
                asyncio.run(pages(uri, count))
                closed_everywhere(plug)
                rss[f"{count} pages"] = memory_mb(pid)
            before = status(plug)
            with load.Sender(plug.udp, NODES, count=PACKETS, rate=RATE,
                             max_seconds=PACKETS / RATE * 1.5) as sender:
                sent = sender.wait()
            settled = settled_status(plug, before, sent.count)
            rss["flood"] = memory_mb(pid)
            time.sleep(AFTER_SECONDS)  # the span measured: a burst's leftovers, creeping or not
            rss["after"], peak = memory_mb(pid), memory_mb(pid, "VmHWM")
        except Exception:
            print(plug.tail(), file=sys.stderr)
            raise
        finally:
            exit_code = plug.stop()
        errors = logged_errors(plug.log)

    counters = settled["counters"]
    worst = max(rss["after"], rss["flood"], *(rss[f"{n} pages"] for n in PAGES))
    return [
        Row(NAME, f"RSS with HTTP and MQTT after {PAGES[0]:,} + {PAGES[1]:,} pages came and went "
                  f"and {sent.count:,} datagrams from {len(NODES):,} node ids (the largest)",
            f"{worst:.1f} MB", f"< {TARGET_MB} MB", worst < TARGET_MB),
        Row(NAME, "RSS after start / idle / pages / flood / idle again / peak (VmHWM)",
            f"{rss['start']:.1f} / {rss['idle']:.1f} / "
            + " / ".join(f"{rss[f'{n} pages']:.1f}" for n in PAGES)
            + f" / {rss['flood']:.1f} / {rss['after']:.1f} / {peak:.1f} MB"),
        Row(NAME, "RSS growth at rest, before and after the load",
            f"{(rss['idle'] - rss['start']) / IDLE_SECONDS * 60:+.1f} MB/min over "
            f"{IDLE_SECONDS:g} s; {(rss['after'] - rss['flood']) / AFTER_SECONDS * 60:+.1f} "
            f"MB/min over {AFTER_SECONDS:g} s"),
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
    """The footprint rows, with a mosquitto of the benchmark's own."""
    if not have_mosquitto():
        return [Row(NAME, "run", "mosquitto is not installed (apt install mosquitto)",
                    "runs", False)]
    with tempfile.TemporaryDirectory(prefix="plugd-bench-mqtt-") as directory:
        broker = Broker(Path(directory))
        broker.start()
        try:
            return measure(broker.port)
        finally:
            broker.stop()


if __name__ == "__main__":
    run_alone(run)
