"""Run the fuzz harnesses, one door at a time, each in a process of its own.

    python -m fuzz [--seconds N] [door ...]

Each harness runs under libFuzzer (atheris) for its share of time, keeps what
it learns in `fuzz/corpus/<door>/` (the hand-written `fuzz/seeds/<door>/` are
read too), writes crashing inputs to `fuzz/crashes/<door>/` and its output to
`fuzz/logs/<door>.log`. A crash ends a libFuzzer run; the runner then starts it
again for the time left, so one session can find several. The summary counts
executions and crashes per door; the exit status is 1 when any door crashed.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DOORS = ("wire", "api", "config")
#: Seconds a single input may take before libFuzzer calls it a hang.
INPUT_TIMEOUT = 30


@dataclasses.dataclass
class Outcome:
    """A fuzzing run's result for one door."""
    door: str
    seconds: float = 0.0
    executions: int = 0
    crashes: list[str] = dataclasses.field(default_factory=list)


def _tokens(door: str) -> list[str]:
    """Words worth splicing into inputs: the protocol's separators, command and key names."""
    if door == "wire":
        return ["&", ":", "\0", "nan", "inf", "-inf", "1e999", ".", "-", " - ", "2147483647",
                "2147483648", "777:Kitchen", "&5:", "13:05:09 - 24.11.2026"]
    if door == "api":
        from plugd.core.model import Recipe, Relation, Thing, ThingType
        from plugd.doors.api import COMMANDS
        from plugd.doors.api.simulation import COMMANDS as SIMULATION
        from plugd.service.settings import KEYS

        recipe = Recipe(1, "r", 1, 1, 0.0, Relation.EQUALS, 1, 0.0, 0.0).to_json()
        thing = Thing(1, "t", ThingType.SWITCH).to_json()
        keys = {*recipe, *thing, "command", "thing", "recipe", "settings", "config", "version",
                "things", "recipes", "calibration", "state", "what", "value", "watts", "index",
                "id", "token", "password", "old", "new"}
        return ([f'"{name}"' for name in {**COMMANDS, **SIMULATION}] + [f'"{key}":' for key in sorted(keys)]
                + [f'"{key}"' for key in KEYS]
                + ["NaN", "Infinity", "-Infinity", "1e400", "null", "true", "[", "{", "\\u0000"])
    from plugd.service.config import Config

    words = []
    for section in dataclasses.fields(Config):
        if section.name == "simulated":
            continue
        words.append(f"[{section.name}]")
        words += [f"{key} = " for key in vars(section.default_factory())]  # type: ignore[misc]
    return [*words, "nan", "inf", "true", "[", "]", "{", "}", "'''", '"""', "0x", "1979-05-27"]


def _dictionary(door: str, path: Path) -> Path:
    escaped = (word.encode().decode("latin-1").encode("unicode_escape").decode().replace('"', '\\"')
               for word in _tokens(door))
    path.write_text("".join(f'"{word}"\n' for word in escaped))
    return path


def _executions(output: str) -> int:
    final = re.findall(r"stat::number_of_executed_units: (\d+)", output)
    if final:
        return int(final[-1])
    progress = re.findall(r"^#(\d+)\s", output, re.MULTILINE)
    return int(progress[-1]) if progress else 0


def _crash(output: str) -> str | None:
    """`<artifact>: <exception line>` when the run ended on a crash."""
    written = re.search(r"Test unit written to (\S+)", output)
    if written is None:
        return None
    before = output[:written.start()]
    raised = re.findall(r"=== Uncaught Python exception: ===\n(.*)", before)
    reason = raised[-1] if raised else ("a hang" if "ERROR: libFuzzer: timeout" in before
                                        else "see the log")
    return f"{written.group(1)}: {reason[:200]}"


def run(door: str, seconds: float) -> Outcome:
    """Fuzz one door for `seconds` in a process of its own, from its seeds and corpus."""
    corpus, seeds = HERE / "corpus" / door, HERE / "seeds" / door
    crashes, logs = HERE / "crashes" / door, HERE / "logs"
    for directory in (corpus, seeds, crashes, logs):
        directory.mkdir(parents=True, exist_ok=True)
    dictionary = _dictionary(door, logs / f"{door}.dict")
    outcome = Outcome(door)
    started = time.monotonic()
    with open(logs / f"{door}.log", "w") as log:
        while (left := seconds - (time.monotonic() - started)) >= 1:
            command = [sys.executable, "-m", f"fuzz.{door}", str(corpus), str(seeds),
                       f"-max_total_time={int(left)}", f"-timeout={INPUT_TIMEOUT}",
                       f"-artifact_prefix={crashes}/", f"-dict={dictionary}",
                       "-print_final_stats=1"]
            done = subprocess.run(command, cwd=HERE.parent, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, errors="replace")
            log.write(done.stdout)
            outcome.executions += _executions(done.stdout)
            crash = _crash(done.stdout)
            if crash is None:
                if done.returncode != 0:
                    outcome.crashes.append(f"exit status {done.returncode}, see {log.name}")
                break
            outcome.crashes.append(crash)
    outcome.seconds = time.monotonic() - started
    return outcome


def main(argv: list[str] | None = None) -> int:
    """`python -m fuzz`: every door in turn; 1 when one crashed."""
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=300, help="time per door (default 300)")
    parser.add_argument("doors", nargs="*", metavar="door",
                        help=f"which to run: {', '.join(DOORS)} (default all)")
    args = parser.parse_args(argv)
    unknown = [door for door in args.doors if door not in DOORS]
    if unknown:
        parser.error(f"no door {unknown[0]!r} (choose from {', '.join(DOORS)})")
    outcomes = []
    for door in args.doors or DOORS:
        print(f"fuzzing {door} for {args.seconds:g} s ...", flush=True)
        outcomes.append(outcome := run(door, args.seconds))
        print(f"  {outcome.executions} inputs, {len(outcome.crashes)} crashes", flush=True)
    print(f"\n{'door':8} {'seconds':>8} {'inputs':>12} {'crashes':>8} {'distinct':>8}")
    for outcome in outcomes:
        # A restarted run may find the same fault again: distinct counts the exceptions.
        distinct = len({crash.partition(": ")[2] for crash in outcome.crashes})
        print(f"{outcome.door:8} {outcome.seconds:8.0f} {outcome.executions:12d} "
              f"{len(outcome.crashes):8d} {distinct:8d}")
        for crash in outcome.crashes:
            print(f"    {crash}")
    return 1 if any(o.crashes for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
