"""The mains load as an ACS712 and its divider present it to an ADC input.

The ADS1115 integrates its input over each conversion, so the one question
this model answers is "what was the mean voltage on AINx over [t0, t1]?".
The sinusoids are averaged in closed form, because the emulator asks ~860
times a second; only an overloaded sensor, whose output clips at its rails,
is averaged numerically.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping

from plugd.chips import ACS712_MODELS, ACS712_SUPPLY

#: The sensor a mains model stands behind unless told otherwise.
DEFAULT_SENSOR = ACS712_MODELS["ACS712-30A"]

#: Points per period of the highest harmonic when a clipped output is averaged numerically.
CLIP_POINTS_PER_PERIOD = 32
CLIP_POINTS = (16, 4096)


class MainsModel:
    """One load on the mains, through an ACS712 and a divider, wired to AIN<channel>.

    The current's fundamental lags the voltage by acos(power_factor); harmonic h
    lags by h times that, so the waveform keeps its shape and is only delayed. A
    negative relative amplitude inverts a harmonic (the peaky current of a
    capacitor-input rectifier has a negative 3rd). `amps_rms` is the RMS of the
    whole waveform, harmonics included.

    The sensor's noise is one Gaussian draw per conversion, and its zero drifts
    linearly from the first conversion the model is asked for (the emulator's
    clock is time.monotonic, whose origin means nothing). The sensor output
    clips at 0 V and at its supply before the divider scales it.
    """

    def __init__(self, *, amps_rms: float = 0.0, volts: float = 230.0, frequency: float = 50.0,
                 power_factor: float = 1.0, harmonics: Mapping[int, float] | None = None,
                 sensitivity: float = DEFAULT_SENSOR.volts_per_amp, zero_volts: float = 2.5,
                 drift_volts_per_hour: float = 0.0,
                 noise_rms_volts: float = DEFAULT_SENSOR.noise_volts,
                 supply_volts: float = ACS712_SUPPLY, divider: float = 1.0,
                 relay_on: Callable[[], bool] = lambda: True, channel: int = 0,
                 seed: int | None = None) -> None:
        for name, value in (("volts", volts), ("frequency", frequency),
                            ("sensitivity", sensitivity), ("supply_volts", supply_volts),
                            ("divider", divider)):
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value!r}")
        if not 0 < power_factor <= 1:
            raise ValueError(f"power_factor must be in (0, 1], got {power_factor!r}")
        if noise_rms_volts < 0:
            raise ValueError(f"noise_rms_volts must not be negative, got {noise_rms_volts!r}")
        if channel not in range(4):
            raise ValueError(f"channel must be 0..3 (AIN0..AIN3), got {channel!r}")
        shape = {1: 1.0}
        for order, amplitude in (harmonics or {}).items():
            if not isinstance(order, int) or order < 2:
                raise ValueError(f"harmonic orders are integers from 2 up, got {order!r}")
            shape[order] = float(amplitude)
        self._shape = [(order, a) for order, a in sorted(shape.items()) if a]
        self._shape_rms = math.sqrt(sum(a * a for _, a in self._shape))
        self._mains_volts = volts
        self._omega = 2 * math.pi * frequency
        self._power_factor = power_factor
        self._lag = math.acos(power_factor)
        self._sensitivity = sensitivity
        self._zero = zero_volts
        self._drift = drift_volts_per_hour / 3600
        self._drift_origin: float | None = None
        self._noise = noise_rms_volts
        self._supply = supply_volts
        self._divider = divider
        self._relay_on = relay_on
        self._channel = channel
        self._rng = random.Random(seed)
        self.amps_rms = amps_rms

    @property
    def amps_rms(self) -> float:
        """RMS of the load current while the relay is on."""
        return self._amps_rms

    @amps_rms.setter
    def amps_rms(self, amps: float) -> None:
        if not amps >= 0:
            raise ValueError(f"amps_rms must not be negative, got {amps!r}")
        peak = math.sqrt(2) * amps / self._shape_rms * self._sensitivity
        terms = tuple((order * self._omega, amplitude * peak, -order * self._lag)
                      for order, amplitude in self._shape) if peak else ()
        # One tuple, so a reader on another thread never pairs new terms with an old bound.
        self._load = (terms, sum(abs(volts) for _, volts, _ in terms),
                      max((omega for omega, _, _ in terms), default=0.0))
        self._amps_rms = amps

    @property
    def load_watts(self) -> float:
        """The load as the page sets it: watts = volts * amps * power factor."""
        return self._amps_rms * self._mains_volts * self._power_factor

    @load_watts.setter
    def load_watts(self, watts: float) -> None:
        self.amps_rms = watts / (self._mains_volts * self._power_factor)

    def volts(self, channel: int, t0: float, t1: float) -> float:
        """Mean voltage of AIN<channel> against GND over [t0, t1]: what one conversion sees.

        With t0 == t1 it is the instantaneous voltage. Inputs other than the
        sensor's read 0 V.
        """
        if channel != self._channel:
            return 0.0
        if self._drift_origin is None:
            self._drift_origin = t0
        terms, swing, top_omega = self._load
        if not self._relay_on():
            terms, swing = (), 0.0
        zero0, zero1 = self._zero_at(t0), self._zero_at(t1)
        if min(zero0, zero1) - swing >= 0 and max(zero0, zero1) + swing <= self._supply:
            out = (zero0 + zero1) / 2 + _mean_of_sines(terms, t0, t1)
        else:
            out = self._clipped_mean(terms, top_omega, t0, t1)
        if self._noise:
            out += self._rng.gauss(0.0, self._noise)
        return min(max(out, 0.0), self._supply) * self._divider

    def _zero_at(self, t: float) -> float:
        return self._zero + self._drift * (t - self._drift_origin)

    def _clipped_mean(self, terms: tuple[tuple[float, float, float], ...], top_omega: float,
                      t0: float, t1: float) -> float:
        """Midpoint-rule mean of the clipped output: the clipping has no cheap closed form."""
        wanted = math.ceil(CLIP_POINTS_PER_PERIOD * (t1 - t0) * top_omega / (2 * math.pi))
        n = min(max(wanted, CLIP_POINTS[0]), CLIP_POINTS[1]) if t1 > t0 else 1
        step = (t1 - t0) / n
        total = 0.0
        for k in range(n):
            t = t0 + (k + 0.5) * step
            out = self._zero_at(t) + sum(v * math.sin(w * t + p) for w, v, p in terms)
            total += min(max(out, 0.0), self._supply)
        return total / n


def _mean_of_sines(terms: tuple[tuple[float, float, float], ...], t0: float, t1: float) -> float:
    """Mean of sum(v sin(w t + p)) over [t0, t1]: each term's value at the midpoint times sinc.

    The integral's cos(a) - cos(b) rewritten as 2 sin((a+b)/2) sin((b-a)/2)
    stays exact for short intervals, where the difference of cosines cancels.
    """
    half = (t1 - t0) / 2
    mid = t0 + half
    total = 0.0
    for omega, volts, phase in terms:
        x = omega * half
        total += volts * (math.sin(x) / x if x else 1.0) * math.sin(omega * mid + phase)
    return total
