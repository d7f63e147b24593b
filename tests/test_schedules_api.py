"""Schedules in a running daemon: the WebSocket commands, runs against shifted clocks (DST,
steps), the relay's authority, power_on_state = "schedule" across a restart, and plugctl."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from websockets.asyncio.client import connect

from plugd import ctl
from plugd.core import schedules as S
from plugd.core.model import ThingId
from plugd.errors import StoreError
from plugd.service.scheduler import local_zone
from tests.support import Client, running_daemon, sim_config

BERLIN = ZoneInfo("Europe/Berlin")
HERE = {"location.latitude": 52.52, "location.longitude": 13.405}


class Clocks:
    """The wall and monotonic clocks, shifted: `passes` moves both (time goes by), `step` the
    wall alone (NTP sets it)."""

    def __init__(self) -> None:
        self.wall_shift = self.mono_shift = 0.0

    def wall(self) -> float:
        return time.time() + self.wall_shift

    def mono(self) -> float:
        return time.monotonic() + self.mono_shift

    def set_wall(self, wall: float) -> None:
        self.step(wall - self.wall())

    def passes(self, seconds: float) -> None:
        self.wall_shift += seconds
        self.mono_shift += seconds

    def step(self, seconds: float) -> None:
        self.wall_shift += seconds


@pytest.fixture
def berlin(monkeypatch):
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def clocks():
    return Clocks()


@contextlib.asynccontextmanager
async def started(tmp_path, factory, clocks, **overrides) -> AsyncIterator:
    async with running_daemon(sim_config(tmp_path / "state", **overrides), factory,
                              wall=clocks.wall) as daemon:
        daemon.scheduler.monotonic = clocks.mono
        yield daemon


@contextlib.asynccontextmanager
async def logged_in(daemon) -> AsyncIterator[Client]:
    async with connect(f"ws://127.0.0.1:{daemon.web.port}/ws") as ws:
        client = Client(ws)
        assert (await client.ask({"command": "login", "token": daemon.auth.cli_token}))["success"]
        yield client


def relay(daemon) -> bool:
    return daemon.plug.things[ThingId.PLUG].value == 1.0


def schedule_events(daemon, kind="relay"):
    return [e for e in (e.to_json() for e in daemon.plug.events)
            if e["kind"] == kind and e["cause"].startswith("schedule")]


async def stored(daemon):
    await daemon.plug.writer.flush()
    path = daemon.plug.state.path / "schedules.json"
    return json.loads(path.read_text()) if path.exists() else None


# --- the commands ------------------------------------------------------------------------------


async def test_save_list_edit_and_delete(client, daemon):
    before = time.time()
    answer = await client.ask({"command": "save_schedule", "schedule": {
        "enabled": True, "days": [0, 1, 2, 3, 4], "at": "07:00", "offset": -15, "action": "on"}})
    assert answer["command"] == "response_save_schedule" and answer["success"] is True
    saved = answer["schedule"]
    assert {k: saved[k] for k in ("id", "enabled", "days", "at", "offset", "action")} == {
        "id": 1, "enabled": True, "days": [0, 1, 2, 3, 4], "at": "07:00", "offset": -15, "action": "on"}
    tz = local_zone()
    assert saved["next"] > before
    shown = datetime.fromtimestamp(saved["next"], tz)
    assert (shown.hour, shown.minute, shown.weekday() < 5) == (6, 45, True)

    listed = await client.ask({"command": "request_schedules"})
    assert listed["command"] == "response_schedules"
    assert [s["id"] for s in listed["schedules"]] == [1] and listed["schedules"][0]["next"] == saved["next"]

    edited = (await client.ask({"command": "save_schedule", "schedule": {
        **saved, "enabled": False, "action": "toggle"}}))["schedule"]
    assert (edited["id"], edited["enabled"], edited["action"], edited["next"]) == (1, False, "toggle", None)
    second = (await client.ask({"command": "save_schedule", "schedule": {"at": "22:30", "action": "off"}}))
    assert second["schedule"]["id"] == 2 and second["schedule"]["days"] == []
    assert [s["id"] for s in await stored(daemon)] == [1, 2]

    gone = await client.ask({"command": "delete_schedule", "id": 1})
    assert gone["command"] == "response_delete_schedule" and gone["success"] and gone["id"] == 1
    assert [s["id"] for s in await stored(daemon)] == [2]
    missing = await client.ask({"command": "delete_schedule", "id": 1})
    assert missing["command"] == "error" and missing["error"].startswith("id: there is no schedule 1")
    events = [e["message"] for e in [e.to_json() for e in daemon.plug.events] if e["kind"] == "schedule"]
    assert "schedule 1 added: on at 07:00 − 15 min" in events and "schedule 1 deleted" in events


@pytest.mark.parametrize("schedule, field", [
    ({"at": "25:00", "action": "on"}, "schedule.at"),
    ({"at": "sunset", "action": "on"}, "schedule.at"),  # no location yet
    ({"at": "07:00", "action": "blink"}, "schedule.action"),
    ({"at": "07:00", "action": "on", "days": [1, 9]}, "schedule.days[1]"),
    ({"at": "07:00", "action": "on", "offset": "-30"}, "schedule.offset"),
    ({"at": "07:00", "action": "on", "id": "one"}, "schedule.id"),
    ("not json", "schedule"),
])
async def test_bad_input_names_the_field_and_changes_nothing(client, daemon, schedule, field):
    await client.ask({"command": "save_schedule", "schedule": {"at": "08:00", "action": "on"}})
    before = await stored(daemon)
    answer = await client.ask({"command": "save_schedule", "schedule": schedule})
    assert answer["command"] == "error" and answer["request"] == "save_schedule"
    assert answer["error"].startswith(f"{field}: "), answer["error"]
    assert await stored(daemon) == before
    assert len(daemon.scheduler.schedules) == 1


async def test_reading_is_open_and_changes_need_a_login(daemon):
    async with connect(f"ws://127.0.0.1:{daemon.web.port}/ws") as ws:
        anonymous = Client(ws)
        assert (await anonymous.ask({"command": "request_schedules"}))["schedules"] == []
        refused = await anonymous.ask({"command": "save_schedule",
                                       "schedule": {"at": "07:00", "action": "on"}})
        assert refused["command"] == "error" and refused["login"] is True
    assert daemon.scheduler.schedules == []


async def test_a_failed_write_changes_nothing(client, daemon, monkeypatch):
    async def full(name, data):
        raise StoreError(f"cannot write {name}: No space left on device")

    monkeypatch.setattr(daemon.plug.writer, "save", full)
    answer = await client.ask({"command": "save_schedule", "schedule": {"at": "07:00", "action": "on"}})
    assert answer["command"] == "error" and "No space left" in answer["error"]
    assert daemon.scheduler.schedules == [] and daemon.scheduler.planner.next_due() is None


async def test_at_most_64_schedules(client, daemon):
    for n in range(S.MAX_SCHEDULES):
        answer = await client.ask({"command": "save_schedule",
                                   "schedule": {"at": f"{n % 24:02d}:{n % 60:02d}", "action": "on"}})
        assert answer["success"], answer
    refused = await client.ask({"command": "save_schedule", "schedule": {"at": "07:00", "action": "on"}})
    assert refused["error"].startswith("schedule: at most 64 schedules")
    assert len(await stored(daemon)) == S.MAX_SCHEDULES


async def test_sun_schedules_follow_the_location_set_on_the_page(berlin, client, daemon):
    saved = await client.ask({"command": "save_settings", "settings": HERE})
    assert saved["success"], saved
    answer = await client.ask({"command": "save_schedule", "schedule": {
        "at": "sunset", "offset": -30, "action": "on"}})
    nxt = answer["schedule"]["next"]
    day = datetime.fromtimestamp(nxt, BERLIN).date()
    expected = S.sun_event(S.Location(52.52, 13.405), "sunset", day, BERLIN) - 1800
    assert nxt == expected and answer["schedule"]["words"] == "sunset − 30 min"
    listed = await client.ask({"command": "request_schedules"})
    assert listed["location"] == {"latitude": 52.52, "longitude": 13.405}
    assert listed["timezone"] == "Europe/Berlin"
    # At Tromsø the sun does not set in June, nor rise in December: no next run, and why.
    await client.ask({"command": "save_settings", "settings": {"location.latitude": 69.6492,
                                                               "location.longitude": 18.9553}})
    shown = (await client.ask({"command": "request_schedules"}))["schedules"][0]
    today = date.today()
    if date(today.year, 5, 25) <= today <= date(today.year, 7, 15):
        assert shown["next"] is None and shown["sun"] == "polar day"
    elif today.month == 12 or (today.month == 1 and today.day < 5):
        assert shown["next"] is None and shown["sun"] == "polar night"
        assert shown["resumes"] > time.time()
    bad = await client.ask({"command": "save_settings", "settings": {"location.latitude": 91}})
    assert bad["command"] == "error" and bad["error"].startswith("settings.location.latitude: ")


# --- runs: shifted clocks -----------------------------------------------------------------------


async def test_a_schedule_switches_the_relay_once_across_dst_and_clock_steps(tmp_path, factory, clocks,
                                                                            berlin):
    clocks.set_wall(datetime(2024, 3, 31, 0, 0, tzinfo=BERLIN).timestamp())  # the night DST begins
    async with started(tmp_path, factory, clocks) as daemon, logged_in(daemon) as client:
        answer = await client.ask({"command": "save_schedule",
                                   "schedule": {"at": "02:30", "action": "toggle"}})
        jump = datetime(2024, 3, 31, 3, 0, tzinfo=BERLIN).timestamp()  # 02:30 is skipped: at the jump
        assert answer["schedule"]["next"] == jump
        clocks.passes(jump - clocks.wall() + 1)
        daemon.scheduler.check()
        assert relay(daemon)
        [event] = schedule_events(daemon)
        assert event["cause"] == "schedule 1, 02:30" and event["message"] == "relay on"
        clocks.step(-3600)  # NTP sets the clock back an hour: 02:00 is seen again
        daemon.scheduler.check()
        clocks.passes(3600 + 60)
        daemon.scheduler.check()
        assert relay(daemon) and len(schedule_events(daemon)) == 1  # no second toggle
        # A day later, it runs again (the hour is there that day).
        clocks.passes(86400)
        daemon.scheduler.check()
        assert not relay(daemon) and len(schedule_events(daemon)) == 2


async def test_a_clock_stepped_forward_skips_the_past_and_keeps_what_is_ahead(tmp_path, factory, clocks,
                                                                             berlin):
    clocks.set_wall(datetime(2024, 5, 6, 6, 0, tzinfo=BERLIN).timestamp())
    async with started(tmp_path, factory, clocks) as daemon, logged_in(daemon) as client:
        for at, action in (("07:00", "on"), ("09:00", "on")):
            await client.ask({"command": "save_schedule", "schedule": {"at": at, "action": action}})
        daemon.scheduler.check()
        clocks.step(datetime(2024, 5, 6, 8, 0, tzinfo=BERLIN).timestamp() - clocks.wall())
        daemon.scheduler.check()
        assert not relay(daemon)
        skipped = schedule_events(daemon, "schedule")[-1]
        assert "did not run at 07:00: the clock was set forward past it" in skipped["message"]
        clocks.passes(3600 + 1)
        daemon.scheduler.check()
        assert relay(daemon) and schedule_events(daemon)[-1]["cause"] == "schedule 2, 09:00"


async def test_override_and_a_trip_hold_against_a_schedule(tmp_path, factory, clocks, berlin):
    clocks.set_wall(datetime(2024, 5, 6, 6, 59, tzinfo=BERLIN).timestamp())
    async with started(tmp_path, factory, clocks) as daemon, logged_in(daemon) as client:
        await client.ask({"command": "save_thing", "thing": {"id": 1, "override": True}})
        await client.ask({"command": "save_schedule", "schedule": {"at": "07:00", "action": "on"}})
        clocks.passes(61)
        daemon.scheduler.check()
        assert not relay(daemon)
        refused = schedule_events(daemon, "schedule")[-1]
        assert refused["message"] == "Plug stays off: override is on: a person pinned it"
        assert refused["subject"] == "schedule 1"
        await client.ask({"command": "save_thing", "thing": {"id": 1, "override": False}})
        daemon.plug.trip("power 3000 W above 2500 W")
        clocks.passes(86400)
        daemon.scheduler.check()
        assert not relay(daemon)
        assert "the protection holds the relay off" in schedule_events(daemon, "schedule")[-1]["message"]


async def test_a_schedule_fires_on_time_by_itself(tmp_path, factory, clocks, berlin):
    now = datetime.fromtimestamp(clocks.wall(), BERLIN)
    minute = now.replace(second=0, microsecond=0).timestamp() + 60
    clocks.step(minute - 1.5 - clocks.wall())  # a minute's turn 1.5 s ahead
    async with started(tmp_path, factory, clocks) as daemon, logged_in(daemon) as client:
        at = datetime.fromtimestamp(minute, BERLIN).strftime("%H:%M")
        answer = await client.ask({"command": "save_schedule", "schedule": {"at": at, "action": "on"}})
        assert answer["schedule"]["next"] == minute
        push = await client.next_push("thing_update", lambda m: m["thingId"] == 1 and m["value"] == 1)
        assert push["value"] == 1 and relay(daemon)
        assert schedule_events(daemon)[0]["cause"] == f"schedule 1, {at}"


# --- power_on_state = "schedule" -------------------------------------------------------------------


@pytest.mark.parametrize("action, expected", [("on", True), ("off", False)])
async def test_power_on_state_schedule_takes_the_last_run_before_now(tmp_path, factory, clocks, berlin,
                                                                     action, expected):
    config = {"relay.power_on_state": "schedule"}
    clocks.set_wall(datetime(2024, 5, 8, 12, 0, tzinfo=BERLIN).timestamp())
    async with started(tmp_path, factory, clocks, **config) as daemon, logged_in(daemon) as client:
        await client.ask({"command": "switch", "state": "off" if expected else "on"})
        await client.ask({"command": "save_schedule", "schedule": {"at": "13:00", "action": action}})
    clocks.passes(3 * 3600)  # off over the run at 13:00 (a power cut)
    async with started(tmp_path, factory, clocks, **config) as daemon:
        assert relay(daemon) is expected and factory.pin(17).state is expected
        told = [e["message"] for e in [e.to_json() for e in daemon.plug.events] if e["kind"] == "schedule"]
        assert told == [f"relay {action} at start, as schedule 1 (13:00, {action}) set it at 13:00"]


async def test_power_on_state_schedule_without_a_run_keeps_the_last_state(tmp_path, factory, clocks):
    async with started(tmp_path, factory, clocks, **{"relay.power_on_state": "schedule"}) as daemon, \
            logged_in(daemon) as client:
        await client.ask({"command": "switch", "state": "on"})
    async with started(tmp_path, factory, clocks, **{"relay.power_on_state": "schedule"}) as daemon:
        assert relay(daemon)


# --- plugctl ----------------------------------------------------------------------------------


async def plugctl(capsys, daemon, *args):
    code = await asyncio.to_thread(ctl.main, ["--port", str(daemon.web.port), "--token-file",
                                              str(daemon.plug.state.path / "cli-token"), *args])
    out, err = capsys.readouterr()
    return code, out, err


async def test_plugctl_schedule_add_list_delete(berlin, daemon, capsys):
    code, out, err = await plugctl(capsys, daemon, "schedule", "add", "--at", "07:30", "--days", "mon-fri",
                                   "--action", "on")
    assert (code, err) == (0, "") and out.startswith("schedule 1: on at 07:30, Mon–Fri, next ")
    assert daemon.scheduler.schedules[0].days == (0, 1, 2, 3, 4)
    code, out, err = await plugctl(capsys, daemon, "schedule", "add", "--at", "sunset", "--offset", "-30",
                                   "--days", "sat,sun", "--action", "toggle")
    assert code == 1 and "schedule.at: sunset needs the plug's location" in err
    code, out, _ = await plugctl(capsys, daemon, "schedule", "add", "--at", "22:00", "--action", "off",
                                 "--disabled")
    assert code == 0 and out.startswith("schedule 2: off at 22:00, every day, off")
    code, out, _ = await plugctl(capsys, daemon, "schedule", "list")
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "ON", "AT", "DAYS", "ACTION", "NEXT"]
    assert lines[1].split()[:5] == ["1", "yes", "07:30", "Mon–Fri", "on"]
    assert lines[2].split() == ["2", "no", "22:00", "every", "day", "off", "-"]
    assert (await plugctl(capsys, daemon, "schedule", "delete", "1"))[:2] == (0, "schedule 1 deleted\n")
    assert [s.id for s in daemon.scheduler.schedules] == [2]
    code, _, err = await plugctl(capsys, daemon, "schedule", "add", "--at", "7", "--action", "on")
    assert code == 1 and err.startswith("plugctl: schedule.at: ")


@pytest.mark.parametrize("text, days", [
    ("mon-fri", [0, 1, 2, 3, 4]), ("sat,sun", [5, 6]), ("fri-mon", [0, 4, 5, 6]), ("daily", []),
    ("Tue", [1]), ("weekdays", [0, 1, 2, 3, 4]), ("weekend", [5, 6]), ("0,3", [0, 3]),
])
def test_plugctl_reads_days(text, days):
    assert ctl.parse_days(text) == days
