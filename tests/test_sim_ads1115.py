"""The ADS1115 emulator, driven through the real adafruit_ads1x15 driver, against the datasheet.

A fake clock makes every test deterministic: `step` is how long each bus
transfer takes, which the driver's OS-bit polling loop needs to ever finish.
"""

from __future__ import annotations

import ctypes
import errno
import itertools
import math
import os
import sys

import pytest
from adafruit_ads1x15.ads1x15 import Comp_Polarity, Mode, Pin
from adafruit_ads1x15.ads1115 import ADS1115
from adafruit_ads1x15.analog_in import AnalogIn

from plugd.errors import HardwareError
from plugd.hardware.adc import Sampler
from plugd.hardware.i2c import I2CBus
from plugd.hardware.sim.ads1115 import ADS1115Emulator
from plugd.hardware.sim.mains import MainsModel
from tests.support import wait_for

ADDRESS = 0x48
GAIN_FULL_SCALE = {2 / 3: 6.144, 1: 4.096, 2: 2.048, 4: 1.024, 8: 0.512, 16: 0.256}
RATE_BITS = {8: 0, 16: 1, 32: 2, 64: 3, 128: 4, 250: 5, 475: 6, 860: 7}


class FakeClock:
    def __init__(self, t: float = 1000.0, step: float = 0.0) -> None:
        self.t = t
        self.step = step
        self.calls: list[float] = []

    def __call__(self) -> float:
        now = self.t
        self.calls.append(now)
        self.t += self.step
        return now


class Steady:
    """Fixed voltages on the inputs."""

    def __init__(self, volts: dict[int, float]) -> None:
        self.levels = volts

    def volts(self, channel: int, t0: float, t1: float) -> float:
        return self.levels.get(channel, 0.0)


class Sine:
    """offset + amplitude sin(2 pi f t) on AIN0; the mean is the integral in its textbook form."""

    def __init__(self, offset: float, amplitude: float, frequency: float) -> None:
        self.offset, self.amplitude, self.omega = offset, amplitude, 2 * math.pi * frequency

    def volts(self, channel: int, t0: float, t1: float) -> float:
        if channel:
            return 0.0
        w = self.omega
        integral = (math.cos(w * t0) - math.cos(w * t1)) / w
        return self.offset + self.amplitude * integral / (t1 - t0)


class Ramp:
    """A slope on AIN0, so each conversion interval gives its own mean."""

    def volts(self, channel: int, t0: float, t1: float) -> float:
        return 0.0 if channel else 0.001 * ((t0 + t1) / 2 - 1000.0)


def code(volts: float, full_scale: float) -> int:
    return min(max(round(volts * 32768 / full_scale), -32768), 32767)


def raw_read(emu: ADS1115Emulator, pointer: int, size: int = 2) -> bytes:
    buf = bytearray(size)
    emu.writeto_then_readfrom(ADDRESS, bytes([pointer]), buf)
    return bytes(buf)


def register(emu: ADS1115Emulator, pointer: int) -> int:
    return int.from_bytes(raw_read(emu, pointer), "big")


def continuous(ads: ADS1115, clock: FakeClock, pin: int = Pin.A0) -> float:
    """Select `pin` and convert continuously; returns when the cycle (re)started.

    adafruit_ads1x15 3.0.5 sets MUX only for single-shot reads, so one of
    those selects the input and the mode switch keeps it.
    """
    step, clock.step = clock.step, 1e-4
    AnalogIn(ads, pin).value
    clock.step = step
    ads.mode = Mode.CONTINUOUS
    started = clock.calls[-1]
    ads.get_last_result()  # leaves the pointer at the conversion register for fast reads
    return started


def test_registers_power_up_at_their_reset_values():
    emu = ADS1115Emulator(Steady({}), clock=FakeClock())
    assert [register(emu, p) for p in range(4)] == [0x0000, 0x8583, 0x8000, 0x7FFF]


def test_a_read_past_two_bytes_repeats_the_register():
    emu = ADS1115Emulator(Steady({}), clock=FakeClock())
    assert raw_read(emu, 1, 5) == bytes([0x85, 0x83, 0x85, 0x83, 0x85])


def test_the_drivers_probe_finds_the_chip_only_at_its_address():
    emu = ADS1115Emulator(Steady({}), address=0x49, clock=FakeClock())
    ADS1115(emu, address=0x49)
    with pytest.raises(ValueError, match="No I2C device at address: 0x48"):
        ADS1115(emu)


def test_a_fast_read_returns_whatever_register_the_pointer_was_left_at():
    clock = FakeClock()
    emu = ADS1115Emulator(Steady({}), clock=clock)
    ads = ADS1115(emu)  # construction ends with a config write: the pointer is at config
    assert ads.get_last_result(fast=True) == register(emu, 1)


@pytest.mark.parametrize("gain, full_scale", GAIN_FULL_SCALE.items())
def test_gain_sets_the_full_scale_and_one_lsb_is_full_scale_over_32768(gain, full_scale):
    lsb = full_scale / 32768
    source = Steady({0: 1000.4 * lsb})
    ads = ADS1115(ADS1115Emulator(source, clock=FakeClock(step=1e-4)), gain=gain)
    chan = AnalogIn(ads, Pin.A0)
    assert chan.value == 1000
    assert chan.voltage == pytest.approx(1000 * lsb)
    source.levels[0] = 1000.6 * lsb
    assert chan.value == 1001


@pytest.mark.parametrize("pga_bits", [5, 6, 7])
def test_the_three_highest_pga_codes_all_mean_256_mv(pga_bits):
    clock = FakeClock()
    emu = ADS1115Emulator(Steady({0: 0.1}), clock=clock)
    config = 0x8000 | 4 << 12 | pga_bits << 9 | 0x0100 | 0x0083
    emu.writeto(ADDRESS, bytes([1, config >> 8, config & 0xFF]))
    clock.t += 1 / 128
    assert register(emu, 0) == code(0.1, 0.256)


@pytest.mark.parametrize("levels, expected",
                         [({0: 3.0, 1: 0.0}, 32767), ({0: 0.0, 1: 3.0}, -32768)])
def test_a_difference_beyond_full_scale_clips_to_the_extreme_codes(levels, expected):
    ads = ADS1115(ADS1115Emulator(Steady(levels), clock=FakeClock(step=1e-4)), gain=2)
    assert AnalogIn(ads, Pin.A0, Pin.A1).value == expected


@pytest.mark.parametrize("level, clamped", [(5.0, 3.6), (-1.0, -0.3)])
def test_inputs_are_clamped_at_their_absolute_maximum(level, clamped):
    ads = ADS1115(ADS1115Emulator(Steady({0: level}), vdd=3.3, clock=FakeClock(step=1e-4)),
                  gain=2 / 3)
    assert AnalogIn(ads, Pin.A0).value == code(clamped, 6.144)


LEVELS = {0: 1.0, 1: 0.25, 2: 0.5, 3: 2.0}


@pytest.mark.parametrize("pins, volts", [
    ((Pin.A0,), 1.0), ((Pin.A1,), 0.25), ((Pin.A2,), 0.5), ((Pin.A3,), 2.0),
    ((Pin.A0, Pin.A1), 0.75), ((Pin.A0, Pin.A3), -1.0), ((Pin.A1, Pin.A3), -1.75),
    ((Pin.A2, Pin.A3), -1.5)])
def test_mux_selects_the_four_single_ended_inputs_and_the_four_pairs(pins, volts):
    ads = ADS1115(ADS1115Emulator(Steady(LEVELS), clock=FakeClock(step=1e-4)), gain=1)
    assert AnalogIn(ads, *pins).value == code(volts, 4.096)


@pytest.mark.parametrize("error", [-0.1, 0.0, 0.1])
def test_single_shot_os_bit_reads_0_until_one_period_has_passed(error):
    clock = FakeClock()
    emu = ADS1115Emulator(Steady({0: 1.0}), clock=clock, oscillator_error=error)
    period = 1 / (128 * (1 + error))
    config = 0x8000 | 4 << 12 | 1 << 9 | 0x0100 | 4 << 5 | 0x0003
    emu.writeto(ADDRESS, bytes([1, config >> 8, config & 0xFF]))
    clock.t += period * 0.999
    assert register(emu, 1) == config & 0x7FFF
    assert register(emu, 0) == 0
    clock.t += period * 0.002
    assert register(emu, 1) == config
    assert register(emu, 0) == code(1.0, 4.096)
    emu.writeto(ADDRESS, bytes([1, config >> 8, config & 0xFF]))
    clock.t += 10 * period
    assert emu.conversions_completed() == 2  # one each, then it powers down


@pytest.mark.parametrize("error", [-0.1, 0.1])
def test_the_drivers_single_shot_read_completes_at_the_first_poll_after_one_period(error):
    clock = FakeClock(step=5e-5)
    ads = ADS1115(ADS1115Emulator(Steady({0: 1.0}), clock=clock, oscillator_error=error),
                  data_rate=860)
    chan = AnalogIn(ads, Pin.A0)
    before = len(clock.calls)
    assert chan.value == code(1.0, 4.096)
    write, *polls, _ = clock.calls[before:]
    period = 1 / (860 * (1 + error))
    assert polls[-2] - write < period <= polls[-1] - write


def test_continuous_mode_holds_the_last_completed_conversion_and_advances_one_per_period():
    clock = FakeClock()
    emu = ADS1115Emulator(Ramp(), clock=clock, oscillator_error=0.05)
    ads = ADS1115(emu, gain=16, data_rate=860)
    started = continuous(ads, clock)
    period = 1 / (860 * 1.05)
    held = ads.get_last_result(fast=True)  # the single-shot read, from before the restart
    done = emu.conversions_completed()
    for k in range(1, 6):
        clock.t = started + (k - 0.5) * period
        assert ads.get_last_result(fast=True) == held
        clock.t = started + (k + 0.01) * period
        assert emu.conversions_completed() == done + k
        held = ads.get_last_result(fast=True)
        end = started + k * period
        assert held == code(Ramp().volts(0, end - period, end), 0.256)


def test_a_config_write_restarts_the_conversion_cycle():
    clock = FakeClock()
    emu = ADS1115Emulator(Ramp(), clock=clock)
    ads = ADS1115(emu, gain=16, data_rate=128)
    started = continuous(ads, clock)
    clock.t = started + 1.5 / 128
    done = emu.conversions_completed()
    ads.data_rate = 128  # rewrites the config register
    restarted = clock.calls[-1]
    clock.t = restarted + 0.9 / 128
    assert emu.conversions_completed() == done
    clock.t = restarted + 1 / 128
    assert emu.conversions_completed() == done + 1
    assert ads.get_last_result() == code(Ramp().volts(0, restarted, clock.t), 0.256)


def test_switching_to_single_shot_stops_the_conversions():
    clock = FakeClock()
    emu = ADS1115Emulator(Steady({0: 1.0}), clock=clock)
    ads = ADS1115(emu, data_rate=860)
    started = continuous(ads, clock)
    clock.t = started + 10.5 / 860
    ads.mode = Mode.SINGLE
    done = emu.conversions_completed()
    assert emu.conversions_completed(clock.t + 1.0) == done
    assert register(emu, 1) & 0x8000  # powered down, not converting


def test_the_counters_tell_whether_a_reader_got_every_conversion_once():
    clock = FakeClock()
    emu = ADS1115Emulator(Ramp(), clock=clock)
    ads = ADS1115(emu, data_rate=860)
    started = continuous(ads, clock)
    read, stale, done = emu.conversions_read, emu.stale_reads, emu.conversions_completed()
    for k in range(1, 101):
        clock.t = started + (k + 0.5) / 860
        ads.get_last_result(fast=True)
    assert emu.conversions_completed() - done == 100
    assert (emu.conversions_read - read, emu.stale_reads - stale) == (100, 0)
    ads.get_last_result(fast=True)
    clock.t += 3 / 860
    ads.get_last_result(fast=True)
    assert (emu.conversions_read - read, emu.stale_reads - stale) == (101, 1)


@pytest.mark.parametrize("error", [-0.1, 0.0, 0.1])
@pytest.mark.parametrize("rate", RATE_BITS)
def test_the_data_rate_is_the_nominal_one_times_the_oscillator_error(rate, error):
    clock = FakeClock()
    emu = ADS1115Emulator(Steady({}), clock=clock, oscillator_error=error)
    ads = ADS1115(emu, data_rate=rate, mode=Mode.CONTINUOUS)
    started, done = clock.calls[-1], emu.conversions_completed()
    assert emu.conversions_completed(started + 10.0) - done == math.floor(10.0 * rate * (1 + error))
    assert register(emu, 1) >> 5 & 7 == RATE_BITS[rate]
    assert ads.data_rate == rate


@pytest.mark.parametrize("rate", [8, 128, 860])
def test_a_conversion_is_the_mean_of_a_sinusoid_over_its_interval(rate):
    clock = FakeClock()
    source = Sine(offset=1.5, amplitude=1.0, frequency=50.0)
    ads = ADS1115(ADS1115Emulator(source, clock=clock, oscillator_error=0.03), data_rate=rate)
    started = continuous(ads, clock)
    period = 1 / (rate * 1.03)
    for k in (1, 2, 7):
        clock.t = started + (k + 0.5) * period
        end = started + k * period
        assert ads.get_last_result(fast=True) == code(source.volts(0, end - period, end), 4.096)


def test_the_mains_model_through_the_chip_matches_the_closed_form():
    clock = FakeClock()
    model = MainsModel(amps_rms=12.0, noise_rms_volts=0.0, divider=2 / 3)
    ads = ADS1115(ADS1115Emulator(model, clock=clock), data_rate=860)
    started = continuous(ads, clock)
    peak = 12.0 * math.sqrt(2) * 0.066 * 2 / 3
    expected = Sine(offset=2.5 * 2 / 3, amplitude=peak, frequency=50.0)
    for k in range(1, 40):
        clock.t = started + (k + 0.5) / 860
        end = started + k / 860
        got = ads.get_last_result(fast=True)
        assert abs(got - code(expected.volts(0, end - 1 / 860, end), 4.096)) <= 1


def test_in_continuous_mode_the_driver_keeps_the_input_it_finds():
    """adafruit_ads1x15 3.0.5 ignores the pin outside single-shot mode: the chip keeps MUX."""
    clock = FakeClock()
    emu = ADS1115Emulator(Steady(LEVELS), clock=clock)
    ads = ADS1115(emu, data_rate=860, mode=Mode.CONTINUOUS)
    AnalogIn(ads, Pin.A2).value
    clock.t += 3 / 860
    assert register(emu, 1) >> 12 & 7 == 0  # still AIN0 - AIN1, the reset value
    assert ads.get_last_result() == code(0.75, 4.096)


@pytest.mark.parametrize("fault, number", [("nack", errno.EREMOTEIO), ("gone", errno.ENXIO)])
def test_a_failing_chip_raises_oserror_and_answers_again_once_cleared(fault, number):
    clock = FakeClock()
    emu = ADS1115Emulator(Steady({0: 1.0}), clock=clock)
    ads = ADS1115(emu, data_rate=860)
    continuous(ads, clock)
    emu.fault = fault
    with pytest.raises(OSError) as raised:
        ads.get_last_result(fast=True)
    assert raised.value.errno == number
    with pytest.raises(ValueError, match="No I2C device"):
        ADS1115(emu)
    clock.t += 0.01
    emu.fault = None
    ads.get_last_result()
    assert ads.get_last_result(fast=True) == (code(1.0, 4.096) if fault == "nack" else 0)


def test_a_chip_that_was_gone_comes_back_from_its_power_on_reset():
    clock = FakeClock()
    emu = ADS1115Emulator(Steady({0: 1.0}), clock=clock)
    ads = ADS1115(emu, data_rate=860)
    continuous(ads, clock)
    emu.fault = "gone"
    clock.t += 0.01
    emu.fault = None
    assert [register(emu, p) for p in range(4)] == [0x0000, 0x8583, 0x8000, 0x7FFF]
    clock.t += 1.0
    assert emu.conversions_completed(clock.t) == emu.conversions_completed(clock.t - 1.0)
    clock.step = 1e-4
    assert AnalogIn(ADS1115(emu, data_rate=860), Pin.A0).value == code(1.0, 4.096)


def test_garbage_reads_random_bytes_and_writes_still_land():
    clock = FakeClock()
    emu = ADS1115Emulator(Steady({0: 1.0}), clock=clock)
    ads = ADS1115(emu, data_rate=860)
    continuous(ads, clock)
    emu.fault = "garbage"
    ads.data_rate = 250  # reads the config (garbage) and writes it back from that
    assert len({ads.get_last_result(fast=True) for _ in range(50)}) > 40
    emu.fault = None
    assert register(emu, 1) >> 5 & 7 == RATE_BITS[250]
    with pytest.raises(ValueError):
        emu.fault = "smoke"


def falling_edges(pin) -> int:
    states = [s.state for s in pin.states]
    return sum(1 for a, b in itertools.pairwise(states) if a and not b)


def rising_edges(pin) -> int:
    states = [s.state for s in pin.states]
    return sum(1 for a, b in itertools.pairwise(states) if b and not a)


@pytest.mark.parametrize("polarity", [Comp_Polarity.ACTIVE_LOW, Comp_Polarity.ACTIVE_HIGH])
def test_alert_rdy_pulses_at_each_conversion_end_in_continuous_mode(factory, polarity):
    pin = factory.pin(17)
    emu = ADS1115Emulator(Steady({0: 1.0}), alert_pin=pin)
    ADS1115(emu, data_rate=860, mode=Mode.CONTINUOUS, comparator_queue_length=1,
            comparator_low_threshold=0, comparator_high_threshold=-32768,
            comparator_polarity=polarity)
    before = emu.conversions_completed()
    edges = falling_edges if polarity == Comp_Polarity.ACTIVE_LOW else rising_edges
    emu.start()
    try:
        wait_for(lambda: edges(pin) >= 50, "50 conversion-ready pulses")
    finally:
        emu.stop()
    # A busy machine may oversleep a conversion end, never invent one.
    assert edges(pin) <= emu.conversions_completed() - before
    assert pin.state == (polarity == Comp_Polarity.ACTIVE_LOW)  # idle at the inactive level


def test_batched_pulses_give_the_sampler_every_conversion_once_timed_at_its_end(factory):
    """The sampler as the daemon runs it: the pulses come in batches, its view does not change.

    Each sample must be the next conversion, timestamped one period after the
    one before (the end of its own conversion, not the time its batch was sent)
    and holding the mean input over exactly that conversion.
    """
    source = Sine(offset=1.0, amplitude=0.5, frequency=50.0)
    pin = factory.pin(25)
    emu = ADS1115Emulator(source, alert_pin=pin, oscillator_error=0.03)
    period = 1 / (860 * 1.03)
    times: list[float] = []
    volts: list[float] = []

    def consume(block_times: list[float], block_volts: list[float]) -> None:
        times.extend(block_times)
        volts.extend(block_volts)

    sampler = Sampler(lambda: emu, address=ADDRESS, channel="A0", full_scale=4.096, data_rate=860,
                      alert_pin=25, pin_factory=factory, consume=consume,
                      on_fault=lambda text: None, clock=emu.clock)
    emu.start()
    sampler.start()
    try:
        wait_for(lambda: len(times) >= 300, "300 samples (15 batches and more) from the sampler")
    finally:
        sampler.stop()
        emu.stop()
    assert not sampler.single_shot
    steps = [b - a for a, b in itertools.pairwise(times)]
    assert min(steps) == pytest.approx(period, rel=1e-6)
    assert max(steps) == pytest.approx(period, rel=1e-6)
    assert emu.conversions_read >= len(times)
    for at, value in zip(times, volts, strict=True):
        assert round(value * 32768 / 4.096) == code(source.volts(0, at - period, at), 4.096)


def test_alert_rdy_stays_released_unless_configured_as_conversion_ready(factory):
    pin = factory.pin(17)
    emu = ADS1115Emulator(Steady({0: 1.0}), alert_pin=pin)
    ADS1115(emu, data_rate=860, mode=Mode.CONTINUOUS, comparator_queue_length=1)
    before = emu.conversions_completed()
    emu.start()
    try:
        wait_for(lambda: emu.conversions_completed() >= before + 20, "20 conversions")
    finally:
        emu.stop()
    assert pin.state is True
    assert falling_edges(pin) == 0


def test_alert_rdy_asserts_at_the_end_of_a_single_shot_conversion(factory):
    pin = factory.pin(17)
    emu = ADS1115Emulator(Steady({0: 1.0}), alert_pin=pin)
    ads = ADS1115(emu, data_rate=8, comparator_queue_length=1, comparator_low_threshold=0,
                  comparator_high_threshold=-32768)
    emu.start()
    try:
        chan = AnalogIn(ads, Pin.A0)
        chan.value
        wait_for(lambda: pin.state is False, "ALERT/RDY asserted")
    finally:
        emu.stop()
    assert falling_edges(pin) == 1


def test_the_bus_adapter_names_the_missing_device():
    number = next(n for n in range(20, 100) if not os.path.exists(f"/dev/i2c-{n}"))
    with pytest.raises(HardwareError, match=f"/dev/i2c-{number}"):
        I2CBus(number)


def test_the_bus_adapter_says_when_smbus2_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "smbus2", None)
    with pytest.raises(HardwareError, match="smbus2"):
        I2CBus(1)


class FakeSMBus:
    """smbus2's SMBus whose i2c_rdwr goes to the emulator, as the kernel's goes to the chip."""

    def __init__(self, emu: ADS1115Emulator) -> None:
        self.emu = emu
        self.transfers: list[int] = []

    def i2c_rdwr(self, *messages) -> None:
        from smbus2.smbus2 import I2C_M_RD

        self.transfers.append(len(messages))
        writes = [bytes(m) for m in messages if not m.flags & I2C_M_RD]
        reads = [m for m in messages if m.flags & I2C_M_RD]
        address = messages[0].addr
        if reads:
            into = bytearray(reads[0].len)
            if writes:
                self.emu.writeto_then_readfrom(address, writes[0], into)
            else:
                self.emu.readfrom_into(address, into)
            ctypes.memmove(reads[0].buf, bytes(into), len(into))
        else:
            self.emu.writeto(address, writes[0])

    def close(self) -> None:
        pass


def test_the_driver_runs_over_the_bus_adapter(monkeypatch):
    import smbus2

    clock = FakeClock(step=1e-4)
    fake = FakeSMBus(ADS1115Emulator(Steady(LEVELS), clock=clock))
    monkeypatch.setattr(smbus2, "SMBus", lambda number: fake)
    bus = I2CBus(1)
    ads = ADS1115(bus, gain=1)
    assert AnalogIn(ads, Pin.A2).value == code(0.5, 4.096)
    assert AnalogIn(ads, Pin.A0, Pin.A3).value == code(-1.0, 4.096)
    assert 2 in fake.transfers  # register reads are one transfer with a repeated start
    bus.close()
