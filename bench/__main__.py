"""`python -m bench`: run every benchmark, print the table, keep it in bench/results/latest.md.

Benchmarks run one after another so they never compete for the CPU. One that
fails is reported as a row and the others still run. The exit status is 1
when a benchmark failed or missed its target, so `make bench` says so.
"""

from __future__ import annotations

import os
import platform
import sys
import time
import traceback
from datetime import datetime
from pathlib import Path

from bench import (
    accuracy,
    acquisition,
    energy,
    fanout,
    flood,
    footprint,
    history,
    idle,
    ingest,
    latency,
    mqtt,
    service,
    soak,
)
from bench.report import Row, exit_status, table

#: Each module has a NAME and a `run() -> list[Row]`.
BENCHMARKS = [latency, ingest, footprint, accuracy, energy, acquisition, service, idle, fanout,
              flood, mqtt, history, soak]
RESULTS = Path(__file__).resolve().parent / "results" / "latest.md"


def run_all() -> list[Row]:
    """Run every benchmark in turn; one that fails becomes a row, the others still run."""
    rows: list[Row] = []
    for benchmark in BENCHMARKS:
        print(f"bench: {benchmark.NAME}...", file=sys.stderr, flush=True)
        try:
            rows += benchmark.run()
        except Exception as err:
            traceback.print_exc()
            rows.append(Row(benchmark.NAME, "run", f"failed: {type(err).__name__}: {err}",
                            "completes", False))
    return rows


def cpu_busy(seconds: float = 1.0) -> float:
    """How busy the machine's CPUs are (0..1), from /proc/stat over `seconds`.

    Taken before the run: other work on the machine lowers every figure.
    """
    def ticks() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = values[3] + values[4]  # idle + iowait
        return sum(values) - idle, sum(values)

    busy_before, total_before = ticks()
    time.sleep(seconds)
    busy_after, total_after = ticks()
    return (busy_after - busy_before) / max(1, total_after - total_before)


def main() -> int:
    """`make bench`: measure, print and keep the table; 1 when a target is missed."""
    began = time.monotonic()
    try:
        busy = cpu_busy()
        rows = run_all()
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    took = time.monotonic() - began
    header = (f"# plugd benchmarks, {datetime.now().isoformat(timespec='seconds')}\n\n"
              f"Python {platform.python_version()} on {platform.machine()}, "
              f"{os.cpu_count()} CPUs, Linux {platform.release()}; the run took {took:.0f} s; "
              f"CPUs {busy:.0%} busy with other work just before it.\n")
    if busy > 0.1:
        header += "\n**Other processes were busy when the run began: the figures may be low.**\n"
    text = f"{header}\n{table(rows)}\n"
    print(text)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(text, encoding="utf-8")
    return exit_status(rows)


if __name__ == "__main__":
    sys.exit(main())
