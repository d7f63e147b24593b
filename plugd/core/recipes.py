"""The recipe engine: IF a source value stands in a relation to a target THEN set a local thing.

Pure and event-driven. `observe` is called when a source value arrives (a
packet, a local thing, the clock) and returns the actions to take. Recipes are
indexed by source, so one value costs work in proportion to the recipes it
concerns, not to all recipes.

Recipes fire on the *change* of their outcome, as Tasmota rules, Shelly
actions and Home Assistant automations do: when a recipe's condition becomes
true (from false, or from unknown for a recipe just made), it sets its local
thing once; while the condition stays true, later values do not set it again,
so a person's switch holds until some recipe's condition next becomes true.
The ESP8266 firmware instead re-asserts every matching recipe on every loop.

The rules of the edges:

- each recipe keeps its last outcome (true, false or unknown) across source
  outages and, through `outcomes_json`, across restarts: a node that misses a
  few broadcasts, or a restart, fires nothing that did not change;
- a recipe saved, edited or imported starts unknown; the others keep theirs;
- when one value makes several recipes for the same thing become true, the
  last in order wins; a recipe already true does not fire again;
- `holding` tells which recipe applies when a thing is handed back to its
  recipes (override switched off): the last in order whose condition holds on
  the latest values.

Whether a recipe may set its thing (override, a protection trip) is for the
caller to decide: `plugd.core.authority`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from plugd.core.model import Recipe
from plugd.errors import ValidationError

MAX_RECIPES = 256

SourceKey = tuple[int, int]  # (node id, thing id)


@dataclass(frozen=True, slots=True)
class Action:
    """Set local thing `thing_id` to `value`, because recipe `recipe_id` matched."""

    thing_id: int
    value: float
    recipe_id: int


class RecipeBook:
    """The ordered recipes, the latest value seen from each source and each recipe's outcome."""

    def __init__(self, recipes: Iterable[Recipe] = (),
                 outcomes: Mapping[int, bool] | None = None) -> None:
        self._recipes: list[Recipe] = []
        #: (value, time) last seen from each live source since start.
        self._latest: dict[SourceKey, tuple[float, int]] = {}
        self._by_source: dict[SourceKey, list[int]] = {}
        #: Each recipe's last outcome by id; absent: unknown.
        self._outcome: dict[int, bool] = {}
        #: Counts the changes of outcomes, so a caller knows when they are worth writing.
        self.revision = 0
        self.replace_all(list(recipes))
        if outcomes:
            self._outcome = {rid: value for rid, value in outcomes.items() if self.get(rid)}

    # --- reading ------------------------------------------------------------

    def __iter__(self) -> Iterator[Recipe]:
        """The recipes in order, each with the last value seen from its source."""
        return (self._current(r) for r in self._recipes)

    def __len__(self) -> int:
        """How many recipes there are."""
        return len(self._recipes)

    def get(self, recipe_id: int) -> Recipe | None:
        """The recipe with this id (with the last value seen), or None."""
        return next((self._current(r) for r in self._recipes if r.id == recipe_id), None)

    def _current(self, recipe: Recipe) -> Recipe:
        seen = self._latest.get((recipe.source_node_id, recipe.source_thing_id))
        if seen is None:
            return recipe
        return replace(recipe, source_value=seen[0], last_updated=seen[1])

    def watches(self, node_id: int, thing_id: int) -> bool:
        """Whether any recipe reads this source (the common answer for a packet is no)."""
        return (node_id, thing_id) in self._by_source

    def latest(self, recipe: Recipe) -> float | None:
        """The last value seen from the recipe's source while it was live, or None."""
        seen = self._latest.get((recipe.source_node_id, recipe.source_thing_id))
        return None if seen is None else seen[0]

    def outcome(self, recipe: Recipe) -> bool | None:
        """The recipe's last outcome: True, False, or None while unknown."""
        return self._outcome.get(recipe.id)

    def is_matching(self, recipe: Recipe) -> bool:
        """Whether the recipe's condition holds on the latest value of its source while live."""
        value = self.latest(recipe)
        return value is not None and recipe.matches(value)

    def outcomes_json(self) -> dict[str, bool]:
        """The known outcomes, as kept in the state directory so a restart fires nothing."""
        return {str(rid): value for rid, value in self._outcome.items()}

    # --- changing the list: `with_saved`, `without` and `moved` return a new list and
    # change nothing, so the caller can store it first and `replace_all` after.

    def replace_all(self, recipes: list[Recipe], fresh: Iterable[int] = ()) -> None:
        """Make `recipes` the list in force; the ids in `fresh` (saved, edited, imported) and
        recipes not in the list before start unknown, the others keep their outcome."""
        ids = [r.id for r in recipes]
        if len(set(ids)) != len(ids):
            raise ValidationError("recipes", "recipe ids must be unique")
        if len(recipes) > MAX_RECIPES:
            raise ValidationError("recipes", f"at most {MAX_RECIPES} recipes, got {len(recipes)}")
        dropped = set(fresh)
        self._recipes = list(recipes)
        by_source: dict[SourceKey, list[int]] = defaultdict(list)
        for position, recipe in enumerate(self._recipes):
            by_source[(recipe.source_node_id, recipe.source_thing_id)].append(position)
        self._by_source = dict(by_source)
        self._outcome = {rid: value for rid, value in self._outcome.items()
                         if rid in set(ids) and rid not in dropped}
        self.revision += 1

    def edited(self, recipes: list[Recipe]) -> set[int]:
        """The ids in `recipes` that are new or whose rule differs from the one in force."""
        before = {r.id: _rule(r) for r in self._recipes}
        return {r.id for r in recipes if before.get(r.id) != _rule(r)}

    def with_saved(self, recipe: Recipe, local_things: Iterable[int]) -> list[Recipe]:
        """The list with `recipe` replacing the one of its id, or appended when new."""
        if recipe.local_thing_id not in set(local_things):
            raise ValidationError("recipe.localThingId",
                                  f"there is no local thing {recipe.local_thing_id}")
        recipes = list(self._recipes)
        for position, old in enumerate(recipes):
            if old.id == recipe.id:
                recipes[position] = recipe
                return recipes
        if len(recipes) >= MAX_RECIPES:
            raise ValidationError("recipe", f"there are already {MAX_RECIPES} recipes, the most kept")
        return [*recipes, recipe]

    def without(self, recipe_id: int) -> list[Recipe]:
        """The list less the recipe with this id (which must exist)."""
        self._position(recipe_id)
        return [r for r in self._recipes if r.id != recipe_id]

    def moved(self, recipe_id: int, index: int) -> list[Recipe]:
        """The list with the recipe moved to `index` (0 = evaluated first)."""
        position = self._position(recipe_id)
        if not 0 <= index < len(self._recipes):
            raise ValidationError("index", f"must be between 0 and {len(self._recipes) - 1}, got {index}")
        recipes = list(self._recipes)
        recipes.insert(index, recipes.pop(position))
        return recipes

    def next_id(self) -> int:
        """The id a new recipe gets: one above the highest."""
        return max((r.id for r in self._recipes), default=0) + 1

    def _position(self, recipe_id: int) -> int:
        for position, recipe in enumerate(self._recipes):
            if recipe.id == recipe_id:
                return position
        raise ValidationError("id", f"there is no recipe {recipe_id}")

    # --- evaluating ---------------------------------------------------------

    def forget(self, node_id: int) -> None:
        """Drop the values seen from a node that went offline; outcomes stay as they were."""
        for key in [k for k in self._latest if k[0] == node_id]:
            del self._latest[key]

    def forget_source(self, node_id: int, thing_id: int) -> None:
        """Drop the value seen from one source (its sensor failed); outcomes stay."""
        self._latest.pop((node_id, thing_id), None)

    def observe(self, node_id: int, thing_id: int, value: float, now: int,
                is_live: Callable[[int], bool] = lambda node_id: True) -> list[Action]:
        """Take a new source value; return one action per local thing a recipe fires for.

        A recipe fires when its condition becomes true on this value; of those
        firing for one local thing, the last in order wins. A value from a
        node that is not live counts as no value and changes no outcome.
        """
        key = (node_id, thing_id)
        positions = self._by_source.get(key)
        if positions is None:
            return []
        if not is_live(node_id):
            self._latest.pop(key, None)
            return []
        self._latest[key] = (value, now)
        winners: dict[int, Recipe] = {}
        for position in positions:
            recipe = self._recipes[position]
            holds = recipe.matches(value)
            if holds and self._outcome.get(recipe.id) is not True:
                winners[recipe.local_thing_id] = recipe  # positions ascend: the last one stays
            if self._outcome.get(recipe.id) is not holds:
                self._outcome[recipe.id] = holds
                self.revision += 1
        return [Action(thing, recipe.local_value, recipe.id) for thing, recipe in winners.items()]

    def holding(self, thing_id: int) -> Action | None:
        """The action of the last recipe for `thing_id` whose condition holds on the latest
        value of its (live) source, or None: what a thing handed back to its recipes takes."""
        chosen = None
        for recipe in self._recipes:
            if recipe.local_thing_id == thing_id and self.is_matching(recipe):
                chosen = recipe
        return None if chosen is None else Action(thing_id, chosen.local_value, chosen.id)


def _rule(recipe: Recipe) -> tuple[Any, ...]:
    """What a recipe decides by: everything but its name and the last value it saw."""
    return (recipe.source_node_id, recipe.source_thing_id, recipe.relation, recipe.target_value,
            recipe.local_thing_id, recipe.local_value)


def parse_outcomes(obj: Any) -> dict[int, bool]:
    """The stored outcomes: an object of recipe id (as text) to true or false."""
    if not isinstance(obj, dict):
        raise ValidationError("outcomes", "expected an object")
    outcomes = {}
    for key, value in obj.items():
        if not (isinstance(key, str) and key.isdigit()) or not isinstance(value, bool):
            raise ValidationError(f"outcomes.{key}", "expected a recipe id with true or false")
        outcomes[int(key)] = value
    return outcomes
