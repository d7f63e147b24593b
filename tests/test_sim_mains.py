"""The mains + ACS712 + divider model: what the emulated ADC integrates."""

from __future__ import annotations

import math
import random
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plugd.hardware.sim.mains import MainsModel

SENSITIVITY = 0.066
ZERO = 2.5
DIVIDER = 2 / 3


def amps_at(model: MainsModel, t: float) -> float:
    """The instantaneous current, read back through the sensor's and divider's transfer."""
    return (model.volts(0, t, t) / DIVIDER - ZERO) / SENSITIVITY


def simpson(f, t0: float, t1: float, n: int = 4000) -> float:
    h = (t1 - t0) / n
    total = f(t0) + f(t1) + sum((4 if k % 2 else 2) * f(t0 + k * h) for k in range(1, n))
    return total * h / 3


def test_rms_of_the_current_with_harmonics_is_amps_rms():
    model = MainsModel(amps_rms=8.0, harmonics={3: -0.4, 5: 0.2, 7: 0.1}, divider=DIVIDER, seed=1)
    times = random.Random(2)
    samples = [amps_at(model, times.uniform(0, 10)) for _ in range(20000)]
    rms = math.sqrt(statistics.fmean(i * i for i in samples))
    # The sensor noise (1.2 mV, 18 mA here) adds in quadrature: far below the tolerance.
    assert rms == pytest.approx(8.0, rel=0.015)
    assert abs(statistics.fmean(samples)) < 0.1
    assert max(samples) > 8.0 * math.sqrt(2) * 0.9  # the harmonics shape it, they do not vanish


def test_no_current_while_the_relay_is_off():
    relay = {"on": False}
    model = MainsModel(amps_rms=10.0, noise_rms_volts=0.0, divider=DIVIDER,
                       relay_on=lambda: relay["on"])
    for t0 in (0.0, 0.0042, 1.3):
        assert model.volts(0, t0, t0 + 1 / 860) == pytest.approx(ZERO * DIVIDER, abs=1e-12)
    relay["on"] = True
    assert abs(amps_at(model, 0.005)) == pytest.approx(10.0 * math.sqrt(2), rel=1e-9)


def test_noise_is_one_gaussian_draw_per_conversion_with_the_datasheet_level():
    model = MainsModel(divider=DIVIDER, seed=7)
    period = 1 / 860
    out = [model.volts(0, k * period, (k + 1) * period) for k in range(5000)]
    assert statistics.fmean(out) == pytest.approx(ZERO * DIVIDER, abs=4 * 0.0012 * DIVIDER / 70)
    assert statistics.pstdev(out) == pytest.approx(0.0012 * DIVIDER, rel=0.05)
    again = MainsModel(divider=DIVIDER, seed=7)
    assert [again.volts(0, k * period, (k + 1) * period) for k in range(5000)] == out


def test_the_sensor_output_clips_at_ground_and_at_its_supply():
    model = MainsModel(amps_rms=60.0, noise_rms_volts=0.0, divider=DIVIDER)  # ±5.6 V swing
    samples = [model.volts(0, t, t) for t in (k / 20000 for k in range(400))]
    assert min(samples) == 0.0
    assert max(samples) == pytest.approx(5.0 * DIVIDER)
    # A 128 SPS conversion from just before the positive peak to past the zero crossing.
    t0, t1 = 0.003, 0.003 + 1 / 128
    clipped = simpson(lambda t: model.volts(0, t, t), t0, t1) / (t1 - t0)
    assert model.volts(0, t0, t1) == pytest.approx(clipped, abs=2e-3)
    unclipped = MainsModel(amps_rms=60.0, noise_rms_volts=0.0, divider=DIVIDER, supply_volts=100)
    assert abs(clipped - unclipped.volts(0, t0, t1)) > 0.1  # clipping first changes the mean
    noisy = MainsModel(zero_volts=4.99, noise_rms_volts=0.01, seed=3)
    at_the_rail = [noisy.volts(0, k / 860, (k + 1) / 860) for k in range(200)]
    assert max(at_the_rail) == 5.0


def test_inputs_other_than_the_sensors_read_zero():
    model = MainsModel(amps_rms=3.0, channel=2, zero_volts=2.5)
    assert [model.volts(ch, 1.0, 1.001) for ch in (0, 1, 3)] == [0.0, 0.0, 0.0]
    assert model.volts(2, 1.0, 1.001) > 2.0


def test_load_watts_sets_the_current_through_volts_and_power_factor():
    model = MainsModel(volts=230.0, power_factor=0.5)
    model.load_watts = 1150.0
    assert model.amps_rms == pytest.approx(10.0)
    assert model.load_watts == pytest.approx(1150.0)
    model.amps_rms = 2.0
    assert model.load_watts == pytest.approx(230.0)


def test_power_factor_delays_the_current_by_its_phase():
    kwargs = dict(amps_rms=5.0, noise_rms_volts=0.0, divider=DIVIDER, harmonics={3: 0.3})
    resistive, lagging = MainsModel(**kwargs), MainsModel(power_factor=0.8, **kwargs)
    delay = math.acos(0.8) / (2 * math.pi * 50)
    for t in (0.0, 0.0031, 0.0177):
        assert amps_at(lagging, t + delay) == pytest.approx(amps_at(resistive, t), abs=1e-9)


def test_the_zero_drifts_linearly_from_the_first_conversion():
    model = MainsModel(noise_rms_volts=0.0, drift_volts_per_hour=0.036)
    assert model.volts(0, 5000.0, 5000.0) == pytest.approx(2.5)
    assert model.volts(0, 5000.0 + 3600, 5000.0 + 3600) == pytest.approx(2.536)
    assert model.volts(0, 5000.0, 5000.0 + 7200) == pytest.approx(2.536)  # the mean of the ramp


def test_bad_parameters_are_refused():
    for kwargs in ({"power_factor": 0.0}, {"channel": 4}, {"harmonics": {1: 0.5}},
                   {"divider": 0.0}, {"amps_rms": -1.0}):
        with pytest.raises(ValueError):
            MainsModel(**kwargs)


@settings(max_examples=60, deadline=None)
@given(amps=st.floats(0.0, 10.0), pf=st.floats(0.3, 1.0),
       h3=st.floats(-0.5, 0.5), h5=st.floats(-0.5, 0.5),
       frequency=st.sampled_from([50.0, 60.0]), drift=st.floats(-0.1, 0.1),
       t0=st.floats(0.0, 1e4), duration=st.floats(1e-5, 0.15))
def test_the_closed_form_mean_equals_a_fine_numerical_integral(amps, pf, h3, h5, frequency,
                                                               drift, t0, duration):
    model = MainsModel(amps_rms=amps, power_factor=pf, harmonics={3: h3, 5: h5},
                       frequency=frequency, drift_volts_per_hour=drift, noise_rms_volts=0.0,
                       divider=DIVIDER)
    t1 = t0 + duration
    numeric = simpson(lambda t: model.volts(0, t, t), t0, t1) / duration
    assert model.volts(0, t0, t1) == pytest.approx(numeric, abs=1e-6)
