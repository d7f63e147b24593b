"""The RPi.GPIO stand-in and the TM1637 decoder, driven by the real tm1637 library."""

import sys
import types
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plugd.hardware.sim.gpio import HISTORY, install
from plugd.hardware.sim.tm1637 import TM1637Chip

CLK, DIO = 23, 24
START = [(CLK, 1), (DIO, 1), (DIO, 0), (CLK, 0)]
STOP = [(DIO, 0), (CLK, 1), (DIO, 1)]


@pytest.fixture
def library(gpio):
    """The real tm1637 module, imported only once the stand-in is RPi.GPIO."""
    import tm1637

    gpio.setmode(gpio.BCM)  # tm1637 sets it when first imported, maybe before a reset
    return tm1637


@pytest.fixture
def bus(gpio):
    """CLK and DIO as outputs idling high, for frames sent by hand."""
    gpio.setmode(gpio.BCM)
    gpio.setup([CLK, DIO], gpio.OUT, initial=gpio.HIGH)
    return gpio


@pytest.fixture
def chip(gpio):
    return TM1637Chip(gpio, CLK, DIO)


def frame(*data: int) -> list[tuple[int, int]]:
    """The edges of one frame as the datasheet draws it: start, bytes LSB first, ACK, stop."""
    edges = list(START)
    for byte in data:
        for i in range(8):
            edges += [(DIO, byte >> i & 1), (CLK, 1), (CLK, 0)]
        edges += [(CLK, 1), (CLK, 0)]  # the ACK slot
    return edges + STOP


def play(gpio, edges):
    for pin, level in edges:
        gpio.output(pin, level)


# --- the stand-in -------------------------------------------------------------


def test_install_makes_the_stand_in_rpi_gpio_once(gpio, library):
    assert install() is gpio
    import RPi.GPIO

    assert RPi.GPIO is gpio and sys.modules["RPi"].GPIO is gpio
    assert library.GPIO is gpio


def test_install_refuses_a_tm1637_that_found_another_rpi_gpio(monkeypatch):
    monkeypatch.delitem(sys.modules, "RPi.GPIO", raising=False)
    monkeypatch.setitem(sys.modules, "tm1637", types.SimpleNamespace(GPIO=object()))
    with pytest.raises(RuntimeError, match="before the GPIO stand-in"):
        install()


def test_the_stand_in_refuses_what_rpi_gpio_refuses(gpio):
    with pytest.raises(RuntimeError, match="setmode"):
        gpio.setup(CLK, gpio.OUT)
    with pytest.raises(RuntimeError, match="setmode"):
        gpio.output(CLK, gpio.HIGH)
    gpio.setmode(gpio.BCM)
    with pytest.raises(ValueError, match="different mode"):
        gpio.setmode(gpio.BOARD)
    with pytest.raises(RuntimeError, match="not been set up as an OUTPUT"):
        gpio.output(CLK, gpio.HIGH)
    with pytest.raises(RuntimeError, match="setup"):
        gpio.input(CLK)
    gpio.setup(DIO, gpio.IN, pull_up_down=gpio.PUD_UP)
    assert gpio.input(DIO) == gpio.HIGH
    with pytest.raises(RuntimeError, match="not been set up as an OUTPUT"):
        gpio.output(DIO, gpio.LOW)
    with pytest.raises(ValueError, match="invalid on a Raspberry Pi"):
        gpio.setup(40, gpio.OUT)  # no GPIO40 on the header
    with pytest.raises(ValueError, match="not valid for outputs"):
        gpio.setup(CLK, gpio.OUT, pull_up_down=gpio.PUD_UP)
    with pytest.raises(ValueError, match="not valid for inputs"):
        gpio.setup(CLK, gpio.IN, initial=gpio.HIGH)
    with pytest.raises(ValueError, match="integer"):
        gpio.setup("23", gpio.OUT)
    gpio.setup(CLK, gpio.OUT)
    with pytest.raises(RuntimeError, match="Number of channels"):
        gpio.output([CLK], [gpio.HIGH, gpio.LOW])


def test_board_numbering_takes_physical_pins(gpio):
    gpio.setmode(gpio.BOARD)
    gpio.setup(16, gpio.OUT, initial=gpio.HIGH)  # physical 16 is GPIO23
    assert gpio.input(16) == gpio.HIGH
    with pytest.raises(ValueError, match="invalid"):
        gpio.setup(2, gpio.OUT)  # physical 2 is 5 V


def test_each_level_change_is_recorded_and_heard_once(gpio):
    gpio.setmode(gpio.BCM)
    heard = []
    gpio.add_listener(lambda pin, level, t: heard.append((pin, level)))
    gpio.setup([CLK, DIO], gpio.OUT, initial=gpio.HIGH)
    gpio.output(CLK, gpio.HIGH)  # no change
    gpio.output([CLK, DIO], [gpio.LOW, True])
    gpio.output([CLK, DIO], gpio.HIGH)
    assert heard == [(CLK, 1), (DIO, 1), (CLK, 0), (CLK, 1)]
    assert [level for _, level in gpio.history(CLK)] == [1, 0, 1]
    times = [t for t, _ in gpio.history(CLK)]
    assert times == sorted(times)
    assert gpio.level(CLK) == gpio.input(CLK) == gpio.HIGH
    assert gpio.level(5) is None and gpio.history(5) == []


def test_the_history_is_bounded(bus):
    for i in range(HISTORY + 10):
        bus.output(CLK, i % 2)
    history = bus.history(CLK)
    assert len(history) == HISTORY and history[-1][1] == (HISTORY + 9) % 2


def test_setting_up_a_pin_twice_warns_unless_warnings_are_off(bus):
    with pytest.warns(RuntimeWarning, match="already in use"):
        bus.setup(CLK, bus.OUT)
    bus.setwarnings(False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bus.setup(CLK, bus.OUT)


def test_cleanup_releases_pins_and_a_full_cleanup_the_mode(bus):
    bus.cleanup(CLK)
    assert bus.level(CLK) is None
    with pytest.raises(RuntimeError, match="OUTPUT"):
        bus.output(CLK, bus.LOW)
    bus.cleanup([7, 8])  # never set up: ignored, as tm1637's __del__ needs
    bus.cleanup()
    assert bus.getmode() is None and bus.level(DIO) is None


def test_fail_makes_setup_and_output_raise_until_reset(bus):
    bus.fail = True
    with pytest.raises(RuntimeError, match="simulated GPIO fault"):
        bus.output(CLK, bus.LOW)
    with pytest.raises(RuntimeError, match="simulated GPIO fault"):
        bus.setup(DIO, bus.OUT)
    bus.reset()
    assert not bus.fail and bus.getmode() is None


# --- the decoder, reading the real library ------------------------------------


def test_the_decoder_reads_what_the_library_writes(library, chip):
    assert not chip.on  # a chip that was never told anything is dark
    display = library.TM1637(CLK, DIO, brightness=3)
    display.number(-42)
    assert chip.text == " -42" and chip.on and chip.brightness == 3
    assert chip.segments == bytes([0x00, 0x40, 0x66, 0x5B])
    assert list(chip.recent) == [b"\x40", b"\xc0\x00\x40\x66\x5b", b"\x8b"]
    assert (chip.frames, chip.malformed) == (3, 0)


def test_the_colon_letters_and_brightness(library, chip):
    display = library.TM1637(CLK, DIO)
    display.numbers(12, 34)
    assert chip.text == "12:34" and chip.segments[1] & 0x80
    display.show("Err")  # the library writes 3 digits; the 4th keeps its 4
    assert chip.text == "Err4"
    display.hex(0xBCDF)
    assert chip.text == "bCdF"
    display.show("HOLD")
    assert chip.text == "H0Ld"  # O and 0 are one pattern; the library's D is d
    before = chip.frames
    display.brightness(5)
    assert chip.brightness == 5 and list(chip.recent)[-2:] == [b"\x40", b"\x8d"]
    assert chip.frames == before + 2


def test_dots_of_a_decimal_module_and_the_grids_beyond_four(library, chip):
    decimal = library.TM1637Decimal(CLK, DIO)
    decimal.show("1.2.34")
    assert chip.text == "1.2:34"  # the 2nd digit's MSB reads as the colon, by convention
    decimal.write([0x06, 0x5B], pos=4)
    assert chip.grids[4:] == bytes([0x06, 0x5B]) and chip.text == "1.2:34"


def test_a_hand_sent_stream_decodes_as_the_datasheet_says(bus, chip):
    play(bus, frame(0x40) + frame(0xC0, 0x3F, 0x06, 0x5B, 0x4F) + frame(0x8F))
    assert chip.text == "0123" and chip.on and chip.brightness == 7
    play(bus, frame(0x44) + frame(0xC2, 0x66, 0x6D))  # fixed address: both go to grid 2
    assert chip.text == "0153"
    play(bus, frame(0x40) + frame(0xC5, 0x01, 0x02))  # nothing beyond grid 5
    assert chip.grids[5] == 0x01 and chip.text == "0153"
    play(bus, frame(0x80 | 0x02))  # display control without "on"
    assert not chip.on and chip.brightness == 2
    assert chip.malformed == 0 and chip.frames == 8


BYTE = 8 * 3 + 2  # edges of one byte and its ACK slot
#: Streams that break the protocol, and the good frames they hold after the bad one.
MALFORMED = {
    "stop in mid-byte": (frame(0xC0, 0x06)[:len(START) + BYTE + 4 * 3] + STOP, 0),
    "stop before the ACK clock": (frame(0x8F)[:len(START) + 8 * 3] + STOP, 0),
    "start inside a frame": ([*frame(192, 6)[:len(START) + 3 * 3], (DIO, 1), *frame(143)], 1),
    "empty frame": (START + STOP, 0),
    "unknown command": (frame(0x00), 0),
    "data command with data": (frame(0x40, 0x06), 0),
    "display control with data": (frame(0x8F, 0x06), 0),
    "key scan (not simulated)": (frame(0x42), 0),
}


@pytest.mark.parametrize(("stream", "good"), MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_frame_is_counted_dropped_and_the_next_start_resyncs(library, chip, stream,
                                                                       good):
    display = library.TM1637(CLK, DIO)
    display.number(1234)
    frames = chip.frames
    play(library.GPIO, stream)
    assert (chip.malformed, chip.frames, chip.text) == (1, frames + good, "1234")
    display.number(5678)
    assert (chip.malformed, chip.frames, chip.text) == (1, frames + good + 3, "5678")


@pytest.fixture
def display(library):
    return library.TM1637(CLK, DIO)


# The fixtures are shared by the examples: each one ends with a full write, whatever came before.
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(noise=st.lists(st.tuples(st.sampled_from([CLK, DIO]), st.integers(0, 1)), max_size=200),
       digits=st.lists(st.integers(0, 0x7F), min_size=4, max_size=4),
       brightness=st.integers(0, 7))
def test_after_any_noise_the_chip_reads_the_library_right(gpio, display, chip, noise, digits,
                                                          brightness):
    play(gpio, noise)
    display.brightness(brightness)
    display.write(digits)
    assert chip.segments == bytes(digits) and chip.on and chip.brightness == brightness
