"""The plug: its things, its recipes, and the one path every change of a value takes.

`Plug.set_thing` applies the override rule, drives the relay, schedules the
save, records the event and tells every listener (WebSocket clients, the mesh
broadcaster) with the cause attached. Nothing else switches the relay.
The plug owns no sockets: the daemon feeds it datagrams and clock ticks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, NamedTuple

from plugd.errors import HardwareError, PlugdError, ValidationError, WireError
from plugd.hardware.relay import Relay
from plugd.core.registry import Heard, Peer, Registry, parse_records
from plugd.core.meshkey import Guard, Signer
from plugd.core.model import ON, Recipe, Thing, ThingId, ThingType, default_things, esp_time
from plugd.core.recipes import RecipeBook
from plugd.service.store import StateDir, Writer, dump
from plugd.core.wire import decode, encode, format_clock, format_number

log = logging.getLogger(__name__)

THINGS_FILE = "things.json"
RECIPES_FILE = "recipes.json"
NODES_FILE = "nodes.json"
#: Things the meter sets; they are invalid (not sent, shown as faults) until it has a reading.
METERED = frozenset({ThingId.POWER, ThingId.ENERGY_TODAY, ThingId.CURRENT, ThingId.ENERGY_TOTAL,
                     ThingId.ENERGY_YESTERDAY})
#: Things whose value a sensor or the clock sets; users and recipes cannot.
MEASURED = METERED | {ThingId.CLOCK}
#: How deep recipes may trigger recipes (a rule on the plug that switches the plug).
MAX_CASCADE = 8
MAX_EVENTS = 200
#: Node online/offline events told one by one in a minute, at most; the rest are counted and
#: told as one, so spoofed node ids cannot bury the events, the journal and the pages.
NODE_NEWS_PER_MINUTE = 60


@dataclass(frozen=True, slots=True)
class Cause:
    """Why a value changed: `user`, `recipe`, `sensor`, `clock`, `start` or `protection`."""

    kind: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.kind} {self.detail}" if self.detail else self.kind


@dataclass(frozen=True, slots=True)
class Event:
    time: int  # seconds since 2000, the firmware's epoch
    kind: str  # relay, thing, node, recipe, fault, config
    message: str
    cause: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"time": self.time, "kind": self.kind, "message": self.message, "cause": self.cause}


class Change(NamedTuple):
    """A local thing that took a new value, a peer that was heard or lost, or an event.

    A tuple: one is made for every packet and every reading, and tuples are cheap.
    """

    thing: Thing | None = None
    cause: Cause | None = None
    peer: Peer | None = None
    event: Event | None = None


def parse_things(obj: Any) -> list[Thing]:
    if not isinstance(obj, list):
        raise ValidationError("things", "expected a list")
    return [Thing.from_json(item, f"things[{i}]") for i, item in enumerate(obj)]


def parse_recipes(obj: Any) -> list[Recipe]:
    if not isinstance(obj, list):
        raise ValidationError("recipes", "expected a list")
    recipes = [Recipe.from_json(item, f"recipes[{i}]") for i, item in enumerate(obj)]
    RecipeBook(recipes)  # checks unique ids and the bound
    return recipes


class Plug:
    def __init__(self, *, node_id: int, node_name: str, state: StateDir,
                 open_relay: Callable[[bool], Relay] | None, registry: Registry, power_on_state: str = "last",
                 wall: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.node_id = node_id
        self.node_name = node_name
        self.state = state
        self.writer = Writer(state)
        self.relay: Relay | None = None
        self.registry = registry
        self.wall = wall
        self.monotonic = monotonic
        self.events: deque[Event] = deque(maxlen=MAX_EVENTS)
        #: Node comings and goings told this minute, held back beyond the budget, and since when.
        self._news_told, self._news_held, self._news_since = 0, 0, float("-inf")
        self.listeners: list[Callable[[Change], None]] = []
        self._depth = 0
        self._nodes_dirty = False
        #: Why the protection switched the relay off; recipes cannot switch it on meanwhile.
        self.tripped: str | None = None
        #: Why the relay's pin refused the last switching (None: it switched).
        self.relay_fault: str | None = None
        #: Held from reading the recipe list to storing the new one, so that two clients'
        #: changes cannot both start from the same list and the second drop the first's.
        self.recipes_lock = asyncio.Lock()
        #: With a mesh key: what checks received datagrams, and what signs ours (plugd.core.meshkey).
        self.guard: Guard | None = None
        self.signer: Signer | None = None

        stored = {t.id: t for t in state.load(THINGS_FILE, parse_things, default_things)}
        things = {t.id: stored.get(t.id, t) for t in default_things()}
        things.update({i: t for i, t in stored.items() if i not in things})
        # Measured values start from nothing; a sensor sets them.
        for thing_id in MEASURED:
            things[thing_id] = replace(things[thing_id], value=0.0)
        self.things: dict[int, Thing] = dict(sorted(things.items()))
        self.invalid: set[int] = set(METERED)
        self.recipes = RecipeBook(state.load(RECIPES_FILE, parse_recipes, list))
        registry.load(state.load(NODES_FILE, parse_records, list))

        plug = self.things[ThingId.PLUG]
        initial = {"on": ON, "off": 0.0}.get(power_on_state, plug.value)
        self.things[ThingId.PLUG] = replace(plug, value=initial)
        if open_relay is not None:
            self.relay = open_relay(initial == ON)
        self.record("relay", f"relay {'on' if initial else 'off'} at start "
                             f"(power_on_state = {power_on_state})", Cause("start"))

    # --- the one path of every change -------------------------------------

    def set_thing(self, thing_id: int, value: float, cause: Cause) -> bool:
        """Give a local thing a new value; return whether it changed.

        Recipes do not touch a thing under override. The relay is driven first,
        so a refused pin leaves the value as it was.
        """
        thing = self.things.get(thing_id)
        if thing is None:
            raise ValidationError("thing.id", f"there is no local thing {thing_id}")
        if cause.kind == "recipe" and thing.override:
            return False
        if thing_id == ThingId.PLUG and value == ON and self.tripped:
            if cause.kind == "recipe":
                return False
            self.record("relay", f"protection cleared (was: {self.tripped})", cause)
            self.tripped = None
        if thing.value == value and thing_id not in self.invalid:
            return False
        if thing_id == ThingId.PLUG:
            try:
                self._drive(value)
            except HardwareError as err:
                if str(err) != self.relay_fault:  # once, not at every recipe's retry
                    self.relay_fault = str(err)
                    self.record("fault", str(err), cause)
                raise
            if self.relay_fault is not None:
                self.relay_fault = None
                self.record("fault", "the relay switches again", cause)
        thing = self.things[thing_id] = thing.with_value(value, esp_time(self.wall()))
        self.invalid.discard(thing_id)
        if thing.id == ThingId.PLUG:
            self.record("relay", f"relay {'on' if value else 'off'}", cause)
        elif cause.kind not in ("sensor", "clock"):
            self.record("thing", f"{thing.name} set to {format_number(value)}", cause)
        if cause.kind not in ("sensor", "clock"):
            self.save_later(THINGS_FILE, self.things_json())
        self._tell(Change(thing=thing, cause=cause))
        self._feed(self.node_id, thing_id, value)
        return True

    def trip(self, reason: str) -> None:
        """The protection switches the relay off, override or not, and holds it off."""
        self.tripped = reason
        self.record("protection", f"protection tripped: {reason}", Cause("protection"))
        self.set_thing(ThingId.PLUG, 0.0, Cause("protection", reason))

    def invalidate(self, thing_ids: Iterable[int], cause: Cause) -> None:
        """Mark values whose sensor failed: they are not sent nor used, rather than read as 0."""
        for thing_id in thing_ids:
            if thing_id not in self.invalid:
                self.invalid.add(thing_id)
                self.recipes.forget_source(self.node_id, thing_id)
                self._tell(Change(thing=self.things[thing_id], cause=cause))

    def set_override(self, thing_id: int, override: bool, cause: Cause) -> bool:
        thing = self.things[thing_id]
        if thing.override == override:
            return False
        thing = self.things[thing_id] = replace(thing, override=override)
        self.record("thing", f"{thing.name}: override {'on' if override else 'off'}", cause)
        self.save_later(THINGS_FILE, self.things_json())
        self._tell(Change(thing=thing, cause=cause))
        if not override:
            # Hand the thing back to its recipes: they decide on the values they last saw.
            for recipe in list(self.recipes):
                value = self.recipes.latest(recipe)
                if recipe.local_thing_id == thing_id and value is not None:
                    self._feed(recipe.source_node_id, recipe.source_thing_id, value)
        return True

    def _drive(self, value: float) -> None:
        if self.relay is not None:
            self.relay.set(value == ON)

    def _feed(self, node_id: int, thing_id: int, value: float) -> None:
        """Hand a source value to the recipes and carry out what they decide."""
        if not self.recipes.watches(node_id, thing_id):
            return
        if self._depth >= MAX_CASCADE:
            log.warning("recipes switch each other in a loop; stopped at depth %d", MAX_CASCADE)
            return
        actions = self.recipes.observe(node_id, thing_id, value, esp_time(self.wall()),
                                       self.registry.is_online)
        self._depth += 1
        try:
            for action in actions:
                try:
                    self.set_thing(action.thing_id, action.value, Cause("recipe", str(action.recipe_id)))
                except HardwareError:
                    pass  # set_thing recorded the fault when it began
                except PlugdError as err:
                    log.error("recipe %d could not set thing %d: %s",
                              action.recipe_id, action.thing_id, err)
        finally:
            self._depth -= 1

    # --- inputs from the daemon -------------------------------------------

    def receive(self, data: bytes, address: str) -> None:
        """One datagram from the mesh."""
        counters = self.registry.counters
        counters.received += 1
        try:
            packet = decode(data)
        except WireError as err:
            counters.invalid += 1
            log.debug("datagram from %s refused: %s", address, err)
            return
        if self.guard is not None and not self._admitted(data, packet.node_id, address):
            return
        counters.rejected_fields += packet.rejected
        heard = self.registry.heard(packet, address, self.monotonic(), esp_time(self.wall()))
        if heard is None:
            return
        self._heard(heard)
        for item in packet.fields:
            self._feed(packet.node_id, item.thing_id, item.value)

    def _admitted(self, data: bytes, node_id: int, address: str) -> bool:
        """The mesh key's verdict on a datagram: counted when refused, recorded when a node moved."""
        assert self.guard is not None
        verdict = self.guard.check(data, node_id, address)
        counters = self.registry.counters
        if verdict.refused is not None:
            setattr(counters, verdict.refused, getattr(counters, verdict.refused) + 1)
            log.debug("datagram of node %d from %s refused: %s", node_id, address, verdict.refused)
            return False
        if verdict.moved_from is not None:
            counters.address_changes += 1
        if verdict.report:
            self.record("node", f"node {node_id} now speaks from {address} "
                                f"(was {verdict.moved_from}; counted, not refused)", Cause("mesh"))
        return True

    def _heard(self, heard: Heard) -> None:
        peer = heard.peer
        if heard.is_new or heard.renamed:
            self._nodes_dirty = True
        if heard.came_online:
            self._node_news(f"node {peer.name} ({peer.id}) online at {peer.address}")
        self._tell(Change(peer=peer))

    def _node_news(self, message: str) -> None:
        """A node came or went: an event, within the budget; beyond it, counted for the summary."""
        if self._news_told < NODE_NEWS_PER_MINUTE:
            self._news_told += 1
            self.record("node", message, Cause("mesh"))
        else:
            self._news_held += 1

    def _news_minute(self, now: float) -> None:
        if now - self._news_since < 60.0:
            return
        if self._news_held:
            self.record("node", f"{self._news_held} more nodes came online or went offline in a "
                                "minute, too many to tell one by one (spoofed node ids?)", Cause("mesh"))
        self._news_since, self._news_told, self._news_held = now, 0, 0

    def tick(self) -> None:
        """Once a second: the clock thing, offline detection."""
        now = datetime.fromtimestamp(self.wall())
        self.set_thing(ThingId.CLOCK, float(now.hour), Cause("clock"))
        self._feed(self.node_id, ThingId.CLOCK, float(now.hour))
        monotonic = self.monotonic()
        self._news_minute(monotonic)
        for peer in self.registry.sweep(monotonic):
            self.recipes.forget(peer.id)
            self._node_news(f"node {peer.name} ({peer.id}) offline")
            self._tell(Change(peer=peer))

    # --- telling ------------------------------------------------------------

    def record(self, kind: str, message: str, cause: Cause) -> None:
        event = Event(esp_time(self.wall()), kind, message, str(cause))
        self.events.append(event)
        log.info("%s (%s)", message, cause, extra={"plugd_event": kind})
        self._tell(Change(event=event))

    def _tell(self, change: Change) -> None:
        for listener in self.listeners:
            try:
                listener(change)
            except Exception:
                log.exception("a listener failed on %s", change)

    # --- persistence --------------------------------------------------------

    def save_later(self, name: str, data: Any) -> None:
        """Save in the background (the caller does not wait); failures are logged."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous test): write at once
            self.state.write(name, dump(data))
            return
        task = loop.create_task(self.writer.save(name, dump(data)))
        # The writer logs a failed write; retrieving the exception keeps asyncio quiet about it.
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def save_things(self) -> None:
        await self.writer.save(THINGS_FILE, dump(self.things_json()))

    async def store_recipes(self, recipes: list[Recipe]) -> None:
        """Persist a new recipe list, then make it the one in force (nothing changes on failure).

        The caller holds `recipes_lock` since it read the list `recipes` was made from.
        """
        await self.writer.save(RECIPES_FILE, dump([r.to_json() for r in recipes]))
        self.recipes.replace_all(recipes)

    async def save_nodes_if_changed(self, force: bool = False) -> None:
        if self._nodes_dirty or force:
            self._nodes_dirty = False
            await self.writer.save(NODES_FILE, dump([p.to_record() for p in self.registry.peers.values()]))

    async def close(self) -> None:
        await self.writer.flush()
        await self.save_things()
        await self.save_nodes_if_changed(force=True)
        await self.writer.save(RECIPES_FILE, dump([r.to_json() for r in self.recipes]))

    # --- views --------------------------------------------------------------

    def things_json(self) -> list[dict[str, Any]]:
        """The things as stored; see `things_view` for what clients are shown."""
        return [t.to_json() for t in self.things.values()]

    def things_view(self) -> list[dict[str, Any]]:
        return [{**t.to_json(), "valid": t.id not in self.invalid} for t in self.things.values()]

    def settable(self, thing_id: int) -> bool:
        return thing_id in self.things and thing_id not in MEASURED

    def wire_text(self, thing: Thing) -> str:
        """A thing's value as it travels on the mesh (a CLOCK as the time of day)."""
        if thing.type == ThingType.CLOCK:
            return format_clock(datetime.fromtimestamp(self.wall()))
        return format_number(thing.value)

    def datagram(self) -> bytes:
        """This node's broadcast, in the firmware's format (signed when there is a mesh key)."""
        data = encode(self.node_id, self.node_name,
                      [(t.id, self.wire_text(t)) for t in self.things.values() if t.id not in self.invalid])
        return data if self.signer is None else self.signer.sign(data)

    def message(self, command: str, **fields: Any) -> dict[str, Any]:
        """A WebSocket message: every one names its command and this node."""
        return {"command": command, "nodeId": self.node_id, "nodeName": self.node_name, **fields}

    def thing_update(self, thing: Thing) -> dict[str, Any]:
        message = self.message("thing_update", thingId=thing.id, thingName=thing.name,
                               lastUpdate=thing.last_updated, value=thing.value,
                               valid=thing.id not in self.invalid)
        if thing.type == ThingType.CLOCK:
            message["text"] = self.wire_text(thing)
        return message

