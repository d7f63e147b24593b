"""Soak: does a busy `plugd --simulate` hold its memory, file descriptors and tasks flat?

50 simulated ESP8266 nodes broadcast once a second each (a sender process, to
127.0.0.1 only) and 20 WebSocket clients behave like the page: they ask for the
things, the nodes and the history, read the pushes, ask again now and then,
and reconnect every minute or two. Every SAMPLE_EVERY seconds the daemon's
RSS (/proc/<pid>/status), open descriptors (/proc/<pid>/fd) and asyncio tasks
(`request_status`) are sampled. After a warm-up, a least-squares line is fitted
to each; a figure is flat when the line rises less than its allowance over the
run (growth that would take a plug down in weeks shows as a slope here).

`make soak` runs it for 30 minutes; `make bench` runs a short version (SHORT_MINUTES,
its warm-up a third of the run), which catches fast leaks and the pages' churn.

    python -m bench.soak [--minutes 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from bench import load
from bench.harness import PROCESS_CONFIG, QUIET, logged_errors
from bench.report import Row, run_alone
from plugd.service.daemon import HISTORY_POINTS
from tests.support import PlugdProcess

NAME = "Soak"
NODES = range(300_001, 300_051)
CLIENTS = 20
SAMPLE_EVERY = 30.0
#: Seconds before samples count towards the slope: the page's power history (one point a second)
#: grows the daemon's memory by design until it is full, and so do the answers to it.
WARMUP = HISTORY_POINTS + 60.0
#: The version `make bench` runs; its warm-up is a third of it (the history is a few KiB).
SHORT_MINUTES = 5.0
ASK_EVERY = (5.0, 15.0)  # a client asks again after this many seconds (uniform)
RECONNECT_AFTER = (30.0, 120.0)  # and reconnects after this many
#: A line rising by less than this over the run is flat (RSS: the larger of both).
RSS_ALLOWANCE_KIB, RSS_ALLOWANCE_SHARE = 2048, 0.03
FD_ALLOWANCE, TASK_ALLOWANCE = 2.0, 4.0


def rss_kib(pid: int) -> int:
    """Resident memory of `pid` in KiB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def open_fds(pid: int) -> int:
    """Open file descriptors of a process."""
    return len(os.listdir(f"/proc/{pid}/fd"))


@dataclass
class Traffic:
    """What the page-like clients did, summed over all of them."""

    answers: int = 0
    pushes: int = 0
    connects: int = 0
    failures: list[str] = field(default_factory=list)


async def ask(ws: Any, command: str, traffic: Traffic) -> dict[str, Any]:
    """Send a request and read until its answer, counting the pushes read on the way."""
    await ws.send(json.dumps({"command": command}))
    answer = "response_" + command.removeprefix("request_")
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 30))
        if message.get("command") in (answer, "error"):
            traffic.answers += 1
            return message
        traffic.pushes += 1


async def page(uri: str, until: float, traffic: Traffic, rng: random.Random) -> None:
    """One page: connect, ask, read pushes, ask again now and then, reconnect, until `until`."""
    while time.monotonic() < until:
        reconnect_at = min(until, time.monotonic() + rng.uniform(*RECONNECT_AFTER))
        try:
            async with connect(uri, open_timeout=30, max_size=None) as ws:
                traffic.connects += 1
                while time.monotonic() < reconnect_at:
                    for command in ("request_things", "request_nodes", "request_history"):
                        await ask(ws, command, traffic)
                    ask_at = min(reconnect_at, time.monotonic() + rng.uniform(*ASK_EVERY))
                    while (left := ask_at - time.monotonic()) > 0:
                        try:
                            await asyncio.wait_for(ws.recv(), left)
                            traffic.pushes += 1
                        except TimeoutError:
                            break
        except Exception as err:  # refused, timed out, or closed by the daemon: counted
            traffic.failures.append(f"{type(err).__name__}: {err}")
            await asyncio.sleep(1.0)


@dataclass(frozen=True)
class Sample:
    """One soak measurement: RSS, descriptors and tasks at a time."""
    at: float  # seconds since the start
    rss_kib: int
    fds: int
    tasks: int


async def status(uri: str) -> dict[str, Any]:
    """The daemon's `request_status` answer, over a connection of its own."""
    async with connect(uri, open_timeout=30) as ws:
        return await ask(ws, "request_status", Traffic())


async def soak(uri: str, pid: int, seconds: float) -> tuple[list[Sample], Traffic, dict[str, Any]]:
    """Nodes, pages and connections for `seconds`, sampling the daemon every minute."""
    traffic = Traffic()
    began = time.monotonic()
    until = began + seconds
    rng = random.Random(2390)
    pages = [asyncio.create_task(page(uri, until, traffic, random.Random(rng.random())))
             for _ in range(CLIENTS)]
    samples: list[Sample] = []
    try:
        while True:
            now = time.monotonic()
            tasks = (await status(uri))["tasks"]
            samples.append(Sample(now - began, rss_kib(pid), open_fds(pid), tasks))
            print(f"soak: {samples[-1]}", file=sys.stderr, flush=True)
            if now + SAMPLE_EVERY > until:
                break
            await asyncio.sleep(max(0.0, now + SAMPLE_EVERY - time.monotonic()))
        await asyncio.gather(*pages)
        final = await status(uri)
    finally:
        for task in pages:
            task.cancel()
        await asyncio.gather(*pages, return_exceptions=True)
    return samples, traffic, final


def growth(points: list[tuple[float, float]]) -> float:
    """Rise of the least-squares line over the span of `points`."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    if len(points) < 3 or max(xs) == min(xs):
        raise RuntimeError(f"too few samples after the warm-up to fit a slope ({len(points)})")
    slope, _ = statistics.linear_regression(xs, ys)
    return slope * (max(xs) - min(xs))


def warmup(seconds: float) -> float:
    """Seconds of a run of `seconds` before its samples count: WARMUP, or a third of a run too
    short to leave ten samples after it."""
    return WARMUP if seconds >= WARMUP + 10 * SAMPLE_EVERY else seconds / 3


def curve(samples: list[Sample], every: float = 300.0) -> str:
    """RSS at minutes 0, 5, 10, ...: the sample nearest each mark, in MB."""
    marks = [k * every for k in range(round(samples[-1].at / every) + 1)]
    nearest = [min(samples, key=lambda s, m=m: abs(s.at - m)) for m in marks]
    return ", ".join(f"{m / 60:g} min {s.rss_kib * 1024 / 1e6:.1f}"
                     for m, s in zip(marks, nearest, strict=True))


def verdicts(samples: list[Sample], warm: float) -> list[Row]:
    """Whether RSS, descriptors and tasks stayed flat after the warm-up."""
    late = [s for s in samples if s.at >= warm]
    rows = []
    for label, values, allowance, unit in (
            ("RSS", [(s.at, s.rss_kib) for s in late],
             max(RSS_ALLOWANCE_KIB, RSS_ALLOWANCE_SHARE * statistics.mean(s.rss_kib for s in late)),
             "KiB"),
            ("open fds", [(s.at, s.fds) for s in late], FD_ALLOWANCE, ""),
            ("asyncio tasks", [(s.at, s.tasks) for s in late], TASK_ALLOWANCE, "")):
        rise = growth(values)
        ys = [v for _, v in values]
        span_h = (values[-1][0] - values[0][0]) / 3600
        unit = f" {unit}" if unit else ""
        rows.append(Row(NAME, f"{label}: fitted rise after the warm-up",
                        f"{rise:+.1f}{unit} over {span_h * 60:.0f} min "
                        f"({rise / span_h:+.1f}{unit}/h; min {min(ys)}, max {max(ys)}): "
                        f"{'flat' if rise < allowance else 'NOT FLAT'}",
                        f"< {allowance:.0f}{unit}", rise < allowance))
    return rows


def run(minutes: float = SHORT_MINUTES) -> list[Row]:
    """The soak's rows: the short version for `make bench`, 30 minutes for `make soak`."""
    seconds = minutes * 60.0
    warm = warmup(seconds)
    if seconds < warm + 5 * SAMPLE_EVERY:
        raise ValueError(f"a soak needs more than {(warm + 5 * SAMPLE_EVERY) / 60:g} minutes: "
                         f"the first {warm / 60:g} are warm-up")
    with tempfile.TemporaryDirectory(prefix="plugd-soak-") as tmp:
        plug = PlugdProcess(Path(tmp), *QUIET, config=PROCESS_CONFIG)
        assert plug.proc is not None
        try:
            with load.Sender(plug.udp, NODES, count=int(len(NODES) * (seconds + 120)),
                             rate=len(NODES), max_seconds=seconds + 120) as sender:
                samples, traffic, final = asyncio.run(
                    soak(f"ws://127.0.0.1:{plug.http}/ws", plug.proc.pid, seconds))
                senders_lasted = sender.running
        finally:
            code = plug.stop()
        errors = logged_errors(plug.log)
    first, last = samples[0], samples[-1]
    counters = final["counters"]
    return [
        *verdicts(samples, warm),
        Row(NAME, "run", f"{minutes:g} min, {len(samples)} samples every {SAMPLE_EVERY:g} s "
                         f"(first {warm:g} s are warm-up); {len(NODES)} nodes 1/s each, "
                         f"{CLIENTS} page-like clients"),
        Row(NAME, "RSS curve (MB)", curve(samples)),
        Row(NAME, "first / last sample",
            f"RSS {first.rss_kib} / {last.rss_kib} KiB, fds {first.fds} / {last.fds}, "
            f"tasks {first.tasks} / {last.tasks}"),
        Row(NAME, "clients", f"{traffic.answers:,} answers, {traffic.pushes:,} pushes, "
                             f"{traffic.connects} connections, {len(traffic.failures)} failures"
            + (f" (first: {traffic.failures[0]})" if traffic.failures else ""),
            "0 failures", not traffic.failures),
        Row(NAME, "daemon at the end",
            f"{final['nodesOnline']} nodes online, {counters['accepted']:,} datagrams accepted, "
            f"{counters['invalid']} invalid, kernel drops {final['kernelDrops']}"),
        Row(NAME, "sender lasted the run", str(senders_lasted), "True", senders_lasted),
        Row(NAME, "errors logged by the daemon", str(errors), "0", errors == 0),
        Row(NAME, "exit code after SIGTERM", str(code), "0", code == 0),
    ]


def main() -> None:
    """`python -m bench.soak`: the soak alone."""
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    args = parser.parse_args()
    run_alone(lambda: run(args.minutes))


if __name__ == "__main__":
    main()
