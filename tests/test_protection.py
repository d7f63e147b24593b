"""The overload protection: hold, trip, clear and retry."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugd.core.protection import Protection, Trip
from plugd.errors import ValidationError


def feed(protection, readings, start=0.0, step=1.0):
    """(power, current) readings a step apart; the trips they caused."""
    trips = []
    for i, (power, current) in enumerate(readings):
        trip = protection.check(power, current, start + i * step)
        if trip is not None:
            trips.append(trip)
    return trips


def test_with_no_limits_it_never_trips():
    p = Protection()
    assert (p.max_power, p.max_current, p.hold, p.retry_after) == (None, None, 2.0, None)
    assert feed(p, [(1e9, 1e9)] * 100) == []
    assert not p.tripped and p.trip is None and not p.may_retry(1e9)


def test_power_above_the_limit_for_hold_seconds_trips():
    p = Protection(max_power=3000.0, hold=2.0)
    assert p.check(3120.0, 13.6, 10.0) is None
    assert p.check(3120.0, 13.6, 11.0) is None
    trip = p.check(3120.0, 13.6, 12.0)
    assert trip == Trip("power 3120 W above max_power 3000 W for 2.0 s", "power", 12.0)
    assert p.tripped and p.trip == trip


def test_current_above_its_limit_trips_with_its_reason():
    p = Protection(max_power=5000.0, max_current=16.0, hold=1.5)
    [trip] = feed(p, [(3795.0, 16.5)] * 3, step=0.75)
    assert trip == Trip("current 16.5 A above max_current 16 A for 1.5 s", "current", 1.5)


def test_a_reading_at_or_below_the_limit_restarts_the_count():
    p = Protection(max_power=3000.0, hold=2.0)
    readings = [(3100.0, None), (3100.0, None), (3000.0, None), (3100.0, None), (3100.0, None),
                (2500.0, None), (3100.0, None), (3100.0, None), (3100.0, None)]
    [trip] = feed(p, readings)
    assert trip.at == 8.0


def test_a_short_peak_such_as_an_inrush_does_not_trip():
    p = Protection(max_power=2000.0, hold=2.0)
    assert feed(p, [(1000.0, 4.3), (6000.0, 26.0), (6000.0, 26.0), (1000.0, 4.3)] * 10) == []


def test_invalid_readings_neither_trip_nor_restart_the_count():
    p = Protection(max_power=3000.0, hold=2.0)
    assert feed(p, [(None, None)] * 10) == []
    assert feed(p, [(float("nan"), None)] * 10) == []
    p = Protection(max_power=3000.0, hold=2.0)
    [trip] = feed(p, [(3200.0, None), (None, None), (3200.0, None)])
    assert trip.at == 2.0 and "for 2.0 s" in trip.reason
    p = Protection(max_power=3000.0, hold=2.0)  # an invalid reading does not start the count
    assert feed(p, [(None, None), (3200.0, None), (3200.0, None)]) == []


def test_a_zero_hold_trips_on_the_first_reading_above():
    p = Protection(max_current=10.0, hold=0.0)
    assert p.check(None, 10.0, 0.0) is None
    assert p.check(None, 10.01, 1.0).reason == "current 10.0 A above max_current 10 A for 0.0 s"


def test_float_times_hold_apart_count_as_held():
    p = Protection(max_power=100.0, hold=2.0)
    times = [100.1, 101.1, 102.1]  # 102.1 - 100.1 is 1.9999999999999858
    assert [p.check(150.0, None, t) for t in times][-1] is not None


def test_while_tripped_it_reports_nothing_more_until_cleared():
    p = Protection(max_power=3000.0, hold=0.0)
    first = p.check(3500.0, None, 1.0)
    assert feed(p, [(9000.0, 40.0)] * 5, start=2.0) == []
    assert p.trip == first
    p.clear(10.0)
    assert not p.tripped and p.trip is None
    assert p.check(3500.0, None, 10.0) is None  # taken before (or as) the user acted
    assert p.check(3500.0, None, 11.0).at == 11.0


def test_clearing_restarts_the_hold_count():
    p = Protection(max_power=3000.0, max_current=13.0, hold=2.0)
    feed(p, [(3500.0, 14.0)] * 3)
    assert p.tripped
    p.clear(2.5)
    assert feed(p, [(3500.0, 14.0)] * 2, start=3.0) == []
    assert feed(p, [(3500.0, 14.0)], start=5.0)[0].kind == "power"


def test_an_automatic_retry_is_allowed_retry_after_seconds_after_the_trip():
    p = Protection(max_power=3000.0, hold=0.0, retry_after=30.0)
    assert not p.may_retry(0.0)
    p.check(3500.0, None, 100.0)
    assert not p.may_retry(129.9)
    assert p.may_retry(130.0) and p.may_retry(500.0)
    p.clear(130.0)
    assert not p.may_retry(500.0)
    never = Protection(max_power=3000.0, hold=0.0)
    never.check(3500.0, None, 100.0)
    assert not never.may_retry(1e9)


@pytest.mark.parametrize("kwargs, field", [
    ({"max_power": 0.0}, "max_power"), ({"max_power": -1.0}, "max_power"),
    ({"max_power": "3000"}, "max_power"), ({"max_current": float("inf")}, "max_current"),
    ({"hold": -1.0}, "hold"), ({"hold": float("nan")}, "hold"), ({"retry_after": 0.0}, "retry_after"),
    ({"retry_after": True}, "retry_after")])
def test_bad_parameters_are_named(kwargs, field):
    with pytest.raises(ValidationError) as err:
        Protection(**kwargs)
    assert err.value.field == field


def test_times_must_be_finite():
    p = Protection(max_power=1.0)
    for call in (lambda: p.check(2.0, None, math.nan), lambda: p.clear(math.inf),
                 lambda: p.may_retry(None)):
        with pytest.raises(ValidationError, match=r"^t: "):
            call()


READING = st.one_of(st.none(), st.sampled_from([50.0, 100.0, 150.0]))


@given(st.lists(st.tuples(READING, st.sampled_from([0.25, 0.5, 1.0, 3.0])), max_size=40),
       st.sampled_from([0.0, 1.0, 2.0, 2.5]))
def test_it_trips_at_the_first_run_of_readings_above_that_lasts_hold(readings, hold):
    """Against brute force: a run is readings above the limit with only invalid ones between."""
    times, t = [], 0.0
    for _, step in readings:
        t += step
        times.append(t)
    values = [value for value, _ in readings]
    expected = None
    for j, value in enumerate(values):
        if value is None or value <= 100.0:
            continue
        for i in range(j + 1):
            run = values[i:j + 1]
            if (values[i] is not None and values[i] > 100.0
                    and all(v is None or v > 100.0 for v in run) and times[j] - times[i] >= hold):
                expected = times[j]
                break
        if expected is not None:
            break
    p = Protection(max_power=100.0, hold=hold)
    trips = [p.check(value, None, at) for value, at in zip(values, times)]
    got = [trip.at for trip in trips if trip is not None]
    assert got == ([] if expected is None else [expected])
