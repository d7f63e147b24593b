import pytest

from plugd.core.model import Recipe, Relation, Thing, ThingType, default_things, name_problem, sanitize_name
from plugd.errors import ValidationError

RECIPE_JSON = {"id": 3, "name": "heat", "sourceNodeId": 10223344, "sourceThingId": 5,
               "sourceValue": 18.5, "relation": 3, "localThingId": 1, "targetValue": 19.0,
               "localValue": 1.0, "last_updated": 12345}


def test_default_things_have_the_ids_and_names_esp_pages_use():
    things = {t.id: (t.name, t.type) for t in default_things()}
    assert things == {1: ("Plug", ThingType.SWITCH), 2: ("Wats", ThingType.GENERIC),
                      3: ("Daily Wats/Hour", ThingType.GENERIC), 4: ("Clock", ThingType.CLOCK),
                      5: ("Current A", ThingType.GENERIC), 6: ("Total kWh", ThingType.GENERIC),
                      7: ("Yesterday Wh", ThingType.GENERIC)}


def test_thing_json_has_exactly_the_firmware_keys():
    thing = Thing(1, "Plug", ThingType.SWITCH, 1.0, True, 99)
    assert thing.to_json() == {"id": 1, "name": "Plug", "type": 1, "value": 1.0,
                               "override": True, "last_updated": 99}
    assert Thing.from_json(thing.to_json()) == thing


def test_recipe_json_round_trips_with_the_firmware_keys():
    recipe = Recipe.from_json(RECIPE_JSON)
    assert recipe.relation is Relation.SMALLER_THAN
    assert recipe.to_json() == RECIPE_JSON


@pytest.mark.parametrize("change, field", [
    ({"relation": 6}, "recipe.relation"),
    ({"relation": "3"}, "recipe.relation"),
    ({"targetValue": float("nan")}, "recipe.targetValue"),
    ({"localThingId": True}, "recipe.localThingId"),
    ({"name": "a&b"}, "recipe.name"),
    ({"name": ""}, "recipe.name"),
    ({"sourceNodeId": 2**31}, "recipe.sourceNodeId"),
    ({"id": 0}, "recipe.id"),
])
def test_bad_recipe_fields_are_named(change, field):
    with pytest.raises(ValidationError) as err:
        Recipe.from_json({**RECIPE_JSON, **change})
    assert err.value.field == field


def test_a_missing_field_is_named():
    obj = dict(RECIPE_JSON)
    del obj["localValue"]
    with pytest.raises(ValidationError, match=r"recipe.localValue: is missing"):
        Recipe.from_json(obj)


def test_relations_compare_as_the_firmware_does():
    assert [r.holds(1, 2) for r in Relation] == [False, True, False, True, True, False]
    assert [r.holds(2, 2) for r in Relation] == [True, False, False, False, True, True]


def test_names_are_checked_and_sanitized_for_the_wire():
    assert name_problem("Kitchen: fridge") is None
    assert "&" in name_problem("salt&pepper")
    assert sanitize_name(" pi\tplug\n") == "piplug"
    assert sanitize_name("pi&plug") == "piplug"
    assert len(sanitize_name("y" * 100)) == 32
    assert sanitize_name("&&&") == "plugd"
