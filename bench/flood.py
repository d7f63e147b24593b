"""Flood: does `plugd --simulate` stay in control while its mesh port is flooded?

A sender process blasts mixed traffic at 127.0.0.1 only: valid datagrams of
FLEET node ids (ESP8266 format), junk that no decoder can read, and
well-formed datagrams from random spoofed node ids, which the bounded registry
must refuse once full. Meanwhile a logged-in WebSocket client switches the
relay and times each `switch` to its answer, a page-like client counts the
`thing_update` pushes (one per thing each `[mesh] interval`), and the daemon's
RSS is sampled. The same switching runs first on the idle daemon; the flood's
p99 over the idle p99 is the figure.

    python -m bench.flood [--seconds 60] [--rate 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing
import os
import random
import signal
import socket
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.queues import SimpleQueue
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from bench import load
from bench.harness import (
    PROCESS_CONFIG,
    QUIET,
    accounted,
    cpu_limits,
    logged_errors,
    percentile,
)
from bench.report import Row, run_alone
from bench.soak import rss_kib
from tests.support import Client, PlugdProcess, until

NAME = "Flood"
RATE = 20_000  # datagrams a second
FLEET = range(400_001, 400_101)  # the valid senders
SHARES = (0.5, 0.25, 0.25)  # valid, junk, spoofed
PREBUILT = 20_000
IDLE_SWITCHES = 200
#: The runs on a smaller board's CPU: seconds of flood and idle switches.
LIMITED_SECONDS, LIMITED_IDLE_SWITCHES = 20.0, 100
GAP = 0.05  # seconds between two switches
ANSWER_TIMEOUT = 10.0  # a switch unanswered this long counts as missed
WARMUP = 2.0  # seconds of flood before switching counts
RSS_EVERY = 0.5
PUSH_INTERVAL = 1.0  # [mesh] interval in PROCESS_CONFIG
TARGET_RATIO = 2.0


def junk(rng: random.Random) -> bytes:
    """A datagram the decoder must refuse whole (no usable node header)."""
    return rng.choice([
        lambda: rng.randbytes(rng.randint(1, 64)).replace(b":", b"") or b"x",
        lambda: b"",
        lambda: b"&&&&",
        lambda: b"0:Zero&1:1.00",
        lambda: b"99999999999:Big&1:1.00",
        lambda: b"-5:Neg&1:1.00",
        lambda: b"abc:Name&1:1.00",
        lambda: b"12:" + b"n" * 200,
        lambda: b"\0\0\0" + rng.randbytes(8),
    ])()


def mixed(count: int, seed: int = 2390) -> list[bytes]:
    """Valid fleet datagrams, junk and spoofed node ids, shuffled, in SHARES proportions."""
    rng = random.Random(seed)
    valid = load.datagrams(FLEET)
    packets = []
    for index in range(count):
        pick = rng.random()
        if pick < SHARES[0]:
            packets.append(valid[index % len(valid)])
        elif pick < SHARES[0] + SHARES[1]:
            packets.append(junk(rng))
        else:
            spoofed = rng.randint(1_000_000, 2**31 - 1)
            packets.append(load.esp_datagram(spoofed, power=rng.uniform(0, 3000), energy=1.0))
    return packets


def blast(port: int, rate: float, seconds: float, results: SimpleQueue[load.Sent]) -> None:
    """The sender process: `rate` datagrams a second to 127.0.0.1:`port` for `seconds`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent
    packets = mixed(PREBUILT)
    address = (load.TARGET, port)
    batch = max(1, int(rate // 1000))  # paced in ~1 ms steps
    sent = failed = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sendto = sock.sendto
        start = time.monotonic()
        deadline = start + seconds
        while (now := time.monotonic()) < deadline:
            ahead = start + (sent + failed) / rate - now
            if ahead > 0:
                time.sleep(ahead)
            for _ in range(batch):
                try:
                    sendto(packets[(sent + failed) % PREBUILT], address)
                except OSError:  # a full buffer is not fatal; the datagram was not sent
                    failed += 1
                else:
                    sent += 1
    results.put(load.Sent(sent, time.monotonic() - start))


@dataclass
class Pushes:
    """Arrival times (time.monotonic) of the `thing_update` pushes a page-like client read."""

    times: list[float] = field(default_factory=list)
    others: int = 0


async def read_pushes(ws: ClientConnection, pushes: Pushes) -> None:
    """Count the thing_update pushes a page gets."""
    async for raw in ws:
        if '"command": "thing_update"' in raw:
            pushes.times.append(time.monotonic())
        else:
            pushes.others += 1


def summary(seconds: list[float]) -> str:
    """p50, p99 and max of delays given in seconds."""
    ms = [s * 1000 for s in seconds]
    return (f"p50 {percentile(ms, 0.5):.2f} ms, p99 {percentile(ms, 0.99):.2f} ms, "
            f"max {max(ms):.2f} ms")


@dataclass
class Switching:
    """Per switch: until its answer (the relay moved and the things were saved, fsync
    included) and until its `thing_update` push (the relay moved; the page is told)."""

    answered: list[float] = field(default_factory=list)
    pushed: list[float] = field(default_factory=list)
    missed: int = 0

    def p99_ms(self) -> float:
        """The 99th percentile of switch-to-answer, in ms."""
        return percentile(self.answered, 0.99) * 1000.0

    def push_p99_ms(self) -> float:
        """The 99th percentile of switch-to-push, in ms."""
        return percentile(self.pushed, 0.99) * 1000.0

    def summary(self) -> str:
        """The figures as the table shows them."""
        return (f"answer {summary(self.answered)}; push {summary(self.pushed)} "
                f"({len(self.answered)} switches"
                + (f", {self.missed} unanswered)" if self.missed else ")"))


async def switch_once(ws: ClientConnection, on: bool) -> tuple[float | None, float]:
    """Switch the relay on or off (it is the other way); seconds until the relay's
    `thing_update` with the new value (None if none came first), and until the answer."""
    began = time.monotonic()
    await ws.send(json.dumps({"command": "switch", "state": "on" if on else "off"}))
    pushed = None
    while True:
        raw = await ws.recv()
        arrived = time.monotonic() - began
        message = json.loads(raw)
        command = message.get("command")
        if (command == "thing_update" and message.get("thingId") == 1 and pushed is None
                and message.get("value") == (1.0 if on else 0.0)):
            pushed = arrived
        elif command in ("response_switch", "error"):
            if not message.get("success"):
                raise RuntimeError(f"switch refused: {message}")
            return pushed, arrived


async def switch(ws: ClientConnection, until: float | None, count: int | None) -> Switching:
    """Toggle the relay every GAP seconds until `until` or `count` times; time each."""
    result = Switching()
    done = 0
    on = not (await status(ws))["relay"]
    while (count is None or done < count) and (until is None or time.monotonic() < until):
        began = time.monotonic()
        try:
            pushed, answered = await asyncio.wait_for(switch_once(ws, on), ANSWER_TIMEOUT)
        except TimeoutError:
            result.missed += 1
            on = not (await status(ws))["relay"]
            continue
        if pushed is None:
            raise RuntimeError("a switch was answered without its thing_update push")
        result.pushed.append(pushed)
        result.answered.append(answered)
        on = not on
        done += 1
        await asyncio.sleep(max(0.0, began + GAP - time.monotonic()))
    return result


@dataclass
class Outcome:
    """What one flood run measured: idle and flooded switching, pushes, RSS, counters."""
    idle: Switching
    flood: Switching
    rate: float  # asked of the sender
    sent: load.Sent
    #: When the flood ran (time.monotonic), and the pushes the page read meanwhile.
    window: tuple[float, float]
    pushes: Pushes
    rss_kib: list[int]
    before: dict[str, Any]
    after: dict[str, Any]
    errors: int = 0
    exit_code: int | None = None

    def pushes_in(self, start: float, end: float) -> int:
        """How many pushes arrived between `start` and `end`."""
        return sum(start <= t < end for t in self.pushes.times)

    def longest_push_gap(self) -> float:
        """The longest time without a push during the flood, in seconds."""
        start, end = self.window
        times = [start] + [t for t in self.pushes.times if start <= t < end] + [end]
        return max(b - a for a, b in itertools.pairwise(times))


async def sample_rss(pid: int, into: list[int]) -> None:
    """Sample the daemon's RSS every second."""
    while True:
        into.append(rss_kib(pid))
        await asyncio.sleep(RSS_EVERY)


async def status(ws: ClientConnection) -> dict[str, Any]:
    """The daemon's `request_status` answer."""
    return await Client(ws).ask({"command": "request_status"})


async def drained(ws: ClientConnection, before: dict[str, Any], sent: int) -> dict[str, Any]:
    """The daemon's status once every datagram sent since `before` was taken in or dropped
    by the kernel (its queue overflowed): nothing of the flood is still queued."""
    async def settled() -> dict[str, Any] | None:
        now = await status(ws)
        return now if accounted(before, now, sent) else None
    after: dict[str, Any] = await until(settled, f"the daemon to account for {sent} datagrams")
    return after


async def measure(uri: str, token: str, pid: int, port: int, seconds: float, rate: float,
                  idle_switches: int) -> Outcome:
    """Switch idle, then under a flood of `rate` datagrams/s for `seconds`; the outcome."""
    context = multiprocessing.get_context("spawn")
    results = context.SimpleQueue()
    sender = context.Process(target=blast, args=(port, rate, seconds, results),
                             name="bench-flood", daemon=True)
    rss: list[int] = []
    pushes = Pushes()
    async with connect(uri, open_timeout=30, max_size=None) as ctl, \
            connect(uri, open_timeout=30, max_size=None) as page:
        if not (await Client(ctl).ask({"command": "login", "token": token})).get("success"):
            raise RuntimeError("login with the cli-token refused")
        reader = asyncio.create_task(read_pushes(page, pushes))
        sampler = asyncio.create_task(sample_rss(pid, rss))
        try:
            idle = await switch(ctl, None, idle_switches)
            before = await status(ctl)
            sender.start()
            began = time.monotonic()
            await asyncio.sleep(WARMUP)  # switching under a flood already going
            flood = await switch(ctl, began + seconds, None)
            await asyncio.to_thread(sender.join, seconds + 10)
            ended = time.monotonic()
            if results.empty():
                raise RuntimeError(f"the flood sender failed (exit code {sender.exitcode})")
            sent = results.get()
            after = await drained(ctl, before, sent.count)
        finally:
            reader.cancel()
            sampler.cancel()
            await asyncio.gather(reader, sampler, return_exceptions=True)
            sender.join(5)
            if sender.is_alive():
                sender.kill()
                sender.join()
    return Outcome(idle, flood, rate, sent, (began, ended), pushes, rss, before, after)


def flood(seconds: float = 60.0, rate: float = RATE, idle_switches: int = IDLE_SWITCHES,
          prefix: Sequence[str] = ()) -> Outcome:
    """Run a `plugd --simulate` (wrapped in `prefix`: on a smaller board's CPU), switch it
    idle, then flooded; stop it; what was seen."""
    with tempfile.TemporaryDirectory(prefix="plugd-flood-") as tmp:
        plug = PlugdProcess(Path(tmp), *QUIET, config=PROCESS_CONFIG, prefix=prefix)
        assert plug.proc is not None
        try:
            outcome = asyncio.run(measure(f"ws://127.0.0.1:{plug.http}/ws", plug.token,
                                          plug.proc.pid, plug.udp, seconds, rate, idle_switches))
        finally:
            code = plug.stop()
        outcome.exit_code = code
        outcome.errors = logged_errors(plug.log)
    return outcome


def rows(outcome: Outcome, label: str = "") -> list[Row]:
    """The outcome as table rows against the targets; `label` names a limited CPU."""
    idle, flooded = outcome.idle, outcome.flood
    ratio = flooded.p99_ms() / idle.p99_ms()
    push_ratio = flooded.push_p99_ms() / idle.push_p99_ms()
    start, end = outcome.window
    pushes = outcome.pushes_in(start, end)
    expected = (end - start) / PUSH_INTERVAL
    gap = outcome.longest_push_gap()
    before, after = outcome.before["counters"], outcome.after["counters"]

    def grew(name: str) -> int:
        return after[name] - before[name]

    sent = outcome.sent
    return [
        Row(NAME, f"switch to answer p99, flood / idle{label}",
            f"{flooded.p99_ms():.2f} ms / {idle.p99_ms():.2f} ms = {ratio:.2f}",
            f"≤ {TARGET_RATIO:g}", ratio <= TARGET_RATIO and not flooded.missed),
        Row(NAME, f"switch to thing_update push p99, flood / idle{label}",
            f"{flooded.push_p99_ms():.2f} ms / {idle.push_p99_ms():.2f} ms = {push_ratio:.2f}",
            f"≤ {TARGET_RATIO:g}", push_ratio <= TARGET_RATIO and not flooded.missed),
        Row(NAME, f"switch, idle{label}", idle.summary()),
        Row(NAME, f"switch, flooded{label}", flooded.summary()),
        Row(NAME, "flood sent (one process, to 127.0.0.1)",
            f"{sent.count:,} datagrams in {sent.seconds:.1f} s = {sent.rate:,.0f}/s "
            f"(asked {outcome.rate:,.0f}/s; {SHARES[0]:.0%} valid from {len(FLEET)} "
            f"nodes, {SHARES[1]:.0%} junk, {SHARES[2]:.0%} spoofed ids)"),
        Row(NAME, "datagrams the daemon took in during the flood",
            f"{grew('received'):,} received, {grew('accepted'):,} accepted, "
            f"{grew('invalid'):,} invalid, {grew('dropped_full'):,} dropped (table full), "
            f"{grew('rejected_fields'):,} fields rejected; kernel drops "
            f"{outcome.after['kernelDrops']}"),
        Row(NAME, "thing_update pushes the page read during the flood",
            f"{pushes:,} ({pushes / max(1, expected):.0f} per interval over {expected:.0f} "
            f"intervals), longest gap {gap:.2f} s", f"gap ≤ {3 * PUSH_INTERVAL:g} s",
            gap <= 3 * PUSH_INTERVAL),
        Row(NAME, "daemon RSS", f"min {min(outcome.rss_kib) / 1024:.1f} MiB, "
                                f"max {max(outcome.rss_kib) / 1024:.1f} MiB "
                                f"({len(outcome.rss_kib)} samples)"),
        Row(NAME, "nodes known at the end", f"{outcome.after['nodesKnown']} "
                                            f"(max_nodes bounds the table)"),
        Row(NAME, "errors logged by the daemon", str(outcome.errors), "0", outcome.errors == 0),
        Row(NAME, "exit code after SIGTERM", str(outcome.exit_code), "0", outcome.exit_code == 0),
    ]


def limited(rate: float = RATE) -> list[Row]:
    """The flood again, shorter, with the daemon on a smaller board's CPU: the ratios, the
    switching and what it took in."""
    measured: list[Row] = []
    with cpu_limits() as (limits, missing):
        for limit in limits[1:]:
            outcome = flood(LIMITED_SECONDS, rate, LIMITED_IDLE_SWITCHES, limit.prefix)
            measured += rows(outcome, f", daemon on {limit.label}")[:6]
    return measured + [Row(NAME, "smaller board", f"not measured: {why}") for why in missing]


def run(seconds: float = 60.0, rate: float = RATE) -> list[Row]:
    """`make flood`'s run, then shorter ones on a smaller board's CPU: rows, with the
    machine's load before and after."""
    load_before = os.getloadavg()[0]
    measured = rows(flood(seconds, rate)) + limited(rate)
    return [*measured, Row(NAME, "machine load average (1 min) before / after the run",
                           f"{load_before:.1f} / {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
                           f"(other work on the machine raises every latency)")]


def main() -> None:
    """`python -m bench.flood`: the flood alone."""
    parser = argparse.ArgumentParser(prog="python -m bench.flood", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=RATE, help="datagrams a second")
    args = parser.parse_args()
    run_alone(lambda: run(args.seconds, args.rate))


if __name__ == "__main__":
    main()
