"""The relay: one gpiozero OutputDevice on a BCM pin."""

from __future__ import annotations

from gpiozero import Factory, GPIOZeroError, OutputDevice

from plugd.errors import HardwareError


class Relay:
    """The relay on a GPIO pin; a pin that refuses raises HardwareError."""
    def __init__(self, pin: int, *, active_high: bool, initial: bool,
                 pin_factory: Factory | None) -> None:
        try:
            self._device = OutputDevice(pin, active_high=active_high, initial_value=initial,
                                        pin_factory=pin_factory)
        except (GPIOZeroError, OSError, RuntimeError) as err:
            raise HardwareError(f"cannot open the relay on GPIO{pin}: {err}") from None
        self.pin = pin

    @property
    def is_on(self) -> bool:
        """Whether the relay is closed (the load has power)."""
        return bool(self._device.value)

    def set(self, on: bool) -> None:
        """Close (`on`) or open the relay; HardwareError when the pin refuses."""
        try:
            if on:
                self._device.on()
            else:
                self._device.off()
        except (GPIOZeroError, OSError, RuntimeError) as err:
            raise HardwareError(f"cannot switch the relay on GPIO{self.pin}: {err}") from None

    def close(self) -> None:
        """Release the pin (the relay opens)."""
        self._device.close()
