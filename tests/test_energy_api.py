"""The energy history in a running daemon: the simulated load's energy in request_energy, in
GET /api/energy and its CSV, the power history of request_history with a range, bad requests
naming their field, and the history kept across a restart."""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from conftest import Client
from websockets.asyncio.client import connect

from plugd.core import history
from plugd.core.model import ESP_EPOCH, ThingId
from plugd.service.daemon import Daemon
from tests.support import until
from tests.test_http_api import call

LOAD = 3600.0  # W: a Wh a second


async def readings(d: Daemon, count: int) -> None:
    """Wait for the meter's next `count` readings (a reading of the same value changes no thing)."""
    assert d.meter is not None
    for _ in range(count):
        seen = d.meter.last
        await until(lambda: d.meter is not None and d.meter.last is not seen, "a reading")


@pytest.fixture
async def metered(make_daemon: Any) -> AsyncIterator[tuple[Daemon, Client]]:
    """A daemon whose load drew some energy and is off again (nothing more is counted)."""
    d = await make_daemon(**{"simulate.load_watts": LOAD, "energy.price_per_kwh": 0.25,
                             "energy.currency": "EUR"})
    async with connect(f"ws://127.0.0.1:{d.web.port}/ws") as ws:
        client = Client(ws)
        assert (await client.ask({"command": "login", "token": d.auth.cli_token}))["success"]
        assert (await client.ask({"command": "switch", "state": "on"}))["success"]
        await until(lambda: d.plug.things[ThingId.ENERGY_TODAY].value > 3.0, "a few Wh")
        assert (await client.ask({"command": "switch", "state": "off"}))["success"]
        await until(lambda: d.plug.things[ThingId.POWER].value == 0.0, "no power")
        await readings(d, 2)  # the span down to 0 W is counted; after it, nothing more
        yield d, client


def today(d: Daemon) -> int:
    assert d.energy_history is not None
    return history.bucket_start("day", d.wall(), d.energy_history.tz)


async def test_todays_hours_add_up_to_the_energy_today(metered: tuple[Daemon, Client]) -> None:
    d, client = metered
    energy_today = d.plug.things[ThingId.ENERGY_TODAY].value
    answer = await client.ask({"command": "request_energy", "period": "hour"})
    assert answer["command"] == "response_energy" and answer["period"] == "hour"
    hours = [wh for start, wh in answer["buckets"] if start >= today(d)]
    assert sum(hours) == pytest.approx(energy_today, rel=0.005)
    assert all(isinstance(start, int) and isinstance(wh, float) for start, wh in answer["buckets"])
    for period in ("minute", "day", "month"):
        answer = await client.ask({"command": "request_energy", "period": period})
        assert sum(wh for _, wh in answer["buckets"]) == pytest.approx(energy_today, rel=0.005)
    assert d.meter is not None
    total_wh = d.meter.energy.total_kwh * 1000  # the thing itself is rounded to 0.1 Wh
    assert answer["totalWh"] == pytest.approx(total_wh, rel=0.005)
    assert answer["cost"] == pytest.approx(answer["totalWh"] / 1000 * 0.25, abs=1e-4)
    assert answer["currency"] == "EUR"


@pytest.mark.parametrize("request_, field", [
    ({"command": "request_energy"}, "period"),
    ({"command": "request_energy", "period": "week"}, "period"),
    ({"command": "request_energy", "period": "day", "from": "monday"}, "from"),
    ({"command": "request_energy", "period": "day", "from": 10, "to": 5}, "to"),
    ({"command": "request_history", "range": 10**9}, "range"),
    ({"command": "request_history", "range": "1h"}, "range"),
])
async def test_bad_requests_name_the_field(client: Client, request_: dict[str, Any], field: str) -> None:
    answer = await client.ask(request_)
    assert answer["command"] == "error" and answer["error"].startswith(f"{field}:"), answer


async def test_the_power_history_spans_an_hour_a_day_two_days(metered: tuple[Daemon, Client]) -> None:
    d, client = metered
    old = await client.ask({"command": "request_history"})
    assert set(old) == {"command", "nodeId", "nodeName", "history"}  # the 10-minute answer stays
    assert all(len(point) == 2 for point in old["history"])
    for span in (3600, 86400, 172800):
        answer = await client.ask({"command": "request_history", "range": span})
        points = answer["history"]
        assert answer["step"] == 60 and len(points) == span // 60
        assert all(b - a == 60 for (a, *_), (b, *_) in itertools.pairwise(points))
        assert points[-1][0] + ESP_EPOCH <= d.wall() < points[-1][0] + ESP_EPOCH + 60
        loaded = [p for p in points if p[3] is not None and p[3] > LOAD / 2]
        assert loaded, points[-5:]  # the minutes the load drew show its power
        assert all(p[2] <= p[1] <= p[3] for p in points if p[1] is not None)
    short = await client.ask({"command": "request_history", "range": 60})
    assert short["step"] == 1 and len(short["history"]) <= 60


async def test_the_http_api_and_the_csv_give_the_same_buckets(metered: tuple[Daemon, Client]) -> None:
    d, client = metered
    answer = await client.ask({"command": "request_energy", "period": "hour"})
    status, headers, body = await call(d, "GET", "/api/energy?period=hour")
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert json.loads(body)["buckets"] == answer["buckets"]
    status, headers, body = await call(d, "GET", f"/api/energy.csv?period=day&from={today(d)}")
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(body.decode())))
    assert table[0] == ["start", "wh", "cost"]
    (row,) = table[1:]
    assert row[0].endswith(("+00:00", "Z")) or row[0][-6] in "+-"  # local time with its offset
    assert float(row[1]) == pytest.approx(d.plug.things[ThingId.ENERGY_TODAY].value, rel=0.005)
    assert float(row[2]) == pytest.approx(float(row[1]) / 1000 * 0.25, abs=1e-4)
    status, _, body = await call(d, "GET", "/api/energy?period=fortnight")
    assert status == 400 and json.loads(body)["error"].startswith("period:")
    status, _, body = await call(d, "GET", "/api/energy.csv?period=day&to=soon")
    assert status == 400 and json.loads(body)["error"].startswith("to:")


async def test_reading_the_history_follows_the_reading_rule(make_daemon: Any) -> None:
    d = await make_daemon(**{"http.open_reading": False})
    for path in ("/api/energy?period=day", "/api/energy.csv?period=day"):
        status, _, _ = await call(d, "GET", path)
        assert status == 401
        status, _, _ = await call(d, "GET", path, headers={"Authorization": f"Bearer {d.auth.cli_token}"})
        assert status == 200
    async with connect(f"ws://127.0.0.1:{d.web.port}/ws") as ws:
        answer = await Client(ws).ask({"command": "request_energy", "period": "day"})
        assert answer.get("login") is True


async def test_the_history_is_kept_across_a_restart(metered: tuple[Daemon, Client],
                                                     make_daemon: Any) -> None:
    d, client = metered
    before = (await client.ask({"command": "request_energy", "period": "hour"}))["buckets"]
    status = await client.ask({"command": "request_status"})
    assert status["history"]["fault"] is None and status["history"]["file"].endswith(".sqlite3")
    await client.close()
    await d.stop()
    again = await make_daemon()
    assert again.energy_history is not None
    after = await again.energy_history.energy(history.EnergyQuery("hour"))
    kept = dict(after)
    for start, wh in before:
        assert kept[start] >= wh - 1e-3  # the stop wrote everything (and more may come)
