"""The schedules at work: kept in schedules.json, planned by `plugd.core.schedules`, and run
through the plug like any other writer (the relay's authority decides).

A task reads the clocks at least once a second (and at each run's moment), so a
wall clock that NTP steps is noticed within a second and the plan follows it.
Local time is the system's: the TZ variable as the C library reads it, else
/etc/localtime.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from plugd.core.model import OFF, ON, ThingId
from plugd.core.plug import Cause
from plugd.core.schedules import Location, Planner, Run, Schedule, last_state, parse_list, upcoming
from plugd.errors import HardwareError, ValidationError
from plugd.service.config import LocationConfig
from plugd.service.plug import Plug
from plugd.service.store import StateDir, dump

log = logging.getLogger(__name__)

SCHEDULES_FILE = "schedules.json"
LOCALTIME = Path("/etc/localtime")


def local_zone(environ: Mapping[str, str] = os.environ, localtime: Path = LOCALTIME) -> tzinfo:
    """The system's time zone as the C library finds it: TZ (a zone name, ":name" or a file's
    path; empty: UTC), else /etc/localtime, else UTC. A POSIX rule string in TZ
    ("CET-1CEST,M3.5.0,M10.5.0/3"), which zoneinfo cannot read, gives its standard offset."""
    name = environ.get("TZ")
    if name is None:
        try:
            with localtime.open("rb") as file:
                return ZoneInfo.from_file(file, key=_zone_name(localtime))
        except (OSError, ValueError):
            return UTC
    name = name.removeprefix(":")
    if not name:
        return UTC
    try:
        if name.startswith("/"):
            with open(name, "rb") as file:
                return ZoneInfo.from_file(file, key=_zone_name(Path(name)))
        return ZoneInfo(name)
    except (OSError, ValueError, ZoneInfoNotFoundError):
        time.tzset()
        log.warning("TZ=%r is no zone of the time zone database: schedules use UTC%+.1f h all year",
                    name, -time.timezone / 3600)
        return timezone(timedelta(seconds=-time.timezone))


def _zone_name(path: Path) -> str:
    """The zone's name where the file is a link into the database ("Europe/Berlin"), else the
    path."""
    with contextlib.suppress(OSError):
        target = str(path.resolve())
        if "/zoneinfo/" in target:
            return target.split("/zoneinfo/", 1)[1]
    return str(path)


def location_of(config: LocationConfig) -> Location | None:
    """[location] as the schedules take it (None: not set)."""
    return Location(config.latitude, config.longitude) if config.is_set else None


def zone_key(tz: tzinfo) -> str | None:
    """The database name of a zone, for the page (None: a fixed offset or a file of its own)."""
    key = getattr(tz, "key", None)
    return key if isinstance(key, str) and "/" in key and not key.startswith("/") else (
        "UTC" if tz is UTC else None)


class Scheduler:
    """The schedules in force, their storage and the task that runs them."""

    def __init__(self, state: StateDir, location: Location | None, *, tz: tzinfo | None = None,
                 wall: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.state = state
        self.tz = tz or local_zone()
        self.wall = wall
        self.monotonic = monotonic
        self.schedules: list[Schedule] = state.load(SCHEDULES_FILE, parse_list, list)
        self.planner = Planner(self.tz, location, wall(), monotonic())
        self.planner.replace(self.schedules)
        #: Held from reading the list to storing the new one (two clients' saves never mix).
        self.lock = asyncio.Lock()
        self.plug: Plug | None = None
        self._task: asyncio.Task[None] | None = None
        self._at_start: tuple[bool, Schedule, float] | None = None

    @property
    def location(self) -> Location | None:
        """Where the plug is, for the sun (None: not set)."""
        return self.planner.location

    def power_on(self, saved: bool) -> bool | None:
        """power_on_state = "schedule": the state the last run before now set (None: none ran
        in the last week); `saved` is the relay's saved state, which toggles start from."""
        found = last_state(self.schedules, self.wall(), saved, self.tz, self.location)
        self._at_start = found
        return None if found is None else found[0]

    def start(self, plug: Plug) -> None:
        """Run the schedules through `plug` from now on."""
        self.plug = plug
        if self._at_start is not None:
            state, schedule, at = self._at_start
            plug.record("schedule", f"relay {'on' if state else 'off'} at start, as schedule "
                        f"{schedule.id} ({schedule.words()}, {schedule.action}) set it at "
                        f"{self._clock(at)}", Cause("schedule", schedule.detail()),
                        subject=f"schedule {schedule.id}")
        self._task = asyncio.get_running_loop().create_task(self._run(), name="schedules")

    async def stop(self) -> None:
        """Stop running schedules."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                self.check()
            except Exception:
                log.exception("the schedules' check failed")
            due = self.planner.next_due()
            wait = 1.0 - self.wall() % 1.0  # each second: a stepped clock is seen within one
            if due is not None:
                wait = min(wait, max(due - self.wall(), 0.0))
            await asyncio.sleep(max(wait, 0.005))

    def check(self) -> list[Run]:
        """Read the clocks; carry out the runs due since the last reading. Returns them."""
        runs = self.planner.advance(self.wall(), self.monotonic())
        for run in runs:
            self._carry_out(run)
        return runs

    def _carry_out(self, run: Run) -> None:
        plug, schedule = self.plug, run.schedule
        if plug is None:
            return
        cause = Cause("schedule", schedule.detail())
        subject = f"schedule {schedule.id}"
        if run.skipped:
            plug.record("schedule", f"schedule {schedule.id} ({schedule.words()}) did not run at "
                        f"{self._clock(run.at)}: the clock was set forward past it", cause, subject)
            return
        current = plug.things[ThingId.PLUG].value
        value = {"on": ON, "off": OFF}.get(schedule.action, OFF if current == ON else ON)
        if value == current:
            plug.record("schedule", f"schedule {schedule.id} ran: the relay was "
                        f"{'on' if value == ON else 'off'} already", cause, subject)
            return
        try:
            plug.set_thing(ThingId.PLUG, value, cause)
        except (HardwareError, ValidationError) as err:  # the plug told the fault as an event
            log.warning("schedule %d could not switch the relay: %s", schedule.id, err)

    def _clock(self, at: float) -> str:
        return datetime.fromtimestamp(at, self.tz).strftime("%H:%M")

    # --- changes from the API -------------------------------------------------------------------

    def next_id(self) -> int:
        """An id no schedule has."""
        return max((s.id for s in self.schedules), default=0) + 1

    def get(self, schedule_id: int) -> Schedule | None:
        """The schedule with this id, or None."""
        return next((s for s in self.schedules if s.id == schedule_id), None)

    async def store(self, schedules: list[Schedule], fresh: list[int]) -> None:
        """Write a new list, then put it in force (nothing changes when the write fails); the
        `fresh` ids (new or edited) run from now on, never for a moment already past. The
        caller holds `lock`."""
        assert self.plug is not None
        await self.plug.writer.save(SCHEDULES_FILE, dump([s.to_json() for s in schedules]))
        self.schedules = schedules
        self.planner.replace(schedules, fresh)

    def relocate(self, location: Location | None) -> None:
        """The location changed (the page's settings, a reload)."""
        if location != self.location:
            self.planner.relocate(location)

    # --- views ------------------------------------------------------------------------------------

    def view(self, schedule: Schedule) -> dict[str, Any]:
        """A schedule as the API shows it: its fields, `next` (Unix time or null), and where
        the sun does not rise or set, `sun` ("polar day", "polar night") and `resumes`."""
        shown = upcoming(schedule, self.wall(), self.tz, self.location)
        extra: dict[str, Any] = {"sun": shown.sun, "resumes": shown.resumes} if shown.sun else {}
        return {**schedule.to_json(), "next": shown.next, "words": schedule.words(), **extra}

    def status(self) -> dict[str, Any]:
        """For request_status: how many, and the next run of any."""
        return {"count": len(self.schedules), "next": self.planner.next_due(),
                "timezone": zone_key(self.tz)}
