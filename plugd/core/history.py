"""Energy and power history: the pure arithmetic of buckets, rollups, retention and cost.

Nothing here reads a clock or a file: times are passed in as seconds since the
Unix epoch (UTC) and the local time zone as a `tzinfo`, so every result can be
reproduced in a test, across DST changes too.

A bucket is named by its start. Minutes are UTC minutes. Hours, days and
months are local ones: a local day lasts 23 or 25 hours on the days of a DST
change, the repeated hour of an autumn change is two buckets (its two starts
differ), and in a zone whose change is not a whole hour an hour bucket may last
30 or 90 minutes. Every local offset in use is a whole number of minutes, so a
minute lies within one hour, one day and one month: minutes roll up exactly.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from plugd.core.model import describe
from plugd.errors import ValidationError

#: The periods of the energy history, finest first.
PERIODS = ("minute", "hour", "day", "month")
MINUTE = 60
HOUR = 3600
DAY = 86400
#: How long each period's buckets are kept (seconds; None: for good).
RETENTION: dict[str, int | None] = {"minute": 2 * DAY, "hour": 731 * DAY, "day": None, "month": None}
#: The power history's longest range (seconds): the minutes kept.
MAX_POWER_RANGE = 2 * DAY
#: Ranges up to this (seconds) are answered from the last readings, one point a second.
SECONDS_RANGE = 600


def _local(t: float, tz: datetime.tzinfo) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(t, tz)


def _midnight(day: datetime.date, tz: datetime.tzinfo) -> int:
    """The first instant of a local date (fold 0: a midnight skipped by DST maps to the jump)."""
    return int(datetime.datetime(day.year, day.month, day.day, tzinfo=tz).timestamp())


def bucket_start(period: str, t: float, tz: datetime.tzinfo) -> int:
    """The start of the `period` bucket holding instant `t` (seconds since the epoch)."""
    if period == "minute":
        return int(t // MINUTE * MINUTE)
    local = _local(t, tz)
    if period == "hour":
        # The truncated wall time keeps the fold: the second pass of a repeated hour is its own.
        # A jump of less than an hour (Lord Howe) makes the hour's start a wall time that does
        # not exist: fold 0 maps it to the jump, where the bucket then begins.
        return int(local.replace(minute=0, second=0, microsecond=0).timestamp())
    if period == "day":
        return _midnight(local.date(), tz)
    if period == "month":
        return _midnight(local.date().replace(day=1), tz)
    raise ValueError(f"unknown period {period!r}")


def next_start(period: str, start: int, tz: datetime.tzinfo) -> int:
    """The start of the bucket after the one starting at `start`."""
    if period == "minute":
        return start + MINUTE
    if period == "hour":
        probe = start + HOUR
        while bucket_start("hour", probe, tz) <= start:  # a 90-minute hour (Lord Howe)
            probe += 30 * MINUTE
        return bucket_start("hour", probe, tz)
    day = _local(start, tz).date()
    if period == "day":
        return _midnight(day + datetime.timedelta(days=1), tz)
    if period == "month":
        year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
        return _midnight(datetime.date(year, month, 1), tz)
    raise ValueError(f"unknown period {period!r}")


def starts(period: str, first: float, last: float, tz: datetime.tzinfo) -> list[int]:
    """Every bucket start from the bucket holding `first` up to the one holding `last`."""
    found: list[int] = []
    start = bucket_start(period, first, tz)
    while start <= last:
        found.append(start)
        start = next_start(period, start, tz)
    return found


def rollup(buckets: Mapping[int, float], period: str, tz: datetime.tzinfo) -> dict[int, float]:
    """Finer buckets (by start) summed into `period` buckets: the total is kept."""
    out: dict[int, float] = {}
    for start, value in buckets.items():
        key = bucket_start(period, start, tz)
        out[key] = out.get(key, 0.0) + value
    return out


def prune_before(period: str, now: float) -> float | None:
    """Buckets of `period` starting before this are past their retention (None: kept for good)."""
    keep = RETENTION[period]
    return None if keep is None else now - keep


def cost(wh: float, price_per_kwh: float) -> float:
    """What `wh` watt-hours cost at `price_per_kwh`, to a hundredth of a cent."""
    return round(wh / 1000.0 * price_per_kwh, 4)


def local_text(start: int, tz: datetime.tzinfo) -> str:
    """A bucket's start as local time with its offset, e.g. 2026-10-25T02:00:00+01:00: the two
    passes of a repeated hour read apart."""
    return _local(start, tz).isoformat(timespec="seconds")


@dataclass(slots=True)
class Minute:
    """What one minute saw: its energy and its valid power readings (mean, lowest, highest)."""

    wh: float = 0.0
    count: int = 0
    watts_sum: float = 0.0
    low: float = math.inf
    high: float = -math.inf

    def add(self, wh: float, watts: float | None) -> None:
        """One reading: the energy since the reading before, and its power (None: invalid)."""
        self.wh += wh
        if watts is not None:
            self.count += 1
            self.watts_sum += watts
            self.low = min(self.low, watts)
            self.high = max(self.high, watts)

    def merge(self, other: Minute) -> None:
        """Add what another part of the same minute saw (a part kept back by a failed write)."""
        self.wh += other.wh
        self.count += other.count
        self.watts_sum += other.watts_sum
        self.low = min(self.low, other.low)
        self.high = max(self.high, other.high)

    def power(self) -> tuple[float | None, float | None, float | None]:
        """Mean, lowest and highest power in W; None each when no reading was valid."""
        if not self.count:
            return None, None, None
        return self.watts_sum / self.count, self.low, self.high


def add_minutes(into: dict[int, Minute], more: Mapping[int, Minute]) -> None:
    """Merge `more` into `into`, minute by minute."""
    for start, minute in more.items():
        mine = into.get(start)
        if mine is None:
            into[start] = Minute(minute.wh, minute.count, minute.watts_sum, minute.low, minute.high)
        else:
            mine.merge(minute)


# --- requests -----------------------------------------------------------------------------------


def _time(msg: Mapping[str, Any], key: str) -> float | None:
    value = msg.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValidationError(key, f"expected seconds since 1970 (UTC), got {describe(value)}")
    return float(value)


@dataclass(frozen=True, slots=True)
class EnergyQuery:
    """A checked `request_energy`: the period and the range of bucket starts, [first, last)."""

    period: str
    first: float = -math.inf
    last: float = math.inf

    @classmethod
    def parse(cls, msg: Mapping[str, Any]) -> EnergyQuery:
        """`period` (required) and the optional `from` and `to`; a ValidationError names the field."""
        if "period" not in msg:
            raise ValidationError("period", f"is missing; expected one of {', '.join(PERIODS)}")
        period = msg["period"]
        if period not in PERIODS:
            raise ValidationError("period", f"expected one of {', '.join(PERIODS)}, got {describe(period)}")
        first, last = _time(msg, "from"), _time(msg, "to")
        if first is not None and last is not None and last < first:
            raise ValidationError("to", f"must not be before from ({first:g}), got {last:g}")
        return cls(period, -math.inf if first is None else first, math.inf if last is None else last)

    def holds(self, start: float) -> bool:
        """Whether the bucket starting at `start` is asked for."""
        return self.first <= start < self.last


def power_range(msg: Mapping[str, Any]) -> int:
    """The `range` of a `request_history`, in seconds (default: the last 10 minutes)."""
    value = msg.get("range", SECONDS_RANGE)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValidationError("range", f"expected seconds, got {describe(value)}")
    if not 1 <= value <= MAX_POWER_RANGE:
        raise ValidationError("range", f"must be between 1 and {MAX_POWER_RANGE} seconds (two days), "
                                       f"got {value:g}")
    return int(value)


def power_points(minutes: Mapping[int, Minute], first: int, last: int
                 ) -> list[tuple[int, float | None, float | None, float | None]]:
    """One point a minute from `first` to `last` (minute starts): (start, mean, low, high), None
    where nothing was read, so a chart shows the gap."""
    points = []
    for start in range(first, last + 1, MINUTE):
        minute = minutes.get(start)
        points.append((start, *(minute.power() if minute else (None, None, None))))
    return points


def total(buckets: Iterable[tuple[int, float]]) -> float:
    """The energy of some buckets, in Wh."""
    return math.fsum(wh for _, wh in buckets)
