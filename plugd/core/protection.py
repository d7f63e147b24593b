"""Overload protection: a pure state machine that says when to switch the load off.

It keeps no clock: every reading comes with its monotonic time, so the
daemon, a test and a replay of old readings see the same decisions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from plugd.errors import ValidationError

#: Readings `hold` seconds apart count as held despite the rounding of float times.
EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class Trip:
    """Why and when the protection switched the load off."""

    reason: str  # e.g. "power 3120 W above max_power 3000 W for 2.0 s"
    kind: str  # "power" or "current"
    at: float


class _Limit:
    """One limit and since when the readings have stayed above it."""

    __slots__ = ("kind", "limit", "since", "unit")

    def __init__(self, kind: str, unit: str, limit: float | None) -> None:
        self.kind = kind
        self.unit = unit
        self.limit = limit
        self.since: float | None = None

    def watch(self, value: float | None, t: float, hold: float) -> Trip | None:
        if self.limit is None or value is None or math.isnan(value):
            return None
        if value <= self.limit:
            self.since = None
            return None
        if self.since is None or t < self.since:
            self.since = t
        held = t - self.since
        if held + EPSILON < hold:
            return None
        shown = f"{value:.1f}" if value < 100 else f"{value:.0f}"
        return Trip(f"{self.kind} {shown} {self.unit} above max_{self.kind} {self.limit:g} "
                    f"{self.unit} for {held:.1f} s", self.kind, t)


class Protection:
    """Trips when power or current stays above its limit for `hold` seconds.

    "Stays above" means every valid reading since the first one above the
    limit was above it; a reading at or below the limit restarts the count.
    An invalid reading (None or NaN) neither trips nor restarts the count: a
    sensor that drops out during an overload must not hold the trip off for
    ever, and a missing value is no evidence of an overload. With both limits
    None (the default) it never trips.

    Once tripped it stays tripped, reporting nothing more, until `clear`
    (a user, or the caller when `may_retry` allows an automatic retry).
    Readings timed at or before the clear are ignored: they describe the load
    from before it.
    """

    def __init__(self, max_power: float | None = None, max_current: float | None = None,
                 hold: float = 2.0, retry_after: float | None = None) -> None:
        self._limits = (_Limit("power", "W", _optional("max_power", max_power)),
                        _Limit("current", "A", _optional("max_current", max_current)))
        self.hold = _seconds("hold", hold, zero_ok=True)
        self.retry_after = None if retry_after is None else _seconds("retry_after", retry_after)
        self._trip: Trip | None = None
        self._cleared_at = -math.inf

    @property
    def max_power(self) -> float | None:
        """The power limit in W, or None for none."""
        return self._limits[0].limit

    @property
    def max_current(self) -> float | None:
        """The current limit in A, or None for none."""
        return self._limits[1].limit

    @property
    def trip(self) -> Trip | None:
        """The trip in force, or None."""
        return self._trip

    @property
    def tripped(self) -> bool:
        """True while the load must stay off."""
        return self._trip is not None

    def check(self, power: float | None, current: float | None, t: float) -> Trip | None:
        """One reading; returns the Trip at the moment it trips, else None."""
        t = _time(t)
        if self._trip is not None or t <= self._cleared_at:
            return None
        power_limit, current_limit = self._limits
        hold = self.hold
        self._trip = power_limit.watch(power, t, hold) or current_limit.watch(current, t, hold)
        return self._trip

    def clear(self, t: float) -> None:
        """Allow the load again from `t` on; the counts start afresh."""
        self._cleared_at = _time(t)
        self._trip = None
        for limit in self._limits:
            limit.since = None

    def may_retry(self, t: float) -> bool:
        """True when tripped, `retry_after` is set and that long has passed since the trip."""
        t = _time(t)
        trip = self._trip
        return (trip is not None and self.retry_after is not None
                and t - trip.at + EPSILON >= self.retry_after)


def _optional(field: str, value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValidationError(field, f"expected a finite number or None, got {value!r}")
    if value <= 0:
        raise ValidationError(field, f"must be above 0 (None: no limit), got {value:g}")
    return float(value)


def _seconds(field: str, value: float, *, zero_ok: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValidationError(field, f"expected a finite number of seconds, got {value!r}")
    if value < 0 or (value == 0 and not zero_ok):
        bound = "at least 0" if zero_ok else "above 0"
        raise ValidationError(field, f"must be {bound} seconds, got {value:g}")
    return float(value)


def _time(t: float) -> float:
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
        raise ValidationError("t", f"expected a finite monotonic time, got {t!r}")
    return t
