"""The WebSocket commands: validate a request, ask the plug, shape the answer.

Requests and answers keep the ESP8266 firmware's shapes; plugd's own commands
(`request_status`, `switch`, `delete_recipe`, `move_recipe`, `request_events`)
are additions. Bad input gets `{"command": "error", "error": ...}` naming the
field, and nothing stored changes.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from plugd.errors import PlugdError, ValidationError
from plugd.model import (MAX_NODE_ID, OFF, ON, Recipe, ThingId, ThingType, describe, read_bool,
                         read_float, read_int, require_object)
from plugd.plug import Cause, Plug

if TYPE_CHECKING:
    from plugd.hardware.sim.rig import Simulation
    from plugd.meter import Meter

Handler = Callable[["Api", dict[str, Any]], Awaitable[dict[str, Any]]]
COMMANDS: dict[str, Handler] = {}


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
        except ValueError:
            raise ValidationError(key, "is a string that is not valid JSON") from None
    return require_object(value, key)


class Api:
    def __init__(self, plug: Plug, status: Callable[[], dict[str, Any]], who: str = "user", *,
                 meter: Meter | None = None, simulation: Simulation | None = None) -> None:
        self.plug = plug
        self.status = status
        self.who = who
        self.meter = meter
        self.simulation = simulation

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
            request_name = msg.get("command")
            if not isinstance(request_name, str):
                raise ValidationError("command", "is missing" if "command" not in msg
                                      else f"expected a string, got {describe(request_name)}")
            handler = COMMANDS.get(request_name)
            if handler is None:
                return self.answer("response_default")
            return await handler(self, msg)
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
    if override != thing.override:
        plug.set_override(thing_id, override, api.cause)
    plug.set_thing(thing_id, value, api.cause)
    await plug.save_things()
    return api.answer("response_save_thing", success=True, thing=plug.things[thing_id].to_json())


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
    await api.plug.store_recipes(api.plug.recipes.without(recipe_id))
    api.plug.record("recipe", f"recipe {recipe_id} deleted", api.cause)
    return api.answer("response_delete_recipe", success=True, id=recipe_id)


@command("move_recipe")
async def _move_recipe(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    recipe_id = read_int(msg, "id", "message", low=1, high=MAX_NODE_ID)
    index = read_int(msg, "index", "message")
    await api.plug.store_recipes(api.plug.recipes.moved(recipe_id, index))
    return api.answer("response_move_recipe", success=True, recipes=_recipes_json(api.plug))


@command("switch")
async def _switch(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    """Switch the relay: `state` is "on", "off" or "toggle"."""
    state = msg.get("state")
    plug = api.plug
    current = plug.things[ThingId.PLUG].value
    targets = {"on": ON, "off": OFF, "toggle": OFF if current == ON else ON}
    if state not in targets:
        raise ValidationError("state", f"expected \"on\", \"off\" or \"toggle\", got {describe(state)}")
    plug.set_thing(ThingId.PLUG, targets[state], api.cause)
    await plug.save_things()
    return api.answer("response_switch", success=True, relay=plug.things[ThingId.PLUG].value == ON)


@command("request_status")
async def _request_status(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    return api.answer("response_status", **api.status())


@command("request_events")
async def _request_events(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    return api.answer("response_events", events=[e.to_json() for e in api.plug.events])


CALIBRATIONS = ("zero", "current", "power", "voltage", "reset")


@command("calibrate")
async def _calibrate(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    """`what`: zero (relay off), current/power (known load on), voltage, reset; `value` the known one."""
    if api.meter is None:
        raise ValidationError("what", "this plug has no meter (adc.enabled = false)")
    what = msg.get("what")
    if what not in CALIBRATIONS:
        raise ValidationError("what", f"expected one of {', '.join(CALIBRATIONS)}, got {describe(what)}")
    value = read_float(msg, "value", "message") if "value" in msg else None
    calibration = api.meter.calibrate(what, value)
    await api.meter.store_calibration(calibration)
    api.plug.record("meter", f"calibrated: {what}" + (f" = {value:g}" if value is not None else ""),
                    api.cause)
    return api.answer("response_calibrate", success=True, calibration=calibration.to_json())


@command("simulate_load")
async def _simulate_load(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    """Only under --simulate: the load plugged into the simulated plug, in W."""
    if api.simulation is None:
        raise ValidationError("command", "simulate_load works only under --simulate")
    watts = read_float(msg, "watts", "message")
    if not 0 <= watts <= 10_000:
        raise ValidationError("message.watts", f"must be between 0 and 10000 W, got {watts:g}")
    api.simulation.mains.load_watts = watts
    return api.answer("response_simulate_load", success=True, watts=watts)
