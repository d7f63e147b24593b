"""Fan-out: how soon a relay change reaches 200 WebSocket clients of one `plugd --simulate`.

The daemon runs as a subprocess (free ports, loopback only, its own state
directory, `[mesh] interval = 1.0` so each client also gets a `thing_update`
per thing every second). 200 clients connect from this process with websockets'
asyncio client; one more client logs in with the daemon's cli-token and switches
the relay on and off. The delay of a change is, for each of the 200 clients, the
time.monotonic() at which its `thing_update` of thing 1 with the new value came
in, minus the time.monotonic() just before the `switch` was sent: one process,
one clock. The clients share this process's event loop, so the figures include
the time this process takes to read 200 frames; its CPU is reported beside the
daemon's so a saturated bench shows.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

from bench.harness import free_port, percentile
from bench.report import Row, run_alone

NAME = "Fan-out"
CLIENTS = 200
CHANGES = 30
GAP = 0.5          # seconds between changes
WARMUP = 3.0       # seconds of interval pushes before the first change
DRAIN = 1.0        # seconds after the last change for late frames
TARGET_MS = 20.0
TIMEOUT = 120.0    # the whole measurement, connects included
PLUGD = Path(sys.executable).parent / "plugd"
CONFIG = """\
[mesh]
interval = 1.0
bind = "127.0.0.1"

[http]
bind = "127.0.0.1"

[mdns]
enabled = false
"""


@dataclass
class Change:
    index: int
    value: float
    sent: float


@dataclass
class Shared:
    current: Change | None = None
    delays: list[float] = field(default_factory=list)         # seconds, every client, every change
    first: dict[int, float] = field(default_factory=dict)     # change index -> earliest delay
    frames: int = 0                                           # frames read by the 200 clients


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start(folder: Path, notify: Path, http_port: int) -> subprocess.Popen[bytes]:
    (folder / "plugd.toml").write_text(CONFIG)
    args = [str(PLUGD), "--simulate", "--config", str(folder / "plugd.toml"),
            "--state-dir", str(folder / "state"), "--http-port", str(http_port),
            "--udp-port", str(free_port()), "--broadcast", "127.255.255.255",
            "--log-level", "warning"]
    env = {**os.environ, "NOTIFY_SOCKET": str(notify)}
    env.pop("JOURNAL_STREAM", None)  # keep the log on our stderr file
    return subprocess.Popen(args, stdout=subprocess.DEVNULL,
                            stderr=open(folder / "stderr", "wb"), env=env)


def _stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


async def _listen(ws: ClientConnection, shared: Shared) -> None:
    """One of the 200: stamp every frame, keep the first that carries the current change."""
    done = -1  # index of the last change this client has recorded
    async for raw in ws:
        now = time.monotonic()
        shared.frames += 1
        change = shared.current
        if change is None or change.index == done:
            continue
        msg = json.loads(raw)
        if (msg.get("command") == "thing_update" and msg.get("thingId") == 1
                and msg.get("value") == change.value):
            delay = now - change.sent
            shared.delays.append(delay)
            shared.first[change.index] = min(delay, shared.first.get(change.index, delay))
            done = change.index


async def _answer(ws: ClientConnection, command: str) -> dict:
    """The controller's answer to `command`, skipping the pushes it also receives."""
    while True:
        msg = json.loads(await ws.recv())
        if msg.get("command") in (command, "error"):
            return msg


async def _measure(port: int, token: str, pid: int, shared: Shared) -> dict[str, float]:
    uri = f"ws://127.0.0.1:{port}/ws"
    clients: list[ClientConnection] = []
    listeners: list[asyncio.Task[None]] = []
    try:
        for start in range(0, CLIENTS, 20):  # 20 handshakes at a time
            clients += await asyncio.gather(*(connect(uri, open_timeout=20)
                                              for _ in range(start, min(CLIENTS, start + 20))))
        listeners = [asyncio.create_task(_listen(ws, shared)) for ws in clients]
        async with connect(uri, open_timeout=20) as ctl:
            await ctl.send(json.dumps({"command": "login", "token": token}))
            answer = await _answer(ctl, "response_login")
            if not answer.get("success"):
                raise RuntimeError(f"login with the cli-token refused: {answer}")
            await ctl.send(json.dumps({"command": "switch", "state": "off"}))  # known start
            await _answer(ctl, "response_switch")
            await asyncio.sleep(WARMUP)

            cpu_daemon, cpu_bench, began = _cpu_seconds(pid), time.process_time(), time.monotonic()
            for index in range(CHANGES):
                on = index % 2 == 0
                tick = time.monotonic()
                shared.current = Change(index, 1.0 if on else 0.0, tick)
                await ctl.send(json.dumps({"command": "switch", "state": "on" if on else "off"}))
                answer = await _answer(ctl, "response_switch")
                if answer.get("relay") is not on:
                    raise RuntimeError(f"switch {index} not done: {answer}")
                await asyncio.sleep(max(0.0, tick + GAP - time.monotonic()))
            await asyncio.sleep(DRAIN)
            wall = time.monotonic() - began
            return {"daemon": (_cpu_seconds(pid) - cpu_daemon) / wall,
                    "bench": (time.process_time() - cpu_bench) / wall, "wall": wall}
    finally:
        for task in listeners:
            task.cancel()
        await asyncio.gather(*listeners, return_exceptions=True)
        await asyncio.gather(*(ws.close() for ws in clients), return_exceptions=True)


def run() -> list[Row]:
    shared = Shared()
    with tempfile.TemporaryDirectory(prefix="plugd-fanout-") as tmp, \
            socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        folder = Path(tmp)
        sock.bind(str(folder / "notify"))
        sock.settimeout(20)
        port = free_port(socket.SOCK_STREAM)
        proc = _start(folder, folder / "notify", port)
        try:
            while b"READY=1" not in sock.recv(4096):
                pass
            token = (folder / "state" / "cli-token").read_text().strip()
            cpu = asyncio.run(asyncio.wait_for(_measure(port, token, proc.pid, shared), TIMEOUT))
        finally:
            code = _stop(proc)
        log = (folder / "stderr").read_text(errors="replace").splitlines()
    errors = sum(line.startswith(("ERROR", "CRITICAL")) for line in log)
    dropped = sum("closing a WebSocket client" in line for line in log)

    ms = [d * 1000 for d in shared.delays]
    expected = CLIENTS * CHANGES
    missing = expected - len(ms)
    if not ms:
        return [Row(NAME, "change events received", f"0 of {expected}", "all", False)]
    p50, p99, worst = percentile(ms, 0.5), percentile(ms, 0.99), max(ms)
    first = [d * 1000 for d in shared.first.values()]
    return [
        Row(NAME, f"p99 delay of a relay change, {CLIENTS} WebSocket clients", f"{p99:.2f} ms",
            f"≤ {TARGET_MS:g} ms", p99 <= TARGET_MS and missing == 0),
        Row(NAME, "delay, all clients × changes",
            f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {worst:.2f} ms ({len(ms)} samples: "
            f"{CHANGES} changes {GAP:g} s apart × {CLIENTS} clients)"),
        Row(NAME, "delay to the first client of each change (the rest is the spread over 200)",
            f"p50 {percentile(first, 0.5):.2f} ms, max {max(first):.2f} ms"),
        Row(NAME, "change events not received", f"{missing} of {expected}", "0", missing == 0),
        Row(NAME, "daemon CPU during the changes (utime+stime)",
            f"{cpu['daemon']:.1%} of one core over {cpu['wall']:.1f} s "
            f"(interval pushes 1/s per thing, simulated metering included)"),
        Row(NAME, "bench process CPU (200 clients on one event loop)",
            f"{cpu['bench']:.1%} of one core; {shared.frames:,} frames read"),
        Row(NAME, "clients closed by the daemon as too slow", str(dropped), "0", dropped == 0),
        Row(NAME, "errors logged by the daemon", str(errors), "0", errors == 0),
        Row(NAME, "exit code after SIGTERM", str(code), "0", code == 0),
    ]


if __name__ == "__main__":
    run_alone(run)
