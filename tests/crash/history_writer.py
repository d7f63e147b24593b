"""A process that writes the energy history as fast as it can, for the SIGKILL test: a minute of
1 Wh per flush, and `ok <n>` on stdout once flush n is committed."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

from plugd.service.energydb import DB_FILE, EnergyHistory

#: The first minute written (2026-06-01 00:00 UTC); minute n is at BASE + 60 n.
BASE = 1780272000


async def main(state: Path, first: int) -> None:
    db = EnergyHistory(state / DB_FILE, ZoneInfo("Europe/Berlin"))
    await db.open()
    n = first
    while True:
        db.record(BASE + 60 * n + 30, 1.0, 60.0)
        if not await db.flush(BASE + 60 * n):
            raise SystemExit(f"flush {n} refused: {db.fault}")
        print(f"ok {n}", flush=True)
        n += 1


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2])))
