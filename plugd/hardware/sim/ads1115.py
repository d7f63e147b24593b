"""An ADS1115 at the register level, standing in for the I2C bus its driver talks to.

adafruit_ads1x15 drives this object exactly as it drives a Linux bus: the
probe at construction, the pointer writes, the `fast` reads that rely on a
pointer left at the conversion register, the OS-bit polling of single-shot
mode. So the simulated plug runs the real driver, quirks included. Every
conversion is worked out lazily from the clock at the bus access that needs
it: with a fake clock the tests are deterministic, and no thread runs unless
ALERT/RDY has to move in real time; then one thread pulses it in batches.
"""

from __future__ import annotations

import errno
import math
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from plugd.chips import ADS1115_DATA_RATES, ADS1115_FULL_SCALES, ADS1115_INPUT_HEADROOM

CONVERSION, CONFIG, LO_THRESH, HI_THRESH = range(4)
RESET_CONFIG = 0x8583
RESET_LO_THRESH = 0x8000
RESET_HI_THRESH = 0x7FFF
OS = 0x8000
MODE_SINGLE = 0x0100
COMP_POL_HIGH = 0x0008
COMP_QUE_OFF = 0x0003
#: PGA[2:0] -> full scale in volts; the last three codes all mean ±0.256 V. DR[2:0] indexes
#: ADS1115_DATA_RATES.
FULL_SCALE = (*ADS1115_FULL_SCALES, ADS1115_FULL_SCALES[-1], ADS1115_FULL_SCALES[-1])
#: MUX[2:0] -> (positive input, negative input); None is GND.
MUX = ((0, 1), (0, 3), (1, 3), (2, 3), (0, None), (1, None), (2, None), (3, None))
#: How often the ALERT/RDY thread wakes in continuous mode to pulse the conversions ended since:
#: one wake per conversion (860 a second) cost more CPU than the rest of the simulated plug.
RDY_BATCH = 0.04
#: A thread that fell further behind than this many seconds pulses only the latest conversions.
REPLAY_LIMIT = 1.0
#: Slack, in periods, so a fake clock advanced by exactly n periods sees n conversions.
EDGE = 1e-9
#: Times of bus transactions kept, a few seconds' worth at full speed.
TRANSFER_HISTORY = 4096
FAULTS = (None, "nack", "gone", "garbage", "stuck")


class VoltageSource(Protocol):
    """What feeds the emulated inputs: volts at each AIN at a time."""
    def volts(self, channel: int, t0: float, t1: float) -> float:
        """Mean voltage of AIN<channel> against GND over [t0, t1]."""


class DrivenPin(Protocol):
    """What the emulator needs of ALERT/RDY: gpiozero's MockPin is one."""

    def drive_low(self) -> None:
        """Pull the pin low (ALERT/RDY asserted, active low)."""

    def drive_high(self) -> None:
        """Release the pin high."""


@dataclass(frozen=True, slots=True)
class _Run:
    """Conversions from `start`, with the settings they were started with."""

    start: float
    period: float
    pair: tuple[int, int | None]
    full_scale: float
    continuous: bool

    def completed(self, now: float) -> int:
        done = max(0, math.floor((now - self.start) / self.period + EDGE))
        return done if self.continuous else min(done, 1)

    def next_end(self, now: float) -> float:
        """When the conversion under way at `now` ends (single-shot: its only one)."""
        if not self.continuous:
            return self.start + self.period
        return self.start + (self.completed(now) + 1) * self.period


class ADS1115Emulator:
    """One ADS1115 on its own I2C bus, built from the TI ADS111x datasheet.

    Bus: a 1-byte write sets the pointer (bits 7:2 are ignored), a 3-byte write
    sets pointer and register, MSB first; a 2-byte write sets only the pointer
    and bytes after the third are ignored. A read returns the pointed register
    MSB first and, past two bytes, repeats MSB, LSB (our choice; the driver
    never reads more). A write to the read-only conversion register only moves
    the pointer. A wrong address is not acknowledged (EREMOTEIO).

    Conversions: each result is the mean input over its conversion interval
    (a sinc1 filter), asked of the source at the first read after it ended,
    quantised to round(V * 32768 / FS) and clipped to -32768..32767. Each input
    is clamped to GND - 0.3 V .. VDD + 0.3 V, its absolute maximum, beyond which
    the real chip's protection diodes conduct. The data rate is the nominal one
    times (1 + oscillator_error). Continuous mode converts back to back and any
    config write restarts the cycle; the conversion register holds the last
    completed conversion, and OS reads 0 (always converting). In single-shot
    mode, OS=1 written while powered down starts one conversion; OS reads 0
    until it completes one period later. A config write during that conversion
    changes the settings of the next one only, and switching to continuous
    abandons it.

    ALERT/RDY: only the conversion-ready use (Hi_thresh MSB 1, Lo_thresh MSB 0,
    COMP_QUE not 11) is emulated, with COMP_POL setting the active level; the
    threshold comparator is not. Continuous mode pulses the pin once for each
    conversion; single-shot mode asserts it at the end of a conversion until the
    next one starts. Otherwise the open-drain pin is released to its pull-up
    (high). The continuous pulses come in batches, every RDY_BATCH seconds, and
    each is handled in the time of its own conversion end: `clock()` and bus
    reads on the pulsing thread return that time while it is handled. A reader
    that timestamps the edge with `clock()` and reads the conversion register
    thus gets the same samples at the same times as from a pulse at each end,
    only up to RDY_BATCH later. Pulses of a run cut short by a register write
    that were still due when it landed are not sent.

    Faults, set through `fault`: "nack" (every transfer fails with EREMOTEIO,
    what i2c-dev reports for a missing acknowledge; the chip keeps its state),
    "garbage" (reads return random bytes, writes still land), "gone" (ENXIO;
    the chip lost power, so once the fault is cleared it answers from its
    power-on reset: single-shot, powered down, registers at their reset values),
    "stuck" (SDA held low, as by a device latched in mid-byte: every address
    looks acknowledged, so no error reaches the driver, writes are lost and
    every read returns zero bytes). `transfers` counts the bus transactions
    tried, failed ones included, and `transfer_times` keeps when (time.monotonic,
    whatever the chip's clock) the latest were.
    """

    def __init__(self, source: VoltageSource, *, address: int = 0x48,
                 clock: Callable[[], float] = time.monotonic, oscillator_error: float = 0.0,
                 vdd: float = 3.3, alert_pin: DrivenPin | None = None) -> None:
        if address not in range(0x48, 0x4C):
            raise ValueError(f"an ADS1115 answers at 0x48..0x4b, got {address:#x}")
        if not -1 < oscillator_error < 1:
            raise ValueError(f"oscillator_error is relative (the datasheet allows ±0.1), "
                             f"got {oscillator_error!r}")
        self._source = source
        self._address = address
        self._clock = clock
        self._rate_factor = 1 + oscillator_error
        self._inputs = (-ADS1115_INPUT_HEADROOM, vdd + ADS1115_INPUT_HEADROOM)
        self._alert_pin = alert_pin
        self._bus_lock = threading.Lock()
        self._lock = threading.Lock()  # the chip's state: the bus and the ALERT/RDY thread share it
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._running = False
        self._replayer: int | None = None  # the ALERT/RDY thread's id
        self._replay_at: float | None = None  # the conversion end whose pulse it is handling
        self._rng = random.Random()
        self._fault: str | None = None
        self._done = 0  # conversions completed by runs that have ended
        self._result_seq = 0  # which conversion the conversion register holds
        self._read_seq = 0
        #: Distinct conversions read from the conversion register.
        self.conversions_read = 0
        #: Reads of the conversion register that brought no new conversion.
        self.stale_reads = 0
        #: Bus transactions tried, answered or not, and when (time.monotonic) the latest were.
        self.transfers = 0
        self.transfer_times: deque[float] = deque(maxlen=TRANSFER_HISTORY)
        self._power_on()

    def _power_on(self) -> None:
        self._pointer = CONVERSION
        self._config = RESET_CONFIG & ~OS
        self._lo = RESET_LO_THRESH
        self._hi = RESET_HI_THRESH
        self._result = 0
        self._run: _Run | None = None

    # The bus, as adafruit_bus_device uses it.

    def try_lock(self) -> bool:
        """As busio's: the emulated bus is always free."""
        return self._bus_lock.acquire(blocking=False)

    def unlock(self) -> None:
        """As busio's: nothing to release."""
        self._bus_lock.release()

    def writeto(self, address: int, buffer: bytes | bytearray, *, start: int = 0,
                end: int | None = None) -> None:
        """An I2C write: a register pointer, and a register's new value."""
        self._transfer(address, bytes(buffer[start:end]), None, 0, None)

    def readfrom_into(self, address: int, buffer: bytearray, *, start: int = 0,
                      end: int | None = None) -> None:
        """An I2C read of the register the pointer names."""
        self._transfer(address, b"", buffer, start, end)

    def writeto_then_readfrom(self, address: int, buffer_out: bytes | bytearray,
                              buffer_in: bytearray, *, out_start: int = 0,
                              out_end: int | None = None, in_start: int = 0,
                              in_end: int | None = None) -> None:
        """A write of the pointer, then a read of its register."""
        self._transfer(address, bytes(buffer_out[out_start:out_end]), buffer_in, in_start, in_end)

    # Test and benchmark hooks.

    @property
    def fault(self) -> str | None:
        """None (healthy), "nack", "gone", "garbage" or "stuck"; see the class docstring."""
        return self._fault

    @fault.setter
    def fault(self, fault: str | None) -> None:
        if fault not in FAULTS:
            raise ValueError(f"fault must be one of {FAULTS}, got {fault!r}")
        with self._lock:
            if fault == "gone" and self._fault != "gone":
                self._stop_run(self._clock())
                self._power_on()
            self._fault = fault
        self._wake.set()

    def conversions_completed(self, now: float | None = None) -> int:
        """Conversions the chip has finished by `now` (default: the clock's now)."""
        with self._lock:
            now = self._clock() if now is None else now
            run = self._run
            return self._done + (run.completed(now) if run else 0)

    def clock(self) -> float:
        """The chip's time as a reader of ALERT/RDY sees it: give it to the sampler.

        While a pulse is handled, the end of the conversion it signals;
        otherwise the emulator's clock. See the class docstring.
        """
        return self._now()

    def start(self) -> None:
        """Move ALERT/RDY in real time, from a thread that wakes at conversion ends.

        The thread sleeps on the real clock for times read from the emulator's
        clock, so it is meant for the default time.monotonic. Without a pin it
        does nothing.
        """
        if self._alert_pin is None or self._thread is not None:
            return
        self._running = True
        self._thread = threading.Thread(target=self._signal_ready, args=(self._alert_pin,),
                                        name="ads1115-alert-rdy", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the ALERT/RDY thread and wait for it."""
        thread = self._thread
        if thread is None:
            return
        self._running = False
        self._wake.set()
        thread.join()
        self._thread = None

    # The chip.

    def _transfer(self, address: int, out: bytes, into: bytearray | None, start: int,
                  end: int | None) -> None:
        self.transfers += 1
        self.transfer_times.append(time.monotonic())
        fault = self._fault
        if fault == "stuck":
            if into is not None:
                end = len(into) if end is None else end
                into[start:end] = bytes(max(0, end - start))
            return
        if fault == "gone":
            raise OSError(errno.ENXIO, os.strerror(errno.ENXIO))
        if fault == "nack" or address != self._address:
            raise OSError(errno.EREMOTEIO, os.strerror(errno.EREMOTEIO))
        with self._lock:
            now = self._now()
            if out:
                self._write(out, now)
            if into is None:
                return
            end = len(into) if end is None else end
            if end <= start:
                return
            if fault == "garbage":
                into[start:end] = self._rng.randbytes(end - start)
                return
            word = self._register(now).to_bytes(2, "big")
            into[start:end] = (word * ((end - start + 1) // 2))[:end - start]

    def _now(self) -> float:
        at = self._replay_at
        if at is not None and threading.get_ident() == self._replayer:
            return at
        return self._clock()

    def _write(self, data: bytes, now: float) -> None:
        self._pointer = data[0] & 0x03
        if len(data) < 3:
            return
        value = data[1] << 8 | data[2]
        if self._pointer == CONFIG:
            self._write_config(value, now)
        elif self._pointer == LO_THRESH:
            self._lo = value
        elif self._pointer == HI_THRESH:
            self._hi = value
        self._wake.set()

    def _write_config(self, value: int, now: float) -> None:
        self._settle(now)
        continuous = not value & MODE_SINGLE
        single_under_way = self._run is not None and not self._run.continuous
        if continuous or not single_under_way:
            self._stop_run(now)
        self._config = value & ~OS
        if continuous or (value & OS and self._run is None):
            config = self._config
            self._run = _Run(start=now,
                             period=1 / (ADS1115_DATA_RATES[config >> 5 & 7] * self._rate_factor),
                             pair=MUX[config >> 12 & 7], full_scale=FULL_SCALE[config >> 9 & 7],
                             continuous=continuous)

    def _register(self, now: float) -> int:
        if self._pointer == CONVERSION:
            self._settle(now)
            if self._result_seq > self._read_seq:
                self._read_seq = self._result_seq
                self.conversions_read += 1
            else:
                self.stale_reads += 1
            return self._result & 0xFFFF
        if self._pointer == CONFIG:
            self._settle(now)
            return self._config | (0 if self._run else OS)
        return self._lo if self._pointer == LO_THRESH else self._hi

    def _settle(self, now: float) -> None:
        """Bring the conversion register up to `now`: convert the last finished interval once."""
        run = self._run
        if run is None:
            return
        done = run.completed(now)
        if not done:
            return
        seq = self._done + done
        if seq != self._result_seq:
            end = run.start + done * run.period
            self._result = self._convert(run, end - run.period, end)
            self._result_seq = seq
        if not run.continuous:
            self._done = seq
            self._run = None

    def _stop_run(self, now: float) -> None:
        """End the run at `now`, counting its finished conversions (a cut-off one is lost)."""
        self._settle(now)
        if self._run is not None and self._run.continuous:
            self._done += self._run.completed(now)
        self._run = None

    def _convert(self, run: _Run, t0: float, t1: float) -> int:
        low, high = self._inputs
        positive, negative = run.pair
        volts = min(max(self._source.volts(positive, t0, t1), low), high)
        if negative is not None:
            volts -= min(max(self._source.volts(negative, t0, t1), low), high)
        return min(max(round(volts * 32768 / run.full_scale), -32768), 32767)

    def _ready_level(self) -> bool | None:
        """The active level of ALERT/RDY as a conversion-ready pin, None when it is not one."""
        enabled = self._config & COMP_QUE_OFF != COMP_QUE_OFF
        if enabled and self._hi & 0x8000 and not self._lo & 0x8000:
            return bool(self._config & COMP_POL_HIGH)
        return None

    def _signal_ready(self, pin: DrivenPin) -> None:
        self._replayer = threading.get_ident()
        asserted = False
        signalled: float | None = None  # the single-shot end last shown on the pin
        shown: tuple[_Run, int] | None = None  # a continuous run and its conversions pulsed
        while self._running:
            self._wake.clear()
            with self._lock:
                now = self._clock()
                active = self._ready_level()
                run = self._run
                due = run.next_end(now) if run else None
            if active is None:
                pin.drive_high()
                self._wake.wait()
                continue
            if run is not None and run.continuous:
                if shown is None or shown[0] is not run:
                    shown = (run, 0)  # a new run: its first conversion ends one period in
                shown = (run, self._replay(pin, active, run, shown[1], now))
                _drive(pin, not active)
                assert due is not None
                if self._wake.wait(max(due, now + RDY_BATCH) - now) and not self._running:
                    # stop(): the conversions that ended before it had pulsed on the chip
                    self._replay(pin, active, run, shown[1], self._clock())
                continue
            if due is not None and due > now:
                asserted = False
            elif due is not None and due != signalled:  # a single-shot end passed unseen
                asserted, signalled = True, due
            _drive(pin, active if asserted else not active)
            if due is None or due <= now:
                self._wake.wait()
                continue
            if self._wake.wait(due - now):
                continue  # a register changed, or stop(): plan again
            signalled, asserted = due, True

    def _replay(self, pin: DrivenPin, active: bool, run: _Run, shown: int, now: float) -> int:
        """Pulse ALERT/RDY once for each conversion of `run` after the `shown`th, up to `now`.

        Each pulse is handled at its conversion's end: while it is, `clock()`
        and the bus on this thread read that time, so a reader timestamping the
        edge and reading the conversion register gets what it would have got
        then. Returns how many conversions of the run have been pulsed; a run
        replaced meanwhile (a register write) ends the batch.
        """
        done = run.completed(now)
        first = max(shown, done - int(REPLAY_LIMIT / run.period)) + 1
        for n in range(first, done + 1):
            if self._run is not run:
                return n - 1
            self._replay_at = run.start + n * run.period
            try:
                _drive(pin, active)
                _drive(pin, not active)
            finally:
                self._replay_at = None
        return done


def _drive(pin: DrivenPin, high: bool) -> None:
    if high:
        pin.drive_high()
    else:
        pin.drive_low()
