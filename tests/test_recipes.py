import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugd.errors import ValidationError
from plugd.core.model import Recipe, Relation
from plugd.core.recipes import MAX_RECIPES, Action, RecipeBook

OWN = 4242
SENSOR = 777


def recipe(rid, relation, target, value, *, node=SENSOR, thing=5, local=1, name=None):
    return Recipe(rid, name or f"r{rid}", node, thing, 0.0, Relation(relation), local,
                  target, value)


def hysteresis():
    # temperature below 19: heater on; above 21: heater off
    return RecipeBook([recipe(1, Relation.SMALLER_THAN, 19, 1), recipe(2, Relation.BIGGER_THAN, 21, 0)])


def test_hysteresis_switches_on_below_and_off_above_and_holds_between():
    book = hysteresis()
    assert book.observe(SENSOR, 5, 18.0, now=1) == [Action(1, 1, 1)]
    assert book.observe(SENSOR, 5, 20.0, now=2) == []  # no match: the plug keeps its value
    assert book.observe(SENSOR, 5, 22.0, now=3) == [Action(1, 0, 2)]


def test_the_last_matching_recipe_in_order_wins():
    book = RecipeBook([recipe(1, Relation.BIGGER_THAN, 10, 1), recipe(2, Relation.BIGGER_THAN, 20, 0)])
    assert book.observe(SENSOR, 5, 25, now=1) == [Action(1, 0, 2)]
    assert book.observe(SENSOR, 5, 15, now=2) == [Action(1, 1, 1)]
    reordered = RecipeBook(book.moved(2, 0))
    assert reordered.observe(SENSOR, 5, 25, now=3) == [Action(1, 1, 1)]


def test_recipes_on_other_sources_for_the_same_thing_take_part():
    book = RecipeBook([recipe(1, Relation.BIGGER_THAN, 10, 1, node=SENSOR),
                       recipe(2, Relation.EQUALS, 1, 0, node=888, thing=9)])
    book.observe(888, 9, 1.0, now=1)
    # recipe 2 (later in order) still matches on its last value, so it wins
    assert book.observe(SENSOR, 5, 50, now=2) == [Action(1, 0, 2)]


def test_a_recipe_whose_source_is_not_live_does_not_fire():
    book = hysteresis()
    assert book.observe(SENSOR, 5, 18.0, now=1, is_live=lambda node: node != SENSOR) == []
    book.forget(SENSOR)
    assert book.latest(book.get(1)) is None
    assert not book.is_matching(book.get(1))


def test_the_own_node_is_a_valid_source():
    book = RecipeBook([recipe(1, Relation.NOT_SMALLER_THAN, 22, 0, node=OWN, thing=4)])
    assert book.observe(OWN, 4, 21, now=1) == []
    assert book.observe(OWN, 4, 22, now=2) == [Action(1, 0, 1)]


def test_observing_records_the_source_value_in_the_recipe():
    book = hysteresis()
    book.observe(SENSOR, 5, 18.25, now=77)
    assert [(r.source_value, r.last_updated) for r in book] == [(18.25, 77), (18.25, 77)]
    assert book.is_matching(book.get(1)) and not book.is_matching(book.get(2))


def test_unrelated_sources_cost_nothing():
    book = hysteresis()
    assert book.observe(999, 1, 5.0, now=1) == []
    assert book.latest(book.get(1)) is None


def test_saving_checks_the_local_thing_and_changes_nothing_until_replaced():
    book = hysteresis()
    with pytest.raises(ValidationError, match="recipe.localThingId: there is no local thing 9"):
        book.with_saved(recipe(3, 0, 1, 1, local=9), local_things=[1, 2, 3, 4])
    new = book.with_saved(recipe(3, 0, 1, 1), local_things=[1, 2, 3, 4])
    assert [r.id for r in book] == [1, 2] and [r.id for r in new] == [1, 2, 3]
    replaced = book.with_saved(recipe(1, 0, 5, 0, name="changed"), local_things=[1])
    assert [r.name for r in replaced] == ["changed", "r2"]


def test_delete_and_move_name_a_missing_recipe():
    book = hysteresis()
    with pytest.raises(ValidationError, match="id: there is no recipe 9"):
        book.without(9)
    with pytest.raises(ValidationError, match="index"):
        book.moved(1, 2)
    assert [r.id for r in book.without(1)] == [2]
    assert book.next_id() == 3


def test_the_list_is_bounded_and_ids_unique():
    book = RecipeBook([recipe(i, 0, 0, 1) for i in range(1, MAX_RECIPES + 1)])
    with pytest.raises(ValidationError, match="already"):
        book.with_saved(recipe(MAX_RECIPES + 1, 0, 0, 1), [1])
    with pytest.raises(ValidationError, match="unique"):
        RecipeBook([recipe(1, 0, 0, 1), recipe(1, 0, 0, 0)])


# --- the engine against the firmware's loop -------------------------------------------

recipes_st = st.lists(
    st.builds(lambda rel, tgt, val, node, thing, local: (rel, tgt, val, node, thing, local),
              st.integers(0, 5), st.integers(0, 4), st.integers(0, 1), st.sampled_from([OWN, SENSOR, 888]),
              st.integers(1, 3), st.integers(1, 3)),
    max_size=12)
# (node, thing, value); value None: the node went offline
observations = st.lists(st.tuples(st.sampled_from([OWN, SENSOR, 888, 999]), st.integers(1, 3),
                                  st.one_of(st.none(), st.integers(0, 4))), max_size=30)


def firmware_loop(recipes, latest, state):
    """What the ESP's loop does: every recipe, in order, on the latest values; last match wins."""
    for r in recipes:
        value = latest.get((r.source_node_id, r.source_thing_id))
        if value is not None and r.matches(value):
            state[r.local_thing_id] = r.local_value


@given(recipes_st, observations)
def test_event_driven_evaluation_equals_the_firmware_loop(specs, seen):
    recipes = [recipe(i + 1, rel, tgt, val, node=node, thing=thing, local=local)
               for i, (rel, tgt, val, node, thing, local) in enumerate(specs)]
    book = RecipeBook(recipes)
    ours, theirs, latest = {}, {}, {}
    for step, (node, thing, value) in enumerate(seen):
        if value is None:  # offline: its values are gone, nothing is decided until the next
            book.forget(node)
            latest = {k: v for k, v in latest.items() if k[0] != node}
            continue
        for action in book.observe(node, thing, float(value), now=step):
            ours[action.thing_id] = action.value
        if any((r.source_node_id, r.source_thing_id) == (node, thing) for r in recipes):
            latest[(node, thing)] = float(value)
            firmware_loop(recipes, latest, theirs)
        assert ours == theirs
        assert {r.id for r in book if book.is_matching(r)} == {
            r.id for r in recipes if (v := latest.get((r.source_node_id, r.source_thing_id))) is not None
            and r.matches(v)}
