"""The service as systemd sees it: time from start to READY=1, and CPU when idle.

`plugd --simulate` is started as systemd would start it, with a notify socket
of our own; the idle run keeps the meter on (the simulated ADC converts 860
times a second), which is the plug's steady state.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.harness import PLUGD
from bench.report import Row, run_alone
from tests.support import free_port, stop_process

NAME = "Service"
STARTS = 5
IDLE_SECONDS = 60.0



def _start(folder: Path, notify: Path) -> subprocess.Popen[bytes]:
    args = [str(PLUGD), "--simulate", "--state-dir", str(folder / "state"),
            "--http-port", str(free_port(socket.SOCK_STREAM)), "--udp-port", str(free_port()),
            "--broadcast", "127.255.255.255"]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "NOTIFY_SOCKET": str(notify)})


def time_to_ready() -> list[float]:
    """Seconds from exec to READY=1, for several fresh starts."""
    times = []
    for _ in range(STARTS):
        with tempfile.TemporaryDirectory() as tmp, \
                socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            folder = Path(tmp)
            sock.bind(str(folder / "notify"))
            sock.settimeout(20)
            began = time.monotonic()
            proc = _start(folder, folder / "notify")
            try:
                while b"READY=1" not in sock.recv(4096):
                    pass
                times.append(time.monotonic() - began)
            finally:
                stop_process(proc)
    return times


def idle_cpu(seconds: float) -> float:
    """Share of one core the simulated plug uses while nothing happens but metering."""
    with tempfile.TemporaryDirectory() as tmp, \
            socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        folder = Path(tmp)
        sock.bind(str(folder / "notify"))
        sock.settimeout(20)
        proc = _start(folder, folder / "notify")
        try:
            while b"READY=1" not in sock.recv(4096):
                pass
            time.sleep(2.0)  # past the start's own work

            def cpu() -> float:
                fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
                return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

            before, began = cpu(), time.monotonic()
            time.sleep(seconds)
            return (cpu() - before) / (time.monotonic() - began)
        finally:
            stop_process(proc)


def run(seconds: float = IDLE_SECONDS) -> list[Row]:
    """Start-to-READY and idle CPU of the service; rows."""
    starts = time_to_ready()
    share = idle_cpu(seconds)
    return [
        Row(NAME, "start to READY=1 (fake notify socket), median of 5",
            f"{statistics.median(starts):.2f} s (all: {', '.join(f'{t:.2f}' for t in starts)})",
            "≤ 1.0 s", statistics.median(starts) <= 1.0),
        Row(NAME, f"idle CPU over {seconds:.0f} s, --simulate with metering on",
            f"{share:.1%} of one core (the simulated ADS1115 and its ALERT/RDY thread included)",
            "≤ 3 %", share <= 0.03),
    ]


if __name__ == "__main__":
    run_alone(run)
