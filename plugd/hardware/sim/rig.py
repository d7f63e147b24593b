"""What `--simulate` puts where the chips would be, wired as the configuration says.

The load is connected while the relay's mock pin drives the relay on, so the
meter sees what the real plug would: current only while the relay is closed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from gpiozero.pins.mock import MockFactory

from plugd.chips import ACS712_MODELS
from plugd.hardware.sim.ads1115 import ADS1115Emulator
from plugd.hardware.sim.gpio import StandInGPIO, install
from plugd.hardware.sim.mains import MainsModel
from plugd.hardware.sim.tm1637 import TM1637Chip
from plugd.service.config import Config

ALERT_HISTORY = 64


@dataclass
class Simulation:
    """The simulated chips of a `--simulate` plug: mains, ADC, GPIO and display decoder."""
    mains: MainsModel
    adc: ADS1115Emulator
    gpio: StandInGPIO
    #: The display chip, decoded from the pins the display library drives.
    display: TM1637Chip | None

    def close(self) -> None:
        """Stop the emulated chips."""
        self.adc.stop()


def mains_for(config: Config, relay_on: Callable[[], bool]) -> MainsModel:
    """The simulated mains and sensor, as the configuration describes the real ones."""
    meter = config.meter
    sensor = ACS712_MODELS[meter.sensor]
    return MainsModel(
        volts=meter.volts, frequency=meter.frequency, power_factor=meter.power_factor,
        sensitivity=meter.mv_per_amp / 1000 if meter.mv_per_amp > 0 else sensor.volts_per_amp,
        zero_volts=meter.zero_volts, noise_rms_volts=sensor.noise_volts, divider=meter.divider,
        relay_on=relay_on, channel=int(config.adc.channel[1]), seed=config.simulate.seed)


def build(config: Config, pin_factory: MockFactory) -> Simulation:
    """Chips for a simulated plug; start the ADC's conversion-ready signal."""
    gpio = install()
    # A fresh board, as the display library's import found it (it set BCM numbering then).
    gpio.reset()
    gpio.setmode(gpio.BCM)
    gpio.setwarnings(False)
    adc = config.adc
    relay = pin_factory.pin(config.relay.pin)
    active_high = config.relay.active_high
    mains = mains_for(config, relay_on=lambda: relay.state == active_high)
    mains.load_watts = config.simulate.load_watts
    alert = None
    if adc.alert_pin:
        alert = pin_factory.pin(adc.alert_pin)
        # A mock pin keeps every state it took; at two per conversion that would grow without
        # end, so keep only the latest.
        alert.states = deque(alert.states, maxlen=ALERT_HISTORY)
    emulator = ADS1115Emulator(mains, address=adc.address,
                               oscillator_error=config.simulate.oscillator_error, vdd=adc.vdd,
                               alert_pin=alert)
    emulator.start()
    display = config.display
    chip = TM1637Chip(gpio, display.clk, display.dio) if display.enabled else None
    return Simulation(mains, emulator, gpio, chip)
