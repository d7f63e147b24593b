"""The running plug: the asyncio shell around the pure `PlugCore`.

It loads the plug's state from the state directory, feeds the core its
inputs with the time, and hands each output to the outlets in order: the
relay pin first (reporting back to the core how it went), then the listeners
(WebSocket pushes, the meter), the journal, the store and the broadcaster.
Nothing else switches the relay.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from plugd.core import validate
from plugd.core.events import Event, EventLog
from plugd.core.labels import Label, Labels, labels_json, parse_labels, with_label, without_label
from plugd.core.meshkey import Guard, Signer
from plugd.core.model import ON, Recipe, Thing, default_things, read_float, require_object
from plugd.core.plug import Cause, Change, Now, Output, PlugCore
from plugd.core.recipes import RecipeBook, parse_outcomes
from plugd.core.registry import Registry, parse_records
from plugd.core.wire import Packet
from plugd.errors import HardwareError
from plugd.hardware.relay import Relay
from plugd.service.store import StateDir, Writer, dump

log = logging.getLogger(__name__)

THINGS_FILE = "things.json"
RECIPES_FILE = "recipes.json"
OUTCOMES_FILE = "recipe-outcomes.json"
NODES_FILE = "nodes.json"
AUTO_OFF_FILE = "auto-off.json"
LABELS_FILE = "labels.json"
FILES = {"things": THINGS_FILE, "outcomes": OUTCOMES_FILE, "auto_off": AUTO_OFF_FILE}


class Plug:
    """The plug as the daemon and the API see it: the core's state, and commands that run
    the core's decisions through the outlets before they return."""

    def __init__(self, *, node_id: int, node_name: str, state: StateDir,
                 open_relay: Callable[[bool], Relay] | None, registry: Registry,
                 power_on_state: str = "last", wall: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic,
                 save: Callable[[str, bytes], None] | None = None, auto_off: float = 0.0,
                 scheduled: Callable[[bool], bool | None] | None = None) -> None:
        self.state = state
        self.writer = Writer(state)
        #: The store outlet: a background write on the event loop; a caller with no loop (a
        #: fuzzer, a synchronous test) passes a writer of its own, such as `state.write`.
        self._save = save or self._save_in_background
        self.wall = wall
        self.monotonic = monotonic
        self.listeners: list[Callable[[Change], None]] = []
        #: Called when a value that travels on the mesh changed (the broadcaster's cue).
        self.on_broadcast: Callable[[], None] | None = None
        self._nodes_dirty = False
        #: Held from reading the recipe list to storing the new one, so that two clients'
        #: changes cannot both start from the same list and the second drop the first's.
        self.recipes_lock = asyncio.Lock()

        stored = {t.id: t for t in state.load(THINGS_FILE, validate.things, default_things)}
        things = {t.id: stored.get(t.id, t) for t in default_things()}
        things.update({i: t for i, t in stored.items() if i not in things})
        recipes = RecipeBook(state.load(RECIPES_FILE, lambda obj: validate.recipes(obj, things), list),
                             state.load(OUTCOMES_FILE, parse_outcomes, dict))
        registry.load(state.load(NODES_FILE, parse_records, list), monotonic())
        last = things[1].value == ON
        initial = {"on": True, "off": False}.get(power_on_state, last)
        if power_on_state == "schedule" and scheduled is not None:
            # What the last schedule before now set, given the saved state; None: none ran.
            found = scheduled(last)
            initial = last if found is None else found
        self.relay: Relay | None = None if open_relay is None else open_relay(initial)
        self.core = PlugCore(node_id=node_id, node_name=node_name, things=things.values(),
                             recipes=recipes, registry=registry, relay_on=initial)
        self.record("relay", f"relay {'on' if initial else 'off'} at start "
                             f"(power_on_state = {power_on_state})", Cause("start"), subject="relay")
        self.core.auto_off = auto_off
        self.core.labels = state.load(LABELS_FILE, parse_labels, dict)
        running = state.load(AUTO_OFF_FILE, _auto_off_record, lambda: None)
        if running is not None:
            self._run(self.core.restore_auto_off(*running, self.now()))

    # --- the core's state, read-only for everyone else -----------------------------------

    @property
    def node_id(self) -> int:
        """This node's id on the mesh."""
        return self.core.node_id

    @property
    def node_name(self) -> str:
        """This node's name on the mesh; a rename takes effect at the next broadcast."""
        return self.core.node_name

    @node_name.setter
    def node_name(self, name: str) -> None:
        self.core.node_name = name

    @property
    def things(self) -> dict[int, Thing]:
        """The local things by id."""
        return self.core.things

    @property
    def invalid(self) -> set[int]:
        """Ids of things without a valid value (a failed or not yet read sensor)."""
        return self.core.invalid

    @property
    def recipes(self) -> RecipeBook:
        """The recipes in force."""
        return self.core.recipes

    @property
    def registry(self) -> Registry:
        """The nodes heard on the mesh."""
        return self.core.registry

    @property
    def events(self) -> EventLog:
        """The event log people read."""
        return self.core.events

    @property
    def tripped(self) -> str | None:
        """Why the protection holds the relay off, or None."""
        return self.core.tripped

    @property
    def relay_fault(self) -> str | None:
        """Why the relay's pin refused its last switching, or None."""
        return self.core.relay_fault

    @property
    def guard(self) -> Guard | None:
        """The mesh key's check of received datagrams (None: no mesh key)."""
        return self.core.guard

    @guard.setter
    def guard(self, guard: Guard | None) -> None:
        self.core.guard = guard

    @property
    def signer(self) -> Signer | None:
        """What signs this node's datagrams (None: no mesh key)."""
        return self.core.signer

    @signer.setter
    def signer(self, signer: Signer | None) -> None:
        self.core.signer = signer

    def now(self) -> Now:
        """The time an input happens at, from the plug's clocks."""
        return Now(self.wall(), self.monotonic())

    # --- inputs ------------------------------------------------------------------------------

    def set_thing(self, thing_id: int, value: float, cause: Cause) -> bool:
        """Ask for a thing to take `value`; return whether it did. A relay pin that refuses
        raises HardwareError (the relay keeps its value)."""
        out = self.core.set_thing(thing_id, value, cause, self.now())
        refused = self._run(out)
        if refused:
            raise HardwareError(refused[0])
        return out.changed

    def switch_for(self, seconds: float, cause: Cause) -> bool:
        """Switch the relay on for `seconds` (the auto-off then switches it off); whether it
        took. A relay pin that refuses raises HardwareError."""
        out = self.core.switch_for(seconds, cause, self.now())
        refused = self._run(out)
        if refused:
            raise HardwareError(refused[0])
        return out.changed

    @property
    def off_at(self) -> float | None:
        """When the auto-off switches the relay off (wall seconds), or None."""
        return self.core.off_at

    def set_override(self, thing_id: int, override: bool, cause: Cause) -> bool:
        """Pin a thing against recipes, or hand it back to them; return whether it changed."""
        out = self.core.set_override(thing_id, override, cause, self.now())
        self._run(out)
        return out.changed

    def trip(self, reason: str) -> None:
        """The protection's verdict: switch the relay off and hold it off."""
        self._run(self.core.trip(reason, self.now()))

    def invalidate(self, thing_ids: Iterable[int], cause: Cause) -> None:
        """A sensor failed: its values are not valid until it reads again."""
        self._run(self.core.invalidate(thing_ids, cause))

    def record(self, kind: str, message: str, cause: Cause, subject: str | None = None) -> None:
        """An event from outside the core; `subject` (default: the kind) is what it is about."""
        self._run(self.core.record(kind, subject or kind, message, cause, self.now()))

    def receive(self, data: bytes, address: str) -> None:
        """One datagram from the mesh."""
        self._run(self.core.receive(data, address, self.now()))

    def receive_relayed(self, packet: Packet, address: str) -> bool:
        """A node's values from another subnet, through the broker; whether they were taken
        (not when the node is heard directly, which wins)."""
        before = self.registry.counters.relayed
        self._run(self.core.receive_relayed(packet, address, self.now()))
        return self.registry.counters.relayed > before

    def tick(self) -> None:
        """Once a second: the clock thing and offline detection."""
        self._run(self.core.tick(self.now()))

    # --- outlets ----------------------------------------------------------------------------

    def _run(self, out: Output) -> list[str]:
        """Carry out an output: the pin first, then listeners, journal, store, broadcaster.
        Returns the pin's refusals."""
        refused = []
        index = 0
        while index < len(out.drives):  # a switch's recipes may ask for another
            drive = out.drives[index]
            index += 1
            try:
                if self.relay is not None:
                    self.relay.set(drive.on)
            except HardwareError as err:
                refused.append(str(err))
                out.merge(self.core.relay_refused(drive, str(err), self.now()))
            else:
                out.merge(self.core.relay_switched(drive, self.now()))
        for change in out.changes:
            if change.event is not None:
                self._journal(change.event)
            for listener in self.listeners:
                try:
                    listener(change)
                except Exception:
                    log.exception("a listener failed on %s", change)
        for what in out.persist:
            if what == "nodes":
                self._nodes_dirty = True
            else:
                self._save(FILES[what], dump(self._content(what)))
        if out.broadcast and self.on_broadcast is not None:
            self.on_broadcast()
        return refused

    @staticmethod
    def _journal(event: Event) -> None:
        log.info("%s (%s)", event.message, event.cause, extra={"plugd_event": event.kind})

    def _content(self, what: str) -> Any:
        if what == "auto_off":
            return self.core.auto_off_json()
        return self.things_json() if what == "things" else self.recipes.outcomes_json()

    # --- persistence --------------------------------------------------------------------

    def save_soon(self, name: str, data: bytes) -> None:
        """Write a file of the state directory through the store outlet, without waiting."""
        self._save(name, data)

    def _save_in_background(self, name: str, data: bytes) -> None:
        """Save without waiting; the writer logs a failure."""
        task = asyncio.get_running_loop().create_task(self.writer.save(name, data))
        # Retrieving the exception keeps asyncio quiet about one the writer logged already.
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def save_things(self) -> None:
        """Write the things now (a person's change is acknowledged once it is on disk)."""
        await self.writer.save(THINGS_FILE, dump(self.things_json()))

    async def store_recipes(self, recipes: list[Recipe], fresh: Iterable[int] | None = None) -> None:
        """Persist a new recipe list, then make it the one in force (nothing changes on failure).

        The recipes in `fresh` start with an unknown outcome; by default those
        new or edited. The caller holds `recipes_lock` since it read the list
        `recipes` was made from.
        """
        await self.writer.save(RECIPES_FILE, dump([r.to_json() for r in recipes]))
        fresh = self.recipes.edited(recipes) if fresh is None else fresh
        self._run(self.core.replace_recipes(recipes, fresh))

    @property
    def labels(self) -> Labels:
        """The labels people gave peers' values (plugd.core.labels)."""
        return self.core.labels

    async def save_label(self, node_id: int, thing_id: int, label: Label | None) -> None:
        """Keep a person's label (None: delete it): on disk first, then in force, so a failed
        write changes nothing. ValidationError when the book is full or there is none to delete."""
        labels = (without_label(self.labels, node_id, thing_id) if label is None
                  else with_label(self.labels, node_id, thing_id, label))
        await self.writer.save(LABELS_FILE, dump(labels_json(labels)))
        self.core.labels = labels
        peer = self.registry.peers.get(node_id)
        if peer is not None:  # pages and the MQTT bridge show the peer again, with its new names
            self._run(Output(changes=[Change(peer=peer)]))

    async def save_nodes_if_changed(self, force: bool = False) -> None:
        """Write the known nodes when one was added or renamed (or `force`)."""
        if self._nodes_dirty or force:
            self._nodes_dirty = False
            await self.writer.save(NODES_FILE, dump([p.to_record() for p in self.registry.peers.values()]))

    async def close(self) -> None:
        """Write everything before the process ends."""
        await self.writer.flush()
        await self.save_things()
        await self.save_nodes_if_changed(force=True)
        await self.writer.save(RECIPES_FILE, dump([r.to_json() for r in self.recipes]))
        await self.writer.save(OUTCOMES_FILE, dump(self.recipes.outcomes_json()))
        await self.writer.save(AUTO_OFF_FILE, dump(self.core.auto_off_json()))

    # --- views --------------------------------------------------------------------------

    def things_json(self) -> list[dict[str, Any]]:
        """The things as stored; see `things_view` for what clients are shown."""
        return self.core.things_json()

    def things_view(self) -> list[dict[str, Any]]:
        """The things with their validity, as clients are shown them."""
        return self.core.things_view()

    def settable(self, thing_id: int) -> bool:
        """Whether people and recipes may set this thing."""
        return self.core.settable(thing_id)

    def wire_text(self, thing: Thing) -> str:
        """A thing's value as it travels on the mesh (a CLOCK as the time of day)."""
        return self.core.wire_text(thing, self.wall())

    def datagram(self) -> bytes:
        """This node's broadcast, in the firmware's format."""
        return self.core.datagram(self.wall())

    def names_datagram(self) -> bytes:
        """What this node's things are, for other plugd nodes (sent rarely; ESPs ignore it)."""
        return self.core.names_datagram(self.wall())


def _auto_off_record(obj: Any) -> tuple[float, float] | None:
    """auto-off.json: the deadline (wall seconds) and the duration it was set for; null when
    none runs."""
    if obj is None:
        return None
    record = require_object(obj, "auto-off")
    return read_float(record, "off_at", "auto-off"), read_float(record, "after", "auto-off")
