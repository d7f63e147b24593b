"""`python -m tests.crash --kills 1000`: the long crash run (`make crash`); exit 1 on any failure."""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
from pathlib import Path

from .kills import run


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m tests.crash",
                                description="SIGKILL a simulated plugd at random moments and "
                                            "check after each restart that it kept what it "
                                            "acknowledged.")
    p.add_argument("--kills", type=int, default=1000)
    p.add_argument("--seed", type=int, help="replay a run (default: a new seed, printed)")
    p.add_argument("--clients", type=int, default=3)
    p.add_argument("--max-delay", type=float, default=1.0, metavar="S",
                   help="the kill comes after a random delay up to this")
    p.add_argument("--keep", type=Path, metavar="DIR", help="work here and keep it (state, log)")
    args = p.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    print(f"crash run: seed {seed}, {args.kills} kills, {args.clients} clients", flush=True)
    with tempfile.TemporaryDirectory(prefix="plugd-crash-") as scratch:
        work = args.keep or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        summary = asyncio.run(run(work, args.kills, seed, clients=args.clients,
                                  max_delay=args.max_delay,
                                  progress=lambda line: print(line, flush=True)))
    print(summary)
    for failure in summary.failures:
        print(f"FAILED {failure}")
    return 1 if summary.failures else 0


if __name__ == "__main__":
    sys.exit(main())
