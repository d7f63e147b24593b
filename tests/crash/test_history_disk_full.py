"""A full disk under the history: a refused flush keeps what was stored and what it could not
write, says so once, and writes it all once there is room; the daemon goes on serving."""

from __future__ import annotations

import asyncio
from pathlib import Path
from zoneinfo import ZoneInfo

from conftest import Client
from websockets.asyncio.client import connect

from plugd.core.history import EnergyQuery
from plugd.service.daemon import Daemon
from plugd.service.energydb import DB_FILE, EnergyHistory

from .test_disk_full import daemon_on_small_disk, fill, small_disk  # noqa: F401 (fixtures)

BERLIN = ZoneInfo("Europe/Berlin")
START = 1780272000  # 2026-06-01 00:00 UTC


def feed(db: EnergyHistory, minutes: range) -> None:
    for n in minutes:
        db.record(START + 60 * n + 30, 1.0, 60.0)


async def test_a_refused_flush_keeps_everything_and_says_so(small_disk: Path) -> None:  # noqa: F811
    told: list[str | None] = []
    db = EnergyHistory(small_disk / DB_FILE, BERLIN, told.append)
    await db.open()
    try:
        feed(db, range(10))
        assert await db.flush(START + 600)
        filler = await asyncio.to_thread(fill, small_disk)
        refused, n = False, 10
        while not refused:  # a flush fits in the WAL's pages already there; more do not
            assert n < 5000, "the full disk took every flush"
            feed(db, range(n, n + 120))
            refused = not await db.flush(START + 60 * n)
            n += 120
        assert db.fault is not None and "full" in db.fault
        assert len(told) == 1 and told[0] is not None and "not saved" in told[0]
        # What was stored stays, what was refused is still read (from memory).
        assert sum(wh for _, wh in await db.energy(EnergyQuery("minute"))) == n
        assert db.view()["minutesPending"] > 0
        await asyncio.to_thread(filler.unlink)
        assert await db.flush(START + 60 * n)
        assert told[-1] is None and db.fault is None and db.view()["minutesPending"] == 0
    finally:
        await db.close()
    again = EnergyHistory(small_disk / DB_FILE, BERLIN)
    await again.open()
    try:  # every minute on disk, the refused ones too
        assert sum(wh for _, wh in await again.energy(EnergyQuery("day"))) == n
    finally:
        await again.close()


async def test_the_daemon_serves_the_history_while_the_disk_is_full(
        daemon_on_small_disk: Daemon, small_disk: Path) -> None:  # noqa: F811
    daemon = daemon_on_small_disk
    store = daemon.energy_history
    assert store is not None
    await asyncio.to_thread(fill, small_disk)
    for n in range(0, 5000, 120):  # the meter's own readings, and many more, until refused
        feed(store, range(n, n + 120))
        if not await store.flush(daemon.wall()):
            break
    else:
        raise AssertionError("the full disk took every flush")
    async with connect(f"ws://127.0.0.1:{daemon.web.port}/ws") as ws:
        client = Client(ws)
        status = await client.ask({"command": "request_status"})
        assert "full" in status["history"]["fault"]
        answer = await client.ask({"command": "request_energy", "period": "month"})
        assert sum(wh for _, wh in answer["buckets"]) >= n + 120
    assert any(e.kind == "fault" and "energy history" in e.message for e in daemon.plug.events)
