"""Idle: the CPU a `plugd --simulate` with nothing to do takes, with and without its meter.

A plug sits idle nearly all its life, on a board that has other work, so its
resting cost matters more than its peak. Two real `plugd` processes are
measured, one after the other: the simulated plug as `make run` starts it
(the emulated ADS1115 converting 860 times a second, the sampler reading
each conversion, the display, the mesh's broadcast), and the same daemon with
`[adc] enabled = false`, which is the daemon's own resting cost. Each settles
first, then its user + system time is read from /proc/<pid>/stat over a fixed
span, so the figure is a share of one core whatever the machine's speed.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from bench.harness import QUIET
from bench.report import Row, run_alone
from bench.service import cpu_seconds
from tests.support import PlugdProcess, Tables

NAME = "Idle"
SETTLE_SECONDS = 5.0  # start-up work (imports, the first windows, the first flush) left behind
SPAN_SECONDS = 60.0  # a whole energy flush interval, so its writes count once
TARGET_SIMULATE = 0.03  # of one core
TARGET_DAEMON = 0.005
#: Loopback only, mesh broadcasts at their default interval.
CONFIG: Tables = {"mesh": {"bind": "127.0.0.1"}}
WITHOUT_METER: Tables = {**CONFIG, "adc": {"enabled": False}}


def idle_share(config: Tables, span: float = SPAN_SECONDS) -> float:
    """Share of one core a `plugd --simulate` with `config` uses over `span` once settled."""
    with tempfile.TemporaryDirectory(prefix="plugd-idle-") as tmp:
        plug = PlugdProcess(Path(tmp), *QUIET, name="Idle", config=config)
        try:
            assert plug.proc is not None
            pid = plug.proc.pid
            time.sleep(SETTLE_SECONDS)
            cpu0, t0 = cpu_seconds(pid), time.monotonic()
            time.sleep(span)  # the span measured: the daemon alone, nothing sent to it
            cpu1, t1 = cpu_seconds(pid), time.monotonic()
        except Exception:
            print(plug.tail(), file=sys.stderr)
            raise
        finally:
            plug.stop()
    return (cpu1 - cpu0) / (t1 - t0)


def run() -> list[Row]:
    """The idle rows: `plugd --simulate`, then the daemon without its meter."""
    simulate = idle_share(CONFIG)
    daemon = idle_share(WITHOUT_METER)
    return [
        Row(NAME, f"CPU of `plugd --simulate` at rest ({SPAN_SECONDS:g} s, /proc/<pid>/stat)",
            f"{simulate:.2%} of a core", f"≤ {TARGET_SIMULATE:.0%}", simulate <= TARGET_SIMULATE),
        Row(NAME, "CPU of the daemon without the meter (`[adc] enabled = false`)",
            f"{daemon:.2%} of a core", f"≤ {TARGET_DAEMON:.1%}", daemon <= TARGET_DAEMON),
    ]


if __name__ == "__main__":
    run_alone(run)
