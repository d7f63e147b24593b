"""Energy: a scripted 24 h of a household load through EnergyCounter, against its exact integral.

The day runs in compressed time: one reading per simulated second, stamped
with simulated monotonic times at the ends of the meter's 1 s windows (which
do not line up with the appliances switching), and with the local date the
daemon would see, so the day rolls over at a local midnight in the middle.

Each reading is what plugd's meter says: for every load level of the day,
real 1 s readings are taken first through the whole chain (the simulated
ACS712 and ADS1115, the real driver, the CurrentMeter with the daemon's
settings, its idle noise learned), and each second of the day draws one of
them at random. A window in which the load switches reads the RMS of its
parts, as the meter's variance adds them. Watts are the daemon's
Calibration.watts of the amps: 230 V and power factor 1 assumed.

The profile, from 18:00: 2 W of standby always; a fridge compressor of 110 W
running 13 minutes in 40; a 1500 W heater cycling 9 minutes on, 6 off, from
18:30 to 00:30 and from 06:00 to 08:30; a 2000 W kettle for 3.5 minutes four
times. The standby alone (8.7 mA) is under the meter's noise gate (the
sensor's ~18 mA rms noise) and reads 0: that loss is reported apart.
"""

from __future__ import annotations

import bisect
import datetime
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from bench.metering_rig import Chain, daemon_config
from bench.report import Row, run_alone
from plugd.core.metering import Calibration, EnergyCounter
from plugd.service.config import Config
from plugd.service.meter import current_meter

NAME = "Energy"
START = datetime.datetime(2026, 11, 26, 18, 0)  # local time: no DST change either side
DAY = 86_400
#: Where the meter's 1 s windows end within each second of the profile.
PHASE = 0.37
READINGS_PER_LEVEL = 24
IDLE_WINDOWS = 5
SEED = 2026
TARGET_PCT = 0.5
STANDBY_WATTS = 2.0
MINUTE = 60


@dataclass(frozen=True)
class Appliance:
    """A household load: its power and when it runs."""
    name: str
    watts: float
    spans: tuple[tuple[int, int], ...]  # on, off: seconds from START


def clock(hhmm: str) -> int:
    """Seconds from START to the next `hhmm` (local time)."""
    hours, minutes = map(int, hhmm.split(":"))
    at = START.replace(hour=hours, minute=minutes)
    if at < START:
        at += datetime.timedelta(days=1)
    return int((at - START).total_seconds())


def cycling(first: str, until: str, on_minutes: float, period_minutes: float,
            offset_minutes: float = 0) -> tuple[tuple[int, int], ...]:
    """On for `on_minutes` in every `period_minutes` from `first` (plus an offset) to `until`."""
    begin, end = clock(first) + round(offset_minutes * MINUTE), clock(until)
    if end <= clock(first):
        end += DAY
    spans = []
    for on in range(begin, end, round(period_minutes * MINUTE)):
        spans.append((on, min(on + round(on_minutes * MINUTE), end)))
    return tuple(spans)


def once(at: str, minutes: float) -> tuple[int, int]:
    """An appliance's one run: from `at` (HH:MM) for `minutes`."""
    return clock(at), clock(at) + round(minutes * MINUTE)


PROFILE = (
    Appliance("standby", STANDBY_WATTS, ((0, DAY),)),
    Appliance("fridge", 110.0, cycling("18:00", "18:00", 13, 40, offset_minutes=7)),
    Appliance("heater", 1500.0, cycling("18:30", "00:30", 9, 15) + cycling("06:00", "08:30", 9, 15)),
    Appliance("kettle", 2000.0, tuple(once(t, 3.5) for t in ("21:15", "07:10", "12:30", "16:45"))),
)


class Profile:
    """The appliances summed into steps of constant power."""

    def __init__(self, appliances: tuple[Appliance, ...]) -> None:
        changes: dict[int, float] = {0: 0.0, DAY: 0.0}
        for appliance in appliances:
            for on, off in appliance.spans:
                changes[on] = changes.get(on, 0.0) + appliance.watts
                changes[off] = changes.get(off, 0.0) - appliance.watts
        self.times = sorted(t for t in changes if t <= DAY)
        self.watts = []
        level = 0.0
        for t in self.times:
            level += changes[t]
            self.watts.append(round(level, 6))  # the sums of ons and offs: no float residue

    def levels(self) -> list[float]:
        """The distinct power levels of the day."""
        return sorted(set(self.watts[:-1]))

    def parts(self, a: float, b: float) -> Iterator[tuple[float, float]]:
        """(seconds, watts) of each step within [a, b]."""
        i = bisect.bisect_right(self.times, a) - 1
        while a < b:
            end = min(b, self.times[i + 1])
            yield end - a, self.watts[i]
            a, i = end, i + 1

    def wh(self, a: float, b: float) -> float:
        """The exact energy in [a, b]."""
        return math.fsum(seconds * watts for seconds, watts in self.parts(a, b)) / 3600


def meter_readings(config: Config, levels: list[float]) -> dict[float, list[float]]:
    """Real 1 s readings (A) of every load level, through the whole chain on a fake clock."""
    chain = Chain(config)
    meter = current_meter(config)
    for window, _ in chain.windows(meter, IDLE_WINDOWS):
        meter.learn_idle(window)
    chain.relay_on = True
    readings = {}
    for watts in levels:
        chain.mains.load_watts = watts
        readings[watts] = [window.amps for window, _ in chain.windows(meter, READINGS_PER_LEVEL)]
    chain.check()
    return readings


@dataclass(frozen=True)
class Day:
    """One integration of the day."""

    counter: EnergyCounter
    rollovers: list[datetime.datetime]  # local time of each reading that moved the day
    unseen_wh: float  # exact energy of windows that read 0 with a load on


def integrate(profile: Profile, amps_of: Callable[[list[tuple[float, float]]], float],
              calibration: Calibration) -> Day:
    """Feed one reading per window end to an EnergyCounter, as Meter._window does."""
    counter = EnergyCounter(day=START.date())
    wall0 = START.timestamp()
    rollovers = []
    unseen = 0.0
    mono0 = 5000.0  # the monotonic clock's origin means nothing
    for k in range(1, DAY):
        end = k + PHASE
        parts = list(profile.parts(end - 1, end))
        watts = calibration.watts(amps_of(parts))
        if watts == 0.0:
            unseen += math.fsum(s * w for s, w in parts) / 3600
        today = datetime.datetime.fromtimestamp(wall0 + end)  # the daemon's _today()
        day = counter.day
        counter.add(watts, mono0 + end, today.date())
        if counter.day != day:
            rollovers.append(today)
    return Day(counter, rollovers, unseen)


def run() -> list[Row]:
    """A simulated day through the real meter; rows against the exact energy."""
    began = time.perf_counter()
    config = daemon_config()
    profile = Profile(PROFILE)
    calibration = Calibration(voltage=config.meter.volts, power_factor=config.meter.power_factor)
    amps_per_watt = 1 / (config.meter.volts * config.meter.power_factor)
    readings = meter_readings(config, profile.levels())
    measured_in = time.perf_counter() - began
    rng = random.Random(SEED)

    def exact(parts: list[tuple[float, float]]) -> float:
        return math.sqrt(math.fsum(s * (w * amps_per_watt) ** 2 for s, w in parts))

    def measured(parts: list[tuple[float, float]]) -> float:
        return math.sqrt(math.fsum(s * rng.choice(readings[w]) ** 2 for s, w in parts))

    started = time.perf_counter()
    day = integrate(profile, measured, calibration)
    integrated_in = time.perf_counter() - started
    ideal = integrate(profile, exact, calibration)
    took = time.perf_counter() - began

    first, last = PHASE, DAY - 1 + PHASE  # the span the readings cover
    exact_wh = profile.wh(first, last)
    midnight = clock("00:00")
    counted = day.counter.total_kwh * 1000
    error = (counted / exact_wh - 1) * 100
    ideal_error = (ideal.counter.total_kwh * 1000 / exact_wh - 1) * 100
    standby_alone = sum(s for s, w in profile.parts(first, last) if w == STANDBY_WATTS)

    def split(counted_wh: float, exact: float) -> str:
        return f"{counted_wh:,.1f} Wh vs {exact:,.1f} exact ({(counted_wh / exact - 1) * 100:+.3f} %)"

    yesterday_exact, today_exact = profile.wh(first, midnight), profile.wh(midnight, last)
    one_rollover = (len(day.rollovers) == 1 and day.counter.day == START.date() +
                    datetime.timedelta(days=1) and day.rollovers[0].time() < datetime.time(0, 0, 1))
    rolled = ", ".join(r.strftime("%Y-%m-%d %H:%M:%S.%f")[:-4] for r in day.rollovers) or "none"
    levels = profile.levels()
    return [
        Row(NAME, "24 h energy, readings from the real meter",
            f"{counted:,.1f} Wh counted vs {exact_wh:,.1f} Wh exact ({error:+.3f} %)",
            f"within ±{TARGET_PCT:g} %", abs(error) <= TARGET_PCT),
        Row(NAME, "… of which integration alone (exact readings)",
            f"{ideal.counter.total_kwh * 1000:,.1f} Wh ({ideal_error:+.4f} %)"),
        Row(NAME, f"… of which {STANDBY_WATTS:g} W standby alone, under the noise gate",
            f"{day.unseen_wh:.1f} Wh read as 0 ({day.unseen_wh / exact_wh * 100:.2f} % of the "
            f"day; standby alone {standby_alone / 3600:.1f} h)"),
        Row(NAME, "day rollover at local midnight",
            f"{len(day.rollovers)} rollover(s), at {rolled}; yesterday_wh "
            f"{split(day.counter.yesterday_wh, yesterday_exact)}; today_wh "
            f"{split(day.counter.today_wh, today_exact)}",
            "once, at the first reading from 00:00", one_rollover),
        Row(NAME, "set-up",
            f"{DAY - 1:,} readings from {START:%H:%M} to {START:%H:%M} next day, integrated in "
            f"{integrated_in:.2f} s; {len(levels)} load levels "
            f"({', '.join(f'{w:g}' for w in levels)} W) read {READINGS_PER_LEVEL} times each "
            f"through the chain in {measured_in:.1f} s; whole run {took:.1f} s"),
    ]


if __name__ == "__main__":
    run_alone(run)
