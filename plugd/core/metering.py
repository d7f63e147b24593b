"""Current, power and energy from ADC samples: the pure maths of the plug's meter.

Nothing here reads a clock, a file or a chip. Callers pass sample times and
reading times as monotonic seconds and the local date as a `datetime.date`,
so every result can be reproduced in a test and the daemon decides when
things happen.

The signal chain: an ACS712 gives `zero + sensitivity * i(t)` volts, a
resistor divider scales that into an ADS1115 input, and the ADS1115 in
continuous mode delivers ~860 conversions a second, each modelled as the mean
of its input over one conversion period.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from plugd.chips import ACS712_MODELS, ADS1115_FULL_SCALES, ADS1115_INPUT_HEADROOM, ADS1115_RANGES
from plugd.core.model import describe, read_float, require_object
from plugd.errors import ValidationError

# --- parameters -------------------------------------------------------------------------------


def _number(field: str, value: Any, *, above: float | None = None, low: float | None = None,
            high: float | None = None, unit: str = "") -> float:
    """A finite number within bounds, or a ValidationError that names `field` and the bound."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(field, f"expected a number, got {describe(value)}")
    if not math.isfinite(value):
        raise ValidationError(field, f"must be a finite number, got {value}")
    if above is not None and value <= above:
        raise ValidationError(field, f"must be above {above:g}{unit}, got {value:g}{unit}")
    if (low is not None and value < low) or (high is not None and value > high):
        if high is None:
            raise ValidationError(field, f"must be at least {low:g}{unit}, got {value:g}{unit}")
        if low is None:
            raise ValidationError(field, f"must be at most {high:g}{unit}, got {value:g}{unit}")
        raise ValidationError(field, f"must be between {low:g} and {high:g}{unit}, got {value:g}{unit}")
    return float(value)


# --- the ADC's averaging ----------------------------------------------------------------------


def averaging_gain(frequency: float, rate: float, order: int = 1) -> float:
    """The amplitude a sine of `frequency` keeps through an ADC averaging over 1/`rate`.

    A conversion that is the mean of its input over T = 1/rate (a sinc1
    filter) scales a sine by |sin(pi f T) / (pi f T)|: 0.99445 at 50 Hz and
    860 SPS, i.e. 0.55 % low. `order` n models a sinc^n filter (n cascaded
    averages); 0 is an instantaneous sample and keeps everything.
    """
    x = math.pi * frequency / rate
    return abs(math.sin(x) / x) ** order if x else 1.0


# --- current ----------------------------------------------------------------------------------

#: A gap between samples longer than this many nominal sample periods restarts the window.
GAP_PERIODS = 4
#: `learn_idle` refuses a window reading more than this (in A): no ACS712 is that noisy
#: (their datasheet noise is ~0.02 A), so current is flowing through an "off" relay.
MAX_IDLE_AMPS = 0.2
#: Idle windows are averaged over about this many: a plain mean at first, then exponential.
IDLE_WINDOWS = 8
#: Filter orders `CurrentMeter` accepts; see `averaging_gain`.
FILTER_ORDERS = range(0, 4)


@dataclass(frozen=True, slots=True)
class Window:
    """One measurement over a whole number of mains cycles.

    `start` and `end` are the times of its first and last sample; `rate` is
    measured from them, so it is the ADC's real rate, not the nominal one.
    """

    start: float
    end: float
    samples: int
    rate: float
    offset: float  # mean volts: the sensor's zero, as this window saw it
    raw_rms_volts: float  # AC rms with the offset removed, noise included
    amps: float  # compensated, noise removed in quadrature, gated: exactly 0.0 below the gate
    clipped: bool  # a sample reached clip_low or clip_high: the reading is too low
    #: Why no sensor can have given these samples ("" when one can): the reading is not one.
    implausible: str = ""


class CurrentMeter:
    """Timestamped ADC-input volts in, one RMS current per window out.

    A window covers the whole number of mains cycles closest to `window`
    seconds: it holds the number of samples whose span (samples times the
    period measured in the previous window) is closest to those cycles, within
    half a sample period, so its mean is the sensor's zero for an AC load and
    the rms has no partial cycle in it. Each window removes its own mean, so a
    drifting zero is followed; a drift within one window adds its ramp's rms
    (drift * seconds / sqrt 12) in quadrature, negligible for the ACS712's
    thermal drift. A DC component of the load (a half-wave rectified load) is
    removed with the mean too and reads low.

    The rms is divided by `averaging_gain` at the mains frequency and the
    measured rate (`filter_order` 1: each conversion is the mean over its
    period; 0: no compensation). Only the fundamental is compensated: a 3rd
    harmonic reads ~4.9 % low at 50 Hz, 860 SPS, but adds little to the rms.

    Noise: `noise_volts` (ADC input, same units as `raw_rms_volts`) is
    subtracted in quadrature before the compensation. `gate_amps` None makes
    the gate the noise itself in amps: a noise-only window of 860 samples
    leaves a residual of about 0.2 times the noise rms after subtraction, so
    it reads 0.0 unless the real noise grows by 40 % over the learned one.

    A gap between samples longer than `max_gap` (default 4 nominal periods,
    at most half a mains cycle), or a time that does not increase, drops the
    partial window and starts a new one at that sample: a sensor hiccup costs
    a reading rather than giving a wrong one. Samples are not validated one
    by one (they come from ADC codes); keep them finite.

    Implausible windows: a sample below `valid_low` or above `valid_high`
    (volts no sensor on this input can give, such as random bytes read off a
    disturbed bus), or every sample of the window the same code (a live
    sensor always shows noise of several codes; a stuck bus, a chip that
    stopped converting or a register read back in place of the conversion
    does not) set `Window.implausible`. What stays undetectable: a stuck
    value that still varies, or garbage that happens to look like noise
    within the valid range.
    """

    __slots__ = (
        "_close_after",
        "_close_at",
        "_duration",
        "_gate",
        "_high",
        "_idle_count",
        "_last",
        "_low",
        "_n",
        "_noise",
        "_ref",
        "_restart_at",
        "_start",
        "_sum",
        "_sum2",
        "_zero",
        "clip_high",
        "clip_low",
        "cycles",
        "filter_order",
        "frequency",
        "max_gap",
        "valid_high",
        "valid_low",
        "volts_per_amp",
    )

    def __init__(self, *, volts_per_amp: float, frequency: float, clip_low: float,
                 clip_high: float, window: float = 1.0, noise_volts: float = 0.0,
                 gate_amps: float | None = None, filter_order: int = 1, rate: float = 860.0,
                 max_gap: float | None = None, valid_low: float = -math.inf,
                 valid_high: float = math.inf) -> None:
        self.volts_per_amp = _number("volts_per_amp", volts_per_amp, above=0, unit=" V/A")
        self.frequency = _number("frequency", frequency, low=40, high=70, unit=" Hz")
        seconds = _number("window", window, above=0, high=3600, unit=" s")
        self.cycles = max(1, math.floor(seconds * self.frequency + 0.5))
        self.clip_low = _number("clip_low", clip_low, unit=" V")
        self.clip_high = _number("clip_high", clip_high, unit=" V")
        if self.clip_high <= self.clip_low:
            raise ValidationError("clip_high", f"must be above clip_low {clip_low:g} V, "
                                               f"got {clip_high:g} V")
        if math.isnan(valid_low) or valid_low >= self.clip_low:
            raise ValidationError("valid_low", f"must be below clip_low {clip_low:g} V, "
                                               f"got {valid_low:g} V")
        if math.isnan(valid_high) or valid_high <= self.clip_high:
            raise ValidationError("valid_high", f"must be above clip_high {clip_high:g} V, "
                                                f"got {valid_high:g} V")
        self.valid_low, self.valid_high = float(valid_low), float(valid_high)
        self._noise = _number("noise_volts", noise_volts, low=0, unit=" V")
        self._gate = None if gate_amps is None else _number("gate_amps", gate_amps, low=0,
                                                             unit=" A")
        if isinstance(filter_order, bool) or filter_order not in FILTER_ORDERS:
            raise ValidationError("filter_order", f"must be 0 (no averaging) to "
                                                  f"{FILTER_ORDERS[-1]}, got {filter_order!r}")
        self.filter_order = int(filter_order)
        nominal = _number("rate", rate, above=2 * self.frequency, unit=" samples/s")
        half_cycle = 0.5 / self.frequency
        if max_gap is None:
            max_gap = min(GAP_PERIODS / nominal, half_cycle)
        # Above one period, or every sample is a gap; at most half a cycle, so the measured
        # rate stays above twice the mains frequency and the compensation below 1.57.
        self.max_gap = _number("max_gap", max_gap, above=1 / nominal, high=half_cycle, unit=" s")
        self._zero: float | None = None
        self._idle_count = 0
        self._duration = self.cycles / self.frequency
        self._close_after = self._duration - 1.5 / nominal
        self._ref = math.nan  # the first sample sets it
        self._last = self._start = self._restart_at = -math.inf
        self._close_at = math.inf
        self._n = 0
        self._sum = self._sum2 = 0.0
        self._low, self._high = math.inf, -math.inf

    @property
    def noise_volts(self) -> float:
        """The noise rms subtracted from every window: given, then learned by `learn_idle`."""
        return self._noise

    @property
    def gate_amps(self) -> float:
        """Results below this read 0.0: the one given, or the noise rms in amps."""
        return self._noise / self.volts_per_amp if self._gate is None else self._gate

    @property
    def zero_volts(self) -> float | None:
        """The sensor's zero at the ADC input from idle windows; None before any."""
        return self._zero

    @zero_volts.setter
    def zero_volts(self, volts: float) -> None:
        """A zero known from before (a saved calibration), until an idle window measures it."""
        self._zero = _number("zero_volts", volts, unit=" V")

    def restart(self, at: float) -> None:
        """Start a new window at the first sample timed at or after `at`, dropping those before.

        Called when the relay switches, so that no window mixes the load before
        and after: the first reading after a switch is of the new load alone.
        The event loop calls it while the sampler's thread runs `add`: it only
        stores `at`, one attribute assignment that the GIL makes whole, and
        `add` acts on it while the window it sees began before `at`.
        """
        self._restart_at = at

    def add(self, t: float, volts: float) -> Window | None:
        """Feed one sample; returns the window it completes, if any."""
        if self._restart_at > self._start:  # a restart was asked for since this window began
            if t < self._restart_at:
                return None
            self._last = -math.inf  # this sample begins the new window
        dt = t - self._last
        self._last = t
        if dt > self.max_gap or dt <= 0.0:
            self._begin(t, volts)
        d = volts - self._ref  # relative to the last offset, so the sums stay small
        self._n += 1
        self._sum += d
        self._sum2 += d * d
        if volts < self._low:
            self._low = volts
        if volts > self._high:
            self._high = volts
        if t >= self._close_at:
            return self._close(t)
        return None

    def add_many(self, times: Sequence[float], volts: Sequence[float]) -> list[Window]:
        """Feed a block of samples; returns the windows it completes, oldest first."""
        if len(times) != len(volts):
            raise ValidationError("volts", f"has {len(volts)} samples for {len(times)} times")
        return [window for window in map(self.add, times, volts) if window is not None]

    def learn_idle(self, window: Window) -> bool:
        """Learn the zero and the noise from a window taken while no current can flow.

        Returns False, learning nothing, for a clipped window or one reading
        above MAX_IDLE_AMPS: that is current through a relay that should be
        off (or a wrong divider), and learning it would hide the load behind
        the gate. The noise is averaged as a variance.
        """
        if window.clipped or window.raw_rms_volts > MAX_IDLE_AMPS * self.volts_per_amp:
            return False
        self._idle_count += 1
        weight = 1 / min(self._idle_count, IDLE_WINDOWS)
        variance = self._noise * self._noise
        variance += (window.raw_rms_volts * window.raw_rms_volts - variance) * weight
        self._noise = math.sqrt(variance)
        zero = window.offset if self._zero is None else self._zero
        self._zero = zero + (window.offset - zero) * weight
        return True

    def _begin(self, t: float, volts: float) -> None:
        self._start = t
        self._close_at = t + self._close_after
        self._n = 0
        self._sum = self._sum2 = 0.0
        self._low, self._high = math.inf, -math.inf
        if math.isnan(self._ref):
            self._ref = volts

    def _close(self, t: float) -> Window:
        n = self._n
        mean = self._sum / n
        variance = max(self._sum2 / n - mean * mean, 0.0)
        rate = (n - 1) / (t - self._start)
        # The next window ends half a measured period either side of whole cycles.
        self._close_after = self._duration - 1.5 / rate
        self._ref += mean
        self._last = -math.inf  # the next sample begins the next window
        signal = variance - self._noise * self._noise
        amps = 0.0
        if signal > 0.0:
            gain = averaging_gain(self.frequency, rate, self.filter_order)
            amps = math.sqrt(signal) / (gain * self.volts_per_amp)
            if amps < self.gate_amps:
                amps = 0.0
        return Window(start=self._start, end=t, samples=n, rate=rate, offset=self._ref,
                      raw_rms_volts=math.sqrt(variance), amps=amps,
                      clipped=self._low <= self.clip_low or self._high >= self.clip_high,
                      implausible=self._implausible())

    def _implausible(self) -> str:
        low, high = self._low, self._high
        if low < self.valid_low or high > self.valid_high:
            beyond = low if low < self.valid_low else high
            return (f"a sample read {beyond:.3f} V, outside the {self.valid_low:.2f} .. "
                    f"{self.valid_high:.2f} V a sensor can give on this input")
        if low == high and self._n > 1:
            return (f"all {self._n} samples read {low:.4f} V: a live sensor always shows "
                    f"some noise")
        return ""


# --- power and energy -------------------------------------------------------------------------


def power_watts(amps: float, volts: float, power_factor: float) -> float:
    """Real power from the rms current: the ACS712 sees no voltage, so V and PF are assumed."""
    return (_number("amps", amps, low=0, unit=" A") * _number("volts", volts, above=0, unit=" V")
            * _number("power_factor", power_factor, above=0, high=1))


#: Seconds between readings beyond which the span is not integrated.
DEFAULT_MAX_GAP = 10.0


class EnergyCounter:
    """Watt-hours today, yesterday and in total, by the trapezoid rule between readings.

    A span is integrated only when both its readings are valid and it lasts
    more than 0 and at most `max_gap` seconds: an invalid reading (None)
    removes the spans on both its sides (there is no value to interpolate
    from), and a hang or a monotonic time going back invents no energy.

    `day` is the local date of the energy in `today_wh`. It only moves
    forward: a later date rolls over once (yesterday becomes today's total if
    it is the next day, else 0), an earlier one (a wall clock stepped back) is
    counted into the current day, so stepping the clock back and forth never
    rolls into the same day twice. A span is counted before the rollover its
    reading brings, i.e. in the day it started.
    """

    def __init__(self, *, max_gap: float = DEFAULT_MAX_GAP,
                 day: datetime.date | None = None) -> None:
        self.max_gap = _number("max_gap", max_gap, above=0, unit=" s")
        self._day = None if day is None else _date("day", day)
        self._today_wh = 0.0
        self._yesterday_wh = 0.0
        self._total_kwh = 0.0
        self._last_t = -math.inf
        self._last_watts: float | None = None

    @property
    def today_wh(self) -> float:
        """Energy counted since local midnight, in Wh."""
        return self._today_wh

    @property
    def yesterday_wh(self) -> float:
        """Energy counted on the local day before, in Wh."""
        return self._yesterday_wh

    @property
    def total_kwh(self) -> float:
        """Energy counted since the counter began, in kWh."""
        return self._total_kwh

    @property
    def day(self) -> datetime.date | None:
        """The local day `today_wh` belongs to (None before the first reading)."""
        return self._day

    def add(self, watts: float | None, t: float, day: datetime.date) -> None:
        """A reading at monotonic time `t` on local date `day`; None: the value is invalid."""
        if watts is not None:
            watts = _number("watts", watts, low=0, unit=" W")
        t = _number("t", t, unit=" s")
        day = _date("day", day)
        dt = t - self._last_t
        if watts is not None and self._last_watts is not None and 0.0 < dt <= self.max_gap:
            wh = (self._last_watts + watts) * dt / 7200.0
            self._today_wh += wh
            self._total_kwh += wh / 1000.0
        self._last_t, self._last_watts = t, watts
        if self._day is None:
            self._day = day
        elif day > self._day:
            self._yesterday_wh = self._today_wh if (day - self._day).days == 1 else 0.0
            self._today_wh = 0.0
            self._day = day

    def to_json(self) -> dict[str, Any]:
        """The counters as kept in energy.json."""
        return {"day": None if self._day is None else self._day.isoformat(),
                "today_wh": self._today_wh, "yesterday_wh": self._yesterday_wh,
                "total_kwh": self._total_kwh}

    @classmethod
    def from_json(cls, obj: Any, *, max_gap: float = DEFAULT_MAX_GAP) -> EnergyCounter:
        """The counters as `to_json` wrote them; the next reading starts a new span."""
        where = "energy"
        obj = require_object(obj, where)
        counter = cls(max_gap=max_gap)
        counter._today_wh = _stored_energy(obj, "today_wh", where)
        counter._yesterday_wh = _stored_energy(obj, "yesterday_wh", where)
        counter._total_kwh = _stored_energy(obj, "total_kwh", where)
        if "day" not in obj:
            raise ValidationError(f"{where}.day", "is missing")
        day = obj["day"]
        if day is not None:
            try:
                counter._day = datetime.date.fromisoformat(day)
            except (TypeError, ValueError):
                raise ValidationError(f"{where}.day", f"expected a date like 2026-11-26 or null, "
                                                      f"got {describe(day)}") from None
        return counter


def _stored_energy(obj: dict[str, Any], key: str, where: str) -> float:
    value = read_float(obj, key, where)
    if value < 0:
        raise ValidationError(f"{where}.{key}", f"must not be negative, got {value}")
    return value


def _date(field: str, value: Any) -> datetime.date:
    # A datetime is a date too, but cannot be compared with one.
    if not isinstance(value, datetime.date) or isinstance(value, datetime.datetime):
        raise ValidationError(field, f"expected a local date, got {type(value).__name__}")
    return value


# --- calibration ------------------------------------------------------------------------------

#: The current gain a calibration may reach: beyond it the sensor model or divider is wrong.
GAIN_RANGE = (0.5, 2.0)
#: Mains voltages a calibration accepts (100..240 V nominal, with room either side).
VOLTAGE_RANGE = (50.0, 300.0)
#: A calibration reading must be at least this many times the noise gate.
CALIBRATION_GATES = 10
#: The default gate for calibration: about the ACS712's datasheet noise in amps, every model.
DEFAULT_GATE_AMPS = 0.02


@dataclass(frozen=True, slots=True)
class Calibration:
    """How the meter's amps become the plug's amps and watts.

    `zero_volts` is the sensor's zero at the ADC input, None until learned;
    `current_gain` multiplies `CurrentMeter` amps.
    """

    current_gain: float = 1.0
    voltage: float = 230.0
    power_factor: float = 1.0
    zero_volts: float | None = None

    def __post_init__(self) -> None:
        _number("current_gain", self.current_gain, low=GAIN_RANGE[0], high=GAIN_RANGE[1])
        _number("voltage", self.voltage, low=VOLTAGE_RANGE[0], high=VOLTAGE_RANGE[1], unit=" V")
        _number("power_factor", self.power_factor, above=0, high=1)
        if self.zero_volts is not None:
            _number("zero_volts", self.zero_volts, unit=" V")

    def amps(self, meter_amps: float) -> float:
        """The plug's current for a `CurrentMeter` reading."""
        return meter_amps * self.current_gain

    def watts(self, meter_amps: float) -> float:
        """The plug's power for a `CurrentMeter` reading."""
        return power_watts(self.amps(meter_amps), self.voltage, self.power_factor)

    def to_json(self) -> dict[str, Any]:
        """The factors as kept in calibration.json."""
        return {"current_gain": self.current_gain, "voltage": self.voltage,
                "power_factor": self.power_factor, "zero_volts": self.zero_volts}

    @classmethod
    def from_json(cls, obj: Any) -> Calibration:
        """Read calibration.json or an import; ValidationError names the field."""
        where = "calibration"
        obj = require_object(obj, where)
        zero = None
        if obj.get("zero_volts") is not None:
            zero = read_float(obj, "zero_volts", where)
        values = {key: read_float(obj, key, where)
                  for key in ("current_gain", "voltage", "power_factor")}
        try:
            return cls(**values, zero_volts=zero)
        except ValidationError as err:
            raise ValidationError(f"{where}.{err.field}", err.problem) from None


def calibrate_current(cal: Calibration, measured_amps: float, known_amps: float, *,
                      gate_amps: float = DEFAULT_GATE_AMPS) -> Calibration:
    """The calibration that makes a reading of `measured_amps` (with `cal`) read `known_amps`.

    `gate_amps` is the meter's noise gate (`CurrentMeter.gate_amps`): near it
    the noise subtraction dominates the reading and a gain from it is wrong.
    """
    known = _number("known_amps", known_amps, above=0, unit=" A")
    measured = _number("measured_amps", measured_amps, above=0, unit=" A")
    floor = CALIBRATION_GATES * cal.amps(_number("gate_amps", gate_amps, low=0, unit=" A"))
    if measured < floor:
        raise ValidationError("measured_amps", f"{measured:g} A is too close to the noise gate "
                                               f"({floor / CALIBRATION_GATES:.3g} A): calibrate "
                                               f"with a load drawing at least {floor:.3g} A")
    return _with_gain(cal, known / measured, f"{known:g} A known for {measured:g} A measured")


def calibrate_power(cal: Calibration, measured_watts: float, known_watts: float, *,
                    gate_amps: float = DEFAULT_GATE_AMPS) -> Calibration:
    """The calibration whose current gain makes `measured_watts` (with `cal`) read `known_watts`."""
    known = _number("known_watts", known_watts, above=0, unit=" W")
    measured = _number("measured_watts", measured_watts, above=0, unit=" W")
    floor = CALIBRATION_GATES * cal.watts(_number("gate_amps", gate_amps, low=0, unit=" A"))
    if measured < floor:
        raise ValidationError("measured_watts", f"{measured:g} W is too close to the noise gate "
                                                f"({floor / CALIBRATION_GATES:.3g} W): calibrate "
                                                f"with a load of at least {floor:.3g} W")
    return _with_gain(cal, known / measured, f"{known:g} W known for {measured:g} W measured")


def _with_gain(cal: Calibration, ratio: float, why: str) -> Calibration:
    gain = cal.current_gain * ratio
    low, high = GAIN_RANGE
    if not low <= gain <= high:
        raise ValidationError("current_gain", f"{why} would make the gain {cal.current_gain:g} x "
                                              f"{ratio:.4g} = {gain:.4g}, outside {low:g}..{high:g}: "
                                              f"check the sensor model, the divider and the "
                                              f"reference meter")
    return replace(cal, current_gain=gain)


def calibrate_voltage(cal: Calibration, volts: float) -> Calibration:
    """The calibration with the mains voltage measured by the user."""
    low, high = VOLTAGE_RANGE
    return replace(cal, voltage=_number("volts", volts, low=low, high=high, unit=" V"))


# --- the analogue front end -------------------------------------------------------------------


def check_front_end(*, sensor: str | float, divider: float, full_scale: float,
                    zero_volts: float = 2.5, adc_vdd: float = 3.3, max_amps: float | None = None,
                    differential: bool = False) -> None:
    """Refuse a sensor, divider and ADC range that cannot measure up to `max_amps`.

    `sensor` is a model in ACS712_MODELS or a sensitivity in V/A; `max_amps`
    defaults to the model's range. A single-ended input measures against GND,
    so the signal sits around zero_volts * divider and its top must fit the
    full scale; `differential` means the other input is held at the zero
    (same divider), so only the swing must. Either way the input itself must
    stay below the ADS1115's VDD + 0.3 V.
    """
    if isinstance(sensor, str):
        if sensor not in ACS712_MODELS:
            raise ValidationError("sensor", f"unknown model {sensor!r}; known: {', '.join(ACS712_MODELS)}")
        rated: float | None = ACS712_MODELS[sensor].max_amps
        sensitivity = ACS712_MODELS[sensor].volts_per_amp
        name = f"the {sensor}"
    else:
        rated = None
        sensitivity = _number("sensor", sensor, above=0, unit=" V/A")
        name = "the sensor"
    if max_amps is not None:
        amps = _number("max_amps", max_amps, above=0, unit=" A")
    elif rated is not None:
        amps = rated
    else:
        raise ValidationError("max_amps", "is needed when the sensor is given as a sensitivity")
    if rated is not None and amps > rated:
        raise ValidationError("max_amps", f"{amps:g} A is beyond the ±{rated:g} A range of "
                                          f"{name}: choose a larger model")
    zero = _number("zero_volts", zero_volts, above=0, unit=" V")
    ratio = _number("divider", divider, above=0, high=1)
    vdd = _number("adc_vdd", adc_vdd, low=2.0, high=5.5, unit=" V")
    if full_scale not in ADS1115_RANGES:
        raise ValidationError("full_scale", f"must be one of the ADS1115's "
                                            f"{', '.join(map(str, ADS1115_FULL_SCALES))} V, "
                                            f"got {full_scale!r}")
    swing = sensitivity * amps
    top = zero + swing
    at = f"at {amps:g} A {name}"
    if swing > zero:
        raise ValidationError("max_amps", f"{at} would swing {swing:.2f} V either side of its "
                                          f"{zero:g} V zero, below 0 V: choose a larger model")
    limit = vdd + ADS1115_INPUT_HEADROOM
    if top * ratio > limit:
        raise ValidationError("divider", f"{at} gives {top:.2f} V, {top * ratio:.2f} V after the "
                                         f"divider, above the ADS1115's VDD {vdd:g} V + "
                                         f"{ADS1115_INPUT_HEADROOM:g} V = {limit:.2f} V: choose a divider "
                                         f"of at most {_floor3(limit / top)}")
    measured = swing if differential else top
    if measured * ratio > full_scale:
        fits = min(scale for scale in ADS1115_FULL_SCALES if scale >= measured * ratio)
        what = f"swings ±{swing:.2f} V" if differential else f"gives {top:.2f} V"
        raise ValidationError("full_scale", f"{at} {what}, {measured * ratio:.2f} V after the "
                                            f"divider, above the ±{full_scale:g} V full scale of "
                                            f"gain {ADS1115_RANGES[full_scale].label}: choose gain "
                                            f"{ADS1115_RANGES[fits].label} (±{fits:g} V) or a divider of "
                                            f"at most {_floor3(full_scale / measured)}")


def _floor3(value: float) -> str:
    """Rounded down to 3 decimals, so the suggested ratio is safe."""
    return f"{math.floor(value * 1000) / 1000:.3f}"
