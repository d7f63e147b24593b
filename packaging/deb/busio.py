"""plugd's stand-in for Blinka's `busio`, carried in /usr/lib/plugd by the Debian package.

adafruit_bus_device and adafruit_ads1x15 import `busio.I2C` for their type annotations only,
but CPython evaluates those annotations as the modules load: with no `busio` at all they stop
with a NameError. Blinka's busio would identify the board as it is imported, and plugd uses
none of it (it hands those libraries its own bus, plugd.hardware.i2c over smbus2), so the
package carries this one name instead of Blinka.
"""


class I2C:
    """A name for annotations only."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise NotImplementedError("plugd's busio only names I2C for annotations; "
                                  "plugd drives the bus through plugd.hardware.i2c")
