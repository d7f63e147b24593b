"""The daemon's metering chain on a fake clock, for the accuracy and energy benchmarks.

MainsModel -> ADS1115Emulator -> adafruit_ads1x15 -> CurrentMeter, each built
from the daemon's configuration as plugd/hardware/sim/rig.py and plugd/meter.py
build them, so the figures are those of the settings the daemon runs with.
The clock moves one conversion period per read instead of waiting for it: a
simulated second costs a few milliseconds, and every read is checked to be a
distinct conversion with none skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plugd.core.metering import CurrentMeter, Window
from plugd.hardware.adc import Sampler
from plugd.hardware.sim.ads1115 import ADS1115Emulator
from plugd.hardware.sim.rig import mains_for
from plugd.service.config import Config, parse

#: Seconds from a conversion's end to its read: the RDY callback's delay. The Sampler stamps a
#: sample when its callback runs, and a read right on the edge would be at the mercy of rounding.
LATENCY = 20e-6
#: Fake-clock seconds per clock call while the driver polls a single-shot conversion at set-up.
POLL_STEP = 1e-4


def daemon_config(overrides: Mapping[str, Any] | None = None) -> Config:
    """The configuration `plugd --simulate` runs with, plus dotted-key `overrides`."""
    return parse("", dict(overrides or {}), simulate=True)


class FakeClock:
    """Monotonic seconds that move only when set, or by `step` at each call."""

    def __init__(self, t: float, step: float = 0.0) -> None:
        self.t = t
        self.step = step

    def __call__(self) -> float:
        """The next time: each call advances the fake clock by its step."""
        now = self.t
        self.t += self.step
        return now


class Chain:
    """One simulated plug's sensor, ADC and driver, read once per conversion on a fake clock.

    The driver is set up by the Sampler's own `_open` (the daemon's exact
    sequence of register writes: a single-shot read to select the input, then
    continuous mode with ALERT/RDY as conversion-ready), and each read is the
    same `AnalogIn.voltage` the Sampler's RDY callback makes, stamped like it.
    `relay_on` connects the load; the phase of the mains is set by `start`.
    """

    def __init__(self, config: Config, *, start: float = 1000.0) -> None:
        adc = config.adc
        self.relay_on = False
        self.mains = mains_for(config, lambda: self.relay_on)
        self.clock = FakeClock(start, POLL_STEP)
        error = config.simulate.oscillator_error
        self.emulator = ADS1115Emulator(self.mains, address=adc.address, clock=self.clock,
                                        oscillator_error=error, vdd=adc.vdd)
        sampler = Sampler(lambda: self.emulator, address=adc.address, channel=adc.channel,
                          full_scale=adc.full_scale, data_rate=adc.data_rate,
                          alert_pin=adc.alert_pin, pin_factory=None, consume=_unused,
                          on_fault=_unused, clock=self.clock)
        if sampler.single_shot:
            raise ValueError("the chain reads on ALERT/RDY: configure adc.alert_pin")
        self._channel = sampler._open()  # private, but it is the daemon's set-up, not a copy
        self.clock.step = 0.0
        #: The chip's conversion period, its oscillator error included (as the emulator has it).
        self.period = 1 / (adc.data_rate * (1 + error))
        self._first_edge = self._next_edge()
        self._first_count = self.emulator.conversions_completed()
        self._read_before = self.emulator.conversions_read
        self._stale_before = self.emulator.stale_reads
        self.reads = 0

    def _next_edge(self) -> float:
        """The end of the conversion under way now, found from the chip's own count."""
        now = self.clock.t
        done = self.emulator.conversions_completed(now)
        low, high = now, now + self.period
        for _ in range(64):
            middle = (low + high) / 2
            if self.emulator.conversions_completed(middle) > done:
                high = middle
            else:
                low = middle
        return high

    def windows(self, meter: CurrentMeter, count: int) -> list[tuple[Window, list[float]]]:
        """The next `count` windows `meter` completes, each with the volts it was made of.

        The volts of a window are every sample since the previous window
        closed: the same samples the meter used, as long as no gap restarts it
        (none can on a fake clock).
        """
        done: list[tuple[Window, list[float]]] = []
        volts: list[float] = []
        clock, channel, add = self.clock, self._channel, meter.add
        edge, period, n = self._first_edge, self.period, self.reads
        while len(done) < count:
            t = edge + n * period + LATENCY
            n += 1
            clock.t = t
            value = channel.voltage
            volts.append(value)
            window = add(t, value)
            if window is not None:
                done.append((window, volts))
                volts = []
        self.reads = n
        return done

    def check(self) -> None:
        """Raise unless every conversion the chip made was read exactly once."""
        emulator = self.emulator
        read = emulator.conversions_read - self._read_before
        stale = emulator.stale_reads - self._stale_before
        made = emulator.conversions_completed() - self._first_count
        if read != self.reads or stale or made != self.reads:
            raise RuntimeError(f"fake-clock reads out of step with the chip: {self.reads} reads, "
                               f"{read} distinct conversions, {stale} repeated, {made} made")


def _unused(*_: object) -> None:
    """The Sampler built only for its set-up never hands samples over."""
