"""The TM1637 display: what a reading looks like in 4 digits, and the thread that shows it.

Rendering is a pure function (`render_text`, `render`) so it can be checked for
every input. Driving the chip is not: the tm1637 library sleeps between clock
edges, so `Display` hands the latest state to a worker thread and never makes
the event loop wait for the display.

What the digits show (the unit is the mode's, set in the configuration):

    mode          value                      shown
    power         0 .. 9999 W                "   0" .. "9999"
                  10 kW .. 999 kW            "10k0" .. "999k" (k stands for the decimal point)
    energy_today  as power, in Wh and kWh    "  42", "12k3"
    current       0 .. 999 A                 "0A00", "4A35", "12A3", "123A" (A for the point)
    clock         seconds since midnight     "13:05", " 9:30" (24 h, with the colon)
    any but off   too large to show          " HI ", "-HI "
    measurements  negative                   "  -5", "-4A3" (the minus takes a digit;
                                             none when it rounds to zero: " 0A0")
    measurements  no value (None, NaN)       "----"; the clock without a time: "--:--"
    measurements  sensor fault               "Err "
    any but off   overload: protection off   " OL "
    off           -                          "    ", and the display switched off

The unit letter replaces the decimal point because the common module (the one
with a colon for clocks) has no decimal points: "4.35" would read "435" there.
A clock keeps its time through a sensor fault; an overload is shown in every mode
because the plug has just switched itself off.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from plugd.errors import HardwareError
from plugd.service.config import DISPLAY_MODES

#: Segment patterns (bit 0 segment a at the top, clockwise to f, bit 6 g in the middle).
_FONT = {" ": 0x00, "-": 0x40, "0": 0x3F, "1": 0x06, "2": 0x5B, "3": 0x4F, "4": 0x66, "5": 0x6D,
         "6": 0x7D, "7": 0x07, "8": 0x7F, "9": 0x6F, "A": 0x77, "E": 0x79, "H": 0x76,
         "I": 0x30, "L": 0x38, "O": 0x3F, "k": 0x75, "r": 0x50}
#: Bit 7 of the 2nd digit lights the colon.
COLON = 0x80
#: Display control (datasheet): 0x80 | brightness, without the 0x08 "on" bit.
_DISPLAY_OFF = 0x80
RETRY_AFTER = 5.0  # seconds between attempts on a failing display


class Fault(StrEnum):
    """What the display shows instead of a value when something is wrong."""
    OVERLOAD = "overload"  # the protection switched the load off: " OL "
    SENSOR = "sensor"  # the current sensor cannot be read: "Err "


@dataclass(frozen=True)
class Reading:
    """What the meter knows; each mode shows the field of its name."""

    power: float | None = None  # W
    current: float | None = None  # A
    energy_today: float | None = None  # Wh since local midnight
    fault: Fault | None = None


def render_text(mode: str, value: float | None, fault: Fault | None = None) -> str:
    """The 4 digits as text (the clock's colon as `:`).

    `value` is in the mode's unit; for the clock, seconds since local midnight.
    Any float in any mode gives 4 digits (see the module's table); it never raises
    but for an unknown mode.
    """
    _check_mode(mode)
    if mode == "off":
        return "    "
    if fault == Fault.OVERLOAD:
        return " OL "
    if mode == "clock":
        return _clock(value)
    if fault == Fault.SENSOR:
        return "Err "
    if value is None or math.isnan(value):
        return "----"
    fit = _amps if mode == "current" else _kilo
    sign = "-" if value < 0 else ""  # not for -0.0
    shown = None if math.isinf(value) else fit(abs(value), 4 - len(sign))  # a minus takes a digit
    if shown is None:
        return f"{sign}HI".center(4)
    if not shown.strip("0Ak"):
        sign = ""  # a negative that rounds to zero
    return (sign + shown).rjust(4)


def render(mode: str, value: float | None, fault: Fault | None = None) -> bytes:
    """The 4 segment bytes of `render_text`, left to right."""
    return _encode(render_text(mode, value, fault))


def local_seconds() -> float:
    """Seconds since local midnight, the clock mode's value."""
    now = time.time()
    t = time.localtime(now)
    return t.tm_hour * 3600 + t.tm_min * 60 + t.tm_sec + now % 1


def _clock(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "--:--"
    hours, minutes = divmod(int(seconds // 60) % 1440, 60)
    return f"{hours:2d}:{minutes:02d}"


def _kilo(magnitude: float, width: int) -> str | None:
    """Whole units while they fit, then kilo with `k` for the point."""
    whole = f"{magnitude:.0f}"
    return whole if len(whole) <= width else _letter_point(magnitude / 1000, width, "k")


def _amps(magnitude: float, width: int) -> str | None:
    return _letter_point(magnitude, width, "A")


def _letter_point(magnitude: float, width: int, letter: str) -> str | None:
    """As many decimals as fit, `letter` in place of the point; None when nothing fits."""
    for decimals in range(width - 2, 0, -1):
        shown = f"{magnitude:.{decimals}f}".replace(".", letter)
        if len(shown) <= width:
            return shown
    shown = f"{magnitude:.0f}{letter}"
    return shown if len(shown) <= width else None


def _encode(text: str) -> bytes:
    """Segment bytes of a rendered text; a `:` can only follow the 2nd digit."""
    glyphs = bytearray(_FONT[char] for char in text.replace(":", ""))
    if ":" in text:
        glyphs[1] |= COLON
    return bytes(glyphs)


@dataclass(frozen=True)
class _Shown:
    """What the chip holds, as far as we know."""

    segments: bytes
    brightness: int
    on: bool


class Display:
    """A TM1637 module on two GPIO pins, driven from a thread of its own.

    `show`, `mode` and `brightness` only hand over the latest state; the worker
    draws it, writing only what changed. A GPIO error is caught in the worker,
    kept in `fault`, reported to `on_fault` when the display starts failing and
    when it works again (called in the worker thread with the error or None, so
    it must neither block nor raise), and the display is set up and written
    afresh every `retry_after` seconds until it works. The tm1637 library never
    reads the chip's ACK bit, so a chip that is missing or dead is not detected:
    only a failing GPIO is. Nothing is written while the digits stay the same,
    so a GPIO failure shows at the next change.
    """

    def __init__(self, clk: int, dio: int, *, brightness: int = 7, mode: str = "power",
                 on_fault: Callable[[Exception | None], None] | None = None,
                 retry_after: float = RETRY_AFTER,
                 clock: Callable[[], float] = local_seconds) -> None:
        _check_mode(mode)
        _check_brightness(brightness)
        try:
            # Imported here: under --simulate the daemon installs the GPIO stand-in first.
            import tm1637
        except (ImportError, RuntimeError) as err:  # RPi.GPIO refuses to load off a Pi
            raise HardwareError(f"cannot load the TM1637 library: {err}") from None
        self._library = tm1637
        self._clk, self._dio = clk, dio
        self._on_fault = on_fault
        self._retry_after = retry_after
        self._clock = clock
        self._mode = mode
        self._brightness = brightness
        self._reading = Reading()
        self._wake = threading.Condition()
        self._wanted = 1  # state generations: handed over, and drawn (or failed)
        self._done = 0
        self._closing = False
        self._retry_at: float | None = None
        self._chip: Any = None
        self._shown: _Shown | None = None  # None: unknown (at start, after a fault)
        #: The text on the display after the last successful update; None before one.
        self.text: str | None = None
        #: The error of the last attempt; None while the display works.
        self.fault: Exception | None = None
        self._thread = threading.Thread(target=self._run, name=f"display-{clk}-{dio}",
                                        daemon=True)
        self._thread.start()

    @property
    def mode(self) -> str:
        """What the display shows: power, current, energy_today, clock or off."""
        return self._mode

    @mode.setter
    def mode(self, mode: str) -> None:
        _check_mode(mode)
        with self._wake:
            self._mode = mode
            self._handed_over()

    @property
    def brightness(self) -> int:
        """The brightness, 0..7."""
        return self._brightness

    @brightness.setter
    def brightness(self, brightness: int) -> None:
        _check_brightness(brightness)
        with self._wake:
            self._brightness = brightness
            self._handed_over()

    def show(self, reading: Reading) -> None:
        """Show `reading` soon; returns at once, and a newer reading replaces an undrawn one."""
        with self._wake:
            self._reading = reading
            self._handed_over()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until the latest state was drawn, or failed to be; False on timeout."""
        with self._wake:
            return self._wake.wait_for(lambda: self._done == self._wanted or self._closing,
                                       timeout)

    def close(self, timeout: float = 2.0) -> None:
        """Blank the display, switch it off, release its pins and stop the thread."""
        with self._wake:
            self._closing = True
            self._wake.notify_all()
        self._thread.join(timeout)

    # --- the worker -----------------------------------------------------------

    def _handed_over(self) -> None:
        """A new state is in (the caller holds the lock): wake the worker."""
        self._wanted += 1
        self._wake.notify_all()

    def _run(self) -> None:
        while (job := self._next_job()) is not None:
            self._draw(*job)
        self._draw("off", Reading(), self._brightness, self._wanted)
        self._chip = None  # tm1637's __del__ cleans its pins up

    def _next_job(self) -> tuple[str, Reading, int, int] | None:
        """Wait for something to draw: a new state, a due retry, a new minute on the clock."""
        with self._wake:
            while not self._closing:
                wait = self._wait()
                if wait == 0.0 or not self._wake.wait(wait):
                    return self._mode, self._reading, self._brightness, self._wanted
            return None

    def _wait(self) -> float | None:
        """Seconds until the next draw is due; None: until told."""
        if self._retry_at is not None:  # newer states wait for the retry too
            return max(0.0, self._retry_at - time.monotonic())
        if self._done != self._wanted:
            return 0.0
        if self._mode == "clock":
            return 60.0 - self._clock() % 60.0
        return None

    def _draw(self, mode: str, reading: Reading, brightness: int, generation: int) -> None:
        # The mode names the Reading field it shows ("off" has none).
        value = self._clock() if mode == "clock" else getattr(reading, mode, None)
        text = render_text(mode, value, reading.fault)
        try:
            self._write(_encode(text), brightness, on=mode != "off")
        except Exception as err:  # RuntimeError, OSError; lgpio (Pi 5) raises its own type
            # Start afresh on the next attempt: set the pins up again, rewrite everything.
            # Without its frames the error holds no chip, so tm1637's __del__ releases the
            # pins now rather than at some later garbage collection, under a newer chip.
            self._chip = self._shown = None
            self._retry_at = time.monotonic() + self._retry_after
            self._report(err.with_traceback(None))
        else:
            self._retry_at = None
            self.text = text
            self._report(None)
        with self._wake:
            self._done = generation
            self._wake.notify_all()

    def _report(self, fault: Exception | None) -> None:
        was, self.fault = self.fault, fault
        if (was is None) != (fault is None) and self._on_fault is not None:
            self._on_fault(fault)

    def _write(self, segments: bytes, brightness: int, *, on: bool) -> None:
        """Send the chip only what differs from what it holds."""
        chip = self._open(brightness)
        last = self._shown
        if last is None or segments != last.segments:
            if on and chip.brightness() != brightness:
                chip.brightness(brightness)
            first, end = _changed(last.segments if last else None, segments)
            chip.write(segments[first:end], first)  # ends with "display on" at its brightness
        elif on and (not last.on or brightness != last.brightness):
            chip.brightness(brightness)  # data command, then display control
        if not on and (last is None or last.on):
            # The library always sets the "on" bit, so this one frame is sent by hand.
            chip._start()
            chip._write_byte(_DISPLAY_OFF | chip.brightness())
            chip._stop()
        self._shown = _Shown(segments, brightness, on)

    def _open(self, brightness: int) -> Any:
        if self._chip is None:
            gpio = self._library.GPIO
            if gpio.getmode() is None:  # tm1637 sets BCM once, at import; a cleanup() clears it
                gpio.setmode(gpio.BCM)
            self._chip = self._library.TM1637(self._clk, self._dio, brightness)
        return self._chip


def _changed(old: bytes | None, new: bytes) -> tuple[int, int]:
    """The span of digits that differ: [first, end)."""
    if old is None:
        return 0, len(new)
    differ = [i for i, (a, b) in enumerate(zip(old, new)) if a != b]
    return differ[0], differ[-1] + 1


def _check_mode(mode: str) -> None:
    if mode not in DISPLAY_MODES:
        raise ValueError(f"display mode must be one of {', '.join(DISPLAY_MODES)}, got {mode!r}")


def _check_brightness(brightness: int) -> None:
    if not isinstance(brightness, int) or not 0 <= brightness <= 7:
        raise ValueError(f"display brightness must be between 0 and 7, got {brightness!r}")
