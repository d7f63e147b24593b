"""Acquisition: distinct conversions a second that plugd's Sampler delivers, and what it costs.

The real `Sampler` reads the ADS1115 emulator through adafruit_ads1x15 on
the ALERT/RDY pulses of the emulator's real-time thread (a gpiozero mock
pin, as `plugd --simulate` wires it), and hands its blocks to the real
CurrentMeter, as the daemon does. A sample counts only if it is a distinct
conversion: the emulator counts every read of its conversion register as a
new conversion or a repeat, and every conversion it made.

Beside it, for the same short time: the single-shot fallback (no ALERT/RDY
wired), and a naive loop that sleeps 1/860 s between reads in continuous
mode, whose repeats and skips are the cost of beating against the ADC's
clock. The cost of sampling + maths is the Sampler's own `busy_seconds`,
and the process CPU time of the run minus that of the emulator pulsing its
pin with no reader for as long. Both are for this machine, and both
include the emulated chip's work inside each read, which a Pi spends on
the I2C bus instead.

`python -m bench.acquisition --minutes 10` is the issue's full run; `run()`,
as `make bench` calls it, lasts a minute.
"""

from __future__ import annotations

import argparse
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from gpiozero.pins.mock import MockFactory

from bench.metering_rig import daemon_config
from bench.report import Row, run_alone
from plugd.core.metering import CurrentMeter
from plugd.hardware.adc import BLOCK_SECONDS, Sampler
from plugd.hardware.sim.ads1115 import ADS1115Emulator
from plugd.hardware.sim.rig import ALERT_HISTORY, mains_for
from plugd.service.config import Config
from plugd.service.meter import current_meter
from tests.support import wait_for

NAME = "Acquisition"
SECONDS = 60.0  # run(): the Sampler on ALERT/RDY, and the emulator alone for as long
FALLBACK_SECONDS = 15.0  # the single-shot fallback and the naive loop
WARMUP = 1.0  # after the first samples: the driver is set up and the meter running
SETTLE = 4 * BLOCK_SECONDS  # the Sampler hands its last block over (under its 0.5 s RDY timeout)
TARGET_RATE = 800.0
TARGET_CPU = 0.05  # of one core


@dataclass(frozen=True)
class Snapshot:
    """The chip's counters and the process's CPU time at one instant."""

    at: float
    made: int
    distinct: int
    repeated: int
    cpu: float
    machine: tuple[int, int]  # busy and total ticks of every CPU, from /proc/stat

    @classmethod
    def take(cls, emulator: ADS1115Emulator) -> Snapshot:
        """The emulator's and the process's counters now."""
        return cls(time.monotonic(), emulator.conversions_completed(), emulator.conversions_read,
                   emulator.stale_reads, time.process_time(), machine_ticks())


@dataclass(frozen=True)
class Span:
    """What happened between two snapshots."""

    seconds: float
    made: int
    distinct: int
    repeated: int
    cpu: float  # of one core
    others: float  # share of the machine's CPUs used by other processes

    @classmethod
    def between(cls, a: Snapshot, b: Snapshot) -> Span:
        """What happened between two snapshots."""
        seconds = b.at - a.at
        cpu = b.cpu - a.cpu
        busy, total = b.machine[0] - a.machine[0], b.machine[1] - a.machine[1]
        ticks_per_core_second = total / seconds / CPUS if seconds > 0 else 0
        ours = cpu * ticks_per_core_second
        return cls(seconds, b.made - a.made, b.distinct - a.distinct, b.repeated - a.repeated,
                   cpu / seconds, max(0.0, busy - ours) / total if total else 0.0)

    @property
    def missed(self) -> int:
        """Conversions made but never read."""
        return self.made - self.distinct


def machine_ticks() -> tuple[int, int]:
    """Busy and total jiffies of all CPUs: other work on the machine skews real-time figures."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


CPUS = len([line for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("cpu") and line[3].isdigit()])


class Consumer:
    """The daemon's consume (the real CurrentMeter on each block), counting what arrives.

    Samples are counted by their own timestamps within [start, end), so a
    block handed over late is still counted in the right span; the count
    costs a bisection per block, not a step per sample.
    """

    def __init__(self, meter: CurrentMeter) -> None:
        self.meter = meter
        self.start = self.end = float("inf")
        self.total = 0
        self.in_span = 0
        self.windows = 0
        self.out_of_order = 0  # blocks whose first time is not after the previous block's last
        self.maths_seconds = 0.0
        self.times: list[float] = []  # every timestamp, for the gaps, looked at after the run
        self._last = float("-inf")

    def gaps(self, longer_than: float) -> tuple[int, float]:
        """Gaps in the span longer than `longer_than` seconds, and the longest gap."""
        times = self.times[bisect_left(self.times, self.start):bisect_left(self.times, self.end)]
        gaps = [b - a for a, b in pairwise(times)]
        return sum(gap > longer_than for gap in gaps), max(gaps, default=0.0)

    def __call__(self, times: list[float], volts: list[float]) -> None:
        """Take a block from the sampler, timing the meter's maths."""
        started = time.perf_counter()
        self.windows += len(self.meter.add_many(times, volts))
        self.maths_seconds += time.perf_counter() - started
        self.total += len(times)
        self.times.extend(times)
        self.in_span += bisect_left(times, self.end) - bisect_left(times, self.start)
        if times[0] <= self._last:
            self.out_of_order += 1
        self._last = times[-1]


def sleep_until(moment: float) -> None:
    """Sleep until monotonic `moment` (at once if it passed)."""
    time.sleep(max(0.0, moment - time.monotonic()))


@contextmanager
def chip(config: Config, factory: MockFactory | None) -> Iterator[ADS1115Emulator]:
    """The emulator behind a 1000 W load, as `plugd --simulate` wires it; its RDY thread stopped after.

    With a pin factory, ALERT/RDY is the configured mock pin, keeping only its
    latest states as the rig does; without one, no pin moves.
    """
    pin = None
    if factory is not None and config.adc.alert_pin:
        pin = factory.pin(config.adc.alert_pin)
        pin.states = deque(pin.states, maxlen=ALERT_HISTORY)
    mains = mains_for(config, lambda: True)
    mains.load_watts = config.simulate.load_watts
    emulator = ADS1115Emulator(mains, address=config.adc.address,
                               oscillator_error=config.simulate.oscillator_error,
                               vdd=config.adc.vdd, alert_pin=pin)
    try:
        yield emulator
    finally:
        emulator.stop()


def sampler_for(config: Config, emulator: ADS1115Emulator, factory: MockFactory | None,
                consume: Callable[[list[float], list[float]], None],
                faults: list[str | None]) -> Sampler:
    """The Sampler as the daemon builds it."""
    adc = config.adc
    return Sampler(lambda: emulator, address=adc.address, channel=adc.channel,
                   full_scale=adc.full_scale, data_rate=adc.data_rate, alert_pin=adc.alert_pin,
                   pin_factory=factory, consume=consume, on_fault=faults.append,
                   clock=emulator.clock)


@dataclass(frozen=True)
class SamplerRun:
    """What one sampler run delivered."""
    span: Span
    delivered: int
    busy: float  # of one core
    maths: float  # of one core, within busy
    windows: int
    out_of_order: int
    skips: int  # gaps of more than one conversion period
    restarts: int  # gaps that made the meter drop its partial window
    longest_gap: float
    faults: list[str | None]
    fell_back: bool


def run_sampler(config: Config, seconds: float) -> SamplerRun:
    """The Sampler for `seconds` after a warm-up; counters from the instants that bound the span."""
    factory = MockFactory()
    factory.reset()
    consumer = Consumer(current_meter(config))
    faults: list[str | None] = []
    with chip(config, factory) as emulator:
        emulator.start()  # as the rig does, before the daemon starts its Sampler
        sampler = sampler_for(config, emulator, factory, consumer, faults)
        sampler.start()
        try:
            wait_for(lambda: consumer.total, f"the Sampler's first block (faults: {faults})", 10)
            start = time.monotonic() + WARMUP
            consumer.start, consumer.end = start, start + seconds
            sleep_until(start)
            busy0, maths0, windows0 = sampler.busy_seconds, consumer.maths_seconds, consumer.windows
            a = Snapshot.take(emulator)
            sleep_until(consumer.end)
            b = Snapshot.take(emulator)
            busy = sampler.busy_seconds - busy0
            maths = consumer.maths_seconds - maths0
            windows = consumer.windows - windows0
            emulator.stop()  # no more pulses: the Sampler's last block is complete
            time.sleep(SETTLE)
        finally:
            sampler.stop()
    span = Span.between(a, b)
    skips, longest = consumer.gaps(1.5 / emulator_rate(config))
    restarts, _ = consumer.gaps(consumer.meter.max_gap)
    return SamplerRun(span, consumer.in_span, busy / span.seconds, maths / span.seconds, windows,
                      consumer.out_of_order, skips, restarts, longest, faults,
                      sampler.single_shot)


def emulator_rate(config: Config) -> float:
    """Conversions a second of the simulated chip, its oscillator error included."""
    return config.adc.data_rate * (1 + config.simulate.oscillator_error)


def run_emulator_only(config: Config, seconds: float) -> Span:
    """The chip set up as the Sampler sets it, pulsing ALERT/RDY in real time, and no reader."""
    factory = MockFactory()
    factory.reset()
    faults: list[str | None] = []
    with chip(config, factory) as emulator:
        sampler_for(config, emulator, None, lambda *_: None, faults)._open()  # its set-up only
        emulator.start()
        time.sleep(WARMUP)
        a = Snapshot.take(emulator)
        time.sleep(seconds)
        b = Snapshot.take(emulator)
    return Span.between(a, b)


def run_single_shot(config: Config, seconds: float) -> tuple[Span, int, float]:
    """The fallback with no ALERT/RDY wired: (span, samples delivered in it, busy share)."""
    consumer = Consumer(current_meter(config))
    faults: list[str | None] = []
    with chip(config, None) as emulator:
        sampler = sampler_for(config, emulator, None, consumer, faults)
        sampler.start()
        try:
            start = time.monotonic() + WARMUP
            consumer.start, consumer.end = start, start + seconds
            sleep_until(start)
            busy0 = sampler.busy_seconds
            a = Snapshot.take(emulator)
            sleep_until(consumer.end)
            b = Snapshot.take(emulator)
            busy = sampler.busy_seconds - busy0
        finally:
            sampler.stop()
    if faults:
        raise RuntimeError(f"the single-shot Sampler reported faults: {faults}")
    span = Span.between(a, b)
    return span, consumer.in_span, busy / span.seconds


def run_naive(config: Config, seconds: float) -> tuple[Span, int]:
    """Continuous mode without ALERT/RDY: read, sleep 1/rate, read again. (span, reads)."""
    faults: list[str | None] = []
    with chip(config, None) as emulator:
        channel = sampler_for(config, emulator, None, lambda *_: None, faults)._open()  # set-up
        pause = 1 / config.adc.data_rate
        reads = 0
        a = Snapshot.take(emulator)
        end = a.at + seconds
        while time.monotonic() < end:
            channel.voltage  # what the Sampler's callback reads
            reads += 1
            time.sleep(pause)
        b = Snapshot.take(emulator)
    return Span.between(a, b), reads


def share(fraction: float) -> str:
    """A fraction as a percentage."""
    return f"{fraction * 100:.2f} %"


def run(seconds: float = SECONDS, fallback_seconds: float = FALLBACK_SECONDS) -> list[Row]:
    """Sample for `seconds` on ALERT/RDY (and the polling fallback); rows against the targets."""
    config = daemon_config()
    rate = emulator_rate(config)
    main = run_sampler(config, seconds)
    idle = run_emulator_only(config, seconds)
    single, single_delivered, single_busy = run_single_shot(daemon_config({"adc.alert_pin": 0}),
                                                            fallback_seconds)
    naive, naive_reads = run_naive(config, fallback_seconds)

    s = main.span
    usable = main.delivered - s.repeated
    during = f"{s.seconds:.0f} s real time"
    rows = [
        Row(NAME, f"usable samples/s, Sampler on ALERT/RDY ({rate:.0f} SPS), {during}",
            f"{usable / s.seconds:.1f}/s ({usable:,} distinct conversions of {s.made:,} made, "
            f"{s.missed:,} missed)", f"≥ {TARGET_RATE:.0f}/s", usable / s.seconds >= TARGET_RATE),
        Row(NAME, "samples that repeat a conversion already delivered",
            f"{s.repeated:,} of {main.delivered:,}", "0", s.repeated == 0),
        Row(NAME, "cross-check",
            f"consume got {main.delivered:,} samples stamped in the span; the chip saw "
            f"{s.distinct:,} distinct reads + {s.repeated:,} repeats; faults: "
            f"{main.faults or 'none'}; {main.out_of_order} blocks out of order"
            + ("; **fell back to single-shot**" if main.fell_back else "")),
        Row(NAME, "gaps and 1 s readings lost",
            f"{main.skips:,} gaps skipping a conversion, {main.restarts:,} over the meter's "
            f"max_gap ({current_meter(config).max_gap * 1000:.2f} ms), each dropping a window; "
            f"longest {main.longest_gap * 1000:.1f} ms; the meter closed {main.windows} windows "
            f"in {s.seconds:.0f} s"),
        Row(NAME, f"CPU of sampling + maths, Sampler.busy_seconds, {during}",
            f"{share(main.busy)} of one core (CurrentMeter {share(main.maths)} of it)",
            f"≤ {TARGET_CPU * 100:g} %", main.busy <= TARGET_CPU),
        Row(NAME, "CPU of sampling + maths, process CPU minus emulator-only run",
            f"{share(s.cpu - idle.cpu)} of one core ({share(s.cpu)} with the Sampler − "
            f"{share(idle.cpu)} for the emulator pulsing alone, {idle.seconds:.0f} s each)",
            f"≤ {TARGET_CPU * 100:g} %", s.cpu - idle.cpu <= TARGET_CPU),
        Row(NAME, f"single-shot fallback (adc.alert_pin 0), {single.seconds:.0f} s",
            f"{(single_delivered - single.repeated) / single.seconds:.1f} usable/s "
            f"({single.repeated} repeats); it polls the chip: busy {share(single_busy)}, "
            f"process CPU {share(single.cpu)} of one core"),
        Row(NAME, f"naive loop: read, sleep 1/{config.adc.data_rate} s, {naive.seconds:.0f} s",
            f"{naive_reads / naive.seconds:.1f} reads/s, {naive.distinct / naive.seconds:.1f} "
            f"distinct/s; {naive.repeated:,} reads repeated a conversion "
            f"({share(naive.repeated / max(1, naive_reads))} of reads), {naive.missed:,} "
            f"conversions skipped ({share(naive.missed / max(1, naive.made))} of {naive.made:,} made)"),
        Row(NAME, "other processes' share of the machine's CPUs",
            f"{share(s.others)} during the Sampler run, {share(idle.others)} during the "
            f"emulator-only run ({CPUS} CPUs)"),
    ]
    return rows


def main() -> None:
    """`python -m bench.acquisition`: the long acquisition run."""
    parser = argparse.ArgumentParser(prog="python -m bench.acquisition", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=SECONDS / 60,
                        help="real-time length of the Sampler run (default %(default)g; the "
                             "issue's full run is 10)")
    parser.add_argument("--fallback-seconds", type=float, default=FALLBACK_SECONDS,
                        help="length of the single-shot and naive runs (default %(default)g)")
    args = parser.parse_args()
    run_alone(lambda: run(args.minutes * 60, args.fallback_seconds))


if __name__ == "__main__":
    main()
