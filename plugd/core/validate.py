"""One validator per kind of input: a recipe, a thing or a calibration is checked by the same
code whether it comes from the page, an import or a file read at start.

Each function takes the JSON value and `where` (the path shown in errors, e.g.
`config.recipes[2]`) and returns the entity or raises a ValidationError that
names the field. Settings are the one kind checked elsewhere, by
`plugd.service.settings`, since their rules are the configuration's. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from plugd.core.metering import Calibration
from plugd.core.model import (
    MAX_NODE_ID,
    MEASURED,
    OFF,
    ON,
    Recipe,
    Thing,
    ThingType,
    describe,
    read_bool,
    read_float,
    read_int,
    require_object,
)
from plugd.core.recipes import MAX_RECIPES
from plugd.errors import ValidationError


def thing_value(thing: Thing, value: float, field: str) -> float:
    """A value a person or a recipe may give `thing`: not a measured one, 0 or 1 for a switch."""
    if thing.id in MEASURED:
        raise ValidationError(field, f"thing {thing.id} ({thing.name}) is measured and cannot be set")
    if thing.type == ThingType.SWITCH and value not in (ON, OFF):
        raise ValidationError(field, f"thing {thing.id} ({thing.name}) is a switch: 0 or 1, "
                                     f"got {value:g}")
    return value


@dataclass(frozen=True, slots=True)
class ThingUpdate:
    """What a person asks of a local thing: a new value, an override flag, or either."""

    thing: Thing
    value: float | None = None
    override: bool | None = None


def thing_override(obj: Any, things: Mapping[int, Thing], where: str = "thing") -> ThingUpdate:
    """A local thing named by `id` (its own `type`, if given) and its `override` flag, if given.

    Any `value` is not read: an import carries the values its plug saw, which
    are not to be set here.
    """
    obj = require_object(obj, where)
    thing_id = read_int(obj, "id", where, low=1, high=MAX_NODE_ID)
    thing = things.get(thing_id)
    if thing is None:
        raise ValidationError(f"{where}.id", f"there is no local thing {thing_id}")
    if "type" in obj:
        kind = read_int(obj, "type", where, low=0, high=len(ThingType) - 1)
        if kind != thing.type:
            raise ValidationError(f"{where}.type", f"thing {thing_id} ({thing.name}) is a "
                                                   f"{thing.type.name} and cannot change type")
    override = read_bool(obj, "override", where) if "override" in obj else None
    return ThingUpdate(thing, override=override)


def thing_update(obj: Any, things: Mapping[int, Thing], where: str = "thing") -> ThingUpdate:
    """`thing_override`, and a `value` the thing may take, if given.

    An unchanged value passes even for a measured thing: pages send the whole
    thing back.
    """
    update = thing_override(obj, things, where)
    if "value" not in obj:
        return update
    value = read_float(obj, "value", where)
    if value != update.thing.value:
        thing_value(update.thing, value, f"{where}.value")
    return ThingUpdate(update.thing, value, update.override)


def recipe(obj: Any, things: Mapping[int, Thing], where: str = "recipe") -> Recipe:
    """A recipe: its fields, and a local thing that exists and may take its value."""
    parsed = Recipe.from_json(obj, where)
    local = things.get(parsed.local_thing_id)
    if local is None:
        raise ValidationError(f"{where}.localThingId",
                              f"there is no local thing {parsed.local_thing_id}")
    if local.id in MEASURED:
        raise ValidationError(f"{where}.localThingId",
                              f"thing {local.id} ({local.name}) is measured and cannot be set")
    thing_value(local, parsed.local_value, f"{where}.localValue")
    return parsed


def recipes(obj: Any, things: Mapping[int, Thing], where: str = "recipes") -> list[Recipe]:
    """A recipe list: each recipe valid, ids unique, at most MAX_RECIPES."""
    if not isinstance(obj, list):
        raise ValidationError(where, f"expected a list, got {describe(obj)}")
    if len(obj) > MAX_RECIPES:
        raise ValidationError(where, f"at most {MAX_RECIPES} recipes, got {len(obj)}")
    parsed = [recipe(item, things, f"{where}[{i}]") for i, item in enumerate(obj)]
    seen: set[int] = set()
    for i, item in enumerate(parsed):
        if item.id in seen:
            raise ValidationError(f"{where}[{i}].id", f"recipe id {item.id} is used twice")
        seen.add(item.id)
    return parsed


def things(obj: Any, where: str = "things") -> list[Thing]:
    """The stored things: each valid, ids unique, a switch at 0 or 1."""
    if not isinstance(obj, list):
        raise ValidationError(where, f"expected a list, got {describe(obj)}")
    parsed = [Thing.from_json(item, f"{where}[{i}]") for i, item in enumerate(obj)]
    seen: set[int] = set()
    for i, thing in enumerate(parsed):
        if thing.id in seen:
            raise ValidationError(f"{where}[{i}].id", f"thing id {thing.id} is used twice")
        seen.add(thing.id)
        if thing.type == ThingType.SWITCH and thing.value not in (ON, OFF):
            raise ValidationError(f"{where}[{i}].value", f"thing {thing.id} ({thing.name}) is a "
                                                         f"switch: 0 or 1, got {thing.value:g}")
    return parsed


def calibration(obj: Any, where: str = "calibration") -> Calibration:
    """A calibration as `Calibration.from_json` reads calibration.json, its fields under `where`."""
    try:
        return Calibration.from_json(obj)
    except ValidationError as err:
        field = err.field.removeprefix("calibration")
        raise ValidationError(where + field, err.problem) from None
