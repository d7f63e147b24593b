"""The results table: every benchmark returns rows, and one formatter prints them all."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    """One measured figure, its target if it has one, and whether the target was met."""

    benchmark: str
    metric: str
    result: str
    target: str = ""
    met: bool | None = None  # None: no target, the figure is context


def verdict(met: bool | None) -> str:
    """A row's verdict as the table writes it."""
    return {True: "yes", False: "**NO**", None: ""}[met]


def table(rows: Iterable[Row]) -> str:
    """A Markdown table of the rows, in order."""
    lines = ["| Benchmark | Metric | Result | Target | Met |", "|---|---|---|---|---|"]
    lines += [f"| {r.benchmark} | {r.metric} | {r.result} | {r.target} | {verdict(r.met)} |"
              for r in rows]
    return "\n".join(lines)


def exit_status(rows: Iterable[Row]) -> int:
    """1 when a target was missed (or a benchmark failed), so `make bench` says so."""
    return 1 if any(row.met is False for row in rows) else 0


def run_alone(measure: Callable[[], list[Row]]) -> None:
    """`python -m bench.<name>`: run one benchmark, print its table, exit with `exit_status`."""
    try:
        rows = measure()
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        sys.exit(130)
    print(table(rows))
    sys.exit(exit_status(rows))
