"""Fan-out: how soon a relay change reaches every WebSocket page of one `plugd --simulate`,
beside bare broadcasters from the same libraries, read by the same client processes.

Three servers, each a process of its own on loopback, are read in turn by the
same readers: plugd (`[mesh] interval = 1.0`, so each page also gets a
`thing_update` per thing every second), a bare uvicorn + Starlette broadcaster
on the WebSocket protocol plugd uses, and a bare `websockets` server with its
`broadcast()` (bench.bare). The readers run on one event loop per client
process, PROCESSES of them, each stamping with time.monotonic() (system-wide on
Linux) the `thing_update` of thing 1 it receives. A controlling client in this
process switches the relay on and off (logged in with plugd's cli-token),
stamping each send; the delay of a change, per reader, is the first receive
carrying the new value minus the send. The CPU of each server and of the
client processes is reported, so a saturated bench would show.

PROCESSES was chosen with `python -m bench.fanout --check`, which reads the
bare `websockets` server with 1, 2, 4 and 8 client processes: the baseline's p99
falls while readers wait on their own process, then stops moving (on 2 CPUs,
200 readers: 15.6, 10.5, 11.4, 13.4 ms; 1,000 readers: 102, 48, 35, 47 ms).

The p99 of one session is set by its worst change or two (each change is 200 or
1,000 samples), so one stall of the machine moves it: each server runs ROUNDS
sessions, taking turns, the median counts, and every round's p99 is shown.

The target: plugd's p99 within RATIO_TARGET of the faster bare broadcast, for
200 and 1,000 readers. The same is then measured with the daemon (and the bare
uvicorn server) pinned to one core and given a quarter of one.
"""

from __future__ import annotations

import asyncio
import json
import math
import multiprocessing
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from bench.harness import PROCESS_CONFIG, QUIET, Limit, cpu_limits, percentile, raised_priority
from bench.report import Row, run_alone
from bench.service import cpu_seconds
from tests.broker import Broker, have_mosquitto
from tests.support import Client, PlugdProcess, free_port

NAME = "Fan-out"
READERS = (200, 1000)
CHANGES = 20
GAP = 0.4          # seconds between changes
WARMUP = 2.0       # seconds of interval pushes before the first change
DRAIN = 1.0        # seconds after the last change for late frames
RATIO_TARGET = 1.2
ROUNDS = 3         # sessions per server, alternating servers; the median p99's counts
PROCESSES = 4      # client processes the readers are spread over (see --check)
TIMEOUT = 180.0    # one session, connects included
PLUGD, STARLETTE, WEBSOCKETS = "plugd", "bare uvicorn + Starlette", "bare websockets"


@dataclass(frozen=True)
class Session:
    """What one server did for its readers."""

    server: str
    readers: int
    processes: int
    delays: list[float]     # ms, every reader x change
    first: list[float]      # ms, the earliest reader of each change
    answers: list[float]    # ms, the switch's round trip
    missing: int
    server_cpu: float       # share of one core
    clients_cpu: float
    frames: int
    wall: float
    errors: int = 0
    dropped: int = 0
    code: int | None = 0

    @property
    def p50(self) -> float:
        """The median delay."""
        return percentile(self.delays, 0.5)

    @property
    def p99(self) -> float:
        """The 99th percentile delay (math.inf when nothing arrived)."""
        return percentile(self.delays, 0.99) if self.delays else math.inf

    def brief(self) -> str:
        """p50, p99, max and what they were measured over."""
        return (f"p50 {self.p50:.2f} ms, p99 {self.p99:.2f} ms, max {max(self.delays):.2f} ms; "
                f"server CPU {self.server_cpu:.0%}, readers' CPU {self.clients_cpu:.0%} of one "
                f"core ({len(self.delays)} samples, {self.processes} client processes)")


async def _record(ws: ClientConnection, log: list[tuple[float, float]], count: list[int]) -> None:
    """One reader: the time.monotonic() and value of every `thing_update` of thing 1."""
    async for raw in ws:
        now = time.monotonic()
        count[0] += 1
        if '"thingId": 1,' in raw:  # cheap filter; parsed below to be sure
            msg = json.loads(raw)
            if msg.get("command") == "thing_update" and msg.get("thingId") == 1:
                log.append((now, float(msg["value"])))


async def _readers(uri: str, count: int, ready: Any, stop: Any) -> tuple[list, int]:
    clients: list[ClientConnection] = []
    tasks: list[asyncio.Task[None]] = []
    logs: list[list[tuple[float, float]]] = [[] for _ in range(count)]
    frames = [0]
    try:
        for start in range(0, count, 20):  # 20 handshakes at a time
            clients += await asyncio.gather(*(connect(uri, open_timeout=30, compression=None)
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
    """A client process: its share of the readers, recorded until told to stop."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and soft < count + 64:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(count + 64, hard), hard))
        results.put(asyncio.run(asyncio.wait_for(_readers(uri, count, ready, stop), TIMEOUT)))
    except BaseException as err:  # the parent must not wait forever
        ready.put(f"client process failed: {type(err).__name__}: {err}")
        results.put(None)


async def _control(uri: str, token: str | None) -> tuple[list[tuple[float, float]], list[float]]:
    """Switch the relay CHANGES times; return (send time, new value) of each and round trips."""
    sends: list[tuple[float, float]] = []
    answers: list[float] = []
    async with connect(uri, open_timeout=20, compression=None) as ws:
        ctl = Client(ws)
        if token is not None:
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
    """Every reader's delay for every change, and the earliest reader's delay per change."""
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


@dataclass
class _Server:
    """A started server: its pid, its WebSocket address, the token to switch with."""

    pid: int
    uri: str
    token: str | None
    plug: PlugdProcess | None = None
    proc: subprocess.Popen[str] | None = None


@contextmanager
def _server(kind: str, tmp: Path, prefix: Sequence[str], config: dict[str, Any],
            program: Path | None) -> Iterator[_Server]:
    """Start `kind` (plugd, or a bare broadcaster) wrapped in `prefix`; stop it on the way out."""
    if kind == PLUGD:
        plug = PlugdProcess(tmp, *QUIET, config=config, prefix=prefix, program=program)
        assert plug.proc is not None
        try:
            yield _Server(plug.proc.pid, f"ws://127.0.0.1:{plug.http}/ws", plug.token, plug=plug)
        finally:
            plug.stop()
        return
    port = free_port(socket.SOCK_STREAM)
    bare = "websockets" if kind == WEBSOCKETS else "starlette"
    proc = subprocess.Popen([*prefix, sys.executable, "-m", "bench.bare", bare, str(port)],
                            stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parent.parent)
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the {kind} server did not start (exit {proc.wait(10)})")
        yield _Server(proc.pid, f"ws://127.0.0.1:{port}/ws", None, proc=proc)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def session(kind: str, readers: int, processes: int = PROCESSES, prefix: Sequence[str] = (),
            config: dict[str, Any] | None = None, program: Path | None = None) -> Session:
    """One server of `kind`, `readers` readers over `processes` client processes, the changes;
    `program` runs another plugd (an older one, for a before and after)."""
    mp = multiprocessing.get_context("fork")  # before any event loop exists in this process
    with tempfile.TemporaryDirectory(prefix="plugd-fanout-") as tmp, \
            _server(kind, Path(tmp), prefix, config or PROCESS_CONFIG, program) as server:
        workers = []
        try:
            ready, stop, results = mp.Queue(), mp.Event(), mp.Queue()
            shares = [readers // processes + (i < readers % processes) for i in range(processes)]
            workers = [mp.Process(target=_worker, args=(server.uri, n, ready, stop, results),
                                  daemon=True) for n in shares]
            for worker in workers:
                worker.start()
            for _ in workers:
                started = ready.get(timeout=120)
                if isinstance(started, str):
                    raise RuntimeError(started)
            cpu_server, began = cpu_seconds(server.pid), time.monotonic()
            cpu_clients = sum(cpu_seconds(w.pid) for w in workers if w.pid is not None)
            sends, answers = asyncio.run(asyncio.wait_for(_control(server.uri, server.token),
                                                          TIMEOUT))
            wall = time.monotonic() - began
            share_server = (cpu_seconds(server.pid) - cpu_server) / wall
            share_clients = (sum(cpu_seconds(w.pid) for w in workers if w.pid is not None)
                             - cpu_clients) / wall
            stop.set()
            gathered = [results.get(timeout=60) for _ in workers]
            if any(g is None for g in gathered):
                raise RuntimeError("a client process failed")
        finally:
            for worker in workers:
                worker.join(timeout=10)
                if worker.is_alive():
                    worker.kill()
        extra: dict[str, Any] = {}
        if server.plug is not None:
            extra["code"] = server.plug.stop()
            log = server.plug.log.read_text(errors="replace").splitlines()
            extra["errors"] = sum(line.startswith(("ERROR", "CRITICAL")) for line in log)
            extra["dropped"] = sum("WebSocket client" in line and " cut: " in line
                                   for line in log)
    delays, first = _delays(sends, [client for part, _ in gathered for client in part])
    return Session(kind, readers, processes, [d * 1000 for d in delays],
                   [d * 1000 for d in first], [d * 1000 for d in answers],
                   readers * CHANGES - len(delays), share_server, share_clients,
                   sum(n for _, n in gathered), wall, **extra)


def compared(label: str, plugd: Session, bare: list[Session]) -> list[Row]:
    """plugd's p99 beside each bare server's, the ratio to the faster, and the target."""
    best = min(bare, key=lambda s: s.p99)
    ratio = plugd.p99 / best.p99
    rows = [Row(NAME, f"p99 delay of a relay change, {plugd.readers:,} readers{label}: "
                      f"plugd / {best.server}",
                f"{plugd.p99:.2f} ms / {best.p99:.2f} ms = {ratio:.2f}",
                f"≤ {RATIO_TARGET:g}", ratio <= RATIO_TARGET and plugd.missing == 0)]
    rows += [Row(NAME, f"{s.server}, {s.readers:,} readers{label}", s.brief()) for s in
             (plugd, *bare)]
    return rows


def _plugd_rows(s: Session) -> list[Row]:
    return [
        Row(NAME, f"plugd, {s.readers:,} readers: delay to the first reader of each change; "
                  "the switch's round trip",
            f"first p50 {percentile(s.first, 0.5):.2f} ms, max {max(s.first):.2f} ms; "
            f"round trip p50 {percentile(s.answers, 0.5):.2f} ms, max {max(s.answers):.2f} ms"),
        Row(NAME, f"plugd, {s.readers:,} readers: changes not received, readers cut as too "
                  "slow, errors logged, exit code after SIGTERM",
            f"{s.missing}, {s.dropped}, {s.errors}, {s.code}", "0, 0, 0, 0",
            (s.missing, s.dropped, s.errors, s.code) == (0, 0, 0, 0)),
    ]


def rounds(kinds: Sequence[str], readers: int, processes: int = PROCESSES,
           prefix: Sequence[str] = (), count: int = ROUNDS) -> list[list[Session]]:
    """`count` sessions of each server, taking turns so that other work on the machine falls
    on each alike; per server, its sessions ordered by p99."""
    done: list[list[Session]] = [[] for _ in kinds]
    for _ in range(count):
        for kind, sessions in zip(kinds, done):
            sessions.append(session(kind, readers, processes, prefix))
    return [sorted(sessions, key=lambda s: s.p99) for sessions in done]


def median(sessions: list[Session]) -> Session:
    """The session with the median p99 (of sessions ordered by p99)."""
    return sessions[(len(sessions) - 1) // 2]


def spread(sessions: list[Session]) -> Row:
    """Every round's p99 of one server, so the spread between rounds shows."""
    return Row(NAME, f"{sessions[0].server}, {sessions[0].readers:,} readers: p99 of each round",
               ", ".join(f"{s.p99:.2f}" for s in sessions) + " ms")


def run(processes: int = PROCESSES) -> list[Row]:
    """plugd and the bare broadcasters for 200 and 1,000 readers; plugd with the MQTT outlet;
    plugd and the bare uvicorn server on a smaller board's CPU."""
    rows: list[Row] = []
    load = os.getloadavg()[0]
    with raised_priority() as priority:
        for readers in READERS:
            plugd, *bare = rounds((PLUGD, STARLETTE, WEBSOCKETS), readers, processes)
            rows += compared("", median(plugd), [median(b) for b in bare])
            rows += [spread(s) for s in (plugd, *bare)] + _plugd_rows(median(plugd))
        rows.append(_with_mqtt(processes))
        with cpu_limits() as (limits, missing):
            for limit in limits[1:]:
                rows += _limited(limit, processes)
    rows += [Row(NAME, "smaller board", f"not measured: {why}") for why in missing]
    rows.append(Row(NAME, "how it ran", f"{ROUNDS} rounds per server, taking turns, {priority}; "
                                        f"machine load (1 min) {load:.1f} before, "
                                        f"{os.getloadavg()[0]:.1f} after, on {os.cpu_count()} CPUs"))
    return rows


def _limited(limit: Limit, processes: int) -> list[Row]:
    """plugd and the bare uvicorn server under `limit`, 200 readers."""
    plugd, bare = rounds((PLUGD, STARLETTE), READERS[0], processes, limit.prefix)
    return compared(f", server on {limit.label}", median(plugd), [median(bare)])


def _with_mqtt(processes: int) -> Row:
    """plugd's p99 with the MQTT outlet on, to a broker of the bench's own."""
    metric = f"plugd p99, {READERS[0]} readers, with the MQTT outlet on (relay and state " \
             "published at each change)"
    if not have_mosquitto():
        return Row(NAME, metric, "not measured: no mosquitto")
    with tempfile.TemporaryDirectory(prefix="plugd-fanout-broker-") as tmp:
        broker = Broker(Path(tmp))
        broker.start()
        try:
            config = {**PROCESS_CONFIG, "mqtt": {"host": "127.0.0.1", "port": broker.port}}
            with_mqtt = session(PLUGD, READERS[0], processes, config=config)
        finally:
            broker.stop()
    return Row(NAME, metric, with_mqtt.brief())


def check(counts: Sequence[int] = (1, 2, 4, 8)) -> list[Row]:
    """The bare `websockets` baseline read by more and more client processes: its figure
    should fall while readers wait on their process, then stop moving."""
    with raised_priority():
        return [Row(NAME, f"{WEBSOCKETS}, {readers:,} readers over {n} client process"
                          f"{'es' if n > 1 else ''}", session(WEBSOCKETS, readers, n).brief())
                for readers in READERS for n in counts]


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        run_alone(check)
    elif sys.argv[1:] == ["--plugd"]:  # plugd alone, 200 and 1,000 readers: for profiling
        run_alone(lambda: [Row(NAME, f"plugd, {n} readers", session(PLUGD, n).brief())
                           for n in READERS])
    else:
        run_alone(run)
