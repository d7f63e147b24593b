"""The recipe engine: IF a source value stands in a relation to a target THEN set a local thing.

Pure and event-driven. `observe` is called when a source value arrives (a
packet, a local thing, the clock) and returns the actions to take. Recipes are
indexed by source and by local thing, so one value costs work in proportion to
the recipes it concerns, not to all recipes.

The semantics are those of the ESP8266 firmware's evaluation loop: recipes are
taken in list order, the last matching recipe for a local thing wins, and when
none matches the thing keeps its value. Whether a thing is under manual
override is for the caller, which owns the things, to apply.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

from plugd.errors import ValidationError
from plugd.core.model import Recipe

MAX_RECIPES = 256

SourceKey = tuple[int, int]  # (node id, thing id)


@dataclass(frozen=True, slots=True)
class Action:
    """Set local thing `thing_id` to `value`, because recipe `recipe_id` matched."""

    thing_id: int
    value: float
    recipe_id: int


class RecipeBook:
    """The ordered recipes, with the latest value seen from each of their sources."""

    def __init__(self, recipes: Iterable[Recipe] = ()) -> None:
        self._recipes: list[Recipe] = []
        #: (value, time) last seen from each source since start.
        self._latest: dict[SourceKey, tuple[float, int]] = {}
        self._by_source: dict[SourceKey, list[int]] = {}
        #: Per local thing: the positions of its recipes that match now, and the last of them.
        self._matching: dict[int, set[int]] = {}
        self._winner: dict[int, int] = {}
        self.replace_all(list(recipes))

    # --- reading ------------------------------------------------------------

    def __iter__(self) -> Iterator[Recipe]:
        """The recipes in order, each with the last value seen from its source."""
        return (self._current(r) for r in self._recipes)

    def __len__(self) -> int:
        return len(self._recipes)

    def get(self, recipe_id: int) -> Recipe | None:
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
        """The last value seen from the recipe's source since start, or None."""
        seen = self._latest.get((recipe.source_node_id, recipe.source_thing_id))
        return None if seen is None else seen[0]

    def is_matching(self, recipe: Recipe) -> bool:
        """Whether the recipe's condition holds on the last value seen from its source."""
        value = self.latest(recipe)
        return value is not None and recipe.matches(value)

    # --- changing the list: `with_saved`, `without` and `moved` return a new list and
    # change nothing, so the caller can store it first and `replace_all` after.

    def replace_all(self, recipes: list[Recipe]) -> None:
        ids = [r.id for r in recipes]
        if len(set(ids)) != len(ids):
            raise ValidationError("recipes", "recipe ids must be unique")
        if len(recipes) > MAX_RECIPES:
            raise ValidationError("recipes", f"at most {MAX_RECIPES} recipes, got {len(recipes)}")
        self._recipes = list(recipes)
        by_source: dict[SourceKey, list[int]] = defaultdict(list)
        for position, recipe in enumerate(self._recipes):
            by_source[(recipe.source_node_id, recipe.source_thing_id)].append(position)
        self._by_source = dict(by_source)
        self._matching = {r.local_thing_id: set() for r in self._recipes}
        self._winner = {}
        for position, recipe in enumerate(self._recipes):
            self._mark(position, self.is_matching(recipe))

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
        return recipes + [recipe]

    def without(self, recipe_id: int) -> list[Recipe]:
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
        return max((r.id for r in self._recipes), default=0) + 1

    def _position(self, recipe_id: int) -> int:
        for position, recipe in enumerate(self._recipes):
            if recipe.id == recipe_id:
                return position
        raise ValidationError("id", f"there is no recipe {recipe_id}")

    # --- evaluating ---------------------------------------------------------

    def _mark(self, position: int, matching: bool) -> None:
        """Record whether a recipe matches now, keeping its thing's winner (the last) current."""
        target = self._recipes[position].local_thing_id
        now_matching = self._matching[target]
        winner = self._winner.get(target, -1)
        if matching:
            now_matching.add(position)
            if position > winner:
                self._winner[target] = position
        elif position in now_matching:
            now_matching.discard(position)
            if position == winner:  # only then look through the others
                if now_matching:
                    self._winner[target] = max(now_matching)
                else:
                    del self._winner[target]

    def forget(self, node_id: int) -> None:
        """Drop the values seen from a node (it went offline): its recipes stop firing."""
        for key in [k for k in self._latest if k[0] == node_id]:
            self.forget_source(*key)

    def forget_source(self, node_id: int, thing_id: int) -> None:
        """Drop the value seen from one source (its sensor failed)."""
        if self._latest.pop((node_id, thing_id), None) is not None:
            for position in self._by_source[(node_id, thing_id)]:
                self._mark(position, False)

    def observe(self, node_id: int, thing_id: int, value: float, now: int,
                is_live: Callable[[int], bool] = lambda node_id: True) -> list[Action]:
        """Take a new source value; return one action per local thing whose recipes decide.

        For each local thing that a recipe on this source targets, the last
        recipe in order that matches on the latest values wins. Only the
        recipes on this source are re-checked: the others' state is kept.
        A value from a node that is not live counts as no value.
        """
        key = (node_id, thing_id)
        positions = self._by_source.get(key)
        if positions is None:
            return []
        live = is_live(node_id)
        if live:
            self._latest[key] = (value, now)
        else:
            self._latest.pop(key, None)
        targets = {}
        for position in positions:
            recipe = self._recipes[position]
            self._mark(position, live and recipe.matches(value))
            targets[recipe.local_thing_id] = True
        actions = []
        for target in targets:
            winner = self._winner.get(target)
            if winner is not None:
                recipe = self._recipes[winner]
                actions.append(Action(target, recipe.local_value, recipe.id))
        return actions
