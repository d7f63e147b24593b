"""Chip facts, from the datasheets, written once: the ADS1115 ADC and the ACS712 sensors.

The configuration checks against these, the metering maths computes with
them, and the driver and the emulator program the chip with them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

# --- ADS1115 (TI SBAS444) ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Range:
    """One full-scale range of the ADS1115's PGA: ±`volts`, selected by `gain` (as the
    adafruit_ads1x15 driver takes it) and written `label` on the datasheet."""

    volts: float
    gain: float
    label: str


#: The ranges in the order of the config register's PGA field (codes 0..5; 6 and 7 repeat
#: the last), keyed by their full scale in volts.
ADS1115_RANGES: Mapping[float, Range] = MappingProxyType({r.volts: r for r in (
    Range(6.144, 2 / 3, "2/3"), Range(4.096, 1, "1"), Range(2.048, 2, "2"),
    Range(1.024, 4, "4"), Range(0.512, 8, "8"), Range(0.256, 16, "16"))})
#: Full-scale ranges in volts, largest first (PGA codes 0..5).
ADS1115_FULL_SCALES: tuple[float, ...] = tuple(ADS1115_RANGES)
#: Conversions per second, in the order of the config register's DR field (codes 0..7).
ADS1115_DATA_RATES: tuple[int, ...] = (8, 16, 32, 64, 128, 250, 475, 860)
#: How far beyond its supply rails an input may go (absolute maximum rating).
ADS1115_INPUT_HEADROOM = 0.3

# --- ACS712 (Allegro ACS712-DS) ------------------------------------------------------------

#: The ACS712's supply: its output cannot leave 0..5 V.
ACS712_SUPPLY = 5.0


@dataclass(frozen=True, slots=True)
class Sensor:
    """An ACS712 model at 5 V supply."""

    volts_per_amp: float
    max_amps: float  # it measures ± this
    noise_volts: float  # typical rms output noise: the datasheet's peak-to-peak figure / 6


ACS712_MODELS: Mapping[str, Sensor] = MappingProxyType({
    "ACS712-05B": Sensor(volts_per_amp=0.185, max_amps=5.0, noise_volts=0.0035),  # 21 mV p-p
    "ACS712-20A": Sensor(volts_per_amp=0.100, max_amps=20.0, noise_volts=0.0018),  # 11 mV p-p
    "ACS712-30A": Sensor(volts_per_amp=0.066, max_amps=30.0, noise_volts=0.0012),  # 7 mV p-p
})
