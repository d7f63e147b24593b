"""The display: its rendering, checked for every input, and the worker that drives the real
tm1637 library on the GPIO stand-in, read back through the TM1637 decoder."""

import math
import sys
import threading

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from plugd.errors import HardwareError
from plugd.hardware.display import Display, Fault, Reading, render, render_text
from plugd.hardware.sim.tm1637 import TM1637Chip
from plugd.service.config import DISPLAY_MODES
from tests.support import wait_for

CLK, DIO = 23, 24
ADDRESS = 0xC0
HALF_PAST_ONE = 13 * 3600 + 30 * 60 + 15.0


@pytest.fixture
def chip(gpio):
    return TM1637Chip(gpio, CLK, DIO)


@pytest.fixture
def make_display(chip):
    """Displays on CLK/DIO with a fixed clock, closed after the test."""
    made = []

    def make(**options):
        options.setdefault("clock", lambda: HALF_PAST_ONE)
        made.append(Display(CLK, DIO, **options))
        return made[-1]

    yield make
    for display in made:
        display.close()


def drawn(display):
    assert display.flush(timeout=10), "the display thread did not draw in time"
    return display


# --- rendering ------------------------------------------------------------------

EXAMPLES = [
    ("power", 0.0, None, "   0"),
    ("power", 42.4, None, "  42"),
    ("power", 9999.4, None, "9999"),
    ("power", 9999.5, None, "10k0"),
    ("power", 12345.0, None, "12k3"),
    ("power", 999_499.0, None, "999k"),
    ("power", 999_500.0, None, " HI "),
    ("power", math.inf, None, " HI "),
    ("power", -5.0, None, "  -5"),
    ("power", -0.0, None, "   0"),
    ("power", -0.3, None, "   0"),
    ("power", -12_345.0, None, "-12k"),
    ("power", -1e9, None, "-HI "),
    ("power", None, None, "----"),
    ("power", math.nan, None, "----"),
    ("current", 0.0, None, "0A00"),
    ("current", 4.349, None, "4A35"),
    ("current", 9.996, None, "10A0"),
    ("current", 12.34, None, "12A3"),
    ("current", 123.4, None, "123A"),
    ("current", 1000.0, None, " HI "),
    ("current", -4.35, None, "-4A3"),
    ("current", -0.004, None, " 0A0"),
    ("energy_today", 842.0, None, " 842"),
    ("energy_today", 12_345.0, None, "12k3"),
    ("clock", 13 * 3600 + 5 * 60 + 59.9, None, "13:05"),
    ("clock", 9 * 3600.0, None, " 9:00"),
    ("clock", 0.0, None, " 0:00"),
    ("clock", -60.0, None, "23:59"),
    ("clock", 86_400.0 * 3 + 61, None, " 0:01"),
    ("clock", None, None, "--:--"),
    ("clock", 12 * 3600.0, Fault.SENSOR, "12:00"),  # the clock needs no sensor
    ("clock", 12 * 3600.0, Fault.OVERLOAD, " OL "),
    ("power", 3000.0, Fault.OVERLOAD, " OL "),
    ("current", 13.0, Fault.OVERLOAD, " OL "),
    ("power", 3000.0, Fault.SENSOR, "Err "),
    ("energy_today", None, Fault.SENSOR, "Err "),
    ("off", 3000.0, None, "    "),
    ("off", 3000.0, Fault.OVERLOAD, "    "),
]


@pytest.mark.parametrize(("mode", "value", "fault", "text"), EXAMPLES)
def test_render_text(mode, value, fault, text):
    assert render_text(mode, value, fault) == text


@pytest.mark.parametrize(("mode", "value", "fault", "text"), EXAMPLES)
def test_what_a_person_reads_through_the_library(gpio, chip, mode, value, fault, text):
    import tm1637

    gpio.setmode(gpio.BCM)
    tm1637.TM1637(CLK, DIO).write(render(mode, value, fault))
    assert chip.text == text.replace("O", "0")  # O and 0 are one pattern


@given(mode=st.sampled_from(DISPLAY_MODES), value=st.none() | st.floats(),
       fault=st.none() | st.sampled_from(Fault))
def test_any_value_in_any_mode_renders_as_four_digits(mode, value, fault):
    text = render_text(mode, value, fault)
    segments = render(mode, value, fault)
    assert isinstance(segments, bytes) and len(segments) == 4
    assert len(text.replace(":", "")) == 4
    assert (":" in text) == (segments[1] >= 0x80) == (mode == "clock" and fault != Fault.OVERLOAD)


@given(mode=st.sampled_from(["power", "current", "energy_today"]),
       value=st.floats(min_value=-2e6, max_value=2e6))
def test_a_number_shown_is_the_value_to_the_digits_shown(mode, value):
    text = render_text(mode, value).strip()
    assume("HI" not in text)
    magnitude = text.lstrip("-")
    scale = 1000.0 if "k" in magnitude else 1.0
    number = magnitude.replace("k", ".").replace("A", ".")
    resolution = scale * 10.0 ** -len(number.partition(".")[2])
    shown = float(number) * scale * (-1 if text.startswith("-") else 1)
    assert abs(shown - value) <= resolution / 2 * (1 + 1e-9)


def test_unknown_modes_and_brightness_are_refused(make_display):
    with pytest.raises(ValueError, match="display mode must be one of"):
        render_text("voltage", 1.0)
    with pytest.raises(ValueError, match="display mode must be one of"):
        make_display(mode="voltage")
    with pytest.raises(ValueError, match="between 0 and 7"):
        make_display(brightness=8)
    display = make_display()
    with pytest.raises(ValueError, match="between 0 and 7"):
        display.brightness = -1
    with pytest.raises(ValueError, match="display mode must be one of"):
        display.mode = "kWh"


# --- the display, through the library -------------------------------------------


def test_it_starts_showing_no_value_on_and_bright(gpio, chip, make_display):
    display = drawn(make_display())
    assert chip.text == display.text == "----" and chip.on and chip.brightness == 7
    assert display.fault is None
    assert gpio.getmode() == gpio.BCM  # set again after the reset's cleanup


def test_each_mode_shows_its_value(chip, make_display):
    display = make_display()
    reading = Reading(power=42.4, current=4.349, energy_today=12_345.0)
    display.show(reading)
    assert drawn(display) and chip.text == "  42"
    display.show(Reading(power=2300.0))
    assert drawn(display) and chip.text == "2300"
    display.show(reading)
    display.mode = "current"
    assert drawn(display) and chip.text == "4A35"
    display.mode = "energy_today"
    assert drawn(display) and chip.text == "12k3"
    display.mode = "clock"
    assert drawn(display) and chip.text == "13:30" and chip.segments[1] & 0x80


def test_faults_show_ol_and_err(chip, make_display):
    display = make_display()
    display.show(Reading(power=3000.0, fault=Fault.OVERLOAD))
    assert drawn(display) and chip.text == " 0L " and display.text == " OL "
    display.show(Reading(fault=Fault.SENSOR))
    assert drawn(display) and chip.text == "Err "


def test_off_blanks_and_switches_the_display_off_and_back_on(chip, make_display):
    display = make_display(brightness=4)
    display.show(Reading(power=5.0))
    display.mode = "off"
    assert drawn(display) and chip.text == "    " and not chip.on
    display.mode = "power"
    assert drawn(display) and chip.text == "   5" and chip.on and chip.brightness == 4


def test_a_brightness_change_sends_only_the_control_frames(chip, make_display):
    display = drawn(make_display())
    frames = chip.frames
    display.brightness = 2
    assert drawn(display) and chip.brightness == 2 and chip.on
    assert chip.frames == frames + 2 and list(chip.recent)[-2:] == [b"\x40", b"\x8a"]


def test_only_changed_digits_are_written_and_nothing_when_nothing_changed(chip, make_display):
    display = make_display()
    display.show(Reading(power=1234.0))
    drawn(display)
    frames = chip.frames
    display.show(Reading(power=1234.4))  # renders the same
    assert drawn(display) and chip.frames == frames
    display.show(Reading(power=1255.0))
    assert drawn(display) and chip.text == "1255"
    assert list(chip.recent)[-3:] == [b"\x40", b"\xc2\x6d\x6d", b"\x8f"]


def test_show_never_waits_for_the_chip_and_the_latest_reading_wins(gpio, chip, make_display):
    busy, release = threading.Event(), threading.Event()

    def hold(pin, level, t):  # stalls the display thread in its first edge
        busy.set()
        release.wait()

    gpio.add_listener(hold)
    display = make_display()
    assert busy.wait(10)
    for watts in range(1000):
        display.show(Reading(power=float(watts)))  # returns while the chip is stalled
    release.set()
    assert drawn(display) and chip.text == " 999"
    addressed = [f for f in chip.recent if f[0] & ADDRESS == ADDRESS]
    assert addressed == [b"\xc0\x40\x40\x40\x40", b"\xc0\x00\x6f\x6f\x6f"]  # "----", " 999"


def test_the_clock_turns_the_minute_without_being_shown_anything(chip, make_display):
    now = [13 * 3600 + 5 * 60 + 59.99]
    drawn(make_display(mode="clock", clock=lambda: now[0]))
    assert chip.text == "13:05"
    now[0] = 13 * 3600 + 6 * 60 + 0.5
    wait_for(lambda: chip.text == "13:06", "the display to show 13:06")


def test_a_failing_gpio_is_reported_once_kept_trying_and_recovered(gpio, chip, make_display):
    faults = []
    display = drawn(make_display(on_fault=faults.append, retry_after=0.001))
    gpio.fail = True
    for watts in (1.0, 2.0, 3.0):
        display.show(Reading(power=watts))
        drawn(display)  # one more failed attempt
    assert isinstance(display.fault, RuntimeError)
    assert len(faults) == 1 and isinstance(faults[0], RuntimeError)
    assert display.text == chip.text == "----"  # what the chip still shows
    gpio.fail = False
    display.show(Reading(power=7.0))
    assert drawn(display) and chip.text == "   7" and display.fault is None
    assert len(faults) == 2 and faults[1] is None


def test_a_fault_in_mid_frame_leaves_the_old_digits_and_the_rewrite_resyncs(gpio, chip,
                                                                           make_display):
    display = make_display(retry_after=0.001)
    display.show(Reading(power=1111.0))
    drawn(display)
    edges = []

    def trip(pin, level, t):  # breaks the bus inside the address frame of the next update
        edges.append(pin)
        if len(edges) == 60:
            gpio.fail = True

    gpio.add_listener(trip)
    display.show(Reading(power=2222.0))
    assert drawn(display) and isinstance(display.fault, RuntimeError)
    assert chip.text == "1111" and chip.malformed == 0  # the frame is still open
    gpio.fail = False
    display.show(Reading(power=2222.0))
    assert drawn(display) and display.fault is None
    assert chip.text == "2222" and chip.malformed == 1


def test_a_display_that_cannot_be_set_up_is_retried(gpio, chip, make_display):
    gpio.fail = True
    faults = []
    display = drawn(make_display(on_fault=faults.append, retry_after=0.001))
    assert isinstance(display.fault, RuntimeError) and display.text is None
    gpio.fail = False
    display.show(Reading(power=12.0))
    assert drawn(display) and chip.text == "  12" and faults[-1] is None


def test_close_blanks_switches_off_and_releases_the_pins(gpio, chip, make_display):
    display = make_display()
    display.show(Reading(power=230.0))
    drawn(display)
    display.close()
    assert chip.text == display.text == "    " and not chip.on
    assert gpio.level(CLK) is None and gpio.level(DIO) is None
    display.show(Reading(power=1.0))  # after close: ignored, no error


def test_a_missing_library_is_a_hardware_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "tm1637", None)
    with pytest.raises(HardwareError, match="cannot load the TM1637 library"):
        Display(CLK, DIO)
