"""The service as systemd sees it: time from start to READY=1, and CPU when idle.

`plugd --simulate` is started as systemd would start it, with a notify socket
of our own; the idle run keeps the meter on (the simulated ADC converts 860
times a second), which is the plug's steady state.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

from bench.harness import QUIET
from bench.report import Row, run_alone
from tests.support import PlugdProcess

NAME = "Service"
STARTS = 5
IDLE_SECONDS = 60.0
#: Seconds after READY=1 before the idle CPU counts: past the start's own work.
SETTLE = 2.0


def time_to_ready() -> list[float]:
    """Seconds from exec to READY=1, for several fresh starts."""
    times = []
    for _ in range(STARTS):
        with tempfile.TemporaryDirectory() as tmp:
            plug = PlugdProcess(Path(tmp), *QUIET)
            plug.stop()
            times.append(plug.ready_at - plug.spawned_at)
    return times


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_cpu(seconds: float) -> float:
    """Share of one core the simulated plug uses while nothing happens but metering."""
    with tempfile.TemporaryDirectory() as tmp:
        plug = PlugdProcess(Path(tmp), *QUIET)
        try:
            assert plug.proc is not None
            time.sleep(SETTLE)
            before, began = cpu_seconds(plug.proc.pid), time.monotonic()
            time.sleep(seconds)  # the span measured
            return (cpu_seconds(plug.proc.pid) - before) / (time.monotonic() - began)
        finally:
            plug.stop()


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
