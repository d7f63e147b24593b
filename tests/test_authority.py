"""The relay's authority, exhaustively: every writer, direction, trip and override."""

import itertools

import pytest

from plugd.core.authority import AUTOMATIC, PEOPLE, Source, decide

KINDS = [s.value for s in Source] + ["mesh", "display"]


@pytest.mark.parametrize("kind, relay, on, tripped, override", list(itertools.product(
    KINDS, [True, False], [True, False], [None, "power 3100 W above max_power 3000 W"], [True, False])))
def test_the_table(kind, relay, on, tripped, override):
    verdict = decide(kind, relay=relay, on=on, tripped=tripped, override=override)
    source = Source(kind) if kind in Source._value2member_map_ else None
    if relay and on and tripped:
        # a trip wins: only a person or the protection's own retry switches the relay on again
        assert verdict.allowed == (source is Source.PROTECTION or source in PEOPLE)
        assert verdict.clears_trip == verdict.allowed
        if not verdict.allowed:
            assert "protection holds the relay off" in verdict.refusal and tripped in verdict.refusal
    elif override and source in AUTOMATIC:
        assert not verdict.allowed and "override" in verdict.refusal
    else:  # the latest event wins
        assert verdict.allowed and not verdict.clears_trip and verdict.refusal == ""


def test_switching_off_is_never_held_by_a_trip():
    for kind in KINDS:
        assert decide(kind, relay=True, on=False, tripped="overload", override=False).allowed
