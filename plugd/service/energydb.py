"""The energy and power history: an SQLite database in the state directory.

Readings are summed per minute in memory (on the event loop, a dict and a
lock: nothing that waits) and written with the energy counters' flush, one
transaction per flush: an SD card sees one write a minute, and a power cut
loses at most `meter.flush_interval`, like the counters. Each transaction adds
its minutes to the minute, hour, day and month tables and prunes what is past
its retention (plugd.core.history.RETENTION).

One thread owns the connection and runs every job in turn, writes and reads
alike: the event loop never waits on SQLite, and a read sees every flush sent
before it. A read adds what is not written yet (the current minute, or minutes
a refused write kept back), so the current bucket is always up to date.

The database is in WAL mode with full sync: a SIGKILL or a power cut leaves
the last committed flush. A write the disk refuses (full) is rolled back, its
minutes stay in memory for the next flush, and the history says so once (a
log line, an event, the status) and the daemon goes on. A database that
cannot be read is moved aside with its time, never deleted, and a new one
begun.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from plugd.core import history
from plugd.core.history import EnergyQuery, Minute
from plugd.core.plug import Cause

if TYPE_CHECKING:
    from plugd.service.meter import Meter
    from plugd.service.plug import Plug

log = logging.getLogger(__name__)
T = TypeVar("T")

DB_FILE = "history.sqlite3"
#: The schema's version, kept in SQLite's user_version.
SCHEMA = 1
_TABLES = ("minute", "hour", "day", "month")
_CREATE = """
CREATE TABLE minute (start INTEGER PRIMARY KEY, wh REAL NOT NULL, n INTEGER NOT NULL,
                     watts_sum REAL NOT NULL, low REAL, high REAL);
CREATE TABLE hour (start INTEGER PRIMARY KEY, wh REAL NOT NULL);
CREATE TABLE day (start INTEGER PRIMARY KEY, wh REAL NOT NULL);
CREATE TABLE month (start INTEGER PRIMARY KEY, wh REAL NOT NULL);
PRAGMA user_version = 1;
"""
_ADD_MINUTE = """
INSERT INTO minute (start, wh, n, watts_sum, low, high) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (start) DO UPDATE SET wh = wh + excluded.wh, n = n + excluded.n,
  watts_sum = watts_sum + excluded.watts_sum,
  low = min(coalesce(low, excluded.low), coalesce(excluded.low, low)),
  high = max(coalesce(high, excluded.high), coalesce(excluded.high, high))
"""


def local_zone() -> datetime.tzinfo:
    """The system's time zone as the C library takes it: `TZ` (a zone name or a zone file),
    else /etc/localtime; a TZ rule that names no zone gives its current offset."""
    name = os.environ.get("TZ")
    if name is not None:
        key = name.removeprefix(":")
        try:
            if key.startswith("/"):
                with open(key, "rb") as zone_file:
                    return ZoneInfo.from_file(zone_file, key)
            return ZoneInfo(key or "UTC")
        except (OSError, ValueError, ZoneInfoNotFoundError):
            log.warning("TZ=%s names no time zone file: the history's local hours follow its "
                        "current offset", name)
            return datetime.datetime.now().astimezone().tzinfo or datetime.UTC
    try:
        with open("/etc/localtime", "rb") as zone_file:
            return ZoneInfo.from_file(zone_file, "localtime")
    except (OSError, ValueError):
        return datetime.UTC


class EnergyHistory:
    """The history outlet: minutes summed on the loop, written and read by one thread."""

    def __init__(self, path: Path, tz: datetime.tzinfo,
                 on_fault: Callable[[str | None], None] | None = None) -> None:
        self.path = path
        self.tz = tz
        #: Told when writing starts failing (the reason) and when it works again (None).
        self.on_fault = on_fault
        #: Why the last write failed (None: it worked).
        self.fault: str | None = None
        self.writes = 0
        self._pending: dict[int, Minute] = {}
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="history")
        self._db: sqlite3.Connection | None = None

    # --- the loop's side ----------------------------------------------------------

    async def _run(self, job: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, job, *args)

    async def open(self) -> None:
        """Open (or make) the database; one that cannot be read is set aside and begun anew."""
        await self._run(self._open)

    def record(self, wall: float, wh: float, watts: float | None) -> None:
        """One reading at wall time `wall`: the energy since the one before, its power or None."""
        start = int(wall // history.MINUTE * history.MINUTE)
        with self._lock:
            minute = self._pending.get(start)
            if minute is None:
                minute = self._pending[start] = Minute()
            minute.add(wh, watts)

    async def flush(self, now: float) -> bool:
        """Write what was recorded since the last flush, and prune; False if it was refused."""
        return await self._run(self._write, now)

    async def energy(self, query: EnergyQuery) -> list[tuple[int, float]]:
        """The buckets of `query`, oldest first, what is not written yet included."""
        return await self._run(self._energy, query)

    async def power(self, first: int, last: int) -> dict[int, Minute]:
        """The minutes from `first` to `last` (minute starts) that have readings."""
        return await self._run(self._power, first, last)

    async def reconcile(self, day: datetime.date | None, today_wh: float, yesterday_wh: float,
                        now: float) -> None:
        """Make the day buckets hold at least what the energy counters say of their day and the
        day before (a history begun mid-day, a kill between the two writes of a flush): the
        difference goes to the current hour, or to the day itself when that is past."""
        if day is not None:
            await self._run(self._reconcile, day, today_wh, yesterday_wh, now)

    async def close(self) -> None:
        """Stop the thread after the jobs sent; the caller flushes first."""
        await self._run(self._close)
        self._executor.shutdown(wait=True)

    def view(self) -> dict[str, Any]:
        """The history's state for `request_status`."""
        with self._lock:
            pending = len(self._pending)
        return {"file": self.path.name, "fault": self.fault, "writes": self.writes,
                "minutesPending": pending}

    # --- the thread's side ----------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]  # before changing a byte
            if version > SCHEMA:
                raise sqlite3.DatabaseError(f"its schema {version} is newer than this plugd's "
                                            f"({SCHEMA})")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = FULL")  # a committed flush survives a power cut
            db.execute("PRAGMA wal_autocheckpoint = 100")  # pages: the WAL stays small
            db.execute("PRAGMA journal_size_limit = 1048576")
            if version == 0:
                db.executescript(f"BEGIN; {_CREATE} COMMIT;")
            db.execute("SELECT count(*) FROM minute").fetchone()
        except BaseException:
            db.close()
            raise
        return db

    def _open(self) -> None:
        try:
            self._db = self._connect()
        except sqlite3.DatabaseError as err:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
            try:
                self.path.rename(aside)
            except OSError as move_err:
                self._failed(f"cannot open {self.path}: {err}; it could not be moved aside "
                             f"({move_err})")
                return
            for suffix in ("-wal", "-shm"):
                self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)
            log.error("%s is unreadable (%s); kept as %s, beginning a new history", self.path, err, aside)
            try:
                self._db = self._connect()
            except sqlite3.Error as again:
                self._failed(f"cannot make {self.path}: {again}")
        except sqlite3.Error as err:
            self._failed(f"cannot open {self.path}: {err}")

    def _failed(self, why: str) -> None:
        if why != self.fault:
            log.error("the energy history is not saved: %s", why)
            if self.on_fault is not None:
                self.on_fault(f"the energy history is not saved: {why}")
        self.fault = why

    def _worked(self) -> None:
        if self.fault is not None:
            self.fault = None
            log.info("the energy history is saved again")
            if self.on_fault is not None:
                self.on_fault(None)

    def _write(self, now: float) -> bool:
        with self._lock:
            batch, self._pending = self._pending, {}
        if self._db is None:
            self._open()  # a database that could not be opened may be openable now
        db = self._db
        try:
            if db is None:
                raise sqlite3.OperationalError(self.fault or "no database")
            self._commit(db, batch, now)
        except sqlite3.Error as err:
            if db is not None and db.in_transaction:
                db.rollback()
            with self._lock:  # kept for the next flush, and shown by reads meanwhile
                history.add_minutes(batch, self._pending)
                self._pending = batch
            self._failed(f"cannot write {self.path}: {err}")
            return False
        self.writes += 1
        self._worked()
        return True

    def _commit(self, db: sqlite3.Connection, batch: dict[int, Minute], now: float) -> None:
        db.execute("BEGIN IMMEDIATE")
        db.executemany(_ADD_MINUTE, [
            (start, m.wh, m.count, m.watts_sum, m.low if m.count else None, m.high if m.count else None)
            for start, m in batch.items()])
        wh = {start: m.wh for start, m in batch.items()}
        for period in ("hour", "day", "month"):
            self._add(db, period, history.rollup(wh, period, self.tz))
        for period in _TABLES:
            before = history.prune_before(period, now)
            if before is not None:
                db.execute(f"DELETE FROM {period} WHERE start < ?", (before,))
        db.execute("COMMIT")

    @staticmethod
    def _add(db: sqlite3.Connection, period: str, buckets: dict[int, float]) -> None:
        db.executemany(f"INSERT INTO {period} (start, wh) VALUES (?, ?) "
                       "ON CONFLICT (start) DO UPDATE SET wh = wh + excluded.wh", buckets.items())

    def _unwritten(self, period: str) -> dict[int, float]:
        with self._lock:
            wh = {start: m.wh for start, m in self._pending.items()}
        return wh if period == "minute" else history.rollup(wh, period, self.tz)

    def _energy(self, query: EnergyQuery) -> list[tuple[int, float]]:
        found: dict[int, float] = {}
        if self._db is not None:
            try:
                rows = self._db.execute(
                    f"SELECT start, wh FROM {query.period} WHERE start >= ? AND start < ? ORDER BY start",
                    (max(query.first, -2.0**62), min(query.last, 2.0**62))).fetchall()
            except sqlite3.Error as err:
                log.error("cannot read %s: %s", self.path, err)
                rows = []
            found = dict(rows)
        for start, wh in self._unwritten(query.period).items():
            if query.holds(start):
                found[start] = found.get(start, 0.0) + wh
        return sorted(found.items())

    def _power(self, first: int, last: int) -> dict[int, Minute]:
        found: dict[int, Minute] = {}
        if self._db is not None:
            try:
                rows = self._db.execute("SELECT start, wh, n, watts_sum, low, high FROM minute "
                                        "WHERE start >= ? AND start <= ?", (first, last)).fetchall()
            except sqlite3.Error as err:
                log.error("cannot read %s: %s", self.path, err)
                rows = []
            for start, wh, count, watts_sum, low, high in rows:
                found[start] = Minute(wh, count, watts_sum, math.inf if low is None else low,
                                      -math.inf if high is None else high)
        with self._lock:
            history.add_minutes(found, {s: m for s, m in self._pending.items() if first <= s <= last})
        return found

    def _reconcile(self, day: datetime.date, today_wh: float, yesterday_wh: float, now: float) -> None:
        db = self._db
        if db is None:
            return
        current_day = history.bucket_start("day", now, self.tz)
        extra: dict[str, dict[int, float]] = {"hour": {}, "day": {}, "month": {}}
        for date, counted in ((day, today_wh), (day - datetime.timedelta(days=1), yesterday_wh)):
            start = int(datetime.datetime(date.year, date.month, date.day, tzinfo=self.tz).timestamp())
            row = db.execute("SELECT wh FROM day WHERE start = ?", (start,)).fetchone()
            missing = counted - (row[0] if row else 0.0) - self._unwritten("day").get(start, 0.0)
            if missing <= 1e-9:
                continue
            extra["day"][start] = missing
            month = history.bucket_start("month", start, self.tz)
            extra["month"][month] = extra["month"].get(month, 0.0) + missing
            if start == current_day:
                extra["hour"][history.bucket_start("hour", now, self.tz)] = missing
        if not extra["day"]:
            return
        try:
            db.execute("BEGIN IMMEDIATE")
            for period, buckets in extra.items():
                self._add(db, period, buckets)
            db.execute("COMMIT")
            log.info("the energy history took %.3f Wh counted before it began (or before a kill)",
                     sum(extra["day"].values()))
        except sqlite3.Error as err:
            if db.in_transaction:
                db.rollback()
            self._failed(f"cannot write {self.path}: {err}")

    def _close(self) -> None:
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error as err:
                log.error("cannot close %s: %s", self.path, err)
            self._db = None


async def start_history(meter: Meter, plug: Plug, wall: Callable[[], float]) -> EnergyHistory:
    """The history of a plug with a meter, open and fed by its readings: in the state directory,
    in the system's time zone, telling its faults as events."""
    loop = asyncio.get_running_loop()

    def tell(text: str | None) -> None:  # from the history's thread
        loop.call_soon_threadsafe(plug.record, "fault", text or "the energy history is saved again",
                                  Cause("history"), "history")

    store = EnergyHistory(plug.state.path / DB_FILE, local_zone(), tell)
    await store.open()
    meter.on_reading = store.record
    energy = meter.energy
    await store.reconcile(energy.day, energy.today_wh, energy.yesterday_wh, wall())
    return store
