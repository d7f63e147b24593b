"""The meter: samples in, the plug's power, current and energy things out.

The sampler's thread runs the pure `CurrentMeter` on each block and hands
finished windows to the event loop, where they become values through
`Plug.set_thing`, feed the energy counters and the protection, and teach the
meter its zero and noise while the relay is off (no current can flow then).
Energy and calibration are saved in the state directory.

A failing bus (reported by the sampler) and windows no sensor can have given
(`Window.implausible`: garbage, a stuck bus) are both a sensor fault: power
and current become invalid, never 0, with one event when it starts and one
when it ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import date, datetime
from typing import Any

from plugd.chips import ACS712_MODELS, ACS712_SUPPLY, ADS1115_INPUT_HEADROOM
from plugd.core.metering import (
    Calibration,
    CurrentMeter,
    EnergyCounter,
    Window,
    calibrate_current,
    calibrate_power,
    calibrate_voltage,
    power_watts,
)
from plugd.core.model import ON, ThingId
from plugd.core.protection import Protection
from plugd.errors import HardwareError, ValidationError
from plugd.service.config import Config, ProtectionConfig
from plugd.service.plug import Cause, Change, Plug
from plugd.service.store import dump

log = logging.getLogger(__name__)

ENERGY_FILE = "energy.json"
CALIBRATION_FILE = "calibration.json"
SENSOR_THINGS = (ThingId.POWER, ThingId.CURRENT)
SENSOR = Cause("sensor")


def volts_per_amp(config: Config) -> float:
    """Sensitivity at the ADC input: the sensor's mV/A through the divider."""
    meter = config.meter
    sensor = meter.mv_per_amp / 1000 if meter.mv_per_amp > 0 else ACS712_MODELS[meter.sensor].volts_per_amp
    return sensor * meter.divider


def sensor_noise(config: Config) -> float:
    """The datasheet noise at the ADC input, until idle windows teach the real one."""
    if config.meter.mv_per_amp > 0:
        return 0.0
    return ACS712_MODELS[config.meter.sensor].noise_volts * config.meter.divider


def clip_limits(config: Config) -> dict[str, float]:
    """ADC-input voltages at which the chain clips: the sensor's rails, the ADC's full scale."""
    adc, divider = config.adc, config.meter.divider
    margin = adc.full_scale * 0.001  # within 0.1 % of a limit counts as clipped
    if "-" in adc.channel:  # the other input sits at the zero: the swing is what clips
        zero = config.meter.zero_volts * divider
        high = min(adc.full_scale, (ACS712_SUPPLY * divider) - zero)
        low = max(-adc.full_scale, -zero)
    else:
        high = min(adc.full_scale, adc.vdd, ACS712_SUPPLY * divider)
        low = 0.0
    return {"clip_low": low + margin, "clip_high": high - margin}


def valid_limits(config: Config) -> dict[str, float]:
    """ADC-input voltages beyond which no sample can come from the sensor: garbage.

    The sensor cannot leave its supply and the ADC's inputs are clamped 0.3 V
    beyond its rails; 1 % of full scale more covers the ADC's own errors.
    """
    adc, divider = config.adc, config.meter.divider
    slack = ADS1115_INPUT_HEADROOM + adc.full_scale * 0.01
    if "-" in adc.channel:
        zero = config.meter.zero_volts * divider
        return {"valid_low": -zero - slack, "valid_high": ACS712_SUPPLY * divider - zero + slack}
    return {"valid_low": -slack, "valid_high": min(adc.vdd, ACS712_SUPPLY * divider) + slack}


def current_meter(config: Config) -> CurrentMeter:
    """The meter's maths, set up for the configured sensor, divider and ADC."""
    return CurrentMeter(volts_per_amp=volts_per_amp(config), frequency=config.meter.frequency,
                        window=config.meter.interval, rate=config.adc.data_rate,
                        noise_volts=sensor_noise(config),
                        # A busy Pi delays a few conversions now and then: bridge gaps up to
                        # half a mains cycle rather than lose the reading.
                        max_gap=0.5 / config.meter.frequency, **clip_limits(config),
                        **valid_limits(config))



def protection_of(limits: ProtectionConfig) -> Protection:
    """The protection for `[protection]` limits (0: no limit): the meter's at start, and a
    new one when the page or a reload changes them while the plug runs."""
    return Protection(max_power=limits.max_power or None, max_current=limits.max_current or None,
                      hold=limits.hold, retry_after=limits.retry_after or None)

class Meter:
    """The meter: sampler windows in, readings, energy, protection and calibration out."""
    def __init__(self, plug: Plug, config: Config, loop: asyncio.AbstractEventLoop,
                 wall: Callable[[], float]) -> None:
        self.plug = plug
        self.config = config
        self.loop = loop
        self.wall = wall
        state = plug.state
        self.calibration = state.load(CALIBRATION_FILE, Calibration.from_json,
                                      lambda: Calibration(voltage=config.meter.volts,
                                                          power_factor=config.meter.power_factor))
        self.energy = state.load(ENERGY_FILE, EnergyCounter.from_json,
                                 lambda: EnergyCounter(day=self._today()))
        self.meter = current_meter(config)
        if self.calibration.zero_volts is not None:
            self.meter.zero_volts = self.calibration.zero_volts
        self.protection = protection_of(config.protection)
        #: What is wrong with the sensor (None: nothing): its bus first, else its readings.
        self.fault: str | None = None
        self._faults: dict[str, str] = {}
        self.clipped = False
        self.last: Window | None = None
        self._switched_at = float("-inf")
        #: Told of each reading: its wall time, the Wh counted since the one before, its W.
        self.on_reading: Callable[[float, float, float | None], None] | None = None
        plug.listeners.append(self._relay_watch)
        self._publish_energy()

    def _relay_watch(self, change: Change) -> None:
        """A switch starts a new window: the next reading is of the load after it, not a blend."""
        if change.thing is not None and change.thing.id == ThingId.PLUG:
            self._switched_at = self.loop.time()
            self.meter.restart(self._switched_at)

    def _today(self) -> date:
        return datetime.fromtimestamp(self.wall()).date()

    # --- from the sampler's thread ------------------------------------------

    def consume(self, times: list[float], volts: list[float]) -> None:
        """A block of samples (sampler thread): windows go to the event loop."""
        for window in self.meter.add_many(times, volts):
            self.loop.call_soon_threadsafe(self._window, window)

    def on_fault(self, text: str | None) -> None:
        """The sampler's thread reports a bus fault (None: it reads again)."""
        self.loop.call_soon_threadsafe(self._fault, text)

    # --- on the event loop ----------------------------------------------------

    def _fault(self, text: str | None) -> None:
        self._report("bus", text)

    def _report(self, source: str, text: str | None) -> None:
        """One event when the sensor fails, one when it is back; the status shows the latest."""
        if text is None:
            self._faults.pop(source, None)
        else:
            self._faults[source] = text
        was, self.fault = self.fault, self._faults.get("bus", self._faults.get("readings"))
        if self.fault is None and was is not None:
            self.plug.record("fault", "current sensor back", SENSOR, "sensor")
        elif self.fault is not None and was is None:
            self.plug.record("fault", f"current sensor failed: {self.fault}", SENSOR, "sensor")
            self.plug.invalidate(SENSOR_THINGS, SENSOR)
            self.energy.add(None, self.loop.time(), self._today())

    def _window(self, window: Window) -> None:
        if window.implausible:
            self._report("readings", f"implausible readings, {window.implausible}")
            return
        self._report("readings", None)
        self.last = window
        relay_on = self.plug.things[ThingId.PLUG].value == ON
        if not relay_on and window.start > self._switched_at:  # idle all through the window
            self.meter.learn_idle(window)
        cal = self.calibration
        amps = window.amps * cal.current_gain if relay_on else 0.0
        watts = power_watts(amps, cal.voltage, cal.power_factor)
        if window.clipped != self.clipped:
            self.clipped = window.clipped
            if window.clipped:
                self.plug.record("fault", "the current is beyond the sensor's range (clipped): "
                                          "the reading is too low", SENSOR, "sensor")
        self.plug.set_thing(ThingId.CURRENT, round(amps, 3), SENSOR)
        self.plug.set_thing(ThingId.POWER, round(watts, 2), SENSOR)
        counted = self.energy.total_kwh
        self.energy.add(watts, window.end, self._today())
        if self.on_reading is not None:
            self.on_reading(self.wall(), (self.energy.total_kwh - counted) * 1000.0, watts)
        self._publish_energy()
        self._protect(watts, amps, window.end)

    def _publish_energy(self) -> None:
        energy = self.energy
        self.plug.set_thing(ThingId.ENERGY_TODAY, round(energy.today_wh, 2), SENSOR)
        self.plug.set_thing(ThingId.ENERGY_YESTERDAY, round(energy.yesterday_wh, 2), SENSOR)
        self.plug.set_thing(ThingId.ENERGY_TOTAL, round(energy.total_kwh, 4), SENSOR)

    def _protect(self, watts: float, amps: float, now: float) -> None:
        if self.protection.tripped and not self.plug.tripped:  # a user switched it back on
            self.protection.clear(now)
        trip = self.protection.check(watts, amps, now)
        tripped = self.plug.tripped
        try:
            if trip is not None:
                self.plug.trip(trip.reason)
            elif tripped and self.plug.things[ThingId.PLUG].value == ON:
                # The relay's pin refused to open at the trip: try again at every reading.
                self.plug.set_thing(ThingId.PLUG, 0.0, Cause("protection", tripped))
            elif tripped and self.protection.may_retry(now):
                self.protection.clear(now)
                self.plug.set_thing(ThingId.PLUG, ON, Cause("protection", "retry"))
        except HardwareError:
            pass  # the plug recorded the fault once; the relay's value stays what it is

    # --- calibration ----------------------------------------------------------

    def calibrate(self, what: str, value: float | None) -> Calibration:
        """A new calibration from the last reading; raises ValidationError when it cannot."""
        if what == "reset":
            return Calibration(voltage=self.config.meter.volts, power_factor=self.config.meter.power_factor)
        window = self.last
        if window is None:
            raise ValidationError("what", "there is no reading yet; wait a second and retry")
        relay_on = self.plug.things[ThingId.PLUG].value == ON
        cal = self.calibration
        if what == "zero":
            if relay_on:
                raise ValidationError("what", "switch the relay off to calibrate the zero")
            return replace(cal, zero_volts=window.offset)
        if value is None:
            raise ValidationError("value", f"calibrating {what} needs the known value")
        if what == "voltage":
            return calibrate_voltage(cal, value)
        if not relay_on:
            raise ValidationError("what", f"switch the relay on with the known load to calibrate {what}")
        measured_amps = window.amps * cal.current_gain
        if what == "current":
            return calibrate_current(cal, measured_amps, value)
        if what == "power":
            return calibrate_power(cal, power_watts(measured_amps, cal.voltage, cal.power_factor), value)
        raise ValidationError("what", f"expected zero, current, power, voltage or reset, got {what!r}")

    async def store_calibration(self, calibration: Calibration) -> None:
        """Keep a new calibration, then use it (nothing changes if it cannot be kept)."""
        await self.plug.writer.save(CALIBRATION_FILE, dump(calibration.to_json()))
        self.calibration = calibration
        if calibration.zero_volts is not None:
            self.meter.zero_volts = calibration.zero_volts

    async def save_energy(self) -> None:
        """Write the energy counters (a power cut loses at most one flush interval)."""
        await self.plug.writer.save(ENERGY_FILE, dump(self.energy.to_json()))

    def view(self) -> dict[str, Any]:
        """The meter's state for `request_status`."""
        window = self.last
        return {"fault": self.fault, "clipped": self.clipped,
                "tripped": self.plug.tripped, "calibration": self.calibration.to_json(),
                "samplesPerSecond": round(window.rate, 1) if window else None,
                "zeroVolts": round(window.offset, 5) if window else None}
