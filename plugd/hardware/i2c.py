"""A Linux I2C bus with the five methods adafruit_bus_device calls, over smbus2.

This is all the real board needs where the simulation puts ADS1115Emulator:
each method is one I2C_RDWR transfer, and a write-then-read is one transfer
with a repeated start, as the ADS1115 expects. Errors from the kernel pass
through as OSError (EREMOTEIO for a missing acknowledge), as they do from the
emulator's faults.
"""

from __future__ import annotations

import threading

from plugd.errors import HardwareError


class I2CBus:
    """A Linux I2C bus (smbus2) with the interface adafruit_ads1x15 expects of busio.I2C."""
    def __init__(self, bus_number: int) -> None:
        try:
            from smbus2 import SMBus, i2c_msg
        except ImportError:
            raise HardwareError("the I2C bus needs the smbus2 package "
                                "(pip install smbus2)") from None
        path = f"/dev/i2c-{bus_number}"
        try:
            self._bus = SMBus(bus_number)
        except FileNotFoundError:
            raise HardwareError(f"{path} does not exist: enable I2C (sudo raspi-config "
                                "nonint do_i2c 0) and check the bus number") from None
        except OSError as err:
            raise HardwareError(f"cannot open {path}: {err.strerror}") from None
        self._msg = i2c_msg
        self._lock = threading.Lock()

    def try_lock(self) -> bool:
        """The bus is ours alone in this process: always locked."""
        return self._lock.acquire(blocking=False)

    def unlock(self) -> None:
        """Nothing to release."""
        self._lock.release()

    def writeto(self, address: int, buffer: bytes | bytearray, *, start: int = 0,
                end: int | None = None) -> None:
        """Write `buffer[start:end]` to the device at `address`."""
        self._bus.i2c_rdwr(self._msg.write(address, bytes(buffer[start:end])))

    def readfrom_into(self, address: int, buffer: bytearray, *, start: int = 0,
                      end: int | None = None) -> None:
        """Read into `buffer[start:end]` from the device at `address`."""
        end = len(buffer) if end is None else end
        read = self._msg.read(address, end - start)
        self._bus.i2c_rdwr(read)
        buffer[start:end] = bytes(read)

    def writeto_then_readfrom(self, address: int, buffer_out: bytes | bytearray,
                              buffer_in: bytearray, *, out_start: int = 0,
                              out_end: int | None = None, in_start: int = 0,
                              in_end: int | None = None) -> None:
        """Write, then read without releasing the bus between (a register read)."""
        in_end = len(buffer_in) if in_end is None else in_end
        read = self._msg.read(address, in_end - in_start)
        self._bus.i2c_rdwr(self._msg.write(address, bytes(buffer_out[out_start:out_end])), read)
        buffer_in[in_start:in_end] = bytes(read)

    def close(self) -> None:
        """Close the bus's file."""
        self._bus.close()
