"""The WebSocket commands: validate a request, ask the plug, shape the answer.

Requests and answers keep the ESP8266 firmware's shapes; plugd's own commands
(`request_status`, `switch`, `delete_recipe`, `move_recipe`, `request_events`,
the login and settings commands) are additions. Bad input gets
`{"command": "error", "error": ...}` naming the field, and nothing stored
changes. Reading is open unless `http.open_reading` is off; every change needs
a logged-in session (or `http.allow_unauthenticated_changes`).

A success answer leaves once the change is on disk, so a crash right after it
loses nothing. A change that cannot be written (a full disk) is answered with
an error and is not in force, except a relay switch: the relay stays switched
and the error says it was not saved.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from plugd.service import settings
from plugd.doors.auth import AUTH_FILE
from plugd.errors import PlugdError, StoreError, ValidationError
from plugd.hardware.sim.ads1115 import FAULTS as ADC_FAULTS
from plugd.core.metering import Calibration
from plugd.core.model import (
    MAX_NODE_ID,
    OFF,
    ON,
    Recipe,
    Thing,
    ThingId,
    ThingType,
    describe,
    read_bool,
    read_float,
    read_int,
    require_object,
)
from plugd.service.plug import Cause, Plug
from plugd.core.recipes import RecipeBook

if TYPE_CHECKING:
    from plugd.doors.auth import Auth
    from plugd.service.config import Config
    from plugd.hardware.sim.rig import Simulation
    from plugd.service.meter import Meter


class Host(Protocol):
    """What the commands need from the daemon that runs them."""

    plug: Plug
    meter: Meter | None
    simulation: Simulation | None
    auth: Auth
    config: Config

    def status(self) -> dict[str, Any]: ...

    def history(self) -> list[list[float | None]]: ...

    async def save_settings(self, changes: dict[str, Any]) -> None: ...


EXPORT_VERSION = 1
Handler = Callable[["Api", dict[str, Any]], Awaitable[dict[str, Any]]]
COMMANDS: dict[str, Handler] = {}
#: Commands anyone may send; READ ones need `open_reading` or a login; all others change things.
PUBLIC = frozenset({"request_session", "login", "logout"})
READ = frozenset({"request_nodes", "request_things", "request_recipes", "request_status",
                  "request_events", "request_history", "request_settings", "export_config"})


def command(name: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        COMMANDS[name] = handler
        return handler
    return register


def _nested(msg: dict[str, Any], key: str) -> dict[str, Any]:
    """The `thing`/`recipe` of a save: a JSON object, or (as the firmware allows) a JSON string."""
    if key not in msg:
        raise ValidationError(key, "is missing")
    value = msg[key]
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            raise ValidationError(key, "is a string that is not valid JSON") from None
    return require_object(value, key)


class Api:
    """One client's conversation: its address, and its session once it logged in."""

    def __init__(self, host: Host, who: str = "user", session: str | None = None, *,
                 trusted: bool = False) -> None:
        self.host = host
        self.plug = host.plug
        self.who = who
        self.session = session
        #: An in-process caller (a benchmark): it may change without logging in.
        self.trusted = trusted

    @property
    def authenticated(self) -> bool:
        return self.trusted or self.session is not None

    @property
    def may_read(self) -> bool:
        return self.authenticated or self.host.config.http.open_reading

    @property
    def may_change(self) -> bool:
        return self.authenticated or self.host.config.http.allow_unauthenticated_changes

    def _refusal(self, name: str) -> dict[str, Any] | None:
        if name in PUBLIC or (self.may_read if name in READ else self.may_change):
            return None
        what = "reading" if name in READ else "changes"
        return self.answer("error", request=name, login=True,
                           error=f"login required: {what} need a logged-in session")

    def answer(self, command_name: str, **fields: Any) -> dict[str, Any]:
        return self.plug.message(command_name, **fields)

    async def handle(self, text: str | bytes) -> dict[str, Any]:
        """Answer one request frame; never raises for bad input."""
        request_name = None
        try:
            try:
                msg = json.loads(text)
            except (ValueError, RecursionError):
                raise ValidationError("", "the message is not valid JSON") from None
            msg = require_object(msg, "message")
            name = msg.get("command")
            if not isinstance(name, str):
                raise ValidationError("command", "is missing" if "command" not in msg
                                      else f"expected a string, got {describe(name)}")
            request_name = name  # echoed in an error answer: never a NaN or an object sent back
            handler = COMMANDS.get(request_name)
            if handler is None:
                return self.answer("response_default")
            return self._refusal(request_name) or await handler(self, msg)
        except PlugdError as err:
            return self.answer("error", request=request_name, error=str(err))

    @property
    def cause(self) -> Cause:
        return Cause("user", self.who)


@command("request_nodes")
async def _request_nodes(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    plug = api.plug
    now = plug.monotonic()
    own = {"id": plug.node_id, "name": plug.node_name, "nodeId": plug.node_id,
           "nodeName": plug.node_name, "online": True, "self": True,
           "things": [{"id": t.id, "value": t.value, "text": plug.wire_text(t)}
                      for t in plug.things.values() if t.id not in plug.invalid]}
    peers = [p.to_json(now) for p in plug.registry.peers.values()]
    return api.answer("response_nodes", nodes=[own, *peers])


@command("request_things")
async def _request_things(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    return api.answer("response_things", things=api.plug.things_view())


def _recipes_json(plug: Plug) -> list[dict[str, Any]]:
    book = plug.recipes
    return [{**r.to_json(), "matching": book.is_matching(r), "seen": book.latest(r)} for r in book]


@command("request_recipes")
async def _request_recipes(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    return api.answer("response_recipes", recipes=_recipes_json(api.plug))


@command("save_thing")
async def _save_thing(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    """Update `type`, `value` and `override` of a thing; each is optional."""
    plug = api.plug
    obj = _nested(msg, "thing")
    thing_id = read_int(obj, "id", "thing", low=1, high=MAX_NODE_ID)
    thing = plug.things.get(thing_id)
    if thing is None:
        raise ValidationError("thing.id", f"there is no local thing {thing_id}")
    if "type" in obj:
        kind = read_int(obj, "type", "thing", low=0, high=len(ThingType) - 1)
        if kind != thing.type:
            raise ValidationError("thing.type", f"thing {thing_id} ({thing.name}) is a "
                                                f"{thing.type.name} and cannot change type")
    override = read_bool(obj, "override", "thing") if "override" in obj else thing.override
    value = _settable_value(plug, thing_id, obj, "thing.value") if "value" in obj else thing.value
    # The value first: switching override off hands the thing to its recipes, which decide last.
    plug.set_thing(thing_id, value, api.cause)
    if override != thing.override:
        plug.set_override(thing_id, override, api.cause)
    await _save_things(api, thing, value, override)
    return api.answer("response_save_thing", success=True, thing=plug.things[thing_id].to_json())


async def _save_things(api: Api, before: Thing, value: float, override: bool) -> None:
    """Save the things after a user's change; if that fails, take back what can be taken back.

    A value or an override flag lives only here: it is put back (unless another
    change came since) and the answer says nothing changed. A relay that was
    switched stays switched: the load already felt it, and switching it back
    would be a second surprise; the answer says it was not saved, so a restart
    would bring back the saved state.
    """
    plug = api.plug
    try:
        await plug.save_things()
    except StoreError as err:
        thing = plug.things[before.id]
        if thing.override == override != before.override:
            plug.set_override(before.id, before.override, api.cause)
        if before.id == ThingId.PLUG and value != before.value:
            raise StoreError(f"the relay is switched {'on' if thing.value == ON else 'off'}, but "
                             f"that could not be saved (a restart would bring back the saved "
                             f"state): {err}") from None
        if thing.value == value != before.value:
            plug.set_thing(before.id, before.value, api.cause)
        raise StoreError(f"nothing changed: {err}") from None


def _settable_value(plug: Plug, thing_id: int, obj: dict[str, Any], field: str) -> float:
    key = field.rpartition(".")[2]
    value = read_float(obj, key, field.rpartition(".")[0])
    thing = plug.things[thing_id]
    if not plug.settable(thing_id):
        if value == thing.value:
            return value  # pages send the whole thing back; an unchanged measured value is fine
        raise ValidationError(field, f"thing {thing_id} ({thing.name}) is measured and cannot be set")
    if thing.type == ThingType.SWITCH and value not in (ON, OFF):
        raise ValidationError(field, f"thing {thing_id} ({thing.name}) is a switch: 0 or 1, got {value:g}")
    return value


@command("save_recipe")
async def _save_recipe(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    """Replace the recipe with that id, or add it; without an id (or 0) a new id is given."""
    plug = api.plug
    obj = dict(_nested(msg, "recipe"))
    async with plug.recipes_lock:
        return await _store_recipe(api, obj)


async def _store_recipe(api: Api, obj: dict[str, Any]) -> dict[str, Any]:
    """Under the recipe lock: the new id and the list it joins are read at the same moment."""
    plug = api.plug
    if obj.get("id") in (None, 0):
        obj["id"] = plug.recipes.next_id()
    recipe = Recipe.from_json(obj)
    local = plug.things.get(recipe.local_thing_id)
    if local is not None and not plug.settable(local.id):
        raise ValidationError("recipe.localThingId",
                              f"thing {local.id} ({local.name}) is measured and cannot be set")
    if local is not None and local.type == ThingType.SWITCH and recipe.local_value not in (ON, OFF):
        raise ValidationError("recipe.localValue",
                              f"thing {local.id} ({local.name}) is a switch: 0 or 1, "
                              f"got {recipe.local_value:g}")
    old = plug.recipes.get(recipe.id)
    if old is not None:  # keep what was seen, unless the source changed
        same_source = (old.source_node_id, old.source_thing_id) == (recipe.source_node_id,
                                                                    recipe.source_thing_id)
        if same_source and "sourceValue" not in obj:
            recipe = replace(recipe, source_value=old.source_value)
    recipes = plug.recipes.with_saved(recipe, plug.things)
    await plug.store_recipes(recipes)
    plug.record("recipe", f"recipe {recipe.id} ({recipe.name}) saved", api.cause)
    return api.answer("response_save_recipe", success=True, recipe=recipe.to_json())


@command("delete_recipe")
async def _delete_recipe(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    recipe_id = read_int(msg, "id", "message", low=1, high=MAX_NODE_ID)
    async with api.plug.recipes_lock:
        await api.plug.store_recipes(api.plug.recipes.without(recipe_id))
    api.plug.record("recipe", f"recipe {recipe_id} deleted", api.cause)
    return api.answer("response_delete_recipe", success=True, id=recipe_id)


@command("move_recipe")
async def _move_recipe(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    recipe_id = read_int(msg, "id", "message", low=1, high=MAX_NODE_ID)
    index = read_int(msg, "index", "message")
    async with api.plug.recipes_lock:
        await api.plug.store_recipes(api.plug.recipes.moved(recipe_id, index))
    return api.answer("response_move_recipe", success=True, recipes=_recipes_json(api.plug))


@command("switch")
async def _switch(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    """Switch the relay: `state` is "on", "off" or "toggle"."""
    state = msg.get("state")
    plug = api.plug
    current = plug.things[ThingId.PLUG].value
    targets = {"on": ON, "off": OFF, "toggle": OFF if current == ON else ON}
    if not isinstance(state, str) or state not in targets:  # a list or object is unhashable
        raise ValidationError("state", f"expected \"on\", \"off\" or \"toggle\", got {describe(state)}")
    before = plug.things[ThingId.PLUG]
    plug.set_thing(ThingId.PLUG, targets[state], api.cause)
    await _save_things(api, before, targets[state], before.override)
    return api.answer("response_switch", success=True, relay=plug.things[ThingId.PLUG].value == ON)


@command("request_status")
async def _request_status(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    return api.answer("response_status", **api.host.status())


@command("request_events")
async def _request_events(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    return api.answer("response_events", events=[e.to_json() for e in api.plug.events])


CALIBRATIONS = ("zero", "current", "power", "voltage", "reset")


@command("calibrate")
async def _calibrate(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    """`what`: zero (relay off), current/power (known load on), voltage, reset; `value` the known one."""
    meter = api.host.meter
    if meter is None:
        raise ValidationError("what", "this plug has no meter (adc.enabled = false)")
    what = msg.get("what")
    if what not in CALIBRATIONS:
        raise ValidationError("what", f"expected one of {', '.join(CALIBRATIONS)}, got {describe(what)}")
    value = read_float(msg, "value", "message") if "value" in msg else None
    calibration = meter.calibrate(what, value)
    await meter.store_calibration(calibration)
    api.plug.record("meter", f"calibrated: {what}" + (f" = {value:g}" if value is not None else ""),
                    api.cause)
    return api.answer("response_calibrate", success=True, calibration=calibration.to_json())


@command("simulate_load")
async def _simulate_load(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    """Only under --simulate: the load plugged into the simulated plug, in W."""
    simulation = api.host.simulation
    if simulation is None:
        raise ValidationError("command", "simulate_load works only under --simulate")
    watts = read_float(msg, "watts", "message")
    if not 0 <= watts <= 10_000:
        raise ValidationError("message.watts", f"must be between 0 and 10000 W, got {watts:g}")
    simulation.mains.load_watts = watts
    return api.answer("response_simulate_load", success=True, watts=watts)


@command("simulate_fault")
async def _simulate_fault(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    """Only under --simulate: break a chip, to see what the plug and its page do.

    `{"chip": "adc", "fault": "nack" | "gone" | "garbage" | "stuck" | null}` or
    `{"chip": "display", "fault": true | false}`.
    """
    simulation = api.host.simulation
    if simulation is None:
        raise ValidationError("command", "simulate_fault works only under --simulate")
    chip, fault = msg.get("chip"), msg.get("fault")
    if chip == "adc":
        if fault not in ADC_FAULTS:
            raise ValidationError("message.fault", f"expected one of {list(ADC_FAULTS)}, "
                                  f"got {describe(fault)}")
        simulation.adc.fault = fault
    elif chip == "display":
        simulation.gpio.fail = read_bool(msg, "fault", "message")
    else:
        raise ValidationError("message.chip", f"expected 'adc' or 'display', got {describe(chip)}")
    return api.answer("response_simulate_fault", success=True, chip=chip, fault=fault)


# --- sessions ---------------------------------------------------------------------------


@command("request_session")
async def _request_session(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    http = api.host.config.http
    return api.answer("response_session", authenticated=api.authenticated,
                      readingOpen=http.open_reading,
                      changesOpen=http.allow_unauthenticated_changes,
                      initialPassword=api.host.auth.initial_password_in_use())


def _text(msg: dict[str, Any], key: str) -> str:
    value = msg.get(key)
    if not isinstance(value, str) or not value:
        raise ValidationError(key, "is missing" if key not in msg else f"expected a string, got "
                                                                      f"{describe(value)}")
    return value


@command("login")
async def _login(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    """`password` (people), or `token` (the token file, for plugctl and scripts)."""
    auth, plug = api.host.auth, api.plug
    now = plug.monotonic()
    wait = auth.wait_before_login(api.who, now)
    if wait > 0:
        return api.answer("response_login", success=False,
                          error=f"too many failed attempts: wait {math.ceil(wait)} s")
    if "token" in msg:
        ok = auth.check_cli_token(_text(msg, "token"), api.who, now)
        why = "wrong token"
    else:
        # scrypt takes a good part of a second on a small Pi: not on the event loop
        ok = await asyncio.to_thread(auth.check_password, _text(msg, "password"), api.who, now)
        why = "wrong password"
    if not ok:
        plug.record("auth", f"failed login from {api.who}", api.cause)
        return api.answer("response_login", success=False, error=why)
    session = auth.new_session(plug.wall())
    try:
        await plug.writer.save(AUTH_FILE, auth.dump())
    except StoreError:
        auth.end_session(session)  # refused, so not logged in either
        raise
    api.session = session
    return api.answer("response_login", success=True, ticket=auth.ticket_for(api.session, now),
                      initialPassword=auth.initial_password_in_use())


@command("logout")
async def _logout(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    if api.session is not None:
        api.host.auth.end_session(api.session)
        api.session = None
        await api.plug.writer.save(AUTH_FILE, api.host.auth.dump())
    return api.answer("response_logout", success=True)


@command("change_password")
async def _change_password(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    """Ends every other session; this one gets a new ticket for its cookie."""
    auth, plug = api.host.auth, api.plug
    old, new = _text(msg, "old"), _text(msg, "new")
    now = plug.monotonic()
    if auth.wait_before_login(api.who, now) > 0 or not await asyncio.to_thread(
            auth.check_password, old, api.who, now):
        raise ValidationError("old", "is not the current password")
    before, session = auth.credentials, api.session
    await asyncio.to_thread(auth.set_password, new)
    api.session = auth.new_session(plug.wall())
    try:
        await plug.writer.save(AUTH_FILE, auth.dump())
    except StoreError:
        auth.credentials, api.session = before, session  # the old password stays the password
        raise
    auth.forget_initial_password()
    plug.record("auth", "password changed", api.cause)
    return api.answer("response_change_password", success=True,
                      ticket=auth.ticket_for(api.session, now))


# --- history, settings, export and import -----------------------------------------------


@command("request_history")
async def _request_history(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    """The last 10 minutes of power, one point a second: [seconds since 2000, W or null]."""
    return api.answer("response_history", history=api.host.history())


@command("request_settings")
async def _request_settings(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    return api.answer("response_settings", settings=settings.view(api.host.config))


@command("save_settings")
async def _save_settings(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    changes = settings.parse(_nested(msg, "settings"))
    await api.host.save_settings(changes)
    api.plug.record("config", f"settings changed: {', '.join(sorted(changes))}", api.cause)
    return api.answer("response_save_settings", success=True,
                      settings=settings.view(api.host.config))


@command("export_config")
async def _export_config(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    meter = api.host.meter
    return api.answer("response_export_config", config={
        "version": EXPORT_VERSION, "node": {"id": api.plug.node_id, "name": api.plug.node_name},
        "things": api.plug.things_json(), "recipes": [r.to_json() for r in api.plug.recipes],
        "settings": settings.view(api.host.config),
        "calibration": None if meter is None else meter.calibration.to_json()})


def _list(config: dict[str, Any], key: str) -> list[Any]:
    value = config.get(key, [])
    if not isinstance(value, list):
        raise ValidationError(f"config.{key}", f"expected a list, got {describe(value)}")
    return value


@command("import_config")
async def _import_config(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    """Recipes, settings, calibration and the things' override flags; refused whole on any error."""
    plug, meter = api.plug, api.host.meter
    config = _nested(msg, "config")
    version = read_int(config, "version", "config")
    if version != EXPORT_VERSION:
        raise ValidationError("config.version", f"expected {EXPORT_VERSION}, got {version}")
    recipes = [Recipe.from_json(r, f"config.recipes[{i}]")
               for i, r in enumerate(_list(config, "recipes"))]
    RecipeBook(recipes)  # unique ids, bounded
    for i, recipe in enumerate(recipes):
        if not plug.settable(recipe.local_thing_id):
            raise ValidationError(f"config.recipes[{i}].localThingId",
                                  f"there is no settable local thing {recipe.local_thing_id}")
    changes = settings.parse(config.get("settings") or {}, "config.settings")
    settings.apply(api.host.config, changes)  # checked before anything is stored
    overrides = {}
    for i, thing in enumerate(_list(config, "things")):
        obj = require_object(thing, f"config.things[{i}]")
        thing_id = read_int(obj, "id", f"config.things[{i}]")
        if thing_id in plug.things and "override" in obj:
            overrides[thing_id] = read_bool(obj, "override", f"config.things[{i}]")
    calibration = None
    if config.get("calibration") is not None and meter is not None:
        calibration = Calibration.from_json(config["calibration"])
    # Each part is stored whole or not at all; a disk failing between parts is told exactly.
    stored: list[str] = []
    before = {thing_id: plug.things[thing_id].override for thing_id in overrides}
    try:
        async with plug.recipes_lock:
            await plug.store_recipes(recipes)
        stored.append("the recipes")
        await api.host.save_settings(changes)
        stored.append("the settings")
        if calibration is not None and meter is not None:
            await meter.store_calibration(calibration)
            stored.append("the calibration")
        for thing_id, override in overrides.items():
            plug.set_override(thing_id, override, api.cause)
        await plug.save_things()
    except StoreError as err:
        for thing_id, override in before.items():  # flags live only in things.json: put back
            plug.set_override(thing_id, override, api.cause)
        raise StoreError(f"the import stopped ({' and '.join(stored) or 'nothing'} stored, "
                         f"the rest not): {err}") from None
    plug.record("config", "configuration imported", api.cause)
    return api.answer("response_import_config", success=True)


@command("simulate_hang")
async def _simulate_hang(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    """Only under --simulate: block the event loop, as a bug would, to see the watchdog act."""
    if api.host.simulation is None:
        raise ValidationError("command", "simulate_hang works only under --simulate")
    seconds = read_float(msg, "seconds", "message")
    if not 0 < seconds <= 60:
        raise ValidationError("message.seconds", f"must be between 0 and 60, got {seconds:g}")
    time.sleep(seconds)  # on purpose: nothing else runs meanwhile
    return api.answer("response_simulate_hang", success=True)
