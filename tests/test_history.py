"""The history's arithmetic: local buckets across DST, rollups, retention, cost, requests."""

from __future__ import annotations

import datetime
import math
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugd.core import history
from plugd.core.history import EnergyQuery, Minute, bucket_start, next_start, rollup, starts
from plugd.errors import ValidationError

BERLIN = ZoneInfo("Europe/Berlin")
ZONES = [ZoneInfo(name) for name in ("Europe/Berlin", "America/New_York", "Australia/Lord_Howe",
                                     "Asia/Kolkata", "America/Sao_Paulo", "UTC")]
# 1990..2040: DST rules of every kind in the zones above, midnight changes (Sao Paulo) included.
INSTANTS = st.integers(min_value=631152000, max_value=2208988800)
zones = st.sampled_from(ZONES)
periods = st.sampled_from(history.PERIODS)


def at(tz: ZoneInfo, *fields: int) -> int:
    return int(datetime.datetime(*fields, tzinfo=tz).timestamp())


@given(periods, INSTANTS, zones)
def test_buckets_partition_time(period: str, t: int, tz: ZoneInfo) -> None:
    start = bucket_start(period, t, tz)
    after = next_start(period, start, tz)
    assert start <= t < after
    assert bucket_start(period, start, tz) == start  # a start is in its own bucket
    assert bucket_start(period, after, tz) == after  # the next begins where this one ends
    assert bucket_start(period, after - 1, tz) == start  # nothing falls between


@given(periods, INSTANTS, zones)
def test_a_minute_lies_within_one_bucket_of_every_period(period: str, t: int, tz: ZoneInfo) -> None:
    minute = bucket_start("minute", t, tz)
    assert bucket_start(period, minute, tz) == bucket_start(period, minute + 59, tz)


@given(st.dictionaries(INSTANTS.map(lambda t: t - t % 60), st.floats(0, 5000), max_size=60), zones)
def test_rollups_keep_the_sum(minutes: dict[int, float], tz: ZoneInfo) -> None:
    total = math.fsum(minutes.values())
    hours = rollup(minutes, "hour", tz)
    for period in ("hour", "day", "month"):
        assert math.fsum(rollup(minutes, period, tz).values()) == pytest.approx(total)
    # Through the hours or straight from the minutes: the same days and months.
    for period in ("day", "month"):
        direct = rollup(minutes, period, tz)
        through = rollup(hours, period, tz)
        assert direct.keys() == through.keys()
        for key in direct:
            assert direct[key] == pytest.approx(through[key])


@pytest.mark.parametrize("day, hours", [(datetime.date(2026, 3, 29), 23),
                                        (datetime.date(2026, 10, 25), 25),
                                        (datetime.date(2026, 6, 1), 24)])
def test_dst_days_last_23_or_25_hours(day: datetime.date, hours: int) -> None:
    start = at(BERLIN, day.year, day.month, day.day)
    assert next_start("day", start, BERLIN) - start == hours * 3600
    assert len(starts("hour", start, next_start("day", start, BERLIN) - 1, BERLIN)) == hours


def test_the_repeated_hour_is_two_buckets_that_read_apart() -> None:
    first = at(BERLIN, 2026, 10, 25, 2)  # 02:00 CEST
    second = first + 3600  # 02:00 CET
    assert bucket_start("hour", first + 1800, BERLIN) == first
    assert bucket_start("hour", second + 1800, BERLIN) == second
    assert history.local_text(first, BERLIN) == "2026-10-25T02:00:00+02:00"
    assert history.local_text(second, BERLIN) == "2026-10-25T02:00:00+01:00"


def test_the_skipped_hour_has_no_bucket() -> None:
    day = at(BERLIN, 2026, 3, 29)
    texts = [history.local_text(s, BERLIN)[11:16] for s in starts("hour", day, day + 5 * 3600, BERLIN)]
    assert texts[:4] == ["00:00", "01:00", "03:00", "04:00"]


def test_months_start_at_local_midnight() -> None:
    t = at(BERLIN, 2026, 7, 15, 12)
    assert bucket_start("month", t, BERLIN) == at(BERLIN, 2026, 7, 1)
    assert next_start("month", at(BERLIN, 2026, 12, 1), BERLIN) == at(BERLIN, 2027, 1, 1)


def test_minutes_sum_and_track_power() -> None:
    minute = Minute()
    minute.add(0.25, 900.0)
    minute.add(0.0, None)
    other = Minute()
    other.add(0.5, 1100.0)
    minute.merge(other)
    assert minute.wh == 0.75
    assert minute.power() == (1000.0, 900.0, 1100.0)
    assert Minute().power() == (None, None, None)


def test_power_points_fill_gaps_with_none() -> None:
    minute = Minute()
    minute.add(1.0, 60.0)
    points = history.power_points({120: minute}, 60, 180)
    assert points == [(60, None, None, None), (120, 60.0, 60.0, 60.0), (180, None, None, None)]


def test_retention_and_cost() -> None:
    assert history.prune_before("minute", 10 * 86400) == 8 * 86400
    assert history.prune_before("day", 10.0) is None
    assert history.cost(1500.0, 0.3) == 0.45


@pytest.mark.parametrize("msg, field", [
    ({}, "period"), ({"period": "week"}, "period"), ({"period": 3}, "period"),
    ({"period": "hour", "from": "yesterday"}, "from"), ({"period": "hour", "to": math.inf}, "to"),
    ({"period": "hour", "from": 10, "to": 5}, "to"), ({"period": "hour", "from": True}, "from"),
])
def test_bad_energy_requests_name_the_field(msg: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        EnergyQuery.parse(msg)
    assert caught.value.field == field


def test_an_energy_request_selects_bucket_starts() -> None:
    query = EnergyQuery.parse({"period": "day", "from": 100, "to": 200})
    assert query.holds(100) and query.holds(199) and not query.holds(200) and not query.holds(99)
    assert EnergyQuery.parse({"period": "month"}).holds(-1e12)


@pytest.mark.parametrize("value", [0, -5, 172801, "1h", None, True])
def test_bad_power_ranges_name_the_field(value: object) -> None:
    with pytest.raises(ValidationError, match=r"^range"):
        history.power_range({"range": value})
    assert history.power_range({}) == 600
