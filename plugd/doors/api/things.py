"""Commands on the plug's things, its recipes and the nodes it hears."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from plugd.core import validate
from plugd.core.labels import KINDS, labels_json, parse_label
from plugd.core.model import (
    MAX_NODE_ID,
    OFF,
    ON,
    Thing,
    ThingId,
    describe,
    read_int,
)
from plugd.doors.api.base import Api, command, nested
from plugd.doors.messages import node_json
from plugd.errors import StoreError, ValidationError
from plugd.service.config import MAX_AUTO_OFF
from plugd.service.plug import Plug


@command("request_nodes")
async def _request_nodes(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    plug = api.plug
    own = {"id": plug.node_id, "name": plug.node_name, "nodeId": plug.node_id,
           "nodeName": plug.node_name, "online": True, "self": True,
           "things": [{"id": t.id, "value": t.value, "text": plug.wire_text(t),
                       **plug.core.shown(plug.node_id, t.id).to_json()}
                      for t in plug.things.values() if t.id not in plug.invalid]}
    peers = [node_json(plug, p) for p in plug.registry.peers.values()]
    return api.answer("response_nodes", nodes=[own, *peers], labels=labels_json(plug.labels),
                      kinds=sorted(KINDS))


@command("save_label")
async def _save_label(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    """Name a peer's value for people (`label`: nodeId, thingId, name, unit, kind); kept in
    labels.json and shown by the page, the events and the MQTT bridge."""
    plug = api.plug
    node_id, thing_id, label = parse_label(nested(msg, "label"))
    if node_id == plug.node_id:
        raise ValidationError("label.nodeId", f"{node_id} is this plug: its own values have "
                                              "their names already")
    await plug.save_label(node_id, thing_id, label)
    plug.record("label", f"value {thing_id} of node {node_id} named “{label.name}”", api.cause,
                f"label {node_id}/{thing_id}")
    return api.answer("response_save_label", success=True, labels=labels_json(plug.labels))


@command("delete_label")
async def _delete_label(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    """Forget a person's label: the value is shown by what its node says, or assumed."""
    plug = api.plug
    node_id = read_int(msg, "nodeId", "message", low=1, high=MAX_NODE_ID)
    thing_id = read_int(msg, "thingId", "message", low=1, high=MAX_NODE_ID)
    await plug.save_label(node_id, thing_id, None)
    plug.record("label", f"label of value {thing_id} of node {node_id} deleted", api.cause,
                f"label {node_id}/{thing_id}")
    return api.answer("response_delete_label", success=True, labels=labels_json(plug.labels))


@command("request_things")
async def _request_things(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    return api.answer("response_things", things=api.plug.things_view())


def _recipes_json(plug: Plug) -> list[dict[str, Any]]:
    book = plug.recipes
    shown = plug.core.shown
    return [{**r.to_json(), "matching": book.is_matching(r), "outcome": book.outcome(r),
             "seen": book.latest(r),
             "source": shown(r.source_node_id, r.source_thing_id).to_json(),
             "local": shown(plug.node_id, r.local_thing_id).to_json()} for r in book]


@command("request_recipes")
async def _request_recipes(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    return api.answer("response_recipes", recipes=_recipes_json(api.plug))


@command("save_thing")
async def _save_thing(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    """Update `type`, `value` and `override` of a thing; each is optional."""
    plug = api.plug
    update = validate.thing_update(nested(msg, "thing"), plug.things, "thing")
    thing, thing_id = update.thing, update.thing.id
    value = thing.value if update.value is None else update.value
    override = thing.override if update.override is None else update.override
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


@command("save_recipe")
async def _save_recipe(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    """Replace the recipe with that id, or add it; without an id (or 0) a new id is given."""
    plug = api.plug
    obj = dict(nested(msg, "recipe"))
    async with plug.recipes_lock:
        return await _store_recipe(api, obj)


async def _store_recipe(api: Api, obj: dict[str, Any]) -> dict[str, Any]:
    """Under the recipe lock: the new id and the list it joins are read at the same moment."""
    plug = api.plug
    if obj.get("id") in (None, 0):
        obj["id"] = plug.recipes.next_id()
    recipe = validate.recipe(obj, plug.things)
    old = plug.recipes.get(recipe.id)
    if old is not None:  # keep what was seen, unless the source changed
        same_source = (old.source_node_id, old.source_thing_id) == (recipe.source_node_id,
                                                                    recipe.source_thing_id)
        if same_source and "sourceValue" not in obj:
            recipe = replace(recipe, source_value=old.source_value)
    recipes = plug.recipes.with_saved(recipe, plug.things)
    await plug.store_recipes(recipes)
    plug.record("recipe", f"recipe {recipe.id} ({recipe.name}) saved", api.cause, f"recipe {recipe.id}")
    return api.answer("response_save_recipe", success=True, recipe=recipe.to_json())


@command("delete_recipe")
async def _delete_recipe(api: Api, msg: dict[str, Any]) -> dict[str, Any]:
    recipe_id = read_int(msg, "id", "message", low=1, high=MAX_NODE_ID)
    async with api.plug.recipes_lock:
        await api.plug.store_recipes(api.plug.recipes.without(recipe_id))
    api.plug.record("recipe", f"recipe {recipe_id} deleted", api.cause, f"recipe {recipe_id}")
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
    """Switch the relay: `state` is "on", "off" or "toggle"; `for` (seconds, with "on" or a
    toggle that switches on) switches it off again after that long."""
    state = msg.get("state")
    plug = api.plug
    current = plug.things[ThingId.PLUG].value
    targets = {"on": ON, "off": OFF, "toggle": OFF if current == ON else ON}
    if not isinstance(state, str) or state not in targets:  # a list or object is unhashable
        raise ValidationError("state", f"expected \"on\", \"off\" or \"toggle\", got {describe(state)}")
    hold = _duration(msg) if "for" in msg else None
    if hold is not None and targets[state] != ON:
        raise ValidationError("for", "is for switching on: a switch off ends any auto-off")
    before = plug.things[ThingId.PLUG]
    if hold is not None:
        plug.switch_for(hold, api.cause)
    else:
        plug.set_thing(ThingId.PLUG, targets[state], api.cause)
    await _save_things(api, before, targets[state], before.override)
    return api.answer("response_switch", success=True, relay=plug.things[ThingId.PLUG].value == ON,
                      autoOffAt=plug.off_at)


def _duration(msg: dict[str, Any]) -> float:
    """The `for` of a switch: seconds, more than 0 and at most a week."""
    value = msg["for"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValidationError("for", f"expected a number of seconds, got {describe(value)}")
    if not 0 < value <= MAX_AUTO_OFF:
        raise ValidationError("for", f"must be more than 0 and at most {MAX_AUTO_OFF} seconds "
                                     f"(a week), got {value:g}")
    return float(value)
