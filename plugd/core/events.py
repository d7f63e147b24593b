"""The event log people read: what happened, to what, and why, kept where it matters.

Pure: the caller passes each event's time. Two rules keep it useful under a
storm (a password guesser, spoofed node ids):

- only identical events (same kind, subject and message) are summarised, as
  one entry with a count, the time of the latest and the latest cause, while
  the latest is under an hour old (a window in seconds, not in entries, so a
  storm folds into one line however it interleaves); "relay on" and "relay
  off", or two nodes, are never merged;
- important kinds (200 entries) and noisy kinds (100) have quotas of their
  own, so no amount of noise pushes a relay, recipe, protection or fault
  event out.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, Final

#: Kinds a person needs to understand what the plug did; the rest (logins, nodes) are noise.
IMPORTANT = frozenset({"relay", "recipe", "protection", "fault", "thing", "config", "meter",
                       "schedule"})
#: Entries kept of the important kinds, and of all others: 300 lines at most, whatever happens.
IMPORTANT_KEPT = 200
NOISE_KEPT = 100
#: An identical event within this many seconds of the last one joins it as a repeat.
REPEAT_WINDOW = 3600
#: `last` when not given: a time no clock reads, since a Pi whose clock is still at 1970 makes
#: genuine times before the firmware's epoch, negative ones.
_SAME_AS_TIME: Final = -(2**63)


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened, as one line of the log. `time`: when, in seconds since 2000
    (the firmware's epoch); `count`: how many identical events the line stands for; `last`:
    when the latest of them happened, `time` itself unless given."""

    time: int
    kind: str
    subject: str
    message: str
    cause: str = ""
    count: int = 1
    last: int = _SAME_AS_TIME

    def __post_init__(self) -> None:
        if self.last == _SAME_AS_TIME:
            object.__setattr__(self, "last", self.time)

    def to_json(self) -> dict[str, Any]:
        """The shape pages and plugctl read."""
        return {"time": self.time, "kind": self.kind, "subject": self.subject,
                "message": self.message, "cause": self.cause, "count": self.count,
                "last": self.last}


class EventLog:
    """The most recent events, each class bounded on its own; iterates in time order."""

    def __init__(self, *, important: int = IMPORTANT_KEPT, noise: int = NOISE_KEPT,
                 repeat_window: int = REPEAT_WINDOW) -> None:
        #: (sequence, event): the sequence merges the two classes back in order.
        self._important: deque[tuple[int, Event]] = deque(maxlen=important)
        self._noise: deque[tuple[int, Event]] = deque(maxlen=noise)
        self._window = repeat_window
        self._sequence = 0

    def add(self, event: Event) -> Event:
        """Keep `event`, or count it as a repeat of the latest identical one; return what is kept."""
        store = self._important if event.kind in IMPORTANT else self._noise
        for index in range(len(store) - 1, -1, -1):
            old = store[index][1]
            if event.time - old.last > self._window:
                break
            if (old.kind, old.subject, old.message) == (event.kind, event.subject, event.message):
                del store[index]
                event = replace(old, count=old.count + event.count, last=event.last,
                                cause=event.cause)
                break
        self._sequence += 1
        store.append((self._sequence, event))
        return event

    def __iter__(self) -> Iterator[Event]:
        """All kept events, oldest first: in the order they were added, so a clock step cannot
        reorder them, and a repeat counts from its latest occurrence."""
        return (event for _, event in heapq.merge(self._important, self._noise))

    def __len__(self) -> int:
        """How many entries are kept (a summarised repeat is one)."""
        return len(self._important) + len(self._noise)

    def __getitem__(self, index: int) -> Event:
        """The entry at `index` in time order (`log[-1]` is the latest)."""
        return list(self)[index]
