"""A stand-in for the `RPi.GPIO` module that records pin edges instead of driving pins.

The tm1637 library does `import RPi.GPIO` when it is imported and bit-bangs CLK
and DIO with `GPIO.output`; with this module installed in its place the real
library runs on any machine, and a listener (the TM1637 decoder) reads its edges
back. The stand-in refuses what the real module refuses, so code that works here
does not fail on a Pi for a missing `setmode` or `setup`.

On a Raspberry Pi 5 the real `RPi.GPIO` API comes from the `rpi-lgpio` package
(the same calls, on top of lgpio); the classic RPi.GPIO package only knows the
GPIO block of the older Pis. Both install a module named RPi.GPIO, so only one
of them can be in an environment (raspberrypi-tm1637 asks for RPi.GPIO).
"""

from __future__ import annotations

import sys
import threading
import time
import types
import warnings
from collections import deque
from collections.abc import Callable, Iterable

#: Called with (channel, level, time.monotonic()) on every level change of an output.
Listener = Callable[[int, int, float], None]

#: Edges kept per pin: a few dozen full display updates.
HISTORY = 4096

#: The 40-pin header's GPIOs: BCM numbers, and their physical pins for BOARD numbering.
BCM_PINS = frozenset(range(28))
BOARD_PINS = frozenset({3, 5, 7, 8, 10, 11, 12, 13, 15, 16, 18, 19, 21, 22, 23, 24, 26, 27,
                        28, 29, 31, 32, 33, 35, 36, 37, 38, 40})


class StandInGPIO(types.ModuleType):
    """RPi.GPIO's constants and calls; outputs are recorded with a timestamp."""

    BOARD, BCM = 10, 11
    OUT, IN = 0, 1
    LOW, HIGH = 0, 1
    PUD_OFF, PUD_DOWN, PUD_UP = 20, 21, 22

    def __init__(self) -> None:
        super().__init__("RPi.GPIO", "plugd's simulated RPi.GPIO (plugd.hardware.sim.gpio)")
        # Re-entrant: a listener may look at the pins while an edge is delivered.
        self._lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        """Back to a fresh import: no mode, no pins, no history, no listeners, no fault."""
        with self._lock:
            #: Set it to make `setup` and `output` raise RuntimeError, as a broken bus would.
            self.fail = False
            self._mode: int | None = None
            self._warnings = True
            self._direction: dict[int, int] = {}
            self._pull: dict[int, int] = {}
            self._levels: dict[int, int] = {}
            self._history: dict[int, deque[tuple[float, int]]] = {}
            self._listeners: list[Listener] = []

    # --- RPi.GPIO's API -----------------------------------------------------

    def setmode(self, mode: int) -> None:
        """RPi.GPIO's setmode: BCM or BOARD, once."""
        with self._lock:
            if mode not in (self.BCM, self.BOARD):
                raise ValueError("An invalid mode was passed to setmode()")
            if self._mode is not None and mode != self._mode:
                raise ValueError("A different mode has already been set!")
            self._mode = mode

    def getmode(self) -> int | None:
        """RPi.GPIO's getmode."""
        return self._mode

    def setwarnings(self, flag: bool) -> None:
        """RPi.GPIO's setwarnings: recorded, nothing else."""
        self._warnings = bool(flag)

    def setup(self, channel: int | Iterable[int], direction: int, pull_up_down: int = PUD_OFF,
              initial: int = -1) -> None:
        """RPi.GPIO's setup: a pin as input or output, with its initial level."""
        with self._lock:
            self._check_usable()
            if direction not in (self.IN, self.OUT):
                raise ValueError("An invalid direction was passed to setup()")
            if pull_up_down not in (self.PUD_OFF, self.PUD_DOWN, self.PUD_UP):
                raise ValueError("Invalid value for pull_up_down - should be either PUD_OFF, "
                                 "PUD_UP or PUD_DOWN")
            if direction == self.OUT and pull_up_down != self.PUD_OFF:
                raise ValueError("pull_up_down parameter is not valid for outputs")
            if direction == self.IN and initial != -1:
                raise ValueError("initial parameter is not valid for inputs")
            for pin in self._channels(channel):
                if self._warnings and pin in self._direction:
                    warnings.warn(f"channel {pin} is already in use, continuing anyway. Use "
                                  "GPIO.setwarnings(False) to disable warnings.",
                                  RuntimeWarning, stacklevel=2)
                self._direction[pin] = direction
                if direction == self.OUT:
                    self._pull.pop(pin, None)
                    # Without `initial` the pin drives what its output latch holds: low here.
                    self._drive(pin, self.HIGH if initial not in (-1, 0) else self.LOW)
                else:
                    self._levels.pop(pin, None)
                    self._pull[pin] = pull_up_down

    def output(self, channel: int | Iterable[int], value: int | Iterable[int]) -> None:
        """RPi.GPIO's output: drive pins, recorded with the time for the decoders."""
        with self._lock:
            self._check_usable()
            pins = self._channels(channel)
            values = list(value) if isinstance(value, (list, tuple)) else [value] * len(pins)
            if len(values) != len(pins):
                raise RuntimeError("Number of channels != number of values")
            for pin in pins:
                if self._direction.get(pin) != self.OUT:
                    raise RuntimeError(f"The GPIO channel has not been set up as an OUTPUT "
                                       f"(channel {pin}: call GPIO.setup({pin}, GPIO.OUT) first)")
            for pin, level in zip(pins, values):
                self._drive(pin, self.HIGH if level else self.LOW)

    def input(self, channel: int) -> int:
        """RPi.GPIO's input: the level a pin reads."""
        with self._lock:
            if self._mode is None:
                raise RuntimeError(_NO_MODE)
            (pin,) = self._channels(channel)
            if pin not in self._direction:
                raise RuntimeError(f"You must setup() the GPIO channel first (channel {pin})")
            if pin in self._levels:
                return self._levels[pin]
            return self.HIGH if self._pull[pin] == self.PUD_UP else self.LOW

    def cleanup(self, channel: int | Iterable[int] | None = None) -> None:
        """Forget the given pins (all, and the mode, without one); unknown pins are ignored.

        Lenient like the real module, which only warns: tm1637's `__del__` cleans up its
        pins whenever the garbage collector gets to it.
        """
        with self._lock:
            if channel is None:
                pins = list(self._direction)
                self._mode = None
            else:
                pins = list(channel) if isinstance(channel, (list, tuple)) else [channel]
            for pin in pins:
                self._direction.pop(pin, None)
                self._pull.pop(pin, None)
                self._levels.pop(pin, None)

    # --- what the simulation adds -------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        """Call `listener(channel, level, t)` on every level change of an output pin."""
        with self._lock:
            self._listeners.append(listener)

    def level(self, channel: int) -> int | None:
        """The level an output pin drives; None when the pin is not an output."""
        return self._levels.get(channel)

    def history(self, channel: int) -> list[tuple[float, int]]:
        """The pin's last level changes, oldest first, as (time.monotonic(), level)."""
        with self._lock:
            return list(self._history.get(channel, ()))

    def _check_usable(self) -> None:
        if self.fail:
            raise RuntimeError("simulated GPIO fault (the stand-in's `fail` is set)")
        if self._mode is None:
            raise RuntimeError(_NO_MODE)

    def _channels(self, channel: int | Iterable[int]) -> list[int]:
        pins = list(channel) if isinstance(channel, (list, tuple)) else [channel]
        valid = BCM_PINS if self._mode == self.BCM else BOARD_PINS
        for pin in pins:
            if not isinstance(pin, int):
                raise ValueError("Channel must be an integer or list/tuple of integers")
            if pin not in valid:
                raise ValueError(f"The channel sent is invalid on a Raspberry Pi: {pin}")
        return pins

    def _drive(self, pin: int, level: int) -> None:
        if self._levels.get(pin) == level:
            return
        self._levels[pin] = level
        t = time.monotonic()
        self._history.setdefault(pin, deque(maxlen=HISTORY)).append((t, level))
        for listener in self._listeners:
            listener(pin, level, t)


_NO_MODE = ("Please set pin numbering mode using GPIO.setmode(GPIO.BOARD) or "
            "GPIO.setmode(GPIO.BCM)")

#: The one stand-in: tm1637 keeps the module it imported, so a fresh state is `reset()`.
GPIO = StandInGPIO()


def install() -> StandInGPIO:
    """Make `import RPi.GPIO` give the stand-in; idempotent. Call it before importing tm1637."""
    if sys.modules.get("RPi.GPIO") is GPIO:
        return GPIO
    library = sys.modules.get("tm1637")
    if library is not None and getattr(library, "GPIO", GPIO) is not GPIO:
        raise RuntimeError("tm1637 was imported before the GPIO stand-in was installed; "
                           "it keeps driving the RPi.GPIO it found")
    package = types.ModuleType("RPi", "plugd's simulated RPi package: only GPIO")
    package.GPIO = GPIO  # type: ignore[attr-defined]
    sys.modules["RPi"] = package
    sys.modules["RPi.GPIO"] = GPIO
    return GPIO
