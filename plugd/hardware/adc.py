"""The ADS1115, read through `adafruit_ads1x15` off the event loop.

With ALERT/RDY wired to a GPIO, the chip converts continuously and pulses
the pin at the end of each conversion; each pulse reads that conversion once
and timestamps it at the edge, so no conversion is read twice or skipped by
a polling loop that beats against the chip's clock. Without the pin (or
when no pulse comes), each conversion is started and polled (single-shot):
slower, still never read twice. Samples reach `consume` in blocks from the
sampler's thread; the event loop never waits on the bus. A failing bus is
reported once and retried with a growing delay.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from gpiozero import DigitalInputDevice, Factory, GPIOZeroError

from plugd.chips import ADS1115_RANGES

log = logging.getLogger(__name__)

BLOCK_SECONDS = 0.05
#: No ALERT/RDY pulse for this long (hundreds of conversions): the pin is not wired.
RDY_TIMEOUT = 0.5
MAX_BACKOFF = 30.0
ERRORS = (OSError, ValueError, RuntimeError, GPIOZeroError)

Consumer = Callable[[list[float], list[float]], None]


class Sampler:
    """Reads the ADS1115 in a thread of its own and hands blocks of timed samples on."""
    def __init__(self, open_bus: Callable[[], Any], *, address: int, channel: str,
                 full_scale: float, data_rate: int, alert_pin: int, pin_factory: Factory | None,
                 consume: Consumer, on_fault: Callable[[str | None], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._open_bus = open_bus
        self._address = address
        self._pins = [int(p[1]) for p in channel.split("-")]  # "A0" -> [0], "A0-A1" -> [0, 1]
        self._gain = ADS1115_RANGES[full_scale].gain
        self._data_rate = data_rate
        self._alert_pin = alert_pin
        self._pin_factory = pin_factory
        self._consume = consume
        self._on_fault = on_fault
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="plugd-adc", daemon=True)
        self._lock = threading.Lock()
        self._times: list[float] = []
        self._volts: list[float] = []
        self._edge_error: Exception | None = None
        self._fault: str | None = None
        self.single_shot = not alert_pin
        #: Seconds spent reading and handing over samples (sampling + maths), for the benchmarks.
        self.busy_seconds = 0.0

    def start(self) -> None:
        """Start sampling."""
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling and release the bus and the pin."""
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            try:
                channel = self._open()
                if self.single_shot:
                    self._read_single_shot(channel)
                elif not self._read_on_pulses(channel):
                    log.warning("no ALERT/RDY pulses on GPIO%d: is it wired? Starting each "
                                "conversion instead (fewer samples a second)", self._alert_pin)
                    self.single_shot = True
                    continue
                return
            except ERRORS as err:
                text = f"ADS1115 at {self._address:#x} on the I2C bus: {err}"
                if self._fault is None:  # a new outage: report it once, and retry soon
                    backoff = 1.0
                    self._fault = text
                    self._on_fault(text)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    def _open(self) -> Any:
        from adafruit_ads1x15.ads1x15 import Mode
        from adafruit_ads1x15.ads1115 import ADS1115
        from adafruit_ads1x15.analog_in import AnalogIn

        options: dict[str, Any] = {"gain": self._gain, "data_rate": self._data_rate,
                                   "address": self._address}
        if self.single_shot:
            return AnalogIn(ADS1115(self._open_bus(), mode=Mode.SINGLE, **options), *self._pins)
        # Hi_thresh MSB 1 and Lo_thresh MSB 0 make ALERT/RDY a conversion-ready signal.
        ads = ADS1115(self._open_bus(), mode=Mode.SINGLE, comparator_queue_length=1,
                      comparator_low_threshold=0, comparator_high_threshold=-32768, **options)
        channel = AnalogIn(ads, *self._pins)
        # The driver selects an input only in single-shot mode; switching to continuous after
        # one read keeps that input. Its fast reads then skip the pointer, so point it back
        # at the conversion register, which the mode change moved to the configuration.
        _ = channel.value
        ads.mode = Mode.CONTINUOUS
        ads.get_last_result(fast=False)
        return channel

    def _hand_over(self, times: list[float], volts: list[float]) -> None:
        if times:
            if self._fault is not None:
                self._fault = None
                self._on_fault(None)
            started = time.perf_counter()
            self._consume(times, volts)
            self.busy_seconds += time.perf_counter() - started

    def _read_on_pulses(self, channel: Any) -> bool:
        """Read one conversion per pulse until stopped; False when no pulse ever comes."""
        def ready(ticks: int, state: int) -> None:
            started = time.perf_counter()
            at = self._clock()
            try:
                value = channel.voltage
            except ERRORS as err:
                self._edge_error = err
                return
            with self._lock:
                self._times.append(at)
                self._volts.append(value)
            self.busy_seconds += time.perf_counter() - started

        with DigitalInputDevice(self._alert_pin, pull_up=True, pin_factory=self._pin_factory) as rdy:
            self._edge_error = None
            # The device claims the pin and pulls it up; the handler hangs on the pin itself and
            # on the falling (ready) edge only: the device's event bookkeeping on both edges of
            # every pulse cost more than reading the conversion.
            rdy.pin.edges = "falling"
            rdy.pin.when_changed = ready
            last_pulse = self._clock()
            while not self._stop.wait(BLOCK_SECONDS):
                if self._edge_error is not None:
                    raise self._edge_error
                with self._lock:
                    times, volts = self._times, self._volts
                    self._times, self._volts = [], []
                if times:
                    last_pulse = times[-1]
                elif self._clock() - last_pulse > RDY_TIMEOUT:
                    # A chip that stopped answering sends no pulses either: that is the bus
                    # failing (this read raises), not an unwired pin.
                    _ = channel.voltage
                    return False
                self._hand_over(times, volts)
            rdy.pin.when_changed = None
        return True

    def _read_single_shot(self, channel: Any) -> None:
        while not self._stop.is_set():
            end = self._clock() + BLOCK_SECONDS
            times: list[float] = []
            volts: list[float] = []
            started = time.perf_counter()
            while self._clock() < end:
                volts.append(channel.voltage)
                times.append(self._clock())
            self.busy_seconds += time.perf_counter() - started
            self._hand_over(times, volts)
