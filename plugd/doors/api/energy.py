"""The energy history: `request_energy`, its answer shared with `GET /api/energy`, and the CSV.

Buckets are `[start, Wh]`, start in seconds since 1970 (UTC), oldest first;
hours, days and months are local ones. Only buckets the plug measured in are
listed (a plug that was off has none for that time), and the current one
includes what is not written yet.
"""

from __future__ import annotations

import csv
import io
import math
from typing import TYPE_CHECKING, Any

from plugd.core import history
from plugd.core.history import EnergyQuery
from plugd.core.model import ESP_EPOCH
from plugd.doors.api.base import Api, command

if TYPE_CHECKING:
    from plugd.doors.api.base import Host


async def energy_answer(host: Host, msg: dict[str, Any]) -> dict[str, Any]:
    """The fields of a `response_energy` for the request `msg`; ValidationError names a bad field."""
    query = EnergyQuery.parse(msg)
    store = host.energy_history
    buckets = [] if store is None else await store.energy(query)
    price = host.config.energy
    total = history.total(buckets)
    return {"period": query.period, "buckets": [[start, round(wh, 4)] for start, wh in buckets],
            "totalWh": round(total, 4), "pricePerKwh": price.price_per_kwh,
            "currency": price.currency, "cost": history.cost(total, price.price_per_kwh)}


def energy_csv(host: Host, answer: dict[str, Any]) -> str:
    """An answer as CSV: a header, then a row per bucket (local start time, Wh, cost)."""
    out = io.StringIO()
    rows = csv.writer(out, lineterminator="\r\n")
    rows.writerow(["start", "wh", "cost"])
    tz = host.energy_history.tz if host.energy_history is not None else None
    price = answer["pricePerKwh"]
    for start, wh in answer["buckets"]:
        when = history.local_text(start, tz) if tz is not None else str(start)
        rows.writerow([when, f"{wh:.4f}", f"{history.cost(wh, price):.4f}"])
    return out.getvalue()


@command("request_energy")
async def _request_energy(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    """Energy per minute, hour, day or month, optionally `from`/`to` (bucket starts, s)."""
    return api.answer("response_energy", **await energy_answer(api.host, msg))


async def power_history(api: Api, span: int) -> list[list[float | None]]:
    """Per minute for the last `span` seconds: [seconds since 2000, mean W, lowest, highest]."""
    store = api.host.energy_history
    last = int(api.plug.wall() // history.MINUTE * history.MINUTE)
    first = last - math.ceil(span / history.MINUTE) * history.MINUTE + history.MINUTE
    minutes = {} if store is None else await store.power(first, last)
    return [[start - ESP_EPOCH, *(None if v is None else round(v, 2) for v in values)]
            for start, *values in history.power_points(minutes, first, last)]
