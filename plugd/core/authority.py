"""Who may set a local thing, the relay above all: the one place that decides.

Every writer of a thing (a person on the page or plugctl, a recipe, the
protection, and the schedules, auto-off, MQTT and HTTP commands that come
next) names itself through its cause's kind, and `decide` answers whether the
change goes through. The order, strongest first:

1. a protection trip: the relay stays off until a person switches it on (or
   the protection's own retry does);
2. `override`: a person pinned the thing; nothing automatic changes it;
3. otherwise the latest event wins, whoever made it.

Pure: no clock, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Source(StrEnum):
    """Who asks for a change; the values are the kinds of `plugd.core.plug.Cause`."""

    PROTECTION = "protection"
    USER = "user"
    MQTT = "mqtt"
    HTTP = "http"
    RECIPE = "recipe"
    SCHEDULE = "schedule"
    AUTO_OFF = "auto-off"
    START = "start"
    SENSOR = "sensor"
    CLOCK = "clock"


#: A person's own command, by whatever door it came: it may lift a trip and ignores override.
PEOPLE = frozenset({Source.USER, Source.MQTT, Source.HTTP})
#: Writers that act on their own: an override pins a thing against them.
AUTOMATIC = frozenset({Source.RECIPE, Source.SCHEDULE, Source.AUTO_OFF})
#: Writers of measured values (power, energy, the clock): they set only those.
MEASURING = frozenset({Source.SENSOR, Source.CLOCK})


@dataclass(frozen=True, slots=True)
class Verdict:
    """The answer to one request: `allowed`, whether it lifts a trip, and why not when refused."""

    allowed: bool
    clears_trip: bool = False
    refusal: str = ""


ALLOWED = Verdict(True)


def source_of(kind: str) -> Source | None:
    """The source a cause's kind names, or None for kinds outside the table (mesh, display)."""
    try:
        return Source(kind)
    except ValueError:
        return None


def decide(kind: str, *, relay: bool, on: bool, tripped: str | None, override: bool) -> Verdict:
    """Whether a writer of kind `kind` may set a thing (`relay`: it is the relay; `on`: to on).

    `tripped` is the protection's reason while it holds the relay off, and
    `override` the thing's pin. Kinds outside the table (a start-up value,
    say) are allowed: they are not writers that compete.
    """
    source = source_of(kind)
    if relay and on and tripped is not None:
        if source is Source.PROTECTION or source in PEOPLE:
            return Verdict(True, clears_trip=True)
        return Verdict(False, refusal=f"the protection holds the relay off ({tripped})")
    if override and source in AUTOMATIC:
        return Verdict(False, refusal="override is on: a person pinned it")
    return ALLOWED

