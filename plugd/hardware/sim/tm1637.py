"""A TM1637 that listens to the GPIO stand-in's CLK and DIO and keeps what the chip would show.

It decodes the two-wire protocol as the datasheet describes it, from the edges
alone: a start is DIO falling while CLK is high, a stop DIO rising while CLK is
high; bits go LSB first and are read on CLK's rising edge; the 9th clock of a
byte is the chip's ACK slot. A clock pulse counts once CLK falls again: the
rise that precedes a stop (CLK up, then DIO up) carries no bit. A frame is one
command byte and, after an address command, the data bytes:

    0x40 | 0x04 if fixed address   data command (0x40: auto-increment)
    0xC0 | address (0..5)          address command, then the grid bytes
    0x80 | 0x08 if on | 0..7       display control: on/off and brightness

A frame that breaks the protocol (a stop in mid-byte, a start inside a frame, an
unknown command) is counted and dropped; the next start begins afresh, as on
the chip.

`text` reads the 4 digits as a person would, for the common module with a colon:
one character per digit, `:` after the 2nd digit when its MSB (the colon) is
lit, `.` after any other digit whose MSB (a decimal point, on modules that have
them) is lit. A pattern that is a digit and a letter (0 and O, 1 and I of some
fonts, 5 and S) reads as the digit; one that is no character reads as `?`.
"""

from __future__ import annotations

from collections import deque

from plugd.hardware.sim.gpio import StandInGPIO

LOW, HIGH = 0, 1
GRIDS = 6
DATA, CONTROL, ADDRESS = 0x40, 0x80, 0xC0
FIXED_ADDRESS, READ_KEYS, DISPLAY_ON = 0x04, 0x02, 0x08
MSB = 0x80

#: The lit segments of each character (a top, b top right, c bottom right, d bottom,
#: e bottom left, f top left, g middle), drawn independently of any encoder's table.
_DRAWN = {
    "0": "abcdef", "1": "bc", "2": "abdeg", "3": "abcdg", "4": "bcfg", "5": "acdfg",
    "6": "acdefg", "7": "abc", "8": "abcdefg", "9": "abcdfg",
    "A": "abcefg", "b": "cdefg", "C": "adef", "c": "deg", "d": "bcdeg", "E": "adefg",
    "F": "aefg", "G": "acdef", "H": "bcefg", "h": "cefg", "I": "ef", "J": "bcde",
    "k": "acefg", "L": "def", "n": "ceg", "o": "cdeg", "P": "abefg", "q": "abcfg",
    "r": "eg", "t": "defg", "U": "bcdef", "u": "cde", "y": "bcdfg",
    "-": "g", "_": "d", " ": "",
}
_READ = {sum(1 << "abcdefg".index(s) for s in segments): char
         for char, segments in _DRAWN.items()}


class TM1637Chip:
    """The chip's registers, written by the edges the stand-in reports on `clk` and `dio`."""

    def __init__(self, gpio: StandInGPIO, clk: int, dio: int) -> None:
        self.clk, self.dio = clk, dio
        #: The 6 grid registers; a 4-digit module shows the first 4.
        self.grids = bytearray(GRIDS)
        self.on = False
        self.brightness = 0
        #: Frames the chip acted on, and frames it dropped.
        self.frames = 0
        self.malformed = 0
        #: The last frames acted on, command byte first.
        self.recent: deque[bytes] = deque(maxlen=64)
        # An undriven line idles high: the module has pull-ups on CLK and DIO.
        self._levels = {pin: HIGH if gpio.level(pin) is None else gpio.level(pin)
                        for pin in (clk, dio)}
        self._frame: bytearray | None = None  # None between a stop and the next start
        self._byte = 0
        self._bits = 0
        self._sampled: int | None = None  # DIO read on CLK's rise, until CLK falls
        self._fixed = False
        gpio.add_listener(self._edge)

    @property
    def segments(self) -> bytes:
        """The 4 digits' segment bytes, left to right (bit 0 segment a, bit 7 the dot/colon)."""
        return bytes(self.grids[:4])

    @property
    def text(self) -> str:
        """The 4 digits as read by a person; see the module's docstring."""
        out = []
        for i, byte in enumerate(self.segments):
            out.append(_READ.get(byte & ~MSB, "?"))
            if byte & MSB:
                out.append(":" if i == 1 else ".")
        return "".join(out)

    def _edge(self, pin: int, level: int, _t: float) -> None:
        if pin not in self._levels or self._levels[pin] == level:
            return
        self._levels[pin] = level
        if pin == self.dio and self._levels[self.clk] == HIGH:
            if level == LOW:
                self._start()
            else:
                self._stop()
        elif pin == self.clk and self._frame is not None:
            if level == HIGH:
                self._sampled = self._levels[self.dio]
            elif self._sampled is not None:
                self._clock(self._sampled)

    def _start(self) -> None:
        if self._frame is not None:
            self.malformed += 1  # a start inside a frame: the frame so far is lost
        self._frame = bytearray()
        self._byte = self._bits = 0
        self._sampled = None

    def _clock(self, bit: int) -> None:
        self._sampled = None
        if self._bits == 8:  # the 9th clock, the ACK slot: the byte is in
            self._frame.append(self._byte)
            self._byte = self._bits = 0
        else:
            self._byte |= bit << self._bits
            self._bits += 1

    def _stop(self) -> None:
        frame, self._frame = self._frame, None
        if frame is None:
            return  # DIO rising on an idle bus (the library's start begins with it)
        if frame and not self._bits and self._execute(bytes(frame)):
            self.frames += 1
            self.recent.append(bytes(frame))
        else:
            self.malformed += 1

    def _execute(self, frame: bytes) -> bool:
        command, data = frame[0], frame[1:]
        kind = command & 0xC0
        if kind == DATA and not data and not command & READ_KEYS:  # key scans: not simulated
            self._fixed = bool(command & FIXED_ADDRESS)
        elif kind == CONTROL and not data:
            self.on = bool(command & DISPLAY_ON)
            self.brightness = command & 0x07
        elif kind == ADDRESS:
            address = command & 0x0F
            for byte in data:
                if address < GRIDS:  # the chip has no register beyond C5H
                    self.grids[address] = byte
                if not self._fixed:
                    address += 1
        else:
            return False
        return True
