"""The metering maths against closed forms: RMS, offsets, noise, energy, calibration, front end."""

import datetime
import itertools
import json
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plugd.chips import ACS712_MODELS as SENSORS
from plugd.chips import ADS1115_FULL_SCALES as FULL_SCALES
from plugd.core.metering import (
    GAP_PERIODS,
    IDLE_WINDOWS,
    MAX_IDLE_AMPS,
    Calibration,
    CurrentMeter,
    EnergyCounter,
    Window,
    averaging_gain,
    calibrate_current,
    calibrate_power,
    calibrate_voltage,
    check_front_end,
    power_watts,
)
from plugd.errors import ValidationError

DAY = datetime.date(2026, 11, 26)
#: The README's wiring: an ACS712-30A through 10 kOhm over 20 kOhm.
DIVIDER = 2 / 3
VPA = SENSORS["ACS712-30A"].volts_per_amp * DIVIDER
ZERO = 2.5 * DIVIDER
LSB = 4.096 / 32768  # ADS1115 at gain 1


def adc_samples(amplitude, frequency, rate, seconds, *, phase=0.0, offset=ZERO, drift=0.0,
                t0=100.0, noise=0.0, rng=None, quantise=False):
    """(times, volts) of an ADS1115 whose conversions each average the input over 1/rate.

    The input is offset + drift * (t - t0) + amplitude * sin(2 pi f t + phase);
    its mean over [t - T, t] is the value at the middle of the conversion
    times sin(x) / x, x = pi f T (closed form, no cancellation for short T).
    """
    period = 1 / rate
    omega = 2 * math.pi * frequency
    x = omega * period / 2
    kept = amplitude * math.sin(x) / x
    times, volts = [], []
    for k in range(int(seconds * rate)):
        t = t0 + k * period
        mid = t - period / 2
        v = offset + drift * (mid - t0) + kept * math.sin(omega * mid + phase)
        if noise:
            v += rng.gauss(0.0, noise)
        if quantise:
            v = round(v / LSB) * LSB
        times.append(t)
        volts.append(v)
    return times, volts


def meter(**overrides):
    values = {"volts_per_amp": VPA, "frequency": 50.0, "clip_low": 0.0, "clip_high": 3.3}
    values.update(overrides)
    return CurrentMeter(**values)


# --- the averaging model ------------------------------------------------------------------


def test_averaging_gain_is_the_sinc_of_one_conversion_period():
    assert averaging_gain(50, 860) == pytest.approx(0.994449, abs=1e-6)  # 0.55 % low
    assert averaging_gain(60, 860) == pytest.approx(0.992013, abs=1e-6)
    assert averaging_gain(0, 860) == 1.0
    assert averaging_gain(50, 860, 0) == 1.0
    assert averaging_gain(50, 860, 2) == pytest.approx(averaging_gain(50, 860) ** 2)
    assert averaging_gain(860, 860) == pytest.approx(0.0, abs=1e-15)  # the first notch


@given(st.floats(40, 70), st.floats(500, 1000), st.floats(0, 2 * math.pi))
def test_the_sample_model_is_the_mean_of_the_sine_over_each_conversion(f, rate, phase):
    times, volts = adc_samples(1.0, f, rate, 0.02, phase=phase, offset=0.0)
    for t, v in zip(times[:5], volts[:5]):
        steps = 2000  # midpoint rule over [t - T, t]
        mean = sum(math.sin(2 * math.pi * f * (t - (i + 0.5) / (steps * rate)) + phase)
                   for i in range(steps)) / steps
        assert v == pytest.approx(mean, abs=1e-6)


# --- RMS against closed forms -------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(amplitude=st.floats(0.02, 1.5), f=st.floats(45, 65), rate=st.floats(774, 946),
       phase=st.floats(0, 2 * math.pi), offset=st.floats(0.5, 2.5), drift=st.floats(-1e-3, 1e-3),
       t0=st.floats(0, 1e6), quantise=st.booleans(), vpa=st.floats(0.02, 0.2))
def test_rms_of_an_averaged_sine_comes_back_within_0_1_percent(amplitude, f, rate, phase, offset,
                                                              drift, t0, quantise, vpa):
    m = meter(volts_per_amp=vpa, frequency=f, clip_low=-10.0, clip_high=10.0)
    times, volts = adc_samples(amplitude, f, rate, 3.5, phase=phase, offset=offset, drift=drift,
                               t0=t0, quantise=quantise)
    windows = m.add_many(times, volts)
    assert len(windows) == 3
    true_amps = amplitude / math.sqrt(2) / vpa
    for w in windows:
        assert w.amps == pytest.approx(true_amps, rel=1e-3)
        assert w.rate == pytest.approx(rate, rel=1e-9)
        assert not w.clipped
        middle = (w.start + w.end) / 2 - 0.5 / rate
        assert w.offset == pytest.approx(offset + drift * (middle - t0),
                                         abs=2 * amplitude / w.samples + LSB)


def test_the_compensation_uses_the_measured_rate_not_the_nominal_one():
    for rate in (774.0, 946.0):  # the oscillator 10 % off either way
        times, volts = adc_samples(0.5, 65.0, rate, 2.2)
        m = meter(frequency=65.0, clip_low=-10, clip_high=10, rate=860.0)
        w = m.add_many(times, volts)[1]
        true_amps = 0.5 / math.sqrt(2) / VPA
        assert w.amps == pytest.approx(true_amps, rel=5e-4)
        # With the nominal rate the error would be 0.16 % to 0.22 %, several times that.
        nominal = w.amps * averaging_gain(65, rate) / averaging_gain(65, 860)
        assert abs(nominal / true_amps - 1) > 1.5e-3


def test_without_compensation_the_reading_is_low_by_exactly_the_averaging_gain():
    times, volts = adc_samples(0.5, 50.0, 860.0, 1.1)
    [compensated] = meter().add_many(times, volts)
    [plain] = meter(filter_order=0).add_many(times, volts)
    assert plain.raw_rms_volts == compensated.raw_rms_volts
    assert plain.amps / compensated.amps == pytest.approx(averaging_gain(50, compensated.rate))
    assert meter(filter_order=2).add_many(times, volts)[0].amps == pytest.approx(
        compensated.amps / averaging_gain(50, compensated.rate))


def test_jittered_timestamps_still_read_within_0_2_percent():
    rng = random.Random(7)
    times, volts = adc_samples(0.3, 50.0, 860.0, 5.2)
    jittered = [t + rng.uniform(-2e-4, 2e-4) for t in times]
    windows = meter().add_many(jittered, volts)
    assert len(windows) == 5
    for w in windows:
        assert w.amps == pytest.approx(0.3 / math.sqrt(2) / VPA, rel=2e-3)


# --- windows --------------------------------------------------------------------------------


@pytest.mark.parametrize("frequency, window, cycles", [
    (50, 1.0, 50), (60, 1.0, 60), (50, 0.2, 10), (60, 0.1, 6), (45, 0.5, 23), (50, 0.001, 1),
    (50, 2.5, 125)])
def test_the_window_is_the_closest_whole_number_of_cycles(frequency, window, cycles):
    assert meter(frequency=frequency, window=window).cycles == cycles


@pytest.mark.parametrize("frequency, rate, window", [
    (50, 860, 1.0), (60, 860, 1.0), (50, 774, 0.5), (60, 946, 0.2), (45.5, 800, 1.0)])
def test_windows_span_whole_cycles_within_half_a_sample(frequency, rate, window):
    m = meter(frequency=frequency, window=window, clip_low=-10, clip_high=10)
    times, volts = adc_samples(0.2, frequency, rate, 6 * window + 0.1)
    windows = m.add_many(times, volts)
    assert len(windows) == 6
    whole = m.cycles / frequency
    first, *rest = windows
    # The first window only knows the nominal rate; later ones the measured one.
    assert abs(first.samples / rate - whole) <= 0.5 / rate + abs(1 / rate - 1 / 860)
    for w in rest:
        assert abs(w.samples / rate - whole) <= 0.5 / rate * (1 + 1e-6)
    for before, after in itertools.pairwise(windows):
        assert after.start == pytest.approx(before.end + 1 / rate)  # contiguous, no overlap
    assert sum(w.samples for w in windows) <= len(times)


def test_windows_are_returned_when_they_complete_and_end_on_their_last_sample():
    m = meter()
    times, volts = adc_samples(0.2, 50.0, 860.0, 2.05)
    results = [m.add(t, v) for t, v in zip(times, volts)]
    done = [(i, w) for i, w in enumerate(results) if w is not None]
    assert [i for i, _ in done] == [859, 1719]
    assert all(w.end == times[i] for i, w in done)
    assert done[0][1].start == times[0] and done[1][1].start == times[860]


def test_add_many_is_add_in_a_loop():
    times, volts = adc_samples(0.4, 50.0, 830.0, 3.3, phase=1.0)
    one_by_one = [w for w in map(meter().add, times, volts) if w is not None]
    in_blocks = []
    m = meter()
    for i in range(0, len(times), 37):
        in_blocks += m.add_many(times[i:i + 37], volts[i:i + 37])
    assert in_blocks == one_by_one and len(in_blocks) == 3


def test_add_many_refuses_blocks_of_different_lengths():
    with pytest.raises(ValidationError, match=r"volts: has 2 samples for 3 times"):
        meter().add_many([1.0, 2.0, 3.0], [1.0, 2.0])


# --- gaps ---------------------------------------------------------------------------------


def test_a_gap_restarts_the_window_at_the_sample_after_it():
    times, volts = adc_samples(0.3, 50.0, 860.0, 3.0)
    gap = 10  # samples missing: 11.6 ms
    keep = list(range(0, 500)) + list(range(500 + gap, len(times)))
    windows = meter().add_many([times[i] for i in keep], [volts[i] for i in keep])
    assert windows[0].start == times[500 + gap]
    assert windows[0].samples == 860
    assert windows[0].amps == pytest.approx(0.3 / math.sqrt(2) / VPA, rel=1e-3)


def test_a_missing_sample_or_two_is_bridged():
    times, volts = adc_samples(0.3, 50.0, 860.0, 1.2)
    keep = [i for i in range(len(times)) if i not in (300, 301)]  # a 3-period interval
    [w] = meter().add_many([times[i] for i in keep], [volts[i] for i in keep])
    assert w.start == times[0]
    assert w.amps == pytest.approx(0.3 / math.sqrt(2) / VPA, rel=3e-3)


def test_the_default_gap_is_a_few_sample_periods_and_at_most_half_a_cycle():
    assert meter().max_gap == pytest.approx(GAP_PERIODS / 860)
    assert meter(frequency=60, rate=475).max_gap == pytest.approx(1 / 120)
    assert meter(max_gap=0.008).max_gap == 0.008


def test_a_time_that_goes_back_restarts_the_window():
    times, volts = adc_samples(0.3, 50.0, 860.0, 2.5)
    back = times[:400] + [t - 0.3 for t in times[400:]]
    windows = meter().add_many(back, volts)
    assert windows[0].start == back[400]
    assert windows[0].amps == pytest.approx(0.3 / math.sqrt(2) / VPA, rel=1e-3)


def test_restart_drops_the_partial_window_and_the_samples_before_its_time():
    times, volts = adc_samples(0.3, 50.0, 860.0, 2.5)
    m = meter()
    assert m.add_many(times[:600], volts[:600]) == []
    m.restart(times[650])  # asked for a moment the sampler has not delivered yet
    assert m.add_many(times[600:], volts[600:])[0].start == times[650]


def switched_load(switch_at: float, amps: float, seconds: float = 3.0):
    """Samples of no current, then `amps` from `switch_at` on (a relay closing)."""
    times, idle = adc_samples(0.0, 50.0, 860.0, seconds)
    _, loaded = adc_samples(amps * VPA * math.sqrt(2), 50.0, 860.0, seconds)
    return times, [v if t < switch_at else w for t, v, w in zip(times, idle, loaded)]


@pytest.mark.parametrize("into_window", [0.1, 0.5, 0.9])
def test_the_first_window_after_a_switch_reads_the_new_load_alone(into_window):
    switch_at = 100.0 + 1.0 + into_window  # within the second window
    times, volts = switched_load(switch_at, 5.0)
    m = meter()
    m.restart(switch_at)
    first = next(w for w in m.add_many(times, volts) if w.end >= switch_at)
    assert first.start >= switch_at and first.amps == pytest.approx(5.0, rel=0.02)
    # without the restart, the window around the switch blends the two loads: it can fail
    blended = next(w for w in meter().add_many(times, volts) if w.end >= switch_at)
    assert blended.amps < 5.0 * 0.98


# --- clipping -----------------------------------------------------------------------------


def test_a_window_with_clipped_samples_is_flagged_and_reads_low():
    m = meter(clip_low=0.0, clip_high=3.3)
    amplitude = 2.0  # around 1.667 V: both rails
    times, volts = adc_samples(amplitude, 50.0, 860.0, 2.05)
    clipped = [min(max(v, 0.0), 3.3) for v in volts]
    windows = m.add_many(times, clipped)
    assert len(windows) == 2 and all(w.clipped for w in windows)
    assert windows[0].amps < 0.95 * amplitude / math.sqrt(2) / VPA


def test_a_sample_exactly_at_a_clip_limit_counts_and_the_flag_is_per_window():
    times, volts = adc_samples(0.3, 50.0, 860.0, 3.05)
    volts[100] = 3.3  # first window: at the top
    volts[1000] = -0.5  # second: beyond the bottom
    windows = meter(clip_low=0.0, clip_high=3.3).add_many(times, volts)
    assert [w.clipped for w in windows] == [True, True, False]


# --- noise --------------------------------------------------------------------------------


def test_noise_subtraction_brings_the_expectation_back_to_the_true_value():
    rng = random.Random(20261126)
    sigma = 0.005
    amplitude = 2 * sigma * math.sqrt(2)  # signal rms twice the noise
    times, volts = adc_samples(amplitude, 50.0, 860.0, 80.5, noise=sigma, rng=rng)
    subtracted = meter(noise_volts=sigma).add_many(times, volts)
    plain = meter(gate_amps=0.0).add_many(times, volts)
    true_amps = amplitude / math.sqrt(2) / VPA
    assert len(subtracted) == 80
    mean = sum(w.amps for w in subtracted) / len(subtracted)
    assert mean == pytest.approx(true_amps, rel=0.01)
    plain_mean = sum(w.amps for w in plain) / len(plain)
    assert plain_mean == pytest.approx(true_amps * math.sqrt(1.25), rel=0.01)  # 11.8 % high


@pytest.mark.parametrize("model", sorted(SENSORS))
def test_pure_noise_at_the_datasheet_level_reads_exactly_zero(model):
    rng = random.Random(5)
    sigma = SENSORS[model].noise_volts * DIVIDER
    m = meter(volts_per_amp=SENSORS[model].volts_per_amp * DIVIDER, noise_volts=sigma)
    times, volts = adc_samples(0.0, 50.0, 860.0, 60.5, noise=sigma, rng=rng, quantise=True)
    windows = m.add_many(times, volts)
    assert len(windows) == 60
    assert all(w.amps == 0.0 for w in windows)
    assert all(w.raw_rms_volts == pytest.approx(sigma, rel=0.1) for w in windows)


def test_learned_noise_follows_the_sensor_and_gates_it_to_zero():
    rng = random.Random(11)
    sigma = 0.0009
    m = meter()
    assert m.noise_volts == 0.0 and m.gate_amps == 0.0 and m.zero_volts is None
    times, volts = adc_samples(0.0, 50.0, 860.0, 40.5, noise=sigma, rng=rng, quantise=True)
    idle = m.add_many(times[:20 * 860], volts[:20 * 860])
    assert idle[0].amps > 0  # before learning, the noise reads as current
    assert all(m.learn_idle(w) for w in idle)
    assert m.noise_volts == pytest.approx(sigma, rel=0.05)
    assert m.gate_amps == pytest.approx(m.noise_volts / VPA)
    assert m.zero_volts == pytest.approx(ZERO, abs=1e-4)
    after = m.add_many(times[20 * 860:], volts[20 * 860:])
    assert len(after) == 20 and all(w.amps == 0.0 for w in after)
    # A load a few times the noise still reads, and right.
    times, volts = adc_samples(4 * sigma, 50.0, 860.0, 20.5, noise=sigma, rng=rng, t0=200.0)
    loaded = m.add_many(times, volts)
    mean = sum(w.amps for w in loaded) / len(loaded)
    assert mean == pytest.approx(4 * sigma / math.sqrt(2) / VPA, rel=0.02)


def test_idle_learning_is_smoothed_and_follows_a_drifting_zero():
    m = meter(noise_volts=0.002)

    def idle(offset, rms):
        return Window(start=0.0, end=1.0, samples=860, rate=860.0, offset=offset,
                      raw_rms_volts=rms, amps=0.0, clipped=False)

    assert m.learn_idle(idle(1.60, 0.001))  # the first replaces what was given
    assert m.zero_volts == 1.60 and m.noise_volts == pytest.approx(0.001)
    assert m.learn_idle(idle(1.62, 0.001))  # then a plain mean ...
    assert m.zero_volts == pytest.approx(1.61)
    for _ in range(20):
        m.learn_idle(idle(1.61, 0.001))
    m.learn_idle(idle(1.69, 0.003))  # ... and an exponential one: one odd window moves it 1/8
    assert m.zero_volts == pytest.approx(1.61 + 0.08 / IDLE_WINDOWS)
    assert m.noise_volts ** 2 == pytest.approx(0.001 ** 2 + (0.003 ** 2 - 0.001 ** 2) / IDLE_WINDOWS)


def test_idle_learning_refuses_clipped_windows_and_real_current():
    m = meter()
    m.zero_volts = 1.65
    clipped = Window(0.0, 1.0, 860, 860.0, 1.7, 0.001, 0.0, True)
    flowing = Window(0.0, 1.0, 860, 860.0, 1.7, MAX_IDLE_AMPS * VPA * 1.01, 0.2, False)
    assert not m.learn_idle(clipped) and not m.learn_idle(flowing)
    assert m.zero_volts == 1.65 and m.noise_volts == 0.0
    with pytest.raises(ValidationError, match="zero_volts"):
        m.zero_volts = float("nan")


def test_an_explicit_gate_zeroes_what_is_below_it():
    times, volts = adc_samples(0.01, 50.0, 860.0, 1.05)
    amps = 0.01 / math.sqrt(2) / VPA  # 0.16 A
    assert meter(gate_amps=0.2).add_many(times, volts)[0].amps == 0.0
    assert meter(gate_amps=0.1).add_many(times, volts)[0].amps == pytest.approx(amps, rel=1e-3)
    assert meter(gate_amps=0.1, noise_volts=0.01).gate_amps == 0.1


def test_a_signal_below_the_noise_reads_zero_even_without_a_gate():
    times, volts = adc_samples(0.001, 50.0, 860.0, 1.05)
    assert meter(noise_volts=0.001, gate_amps=0.0).add_many(times, volts)[0].amps == 0.0


# --- parameters ---------------------------------------------------------------------------


@pytest.mark.parametrize("change, field", [
    ({"volts_per_amp": 0}, "volts_per_amp"),
    ({"volts_per_amp": "0.1"}, "volts_per_amp"),
    ({"frequency": 30}, "frequency"),
    ({"frequency": 71}, "frequency"),
    ({"window": 0}, "window"),
    ({"window": float("inf")}, "window"),
    ({"noise_volts": -0.001}, "noise_volts"),
    ({"gate_amps": -1}, "gate_amps"),
    ({"clip_low": 3.3, "clip_high": 3.3}, "clip_high"),
    ({"clip_low": float("nan")}, "clip_low"),
    ({"filter_order": 4}, "filter_order"),
    ({"filter_order": True}, "filter_order"),
    ({"rate": 100}, "rate"),
    ({"max_gap": 0.001}, "max_gap"),
    ({"max_gap": 0.011}, "max_gap"),
])
def test_bad_meter_parameters_are_named(change, field):
    with pytest.raises(ValidationError) as err:
        meter(**change)
    assert err.value.field == field
    assert str(err.value).startswith(field + ": ")


# --- power and energy ---------------------------------------------------------------------


def test_power_is_volts_times_amps_times_power_factor():
    assert power_watts(10.0, 230.0, 0.9) == pytest.approx(2070.0)
    assert power_watts(0.0, 120.0, 1.0) == 0.0


@pytest.mark.parametrize("args, field", [
    ((-1.0, 230.0, 1.0), "amps"), ((1.0, 0.0, 1.0), "volts"), ((1.0, 230.0, 1.1), "power_factor"),
    ((1.0, 230.0, 0.0), "power_factor"), ((float("nan"), 230.0, 1.0), "amps")])
def test_power_refuses_nonsense(args, field):
    with pytest.raises(ValidationError) as err:
        power_watts(*args)
    assert err.value.field == field


def test_a_constant_load_for_an_hour_is_its_power_in_watt_hours():
    counter = EnergyCounter()
    for s in range(3601):
        counter.add(100.0, 5000.0 + s, DAY)
    assert counter.today_wh == pytest.approx(100.0, rel=1e-12)
    assert counter.total_kwh == pytest.approx(0.1, rel=1e-12)
    assert counter.yesterday_wh == 0.0 and counter.day == DAY


@settings(max_examples=80)
@given(knots=st.lists(st.tuples(st.floats(0.1, 60), st.floats(0, 3500)), min_size=2,
                      max_size=12),
       cuts=st.lists(st.floats(0, 1), max_size=30), t0=st.floats(0, 1e6))
def test_piecewise_linear_power_integrates_exactly(knots, cuts, t0):
    """Readings at every knot and anywhere between: the trapezoid rule is exact."""
    times, watts = [t0], [knots[0][1]]
    for duration, w in knots[1:]:
        times.append(times[-1] + duration)
        watts.append(w)
    exact = sum((a + b) / 2 * (t1 - t0_) for a, b, t0_, t1 in
                zip(watts, watts[1:], times, times[1:]) if t1 - t0_ <= 10.0) / 3600
    readings = list(zip(times, watts))
    for cut in cuts:  # readings between knots, on the line
        i = int(cut * (len(times) - 1)) % (len(times) - 1)
        t = times[i] + (cut * 7.3 % 1.0) * (times[i + 1] - times[i])
        if times[i + 1] - times[i] <= 10.0:  # splitting a gap would make it integrable
            w = watts[i] + (watts[i + 1] - watts[i]) * (t - times[i]) / (times[i + 1] - times[i])
            readings.append((t, w))
    readings.sort()
    counter = EnergyCounter()
    for t, w in readings:
        counter.add(w, t, DAY)
    assert counter.today_wh == pytest.approx(exact, rel=1e-9, abs=1e-9)
    assert counter.total_kwh == pytest.approx(exact / 1000, rel=1e-9, abs=1e-12)


def test_a_gap_longer_than_max_gap_is_not_integrated():
    counter = EnergyCounter()
    for t in (0.0, 5.0, 15.0, 25.01, 30.0):  # 10 s is integrated, 10.01 s is not
        counter.add(720.0, t, DAY)
    assert counter.today_wh == pytest.approx(720.0 * 19.99 / 3600)
    short = EnergyCounter(max_gap=2.0)
    for t in (0.0, 1.0, 4.0, 5.0):
        short.add(3600.0, t, DAY)
    assert short.today_wh == pytest.approx(2.0)


def test_an_invalid_reading_removes_the_spans_on_both_its_sides():
    counter = EnergyCounter()
    for t in range(11):
        counter.add(None if t == 5 else 3600.0, float(t), DAY)
    assert counter.today_wh == pytest.approx(8.0)  # [4, 5] and [5, 6] are unknown
    counter.add(None, 11.0, DAY)
    counter.add(None, 12.0, DAY)
    counter.add(3600.0, 13.0, DAY)
    assert counter.today_wh == pytest.approx(8.0)


def test_a_monotonic_time_that_goes_back_is_a_gap():
    counter = EnergyCounter()
    for t in (100.0, 101.0, 50.0, 51.0, 51.0, 52.0):
        counter.add(3600.0, t, DAY)
    assert counter.today_wh == pytest.approx(3.0)


def test_midnight_moves_today_to_yesterday():
    counter = EnergyCounter()
    counter.add(3600.0, 0.0, DAY)
    counter.add(3600.0, 2.0, DAY)
    counter.add(3600.0, 3.0, DAY + datetime.timedelta(days=1))  # that span is still the old day
    assert (counter.yesterday_wh, counter.today_wh) == (pytest.approx(3.0), 0.0)
    counter.add(3600.0, 4.0, DAY + datetime.timedelta(days=1))
    assert counter.today_wh == pytest.approx(1.0)
    assert counter.total_kwh == pytest.approx(0.004)
    assert counter.day == DAY + datetime.timedelta(days=1)


def test_a_skipped_day_leaves_yesterday_empty():
    counter = EnergyCounter(day=DAY)
    counter.add(3600.0, 0.0, DAY)
    counter.add(3600.0, 1.0, DAY)
    counter.add(3600.0, 2.0, DAY + datetime.timedelta(days=2))
    assert (counter.yesterday_wh, counter.today_wh) == (0.0, 0.0)
    assert counter.total_kwh == pytest.approx(0.002)


def test_a_clock_stepped_back_and_forth_rolls_over_once_per_new_day():
    d = [DAY + datetime.timedelta(days=i) for i in range(-1, 4)]
    counter = EnergyCounter()
    t = 0.0
    for day in (d[1], d[1], d[2], d[0], d[1], d[2], d[2], d[1], d[2]):
        counter.add(3600.0, t, day)
        t += 1.0
    # One rollover (into d[2]) at the third reading: every second since counts in d[2].
    assert counter.day == d[2]
    assert counter.yesterday_wh == pytest.approx(2.0)
    assert counter.today_wh == pytest.approx(6.0)
    counter.add(3600.0, t, d[4])  # then a jump forward by two days
    assert (counter.yesterday_wh, counter.today_wh, counter.day) == (0.0, 0.0, d[4])
    assert counter.total_kwh == pytest.approx(0.009)


@given(st.lists(st.integers(-3, 3), min_size=1, max_size=40))
def test_rollovers_happen_once_per_later_day_whatever_the_clock_does(steps):
    """Each reading adds 1 Wh; the wall clock jumps by `steps` days between readings."""
    counter = EnergyCounter()
    day = DAY
    newest, today, yesterday = DAY, 0.0, 0.0
    counter.add(3600.0, 0.0, day)
    for i, step in enumerate(steps, start=1):
        day += datetime.timedelta(days=step)
        counter.add(3600.0, float(i), day)
        today += 1.0
        if day > newest:
            yesterday = today if (day - newest).days == 1 else 0.0
            today, newest = 0.0, day
    assert counter.day == newest
    assert counter.today_wh == pytest.approx(today)
    assert counter.yesterday_wh == pytest.approx(yesterday)
    assert counter.total_kwh == pytest.approx(len(steps) / 1000)


def test_energy_json_round_trips_and_the_next_reading_starts_a_new_span():
    counter = EnergyCounter()
    for t in range(4):
        counter.add(3600.0, float(t), DAY)
    obj = json.loads(json.dumps(counter.to_json()))
    assert obj == {"day": "2026-11-26", "today_wh": pytest.approx(3.0),
                   "yesterday_wh": 0.0, "total_kwh": pytest.approx(0.003)}
    again = EnergyCounter.from_json(obj)
    assert again.to_json() == counter.to_json()
    again.add(3600.0, 9000.0, DAY)  # a new process: its monotonic clock means nothing to the old
    again.add(3600.0, 9001.0, DAY)
    assert again.today_wh == pytest.approx(4.0)
    assert EnergyCounter.from_json(EnergyCounter().to_json()).day is None


@pytest.mark.parametrize("change, field", [
    ({"today_wh": -1.0}, "energy.today_wh"),
    ({"yesterday_wh": "3"}, "energy.yesterday_wh"),
    ({"total_kwh": float("inf")}, "energy.total_kwh"),
    ({"day": "2026-13-01"}, "energy.day"),
    ({"day": 20261126}, "energy.day"),
    ({"today_wh": None}, "energy.today_wh"),
])
def test_bad_energy_json_is_refused_with_the_field_named(change, field):
    good = {"day": "2026-11-26", "today_wh": 1.0, "yesterday_wh": 2.0, "total_kwh": 3.0}
    with pytest.raises(ValidationError) as err:
        EnergyCounter.from_json({**good, **change})
    assert err.value.field == field


def test_missing_energy_fields_and_non_objects_are_refused():
    for key in ("day", "today_wh", "yesterday_wh", "total_kwh"):
        obj = {"day": None, "today_wh": 1.0, "yesterday_wh": 2.0, "total_kwh": 3.0}
        del obj[key]
        with pytest.raises(ValidationError, match=f"energy.{key}: is missing"):
            EnergyCounter.from_json(obj)
    with pytest.raises(ValidationError, match="energy: expected an object"):
        EnergyCounter.from_json([1, 2])


@pytest.mark.parametrize("args, field", [
    ((float("nan"), 1.0, DAY), "watts"), ((-5.0, 1.0, DAY), "watts"), (("5", 1.0, DAY), "watts"),
    ((5.0, float("inf"), DAY), "t"), ((5.0, 1.0, "2026-11-26"), "day"),
    ((5.0, 1.0, datetime.datetime(2026, 11, 26, 12)), "day")])
def test_energy_readings_are_validated(args, field):
    with pytest.raises(ValidationError) as err:
        EnergyCounter().add(*args)
    assert err.value.field == field


def test_energy_max_gap_must_be_positive():
    with pytest.raises(ValidationError, match="max_gap: must be above 0 s"):
        EnergyCounter(max_gap=0)


# --- calibration --------------------------------------------------------------------------


def test_calibration_defaults_and_how_it_applies():
    cal = Calibration()
    assert (cal.current_gain, cal.voltage, cal.power_factor, cal.zero_volts) == (1.0, 230.0, 1.0,
                                                                                 None)
    cal = Calibration(current_gain=1.1, voltage=120.0, power_factor=0.5)
    assert cal.amps(2.0) == pytest.approx(2.2)
    assert cal.watts(2.0) == pytest.approx(2.2 * 120 * 0.5)


def test_calibrating_the_current_scales_the_gain_by_known_over_measured():
    cal = calibrate_current(Calibration(), measured_amps=4.0, known_amps=4.2)
    assert cal.current_gain == pytest.approx(1.05)
    # The next reading is taken with the new gain: 4.2 A shown, 4.0 A true.
    again = calibrate_current(cal, measured_amps=4.2, known_amps=4.0)
    assert again.current_gain == pytest.approx(1.0)
    assert again.voltage == 230.0


def test_calibrating_the_power_adjusts_the_current_gain():
    cal = Calibration(voltage=230.0, power_factor=0.9)
    new = calibrate_power(cal, measured_watts=1000.0, known_watts=950.0)
    assert new.current_gain == pytest.approx(0.95)
    assert (new.voltage, new.power_factor) == (230.0, 0.9)
    assert new.watts(1000.0 / (230 * 0.9)) == pytest.approx(950.0)


def test_calibrating_the_voltage_replaces_it():
    assert calibrate_voltage(Calibration(current_gain=1.2), 121.5) == Calibration(
        current_gain=1.2, voltage=121.5)


@pytest.mark.parametrize("call, field, words", [
    (lambda: calibrate_current(Calibration(), 2.0, 0.0), "known_amps", ["above 0 A", "got 0 A"]),
    (lambda: calibrate_current(Calibration(), 2.0, -1.0), "known_amps", ["got -1 A"]),
    (lambda: calibrate_current(Calibration(), 0.0, 1.0), "measured_amps", ["above 0 A"]),
    (lambda: calibrate_current(Calibration(), 0.1, 0.1), "measured_amps",
     ["0.1 A is too close to the noise gate (0.02 A)", "at least 0.2 A"]),
    (lambda: calibrate_current(Calibration(current_gain=2.0), 0.5, 0.5, gate_amps=0.03),
     "measured_amps", ["0.5 A", "(0.06 A)", "at least 0.6 A"]),
    (lambda: calibrate_current(Calibration(), 4.0, 10.0), "current_gain",
     ["10 A known for 4 A measured", "1 x 2.5 = 2.5", "outside 0.5..2"]),
    (lambda: calibrate_current(Calibration(current_gain=0.6), 4.0, 3.0), "current_gain",
     ["0.6 x 0.75 = 0.45", "outside 0.5..2"]),
    (lambda: calibrate_power(Calibration(), 30.0, 30.0), "measured_watts",
     ["30 W is too close to the noise gate (4.6 W)", "at least 46 W"]),
    (lambda: calibrate_power(Calibration(), 1000.0, 0.0), "known_watts", ["above 0 W"]),
    (lambda: calibrate_power(Calibration(), 1000.0, 2500.0), "current_gain",
     ["2500 W known for 1000 W measured", "= 2.5", "outside 0.5..2"]),
    (lambda: calibrate_voltage(Calibration(), 0.0), "volts", ["between 50 and 300 V", "got 0 V"]),
    (lambda: calibrate_voltage(Calibration(), 400.0), "volts", ["got 400 V"]),
    (lambda: calibrate_voltage(Calibration(), "230"), "volts", ["expected a number"]),
])
def test_calibration_refuses_nonsense_and_says_why_with_the_numbers(call, field, words):
    with pytest.raises(ValidationError) as err:
        call()
    assert err.value.field == field
    for word in words:
        assert word in str(err.value)


def test_calibration_json_round_trips():
    for cal in (Calibration(), Calibration(1.05, 121.0, 0.8, 1.6612)):
        assert Calibration.from_json(json.loads(json.dumps(cal.to_json()))) == cal
    assert Calibration().to_json() == {"current_gain": 1.0, "voltage": 230.0,
                                       "power_factor": 1.0, "zero_volts": None}
    assert Calibration.from_json({"current_gain": 1, "voltage": 230,
                                  "power_factor": 1}).zero_volts is None


@pytest.mark.parametrize("change, field", [
    ({"current_gain": 3.0}, "calibration.current_gain"),
    ({"current_gain": "1"}, "calibration.current_gain"),
    ({"voltage": 20.0}, "calibration.voltage"),
    ({"power_factor": 0.0}, "calibration.power_factor"),
    ({"zero_volts": "1.6"}, "calibration.zero_volts"),
    ({"zero_volts": float("nan")}, "calibration.zero_volts"),
])
def test_bad_calibration_json_is_refused_with_the_field_named(change, field):
    good = {"current_gain": 1.0, "voltage": 230.0, "power_factor": 1.0, "zero_volts": 1.66}
    with pytest.raises(ValidationError) as err:
        Calibration.from_json({**good, **change})
    assert err.value.field == field
    with pytest.raises(ValidationError, match=r"calibration\.voltage: is missing"):
        Calibration.from_json({"current_gain": 1.0, "power_factor": 1.0})
    with pytest.raises(ValidationError, match="calibration: expected an object"):
        Calibration.from_json(None)


@pytest.mark.parametrize("values, field", [
    ({"current_gain": 0.4}, "current_gain"), ({"voltage": 301}, "voltage"),
    ({"power_factor": 1.01}, "power_factor"), ({"zero_volts": float("inf")}, "zero_volts")])
def test_a_calibration_cannot_be_made_out_of_range(values, field):
    with pytest.raises(ValidationError) as err:
        Calibration(**values)
    assert err.value.field == field


# --- sensors and the front end ------------------------------------------------------------


def test_sensor_presets_come_from_the_datasheet():
    assert {m: s.volts_per_amp for m, s in SENSORS.items()} == {
        "ACS712-05B": 0.185, "ACS712-20A": 0.100, "ACS712-30A": 0.066}
    assert {m: s.max_amps for m, s in SENSORS.items()} == {
        "ACS712-05B": 5.0, "ACS712-20A": 20.0, "ACS712-30A": 30.0}
    assert SENSORS["ACS712-30A"].noise_volts == 0.0012
    assert all(0.001 <= s.noise_volts <= 0.005 for s in SENSORS.values())
    with pytest.raises(TypeError):
        SENSORS["mine"] = SENSORS["ACS712-30A"]  # type: ignore[index]


def test_the_readme_wiring_works():
    check_front_end(sensor="ACS712-30A", divider=DIVIDER, full_scale=4.096)
    check_front_end(sensor="ACS712-05B", divider=DIVIDER, full_scale=4.096)
    check_front_end(sensor="ACS712-30A", divider=DIVIDER, full_scale=2.048, differential=True)
    check_front_end(sensor=0.066, max_amps=30, divider=DIVIDER, full_scale=4.096, adc_vdd=5.0)


@pytest.mark.parametrize("kwargs, field, message", [
    ({"sensor": "ACS712-30A", "divider": DIVIDER, "full_scale": 2.048}, "full_scale",
     "at 30 A the ACS712-30A gives 4.48 V, 2.99 V after the divider, above the ±2.048 V full "
     "scale of gain 2: choose gain 1 (±4.096 V) or a divider of at most 0.457"),
    ({"sensor": "ACS712-05B", "divider": DIVIDER, "full_scale": 2.048}, "full_scale",
     "at 5 A the ACS712-05B gives 3.42 V, 2.28 V after the divider, above the ±2.048 V full "
     "scale of gain 2: choose gain 1 (±4.096 V) or a divider of at most 0.597"),
    ({"sensor": "ACS712-30A", "divider": 1.0, "full_scale": 4.096}, "divider",
     "at 30 A the ACS712-30A gives 4.48 V, 4.48 V after the divider, above the ADS1115's "
     "VDD 3.3 V + 0.3 V = 3.60 V: choose a divider of at most 0.803"),
    ({"sensor": "ACS712-30A", "divider": DIVIDER, "full_scale": 1.024, "differential": True},
     "full_scale", "at 30 A the ACS712-30A swings ±1.98 V, 1.32 V after the divider, above the "
     "±1.024 V full scale of gain 4: choose gain 2 (±2.048 V) or a divider of at most 0.517"),
    ({"sensor": "ACS712-05B", "max_amps": 10, "divider": DIVIDER, "full_scale": 4.096},
     "max_amps", "10 A is beyond the ±5 A range of the ACS712-05B: choose a larger model"),
    ({"sensor": 0.3, "max_amps": 10, "divider": DIVIDER, "full_scale": 4.096}, "max_amps",
     "at 10 A the sensor would swing 3.00 V either side of its 2.5 V zero, below 0 V"),
    ({"sensor": 0.1, "divider": DIVIDER, "full_scale": 4.096}, "max_amps", "is needed"),
    ({"sensor": "ACS758", "divider": DIVIDER, "full_scale": 4.096}, "sensor",
     "unknown model 'ACS758'; known: ACS712-05B, ACS712-20A, ACS712-30A"),
    ({"sensor": "ACS712-30A", "divider": DIVIDER, "full_scale": 3.0}, "full_scale",
     "must be one of the ADS1115's 6.144, 4.096, 2.048, 1.024, 0.512, 0.256 V, got 3.0"),
    ({"sensor": "ACS712-30A", "divider": 1.5, "full_scale": 4.096}, "divider", "at most 1"),
    ({"sensor": "ACS712-30A", "divider": DIVIDER, "full_scale": 4.096, "adc_vdd": 12},
     "adc_vdd", "between 2 and 5.5 V"),
    ({"sensor": "ACS712-30A", "divider": DIVIDER, "full_scale": 4.096, "zero_volts": 0},
     "zero_volts", "above 0 V"),
])
def test_front_end_refusals_show_the_numbers(kwargs, field, message):
    with pytest.raises(ValidationError) as err:
        check_front_end(**kwargs)
    assert err.value.field == field
    assert message in str(err.value)


@given(model=st.sampled_from(sorted(SENSORS)), divider=st.floats(0.05, 1.0),
       full_scale=st.sampled_from(sorted(FULL_SCALES)), vdd=st.floats(2.0, 5.5),
       differential=st.booleans())
def test_the_front_end_passes_exactly_when_the_signal_fits(model, divider, full_scale, vdd,
                                                           differential):
    sensor = SENSORS[model]
    swing = sensor.volts_per_amp * sensor.max_amps
    top = (2.5 + swing) * divider
    fits = top <= vdd + 0.3 and (swing * divider if differential else top) <= full_scale
    try:
        check_front_end(sensor=model, divider=divider, full_scale=full_scale, adc_vdd=vdd,
                        differential=differential)
    except ValidationError as err:
        assert not fits, err
        # The divider suggested ("... a divider of at most 0.457") cures what was refused.
        suggested = float(str(err).rsplit(" ", 1)[1])
        try:
            check_front_end(sensor=model, divider=suggested, full_scale=full_scale, adc_vdd=vdd,
                            differential=differential)
        except ValidationError as again:
            assert (err.field, again.field) == ("divider", "full_scale")
    else:
        assert fits
