"""One validator per kind of input: a recipe or a thing is checked by the same code whether it
comes from the page, an import or a file read at start.

Each function takes the JSON value and `where` (the path shown in errors, e.g.
`config.recipes[2]`) and returns the entity or raises a ValidationError that
names the field. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plugd.core.model import MEASURED, OFF, ON, Recipe, Thing, ThingType, describe
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
