"""What a killed daemon must still hold: the changes it acknowledged, and which values may stand.

Every change sent is recorded with two ticks of one logical clock: when it was
sent and when its answer arrived (none if the kill came first). For each key
(the relay, its override flag, a setting, a recipe id) the value found after
the restart must be:

- with at least one acknowledged change of the key: the value of the last
  acknowledged one, A (the latest answer), or of any change of the key whose
  answer had not arrived before A was sent (it ran alongside A or after it,
  so the daemon may have applied it later); a change answered before A was
  sent is superseded and must not be what stands;
- with none acknowledged: the value found at the last start, or the value of
  any change of the key sent since (whether it landed is unknown).

Refused changes (an error answer) may never stand. A new recipe whose answer
did not arrive has an id nobody knows: its unique name may stand under any id.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any

Key = tuple[Hashable, ...]
#: The value of a recipe key when there is no such recipe.
ABSENT = None


@dataclass
class Change:
    key: Key | None  # None: a new recipe, until its answer gives the id
    value: Any
    sent: int
    answered: int | None = None
    ok: bool | None = None  # None: no answer arrived


class Ledger:
    def __init__(self, baseline: dict[Key, Any]) -> None:
        self.baseline = dict(baseline)
        self.changes: list[Change] = []
        self._clock = 0

    def _tick(self) -> int:
        self._clock += 1
        return self._clock

    def send(self, key: Key | None, value: Any) -> Change:
        change = Change(key, value, self._tick())
        self.changes.append(change)
        return change

    def answer(self, change: Change, ok: bool, key: Key | None = None) -> None:
        change.answered = self._tick()
        change.ok = ok
        if key is not None:
            change.key = key

    @property
    def acknowledged(self) -> list[Change]:
        return [c for c in self.changes if c.ok]

    def allowed(self, key: Key) -> list[Any]:
        """The values that may stand for `key` after the kill."""
        mine = [c for c in self.changes if c.key == key and c.ok is not False]
        acked = [c for c in mine if c.ok]
        if acked:
            last = max(acked, key=lambda c: c.answered or 0)
            values = [c.value for c in mine
                      if c.answered is None or c.answered >= last.sent]
        else:
            values = [self.baseline.get(key, ABSENT), *(c.value for c in mine)]
        if key[0] == "recipe":
            values += [c.value for c in self.changes if c.key is None and c.ok is None]
        return values

    def check(self, observed: dict[Key, Any]) -> list[str]:
        """Every key whose value after the restart is not one that may stand."""
        keys: set[Key] = set(self.baseline) | set(observed)
        keys.update(c.key for c in self.changes if c.key is not None)
        problems = []
        for key in sorted(keys, key=repr):
            found = observed.get(key, ABSENT)
            allowed = self.allowed(key)
            if found not in allowed:
                problems.append(f"{'/'.join(map(str, key))}: found {found!r}, expected one of "
                                f"{_unique(allowed)!r} ({self._story(key)})")
        return problems

    def _story(self, key: Key) -> str:
        told = [f"{c.value!r} sent@{c.sent} " + ("no answer" if c.ok is None else
                                                  f"{'ok' if c.ok else 'refused'}@{c.answered}")
                for c in self.changes if c.key == key]
        return f"at start {self.baseline.get(key, ABSENT)!r}; " + ", ".join(told)


def _unique(values: Iterable[Any]) -> list[Any]:
    return list(dict.fromkeys(values))
