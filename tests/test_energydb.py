"""The history database on its own, with real SQLite: batches, rollups, retention, reads that
include what is not written yet, reopening, a database set aside, and reconciling with the
energy counters."""

from __future__ import annotations

import asyncio
import datetime
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from plugd.core.history import EnergyQuery
from plugd.service import energydb
from plugd.service.energydb import DB_FILE, EnergyHistory

BERLIN = ZoneInfo("Europe/Berlin")


def at(*fields: int) -> int:
    return int(datetime.datetime(*fields, tzinfo=BERLIN).timestamp())


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[EnergyHistory]:
    db = EnergyHistory(tmp_path / DB_FILE, BERLIN)
    await db.open()
    yield db
    await db.close()


def feed(db: EnergyHistory, first: int, seconds: int, watts: float) -> None:
    """A reading a second, each the energy of the second before it."""
    for t in range(first, first + seconds):
        db.record(t + 0.5, watts / 3600.0, watts)


def rows(path: Path, table: str) -> list[tuple[int, float]]:
    with sqlite3.connect(path) as db:
        return db.execute(f"SELECT start, wh FROM {table} ORDER BY start").fetchall()


async def test_a_flush_writes_minutes_hours_days_and_months_in_one_go(store: EnergyHistory) -> None:
    start = at(2026, 3, 29, 1, 59)  # the minute before the spring change
    feed(store, start, 120, 3600.0)
    assert await store.flush(start + 120)
    minutes = rows(store.path, "minute")
    assert [s for s, _ in minutes] == [start, start + 60]
    assert [wh for _, wh in minutes] == pytest.approx([60.0, 60.0])
    hours = rows(store.path, "hour")
    assert hours == [(start - 59 * 60, pytest.approx(60.0)), (at(2026, 3, 29, 3), pytest.approx(60.0))]
    assert rows(store.path, "day") == [(at(2026, 3, 29), pytest.approx(120.0))]
    assert rows(store.path, "month") == [(at(2026, 3, 1), pytest.approx(120.0))]


async def test_reads_include_what_is_not_written_yet(store: EnergyHistory) -> None:
    start = at(2026, 6, 1, 12)
    feed(store, start, 60, 600.0)
    assert await store.flush(start + 60)
    feed(store, start + 60, 30, 600.0)  # not flushed: the current minute and hour
    assert await store.energy(EnergyQuery("hour")) == [(start, pytest.approx(15.0))]
    assert await store.energy(EnergyQuery("minute")) == [
        (start, pytest.approx(10.0)), (start + 60, pytest.approx(5.0))]
    power = await store.power(start, start + 60)
    assert power[start].power() == pytest.approx((600.0, 600.0, 600.0))
    assert power[start + 60].count == 30


async def test_a_minute_split_by_a_flush_is_merged(store: EnergyHistory) -> None:
    start = at(2026, 6, 1, 12)
    for t, watts in ((0, 100.0), (1, None), (2, 300.0)):
        store.record(start + t, 1.0, watts)
        assert await store.flush(start + t)
    (minute,) = (await store.power(start, start)).values()
    assert (minute.wh, minute.count) == (3.0, 2)
    assert minute.power() == (200.0, 100.0, 300.0)


async def test_ranges_select_bucket_starts(store: EnergyHistory) -> None:
    for day in range(1, 6):
        feed(store, at(2026, 6, day, 12), 10, 360.0)
    assert await store.flush(at(2026, 6, 6))
    got = await store.energy(EnergyQuery("day", at(2026, 6, 2), at(2026, 6, 4)))
    assert [s for s, _ in got] == [at(2026, 6, 2), at(2026, 6, 3)]


async def test_retention_prunes_minutes_after_two_days_and_hours_after_two_years(
        store: EnergyHistory) -> None:
    old = at(2024, 1, 10, 12)
    feed(store, old, 10, 3600.0)
    assert await store.flush(old + 10)
    assert await store.flush(old + 3 * 86400)
    assert rows(store.path, "minute") == [] and len(rows(store.path, "hour")) == 1
    assert await store.flush(old + 800 * 86400)
    assert rows(store.path, "hour") == []
    assert rows(store.path, "day") == [(at(2024, 1, 10), pytest.approx(10.0))]  # for good
    assert rows(store.path, "month") == [(at(2024, 1, 1), pytest.approx(10.0))]


async def test_the_history_is_kept_across_a_reopen_and_versioned(tmp_path: Path) -> None:
    db = EnergyHistory(tmp_path / DB_FILE, BERLIN)
    await db.open()
    feed(db, at(2026, 6, 1, 12), 10, 3600.0)
    assert await db.flush(at(2026, 6, 1, 13))
    await db.close()
    again = EnergyHistory(tmp_path / DB_FILE, BERLIN)
    await again.open()
    try:
        assert await again.energy(EnergyQuery("day")) == [(at(2026, 6, 1), pytest.approx(10.0))]
    finally:
        await again.close()
    with sqlite3.connect(tmp_path / DB_FILE) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == energydb.SCHEMA
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize("content", [b"this is not a database" * 100, None])
async def test_an_unreadable_database_is_set_aside_and_a_new_one_begun(
        tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / DB_FILE
    if content is None:  # a newer plugd's schema
        with sqlite3.connect(path) as raw:
            raw.execute(f"PRAGMA user_version = {energydb.SCHEMA + 1}")
        content = path.read_bytes()
    else:
        path.write_bytes(content)
    db = EnergyHistory(path, BERLIN)
    await db.open()
    try:
        (aside,) = tmp_path.glob(f"{DB_FILE}.corrupt-*")
        assert aside.read_bytes() == content
        feed(db, at(2026, 6, 1, 12), 10, 3600.0)
        assert await db.flush(at(2026, 6, 1, 13)) and db.fault is None
    finally:
        await db.close()


async def test_reconciling_gives_the_counters_energy_to_the_current_hour(store: EnergyHistory) -> None:
    now = at(2026, 6, 2, 15, 30)
    feed(store, at(2026, 6, 2, 9), 60, 600.0)  # 10 Wh in the history today
    assert await store.flush(at(2026, 6, 2, 9, 2))
    feed(store, at(2026, 6, 2, 15, 29), 60, 600.0)  # 10 Wh more, not written yet
    await store.reconcile(datetime.date(2026, 6, 2), 50.0, 7.0, now)
    hours = dict(await store.energy(EnergyQuery("hour")))
    assert hours[at(2026, 6, 2, 15)] == pytest.approx(40.0)  # the 30 Wh it lacked, the 10 it had
    assert sum(hours.values()) == pytest.approx(50.0)  # as much as the counters say
    days = dict(await store.energy(EnergyQuery("day")))
    assert days == {at(2026, 6, 1): pytest.approx(7.0), at(2026, 6, 2): pytest.approx(50.0)}
    await store.reconcile(datetime.date(2026, 6, 2), 50.0, 7.0, now)  # nothing lacks now
    assert dict(await store.energy(EnergyQuery("day"))) == days


async def test_the_loop_is_free_while_the_thread_writes(store: EnergyHistory) -> None:
    feed(store, at(2026, 6, 1, 12), 3600, 100.0)
    flushing = asyncio.create_task(store.flush(at(2026, 6, 1, 13)))
    await asyncio.sleep(0)  # one step of the flush: a write on the loop would finish in it
    assert not flushing.done()  # it handed the hour of readings to the thread and came back
    assert await flushing
