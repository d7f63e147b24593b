"""The schedules' arithmetic: local time across DST, the sun against astral, clock steps."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import astral
import astral.sun
import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugd.core import schedules as S
from plugd.errors import ValidationError

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
#: Zones with DST of every kind: an hour forward in spring, Dublin's "negative" DST, half hours,
#: Lord Howe's 30 minutes, the southern hemisphere.
DST_ZONES = ["Europe/Berlin", "America/New_York", "Europe/Dublin", "Australia/Sydney",
             "America/St_Johns", "Australia/Lord_Howe", "Pacific/Auckland", "America/Santiago",
             "Pacific/Chatham", "Europe/London", "America/Havana"]
TROMSO = S.Location(69.6492, 18.9553)
BERLIN_CITY = S.Location(52.52, 13.405)
PLACES = [BERLIN_CITY, S.Location(-33.87, 151.21), S.Location(0.0, -78.5),
          S.Location(64.14, -21.94), S.Location(40.71, -74.0), TROMSO]


def schedule(**fields) -> S.Schedule:
    return S.parse({"id": 1, "action": "on", **fields}, location=BERLIN_CITY)


def local(wall: float, tz=BERLIN) -> datetime:
    return datetime.fromtimestamp(wall, tz)


def at(tz, *args) -> float:
    return datetime(*args, tzinfo=tz).timestamp()


# --- what a schedule is -----------------------------------------------------------------------


def test_a_schedule_round_trips_and_defaults():
    s = S.parse({"id": 3, "at": "07:05", "action": "toggle", "days": [4, 0, 0]})
    assert s.to_json() == {"id": 3, "enabled": True, "days": [0, 4], "at": "07:05", "offset": 0,
                           "action": "toggle"}
    assert S.parse(s.to_json()) == s
    assert schedule(at="sunset", offset=-30).detail() == "1, sunset − 30 min"
    assert schedule(at="07:00", offset=15).words() == "07:00 + 15 min"


@pytest.mark.parametrize("fields, field, words", [
    ({"at": "24:00"}, "schedule.at", '"HH:MM"'),
    ({"at": "7:00"}, "schedule.at", '"HH:MM"'),
    ({"at": 700}, "schedule.at", "an integer"),
    ({"at": "07:00", "action": "dim"}, "schedule.action", '"on", "off" or "toggle"'),
    ({"at": "07:00", "days": [7]}, "schedule.days[0]", "0..6"),
    ({"at": "07:00", "days": [True]}, "schedule.days[0]", "0..6"),
    ({"at": "07:00", "days": "mon"}, "schedule.days", "a list"),
    ({"at": "07:00", "offset": 721}, "schedule.offset", "720"),
    ({"at": "07:00", "offset": 1.5}, "schedule.offset", ""),
    ({"at": "07:00", "enabled": "yes"}, "schedule.enabled", ""),
])
def test_bad_fields_are_named(fields, field, words):
    with pytest.raises(ValidationError) as err:
        S.parse({"id": 1, "action": "on", **fields})
    assert err.value.field == field and words in str(err.value)


def test_the_sun_needs_a_location():
    with pytest.raises(ValidationError, match=r"schedule.at: sunrise needs the plug's location"):
        S.parse({"id": 1, "at": "sunrise", "action": "on"})
    kept = S.parse_list([{"id": 1, "at": "sunrise", "action": "on"}])  # a file keeps them
    assert kept[0].sun and S.next_run(kept[0], 0.0, BERLIN, None) is None


def test_a_stored_list_has_unique_ids_and_a_bound():
    one = {"id": 1, "at": "07:00", "action": "on"}
    with pytest.raises(ValidationError, match=r"schedules\[1\].id"):
        S.parse_list([one, one])
    with pytest.raises(ValidationError, match="at most 64"):
        S.parse_list([{**one, "id": i + 1} for i in range(65)])


# --- local time and DST --------------------------------------------------------------------------


def test_a_time_skipped_by_dst_runs_at_the_jump():
    # Berlin, 31 March 2024: 02:00 CET becomes 03:00 CEST.
    assert local(S.wall_time(date(2024, 3, 31), 2, 30, BERLIN)) == datetime(2024, 3, 31, 3, 0, tzinfo=BERLIN)
    # New York, 10 March 2024: 02:00 EST becomes 03:00 EDT.
    jump = S.wall_time(date(2024, 3, 10), 2, 15, NEW_YORK)
    assert datetime.fromtimestamp(jump, UTC) == datetime(2024, 3, 10, 7, 0, tzinfo=UTC)


def test_a_repeated_time_runs_at_its_first_occurrence():
    # Berlin, 27 October 2024: 02:00..03:00 happens twice; the first is CEST (UTC 00:30).
    first = S.wall_time(date(2024, 10, 27), 2, 30, BERLIN)
    assert datetime.fromtimestamp(first, UTC) == datetime(2024, 10, 27, 0, 30, tzinfo=UTC)
    first = S.wall_time(date(2024, 11, 3), 1, 30, NEW_YORK)  # EDT, UTC 05:30
    assert datetime.fromtimestamp(first, UTC) == datetime(2024, 11, 3, 5, 30, tzinfo=UTC)


def drive(planner: S.Planner, start: float, end: float, step: float) -> list[S.Run]:
    """Read the clocks every `step` seconds from `start` to `end`, both moving together."""
    runs, wall = [], start
    while wall < end:
        wall = min(wall + step, end)
        runs += planner.advance(wall, wall - start)
    return runs


@pytest.mark.parametrize("tz, day, hh_mm", [
    (BERLIN, date(2024, 3, 31), "02:30"), (BERLIN, date(2024, 10, 27), "02:30"),
    (NEW_YORK, date(2024, 3, 10), "02:30"), (NEW_YORK, date(2024, 11, 3), "01:30"),
])
def test_across_a_dst_change_each_day_runs_once(tz, day, hh_mm):
    start = at(tz, day.year, day.month, day.day) - 3 * 86400
    planner = S.Planner(tz, None, start, 0.0)
    planner.replace([schedule(at=hh_mm)])
    runs = drive(planner, start, start + 7 * 86400, 60.0)
    days = [local(r.at, tz).date() for r in runs]
    assert days == [day + timedelta(days=n) for n in range(-3, 4)]
    assert not any(r.skipped for r in runs)
    hour, minute = map(int, hh_mm.split(":"))
    for r in runs:
        shown = local(r.at, tz)
        assert (shown.hour, shown.minute) in ((hour, minute), (3, 0))


@given(zone=st.sampled_from(DST_ZONES), year=st.integers(2020, 2030), start_day=st.integers(0, 364),
       hour=st.integers(0, 23), minute=st.integers(0, 59),
       days=st.lists(st.integers(0, 6), max_size=7), step=st.sampled_from([59.0, 307.0, 600.0, 3599.0]))
def test_across_random_dst_zones_a_run_happens_once_per_scheduled_day(zone, year, start_day, hour,
                                                                       minute, days, step):
    tz = ZoneInfo(zone)
    first = date(year, 1, 1) + timedelta(days=start_day)
    start = S.wall_time(first, 0, 0, tz) - 1  # the first midnight is still ahead
    s = schedule(at=f"{hour:02d}:{minute:02d}", days=days)
    planner = S.Planner(tz, None, start, 0.0)
    planner.replace([s])
    end = S.wall_time(first + timedelta(days=10), 0, 0, tz) - 1
    runs = drive(planner, start, end, step)
    fired = [local(r.at, tz).date() for r in runs]
    expected = [first + timedelta(days=n) for n in range(10)
                if not days or (first + timedelta(days=n)).weekday() in days]
    assert fired == expected
    assert all(start < r.at <= end and not r.skipped for r in runs)


@given(zone=st.sampled_from(DST_ZONES), after=st.floats(1.6e9, 1.95e9), hour=st.integers(0, 23),
       minute=st.integers(0, 59), offset=st.integers(-720, 720),
       days=st.lists(st.integers(0, 6), min_size=1, max_size=7))
def test_the_next_run_is_in_the_future_and_on_an_allowed_day(zone, after, hour, minute, offset, days):
    tz = ZoneInfo(zone)
    s = schedule(at=f"{hour:02d}:{minute:02d}", offset=offset, days=days)
    nxt = S.next_run(s, after, tz, None)
    assert nxt is not None and after < nxt <= after + 8 * 86400 + 2 * 3600
    event_day = local(nxt - 60 * offset, tz).date()
    assert event_day.weekday() in days
    assert nxt == S.run_on(s, event_day, tz, None)
    assert S.next_run(s, nxt - 0.5, tz, None) == nxt  # nothing between


@given(zone=st.sampled_from(DST_ZONES), start=st.floats(1.6e9, 1.9e9),
       steps=st.lists(st.tuples(st.floats(1.0, 900.0), st.floats(-7200.0, 0.0)), min_size=1, max_size=60))
def test_a_backward_clock_step_never_fires_a_run_twice(zone, start, steps):
    tz = ZoneInfo(zone)
    schedules = [schedule(at=f"{h:02d}:{m:02d}", action="toggle") for h, m in ((0, 0), (3, 30))]
    schedules = [S.with_id(s, i + 1) for i, s in enumerate(schedules)]
    planner = S.Planner(tz, None, start, 0.0)
    planner.replace(schedules)
    wall = mono = start
    seen: list[tuple[int, float]] = []
    for forward, back in steps:
        mono += forward
        wall += forward
        seen += [(r.schedule.id, r.at) for r in planner.advance(wall, mono - start)]
        wall += back  # NTP steps the wall clock back; the monotonic one goes on
        seen += [(r.schedule.id, r.at) for r in planner.advance(wall, mono - start)]
    assert len(seen) == len(set(seen))


def test_a_clock_stepped_forward_skips_what_it_jumped_over_and_runs_what_is_ahead():
    start = at(BERLIN, 2024, 5, 6, 6, 0)  # a Pi boots believing it is 06:00 (its last shutdown)
    planner = S.Planner(BERLIN, None, start, 100.0)
    planner.replace([S.with_id(schedule(at="07:00"), 1), S.with_id(schedule(at="09:00", action="off"), 2)])
    assert planner.advance(start + 1, 101.0) == []
    stepped = at(BERLIN, 2024, 5, 6, 8, 0)  # NTP: it is 08:00
    runs = planner.advance(stepped, 102.0)
    assert [(r.schedule.id, r.skipped) for r in runs] == [(1, True)]
    assert planner.advance(stepped + 1, 103.0) == []
    assert planner.next_of(1) == at(BERLIN, 2024, 5, 7, 7, 0)
    nine = at(BERLIN, 2024, 5, 6, 9, 0)
    runs = planner.advance(nine, 103.0 + nine - stepped - 1)
    assert [(r.schedule.id, r.at, r.skipped) for r in runs] == [(2, nine, False)]


def test_a_late_reading_still_fires_and_an_edit_does_not_fire_the_past():
    start = at(BERLIN, 2024, 5, 6, 6, 59, 58)
    planner = S.Planner(BERLIN, None, start, 0.0)
    planner.replace([S.with_id(schedule(at="07:00"), 1)])
    runs = planner.advance(start + 1.5, 1.5) + planner.advance(start + 5.0, 5.0)  # a busy loop
    assert [(r.schedule.id, r.skipped) for r in runs] == [(1, False)]
    planner.replace([S.with_id(schedule(at="07:00", action="off"), 1)], fresh=[1])
    assert planner.advance(start + 6.0, 6.0) == []
    assert planner.next_of(1) == at(BERLIN, 2024, 5, 7, 7, 0)
    planner.replace([])
    assert planner.next_due() is None


# --- the sun -----------------------------------------------------------------------------------


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("day", [date(2024, 3, 20), date(2024, 6, 21), date(2024, 9, 1), date(2024, 12, 21)])
@pytest.mark.parametrize("which", S.SUN_EVENTS)
def test_sunrise_and_sunset_agree_with_astral(place, day, which):
    tz = BERLIN if place.longitude > -30 else NEW_YORK
    observer = astral.Observer(latitude=place.latitude, longitude=place.longitude)
    event = getattr(astral.sun, which)
    try:
        expected = event(observer, day, tzinfo=tz).timestamp()
    except ValueError:
        expected = None
    got = S.sun_event(place, which, day, tz)
    if expected is None or local(expected, tz).date() != day:
        assert got is None or local(got, tz).date() == day
    else:
        assert got == pytest.approx(expected, abs=1.0)


def test_tromso_has_no_sunset_in_june_and_no_sunrise_in_december():
    june, december = date(2024, 6, 21), date(2024, 12, 21)
    assert S.sun_event(TROMSO, "sunset", june, BERLIN) is None
    assert S.sun_event(TROMSO, "sunrise", december, BERLIN) is None
    assert (S.polar(TROMSO, june), S.polar(TROMSO, december)) == ("polar day", "polar night")
    sunset = S.parse({"id": 1, "at": "sunset", "offset": -30, "action": "on"}, location=TROMSO)
    shown = S.upcoming(sunset, at(BERLIN, 2024, 6, 21, 12), BERLIN, TROMSO)
    assert shown.next is None and shown.sun == "polar day"
    # The first sunset after the midnight sun, just past midnight on 27 July; 30 min before it.
    assert shown.resumes == S.sun_event(TROMSO, "sunset", date(2024, 7, 27), BERLIN) - 1800
    sunrise = S.parse({"id": 2, "at": "sunrise", "action": "off"}, location=TROMSO)
    shown = S.upcoming(sunrise, at(BERLIN, 2024, 12, 21, 12), BERLIN, TROMSO)
    assert shown.next is None and shown.sun == "polar night"
    assert date(2025, 1, 10) <= local(shown.resumes).date() <= date(2025, 1, 20)


def test_the_planner_fires_a_sun_schedule_once_a_day_with_its_offset():
    start = at(BERLIN, 2024, 3, 28)
    planner = S.Planner(BERLIN, BERLIN_CITY, start, 0.0)
    planner.replace([S.parse({"id": 1, "at": "sunset", "offset": -30, "action": "on"}, location=BERLIN_CITY)])
    runs = drive(planner, start, start + 5 * 86400, 300.0)
    assert len(runs) == 5
    for r in runs:
        day = local(r.at).date()
        assert r.at == S.sun_event(BERLIN_CITY, "sunset", day, BERLIN) - 1800


def test_the_state_the_last_schedule_set():
    now = at(BERLIN, 2024, 5, 8, 12, 0)  # a Wednesday
    on = S.with_id(schedule(at="07:00", days=[0, 1, 2, 3, 4]), 1)
    off = S.with_id(schedule(at="09:00", action="off", days=[0]), 2)
    state, last, when = S.last_state([on, off], now, False, BERLIN, None)
    assert (state, last.id, local(when)) == (True, 1, datetime(2024, 5, 8, 7, 0, tzinfo=BERLIN))
    toggle = S.with_id(schedule(at="11:00", action="toggle"), 3)
    assert S.last_state([on, toggle], now, False, BERLIN, None)[:2] == (False, toggle)
    assert S.last_state([toggle], now, True, BERLIN, None)[0] is True  # toggles alone: as saved
    assert S.last_state([], now, True, BERLIN, None) is None
    disabled = S.Schedule(4, "07:00", "on", enabled=False)
    assert S.last_state([disabled], now, False, BERLIN, None) is None
