"""Auto-off: a switch on for a while, [relay] auto_off for every switch on, cancelled by a switch
off, timed by the monotonic clock, kept across a restart; in the core with the time passed in,
and over the WebSocket, HTTP and plugctl against a daemon."""

from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_core import Pin, make_core, relay

from plugd import ctl
from plugd.core.model import ThingId
from plugd.core.plug import Cause, Now, duration_words
from tests.support import until

T0 = Now(1_795_000_000.0, 1000.0)
USER = Cause("user", "127.0.0.1")


def later(now: Now, seconds: float, wall_step: float = 0.0) -> Now:
    """`seconds` on; the wall clock also stepped by `wall_step` (NTP at boot, say)."""
    return Now(now.wall + seconds + wall_step, now.mono + seconds)


def events(out):
    return [c.event.message for c in out.changes if c.event]


def test_a_switch_on_for_a_while_goes_off_by_itself_then():
    core = make_core()
    pin = Pin(core)
    out = pin.run(core.switch_for(600, USER, T0))
    assert relay(core) and core.off_at == T0.wall + 600 and "auto_off" in out.persist
    assert "auto-off in 10 min" in events(out)
    pin.run(core.tick(later(T0, 599)))
    assert relay(core)
    out = pin.run(core.tick(later(T0, 600)))
    assert not relay(core) and core.off_at is None and "auto_off" in out.persist
    relay_events = [c.event for c in out.changes if c.event and c.event.kind == "relay"]
    assert relay_events[-1].message == "relay off" and relay_events[-1].cause == "auto-off after 10 min"


def test_a_switch_off_cancels_it_and_a_switch_on_again_restarts_it():
    core = make_core()
    pin = Pin(core)
    pin.run(core.switch_for(60, USER, T0))
    pin.run(core.set_thing(ThingId.PLUG, 0.0, USER, later(T0, 10)))
    assert core.off_at is None
    pin.run(core.set_thing(ThingId.PLUG, 1.0, USER, later(T0, 20)))  # no default: none runs
    pin.run(core.tick(later(T0, 100)))
    assert relay(core) and core.off_at is None
    pin.run(core.switch_for(30, USER, later(T0, 200)))  # on already: from now
    assert core.off_at == T0.wall + 230
    pin.run(core.tick(later(T0, 229)))
    assert relay(core)
    pin.run(core.tick(later(T0, 230)))
    assert not relay(core)


def test_the_default_applies_to_every_switch_on_whatever_switched_it():
    core = make_core()
    core.auto_off = 120
    pin = Pin(core)
    for cause in [USER, Cause("recipe", "1, x"), Cause("mqtt", "broker"), Cause("schedule", "2")]:
        pin.run(core.set_thing(ThingId.PLUG, 1.0, cause, T0))
        assert core.off_at == T0.wall + 120, cause
        pin.run(core.tick(later(T0, 120)))
        assert not relay(core), cause


@given(st.floats(min_value=-86400 * 365, max_value=86400 * 365))
def test_a_wall_clock_step_neither_hastens_nor_delays_it(step):
    core = make_core()
    pin = Pin(core)
    pin.run(core.switch_for(300, USER, T0))
    pin.run(core.tick(later(T0, 299, step)))
    assert relay(core)
    pin.run(core.tick(later(T0, 300, step)))
    assert not relay(core)


def test_override_keeps_the_plug_on_and_says_why():
    core = make_core()
    pin = Pin(core)
    pin.run(core.switch_for(60, USER, T0))
    pin.run(core.set_override(ThingId.PLUG, True, USER, T0))
    out = pin.run(core.tick(later(T0, 60)))
    assert relay(core) and core.off_at is None
    assert any("Plug stays on" in m and "override" in m for m in events(out))


def test_a_trip_ends_it():
    core = make_core()
    pin = Pin(core)
    pin.run(core.switch_for(60, USER, T0))
    pin.run(core.trip("over 3000 W", later(T0, 5)))
    assert not relay(core) and core.off_at is None


def test_restored_at_start_it_keeps_its_moment_or_goes_off_at_once():
    core = make_core(relay_on=True)
    core.restore_auto_off(T0.wall + 50, 60, T0)
    pin = Pin(core)
    pin.run(core.tick(later(T0, 49)))
    assert relay(core)
    pin.run(core.tick(later(T0, 50)))
    assert not relay(core)
    past = make_core(relay_on=True)
    past.restore_auto_off(T0.wall - 5, 60, T0)  # the moment passed while the plug was down
    Pin(past).run(past.tick(T0))
    assert not relay(past)
    off = make_core(relay_on=False)
    assert "auto_off" in off.restore_auto_off(T0.wall + 50, 60, T0).persist and off.off_at is None


@pytest.mark.parametrize(("seconds", "words"), [(45, "45 s"), (600, "10 min"), (5400, "1 h 30 min"),
                                                (3661, "1 h 1 min 1 s"), (0, "0 s")])
def test_durations_read_as_people_say_them(seconds, words):
    assert duration_words(seconds) == words


async def test_switch_for_over_the_websocket_and_a_bad_for_is_refused_by_name(client, daemon):
    for bad, why in [({"for": 0}, "more than 0"), ({"for": "10m"}, "number of seconds"),
                     ({"for": 10 ** 9}, "a week"), ({"for": True}, "number of seconds")]:
        answer = await client.ask({"command": "switch", "state": "on", **bad})
        assert answer["command"] == "error" and answer["error"].startswith("for:") and why in answer["error"]
    assert daemon.plug.things[ThingId.PLUG].value == 0.0
    answer = await client.ask({"command": "switch", "state": "off", "for": 10})
    assert answer["command"] == "error" and "switching on" in answer["error"]
    answer = await client.ask({"command": "switch", "state": "on", "for": 0.5})
    assert answer["relay"] is True and answer["autoOffAt"] == daemon.plug.off_at
    push = await client.next_push("thing_update", lambda m: m["thingId"] == 1 and m["value"] == 0)
    assert push["autoOffAt"] is None
    events = (await client.ask({"command": "request_events"}))["events"]
    assert [e["cause"] for e in events if e["kind"] == "relay"][-1] == "auto-off after 0 s"


async def test_it_survives_a_restart(make_daemon):
    d = await make_daemon()
    assert d.plug.switch_for(3600, Cause("user", "test"))
    off_at = d.plug.off_at
    path = d.plug.state.path / "auto-off.json"
    await until(path.exists, "auto-off.json written")
    stored = json.loads(path.read_text())
    assert stored == {"off_at": off_at, "after": 3600.0}
    await d.stop()
    again = await make_daemon()
    assert again.plug.things[ThingId.PLUG].value == 1.0 and again.plug.off_at == pytest.approx(off_at)
    assert again.status()["autoOffAt"] == pytest.approx(off_at)


async def test_a_moment_passed_while_stopped_switches_off_at_once(make_daemon):
    d = await make_daemon()
    d.plug.switch_for(60, Cause("user", "test"))
    await d.stop()  # which writes everything
    path = d.plug.state.path / "auto-off.json"
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "off_at": record["off_at"] - 120}))  # as if 2 min later
    again = await make_daemon()
    await until(lambda: again.plug.things[ThingId.PLUG].value == 0.0, "the relay switched off")


async def test_the_configured_auto_off_applies_to_every_switch_on(make_daemon):
    d = await make_daemon(**{"relay.auto_off": 0.3})
    d.plug.set_thing(ThingId.PLUG, 1.0, Cause("user", "test"))
    assert d.plug.off_at is not None
    await until(lambda: d.plug.things[ThingId.PLUG].value == 0.0, "the auto-off")


async def test_plugctl_on_for(daemon):
    def plugctl(*args: str) -> int:
        return ctl.main(["--port", str(daemon.web.port), "--state-dir", str(daemon.plug.state.path),
                         *args])
    assert await asyncio.to_thread(plugctl, "on", "--for", "1h30m") == 0
    assert daemon.plug.off_at == pytest.approx(daemon.plug.wall() + 5400, abs=5)
    with pytest.raises(SystemExit):
        ctl.parser().parse_args(["on", "--for", "soon"])
