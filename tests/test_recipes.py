import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugd.core.model import Recipe, Relation
from plugd.core.recipes import MAX_RECIPES, Action, RecipeBook, parse_outcomes
from plugd.errors import ValidationError

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


def test_of_the_recipes_becoming_true_together_the_last_in_order_wins():
    book = RecipeBook([recipe(1, Relation.BIGGER_THAN, 10, 1), recipe(2, Relation.BIGGER_THAN, 20, 0)])
    assert book.observe(SENSOR, 5, 25, now=1) == [Action(1, 0, 2)]
    assert book.observe(SENSOR, 5, 15, now=2) == []  # recipe 1 was already true: no new edge
    assert book.observe(SENSOR, 5, 5, now=3) == []
    assert book.observe(SENSOR, 5, 15, now=4) == [Action(1, 1, 1)]
    reordered = RecipeBook(book.moved(2, 0))
    assert reordered.observe(SENSOR, 5, 25, now=5) == [Action(1, 1, 1)]  # both unknown: 1 is last now


def test_a_recipe_fires_once_while_its_condition_holds():
    book = hysteresis()
    assert book.observe(SENSOR, 5, 18.0, now=1) == [Action(1, 1, 1)]
    assert book.observe(SENSOR, 5, 17.0, now=2) == []
    assert book.observe(SENSOR, 5, 18.5, now=3) == []
    assert book.outcome(book.get(1)) is True and book.outcome(book.get(2)) is False


def test_a_recipe_becoming_true_fires_whatever_other_sources_hold():
    book = RecipeBook([recipe(1, Relation.BIGGER_THAN, 10, 1, node=SENSOR),
                       recipe(2, Relation.EQUALS, 1, 0, node=888, thing=9)])
    assert book.observe(888, 9, 1.0, now=1) == [Action(1, 0, 2)]
    # recipe 1 becomes true later: it is the latest event, so it fires, though 2 is later in order
    assert book.observe(SENSOR, 5, 50, now=2) == [Action(1, 1, 1)]


def test_outcomes_survive_an_outage_and_a_restart_and_fire_nothing_unchanged():
    book = hysteresis()
    book.observe(SENSOR, 5, 18.0, now=1)
    book.forget(SENSOR)  # the node went offline
    assert book.latest(book.get(1)) is None and book.outcome(book.get(1)) is True
    assert not book.is_matching(book.get(1))  # nothing live to hold on
    assert book.observe(SENSOR, 5, 18.0, now=2) == []  # back, still cold: nothing new
    stored = json.loads(json.dumps(book.outcomes_json()))
    again = RecipeBook(list(book), parse_outcomes(stored))
    assert again.observe(SENSOR, 5, 18.0, now=3) == []
    assert again.observe(SENSOR, 5, 22.0, now=4) == [Action(1, 0, 2)]


def test_saved_or_edited_recipes_start_unknown_and_the_others_keep_theirs():
    book = hysteresis()
    book.observe(SENSOR, 5, 18.0, now=1)
    edited = book.with_saved(recipe(2, Relation.BIGGER_THAN, 17, 0), local_things=[1])
    assert book.edited(edited) == {2}
    book.replace_all(edited, fresh=book.edited(edited))
    assert book.outcome(book.get(1)) is True and book.outcome(book.get(2)) is None
    assert book.observe(SENSOR, 5, 18.0, now=2) == [Action(1, 0, 2)]  # 2 went unknown -> true
    renamed = book.with_saved(recipe(1, Relation.SMALLER_THAN, 19, 1, name="renamed"), [1])
    assert book.edited(renamed) == set()  # a new name changes no rule


def test_holding_names_the_last_recipe_whose_condition_holds_now():
    book = RecipeBook([recipe(1, Relation.BIGGER_THAN, 10, 1), recipe(2, Relation.BIGGER_THAN, 20, 0),
                       recipe(3, Relation.EQUALS, 1, 1, node=888, thing=9, local=2)])
    assert book.holding(1) is None  # nothing seen yet
    book.observe(SENSOR, 5, 15, now=1)
    assert book.holding(1) == Action(1, 1, 1)
    book.observe(SENSOR, 5, 25, now=2)
    assert book.holding(1) == Action(1, 0, 2)
    book.forget(SENSOR)
    assert book.holding(1) is None


@pytest.mark.parametrize("bad", [[], {"x": True}, {"1": 1}, {"-1": True}, "true"])
def test_stored_outcomes_are_read_strictly(bad):
    with pytest.raises(ValidationError, match="outcomes"):
        parse_outcomes(bad)


def test_a_recipe_whose_source_is_not_live_does_not_fire():
    book = hysteresis()
    assert book.observe(SENSOR, 5, 18.0, now=1, is_live=lambda node: node != SENSOR) == []
    book.forget(SENSOR)
    assert book.latest(book.get(1)) is None
    assert book.outcome(book.get(1)) is None  # a value from a node not live changed nothing


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
    with pytest.raises(ValidationError, match=r"recipe\.localThingId: there is no local thing 9"):
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


def edge_model(recipes, outcomes, node, thing, value, things):
    """The rule as written down: a recipe fires when its condition becomes true (from false or
    unknown); of those firing for one thing, the last in order wins."""
    winners = {}
    for r in recipes:
        if (r.source_node_id, r.source_thing_id) != (node, thing):
            continue
        holds = r.matches(value)
        if holds and outcomes.get(r.id) is not True:
            winners[r.local_thing_id] = r.local_value
        outcomes[r.id] = holds
    things.update(winners)


@given(recipes_st, observations)
def test_the_engine_fires_on_edges_as_the_rule_says(specs, seen):
    recipes = [recipe(i + 1, rel, tgt, val, node=node, thing=thing, local=local)
               for i, (rel, tgt, val, node, thing, local) in enumerate(specs)]
    book = RecipeBook(recipes)
    ours, theirs, outcomes = {}, {}, {}
    for step, (node, thing, value) in enumerate(seen):
        if value is None:  # offline: its values are gone, the outcomes stay
            book.forget(node)
            continue
        for action in book.observe(node, thing, float(value), now=step):
            ours[action.thing_id] = action.value
        edge_model(recipes, outcomes, node, thing, float(value), theirs)
        assert ours == theirs
        assert {r.id: book.outcome(r) for r in book if book.outcome(r) is not None} == outcomes


@given(recipes_st, observations)
def test_repeating_a_value_never_fires_again(specs, seen):
    book = RecipeBook([recipe(i + 1, rel, tgt, val, node=node, thing=thing, local=local)
                       for i, (rel, tgt, val, node, thing, local) in enumerate(specs)])
    for step, (node, thing, value) in enumerate(seen):
        if value is not None:
            book.observe(node, thing, float(value), now=step)
            assert book.observe(node, thing, float(value), now=step) == []
