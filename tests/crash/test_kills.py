"""SIGKILL at random moments: every acknowledged change survives, every file still parses.

The suite runs a few dozen kills; `python -m tests.crash --kills 1000` (make crash)
runs the long one. PLUGD_CRASH_SEED replays a failed run, PLUGD_CRASH_KILLS sets
how many kills.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .kills import check_files, run
from .ledger import ABSENT, Ledger

SEED = int(os.environ.get("PLUGD_CRASH_SEED", "20261126"))
KILLS = int(os.environ.get("PLUGD_CRASH_KILLS", "25"))


@pytest.mark.timeout(600)
async def test_acknowledged_changes_survive_sigkill(tmp_path: Path) -> None:
    print(f"crash seed {SEED} (PLUGD_CRASH_SEED={SEED} replays it)")
    summary = await run(tmp_path, KILLS, SEED)
    print(summary)
    assert summary.kills == KILLS
    assert summary.acknowledged >= KILLS  # the streams did run between the kills
    assert not summary.failures, "\n".join([str(summary), *summary.failures])


# --- the checks themselves ----------------------------------------------------------------


def test_the_last_acknowledged_value_must_stand() -> None:
    ledger = Ledger({("relay",): 0.0})
    for value in (1.0, 0.0):
        ledger.answer(ledger.send(("relay",), value), ok=True)
    assert ledger.check({("relay",): 0.0}) == []
    assert "found 1.0" in ledger.check({("relay",): 1.0})[0]  # superseded


def test_a_change_in_flight_may_stand_and_a_refused_one_never() -> None:
    ledger = Ledger({("relay",): 0.0})
    ledger.answer(ledger.send(("relay",), 1.0), ok=True)
    ledger.answer(ledger.send(("relay",), 0.5), ok=False)
    ledger.send(("relay",), 0.0)  # the kill came before its answer
    assert ledger.check({("relay",): 0.0}) == []
    assert ledger.check({("relay",): 1.0}) == []
    assert ledger.check({("relay",): 0.5})


def test_a_change_running_alongside_the_last_acknowledged_may_stand() -> None:
    ledger = Ledger({("override",): False})
    slow = ledger.send(("override",), True)
    fast = ledger.send(("override",), False)
    ledger.answer(slow, ok=True)  # the daemon may have applied `fast` after `slow`
    ledger.answer(fast, ok=True)
    assert ledger.check({("override",): True}) == []
    early = ledger.send(("override",), True)
    ledger.answer(early, ok=True)
    ledger.answer(ledger.send(("override",), False), ok=True)
    assert ledger.check({("override",): True})  # `early` was answered before the last was sent


def test_without_an_acknowledgement_the_old_value_or_one_sent_may_stand() -> None:
    ledger = Ledger({("recipe", 3): "old"})
    ledger.send(("recipe", 3), ABSENT)
    assert ledger.check({("recipe", 3): "old"}) == []
    assert ledger.check({}) == []  # the delete landed
    assert ledger.check({("recipe", 3): "other"})


def test_an_unanswered_new_recipe_may_appear_under_any_id() -> None:
    ledger = Ledger({})
    ledger.send(None, "c1")
    new = ledger.send(None, "c2")
    ledger.answer(new, ok=True, key=("recipe", 1))
    assert ledger.check({("recipe", 1): "c2", ("recipe", 2): "c1"}) == []
    assert ledger.check({}) == ["recipe/1: found None, expected one of ['c2', 'c1'] "
                                "(at start None; 'c2' sent@2 ok@3)"]
    assert ledger.check({("recipe", 1): "c2", ("recipe", 2): "c9"})


def test_files_set_aside_unreadable_or_left_over_are_reported(tmp_path: Path) -> None:
    (tmp_path / "things.json").write_text("[]")
    assert check_files(tmp_path) == []
    (tmp_path / "recipes.json").write_text('[{"id": ')
    (tmp_path / "nodes.json.corrupt-20260101T000000").write_text("")
    (tmp_path / ".things.json.7.tmp").write_text("")
    (tmp_path / ".things.json.8.tmp").write_text("")
    problems = check_files(tmp_path, live=8)
    assert [p.split(":")[0] for p in problems] == [".things.json.7.tmp",
                                                    "nodes.json.corrupt-20260101T000000",
                                                    "recipes.json does not parse"]
