"""NTP stepping the wall clock by hours: durations (broadcast intervals, offline detection,
rate limits, energy) follow the monotonic clock; only dates and times shown follow the wall,
and the daily energy rolls over once per local day.

The pure cores take both clocks as arguments; one daemon runs on an injected wall clock that
the test steps while the real monotonic clock runs on.
"""

from __future__ import annotations

import datetime
import json
import socket
import threading
import time

from websockets.asyncio.client import connect

from plugd.core.metering import EnergyCounter
from plugd.core.model import ThingId
from plugd.core.registry import Registry
from plugd.doors.auth import Auth
from plugd.doors.limits import PER_ADDRESS
from plugd.service.daemon import Daemon
from plugd.service.plug import Plug
from plugd.service.store import StateDir
from tests.support import Client, Heard, sim_config, until

HOUR = 3600.0
OWN, PEER = 4242, 777
DAY = datetime.date(2026, 11, 26)


def local(day: datetime.date, hour: int, minute: int = 0) -> float:
    """The wall time of a local date and time."""
    return datetime.datetime(day.year, day.month, day.day, hour, minute).timestamp()


class Wall:
    """A wall clock NTP can step: the real time plus an offset the test changes."""

    def __init__(self, start: float) -> None:
        self.offset = start - time.time()

    def __call__(self) -> float:
        return time.time() + self.offset

    def step(self, seconds: float) -> None:
        self.offset += seconds


# --- the pure cores, both clocks passed in ---------------------------------------------------


def test_energy_follows_the_monotonic_clock_and_rolls_over_once_per_local_day():
    """1 Wh a second for 40 s; NTP steps the wall +2 h over midnight, -3 h back, +3 h again."""
    counter = EnergyCounter(day=DAY)
    wall = local(DAY, 23, 59)
    days = []
    for second in range(41):
        if second == 10:
            wall += 2 * HOUR  # forwards over midnight
        elif second == 20:
            wall -= 3 * HOUR  # backwards over midnight, into the day before
        elif second == 30:
            wall += 3 * HOUR  # and forwards again into a day already counted
        wall += 1.0
        day = datetime.datetime.fromtimestamp(wall).date()
        days.append(day)
        counter.add(3600.0, 1000.0 + second, day)
    assert days[9] == DAY and days[10] == days[30] == DAY + datetime.timedelta(1)
    assert days[20] == DAY  # the step back did cross midnight
    assert counter.day == DAY + datetime.timedelta(1)
    # One rollover, at the first step: 10 s (10 Wh) before it, 30 Wh since, none lost.
    assert abs(counter.yesterday_wh - 10.0) < 1e-9
    assert abs(counter.today_wh - 30.0) < 1e-9
    assert abs(counter.total_kwh * 1000 - 40.0) < 1e-9


def test_a_wall_step_makes_no_energy_and_a_hang_makes_none_either():
    counter = EnergyCounter(day=DAY)
    counter.add(3600.0, 50.0, DAY)
    counter.add(3600.0, 51.0, DAY)  # wall stepped by hours in between: 1 s of monotonic time
    assert abs(counter.today_wh - 1.0) < 1e-9
    counter.add(3600.0, 51.0 + 600, DAY)  # the loop hung for 10 min: not invented either
    assert abs(counter.today_wh - 1.0) < 1e-9


def test_offline_detection_and_last_heard_follow_the_monotonic_clock(tmp_path):
    clocks = {"wall": local(DAY, 12), "mono": 500.0}
    plug = Plug(node_id=OWN, node_name="TestPlug", state=StateDir(tmp_path), open_relay=None,
                registry=Registry(OWN, offline_after=15.0), wall=lambda: clocks["wall"],
                monotonic=lambda: clocks["mono"], save=StateDir(tmp_path).write)
    plug.receive(b"777:Peer&1:1.00", "127.0.0.1")
    for wall_step in (+5 * HOUR, -10 * HOUR, +30 * 24 * HOUR):
        clocks["wall"] += wall_step
        clocks["mono"] += 5.0
        plug.tick()
        assert plug.registry.is_online(PEER), wall_step
        plug.receive(b"777:Peer&1:1.00", "127.0.0.1")
    clocks["wall"] -= 24 * HOUR  # a step back cannot make a silent node look fresh
    clocks["mono"] += 15.5
    plug.tick()
    assert not plug.registry.is_online(PEER)
    assert plug.things[ThingId.CLOCK].value == datetime.datetime.fromtimestamp(clocks["wall"]).hour


def test_the_login_rate_limit_counts_in_monotonic_time(tmp_path):
    state = StateDir(tmp_path)
    state.prepare()
    auth = Auth(state)
    for now in range(PER_ADDRESS.free):
        assert auth.begin_login("10.0.0.9", 100.0 + now) == 0.0
        assert not auth.check_cli_token("wrong")
        auth.end_login("10.0.0.9", False, 100.0 + now)
    assert auth.begin_login("10.0.0.9", 105.0) > 0


# --- a daemon on a wall clock that NTP steps ---------------------------------------------------


class Peer:
    """Another node broadcasting on loopback once a second until stopped."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        self.port = port
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped.is_set():
            self.sock.sendto(b"777:Peer&1:1.00", ("127.255.255.255", self.port))
            self.stopped.wait(1.0)

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()
        self.sock.close()


async def test_a_daemon_through_ntp_steps(tmp_path, factory):
    wall = Wall(local(DAY, 22))
    config = sim_config(tmp_path / "state", **{"simulate.load_watts": 3600.0, "mesh.interval": 1.0,
                                               "mesh.max_changes_per_second": 4.0})
    port = config.mesh.udp_port
    d = Daemon(config, pin_factory=factory, wall=wall)
    await d.start()
    heard, peer = Heard(port, OWN), Peer(port)
    url = f"ws://127.0.0.1:{d.web.port}/ws"
    try:
        async with connect(url) as ws, connect(url) as stranger_ws:
            client, stranger = Client(ws), Client(stranger_ws)
            assert (await client.ask({"command": "login", "token": d.auth.cli_token}))["success"]
            assert (await client.ask({"command": "switch", "state": "on"}))["relay"] is True
            assert d.meter is not None
            energy = d.meter.energy
            await until(lambda: energy.today_wh > 2.0, "some energy before midnight")
            await until(lambda: d.registry.is_online(PEER), "the peer online")
            assert energy.day == DAY and d.plug.things[ThingId.CLOCK].value == 22.0

            # Forwards over midnight: one rollover, and the clock thing follows the wall.
            wall.step(2.5 * HOUR)
            stepped = time.monotonic()
            await until(lambda: energy.yesterday_wh > 2.0, "the rollover")
            yesterday = energy.yesterday_wh
            assert energy.day == DAY + datetime.timedelta(1)
            await until(lambda: d.plug.things[ThingId.CLOCK].value == 0.0, "the clock at 0 h")
            await until(lambda: energy.today_wh > 2.0, "energy in the new day")
            assert d.registry.is_online(PEER) and heard.since(stepped) >= 2

            # Backwards over midnight: no second rollover of the same day, no energy lost.
            wall.step(-3 * HOUR)
            stepped, today = time.monotonic(), energy.today_wh
            await until(lambda: energy.today_wh > today + 2.0, "energy after the step back")
            assert energy.yesterday_wh == yesterday and energy.day == DAY + datetime.timedelta(1)
            assert d.plug.things[ThingId.CLOCK].value == 21.0
            assert d.registry.is_online(PEER) and heard.since(stepped) >= 2

            # Forwards again into the day already counted: still no rollover.
            wall.step(3 * HOUR)
            stepped, today = time.monotonic(), energy.today_wh
            await until(lambda: energy.today_wh > today + 2.0, "energy after the step forwards")
            assert energy.yesterday_wh == yesterday
            assert abs(energy.total_kwh * 1000 - (energy.yesterday_wh + energy.today_wh)) < 1e-6
            assert d.registry.is_online(PEER) and heard.since(stepped) >= 2

            # The broadcast rate limit holds over the steps (monotonic time, not wall time).
            elapsed = time.monotonic() - heard.times[0]
            limit = config.mesh.max_changes_per_second + 1 / config.mesh.interval
            assert len(heard.times) <= limit * elapsed + 2

            # Failed logins before and after a step forwards of hours still add up to a lockout.
            answers = []
            for attempt in range(PER_ADDRESS.free + 1):
                if attempt == 2:
                    wall.step(6 * HOUR)
                answers.append(await stranger.ask({"command": "login", "token": "wrong"}))
            assert [a["error"] for a in answers[:PER_ADDRESS.free]] == ["wrong token"] * PER_ADDRESS.free
            assert "too many failed attempts" in answers[-1]["error"]

            # A silent peer goes offline after mesh.offline_after intervals, steps or not.
            peer.stop()
            wall.step(-12 * HOUR)
            await until(lambda: not d.registry.is_online(PEER), "the silent peer offline")
    finally:
        heard.close()
        if not peer.stopped.is_set():
            peer.stop()
        await d.stop()
    saved = json.loads((tmp_path / "state" / "energy.json").read_text())
    assert saved["day"] == (DAY + datetime.timedelta(1)).isoformat()
    assert saved["yesterday_wh"] == yesterday
