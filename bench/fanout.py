"""Fan-out: how soon a relay change reaches 200 WebSocket clients of one `plugd --simulate`.

The daemon runs as a subprocess (free ports, loopback only, its own state
directory, `[mesh] interval = 1.0` so each client also gets a `thing_update`
per thing every second). The 200 clients run on one event loop in a forked
client process (PROCESSES; `run(2)` splits them over two), with websockets'
asyncio client, each stamping with time.monotonic() (system-wide on Linux) the
`thing_update` of thing 1 it receives. A controlling client in this process logs
in with the daemon's cli-token and switches the relay on and off, stamping each
send. The delay of a change, per client, is the first receive carrying the new
value minus the send. The CPU of the daemon and of the client process are both
reported, so a saturated bench would show.
"""

from __future__ import annotations

import asyncio
import json
import math
import multiprocessing
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from bench.harness import PROCESS_CONFIG, QUIET, percentile
from bench.report import Row, run_alone
from bench.service import cpu_seconds
from tests.broker import Broker, have_mosquitto
from tests.support import Client, PlugdProcess

NAME = "Fan-out"
CLIENTS = 200
CHANGES = 30
GAP = 0.5          # seconds between changes
WARMUP = 3.0       # seconds of interval pushes before the first change
DRAIN = 1.0        # seconds after the last change for late frames
TARGET_MS = 20.0
PROCESSES = 1     # client processes the 200 clients are spread over
TIMEOUT = 120.0    # the whole measurement, connects included


async def _record(ws: ClientConnection, log: list[tuple[float, float]], count: list[int]) -> None:
    """One client: the time.monotonic() and value of every `thing_update` of thing 1."""
    async for raw in ws:
        now = time.monotonic()
        count[0] += 1
        if '"thingId": 1,' in raw:  # cheap filter; parsed below to be sure
            msg = json.loads(raw)
            if msg.get("command") == "thing_update" and msg.get("thingId") == 1:
                log.append((now, float(msg["value"])))


async def _clients(uri: str, count: int, ready: Any, stop: Any) -> tuple[list, int]:
    clients: list[ClientConnection] = []
    tasks: list[asyncio.Task[None]] = []
    logs: list[list[tuple[float, float]]] = [[] for _ in range(count)]
    frames = [0]
    try:
        for start in range(0, count, 20):  # 20 handshakes at a time
            clients += await asyncio.gather(*(connect(uri, open_timeout=20)
                                              for _ in range(start, min(count, start + 20))))
        tasks = [asyncio.create_task(_record(ws, log, frames)) for ws, log in zip(clients, logs)]
        ready.put(os.getpid())
        await asyncio.to_thread(stop.wait, TIMEOUT)  # the controller is done
        return logs, frames[0]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(ws.close() for ws in clients), return_exceptions=True)


def _worker(uri: str, count: int, ready: Any, stop: Any, results: Any) -> None:
    """A client process: its share of the 200, recorded until told to stop."""
    try:
        results.put(asyncio.run(asyncio.wait_for(_clients(uri, count, ready, stop), TIMEOUT)))
    except BaseException as err:  # the parent must not wait forever
        ready.put(f"client process failed: {type(err).__name__}: {err}")
        results.put(None)


async def _control(uri: str, token: str) -> tuple[list[tuple[float, float]], list[float]]:
    """Switch the relay CHANGES times; return (send time, new value) of each and round trips."""
    sends: list[tuple[float, float]] = []
    answers: list[float] = []
    async with connect(uri, open_timeout=20) as ws:
        ctl = Client(ws)
        answer = await ctl.ask({"command": "login", "token": token})
        if not answer.get("success"):
            raise RuntimeError(f"login with the cli-token refused: {answer}")
        await ctl.ask({"command": "switch", "state": "off"})  # a known start
        await asyncio.sleep(WARMUP)
        for index in range(CHANGES):
            on = index % 2 == 0
            tick = time.monotonic()
            answer = await ctl.ask({"command": "switch", "state": "on" if on else "off"})
            answers.append(time.monotonic() - tick)
            if answer.get("relay") is not on:
                raise RuntimeError(f"switch {index} not done: {answer}")
            sends.append((tick, 1.0 if on else 0.0))
            await asyncio.sleep(max(0.0, tick + GAP - time.monotonic()))
        await asyncio.sleep(DRAIN)
    return sends, answers


def _delays(sends: list[tuple[float, float]], logs: list[list[tuple[float, float]]]
            ) -> tuple[list[float], list[float]]:
    """Every client's delay for every change, and the earliest client's delay per change."""
    delays, first = [], []
    for k, (sent, value) in enumerate(sends):
        until = sends[k + 1][0] if k + 1 < len(sends) else math.inf
        this = [next((t - sent for t, v in log if sent <= t < until and v == value), None)
                for log in logs]
        got = [d for d in this if d is not None]
        delays += got
        if got:
            first.append(min(got))
    return delays, first


def run(processes: int = PROCESSES) -> list[Row]:
    """Reach 200 pages with a relay change; then again with the MQTT outlet on, to a broker of
    the bench's own, for what MQTT costs the pages."""
    rows = _session(processes, PROCESS_CONFIG)
    if not have_mosquitto():
        return [*rows, Row(NAME, "p99 with the MQTT outlet on", "not measured: no mosquitto")]
    with tempfile.TemporaryDirectory(prefix="plugd-fanout-broker-") as tmp:
        broker = Broker(Path(tmp))
        broker.start()
        try:
            config = {**PROCESS_CONFIG, "mqtt": {"host": "127.0.0.1", "port": broker.port}}
            with_mqtt = _session(processes, config)
        finally:
            broker.stop()
    return [*rows, Row(NAME, "p99 delay with the MQTT outlet on (relay and state published "
                             "at each change)", with_mqtt[0].result)]


def _session(processes: int, config: dict[str, Any]) -> list[Row]:
    """One plugd with `config`, 200 pages, the changes; the rows of its delays."""
    mp = multiprocessing.get_context("fork")  # before any event loop exists in this process
    with tempfile.TemporaryDirectory(prefix="plugd-fanout-") as tmp:
        plug = PlugdProcess(Path(tmp), *QUIET, config=config)
        assert plug.proc is not None
        pid, uri = plug.proc.pid, f"ws://127.0.0.1:{plug.http}/ws"
        workers = []
        try:
            ready, stop, results = mp.Queue(), mp.Event(), mp.Queue()
            shares = [CLIENTS // processes + (i < CLIENTS % processes) for i in range(processes)]
            workers = [mp.Process(target=_worker, args=(uri, n, ready, stop, results), daemon=True)
                       for n in shares]
            for worker in workers:
                worker.start()
            for _ in workers:
                started = ready.get(timeout=60)
                if isinstance(started, str):
                    raise RuntimeError(started)
            cpu_daemon, began = cpu_seconds(pid), time.monotonic()
            cpu_clients = sum(cpu_seconds(w.pid) for w in workers)
            cpu_bench = time.process_time()
            sends, answers = asyncio.run(asyncio.wait_for(_control(uri, plug.token), TIMEOUT))
            wall = time.monotonic() - began
            share_daemon = (cpu_seconds(pid) - cpu_daemon) / wall
            share_clients = (sum(cpu_seconds(w.pid) for w in workers) - cpu_clients) / wall
            share_bench = (time.process_time() - cpu_bench) / wall
            stop.set()
            gathered = [results.get(timeout=30) for _ in workers]
            if any(g is None for g in gathered):
                raise RuntimeError("a client process failed")
        finally:
            for worker in workers:
                worker.join(timeout=10)
                if worker.is_alive():
                    worker.kill()
            code = plug.stop()
        log = plug.log.read_text(errors="replace").splitlines()
    errors = sum(line.startswith(("ERROR", "CRITICAL")) for line in log)
    dropped = sum("closing a WebSocket client" in line for line in log)
    logs = [client for part, _ in gathered for client in part]
    frames = sum(n for _, n in gathered)

    delays, first = _delays(sends, logs)
    ms = [d * 1000 for d in delays]
    first = [d * 1000 for d in first]
    answers = [d * 1000 for d in answers]
    expected = CLIENTS * CHANGES
    missing = expected - len(ms)
    if not ms:
        return [Row(NAME, "change events received", f"0 of {expected}", "all", False)]
    p50, p99, worst = percentile(ms, 0.5), percentile(ms, 0.99), max(ms)
    return [
        Row(NAME, f"p99 delay of a relay change, {CLIENTS} WebSocket clients", f"{p99:.2f} ms",
            f"≤ {TARGET_MS:g} ms", p99 <= TARGET_MS and missing == 0),
        Row(NAME, "delay, all clients × changes",
            f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {worst:.2f} ms ({len(ms)} samples: "
            f"{CHANGES} changes {GAP:g} s apart × {CLIENTS} clients in {processes} client "
            f"process{'es' if processes > 1 else ''})"),
        Row(NAME, "delay to the first client of each change (the rest is the spread over 200)",
            f"p50 {percentile(first, 0.5):.2f} ms, max {max(first):.2f} ms"),
        Row(NAME, "round trip of the switch command to the controlling client",
            f"p50 {percentile(answers, 0.5):.2f} ms, max {max(answers):.2f} ms"),
        Row(NAME, "change events not received", f"{missing} of {expected}", "0", missing == 0),
        Row(NAME, "daemon CPU over the warm-up and the changes (utime+stime)",
            f"{share_daemon:.1%} of one core over {wall:.1f} s "
            f"(interval pushes 1/s per thing, simulated metering included)"),
        Row(NAME, "bench CPU over the same span",
            f"client processes {share_clients:.1%} of one core in all, {frames:,} frames read; "
            f"controller {share_bench:.1%}"),
        Row(NAME, "clients closed by the daemon as too slow", str(dropped), "0", dropped == 0),
        Row(NAME, "errors logged by the daemon", str(errors), "0", errors == 0),
        Row(NAME, "exit code after SIGTERM", str(code), "0", code == 0),
    ]

if __name__ == "__main__":
    run_alone(run)
