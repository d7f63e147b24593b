"""Schedules: when each one runs, in local time, with sunrise and sunset; no clock of its own.

A schedule names a time of day ("07:00") or the sun ("sunrise", "sunset"), an
offset in minutes, the weekdays it runs on (0 = Monday; none: every day), and
what it does to the relay: on, off or toggle. Its run on a local day is that
day's event plus the offset, in real minutes; the weekdays are those of the
event before the offset.

Local time is a `tzinfo` the caller passes (the service reads TZ and
/etc/localtime). A time of day that a DST change skips runs at the jump; one it
repeats runs at its first occurrence, once. The sun comes from `astral`; where
it does not rise or set that day (the polar day and night) there is no run.

`Planner` turns readings of the clocks into runs: each run fires once, a wall
clock stepped back never fires one again, and one stepped forward fires
what is still ahead without firing the runs it jumped over. Pure: time is
passed in.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any, NamedTuple

import astral
import astral.sun

from plugd.core.model import describe, read_bool, read_int, require_object
from plugd.errors import ValidationError

#: How many schedules a plug keeps.
MAX_SCHEDULES = 64
#: The largest offset, in minutes either way (12 hours).
MAX_OFFSET = 720
SUN_EVENTS = ("sunrise", "sunset")
ACTIONS = ("on", "off", "toggle")
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
#: Days searched ahead for the next run of a time of day (a week, and DST to spare).
TIME_HORIZON = 9
#: Days searched ahead for the sun: past the longest polar night outside the poles' own year.
SUN_HORIZON = 370
#: Days searched back for the last run before now (power_on_state = "schedule").
LOOK_BACK = 8
#: A wall clock that moves this much more than the monotonic one was stepped (seconds).
STEP = 2.0
_HH_MM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")


@dataclass(frozen=True, slots=True)
class Location:
    """Where the plug is, for the sun: degrees north and east."""

    latitude: float
    longitude: float


@dataclass(frozen=True, slots=True)
class Schedule:
    """One schedule, as stored and as the API shows it (see the module's docstring)."""

    id: int
    at: str
    action: str
    days: tuple[int, ...] = ()
    offset: int = 0
    enabled: bool = True

    @property
    def sun(self) -> bool:
        """Whether it follows the sun rather than the clock."""
        return self.at in SUN_EVENTS

    def runs_on(self, weekday: int) -> bool:
        """Whether its event on a day of this weekday (0 = Monday) runs it."""
        return not self.days or weekday in self.days

    def words(self) -> str:
        """What it waits for, as people read it: "sunset - 30 min" (with a minus sign), "07:00 + 5 min"."""
        if not self.offset:
            return self.at
        sign = "+" if self.offset > 0 else "−"
        return f"{self.at} {sign} {abs(self.offset)} min"

    def detail(self) -> str:
        """The detail of its cause: its id and what it waits for ("2, sunset - 30 min")."""
        return f"{self.id}, {self.words()}"

    def to_json(self) -> dict[str, Any]:
        """The stored and shown shape."""
        return {"id": self.id, "enabled": self.enabled, "days": list(self.days), "at": self.at,
                "offset": self.offset, "action": self.action}


def parse(obj: Any, where: str = "schedule", *, location: Location | None = None,
          check_sun: bool = True) -> Schedule:
    """A schedule from JSON; `id` must be there (the caller gives a new one its id).

    A sun schedule needs the plug's `location`, unless `check_sun` is off (a
    file read at start keeps its schedules while the location is unset).
    """
    obj = require_object(obj, where)  # other keys (what the API shows: next, sun) are left alone
    schedule_id = read_int(obj, "id", where, low=1, high=2**31 - 1)
    enabled = read_bool(obj, "enabled", where) if "enabled" in obj else True
    at = obj.get("at")
    if not isinstance(at, str) or not (at in SUN_EVENTS or _HH_MM.fullmatch(at)):
        raise ValidationError(f"{where}.at", f'expected "HH:MM" (00:00 to 23:59), "sunrise" or '
                                             f'"sunset", got {_shown(at)}')
    if at in SUN_EVENTS and check_sun and location is None:
        raise ValidationError(f"{where}.at", f"{at} needs the plug's location: set "
                                             "location.latitude and location.longitude")
    offset = read_int(obj, "offset", where, low=-MAX_OFFSET, high=MAX_OFFSET) if "offset" in obj else 0
    action = obj.get("action")
    if not isinstance(action, str) or action not in ACTIONS:
        raise ValidationError(f"{where}.action", f'expected "on", "off" or "toggle", got {_shown(action)}')
    days = obj.get("days", [])
    if not isinstance(days, list):
        raise ValidationError(f"{where}.days", f"expected a list of weekdays 0..6 (0 = Monday), "
                                               f"got {describe(days)}")
    for i, day in enumerate(days):
        if isinstance(day, bool) or not isinstance(day, int) or not 0 <= day <= 6:
            raise ValidationError(f"{where}.days[{i}]", f"expected a weekday 0..6 (0 = Monday), "
                                                        f"got {_shown(day)}")
    return Schedule(schedule_id, at, action, tuple(sorted(set(days))), offset, enabled)


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, str) and len(value) <= 20 else describe(value)


def parse_list(obj: Any, where: str = "schedules", location: Location | None = None) -> list[Schedule]:
    """A stored list: each valid, ids unique, at most MAX_SCHEDULES."""
    if not isinstance(obj, list):
        raise ValidationError(where, f"expected a list, got {describe(obj)}")
    if len(obj) > MAX_SCHEDULES:
        raise ValidationError(where, f"at most {MAX_SCHEDULES} schedules, got {len(obj)}")
    parsed = [parse(item, f"{where}[{i}]", location=location, check_sun=False)
              for i, item in enumerate(obj)]
    seen: set[int] = set()
    for i, item in enumerate(parsed):
        if item.id in seen:
            raise ValidationError(f"{where}[{i}].id", f"schedule id {item.id} is used twice")
        seen.add(item.id)
    return parsed


# --- local time ---------------------------------------------------------------------------------


def local_date(wall: float, tz: tzinfo) -> date:
    """The local calendar day of a Unix time."""
    return datetime.fromtimestamp(wall, tz).date()


def wall_time(day: date, hour: int, minute: int, tz: tzinfo) -> float:
    """The Unix time a local clock shows `hour:minute` on `day`: its first occurrence when a
    DST change repeats it, and the moment of the jump when a DST change skips it."""
    naive = datetime.combine(day, time(hour, minute))
    first = naive.replace(tzinfo=tz, fold=0)
    early = first.timestamp()
    if datetime.fromtimestamp(early, tz).replace(tzinfo=None) == naive:
        later = naive.replace(tzinfo=tz, fold=1).timestamp()
        return min(early, later)  # a repeated hour: the first of the two
    # Skipped: fold=1 reads the wall with the offset after the change, landing before the jump,
    # fold=0 with the one before, after it; the jump is the first second between them whose
    # local time is past the wall time asked for.
    low = int(naive.replace(tzinfo=tz, fold=1).timestamp())
    high = int(early)
    low, high = min(low, high), max(low, high)
    while low < high:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, tz).replace(tzinfo=None) >= naive:
            high = middle
        else:
            low = middle + 1
    return float(low)


@functools.lru_cache(maxsize=4096)
def _sun_utc(latitude: float, longitude: float, which: str, day: date) -> float | None:
    """astral's event on the UTC date `day` as a Unix time, or None where there is none."""
    observer = astral.Observer(latitude=latitude, longitude=longitude)
    event = astral.sun.sunrise if which == "sunrise" else astral.sun.sunset
    try:
        return event(observer, day, tzinfo=UTC).timestamp()
    except ValueError:  # the sun stays above or below the horizon all day
        return None


def sun_event(location: Location, which: str, day: date, tz: tzinfo) -> float | None:
    """Sunrise or sunset on the local day `day`, or None when the sun does not rise or set.

    The local day may span two UTC dates, so the events of the UTC dates around
    it are computed and the one on `day` taken (astral versions differ on which
    date an event far from Greenwich belongs to).
    """
    found = set()
    for delta in (-1, 0, 1):
        at = _sun_utc(location.latitude, location.longitude, which, day + timedelta(days=delta))
        if at is not None and local_date(at, tz) == day:
            found.add(round(at))
    return float(min(found)) if found else None


def polar(location: Location, day: date) -> str:
    """On a day without a sunrise or sunset: "polar day" (the sun stays up) or "polar night"."""
    observer = astral.Observer(latitude=location.latitude, longitude=location.longitude)
    noon = astral.sun.noon(observer, day)
    return "polar day" if astral.sun.elevation(observer, noon) > 0 else "polar night"


def event_on(schedule: Schedule, day: date, tz: tzinfo, location: Location | None) -> float | None:
    """The Unix time of the schedule's event on local `day` before the offset (None: none)."""
    if schedule.sun:
        return None if location is None else sun_event(location, schedule.at, day, tz)
    hour, minute = int(schedule.at[:2]), int(schedule.at[3:])
    return wall_time(day, hour, minute, tz)


def run_on(schedule: Schedule, day: date, tz: tzinfo, location: Location | None) -> float | None:
    """When the schedule runs for its event on local `day` (offset included), or None: not its
    weekday, or no sunrise or sunset that day."""
    if not schedule.runs_on(day.weekday()):
        return None
    event = event_on(schedule, day, tz, location)
    return None if event is None else event + 60.0 * schedule.offset


def runs(schedule: Schedule, start: date, tz: tzinfo, location: Location | None,
         days: int) -> Iterator[tuple[date, float]]:
    """(day, run) for the days from `start` on, in order of time."""
    for n in range(days):
        day = start + timedelta(days=n)
        at = run_on(schedule, day, tz, location)
        if at is not None:
            yield day, at


def next_run(schedule: Schedule, after: float, tz: tzinfo, location: Location | None,
             horizon: int | None = None) -> float | None:
    """The first run strictly after `after` (Unix time), or None: disabled, or none within the
    horizon (a week for a time of day, a year for the sun)."""
    if not schedule.enabled or (schedule.sun and location is None):
        return None
    horizon = horizon or (SUN_HORIZON if schedule.sun else TIME_HORIZON)
    start = local_date(after, tz) - timedelta(days=2)  # an offset reaches 12 h across days
    for _, at in runs(schedule, start, tz, location, horizon + 2):
        if at > after:
            return at
    return None


class Upcoming(NamedTuple):
    """What the API shows of a schedule's future: `next` (None: disabled, or no sunrise or
    sunset on its next day), `sun` (why not: "polar day" or "polar night") and `resumes`
    (its first run once the sun rises and sets again)."""

    next: float | None
    sun: str | None = None
    resumes: float | None = None


def upcoming(schedule: Schedule, now: float, tz: tzinfo, location: Location | None) -> Upcoming:
    """The next run as people are told it: none while the sun does not rise or set here."""
    if not schedule.enabled or (schedule.sun and location is None):
        return Upcoming(None)
    first = next_run(schedule, now, tz, location)
    if not schedule.sun or location is None:
        return Upcoming(first)
    today = local_date(now, tz)
    for n in range(8):  # the next day of its own whose event is missing comes before the run
        day = today + timedelta(days=n)
        if not schedule.runs_on(day.weekday()):
            continue
        at = run_on(schedule, day, tz, location)
        if at is None:
            return Upcoming(None, polar(location, day), first)
        if at > now:
            break
    return Upcoming(first)


def last_state(schedules: Iterable[Schedule], now: float, before: bool, tz: tzinfo,
               location: Location | None) -> tuple[bool, Schedule, float] | None:
    """The relay's state after the runs of the last days up to `now`, with the last schedule
    that ran and when; None when none ran. Toggles flip what the last on or off run before
    them set; with toggles alone, the saved state (`before`) stands, since how many of them
    it already took in is not known."""
    start = local_date(now, tz) - timedelta(days=LOOK_BACK)
    past = sorted((at, s.id, s) for s in schedules if s.enabled
                  for _, at in runs(s, start, tz, location, LOOK_BACK + 2) if at <= now)
    if not past:
        return None
    state, known = before, False
    for _, _, schedule in past:
        if schedule.action != "toggle":
            state, known = schedule.action == "on", True
        elif known:
            state = not state
    at, _, schedule = past[-1]
    return state, schedule, at


# --- the planner: readings of the clocks in, runs out --------------------------------------------


class Run(NamedTuple):
    """A schedule's run: when it was due (Unix time) and whether it fires or was jumped over."""

    schedule: Schedule
    at: float
    skipped: bool = False


class Planner:
    """Which runs fall between successive readings of the clocks (see the module's docstring).

    Each schedule keeps a mark (its runs up to it are done) and its next run
    after the mark. A reading fires the runs up to its wall time; a wall clock
    stepped back leaves the marks where they were, so nothing runs twice; one
    stepped forward fires the runs of the time that really passed and marks
    those it jumped over as skipped.
    """

    def __init__(self, tz: tzinfo, location: Location | None, wall: float, mono: float) -> None:
        self.tz = tz
        self.location = location
        self._wall, self._mono = wall, mono
        #: The local day of the last reading: sun schedules with no run in a year look again daily.
        self._day = local_date(wall, tz)
        self._marks: dict[int, float] = {}
        self._next: dict[int, float | None] = {}
        self._schedules: dict[int, Schedule] = {}

    @property
    def schedules(self) -> list[Schedule]:
        """The schedules planned, by id."""
        return [self._schedules[i] for i in sorted(self._schedules)]

    def next_due(self) -> float | None:
        """The earliest next run of any schedule (Unix time), or None."""
        due = [at for at in self._next.values() if at is not None]
        return min(due) if due else None

    def next_of(self, schedule_id: int) -> float | None:
        """The next run of one schedule, as planned."""
        return self._next.get(schedule_id)

    def replace(self, schedules: Iterable[Schedule], fresh: Iterable[int] = ()) -> None:
        """A new list in force; `fresh` ids (new or edited) start from the last reading, so a
        run already past does not fire."""
        new = {s.id: s for s in schedules}
        fresh = set(fresh)
        for schedule_id in list(self._schedules):
            if schedule_id not in new:
                self._forget(schedule_id)
        for schedule_id, schedule in new.items():
            if schedule_id in fresh or schedule_id not in self._marks:
                self._marks[schedule_id] = max(self._wall, self._marks.get(schedule_id, self._wall))
            changed = self._schedules.get(schedule_id) != schedule
            self._schedules[schedule_id] = schedule
            if changed or schedule_id in fresh:
                self._plan(schedule_id)

    def relocate(self, location: Location | None) -> None:
        """The plug moved (its location was set): the sun's runs again."""
        self.location = location
        for schedule_id in self._schedules:
            self._plan(schedule_id)

    def _forget(self, schedule_id: int) -> None:
        self._schedules.pop(schedule_id, None)
        self._marks.pop(schedule_id, None)
        self._next.pop(schedule_id, None)

    def _plan(self, schedule_id: int) -> None:
        self._next[schedule_id] = next_run(self._schedules[schedule_id], self._marks[schedule_id],
                                           self.tz, self.location)

    def advance(self, wall: float, mono: float) -> list[Run]:
        """A reading of the wall and monotonic clocks: the runs due since the last one, oldest
        first (skipped ones included, marked)."""
        passed = mono - self._mono
        real_end = self._wall + max(passed, 0.0) + STEP  # where the wall clock should be, give or take
        stepped = wall > real_end
        out: list[Run] = []
        for schedule_id, schedule in self._schedules.items():
            mark = self._marks[schedule_id]
            while (at := self._next.get(schedule_id)) is not None and at <= wall:
                out.append(Run(schedule, at, skipped=stepped and at > real_end))
                mark = at
                self._next[schedule_id] = next_run(schedule, at, self.tz, self.location)
            self._marks[schedule_id] = max(mark, wall)  # stepped back: the mark stays ahead
        day = local_date(wall, self.tz)
        if day != self._day:
            self._day = day
            for schedule_id, schedule in self._schedules.items():
                if self._next.get(schedule_id) is None and schedule.enabled and schedule.sun:
                    self._plan(schedule_id)
        self._wall, self._mono = wall, mono
        out.sort(key=lambda r: (r.at, r.schedule.id))
        return out


def with_id(schedule: Schedule, schedule_id: int) -> Schedule:
    """The schedule under another id (a new one's)."""
    return replace(schedule, id=schedule_id)
